# Smoke scenario (guest side): the guest kernel, the nbd module and its netlink
# family, the link's ivshmem device reached through libpciaccess, and the
# project's binaries running with the libraries shipped in the initramfs.
# Host side: scenarios/smoke.sh.
. /tests/lib.sh

step modules
grep -q '^nbd ' /proc/modules || fail "nbd module not loaded: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
[ -b /dev/nbd0 ] || fail "/dev/nbd0 is not a block device"
[ "$(cat /sys/block/nbd0/size)" = 0 ] || fail "/dev/nbd0 size $(cat /sys/block/nbd0/size) before any attach, expected 0"
out=$(nbdpcie-vmtool genl-family nbd) || fail "generic netlink family nbd not registered"
echo "$out"

step pci
found=$(nbdpcie-vmtool pci-find 1af4:1110) || fail "libpciaccess found no ivshmem device"
echo "$found"
echo "$found" | grep -q "^$LINK_BDF bar0=256 bar2=$vm_bar_size\$" ||
    fail "ivshmem at $LINK_BDF with a 256-byte BAR0 and a $vm_bar_size-byte BAR2 not among: $found"

step bar
# The host wrote its token at the start of BAR2 before the boot.
got=$(nbdpcie-vmtool bar-read "$LINK_BDF" 2 0 64) || fail "bar-read failed"
[ "$got" = "$vm_host_token" ] || fail "BAR2 offset 0 reads '$got', the host wrote '$vm_host_token'"
run nbdpcie-vmtool bar-write "$LINK_BDF" 2 4096 "$vm_guest_token"
echo "VMTEST-BAR-WRITTEN"
# The host checks the /dev/shm file and acknowledges through the control device.
ack=$(ctl_wait bar-seen 120)
[ "$ack" = "$vm_guest_token" ] || fail "host saw '$ack' in the BAR file, the guest wrote '$vm_guest_token'"

step binaries
n=0
for b in nbd-pcie-client nbd-pcie-server; do
    command -v "$b" >/dev/null || continue
    v=$("$b" -V 2>&1) || fail "$b -V failed in the guest: $v"
    echo "$b -V: $v"
    echo "$v" | grep -q '[0-9]\.[0-9]' || fail "$b -V printed no version: $v"
    n=$((n + 1))
done
echo "project binaries run in the guest: $n"

# kmod-host scenario (guest side): the host kernel module nbd-pcie-host bound
# to an ivshmem-doorbell device through driver_override: char device, sysfs
# attributes, BAR and host-window mappings, MSI-X interrupts through poll()
# and read(), refusal to unload while in use, unbind with the device open and
# mapped, rebind, unload. Host side: scenarios/kmod-host.sh.
. /tests/lib.sh

DB_BDF=0000:00:03.0
SYS=/sys/bus/pci/devices/$DB_BDF
DRV=/sys/bus/pci/drivers/nbd-pcie-host
DEV=/dev/nbd-pcie-host0

attr() { cat "$SYS/$1" 2>/dev/null; }
expect_attr() {
    [ "$(attr "$1")" = "$2" ] || fail "sysfs $1 of $DB_BDF is '$(attr "$1")', expected '$2'"
}
bound_driver() { basename "$(readlink "$SYS/driver" 2>/dev/null)" 2>/dev/null; }

step load
run insmod /lib/modules/extra/nbd-pcie-host.ko win_size="$vm_win_size"
grep -q '^nbd_pcie_host ' /proc/modules || fail "nbd_pcie_host not in /proc/modules after insmod"
[ "$(cat "$SYS/vendor"):$(cat "$SYS/device")" = 0x1af4:0x1110 ] ||
    fail "$DB_BDF is $(cat "$SYS/vendor"):$(cat "$SYS/device"), expected ivshmem 0x1af4:0x1110"
[ -z "$(bound_driver)" ] || fail "$DB_BDF bound to $(bound_driver) before driver_override"

step bind
echo nbd-pcie-host >"$SYS/driver_override" || fail "cannot set driver_override"
echo "$DB_BDF" >/sys/bus/pci/drivers_probe || fail "drivers_probe of $DB_BDF failed"
[ "$(bound_driver)" = nbd-pcie-host ] || fail "$DB_BDF bound to '$(bound_driver)', expected nbd-pcie-host"
[ -c "$DEV" ] || fail "$DEV is not a character device after binding"
expect_attr chardev nbd-pcie-host0
expect_attr shm_bar 2
expect_attr irq_vectors 2
expect_attr win_size "$vm_win_size"
expect_attr irq_count 0
bus=$(attr win_bus_addr)
[ $((bus)) -ne 0 ] && [ $((bus % 4096)) -eq 0 ] || fail "win_bus_addr '$bus' is not a non-zero page-aligned address"
info=$(nbdpcie-kmodtool info "$DEV") || fail "kmodtool info failed"
echo "$info"
want="vendor=1af4 device=1110 shm_bar=2 nvectors=2 bar2=$vm_db_size win_size=$vm_win_size win_bus=$bus"
[ "$info" = "$want" ] || fail "INFO ioctl says '$info', sysfs and the VM config say '$want'"
echo "VMTEST-KMOD-WIN-BUS $bus"

step bar
got=$(nbdpcie-kmodtool bar-read "$DEV" 2 0 64) || fail "bar-read failed"
[ "$got" = "$vm_host_token" ] || fail "BAR2 offset 0 through $DEV reads '$got', the host wrote '$vm_host_token'"
run nbdpcie-kmodtool bar-write "$DEV" 2 8192 "$vm_guest_token"

step window
run nbdpcie-kmodtool win-write "$DEV" 256 "$vm_guest_token"
echo "VMTEST-KMOD-WRITTEN"
ack=$(ctl_wait host-checked 120)
[ "$ack" = ok ] || fail "host check of the BAR and window said '$ack'"
got=$(nbdpcie-kmodtool win-read "$DEV" 512 64) || fail "win-read failed"
[ "$got" = "$vm_host_token" ] ||
    fail "window offset 512 reads '$got'; the host wrote '$vm_host_token' at bus address $bus + 512"

step irq
nbdpcie-kmodtool irq-lockstep "$DEV" 10 60 | tee /tmp/irq.out
grep -q '^VMTOOL-IRQ-COUNTS 5 5$' /tmp/irq.out ||
    fail "per-vector interrupt counts '$(grep COUNTS /tmp/irq.out)', the host rang each of 2 vectors 5 times"
expect_attr irq_count 10

step irq-mask
nbdpcie-kmodtool irq-only "$DEV" 1 60 || fail "a file counting only vector 1 misbehaved"
expect_attr irq_count 12

step in-use
rm -f /tmp/go
nbdpcie-kmodtool hold "$DEV" /tmp/go >/tmp/hold.out 2>&1 &
holder=$!
i=0
until grep -q VMTOOL-HELD /tmp/hold.out; do
    i=$((i + 1))
    [ $i -gt 300 ] && fail "kmodtool hold did not map the device within 30 s: $(cat /tmp/hold.out)"
    sleep 0.1
done
expect_fail rmmod nbd_pcie_host
grep -q '^nbd_pcie_host ' /proc/modules || fail "the module unloaded while $DEV was open and mapped"

step unbind
echo "$DB_BDF" >"$DRV/unbind" || fail "unbind with $DEV open failed"
[ -z "$(bound_driver)" ] || fail "$DB_BDF still bound to $(bound_driver) after unbind"
[ ! -e "$DEV" ] || fail "$DEV still exists after unbind"
touch /tmp/go
wait $holder || fail "operations on the removed device misbehaved: $(cat /tmp/hold.out)"
cat /tmp/hold.out
grep -q VMTOOL-GONE-OK /tmp/hold.out || fail "kmodtool hold did not report VMTOOL-GONE-OK"

step rebind
echo "$DB_BDF" >/sys/bus/pci/drivers_probe || fail "drivers_probe after unbind failed"
[ "$(bound_driver)" = nbd-pcie-host ] || fail "rebind: $DB_BDF bound to '$(bound_driver)'"
info=$(nbdpcie-kmodtool info "$DEV") || fail "kmodtool info after rebind failed"
echo "$info"
echo "$info" | grep -q "shm_bar=2 nvectors=2 bar2=$vm_db_size win_size=$vm_win_size" ||
    fail "INFO after rebind: '$info'"

step unload
run rmmod nbd_pcie_host
[ -z "$(bound_driver)" ] || fail "$DB_BDF still bound to $(bound_driver) after rmmod"
[ ! -e "$DEV" ] || fail "$DEV still exists after rmmod"
if dmesg | grep -E 'BUG:|WARNING:|Oops|Call Trace'; then
    fail "the kernel logged a warning or bug during the scenario"
fi
dmesg | grep -E 'nbd-pcie-host|nbd_pcie_host' | tail -n 8

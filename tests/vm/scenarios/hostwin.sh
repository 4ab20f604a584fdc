#!/usr/bin/env bash
# vm-hostwin: the kernel nbd path in host-window mode. In the guest, the host
# module kmod/nbd-pcie-host is bound to an ivshmem-doorbell device (4 MSI-X
# vectors) and nbd-pcie-client's pci backend uses it: BAR through the
# module, the link's completion rings and payload areas in the module's
# DMA-coherent window (guest RAM). Outside, nbd-pcie-server is the EP on the
# shm backend: BAR = the doorbell's shared memory, window = the guest-RAM
# file at the bus address the guest published (its emulated eDMA reads and
# writes there), interrupts through the ivshmem server
# (irq=ivshmem:SOCKET, tests/kmod/ivshmem-doorbell.c; each vector is first
# rung once by tests/kmod/ivshmem-ring.c, the same client code). The host checks
# that payloads went through the window and not through the BAR, that the
# backing file holds the guest's data and a clean ext4, and that the client
# reattaches in host-window mode after the EP is killed and restarted. Guest side:
# guest/hostwin.sh.
#
# Besides tests/vm/lib.sh's environment: KMOD_DOORBELL, KMOD_RING (set by
# tests/vm/CMakeLists.txt; default: the build dir next to VM_LOG_DIR). The
# module is built against /usr/src/linux-headers-<the guest kernel's release>.
. "$(dirname "$0")/../lib.sh"
vm_init hostwin
ep_require

src=$(cd "$(dirname "$0")/../../.." && pwd)
build=$(cd "$VM_LOG_DIR/../../.." && pwd)
KMOD_DOORBELL=${KMOD_DOORBELL:-$build/tests/kmod/nbdpcie-ivshmem-doorbell}
KMOD_RING=${KMOD_RING:-$build/tests/kmod/nbdpcie-ivshmem-ring}
M=1048576
# The doorbell device's shared memory = the link's BAR: 32 MiB (a power of
# two, as ivshmem wants) holding the EP's layout of 4 channels with 4 MiB
# payload areas (about 16.1 MiB). The size is set explicitly
# (pcie_data_per_channel) so that the EP restarted below lays out the same:
# an EP grows a BAR file that carries its magic to its layout's size, and
# QEMU's mapping of this one is fixed.
DB_SIZE=$((32 * M))
DATA=$((4 * M))
# The module's window: 4 MiB, the largest coherent buffer without an IOMMU
# or CMA. Less than the EP's 4 x 4 MiB host-polled areas: the host shrinks
# the payload areas to fit (docs/transport.md "The host window").
WIN_SIZE=$((4 * M))
VECTORS=4

for f in "$KMOD_DOORBELL" "$KMOD_RING"; do
    [ -x "$f" ] || vm_fail "$f not built (cmake --build the build dir first)"
done

vm_kmod_overlay

seed=$(vm_random_seed)
size=$((128 * M))
disk=$VM_WORK/disk.img
truncate -s $size "$disk"
vm_prepare_shm
vm_doorbell_shm "$DB_SIZE"
vm_doorbell_start $VECTORS

# The guest: no ivshmem-plain link device, the doorbell device at 00:03.0.
VM_WITH_LINK=0
VM_QEMU_EXTRA=(-chardev "socket,path=$DB_SOCK,id=db"
               -device "ivshmem-doorbell,chardev=db,vectors=$VECTORS,addr=0x3")
vm_start vm_seed=$seed vm_size=$size vm_win_size=$WIN_SIZE vm_vectors=$VECTORS
for i in $(seq 300); do
    grep -q "CONNECTED peer 1" "$VM_WORK/db.out" && break
    sleep 0.1
done
grep -q "CONNECTED peer 1" "$VM_WORK/db.out" || vm_fail "QEMU did not connect to the ivshmem server: $(cat "$VM_WORK/db.out")"

# The EP: peer 2 of the ivshmem server; it rings peer 1 (QEMU).
ep_config "$VM_WORK/ep.conf" "pcie_data_per_channel = $DATA"
sed -i "s|pcie = .*|pcie = shm:bar=$DB_SHM,win=$VM_RAM,irq=ivshmem:$DB_SOCK|" "$VM_WORK/ep.conf"
ep_export "$VM_WORK/ep.conf" disk "exportname = $disk"
ep_start -d -C "$VM_WORK/ep.conf"
for i in $(seq 50); do
    grep -q "PEER 2 joined" "$VM_WORK/db.out" && break
    sleep 0.1
done
grep -q "PEER 2 joined" "$VM_WORK/db.out" || vm_fail "the EP did not join the ivshmem server: $(cat "$VM_WORK/db.out")"
vm_ctl_send ep-up=1

# Interrupt delivery through the transport's ivshmem client (a peer of its
# own, peer 3; like the EP it rings the lowest other peer, QEMU).
vm_wait VMTEST-HOSTWIN-IRQ-READY 120
"$KMOD_RING" "$DB_SOCK" $(seq 0 $((VECTORS - 1))) >"$VM_WORK/ring.out" 2>&1 ||
    vm_fail "nbdpcie-ivshmem-ring failed: $(cat "$VM_WORK/ring.out")"
[ "$(grep -c '^RANG ' "$VM_WORK/ring.out")" = $VECTORS ] || vm_fail "ivshmem-ring rang: $(cat "$VM_WORK/ring.out")"
vm_ctl_send rung=$VECTORS

# ---- the guest wrote its pattern: where did the payloads go? -------------
vm_wait VMTEST-HOSTWIN-WRITTEN 180
host_verify "$disk" $((4 * M)) $((8 * M)) "$seed"
vm_log "backing file holds the guest's pattern"

# Header fields (docs/transport.md 2.1), little-endian, read from the BAR.
u32() { od -An -tu4 -j "$1" -N4 "$DB_SHM" | tr -d ' '; }
u64() { od -An -tu8 -j "$1" -N8 "$DB_SHM" | tr -d ' '; }
nch=$(u32 12); data=$(u32 28); chan_base=$(u64 40); chan_stride=$(u32 48)
hp_off=$(u32 52); pay_off=$(u32 60)
feat=$(u32 144); win_data=$(u32 148); bus=$(u64 152); wsize=$(u64 160); wstride=$(u64 168)
vm_log "layout: $nch channels, data_per_chan $data; window: features $feat, bus $bus, size $wsize, stride $wstride, payload $win_data"
[ "$feat" = 1 ] || vm_fail "host_features $feat: the guest did not attach with a host window"
[ "$bus" = "$(($(vm_marker_value "VMTEST-HOSTWIN-BUS ")))" ] ||
    vm_fail "published win_bus_addr $bus is not the module's window $(vm_marker_value "VMTEST-HOSTWIN-BUS ")"
[ "$wsize" -le $WIN_SIZE ] || vm_fail "window size $wsize beyond the module's $WIN_SIZE"
[ "$win_data" -gt 0 ] && [ "$win_data" -lt "$data" ] ||
    vm_fail "win_data_per_chan $win_data: expected payload areas shrunk below $data"
# nonzero FILE OFFSET LEN: bytes that are not zero in the range.
nonzero() { dd if="$1" bs=4096 skip=$(($2 / 4096)) count=$(($3 / 4096)) status=none | tr -d '\0' | wc -c; }
bar_bytes=0
win_bytes=0
for c in $(seq 0 $((nch - 1))); do
    b=$(nonzero "$DB_SHM" $((chan_base + c * chan_stride + hp_off + pay_off)) "$data")
    w=$(nonzero "$VM_RAM" $((bus + c * wstride + pay_off)) "$win_data")
    vm_log "channel $c: $b non-zero payload bytes in the BAR copy, $w in the window"
    bar_bytes=$((bar_bytes + b))
    win_bytes=$((win_bytes + w))
done
[ "$bar_bytes" = 0 ] || vm_fail "$bar_bytes payload bytes in the BAR's payload areas: BAR-only traffic"
# The guest's last I/O read the pattern back: at least one max_xfer of it.
[ "$win_bytes" -gt $((256 * 1024)) ] ||
    vm_fail "only $win_bytes non-zero payload bytes in the window after an 8 MiB pattern read"
# The first page of channel 0's payload area is one of the pattern's pages.
dd if="$disk" bs=4096 skip=$((4 * M / 4096)) count=$((8 * M / 4096)) status=none |
    split -b 4096 -a 4 - "$VM_WORK/blk." || vm_fail "cannot split the backing file's pattern range"
md5sum "$VM_WORK"/blk.* | cut -c1-32 >"$VM_WORK/pages.md5"
rm -f "$VM_WORK"/blk.*
w0=$(dd if="$VM_RAM" bs=4096 skip=$(((bus + pay_off) / 4096)) count=1 status=none | md5sum | cut -c1-32)
grep -qx "$w0" "$VM_WORK/pages.md5" ||
    vm_fail "the window's first payload page (guest RAM at bus $bus + $pay_off) is no page of the guest's pattern"
vm_log "the window's payload pages hold the guest's data; the BAR's payload areas are untouched"
grep -q "attached (host window, payload areas shrunk to $win_data bytes)" "$EP_LOG" ||
    vm_fail "the EP log does not say it attached the host window with $win_data-byte payload areas"
vm_ctl_send host-checked=ok

# ---- the EP dies and comes back: the client (-p) attaches a new host
# generation, the module's window zeroed and published again --------------
vm_wait VMTEST-HOSTWIN-KILL-EP 120
ep_kill KILL
sleep 2
ep_start -d -C "$VM_WORK/ep.conf"
vm_ctl_send ep-restarted

vm_finish
n=$(grep -c "attached (host window, payload areas shrunk to $win_data bytes)" "$EP_LOG")
[ "$n" = 2 ] || vm_fail "the EP log shows $n host-window attaches, expected 2 (before and after its restart)"
e2fsck -fn "$disk" >"$VM_WORK/fsck.out" 2>&1 || { cat "$VM_WORK/fsck.out"; vm_fail "e2fsck -fn on the EP backing file not clean"; }
debugfs -R "dump /pattern $VM_WORK/pattern" "$disk" >/dev/null 2>&1 || vm_fail "debugfs cannot read /pattern from the backing file"
"$VM_TOOL" pattern verify "$VM_WORK/pattern" 0 $((16 * M)) "$seed" >/dev/null ||
    vm_fail "/pattern in the EP backing file does not hold seed $seed"
vm_log "PASS: host-window mode end to end; backing file is a clean ext4 with the guest's files"

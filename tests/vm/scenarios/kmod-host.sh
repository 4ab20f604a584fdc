#!/usr/bin/env bash
# vm-kmod-host: the host kernel module kmod/nbd-pcie-host in the guest, bound
# to an ivshmem-doorbell device (MSI-X). The host side plays the endpoint:
# it checks what the guest wrote through the module's BAR mapping in the
# shared-memory file, checks what the guest wrote into the module's DMA
# window at the published bus address in the guest-RAM file and writes there
# itself (an emulated eDMA write), and rings the MSI-X vectors one at a time
# through its own ivshmem server (tests/kmod/ivshmem-doorbell.c).
# Guest side: guest/kmod-host.sh.
#
# Besides tests/vm/lib.sh's environment: KMOD_TOOL, KMOD_DOORBELL (set by
# tests/kmod/CMakeLists.txt; default: the build dir next to VM_LOG_DIR). The
# module is built against /usr/src/linux-headers-<the guest kernel's release>.
. "$(dirname "$0")/../lib.sh"
vm_init kmod-host

src=$(cd "$(dirname "$0")/../../.." && pwd)
build=$(cd "$VM_LOG_DIR/../../.." && pwd)
KMOD_TOOL=${KMOD_TOOL:-$build/tests/kmod/nbdpcie-kmodtool}
KMOD_DOORBELL=${KMOD_DOORBELL:-$build/tests/kmod/nbdpcie-ivshmem-doorbell}
# The doorbell device's shared memory (its BAR2): small, a power of two.
DB_SIZE=1048576
# The module's host window: 1 MiB, well within one coherent allocation.
WIN_SIZE=1048576

for f in "$KMOD_TOOL" "$KMOD_DOORBELL"; do
    [ -x "$f" ] || vm_fail "$f not built (cmake --build the build dir first)"
done

# The guest gets the module and the tool on top of the harness's initramfs.
vm_kmod_overlay "$KMOD_TOOL" usr/bin/nbdpcie-kmodtool

host_token=host-$$-$RANDOM
guest_token=guest-$$-$RANDOM
vm_prepare_shm
vm_doorbell_shm "$DB_SIZE"
shm_write "$DB_SHM" 0 "$host_token"
vm_doorbell_start 2

# The guest: no ivshmem-plain link device, the doorbell device at 00:03.0.
VM_WITH_LINK=0
VM_QEMU_EXTRA=(-chardev "socket,path=$DB_SOCK,id=db"
               -device "ivshmem-doorbell,chardev=db,vectors=2,addr=0x3")
vm_start vm_db_size=$DB_SIZE vm_win_size=$WIN_SIZE vm_host_token=$host_token vm_guest_token=$guest_token

vm_wait VMTEST-BOOTED 120
grep -q CONNECTED "$VM_WORK/db.out" || vm_fail "QEMU did not complete the ivshmem handshake: $(cat "$VM_WORK/db.out")"
vm_wait VMTEST-KMOD-WRITTEN 120
bus=$(vm_marker_value "VMTEST-KMOD-WIN-BUS ")
[ -n "$bus" ] || vm_fail "the guest published no window bus address"
vm_log "guest window at bus address $bus"

# The guest's BAR store through the module's mapping is in the device memory.
seen=$(shm_read "$DB_SHM" 8192 64)
[ "$seen" = "$guest_token" ] || vm_fail "$DB_SHM offset 8192 holds '$seen', the guest wrote '$guest_token' through /dev/nbd-pcie-host0"
# The window is guest RAM at the published bus address: what the EP's DMA
# engine would target (offset in the RAM file = guest-physical address).
seen=$(shm_read "$VM_RAM" $((bus + 256)) 64)
[ "$seen" = "$guest_token" ] || vm_fail "guest RAM at bus $bus + 256 holds '$seen', the guest wrote '$guest_token' into its window"
shm_write "$VM_RAM" $((bus + 512)) "$host_token"
vm_log "BAR and window contents verified; host token written at bus $bus + 512"
vm_ctl_send host-checked=ok

# One vector at a time, each only after the guest sleeps in poll(): every
# ring must reach poll()/read() as exactly one interrupt (no coalescing).
for k in $(seq 10); do
    vm_wait "VMTOOL-IRQ-WAIT $k" 60
    echo "ring $(((k - 1) % 2))" >&7
    vm_wait "VMTOOL-IRQ-GOT $k " 60
done
vm_log "10 interrupts delivered one by one"
# A file that counts vector 1 only: vector 0's ring must not wake it.
vm_wait VMTOOL-IRQ-ONLY-READY 60
echo "ring 0" >&7
echo "ring 1" >&7
vm_wait VMTOOL-IRQ-ONLY-OK 60
vm_log "per-file vector mask honoured"
vm_finish

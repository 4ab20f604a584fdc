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
DB_SHM=/dev/shm/$VM_ID-db
DB_SOCK=$VM_WORK/db.sock
DB_PID=

kmod_cleanup() {
    local rc=$?
    { exec 7>&-; } 2>/dev/null
    [ -n "$DB_PID" ] && vm_kill_pid "$DB_PID" ivshmem-doorbell
    rm -f "$DB_SHM"
    (exit $rc)
    vm_cleanup
}
trap kmod_cleanup EXIT

for f in "$KMOD_TOOL" "$KMOD_DOORBELL"; do
    [ -x "$f" ] || vm_fail "$f not built (cmake --build the build dir first)"
done

vm_log "building the module into $VM_WORK/modules"
# Against the headers of the guest's kernel: vermagic must match it.
kdir=/usr/src/linux-headers-${VM_KERNEL#/boot/vmlinuz-}
sh "$src/tests/kmod/build-modules.sh" "$src" "$VM_WORK/modules" "$kdir" >"$VM_WORK/build.log" 2>&1 ||
    { cat "$VM_WORK/build.log"; vm_fail "module build failed"; }
ko=$VM_WORK/modules/tree/kmod/nbd-pcie-host.ko

# The guest gets the module and the tool as a second cpio archive appended
# to the harness's initramfs (the kernel unpacks concatenated archives).
ov=$VM_WORK/overlay
mkdir -p "$ov/lib/modules/extra" "$ov/usr/bin"
cp "$ko" "$ov/lib/modules/extra/"
cp "$KMOD_TOOL" "$ov/usr/bin/nbdpcie-kmodtool"
(cd "$ov" && find . | cpio -o -H newc --quiet | gzip -1) >"$VM_WORK/overlay.cpio.gz" ||
    vm_fail "cannot pack the overlay initramfs"
cat "$VM_INITRAMFS" "$VM_WORK/overlay.cpio.gz" >"$VM_WORK/initramfs.cpio.gz"
VM_INITRAMFS=$VM_WORK/initramfs.cpio.gz

host_token=host-$$-$RANDOM
guest_token=guest-$$-$RANDOM
vm_prepare_shm
rm -f "$DB_SHM"
truncate -s "$DB_SIZE" "$DB_SHM" || vm_fail "cannot create $DB_SHM"
shm_write "$DB_SHM" 0 "$host_token"

mkfifo "$VM_WORK/db.in"
"$KMOD_DOORBELL" "$DB_SOCK" "$DB_SHM" 2 <"$VM_WORK/db.in" >"$VM_WORK/db.out" 2>&1 &
DB_PID=$!
exec 7>"$VM_WORK/db.in"
for i in $(seq 100); do
    grep -q LISTENING "$VM_WORK/db.out" && break
    kill -0 "$DB_PID" 2>/dev/null || vm_fail "ivshmem-doorbell exited: $(cat "$VM_WORK/db.out")"
    sleep 0.1
done
grep -q LISTENING "$VM_WORK/db.out" || vm_fail "ivshmem-doorbell not listening after 10 s"

# vm_start of lib.sh with the doorbell device instead of the link device.
append="console=ttyS0 panic=-1 quiet vm_test=kmod-host vm_bar_size=$VM_BAR_SIZE vm_db_size=$DB_SIZE"
append="$append vm_win_size=$WIN_SIZE vm_host_token=$host_token vm_guest_token=$guest_token"
rm -f "$VM_RAM"
vm_log "booting guest: $append"
timeout --kill-after=5 $((VM_TIMEOUT + 20)) \
qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m "$VM_MEM" \
    -display none -monitor none -nodefaults -no-reboot -nic none \
    -serial "file:$VM_SERIAL" \
    -object "memory-backend-file,id=ram,size=$VM_MEM,mem-path=$VM_RAM,share=on" \
    -machine pc,memory-backend=ram \
    -chardev "socket,path=$DB_SOCK,id=db" \
    -device ivshmem-doorbell,chardev=db,vectors=2,addr=0x3 \
    -object "memory-backend-file,id=ctlbar,size=$VM_CTL_SIZE,mem-path=$VM_CTL,share=on" \
    -device ivshmem-plain,memdev=ctlbar,addr=0x10 \
    -kernel "$VM_KERNEL" -initrd "$VM_INITRAMFS" -append "$append" \
    </dev/null >"$VM_WORK/qemu.out" 2>&1 &
VM_PID=$!
VM_DEADLINE=$(($(date +%s) + VM_TIMEOUT))

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

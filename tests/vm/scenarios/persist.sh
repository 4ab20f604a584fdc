#!/usr/bin/env bash
# vm-persist (issue 6, scenario 6): the EP server is SIGKILLed during a guest
# write loop (O_DIRECT|O_DSYNC, 64 KiB blocks). With -p it is restarted and the
# guest's loop completes without error, all 384 blocks verifying in the guest and
# in the backing file. Without -p the device disconnects cleanly, the client
# exits non-zero with a message, and every block acknowledged before the kill
# is in the backing file. Guest side: guest/persist.sh.
. "$(dirname "$0")/../lib.sh"
vm_init persist
ep_require

BS=65536 N=384
seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
disk=$VM_WORK/disk.img
truncate -s $((2 * BS * N)) "$disk"

vm_prepare_shm
ep_config "$VM_WORK/ep.conf"
ep_export "$VM_WORK/ep.conf" disk "exportname = $disk"
ep_start -d -C "$VM_WORK/ep.conf"
vm_start vm_seed=$seed

# Part 1: kill after 64 acknowledged writes, restart 2 s later.
vm_wait VMTEST-LOOP-1 180
vm_wait_count '^VMTOOL-ACK 64 ' 1 120
ep_kill KILL
sleep 2
ep_start -d -C "$VM_WORK/ep.conf"
vm_ctl_send ep-restarted
vm_wait VMTEST-PART1-DONE 180
host_verify "$disk" 0 $((BS * N)) "$seed"
vm_log "part 1 (-p): all $N blocks in the backing file"

# Part 2: kill after 64 acknowledged writes, stay down until the guest saw it.
vm_ctl_send part2-ready
vm_wait VMTEST-LOOP-2 120
vm_wait_count '^VMTOOL-ACK 64 ' 2 120
ep_kill KILL
vm_wait VMTEST-PART2-DEAD 180
acked=$(vm_marker_value 'VMTEST-PART2-DEAD acked=')
[ -n "$acked" ] && [ "$acked" -ge 64 ] || vm_fail "guest reports $acked acknowledged blocks, at least 64 were acknowledged before the kill"
host_verify "$disk" 0 $((acked * BS)) $((seed + 1))
vm_log "part 2 (no -p): the $acked acknowledged blocks are in the backing file"
ep_start -d -C "$VM_WORK/ep.conf"
vm_ctl_send ep-back
vm_finish
vm_log "PASS"

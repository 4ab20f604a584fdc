#!/usr/bin/env bash
# vm-multiconn (issue 6, scenario 5): the guest attaches with -C 2 (two
# channels, two kernel sockets), runs four writers and then four readers in
# parallel on disjoint ranges; the host checks that two channels negotiated the
# export (EP log) and that the backing file holds all four patterns.
# Guest side: guest/multiconn.sh.
. "$(dirname "$0")/../lib.sh"
vm_init multiconn
ep_require

M=1048576
seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
disk=$VM_WORK/disk.img
truncate -s $((64 * M)) "$disk"

vm_prepare_shm
ep_config "$VM_WORK/ep.conf"
ep_export "$VM_WORK/ep.conf" disk "exportname = $disk"
ep_start -d -C "$VM_WORK/ep.conf"
vm_start vm_seed=$seed
vm_wait VMTEST-WRITTEN 180
# Two channels of the link negotiated the export (the EP logs one line per
# channel: "... ch N #K: export disk: size ...").
chans=$(grep -oE 'ch [0-9]+ #[0-9]+: export disk:' "$EP_LOG" | awk '{print $2}' | sort -u | wc -l)
[ "$chans" -ge 2 ] || vm_fail "the EP log shows $chans channel(s) negotiating export disk, -C 2 needs 2"
vm_log "EP: $chans channels negotiated export disk"
for i in 0 1 2 3; do
    host_verify "$disk" $((i * 16 * M)) $((16 * M)) $((seed + i))
done
vm_ctl_send backing-ok
vm_finish
vm_log "PASS"

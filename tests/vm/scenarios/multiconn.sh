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
seed=$(vm_random_seed)
disk=$VM_WORK/disk.img
truncate -s $((64 * M)) "$disk"

ep_serve_disk "$disk"
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

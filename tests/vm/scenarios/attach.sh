#!/usr/bin/env bash
# vm-attach (issue 6, scenario 1): the EP serves a 64 MiB file over the link;
# the guest attaches /dev/nbd0 with nbd-pcie-client, writes a seeded random
# pattern with O_DIRECT and reads it back; the host checks its backing file
# holds exactly that, writes a pattern of its own that the guest must read;
# -c before and after, detach. Guest side: guest/attach.sh.
. "$(dirname "$0")/../lib.sh"
vm_init attach
ep_require

M=1048576
size=$((64 * M))
seed=$(vm_random_seed)
host_seed=$((seed + 1))
disk=$VM_WORK/disk.img
truncate -s $size "$disk"

ep_serve_disk "$disk"
vm_start vm_size=$size vm_seed=$seed vm_host_seed=$host_seed

vm_wait VMTEST-WRITTEN 180
host_verify "$disk" $((4 * M)) $((8 * M)) "$seed"
"$VM_TOOL" pattern verify "$disk" 0 $((4 * M)) zero >/dev/null || vm_fail "backing file changed before offset 4 MiB"
"$VM_TOOL" pattern verify "$disk" $((12 * M)) $((52 * M)) zero >/dev/null || vm_fail "backing file changed after offset 12 MiB"
vm_log "backing file holds the guest's pattern, and only it"
"$VM_TOOL" pattern write "$disk" $((32 * M)) $((2 * M)) "$host_seed" sync >/dev/null || vm_fail "host pattern write"
vm_ctl_send backing-ok
vm_finish
host_verify "$disk" $((size - 4096)) 4096 "$seed"
[ "$(stat -c %s "$disk")" = $size ] || vm_fail "backing file size changed to $(stat -c %s "$disk")"
vm_log "PASS"

#!/usr/bin/env bash
# vm-fs (issue 6, scenario 2): ext4 on /dev/nbd0 over the link: mkfs.ext4,
# mount, copy files, umount, drop caches, mount, verify checksums, fsck clean
# in the guest; then the host checks the EP's backing file is a clean ext4
# filesystem holding the guest's pattern file. Guest side: guest/fs.sh.
. "$(dirname "$0")/../lib.sh"
vm_init fs
ep_require

size=$((128 * 1048576))
seed=$(vm_random_seed)
disk=$VM_WORK/disk.img
truncate -s $size "$disk"

ep_serve_disk "$disk"
vm_start vm_seed=$seed
vm_finish

# The filesystem the guest built is on the EP's side, whole and clean.
e2fsck -fn "$disk" >"$VM_WORK/fsck.out" 2>&1 || { cat "$VM_WORK/fsck.out"; vm_fail "e2fsck -fn on the EP backing file not clean"; }
debugfs -R "dump /pattern $VM_WORK/pattern" "$disk" >/dev/null 2>&1 || vm_fail "debugfs cannot read /pattern from the backing file"
"$VM_TOOL" pattern verify "$VM_WORK/pattern" 0 $((24 * 1048576)) "$seed" >/dev/null ||
    vm_fail "/pattern in the EP backing file does not hold seed $seed"
vm_log "PASS: backing file is a clean ext4 with the guest's files"

#!/usr/bin/env bash
# vm-readonly (issue 6, scenario 3): the EP exports an ext4 image read-only;
# in the guest /dev/nbd0 is read-only, O_DIRECT writes fail, mount -o ro shows
# the host's files; a writable export attached with the client's -R is
# read-only too; both backing files are byte-for-byte unchanged afterwards.
# Guest side: guest/readonly.sh.
. "$(dirname "$0")/../lib.sh"
vm_init readonly
ep_require

seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
token=ro-$$-$RANDOM
disk=$VM_WORK/disk.img
mkdir "$VM_WORK/tree"
"$VM_TOOL" pattern write "$VM_WORK/tree/pattern" 0 4M "$seed" >/dev/null || vm_fail "host pattern write"
echo "$token" >"$VM_WORK/tree/hello"
mkfs.ext4 -q -F -d "$VM_WORK/tree" "$disk" 64M || vm_fail "mkfs.ext4 -d on the host"
before=$(md5sum <"$disk")
# A writable export, attached with -R by the guest.
rw=$VM_WORK/rw.img
truncate -s 16M "$rw"
"$VM_TOOL" pattern write "$rw" 0 1M "$seed" >/dev/null || vm_fail "host pattern write"
rw_before=$(md5sum <"$rw")

vm_prepare_shm
ep_config "$VM_WORK/ep.conf"
ep_export "$VM_WORK/ep.conf" disk "exportname = $disk" "readonly = true"
ep_export "$VM_WORK/ep.conf" rw "exportname = $rw"
ep_start -d -C "$VM_WORK/ep.conf"
vm_start vm_seed=$seed vm_token=$token
vm_finish
[ "$(md5sum <"$disk")" = "$before" ] || vm_fail "the read-only export's backing file changed"
[ "$(md5sum <"$rw")" = "$rw_before" ] || vm_fail "the export attached with -R changed"
vm_log "PASS: backing files unchanged"

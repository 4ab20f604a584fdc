#!/usr/bin/env bash
# vm-stock-tools (issue 6, scenario 7): in the guest, nbd-pcie-client serves
# the link on a local unix socket; Debian's nbd-client lists the exports
# through it (-l -u) and attaches /dev/nbd0 through it (-u); data written in
# the guest is checked in the EP's backing file. Guest side:
# guest/stock-tools.sh.
. "$(dirname "$0")/../lib.sh"
vm_init stock-tools
ep_require

M=1048576
size=$((32 * M))
seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
host_seed=$((seed + 1))
disk=$VM_WORK/disk.img
truncate -s $size "$disk"
"$VM_TOOL" pattern write "$disk" 0 $((4 * M)) $host_seed >/dev/null || vm_fail "prefill"

vm_prepare_shm
ep_config "$VM_WORK/ep.conf" "allowlist = true"
ep_export "$VM_WORK/ep.conf" disk "exportname = $disk"
ep_start -d -C "$VM_WORK/ep.conf"
vm_start vm_size=$size vm_seed=$seed vm_host_seed=$host_seed
vm_finish
host_verify "$disk" $((4 * M)) $((8 * M)) "$seed"
host_verify "$disk" 0 $((4 * M)) "$host_seed"
vm_log "PASS"

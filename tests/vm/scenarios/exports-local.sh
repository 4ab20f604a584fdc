#!/usr/bin/env bash
# vm-exports-local (issue 6, scenario 4 through one relay): one EP, one link,
# two exports (alpha 32 MiB, beta 48 MiB, each pre-filled with its own
# pattern); in the guest ONE nbd-pcie-client serves the link on a local unix
# socket and Debian's nbd-client lists the exports and attaches both at once
# on /dev/nbd0 and /dev/nbd1; parallel writes to both; the host checks each
# backing file got exactly its own writes. (vm-exports: one nbd-pcie-client
# per device.) Guest side: guest/exports-local.sh.
. "$(dirname "$0")/../lib.sh"
vm_init exports-local
ep_require

M=1048576
s=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
sa=$s sb=$((s + 1)) sc=$((s + 2)) sd=$((s + 3))
a=$VM_WORK/alpha.img b=$VM_WORK/beta.img
truncate -s $((32 * M)) "$a"
"$VM_TOOL" pattern write "$a" 0 $((32 * M)) $sa >/dev/null || vm_fail "prefill alpha"
truncate -s $((48 * M)) "$b"
"$VM_TOOL" pattern write "$b" 0 $((48 * M)) $sb >/dev/null || vm_fail "prefill beta"

vm_prepare_shm
ep_config "$VM_WORK/ep.conf" "allowlist = true"
ep_export "$VM_WORK/ep.conf" alpha "exportname = $a"
ep_export "$VM_WORK/ep.conf" beta "exportname = $b"
ep_start -d -C "$VM_WORK/ep.conf"
vm_start vm_seed_a=$sa vm_seed_b=$sb vm_seed_c=$sc vm_seed_d=$sd
vm_finish

host_verify "$a" 0 $((8 * M)) $sa
host_verify "$a" $((8 * M)) $((8 * M)) $sc
host_verify "$a" $((16 * M)) $((16 * M)) $sa
host_verify "$b" 0 $((16 * M)) $sb
host_verify "$b" $((16 * M)) $((8 * M)) $sd
host_verify "$b" $((24 * M)) $((24 * M)) $sb
vm_log "PASS: each backing file holds exactly its own export's writes"

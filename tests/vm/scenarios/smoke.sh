#!/usr/bin/env bash
# vm-smoke: boots the guest, checks the nbd module and its netlink family,
# exchanges tokens with the guest through the link's ivshmem BAR2 (the guest
# uses libpciaccess, as nbd-pcie-client does) and runs the project's binaries
# in the guest. Guest side: guest/smoke.sh.
. "$(dirname "$0")/../lib.sh"
vm_init smoke

host_token=host-$$-$RANDOM
guest_token=guest-$$-$RANDOM
vm_prepare_shm
shm_write "$VM_BAR" 0 "$host_token"
vm_start vm_host_token="$host_token" vm_guest_token="$guest_token"
vm_wait VMTEST-BOOTED 120
vm_wait VMTEST-BAR-WRITTEN 120
seen=$(shm_read "$VM_BAR" 4096 64)
[ "$seen" = "$guest_token" ] || vm_fail "BAR file offset 4096 holds '$seen', the guest wrote '$guest_token'"
vm_log "guest token seen in $VM_BAR at offset 4096"
vm_ctl_send "bar-seen=$seen"
vm_finish

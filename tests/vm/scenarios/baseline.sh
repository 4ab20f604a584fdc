#!/usr/bin/env bash
# vm-baseline: the kernel nbd driver and the guest's tools (nbdpcie-vmtool,
# mkfs.ext4, e2fsck, Debian's nbd-client) with Debian's nbd-server inside the
# guest, no nbd-pcie binary involved. It proves the harness and the guest
# environment the nbd-pcie scenarios rely on. Guest side: guest/baseline.sh.
. "$(dirname "$0")/../lib.sh"
vm_init baseline
seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
vm_start vm_seed=$seed
vm_finish

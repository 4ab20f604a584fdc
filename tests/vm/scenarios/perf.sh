#!/usr/bin/env bash
# vm-perf (issue 6, scenario 8): a benchmark, not a pass/fail threshold.
# In one guest boot, dd with O_DIRECT over /dev/nbd0 through the link and over
# /dev/nbd1 through kernel nbd + TCP to Debian's nbd-server in the guest; data
# is verified after each run. The figures are TCG figures: compare the two
# lines, not absolute values. They are printed and kept in
# $VM_LOG_DIR/perf.txt for docs/performance.md. Guest side: guest/perf.sh.
. "$(dirname "$0")/../lib.sh"
vm_init perf
ep_require

M=1048576
seed=$(vm_random_seed)
disk=$VM_WORK/disk.img
truncate -s $((64 * M)) "$disk"

ep_serve_disk "$disk"
vm_start vm_seed=$seed
vm_finish
host_verify "$disk" 0 $((32 * M)) "$seed"
{
    echo "# $(date -u +%F) QEMU TCG guest, 2 vCPU, dd O_DIRECT, 32 MiB sequential, 1024 reads of 4 KiB"
    grep -aoE 'VMTEST-PERF .*' "$VM_SERIAL" | tr -d '\r' | sed 's/^VMTEST-PERF //'
} | tee "$VM_LOG_DIR/perf.txt"
vm_log "PASS"

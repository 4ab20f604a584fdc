# Scenario 1 (guest side): attach /dev/nbd0 over the link, O_DIRECT pattern
# write + read-back, data cross-checked with the EP's backing file in both
# directions, -c before/after, detach. Host side: scenarios/attach.sh.
. /tests/lib.sh
M=1048576

step check-before
# -c: exit 1 means "not connected" (2 would be an error).
expect_exit 1 nbd-pcie-client -c /dev/nbd0

attach /dev/nbd0 disk
[ "$(dev_bytes /dev/nbd0)" = "$vm_size" ] || fail "/dev/nbd0 is $(dev_bytes /dev/nbd0) bytes, export is $vm_size"
out=$(nbd-pcie-client -c /dev/nbd0) || fail "nbd-pcie-client -c /dev/nbd0 says not connected after attach"
echo "-c: $out"
# -c prints the PID of the process serving the device, like nbd-client.
[ -n "$out" ] && [ -d "/proc/$out" ] || fail "-c printed '$out', not the PID of a running process"

step never-written-reads-zero
pattern verify /dev/nbd0 0 4M zero direct

step write
pattern write /dev/nbd0 $((4 * M)) $((8 * M)) "$vm_seed" direct sync
pattern verify /dev/nbd0 $((4 * M)) $((8 * M)) "$vm_seed" direct
# The neighbours of the written range are untouched.
pattern verify /dev/nbd0 0 $((4 * M)) zero direct
pattern verify /dev/nbd0 $((12 * M)) $M zero direct
echo "VMTEST-WRITTEN"

step host-write
# The host checked its backing file and wrote its own pattern at 32 MiB.
ctl_wait backing-ok 120
pattern verify /dev/nbd0 $((32 * M)) $((2 * M)) "$vm_host_seed" direct
# The last block of the export (the end of the device).
pattern write /dev/nbd0 $((vm_size - 4096)) 4096 "$vm_seed" direct sync
pattern verify /dev/nbd0 $((vm_size - 4096)) 4096 "$vm_seed" direct
expect_fail nbdpcie-vmtool pattern write /dev/nbd0 "$vm_size" 4096 "$vm_seed" direct

detach /dev/nbd0
step check-after
expect_exit 1 nbd-pcie-client -c /dev/nbd0
i=0
while pidof nbd-pcie-client >/dev/null; do
    i=$((i + 1))
    [ $i -gt 100 ] && fail "nbd-pcie-client still running 10 s after detach: $(pidof nbd-pcie-client)"
    sleep 0.1
done

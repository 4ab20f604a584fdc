# Scenario 6 (guest side): the EP server is SIGKILLed during a write loop.
# Part 1, with -p: the loop completes without error once the EP is back and
# every block verifies. Part 2, without -p: the device disconnects cleanly, the
# client exits non-zero with a message, and every acknowledged block verifies
# after a new attach. Host side: scenarios/persist.sh.
. /tests/lib.sh
BS=65536
# Blocks per loop: 24 MiB. The host kills the EP after 64 writes (4 MiB).
# The loop also runs for at least LOOP_S seconds (rewriting the same bytes),
# so it is still running when the kill comes however fast the machine is;
# the host reacts within about 0.2 s (its poll of the serial log).
N=384
LOOP_S=10

attach /dev/nbd0 disk -p
step persist-loop
echo "VMTEST-LOOP-1"
nbdpcie-vmtool writeloop /dev/nbd0 $BS $N "$vm_seed" $LOOP_S || fail "with -p the write loop saw an error across the EP restart"
ctl_wait ep-restarted 10
echo "--- kernel nbd messages during the EP restart:"
dmesg | grep -E 'nbd' | tail -n 8
pattern verify /dev/nbd0 0 $((BS * N)) "$vm_seed" direct
out=$(nbd-pcie-client -c /dev/nbd0) || fail "-c says /dev/nbd0 is not connected after the EP restart"
detach /dev/nbd0
echo "VMTEST-PART1-DONE"

step no-persist
ctl_wait part2-ready 60
nbd-pcie-client -pcie "$LINK" -N disk -n /dev/nbd1 2>/tmp/client.err &
client=$!
wait_value_nonzero /sys/block/nbd1/size 30 || fail "/dev/nbd1 not attached 30 s after nbd-pcie-client -n"
echo "VMTEST-LOOP-2"
# Its ACK lines go to the console too: the host kills the EP on one of them.
{ nbdpcie-vmtool writeloop /dev/nbd1 $BS $N $((vm_seed + 1)) $((LOOP_S * 6)); echo $? >/tmp/loop.rc; } 2>&1 | tee /tmp/loop.out
loop_rc=$(cat /tmp/loop.rc)
[ $loop_rc -ne 0 ] || fail "without -p the write loop finished although the EP was killed"
acked=$(sed -n 's/^VMTOOL-ACKED \([0-9]*\) .*/\1/p' /tmp/loop.out)
[ -n "$acked" ] || fail "the write loop did not report its acknowledged blocks"
wait $client
client_rc=$?
echo "nbd-pcie-client exit $client_rc, stderr:"
cat /tmp/client.err
[ $client_rc -ne 0 ] || fail "without -p nbd-pcie-client exited 0 after losing the EP"
# The message names the device and says the link or the EP is gone.
grep -qE '/dev/nbd1: .*(link|EP)' /tmp/client.err || fail "without -p nbd-pcie-client's message names neither /dev/nbd1 nor the lost link"
wait_value /sys/block/nbd1/size 0 30 || fail "/dev/nbd1 still has a size after the client exited"
expect_exit 1 nbd-pcie-client -c /dev/nbd1

step acked-data-verifies
echo "VMTEST-PART2-DEAD acked=$acked"
ctl_wait ep-back 60
attach /dev/nbd1 disk
pattern verify /dev/nbd1 0 $((acked * BS)) $((vm_seed + 1)) direct
detach /dev/nbd1

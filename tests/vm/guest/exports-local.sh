# Scenario 4, one relay (guest side): two exports over one link through ONE
# nbd-pcie-client process in local socket mode; Debian's nbd-client attaches
# /dev/nbd0 and /dev/nbd1 through it. (guest/exports.sh does the same with one
# nbd-pcie-client per device.) Host side: scenarios/exports-local.sh.
. /tests/lib.sh
M=1048576
SOCK=/run/nbdpcie.sock

step relay
nbd-pcie-client -pcie "$LINK" -unix "$SOCK" -n 2>/tmp/relay.err &
relay=$!
i=0
while [ ! -S "$SOCK" ]; do
    i=$((i + 1))
    kill -0 $relay 2>/dev/null || { cat /tmp/relay.err; fail "nbd-pcie-client -unix $SOCK exited"; }
    [ $i -gt 300 ] && fail "no socket $SOCK 30 s after nbd-pcie-client -unix"
    sleep 0.1
done

step list
list=$(nbd-client -l -u "$SOCK" 2>&1) || fail "nbd-client -l -u $SOCK failed: $list"
echo "$list"
echo "$list" | grep -qx alpha || fail "export list lacks 'alpha': $list"
echo "$list" | grep -qx beta || fail "export list lacks 'beta': $list"

step attach
run nbd-client -N alpha -u "$SOCK" /dev/nbd0
run nbd-client -N beta -u "$SOCK" /dev/nbd1
wait_value_nonzero /sys/block/nbd0/size 30 || fail "/dev/nbd0 not attached"
wait_value_nonzero /sys/block/nbd1/size 30 || fail "/dev/nbd1 not attached"
[ "$(dev_bytes /dev/nbd0)" = $((32 * M)) ] || fail "/dev/nbd0 (alpha) is $(dev_bytes /dev/nbd0) bytes, expected 32 MiB"
[ "$(dev_bytes /dev/nbd1)" = $((48 * M)) ] || fail "/dev/nbd1 (beta) is $(dev_bytes /dev/nbd1) bytes, expected 48 MiB"

step read-host-data
pattern verify /dev/nbd0 0 $((32 * M)) "$vm_seed_a" direct
pattern verify /dev/nbd1 0 $((48 * M)) "$vm_seed_b" direct

step write-both
nbdpcie-vmtool pattern write /dev/nbd0 $((8 * M)) $((8 * M)) "$vm_seed_c" direct sync &
p0=$!
nbdpcie-vmtool pattern write /dev/nbd1 $((16 * M)) $((8 * M)) "$vm_seed_d" direct sync &
p1=$!
wait $p0 || fail "write to /dev/nbd0 failed"
wait $p1 || fail "write to /dev/nbd1 failed"
pattern verify /dev/nbd0 $((8 * M)) $((8 * M)) "$vm_seed_c" direct
pattern verify /dev/nbd1 $((16 * M)) $((8 * M)) "$vm_seed_d" direct
pattern verify /dev/nbd0 0 $((8 * M)) "$vm_seed_a" direct
pattern verify /dev/nbd1 0 $((16 * M)) "$vm_seed_b" direct
run nbd-client -d /dev/nbd0
wait_value /sys/block/nbd0/size 0 30 || fail "/dev/nbd0 size not 0 after nbd-client -d"
# The other export keeps working after one is detached.
pattern verify /dev/nbd1 $((24 * M)) $((24 * M)) "$vm_seed_b" direct
run nbd-client -d /dev/nbd1
wait_value /sys/block/nbd1/size 0 30 || fail "/dev/nbd1 size not 0 after nbd-client -d"

step relay-stop
kill -TERM $relay
wait $relay
echo "relay exit $?"

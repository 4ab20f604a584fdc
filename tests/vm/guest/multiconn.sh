# Scenario 5 (guest side): -C 2: two channels, two kernel sockets, data
# verified under parallel load. Host side: scenarios/multiconn.sh.
. /tests/lib.sh
M=1048576

before=$(unix_sockets)
attach /dev/nbd0 disk -C 2
after=$(unix_sockets)
# Each connection is a socketpair: one end held by the kernel's nbd, one by
# the relay. One connection would add 2.
echo "AF_UNIX sockets: $before before attach, $after after"
[ $((after - before)) -ge 4 ] || fail "-C 2 added $((after - before)) unix sockets, two connections need at least 4"
out=$(nbd-pcie-client -c /dev/nbd0) || fail "-c says /dev/nbd0 is not connected"

step parallel-write
# Four writers on disjoint 16 MiB ranges, then four readers, all at once.
pids=
for i in 0 1 2 3; do
    nbdpcie-vmtool pattern write /dev/nbd0 $((i * 16 * M)) $((16 * M)) $((vm_seed + i)) direct sync &
    pids="$pids $!"
done
for p in $pids; do wait "$p" || fail "a parallel writer failed"; done
echo "VMTEST-WRITTEN"

step parallel-read
pids=
for i in 0 1 2 3; do
    nbdpcie-vmtool pattern verify /dev/nbd0 $((i * 16 * M)) $((16 * M)) $((vm_seed + i)) direct &
    pids="$pids $!"
done
for p in $pids; do wait "$p" || fail "a parallel reader found wrong data"; done
ctl_wait backing-ok 120
detach /dev/nbd0

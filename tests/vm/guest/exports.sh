# Scenario 4 (guest side): two exports over one link on /dev/nbd0 and
# /dev/nbd1 at the same time, and the export list (-l). Host side:
# scenarios/exports.sh.
. /tests/lib.sh
M=1048576

step list
list=$(nbd-pcie-client -l -pcie "$LINK") || fail "nbd-pcie-client -l -pcie $LINK failed: $list"
echo "$list"
echo "$list" | grep -qx alpha || fail "export list lacks 'alpha': $list"
echo "$list" | grep -qx beta || fail "export list lacks 'beta': $list"

attach /dev/nbd0 alpha
attach /dev/nbd1 beta
[ "$(dev_bytes /dev/nbd0)" = $((32 * M)) ] || fail "/dev/nbd0 (alpha) is $(dev_bytes /dev/nbd0) bytes, expected 32 MiB"
[ "$(dev_bytes /dev/nbd1)" = $((48 * M)) ] || fail "/dev/nbd1 (beta) is $(dev_bytes /dev/nbd1) bytes, expected 48 MiB"

step read-host-data
pattern verify /dev/nbd0 0 $((32 * M)) "$vm_seed_a" direct
pattern verify /dev/nbd1 0 $((48 * M)) "$vm_seed_b" direct

step write-both
# Both devices busy at once; each write lands only on its own export.
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
detach /dev/nbd0
# The other export keeps working after one is detached.
pattern verify /dev/nbd1 $((24 * M)) $((24 * M)) "$vm_seed_b" direct
detach /dev/nbd1

# Scenario 4 (guest side): two exports over one link on /dev/nbd0 and
# /dev/nbd1 at the same time, and the export list (-l). Host side:
# scenarios/exports.sh.
. /tests/lib.sh

step list
list=$(nbd-pcie-client -l -pcie "$LINK") || fail "nbd-pcie-client -l -pcie $LINK failed: $list"
echo "$list"
echo "$list" | grep -qx alpha || fail "export list lacks 'alpha': $list"
echo "$list" | grep -qx beta || fail "export list lacks 'beta': $list"

attach /dev/nbd0 alpha
attach /dev/nbd1 beta
two_exports detach

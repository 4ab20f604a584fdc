# Scenario 7 (guest side): Debian's stock nbd-client against nbd-pcie-client's
# local unix socket mode: export list (-l -u) and a kernel attach (-u) with
# data verified. Host side: scenarios/stock-tools.sh.
. /tests/lib.sh
M=1048576
SOCK=/run/nbdpcie.sock

relay_start "$SOCK"
relay_lists "$SOCK" disk

step attach
run nbd-client -N disk -u "$SOCK" /dev/nbd0
wait_value_nonzero /sys/block/nbd0/size 30 || fail "/dev/nbd0 size still 0 after nbd-client -u"
[ "$(dev_bytes /dev/nbd0)" = "$vm_size" ] || fail "/dev/nbd0 is $(dev_bytes /dev/nbd0) bytes, export is $vm_size"
pattern verify /dev/nbd0 0 $((4 * M)) "$vm_host_seed" direct
pattern write /dev/nbd0 $((4 * M)) $((8 * M)) "$vm_seed" direct sync
pattern verify /dev/nbd0 $((4 * M)) $((8 * M)) "$vm_seed" direct
run nbd-client -c /dev/nbd0
run nbd-client -d /dev/nbd0
wait_value /sys/block/nbd0/size 0 30 || fail "/dev/nbd0 size not 0 after nbd-client -d"

step relay-stop
relay_stop

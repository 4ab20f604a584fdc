# Scenario 4, one relay (guest side): two exports over one link through ONE
# nbd-pcie-client process in local socket mode; Debian's nbd-client attaches
# /dev/nbd0 and /dev/nbd1 through it. (guest/exports.sh does the same with one
# nbd-pcie-client per device.) Host side: scenarios/exports-local.sh.
. /tests/lib.sh
SOCK=/run/nbdpcie.sock

relay_start "$SOCK"
relay_lists "$SOCK" alpha beta

# nbd_client_detach DEV: Debian's nbd-client -d; the size must drop to 0.
nbd_client_detach() {
    run nbd-client -d "$1"
    wait_value "/sys/block/${1#/dev/}/size" 0 30 || fail "$1 size not 0 after nbd-client -d"
}

step attach
run nbd-client -N alpha -u "$SOCK" /dev/nbd0
run nbd-client -N beta -u "$SOCK" /dev/nbd1
wait_value_nonzero /sys/block/nbd0/size 30 || fail "/dev/nbd0 not attached"
wait_value_nonzero /sys/block/nbd1/size 30 || fail "/dev/nbd1 not attached"
two_exports nbd_client_detach

step relay-stop
relay_stop

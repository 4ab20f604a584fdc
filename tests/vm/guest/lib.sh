# Sourced by every guest scenario script (/tests/NAME.sh). Prints the markers
# the host side waits for; a failed check ends the script with exit 1.
#   step NAME           announce a step (host may wait for "VMTEST-STEP NAME")
#   fail MESSAGE        print VMTEST-FAIL and exit 1
#   run CMD...          run a command, fail naming it if it exits non-zero
#   expect_fail CMD...  fail if the command succeeds
#   expect_exit N CMD.. fail unless the command exits with status N
#   ctl_wait KEY [SECS] wait for the host's KEY in the control mailbox; prints its value
#   bar_bdf / ctl_bdf   PCI addresses of the link's ivshmem and the control device
set -u

# The harness (tests/vm/lib.sh) places the link's ivshmem at slot 2 and the
# control mailbox at slot 16; both are 1af4:1110.
LINK_BDF=0000:00:02.0
CTL_BDF=0000:00:10.0

uptime_s() { cut -d' ' -f1 /proc/uptime; }
step() { echo "VMTEST-STEP $* uptime=$(uptime_s)s"; }
# fail MESSAGE: the marker, then the kernel's last messages (quiet hides them
# from the console) so that the host's failure context shows both.
fail() {
    echo "VMTEST-FAIL: $*"
    echo "--- guest dmesg, last 12 lines:"
    dmesg | tail -n 12
    exit 1
}
run() {
    "$@" || fail "command failed (exit $?): $*"
}
expect_fail() {
    if "$@"; then fail "command succeeded but should have failed: $*"; fi
}
# expect_exit CODE CMD...: the command must exit with exactly CODE.
expect_exit() {
    local want=$1 got
    shift
    "$@"
    got=$?
    [ "$got" = "$want" ] || fail "exit $got, expected $want: $*"
}
ctl_wait() {
    nbdpcie-vmtool ctl-wait "$CTL_BDF" "$1" "${2:-120}" || fail "no '$1' from the host"
}
# Waits until a sysfs/proc file holds the wanted value: wait_value FILE VALUE SECS
wait_value() {
    local i=0
    while [ "$(cat "$1" 2>/dev/null)" != "$2" ]; do
        i=$((i + 1))
        [ $i -gt $(($3 * 10)) ] && return 1
        sleep 0.1
    done
}
# md5 of LEN bytes of FILE at OFFSET (both multiples of 4096)
md5_range() {
    dd if="$1" bs=4096 skip=$(($2 / 4096)) count=$(($3 / 4096)) iflag=direct 2>/dev/null | md5sum | cut -c1-32
}

# nbd-pcie-client against the link's ivshmem device.
LINK=pci:$LINK_BDF

# attach DEV EXPORT [client options...]: attaches and waits for the size.
attach() {
    local dev=$1 name=$2
    shift 2
    step "attach $dev export $name${*:+ $*}"
    nbd-pcie-client -pcie "$LINK" -N "$name" "$@" "$dev" ||
        fail "nbd-pcie-client -pcie $LINK -N $name $* $dev failed (exit $?)"
    wait_value_nonzero "/sys/block/${dev#/dev/}/size" 30 ||
        fail "$dev size still 0 30 s after nbd-pcie-client returned"
}
# detach DEV: nbd-pcie-client -d, then the size must drop to 0.
detach() {
    step "detach $1"
    run nbd-pcie-client -d "$1"
    wait_value "/sys/block/${1#/dev/}/size" 0 30 || fail "$1 size $(cat /sys/block/${1#/dev/}/size) 30 s after -d"
}
wait_value_nonzero() {
    local i=0
    while [ "$(cat "$1" 2>/dev/null || echo 0)" = 0 ]; do
        i=$((i + 1))
        [ $i -gt $(($2 * 10)) ] && return 1
        sleep 0.1
    done
}
# dev_bytes DEV: the block device's size in bytes.
dev_bytes() { echo $(($(cat "/sys/block/${1#/dev/}/size") * 512)); }
# pattern write|verify PATH OFFSET LENGTH SEED [flags]: nbdpcie-vmtool pattern, failing the test.
pattern() {
    nbdpcie-vmtool pattern "$@" || fail "pattern $* failed"
}
# unix_sockets: how many AF_UNIX sockets exist in the guest.
unix_sockets() { tail -n +2 /proc/net/unix | wc -l; }

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

# relay_start SOCK: step relay: nbd-pcie-client serving the link on the local
# unix socket SOCK in the background (pid in $relay); returns once the
# socket exists.
relay_start() {
    local i=0
    step relay
    nbd-pcie-client -pcie "$LINK" -unix "$1" -n 2>/tmp/relay.err &
    relay=$!
    while [ ! -S "$1" ]; do
        i=$((i + 1))
        kill -0 $relay 2>/dev/null || { cat /tmp/relay.err; fail "nbd-pcie-client -unix $1 exited"; }
        [ $i -gt 300 ] && fail "no socket $1 30 s after nbd-pcie-client -unix"
        sleep 0.1
    done
}
# relay_lists SOCK EXPORT...: step list: Debian's nbd-client -l -u SOCK
# lists every EXPORT.
relay_lists() {
    local sock=$1 list name
    shift
    step list
    list=$(nbd-client -l -u "$sock" 2>&1) || fail "nbd-client -l -u $sock failed: $list"
    echo "$list"
    for name in "$@"; do
        echo "$list" | grep -qx "$name" || fail "nbd-client -l -u $sock lists no '$name': $list"
    done
}
# relay_stop: SIGTERM to the relay of relay_start; prints its exit status.
relay_stop() {
    kill -TERM $relay
    wait $relay
    echo "relay exit $?"
}

# two_exports DETACH: scenario 4's data checks on /dev/nbd0 (export alpha,
# 32 MiB) and /dev/nbd1 (beta, 48 MiB), both attached: sizes, the host's
# patterns (vm_seed_a, vm_seed_b), parallel writes to both (vm_seed_c at
# 8 MiB of alpha, vm_seed_d at 16 MiB of beta) landing only where written;
# then DETACH DEV detaches /dev/nbd0 and /dev/nbd1 in turn, the other one
# still working.
two_exports() {
    local M=1048576 p0 p1
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
    "$1" /dev/nbd0
    # The other export keeps working after one is detached.
    pattern verify /dev/nbd1 $((24 * M)) $((24 * M)) "$vm_seed_b" direct
    "$1" /dev/nbd1
}

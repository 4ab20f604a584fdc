#!/usr/bin/env bash
# nbd-pcie-client -unix end to end over a shm link against nbd-pcie-server,
# with real NBD clients. Usage: e2e-local.sh BUILD_DIR SCENARIO
. "$(dirname "$0")/e2e-lib.sh"
SCENARIO=${2:?scenario}

case $SCENARIO in
list)  # nbdinfo --list shows the EP's exports with their sizes
    e2e_start 64M
    out=$(nbdinfo --list "$(uri)")
    grep -q 'export="scratch"' <<<"$out" || die "scratch not listed: $out"
    grep -q 'export-size: 67108864' <<<"$out" || die "wrong size: $out"
    ;;
info)  # nbdinfo reports size and flags negotiated from the EP
    e2e_start 32M
    out=$(nbdinfo --json "$(uri)")
    grep -q '"export-size": 33554432' <<<"$out" || die "size: $out"
    grep -q '"can_flush": true' <<<"$out" || die "flush flag lost: $out"
    grep -q '"can_trim": true' <<<"$out" || die "trim flag lost: $out"
    ;;
default-export)  # the empty name selects the default export
    e2e_start 16M
    nbdinfo --size "nbd+unix://?socket=$SOCK" | grep -qx 16777216 || die "default export size"
    ;;
qemu-io)  # pattern writes read back through the relay and land in the file
    e2e_start 64M
    qemu-io -f raw "$(uri)" -c 'write -P 0xa5 0 1M' -c 'write -P 0x5a 24M 32M' \
        -c 'read -P 0xa5 0 1M' -c 'read -P 0x5a 24M 32M' -c 'read -P 0 1M 1M' \
        -c 'flush' > "$WORK/qemu-io.log" || { cat "$WORK/qemu-io.log"; die "qemu-io"; }
    # The backing file on the EP side holds the same bytes.
    cmp -n 1048576 "$IMG" <(head -c 1048576 /dev/zero | tr '\0' '\245') || die "file at 0"
    cmp -i $((24 << 20)):0 -n $((32 << 20)) "$IMG" \
        <(head -c $((32 << 20)) /dev/zero | tr '\0' 'Z') || die "file at 24M"
    ;;
nbdcopy)  # random data copied in and out matches by checksum
    e2e_start 64M
    head -c $((48 << 20)) /dev/urandom > "$WORK/in.bin"
    nbdcopy "$WORK/in.bin" "$(uri)"
    nbdcopy "$(uri)" "$WORK/out.bin"
    a=$(sha256sum < "$WORK/in.bin" | cut -d' ' -f1)
    b=$(head -c $((48 << 20)) "$WORK/out.bin" | sha256sum | cut -d' ' -f1)
    [ "$a" = "$b" ] || die "checksum in $a out $b"
    c=$(head -c $((48 << 20)) "$IMG" | sha256sum | cut -d' ' -f1)
    [ "$a" = "$c" ] || die "backing file checksum $c"
    ;;
multiconn)  # nbdcopy with 4 connections (CAN_MULTI_CONN) over 4 channels
    e2e_start 64M
    head -c $((64 << 20)) /dev/urandom > "$WORK/in.bin"
    nbdcopy --connections=4 "$WORK/in.bin" "$(uri)"
    nbdcopy --connections=4 "$(uri)" "$WORK/out.bin"
    cmp "$WORK/in.bin" "$WORK/out.bin" || die "multi-conn copy differs"
    n=$(grep -c 'on channel' "$WORK/client.log" || true)
    [ "$n" -ge 4 ] || die "expected >= 4 channel connections, log shows $n"
    ;;
fio)  # fio's nbd engine, random read/write with crc32c verification
    e2e_start 64M
    fio --name=npc --ioengine=nbd --uri="$(uri)" --rw=randrw --bs=4k --iodepth=16 \
        --size=32M --verify=crc32c --do_verify=1 --runtime=3 --time_based=0 \
        --output="$WORK/fio.log" || { cat "$WORK/fio.log"; die "fio"; }
    grep -q 'err= 0' "$WORK/fio.log" || { cat "$WORK/fio.log"; die "fio errors"; }
    ;;
unknown-export)  # asking for an export the EP does not have fails with its message
    e2e_start 16M
    if out=$(nbdinfo "$(uri nosuch)" 2>&1); then die "nbdinfo succeeded: $out"; fi
    grep -q "nosuch" "$WORK/client.log" || die "client log does not name the export"
    ;;
list-cmd)  # -l while a -unix process holds the link: answered by that process, which keeps serving
    e2e_start 16M
    out=$("$CLIENT" -l -pcie "shm:$SHM")
    [ "$out" = "scratch" ] || die "-l printed '$out'"
    [ "$(nbdinfo --size "$(uri)")" = 16777216 ] || die "the -unix process stopped serving"
    kill -0 "$CLI_PID" || die "the -unix process died"
    ;;
list-direct)  # -l with no process holding the link opens it itself
    e2e_start_server 16M
    out=$("$CLIENT" -l -pcie "shm:$SHM")
    [ "$out" = "scratch" ] || die "-l printed '$out'"
    ;;
ctl-other-user)  # another user cannot use the holder's control socket
    command -v setpriv >/dev/null || { echo "skip: no setpriv"; exit 77; }
    [ "$(id -u)" -eq 0 ] || { echo "skip: needs root to switch users"; exit 77; }
    e2e_start 16M
    set +e
    out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$CLIENT" -l -pcie "shm:$SHM" 2>&1); rc=$?
    set -e
    [ $rc -eq 1 ] || die "-l as another user: exit $rc ($out)"
    grep -q "permission denied: the link is held by another user" <<<"$out" || die "said: $out"
    echo "$out"
    ;;
second-host-refused)  # one host process per link: a second -unix is refused, the first keeps serving
    e2e_start 16M
    set +e
    out=$("$CLIENT" -n -pcie "shm:$SHM" -unix "$WORK/second.sock" 2>&1); rc=$?
    set -e
    [ $rc -eq 1 ] || die "second -unix exit $rc"
    grep -q "is held by nbd-pcie-client pid $CLI_PID" <<<"$out" || die "said: $out"
    [ "$(nbdinfo --size "$(uri)")" = 16777216 ] || die "the first process stopped serving"
    ;;
nbd-client-list)  # Debian's nbd-client 3.24 lists the exports through the local socket
    e2e_start 16M
    out=$(nbd-client -l -u "$SOCK" 2>&1)
    grep -qx scratch <<<"$out" || die "nbd-client -l -u printed: $out"
    ;;
daemon)  # without -n: the starter returns once the socket serves; pidfile; SIGTERM cleans up
    truncate -s 16M "$IMG"
    "$SERVER" -d --pcie "shm:$SHM" -N scratch "$IMG" > "$WORK/server.log" 2>&1 &
    SRV_PID=$!
    wait_for "$SHM" "$SRV_PID" || die "server did not start"
    "$CLIENT" -pcie "shm:$SHM" -unix "$SOCK" -pidfile "$WORK/client.pid" 2> "$WORK/client.log" \
        || die "starter exit $?"
    [ -S "$SOCK" ] || die "socket not there when the starter returned"
    CLI_PID=$(cat "$WORK/client.pid")
    kill -0 "$CLI_PID" || die "daemon $CLI_PID not running"
    [ "$(nbdinfo --size "$(uri)")" = 16777216 ] || die "daemon does not serve"
    kill -TERM "$CLI_PID"
    for i in $(seq 100); do kill -0 "$CLI_PID" 2>/dev/null || break; sleep 0.05; done
    ! kill -0 "$CLI_PID" 2>/dev/null || die "daemon still running 5 s after SIGTERM"
    CLI_PID=
    [ ! -e "$WORK/client.pid" ] || die "pidfile left behind"
    [ ! -e "$SOCK" ] || die "socket left behind"
    ;;
bad-link)  # a link that does not exist: one line naming it, exit 1
    set +e
    out=$("$CLIENT" -l -pcie "shm:$SHM-missing" 2>&1); rc=$?
    set -e
    [ $rc -eq 1 ] || die "exit $rc"
    [ "$(wc -l <<<"$out")" -eq 1 ] || die "more than one line: $out"
    grep -q -- "-pcie shm:$SHM-missing" <<<"$out" || die "link not named: $out"
    ;;
sigterm)  # SIGTERM stops the client cleanly: socket removed, exit 0
    e2e_start 16M
    kill -TERM "$CLI_PID"
    set +e; wait "$CLI_PID"; rc=$?; set -e
    CLI_PID=
    [ $rc -eq 0 ] || die "exit $rc after SIGTERM"
    [ ! -e "$SOCK" ] || die "socket left behind"
    ;;
no-nbd-module)  # -d, -c and attach without the kernel nbd driver: the modprobe hint and exit codes
    if [ -d /sys/module/nbd ]; then echo "skip: the nbd module is loaded here"; exit 77; fi
    msg="kernel nbd module not loaded: genl family 'nbd' not found; run modprobe nbd"
    set +e
    out=$("$CLIENT" -d /dev/nbd0 2>&1); rc_d=$?
    outc=$("$CLIENT" -c /dev/nbd0 2>/dev/null); rc_c=$?
    outa=$("$CLIENT" -pcie "shm:$SHM" -N x /dev/nbd0 2>&1); rc_a=$?
    set -e
    [ $rc_d -eq 1 ] || die "-d exit $rc_d"
    grep -qF "$msg" <<<"$out" || die "-d said: $out"
    [ $rc_c -eq 1 ] && [ -z "$outc" ] || die "-c exit $rc_c, stdout '$outc' (want 1, nothing)"
    [ $rc_a -eq 1 ] || die "attach exit $rc_a"
    grep -qF "$msg" <<<"$outa" || die "attach said: $outa"
    ;;
usage-errors)  # the binary prints one line naming the value, exit 1
    set +e
    out=$("$CLIENT" -pcie "shm:$SHM" -b 1000 /dev/nbd0 2>&1); rc=$?
    set -e
    [ $rc -eq 1 ] || die "exit $rc"
    [ "$out" = "nbd-pcie-client: -b 1000: block size must be 512, 1024, 2048 or 4096" ] || die "said: $out"
    "$CLIENT" -h | grep -q -- '-pcie LINK' || die "-h lacks -pcie"
    "$CLIENT" -V | grep -q 'nbd-pcie-client' || die "-V"
    ;;
*)
    die "unknown scenario $SCENARIO"
    ;;
esac
echo "ok: $SCENARIO"

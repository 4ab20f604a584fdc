#!/usr/bin/env bash
# Interoperability of the proto machines with real NBD peers.
#
#   interop.sh client-nbdkit      BINDIR   our client machine vs nbdkit memory
#   interop.sh client-nbdkit-blocksize BINDIR  ... vs nbdkit enforcing 4 KiB blocks
#   interop.sh client-nbd-server  BINDIR   our client machine vs nbd-server 3.24
#   interop.sh client-qemu-nbd    BINDIR   our client machine vs qemu-nbd 7.2
#   interop.sh server-nbdinfo     BINDIR   nbdinfo (libnbd) vs our server machine
#   interop.sh server-qemu-io     BINDIR   qemu-io vs our server machine
#   interop.sh server-nbdcopy     BINDIR   nbdcopy and our client vs our server machine
#
# BINDIR holds nbdp-interop-client and nbdp-interop-server. Every server is
# started with a pidfile in a private temp directory and killed by PID on
# exit, even on failure. Exit 77 (skip) when a peer tool is missing.
set -euo pipefail

mode=${1:?mode}
bindir=${2:?bindir}
client=$bindir/nbdp-interop-client
server=$bindir/nbdp-interop-server

tmp=$(mktemp -d "/tmp/nbdp-interop-$$-XXXXXX")
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        kill "$p" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || { echo "SKIP: $1 not installed" >&2; exit 77; }; }

# wait_for PIDFILE SOCKET: both exist (the server is listening); the PID
# joins those killed on exit.
wait_for() {
    for _ in $(seq 100); do
        if [ -s "$1" ] && [ -S "$2" ]; then pids+=("$(cat "$1")"); return 0; fi
        sleep 0.1
    done
    fail "server did not create $1 and $2 within 10 s"
}

# expect FILE REGEX WHAT
expect() { grep -Eq -- "$2" "$1" || { cat "$1" >&2; fail "$3: no match for /$2/"; }; }

sock=$tmp/nbd.sock
out=$tmp/out

case $mode in
client-nbdkit)
    need nbdkit
    nbdkit -U "$sock" -P "$tmp/pid" -e disk memory 64M
    wait_for "$tmp/pid" "$sock"
    "$client" list "$sock" >"$out" || fail "list against nbdkit"
    expect "$out" '^export' "list against nbdkit"
    "$client" info "$sock" disk >"$out" || fail "info against nbdkit"
    expect "$out" '^size 67108864$' "info against nbdkit"
    "$client" go "$sock" disk >"$out" || { cat "$out"; fail "go + data against nbdkit"; }
    expect "$out" '^mode go$' "go against nbdkit"
    expect "$out" '^data: ok$' "data against nbdkit"
    "$client" go "$sock" disk --no-optgo >"$out" || { cat "$out"; fail "export_name + data against nbdkit"; }
    expect "$out" '^mode export_name$' "no_optgo against nbdkit"
    expect "$out" '^data: ok$' "data (export_name) against nbdkit"
    ;;
client-nbdkit-blocksize)
    need nbdkit
    [ -e "$(nbdkit --dump-config | sed -n 's/^filterdir=//p')/nbdkit-blocksize-policy-filter.so" ] \
        || { echo "SKIP: nbdkit blocksize-policy filter not installed" >&2; exit 77; }
    # nbdkit fails unaligned or oversized requests with EINVAL: the data
    # test passes only if our client honours what INFO_BLOCK_SIZE said.
    nbdkit -U "$sock" -P "$tmp/pid" --filter=blocksize-policy memory 64M \
        blocksize-minimum=4096 blocksize-preferred=65536 blocksize-maximum=262144 \
        blocksize-error-policy=error
    wait_for "$tmp/pid" "$sock"
    "$client" go "$sock" "" >"$out" || { cat "$out"; fail "go + data against nbdkit blocksize-policy"; }
    expect "$out" '^min 4096$' "minimum block size from nbdkit"
    expect "$out" '^pref 65536$' "preferred block size from nbdkit"
    expect "$out" '^max 262144$' "maximum block size from nbdkit"
    expect "$out" '^data: ok$' "data within nbdkit's block sizes"
    ;;
client-nbd-server)
    need nbd-server
    truncate -s 64M "$tmp/disk.img"
    cat >"$tmp/nbd.conf" <<EOF
[generic]
    unixsock = $sock
    allowlist = true
[disk]
    exportname = $tmp/disk.img
    flush = true
    fua = true
    description = proto interop disk
EOF
    # Daemon mode with a pidfile: -d (foreground) misbehaves in 3.24.
    nbd-server -C "$tmp/nbd.conf" -p "$tmp/pid"
    wait_for "$tmp/pid" "$sock"
    "$client" list "$sock" >"$out" || fail "list against nbd-server"
    expect "$out" $'^export\tdisk' "list against nbd-server"
    "$client" info "$sock" disk >"$out" || fail "info against nbd-server"
    # nbd-server 3.24 answers NBD_OPT_INFO with size 0; flags must still carry HAS_FLAGS.
    expect "$out" '^name disk$' "info against nbd-server"
    expect "$out" '^flags 0x[0-9a-f]{3}[13579bdf]$' "info flags against nbd-server"
    "$client" go "$sock" disk >"$out" || { cat "$out"; fail "go + data against nbd-server"; }
    expect "$out" '^size 67108864$' "go against nbd-server"
    expect "$out" '^data: ok$' "data against nbd-server"
    "$client" go "$sock" disk --no-optgo >"$out" || { cat "$out"; fail "export_name + data against nbd-server"; }
    expect "$out" '^mode export_name$' "no_optgo against nbd-server"
    expect "$out" '^data: ok$' "data (export_name) against nbd-server"
    "$client" go "$sock" nope >"$out" 2>&1 && fail "unknown export accepted by nbd-server?"
    expect "$out" "server refused export 'nope': unknown export \(NBD_REP_ERR_UNKNOWN\)" \
        "unknown export message from nbd-server"
    "$client" go "$sock" nope --no-optgo >"$out" 2>&1 && fail "unknown export (EXPORT_NAME) accepted?"
    expect "$out" "after NBD_OPT_EXPORT_NAME: export 'nope' unknown or refused" \
        "unknown export via EXPORT_NAME"
    # A second server: listing disabled (no allowlist), export read-only.
    truncate -s 8M "$tmp/ro.img"
    cat >"$tmp/nbd-ro.conf" <<EOF
[generic]
    unixsock = $tmp/ro.sock
[disk]
    exportname = $tmp/ro.img
    readonly = true
EOF
    nbd-server -C "$tmp/nbd-ro.conf" -p "$tmp/pid-ro"
    wait_for "$tmp/pid-ro" "$tmp/ro.sock"
    "$client" list "$tmp/ro.sock" >"$out" 2>&1 && fail "nbd-server listed without allowlist?"
    expect "$out" 'server refused to list exports: forbidden by server policy \(NBD_REP_ERR_POLICY\)' \
        "list refused by nbd-server policy"
    "$client" go "$tmp/ro.sock" disk >"$out" || { cat "$out"; fail "read-only export on nbd-server"; }
    expect "$out" '^write to read-only: NBD_EPERM$' "nbd-server refuses writes to a read-only export"
    expect "$out" '^data: ok \(read-only\)$' "read-only data test"
    # The writes reached nbd-server's file.
    cmp -s -n 4096 "$tmp/disk.img" /dev/zero && fail "disk.img still zero at offset 0 after writes"
    ;;
client-qemu-nbd)
    need qemu-nbd
    truncate -s 64M "$tmp/disk.img"
    qemu-nbd -k "$sock" -f raw -t -x disk --pid-file="$tmp/pid" --fork "$tmp/disk.img"
    wait_for "$tmp/pid" "$sock"
    "$client" list "$sock" >"$out" || fail "list against qemu-nbd"
    expect "$out" $'^export\tdisk' "list against qemu-nbd"
    "$client" go "$sock" disk >"$out" || { cat "$out"; fail "go + data against qemu-nbd"; }
    expect "$out" '^min 1$' "block sizes from qemu-nbd"
    expect "$out" '^data: ok$' "data against qemu-nbd"
    "$client" go "$sock" disk --no-optgo >"$out" || { cat "$out"; fail "export_name + data against qemu-nbd"; }
    expect "$out" '^data: ok$' "data (export_name) against qemu-nbd"
    "$client" go "$sock" nope >"$out" 2>&1 && fail "unknown export accepted by qemu-nbd?"
    expect "$out" "server refused export 'nope': unknown export \(NBD_REP_ERR_UNKNOWN\): export 'nope' not present" \
        "unknown export message (with the server's text) from qemu-nbd"
    cmp -s -n 4096 "$tmp/disk.img" /dev/zero && fail "disk.img still zero at offset 0 after writes"
    ;;
server-nbdinfo)
    need nbdinfo
    "$server" "$sock" "$tmp/pid" 2>"$tmp/log" &
    wait_for "$tmp/pid" "$sock"
    nbdinfo --list "nbd+unix:///?socket=$sock" >"$out" || fail "nbdinfo --list"
    expect "$out" '^export="disk":' "nbdinfo --list"
    expect "$out" '^export="ro":' "nbdinfo --list"
    expect "$out" '^export="aligned":' "nbdinfo --list"
    expect "$out" 'description: 64 MiB RAM disk' "nbdinfo --list description"
    nbdinfo "nbd+unix:///disk?socket=$sock" >"$out" || fail "nbdinfo disk"
    expect "$out" 'export-size: 67108864' "nbdinfo size"
    expect "$out" 'can_fua: true' "nbdinfo fua"
    expect "$out" 'can_trim: true' "nbdinfo trim"
    expect "$out" 'can_df: false' "nbdinfo df (no structured replies)"
    nbdinfo "nbd+unix:///ro?socket=$sock" >"$out" || fail "nbdinfo ro"
    expect "$out" 'is_read_only: true' "nbdinfo read-only"
    nbdinfo "nbd+unix:///aligned?socket=$sock" >"$out" || fail "nbdinfo aligned"
    expect "$out" 'block_size_minimum: 4096' "nbdinfo block size"
    expect "$out" 'block_size_maximum: 1048576' "nbdinfo block size"
    nbdinfo "nbd+unix:///nope?socket=$sock" >"$out" 2>&1 && fail "nbdinfo accepted an unknown export"
    # libnbd maps NBD_REP_ERR_UNKNOWN to ENOENT; the server logged its own text.
    expect "$out" "No such file or directory for export: nope" "nbdinfo unknown export"
    expect "$tmp/log" "handshake ended: client sent NBD_OPT_ABORT" "nbdinfo soft disconnect"
    ;;
server-qemu-io)
    need qemu-io
    "$server" "$sock" "$tmp/pid" 2>"$tmp/log" &
    wait_for "$tmp/pid" "$sock"
    uri="nbd+unix:///disk?socket=$sock"
    qemu-io -f raw "$uri" -c 'write -P 0xa5 0 1M' -c 'read -P 0xa5 0 1M' \
        -c 'write -P 0x3c 63M 1M' -c 'read -P 0x3c 63M 1M' >"$out" 2>&1 \
        || { cat "$out"; fail "qemu-io write/read pattern"; }
    grep -q 'Pattern verification failed' "$out" && { cat "$out"; fail "pattern mismatch"; }
    # A new connection sees the data; never-written space reads as zeroes.
    qemu-io -f raw "$uri" -c 'read -P 0xa5 0 1M' -c 'read -P 0 1M 1M' -c 'read -P 0x3c 63M 1M' \
        >"$out" 2>&1 || { cat "$out"; fail "qemu-io read-back on a new connection"; }
    grep -q 'Pattern verification failed' "$out" && { cat "$out"; fail "pattern mismatch on read-back"; }
    # Unaligned I/O on a 4 KiB-block export: qemu honours INFO_BLOCK_SIZE (read-modify-write).
    qemu-io -f raw "nbd+unix:///aligned?socket=$sock" -c 'write -P 0x11 100 512' \
        -c 'read -P 0x11 100 512' -c 'read -P 0 0 100' -c 'read -P 0 612 3484' >"$out" 2>&1 \
        || { cat "$out"; fail "qemu-io on the aligned export"; }
    grep -q 'Pattern verification failed' "$out" && { cat "$out"; fail "pattern mismatch (aligned)"; }
    qemu-io -r -f raw "nbd+unix:///ro?socket=$sock" -c 'read -P 0x5a 0 4M' >"$out" 2>&1 \
        || { cat "$out"; fail "qemu-io read of the read-only export"; }
    qemu-io -f raw "nbd+unix:///ro?socket=$sock" -c 'write -P 1 0 4k' >"$out" 2>&1 \
        && fail "qemu-io wrote to the read-only export"
    expect "$out" 'Permission denied|read-only|Read-only' "read-only export refused"
    ;;
server-nbdcopy)
    need nbdcopy
    "$server" "$sock" "$tmp/pid" 2>"$tmp/log" &
    wait_for "$tmp/pid" "$sock"
    head -c $((8 * 1024 * 1024)) /dev/urandom >"$tmp/src"
    nbdcopy "$tmp/src" "nbd+unix:///disk?socket=$sock" || fail "nbdcopy to our server"
    nbdcopy "nbd+unix:///disk?socket=$sock" "$tmp/back" || fail "nbdcopy from our server"
    cmp -n $((8 * 1024 * 1024)) "$tmp/src" "$tmp/back" || fail "data copied back differs"
    [ "$(stat -c %s "$tmp/back")" -eq $((64 * 1024 * 1024)) ] || fail "copied-back size is not 64 MiB"
    cmp -s -i $((8 * 1024 * 1024)) -n $((56 * 1024 * 1024)) "$tmp/back" /dev/zero \
        || fail "never-written part of the export is not zero"
    # Our own client against our own server over a real socket.
    "$client" list "$sock" >"$out" || fail "our client listing our server"
    expect "$out" $'^export\taligned\t4 KiB blocks$' "our list"
    "$client" go "$sock" ro >"$out" || { cat "$out"; fail "our client vs our server (ro)"; }
    expect "$out" '^write to read-only: NBD_EPERM$' "our server refuses writes to ro"
    expect "$tmp/log" 'write: export is read-only -> NBD_EPERM' "validator message for ro"
    "$client" go "$sock" aligned >"$out" || { cat "$out"; fail "our client vs our server (aligned)"; }
    expect "$out" '^min 4096$' "agreed minimum block"
    expect "$out" '^data: ok$' "our data test"
    expect "$tmp/log" 'read: offset 8384512 \+ length 8192 beyond export size 8388608' \
        "validator message for the read past the end"
    ;;
*)
    fail "unknown mode $mode"
    ;;
esac
echo "PASS: $mode"

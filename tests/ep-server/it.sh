#!/usr/bin/env bash
# it.sh SCENARIO: one integration test of nbd-pcie-server against real NBD
# clients (nbdinfo, nbdcopy, qemu-io, qemu-img, fio, nbd-client) and
# srv-probe. CTest runs each scenario as its own test (see CMakeLists.txt).
# Needs SERVER and PROBE in the environment. Every test uses its own temp
# dir and sockets (PID in the name), TCP port 0 (the server logs the port it
# got), and kills its server by PID on exit. Exit 77 = skipped (says why).
set -euo pipefail
: "${SERVER:?SERVER must point at nbd-pcie-server}" "${PROBE:?PROBE must point at srv-probe}"
name=$1
T=$(mktemp -d "/tmp/it-srv-$name-$$-XXXXXX")
PID=
CPID=
SHM=/dev/shm/it-srv-$name-$$
MNT=
LOOP=
cleanup() {
    if [ -n "$CPID" ]; then kill -TERM "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true; fi
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
    fi
    if [ -n "$LOOP" ]; then losetup -d "$LOOP" 2>/dev/null || true; fi
    if [ -n "$MNT" ]; then umount "$MNT" 2>/dev/null || true; fi
    rm -rf "$T"
    rm -f "$SHM" "$SHM".*
}
trap cleanup EXIT
# shellcheck source-path=SCRIPTDIR source=it-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/it-lib.sh"

die() {
    echo "FAIL: $*" >&2
    it_logs
    exit 1
}
ok() { echo "ok: $*"; }
skip() { echo "SKIP: $*"; exit 77; }

# start ARGS...: server in the foreground (child of this script), log in
# $T/log; returns once it is ready.
start() {
    "$SERVER" -d -p "$T/pid" "$@" >"$T/log" 2>&1 &
    PID=$!
    it_wait_ready PID
}
# stop: SIGTERM, returns the server's exit code in $RC.
stop() {
    kill -TERM "$PID"
    RC=0
    wait "$PID" || RC=$?
    PID=
}
# start_pcie SERVER-ARGS...: server on the shm link $SHM (plus the given
# arguments; a config file given with -C names the link itself) and nbd-pcie-client relaying it to the unix socket $T/c.sock:
# NBD clients reach the server only through the link.
start_pcie() {
    if [ "$1" = -C ]; then start "$@"; else start --pcie "shm:$SHM" "$@"; fi
    : "${CLIENT:?CLIENT must point at nbd-pcie-client}"
    "$CLIENT" -n -pcie "shm:$SHM" -unix "$T/c.sock" >"$T/clog" 2>&1 &
    CPID=$!
    it_wait_socket "$CPID" "$T/c.sock" 100
}
pcie_uri() { echo "nbd+unix:///$1?socket=$T/c.sock"; }
# fio_randrw URI NAME IODEPTH SIZE SECONDS: fio's nbd engine on URI: random
# 4 KiB reads and writes, every read verified (crc32c); dies on any error.
fio_randrw() {
    fio --name="$2" --ioengine=nbd --uri="$1" --rw=randrw --bs=4k \
        --iodepth="$3" --size="$4" --verify=crc32c --verify_state_save=0 --runtime="$5" --time_based \
        --output="$T/fio.out" || die "fio: $(cat "$T/fio.out")"
    grep -q 'err= 0' "$T/fio.out" || die "fio reported errors: $(cat "$T/fio.out")"
}
port() { sed -n 's/.*listening on tcp 127\.0\.0\.1 port \([0-9]*\).*/\1/p' "$T/log" | head -n 1; }
mkfile() { # mkfile PATH SIZE [random]
    if [ "${3:-}" = random ]; then
        head -c "$2" /dev/urandom >"$1"
    else
        truncate -s "$2" "$1"
    fi
}
unix_uri() { echo "nbd+unix:///$1?socket=$T/s.sock"; }
expect_log() { grep -qF -- "$1" "$T/log" || die "log lacks: $1"; ok "log: $1"; }
probe() { "$PROBE" "$@" || die "srv-probe $*"; }
# hold EXPORT: an srv-probe connection to EXPORT on $T/s.sock that stays open
# (it has negotiated when this returns) until unhold.
hold() {
    coproc HOLD { "$PROBE" "unix:$T/s.sock" "$1" hold; }
    hold_pid=$HOLD_PID
    read -r line <&"${HOLD[0]}"
}
unhold() {
    # shellcheck disable=SC1083,SC2093  # closes the coprocess's input (bash's {fd} redirection)
    exec {HOLD[1]}>&-
    wait "$hold_pid" || die "hold failed"
}

case $name in
# ---- real clients ------------------------------------------------------------
nbdinfo-unix)
    mkfile "$T/disk" 48M
    start -u "$T/s.sock" -N disk "$T/disk"
    out=$(nbdinfo "$(unix_uri disk)") || die "nbdinfo failed"
    grep -q 'export-size: 50331648' <<<"$out" || die "size: $out"
    grep -q 'can_flush: true' <<<"$out" || die "flush flag: $out"
    grep -q 'can_multi_conn: true' <<<"$out" || die "multi-conn flag: $out"
    grep -q 'block_size_maximum: 67108864' <<<"$out" || die "max block: $out"
    ok "nbdinfo over a unix socket"
    expect_log "export disk: size 50331648"
    ;;
nbdinfo-tcp)
    mkfile "$T/disk" 1M
    start 127.0.0.1@0 "$T/disk"
    p=$(port); [ -n "$p" ] || die "no port in the log"
    out=$(nbdinfo "nbd://127.0.0.1:$p/default") || die "nbdinfo failed"
    grep -q 'export-size: 1048576' <<<"$out" || die "size: $out"
    ok "nbdinfo over TCP port $p"
    expect_log "tcp 127.0.0.1:"
    ;;
list)
    mkfile "$T/a" 1M; mkfile "$T/b" 2M
    printf '[generic]\nlistenaddr = 127.0.0.1\nport = 0\nallowlist = true\n[alpha]\nexportname = %s\n[beta]\nexportname = %s\n' \
        "$T/a" "$T/b" >"$T/cfg"
    start -C "$T/cfg"
    p=$(port)
    out=$(nbdinfo --list "nbd://127.0.0.1:$p") || die "nbdinfo --list failed"
    grep -q 'export="alpha"' <<<"$out" && grep -q 'export="beta"' <<<"$out" || die "list: $out"
    ok "nbdinfo --list shows both exports"
    out=$(nbd-client -l 127.0.0.1 "$p" 2>&1) || die "nbd-client -l failed: $out"
    grep -qx 'alpha' <<<"$out" && grep -qx 'beta' <<<"$out" || die "nbd-client -l: $out"
    ok "nbd-client -l shows both exports"
    ;;
list-refused)
    mkfile "$T/a" 1M
    printf '[generic]\nlistenaddr = 127.0.0.1\nport = 0\n[alpha]\nexportname = %s\n' "$T/a" >"$T/cfg"
    start -C "$T/cfg"
    if nbdinfo --list "nbd://127.0.0.1:$(port)" >"$T/out" 2>&1; then die "list allowed without allowlist"; fi
    ok "list refused: $(tail -n 1 "$T/out")"
    expect_log "export list refused (allowlist = false)"
    ;;
nbdcopy-unix|nbdcopy-tcp)
    mkfile "$T/src" 40M random; mkfile "$T/disk" 40M
    if [ "$name" = nbdcopy-unix ]; then
        start -u "$T/s.sock" "$T/disk"; uri=$(unix_uri default)
    else
        start 127.0.0.1@0 "$T/disk"; uri="nbd://127.0.0.1:$(port)/default"
    fi
    nbdcopy "$T/src" "$uri" || die "nbdcopy to the server"
    nbdcopy "$uri" "$T/back" || die "nbdcopy from the server"
    [ "$(sha256sum <"$T/src")" = "$(sha256sum <"$T/back")" ] || die "round trip checksum differs"
    cmp "$T/src" "$T/disk" || die "backing file differs"
    ok "nbdcopy round trip, sha256 equal"
    ;;
qemu-io)
    mkfile "$T/disk" 64M
    start -u "$T/s.sock" "$T/disk"
    qemu-io -f raw "$(unix_uri default)" \
        -c 'write -P 0xa5 0 1M' -c 'read -P 0xa5 0 1M' \
        -c 'write -P 0x3c 1000 100k' -c 'read -P 0x3c 1000 100k' -c 'read -P 0xa5 0 1000' \
        -c 'write -P 0x77 8M 32M' -c 'read -P 0x77 8M 32M' \
        -c 'write -z 4M 1M' -c 'read -P 0 4M 1M' \
        -c 'write -P 0x11 -f 60M 64k' -c 'read -P 0x11 60M 64k' -c 'flush' \
        -c 'read -P 0 50M 1M' >"$T/out" 2>&1 || die "qemu-io: $(cat "$T/out")"
    grep -q 'Pattern verification failed' "$T/out" && die "qemu-io pattern mismatch: $(cat "$T/out")"
    [ "$(head -c 1 "$T/disk" | od -An -tx1 | tr -d ' ')" = a5 ] || die "backing file lacks 0xa5"
    ok "qemu-io patterns verified"
    ;;
qemu-img)
    mkfile "$T/src" 20M random; mkfile "$T/disk" 20M
    start -u "$T/s.sock" "$T/disk"
    qemu-img convert -n -f raw -O raw "$T/src" "$(unix_uri default)" || die "qemu-img convert to"
    qemu-img convert -f raw -O raw "$(unix_uri default)" "$T/back" || die "qemu-img convert from"
    cmp "$T/src" "$T/back" || die "qemu-img round trip differs"
    cmp "$T/src" "$T/disk" || die "backing file differs"
    ok "qemu-img convert round trip"
    ;;
fio)
    mkfile "$T/disk" 64M
    start -u "$T/s.sock" "$T/disk"
    fio_randrw "$(unix_uri default)" mixed 32 32M 3
    ok "fio randrw verify=crc32c: $(grep -E '^ +(read|write):' "$T/fio.out" | tr -s ' ' | cut -c1-60 | tr '\n' ';')"
    ;;
tmpfs)
    # A file in tmpfs without RWF_NOWAIT: READ/WRITE run by pread/pwrite
    # on the worker (export.c inline_rw), not io_uring. Data, FUA, short
    # reads and errors must behave as through io_uring.
    [ "$(stat -f -c %T /dev/shm)" = tmpfs ] || skip "/dev/shm is not tmpfs"
    mkfile "$SHM.disk" 64M random
    start -u "$T/s.sock" "$SHM.disk"
    grep -q 'is in memory and has no non-blocking reads' "$T/log" \
        || skip "this kernel reads tmpfs with RWF_NOWAIT: io_uring serves it inline already"
    fio_randrw "$(unix_uri default)" mixed 32 32M 2
    ok "fio randrw verify=crc32c on tmpfs"
    fio --name=big --ioengine=nbd --uri="$(unix_uri default)" --rw=write --bs=3m \
        --iodepth=4 --size=48M --verify=md5 --verify_state_save=0 --output="$T/fio.out" \
        || die "fio: $(cat "$T/fio.out")"
    grep -q 'err= 0' "$T/fio.out" || die "fio reported errors: $(cat "$T/fio.out")"
    ok "fio 3 MiB writes, verified"
    probe "unix:$T/s.sock" default fua "$SHM.disk"
    ok "FUA writes on tmpfs"
    stop
    # The same copies into and out of the link's staging memory (PCIe channel).
    start_pcie "$SHM.disk"
    fio_randrw "$(pcie_uri default)" link 16 16M 2
    ok "fio randrw verify=crc32c on tmpfs through the link"
    kill -TERM "$CPID"; wait "$CPID" || true; CPID=
    stop
    mkfile "$SHM.disk" 1M random
    start -u "$T/s.sock" "$SHM.disk"
    truncate -s 512K "$SHM.disk"
    probe "unix:$T/s.sock" default shortread "$SHM.disk"
    expect_log "backing store ended early"
    ok "short read on tmpfs answered with EIO"
    ;;
pcie-direct)
    # A memory-backed export over the link: READs longer than 64 KiB go from
    # the file's pages straight to the DMA engine (ep-server/mapread.c) and
    # the data is the file's; holes of a sparse file are not read that way
    # (a mapping would allocate them); a file that shrank answers EIO and
    # the server goes on serving.
    [ "$(stat -f -c %T /dev/shm)" = tmpfs ] || skip "/dev/shm is not tmpfs"
    mkfile "$SHM.disk" 64M random
    start_pcie "$SHM.disk"
    expect_log "go straight from its pages (direct reads)"
    nbdcopy "$(pcie_uri default)" "$T/copy" || die "nbdcopy from the link failed"
    cmp "$T/copy" "$SHM.disk" || die "nbdcopy through direct reads differs from the file"
    ok "nbdcopy of 64 MiB through direct reads equals the file"
    fio --name=big --ioengine=nbd --uri="$(pcie_uri default)" --rw=randwrite --bsrange=4k-1m \
        --iodepth=8 --size=48M --verify=crc32c --verify_state_save=0 --output="$T/fio.out" \
        || die "fio: $(cat "$T/fio.out")"
    grep -q 'err= 0' "$T/fio.out" || die "fio reported errors: $(cat "$T/fio.out")"
    ok "fio random writes of 4 KiB-1 MiB, every block read back and verified"
    fio_randrw "$(pcie_uri default)" mixed 16 16M 2
    ok "fio randrw verify=crc32c through direct reads"
    truncate -s $(( (1 << 20) + 100 )) "$SHM.disk"
    probe "unix:$T/c.sock" default shortread "$SHM.disk"
    expect_log "backing store ended early"
    ok "READ beyond a shrunk file answered EIO, inside it the file's data"
    kill -0 "$PID" || die "the server died"
    kill -TERM "$CPID"; wait "$CPID" || true; CPID=
    stop
    direct=$(sed -n "s/.*: closed;.*; \([0-9]*\) READs straight from the export's pages$/\1/p" "$T/log" \
        | awk '{ s += $1 } END { print s + 0 }')
    [ "$direct" -gt 64 ] || die "only $direct direct READs: $(grep closed "$T/log")"
    ok "closed lines: $direct READs straight from the export's pages"
    # sparse: read whole, nothing allocated, nothing read directly
    rm -f "$SHM.disk"
    mkfile "$SHM.disk" 64M
    dd if=/dev/urandom of="$SHM.disk" bs=1M count=1 seek=8 conv=notrunc status=none
    start_pcie "$SHM.disk"
    nbdcopy "$(pcie_uri default)" "$T/copy" || die "nbdcopy of the sparse file failed"
    cmp "$T/copy" "$SHM.disk" || die "nbdcopy of the sparse file differs from it"
    blocks=$(stat -c %b "$SHM.disk")
    [ "$blocks" -le 4096 ] || die "reading the sparse file allocated it: $blocks blocks of 512 bytes"
    ok "a sparse file read whole stays sparse ($blocks blocks)"
    kill -TERM "$CPID"; wait "$CPID" || true; CPID=
    stop
    grep -q "closed.*; [0-9]* READs straight from" "$T/log" || die "no direct READs of the written MiB"
    ok "its written MiB went directly"
    ;;
reply-backlog)
    # 1 MiB READ replies at QD8 fill the socket: replies wait for POLLOUT
    # over and over (the poll is re-armed for POLLIN|POLLOUT while the
    # client drains). A lost wake-up there hung about one connection in
    # three; each connection here must finish its second of reads.
    mkfile "$T/disk" 64M random
    start -u "$T/s.sock" "$T/disk"
    for i in $(seq 8); do
        timeout -k 2 20 fio --name=backlog --ioengine=nbd --uri="$(unix_uri default)" --rw=read \
            --bs=1m --iodepth=8 --size=64M --runtime=1 --time_based --output="$T/fio.out" \
            || die "fio connection $i: no progress for 20 s or an error: $(cat "$T/fio.out")"
        grep -q 'err= 0' "$T/fio.out" || die "fio reported errors: $(cat "$T/fio.out")"
    done
    ok "8 connections of 1 MiB reads at QD8 finished"
    ;;
# ---- srv-probe scenarios -----------------------------------------------------
readonly)
    mkfile "$T/disk" 1M random; cp "$T/disk" "$T/orig"
    printf '[generic]\nunixsock = %s\n[d]\nexportname = %s\nreadonly = true\ntrim = true\n' \
        "$T/s.sock" "$T/disk" >"$T/cfg"
    start -C "$T/cfg"
    probe "unix:$T/s.sock" d readonly "$T/disk"
    expect_log "read-only trim"
    cmp "$T/disk" "$T/orig" || die "read-only backing file changed"
    fd=$(ls -l /proc/"$PID"/fd | grep -F "$T/disk" | awk '{print $9}')
    fl=$(awk '/^flags:/{print $2}' /proc/"$PID"/fdinfo/"$fd")
    [ $((8#$fl & 3)) -eq 0 ] || die "backing file opened for writing (flags $fl)"
    ok "backing store opened O_RDONLY (flags $fl)"
    ;;
bounds|unknown|concurrent|vanish)
    mkfile "$T/disk" 4M
    start -u "$T/s.sock" "$T/disk"
    probe "unix:$T/s.sock" default "$name" "$T/disk"
    kill -0 "$PID" || die "server died"
    ;;
oversized|max-request)
    mkfile "$T/disk" 65M
    start -u "$T/s.sock" "$T/disk"
    probe "unix:$T/s.sock" default "$name" "$T/disk" | tee "$T/probe.out"
    [ "$name" = oversized ] || grep -q "maximum request 67108864 bytes" "$T/probe.out" || die "not 64 MiB"
    [ "$name" = max-request ] || expect_log "closing: WRITE payload of 67108865 bytes not read"
    ;;
fua|flush|zeroes|trim)
    mkfile "$T/disk" 4M random
    printf '[generic]\nunixsock = %s\n[d]\nexportname = %s\nflush = true\nfua = true\ntrim = true\n' \
        "$T/s.sock" "$T/disk" >"$T/cfg"
    start -C "$T/cfg"
    probe "unix:$T/s.sock" d "$name" "$T/disk"
    ;;
unaligned)
    command -v losetup >/dev/null || skip "losetup not installed"
    mkfile "$T/img" 8M
    LOOP=$(losetup -f --show --sector-size 4096 "$T/img" 2>/dev/null) || { LOOP=; skip "cannot attach a loop device here"; }
    start -u "$T/s.sock" "$LOOP"
    probe "unix:$T/s.sock" default unaligned
    expect_log "min block 4096"
    ;;
blockdev)
    command -v losetup >/dev/null || skip "losetup not installed"
    mkfile "$T/img" 8M random
    LOOP=$(losetup -f --show "$T/img" 2>/dev/null) || { LOOP=; skip "cannot attach a loop device here"; }
    printf '[generic]\nunixsock = %s\n[d]\nexportname = %s\nflush = true\nfua = true\ntrim = true\n' \
        "$T/s.sock" "$LOOP" >"$T/cfg"
    start -C "$T/cfg"
    for sc in bounds concurrent zeroes trim; do
        probe "unix:$T/s.sock" d "$sc"
    done
    expect_log "export d: size 8388608"
    expect_log "min block 512"
    rot=$(cat "/sys/dev/block/$(stat -c '%t:%T' "$LOOP" | { IFS=: read -r a b; echo "$((16#$a)):$((16#$b))"; })/queue/rotational")
    out=$(nbdinfo "nbd+unix:///d?socket=$T/s.sock") || die "nbdinfo"
    if [ "$rot" = 1 ]; then want=true; else want=false; fi
    grep -q "is_rotational: $want" <<<"$out" || die "sysfs rotational $rot, nbdinfo: $(grep rotational <<<"$out")"
    ok "ROTATIONAL follows the device's sysfs queue/rotational ($rot)"
    probe "unix:$T/s.sock" d fua "$LOOP"
    probe "unix:$T/s.sock" d flush "$LOOP"
    ok "block device: BLKDISCARD, zeroing and durability"
    ;;
enospc)
    MNT="$T/mnt"; mkdir "$MNT"
    mount -t tmpfs -o size=1M tmpfs "$MNT" 2>/dev/null || { MNT=; skip "cannot mount a tmpfs (not root?)"; }
    mkfile "$MNT/disk" 4M
    start -u "$T/s.sock" "$MNT/disk"
    probe "unix:$T/s.sock" default enospc
    probe "unix:$T/s.sock" default unknown
    ok "server still serves after ENOSPC"
    expect_log "No space left on device (NBD_ENOSPC)"
    ;;
eio-short-read)
    mkfile "$T/disk" 1M random
    start -u "$T/s.sock" "$T/disk"
    truncate -s 512K "$T/disk"
    probe "unix:$T/s.sock" default shortread "$T/disk"
    expect_log "backing store ended early"
    probe "unix:$T/s.sock" default unknown
    ok "server still serves after EIO"
    ;;
cow)
    mkfile "$T/disk" 1M random; cp "$T/disk" "$T/orig"; mkdir "$T/cow"
    printf '[generic]\nunixsock = %s\n[d]\nexportname = %s\nflush = true\ncopyonwrite = true\ncowdir = %s\nsparse_cow = true\n' \
        "$T/s.sock" "$T/disk" "$T/cow" >"$T/cfg"
    start -C "$T/cfg"
    probe "unix:$T/s.sock" d cow "$T/disk"
    cmp "$T/disk" "$T/orig" || die "copy-on-write modified the base file"
    ok "base file byte-identical"
    [ -z "$(ls -A "$T/cow")" ] || die "diff files left in cowdir: $(ls "$T/cow")"
    # while a connection is open, its (unlinked) diff lives in cowdir
    hold d
    ls -l /proc/"$PID"/fd | grep -q "$T/cow/disk-.*diff.*(deleted)" || die "no diff file in cowdir"
    ok "per-connection diff in cowdir, already unlinked"
    unhold
    ;;
# ---- configuration keys --------------------------------------------------------
config-flags)
    mkfile "$T/a" 3M
    printf '[generic]\nunixsock = %s\n[a]\nexportname = %s\nfilesize = 1M\nrotational = true\ntrim = true\nflush = false\nfua = false\n' \
        "$T/s.sock" "$T/a" >"$T/cfg"
    start -C "$T/cfg"
    out=$(nbdinfo "$(unix_uri a)") || die "nbdinfo"
    for want in 'export-size: 1048576' 'is_rotational: true' 'can_trim: true' 'can_flush: false' \
                'can_fua: false' 'can_zero: true' 'can_cache: true'; do
        grep -q "$want" <<<"$out" || die "nbdinfo lacks '$want': $out"
    done
    ok "filesize, rotational, trim, flush, fua advertised as configured"
    ;;
config-filesize-too-big)
    mkfile "$T/a" 1M
    printf '[generic]\nunixsock = %s\n[a]\nexportname = %s\nfilesize = 2M\n' "$T/s.sock" "$T/a" >"$T/cfg"
    if "$SERVER" -d -C "$T/cfg" >"$T/log" 2>&1; then die "server started"; fi
    expect_log "export a: filesize 2097152 exceeds the size 1048576 of $T/a"
    ;;
config-sync)
    mkfile "$T/a" 1M
    printf '[generic]\nunixsock = %s\n[a]\nexportname = %s\nsync = true\n' "$T/s.sock" "$T/a" >"$T/cfg"
    start -C "$T/cfg"
    fd=$(ls -l /proc/"$PID"/fd | grep -F "$T/a" | awk '{print $9}')
    fl=$(awk '/^flags:/{print $2}' /proc/"$PID"/fdinfo/"$fd")
    [ $((8#$fl & 8#10000)) -ne 0 ] || die "sync = true but the fd lacks O_DSYNC (flags $fl)"
    ok "sync = true opens with O_DSYNC (flags $fl)"
    ;;
config-maxconnections)
    mkfile "$T/a" 1M
    printf '[generic]\nunixsock = %s\n[a]\nexportname = %s\nmaxconnections = 1\n' "$T/s.sock" "$T/a" >"$T/cfg"
    start -C "$T/cfg"
    hold a
    probe "unix:$T/s.sock" a refused
    expect_log "export a: maxconnections 1 reached"
    unhold
    sleep 0.3
    probe "unix:$T/s.sock" a bounds
    ok "served again once the first connection left"
    ;;
config-generic-maxconnections)
    mkfile "$T/a" 1M
    printf '[generic]\nunixsock = %s\nmaxconnections = 1\n[a]\nexportname = %s\n' "$T/s.sock" "$T/a" >"$T/cfg"
    start -C "$T/cfg"
    hold a
    probe "unix:$T/s.sock" a refused
    expect_log "refused, maxconnections 1 reached"
    unhold
    ;;
config-authfile)
    mkfile "$T/a" 1M; mkfile "$T/b" 1M
    printf '# allowed clients\n10.0.0.0/8\n127.0.0.0/8\n' >"$T/auth-ok"
    printf '192.168.1.1\n' >"$T/auth-no"
    printf '[generic]\nlistenaddr = 127.0.0.1\nport = 0\nunixsock = %s\nduallisten = true\n[a]\nexportname = %s\nauthfile = %s\n[b]\nexportname = %s\nauthfile = %s\n' \
        "$T/s.sock" "$T/a" "$T/auth-ok" "$T/b" "$T/auth-no" >"$T/cfg"
    start -C "$T/cfg"
    probe "tcp:127.0.0.1:$(port)" a bounds
    probe "tcp:127.0.0.1:$(port)" b refused
    expect_log "export b: address not in authfile $T/auth-no"
    probe "unix:$T/s.sock" b bounds
    ok "authfile applies to TCP clients only"
    ;;
config-duallisten)
    mkfile "$T/a" 1M
    printf '[generic]\nlistenaddr = 127.0.0.1\nport = 0\nunixsock = %s\nduallisten = true\n[a]\nexportname = %s\n' \
        "$T/s.sock" "$T/a" >"$T/cfg"
    start -C "$T/cfg"
    nbdinfo "$(unix_uri a)" >/dev/null || die "unix socket"
    nbdinfo "nbd://127.0.0.1:$(port)/a" >/dev/null || die "tcp"
    ok "unix socket and TCP both served"
    ;;
config-unixsock-only)
    mkfile "$T/a" 1M
    printf '[generic]\nport = 0\nunixsock = %s\n[a]\nexportname = %s\n' "$T/s.sock" "$T/a" >"$T/cfg"
    start -C "$T/cfg"
    grep -q 'listening on tcp' "$T/log" && die "TCP listener without duallisten"
    nbdinfo "$(unix_uri a)" >/dev/null || die "unix socket"
    ok "unixsock without duallisten: no TCP"
    ;;
config-includedir)
    mkfile "$T/a" 1M; mkfile "$T/b" 2M; mkdir "$T/conf.d"
    printf '[b]\nexportname = %s\nreadonly = true\n' "$T/b" >"$T/conf.d/b.conf"
    printf '[generic]\nunixsock = %s\nincludedir = %s\n[a]\nexportname = %s\n' "$T/s.sock" "$T/conf.d" "$T/a" >"$T/cfg"
    start -C "$T/cfg"
    out=$(nbdinfo "$(unix_uri b)") || die "export from includedir not served"
    grep -q 'export-size: 2097152' <<<"$out" && grep -q 'is_read_only: true' <<<"$out" || die "$out"
    ok "export from includedir served read-only"
    ;;
config-user-group)
    [ "$(id -u)" -eq 0 ] || skip "needs root to change user"
    id nobody >/dev/null 2>&1 || skip "no user nobody"
    grp=$(id -gn nobody)
    mkfile "$T/a" 1M; chmod 600 "$T/a"; chmod 755 "$T"
    printf '[generic]\nunixsock = %s\nuser = nobody\ngroup = %s\n[a]\nexportname = %s\n' "$T/s.sock" "$grp" "$T/a" >"$T/cfg"
    start -C "$T/cfg"
    uid=$(awk '/^Uid:/{print $3}' /proc/"$PID"/status)
    gid=$(awk '/^Gid:/{print $3}' /proc/"$PID"/status)
    [ "$uid" = "$(id -u nobody)" ] || die "effective uid $uid, expected nobody"
    [ "$gid" = "$(getent group "$grp" | cut -d: -f3)" ] || die "effective gid $gid, expected $grp"
    ok "running as nobody:$grp"
    probe "unix:$T/s.sock" a bounds "$T/a"
    ok "serves an export only root can open (opened before dropping privileges)"
    ;;
config-bad-user)
    mkfile "$T/a" 1M
    printf '[generic]\nunixsock = %s\nuser = no-such-user-xyz\n[a]\nexportname = %s\n' "$T/s.sock" "$T/a" >"$T/cfg"
    if "$SERVER" -d -C "$T/cfg" >"$T/log" 2>&1; then die "server started"; fi
    expect_log "[generic] user = 'no-such-user-xyz': no such user"
    ;;
config-max-threads)
    mkfile "$T/a" 1M
    printf '[generic]\nunixsock = %s\nmax_threads = 3\n[a]\nexportname = %s\n' "$T/s.sock" "$T/a" >"$T/cfg"
    start -C "$T/cfg"
    n=$(ls /proc/"$PID"/task | wc -l)
    [ "$n" -eq 4 ] || die "$n threads, expected main + 3 workers"
    expect_log "ready: 1 export, 3 workers"
    ;;
config-warning)
    mkfile "$T/a" 1M
    printf '[generic]\nunixsock = %s\n[a]\nexportname = %s\nmultifile = true\ntransactionlog = /tmp/x\n' "$T/s.sock" "$T/a" >"$T/cfg"
    start -C "$T/cfg"
    expect_log "warning: config $T/cfg: [a] multifile: nbd-server option not implemented by nbd-pcie-server, ignored"
    expect_log "warning: config $T/cfg: [a] transactionlog: nbd-server option not implemented"
    nbdinfo "$(unix_uri a)" >/dev/null || die "not serving"
    ;;
config-error)
    printf '[generic]\nunixsock = %s\n[a]\nexportname = /nonexistent\nfua = perhaps\n' "$T/s.sock" >"$T/cfg"
    RC=0; "$SERVER" -d -C "$T/cfg" >"$T/log" 2>&1 || RC=$?
    [ "$RC" -eq 1 ] || die "exit $RC, expected 1"
    expect_log "config $T/cfg: [a] fua = 'perhaps': not a boolean (true or false)"
    [ -e "$T/s.sock" ] && die "server created its socket despite the error"
    ok "invalid value refused before serving"
    ;;
config-missing-file)
    printf '[generic]\nunixsock = %s\n[a]\nexportname = %s/missing\n' "$T/s.sock" "$T" >"$T/cfg"
    RC=0; "$SERVER" -d -C "$T/cfg" >"$T/log" 2>&1 || RC=$?
    [ "$RC" -eq 1 ] || die "exit $RC, expected 1"
    expect_log "export a: open $T/missing (read-write): No such file or directory"
    ;;
# ---- command line ----------------------------------------------------------------
cli-version-help)
    "$SERVER" -V | grep -q '^nbd-pcie-server [0-9]' || die "-V"
    "$SERVER" --help | grep -q -- '--pcie LINK' || die "--help lacks --pcie"
    "$SERVER" -h | grep -q 'Memory per socket connection' || die "-h lacks the memory bound"
    RC=0; "$SERVER" --bogus >"$T/log" 2>&1 || RC=$?
    [ "$RC" -eq 1 ] || die "unknown option exit $RC"
    expect_log "unknown option '--bogus'"
    ;;
cli-short-form)
    mkfile "$T/a" 4M random; cp "$T/a" "$T/orig"
    start 127.0.0.1@0 "$T/a" 2M -r
    out=$(nbdinfo "nbd://127.0.0.1:$(port)/default") || die "nbdinfo"
    grep -q 'export-size: 2097152' <<<"$out" && grep -q 'is_read_only: true' <<<"$out" || die "$out"
    probe "tcp:127.0.0.1:$(port)" default readonly "$T/a"
    cmp "$T/a" "$T/orig" || die "-r export modified"
    ok "[ip@]PORT FILE SIZE -r"
    ;;
cli-cow)
    mkfile "$T/a" 1M random; cp "$T/a" "$T/orig"
    start -u "$T/s.sock" -c "$T/a"
    probe "unix:$T/s.sock" default cow "$T/a"
    cmp "$T/a" "$T/orig" || die "-c export modified"
    ;;
cli-max-connections)
    mkfile "$T/a" 1M
    start -u "$T/s.sock" -M 1 "$T/a"
    hold default
    probe "unix:$T/s.sock" default refused
    unhold
    ;;
cli-pidfile-sigterm)
    mkfile "$T/a" 16M
    start -u "$T/s.sock" "$T/a"
    [ "$(cat "$T/pid")" = "$PID" ] || die "pid file holds $(cat "$T/pid"), server is $PID"
    ok "pid file"
    # requests in flight when SIGTERM arrives are answered and in the file
    "$PROBE" "unix:$T/s.sock" default sigterm "$T/a" >"$T/probe.out" 2>&1 &
    busy_pid=$!
    for _ in $(seq 100); do grep -q '^busy' "$T/probe.out" && break; sleep 0.05; done
    grep -q '^busy' "$T/probe.out" || die "probe never got busy: $(cat "$T/probe.out")"
    stop
    wait "$busy_pid" || die "client saw a failure during shutdown: $(cat "$T/probe.out")"
    cat "$T/probe.out"
    [ "$RC" -eq 0 ] || die "exit $RC after SIGTERM"
    [ -e "$T/pid" ] && die "pid file left behind"
    [ -e "$T/s.sock" ] && die "socket left behind"
    expect_log "stopped"
    ;;
sigterm-stuck-client)
    mkfile "$T/a" 4M
    start -u "$T/s.sock" "$T/a"
    coproc STUCK { "$PROBE" "unix:$T/s.sock" default stuck; }
    stuck_pid=$STUCK_PID
    read -r line <&"${STUCK[0]}"
    [ "$line" = busy ] || die "probe: $line"
    t0=$(date +%s)
    stop
    t1=$(date +%s)
    [ "$RC" -eq 0 ] || die "exit $RC after SIGTERM"
    [ $((t1 - t0)) -le 20 ] || die "took $((t1 - t0)) s to stop"
    expect_log "not drained after 10000 ms: dropping it"
    ok "a client that never reads its replies cannot keep the server from exiting ($((t1 - t0)) s)"
    exec {STUCK[1]}>&-
    wait "$stuck_pid" 2>/dev/null || true
    ;;
cli-threads-syslog)
    mkfile "$T/a" 1M
    "$SERVER" -d --threads 1 --syslog -p "$T/pid" -u "$T/s.sock" "$T/a" >"$T/log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do [ -S "$T/s.sock" ] && break; sleep 0.05; done
    nbdinfo "$(unix_uri default)" >/dev/null || die "not serving"
    n=$(ls /proc/"$PID"/task | wc -l)
    [ "$n" -eq 2 ] || die "$n threads, expected main + 1 worker"
    ok "--threads 1: one worker"
    [ -s "$T/log" ] && die "--syslog still logs to stderr: $(cat "$T/log")"
    ok "--syslog: nothing on stderr"
    ;;
sighup)
    mkfile "$T/a" 1M
    start -u "$T/s.sock" "$T/a"
    kill -HUP "$PID"
    for _ in $(seq 50); do grep -q SIGHUP "$T/log" && break; sleep 0.05; done
    expect_log "SIGHUP: reloading the configuration is not supported by nbd-pcie-server; ignored"
    nbdinfo "$(unix_uri default)" >/dev/null || die "not serving after SIGHUP"
    ok "still serving after SIGHUP"
    ;;
cli-daemon)
    mkfile "$T/a" 1M
    "$SERVER" -p "$T/pid" -u "$T/s.sock" "$T/a" 2>"$T/log" || die "daemon start"
    for _ in $(seq 50); do [ -s "$T/pid" ] && break; sleep 0.1; done
    PID=$(cat "$T/pid")
    kill -0 "$PID" || die "daemon not running"
    for _ in $(seq 50); do [ -S "$T/s.sock" ] && break; sleep 0.1; done
    nbdinfo "$(unix_uri default)" >/dev/null || die "daemon does not serve"
    ok "daemon (no -d) serves, pid file $(cat "$T/pid")"
    kill -TERM "$PID"
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PID" 2>/dev/null && die "daemon ignored SIGTERM"
    PID=
    ;;
# ---- over the shm PCIe link (nbd-pcie-client as the host side) ------------------
pcie-nbdinfo)
    mkfile "$T/disk" 24M
    start_pcie -N disk "$T/disk"
    out=$(nbdinfo "$(pcie_uri disk)") || die "nbdinfo through the link"
    grep -q 'export-size: 25165824' <<<"$out" || die "size: $out"
    ok "nbdinfo through the link"
    expect_log "serving pcie link shm:$SHM"
    expect_log "pcie shm:$SHM"
    grep -q "pcie .* export disk: size 25165824" "$T/log" || die "no pcie connection line in the log"
    ok "connection logged with channel and export"
    ;;
pcie-nbdcopy)
    mkfile "$T/src" 48M random; mkfile "$T/disk" 48M
    start_pcie "$T/disk"
    nbdcopy "$T/src" "$(pcie_uri default)" || die "nbdcopy to the server"
    nbdcopy "$(pcie_uri default)" "$T/back" || die "nbdcopy from the server"
    [ "$(sha256sum <"$T/src")" = "$(sha256sum <"$T/back")" ] || die "round trip checksum differs"
    cmp "$T/src" "$T/disk" || die "backing file differs"
    n=$(grep -c "pcie .* export default" "$T/log")
    ok "nbdcopy round trip over the link, sha256 equal ($n channel connections)"
    # every channel's "closed" line tells what the DMA engine moved: both
    # copies' 48 MiB, and the CPU time of the emulated engine's long copies
    for _ in $(seq 100); do
        [ "$(grep -c "pcie .*: closed" "$T/log")" -ge "$n" ] && break; sleep 0.05
    done
    moved=$(sed -n 's/.*: closed; DMA engine moved \([0-9]*\) bytes.*/\1/p' "$T/log" | awk '{ s += $1 } END { print s + 0 }')
    [ "$moved" -ge $(( 2 * 48 * 1048576 )) ] || die "DMA engine moved $moved bytes, not 2 x 48 MiB: $(grep closed "$T/log")"
    grep -Eq "closed; DMA engine moved [0-9]+ bytes in [0-9]+ transfers, its emulated copies of 256 KiB or more took [0-9.]+ s of CPU" "$T/log" \
        || die "no emulated engine CPU time in the closed lines: $(grep closed "$T/log")"
    ok "closed lines: DMA engine moved $moved bytes, emulated copies timed"
    ;;
pcie-qemu-io)
    mkfile "$T/disk" 64M
    start_pcie "$T/disk"
    qemu-io -f raw "$(pcie_uri default)" \
        -c 'write -P 0xa5 0 1M' -c 'read -P 0xa5 0 1M' \
        -c 'write -P 0x3c 1000 100k' -c 'read -P 0x3c 1000 100k' \
        -c 'write -P 0x77 8M 32M' -c 'read -P 0x77 8M 32M' \
        -c 'write -z 4M 1M' -c 'read -P 0 4M 1M' -c 'flush' >"$T/out" 2>&1 || die "qemu-io: $(cat "$T/out")"
    grep -q 'Pattern verification failed' "$T/out" && die "qemu-io pattern mismatch: $(cat "$T/out")"
    ok "qemu-io patterns verified over the link (32 MiB requests chunked by the host)"
    ;;
pcie-fio)
    mkfile "$T/disk" 64M
    start_pcie "$T/disk"
    fio_randrw "$(pcie_uri default)" mixed 32 32M 3
    ok "fio randrw verify=crc32c over the link"
    ;;
pcie-readonly)
    mkfile "$T/disk" 1M random; cp "$T/disk" "$T/orig"
    printf '[generic]\npcie = shm:%s\n[d]\nexportname = %s\nreadonly = true\ntrim = true\n' "$SHM" "$T/disk" >"$T/cfg"
    start_pcie -C "$T/cfg"
    probe "unix:$T/c.sock" d readonly "$T/disk"
    cmp "$T/disk" "$T/orig" || die "read-only backing file changed"
    ;;
pcie-probe)
    mkfile "$T/disk" 4M random
    printf '[generic]\npcie = shm:%s\n[d]\nexportname = %s\nflush = true\nfua = true\ntrim = true\n' "$SHM" "$T/disk" >"$T/cfg"
    start_pcie -C "$T/cfg"
    for sc in bounds concurrent fua flush zeroes trim; do
        probe "unix:$T/c.sock" d "$sc" "$T/disk"
    done
    ;;
pcie-max-request)
    mkfile "$T/disk" 65M
    start_pcie "$T/disk"
    probe "unix:$T/c.sock" default max-request "$T/disk" | tee "$T/probe.out"
    grep -q "maximum request 67108864 bytes" "$T/probe.out" || die "not 64 MiB through the link"
    ok "64 MiB requests are served over the link (chunked by the host side)"
    ;;
pcie-cow)
    mkfile "$T/disk" 1M random; cp "$T/disk" "$T/orig"
    start_pcie -c "$T/disk"
    probe "unix:$T/c.sock" default cow "$T/disk"
    cmp "$T/disk" "$T/orig" || die "copy-on-write modified the base file"
    ;;
pcie-config-links)
    mkfile "$T/a" 1M
    printf '[generic]\npcie = shm:%s;shm:%s-2\npcie_channels = 2\npcie_ring_entries = 32\n[a]\nexportname = %s\n' \
        "$SHM" "$SHM" "$T/a" >"$T/cfg"
    start_pcie -C "$T/cfg"
    expect_log "serving pcie link shm:$SHM "
    expect_log "serving pcie link shm:$SHM-2 "
    grep -q "serving pcie link shm:$SHM .*2 ch" "$T/log" || die "pcie_channels = 2 not applied: $(grep serving "$T/log")"
    nbdinfo "$(pcie_uri a)" >/dev/null || die "nbdinfo through the first link"
    ok "two links from one pcie key, 2 channels each"
    ;;
pcie-duplicate-link)
    mkfile "$T/a" 1M
    printf '[generic]\npcie = shm:%s\n[a]\nexportname = %s\n' "$SHM" "$T/a" >"$T/cfg"
    RC=0; "$SERVER" -d -C "$T/cfg" --pcie "shm:$SHM" >"$T/log" 2>&1 || RC=$?
    [ "$RC" -eq 1 ] || die "exit $RC, expected 1"
    expect_log "pcie link 'shm:$SHM' given twice"
    ;;
pcie-host-vanish)
    mkfile "$T/disk" 64M
    start_pcie "$T/disk"
    fio --name=busy --ioengine=nbd --uri="$(pcie_uri default)" --rw=randrw --bs=64k \
        --iodepth=16 --size=32M --runtime=20 --time_based --output="$T/fio.out" >/dev/null 2>&1 &
    fpid=$!
    for _ in $(seq 100); do grep -q "ch .* export default" "$T/log" && break; sleep 0.05; done
    sleep 0.5
    kill -KILL "$CPID"; wait "$CPID" 2>/dev/null || true; CPID=
    kill "$fpid" 2>/dev/null || true; wait "$fpid" 2>/dev/null || true
    for _ in $(seq 60); do grep -q "closed" "$T/log" && break; sleep 0.1; done
    grep -q "ch .*: closed" "$T/log" || die "channel of the killed host never closed"
    ok "channels of a killed host closed"
    kill -0 "$PID" || die "server died with the host"
    rm -f "$T/c.sock"
    "$CLIENT" -n -pcie "shm:$SHM" -unix "$T/c.sock" >"$T/clog" 2>&1 &
    CPID=$!
    for _ in $(seq 100); do [ -S "$T/c.sock" ] && break; sleep 0.05; done
    probe "unix:$T/c.sock" default concurrent
    ok "a new host is served after the old one was killed mid-I/O"
    ;;
link-rw|link-invalid|link-readonly)
    mkfile "$T/disk" 16M
    ro=; [ "$name" = link-readonly ] && ro=-r
    start --pcie "shm:$SHM" $ro "$T/disk"
    "${LINKPROBE:?}" "shm:$SHM" default "${name#link-}" || die "srv-link-probe ${name#link-}"
    [ "$name" = link-invalid ] && expect_log "command: type 42 unknown"
    kill -0 "$PID" || die "server died"
    ;;
pcie-bad-link)
    mkfile "$T/a" 1M
    RC=0; "$SERVER" -d --pcie "bogus:$T/x" "$T/a" >"$T/log" 2>&1 || RC=$?
    [ "$RC" -eq 1 ] || die "exit $RC, expected 1"
    expect_log "error: pcie link bogus:$T/x: "
    ;;
pcie-sigterm)
    mkfile "$T/a" 1M
    start_pcie "$T/a"
    nbdinfo "$(pcie_uri default)" >/dev/null || die "nbdinfo through the link"
    stop
    [ "$RC" -eq 0 ] || die "exit $RC after SIGTERM"
    expect_log "stopped"
    ;;
*)
    die "unknown scenario $name"
    ;;
esac
echo "PASS: $name"

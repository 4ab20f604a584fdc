# Shared by the host-client end-to-end tests: an nbd-pcie-server with a
# scratch export on a fresh shared-memory link, and nbd-pcie-client serving
# it on a local unix socket. Names include the PID; everything is removed
# by PID on exit, even on failure. Source it, then call e2e_start.
set -euo pipefail
BUILD=${1:?usage: $0 BUILD_DIR [args]}
SERVER=$BUILD/ep-server/nbd-pcie-server
CLIENT=$BUILD/host-client/nbd-pcie-client
TAG=npc-e2e-$$
WORK=$(mktemp -d "/tmp/$TAG.XXXXXX")
SHM=/dev/shm/$TAG
SOCK=$WORK/nbd.sock
IMG=$WORK/scratch.img
SRV_PID= CLI_PID=

e2e_cleanup() {
    local rc=$?
    [ -n "$CLI_PID" ] && kill "$CLI_PID" 2>/dev/null && wait "$CLI_PID" 2>/dev/null
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
    if [ $rc -ne 0 ]; then
        echo "--- server log"; cat "$WORK/server.log" 2>/dev/null || true
        echo "--- client log"; cat "$WORK/client.log" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    rm -f "$SHM" "$SHM".*
    exit $rc
}
trap e2e_cleanup EXIT
trap 'exit 1' INT TERM

die() { echo "FAIL: $*" >&2; exit 1; }

# Waits until PATH exists (a socket, a file) or the process PID is gone.
wait_for() {
    local path=$1 pid=$2 i
    for i in $(seq 1 100); do
        [ -e "$path" ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# e2e_start_server [export size] [extra export config lines...]
e2e_start_server() {
    local size=${1:-64M}; shift || true
    truncate -s "$size" "$IMG"
    cat > "$WORK/server.conf" <<CONF
[generic]
allowlist = true
pcie = shm:$SHM
pcie_channels = 8
[scratch]
exportname = $IMG
flush = true
fua = true
trim = true
CONF
    for line in "$@"; do echo "$line" >> "$WORK/server.conf"; done
    "$SERVER" -d -C "$WORK/server.conf" > "$WORK/server.log" 2>&1 &
    SRV_PID=$!
    wait_for "$SHM" "$SRV_PID" || die "server did not create $SHM"
}

# e2e_start [export size] [extra export config lines...]: server and client -unix
e2e_start() {
    e2e_start_server "$@"
    "$CLIENT" -n -pcie "shm:$SHM" -unix "$SOCK" > "$WORK/client.log" 2>&1 &
    CLI_PID=$!
    wait_for "$SOCK" "$CLI_PID" || die "client did not create $SOCK"
}

uri() { echo "nbd+unix:///${1:-scratch}?socket=$SOCK"; }

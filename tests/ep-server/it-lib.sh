# shellcheck shell=bash
# Sourced by tests/ep-server/it.sh and tests/kmod/epf-it.sh: their server and
# client start-up waits and their failure report. The sourcing script defines
# die MESSAGE (report and exit 1) and keeps its logs in $T/log (server) and
# $T/clog (client).

# it_logs: the server's and the client's log, indented, on stderr.
it_logs() {
    [ -f "$T/log" ] && sed 's/^/  server: /' "$T/log" >&2
    [ -f "$T/clog" ] && sed 's/^/  client: /' "$T/clog" >&2
    return 0
}

# it_wait_ready PIDVAR: waits up to 10 s for the "info: ready:" line of the
# server whose PID is in the variable named PIDVAR; dies when the server
# exits first (it is reaped and PIDVAR cleared) or is not ready by then.
it_wait_ready() {
    local pid=${!1}
    for _ in $(seq 100); do
        grep -q 'info: ready:' "$T/log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; printf -v "$1" ''; die "server exited at start"; }
        sleep 0.1
    done
    die "server not ready after 10 s"
}

# it_wait_socket PID SOCKET TRIES: waits TRIES x 50 ms for the nbd-pcie-client
# PID to create SOCKET; dies when it exits first or has not by then.
it_wait_socket() {
    for _ in $(seq "$3"); do
        [ -S "$2" ] && return 0
        kill -0 "$1" 2>/dev/null || die "nbd-pcie-client exited"
        sleep 0.05
    done
    die "nbd-pcie-client did not create its socket"
}

#!/usr/bin/env bash
# bench-smoke: bench/run --quick still runs end to end, so the benchmark does
# not rot. Asserts the shape and sanity of its output, never a speed: every
# target x workload row in results.csv with non-zero throughput, latencies and
# CPU, the table, the plot and the transport table written, and nothing left
# behind (processes, tmpfs files).
# Usage: smoke.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=${1:?usage: smoke.sh SOURCE_DIR BUILD_DIR}
BUILD=${2:?usage: smoke.sh SOURCE_DIR BUILD_DIR}
for b in fio nbd-server nbdkit jq gnuplot; do
    command -v "$b" >/dev/null || { echo "SKIP: $b not installed (scripts/install-deps.sh)"; exit 77; }
done
OUT=$(mktemp -d /tmp/bench-smoke.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$SRC/bench/run" --quick --build "$BUILD" --out "$OUT" >"$OUT/stdout" 2>"$OUT/stderr" &
pid=$!
wait "$pid" || { cat "$OUT/stderr" >&2; fail "bench/run --quick exited $?"; }

# Nothing of that run is left: its tmpfs dir, link, and processes.
left=$(ls -d /dev/shm/npc-bench-"$pid"* 2>/dev/null || true)
[ -z "$left" ] || fail "left in /dev/shm: $left"
procs=$(pgrep -f "npc-bench-$pid" || true)
[ -z "$procs" ] || fail "processes left running: $(ps -o pid=,args= -p "${procs//$'\n'/,}")"

CSV=$OUT/results.csv
[ -s "$CSV" ] || fail "no results.csv"
head -n 1 "$CSV" | grep -q '^target,workload,iops,mbps,p50_us,p99_us,' || fail "results.csv header: $(head -n 1 "$CSV")"
rows=0
for t in nbd-pcie nbd-pcie-server nbd-server-tcp nbd-server-unix nbdkit; do
    for w in randread-4k-qd1 randread-4k-qd32 randwrite-4k-qd32 read-1m-qd8 write-1m-qd8; do
        line=$(grep "^$t,$w," "$CSV") || fail "no row for $t $w in results.csv"
        # iops mbps p50 p99 > 0, p99 >= p50, server and fio CPU per op > 0,
        # client CPU > 0 only for the relay (0 for the others).
        awk -F, -v t="$t" '
            function bad(m) { print "FAIL: " t " " $2 ": " m ": " $0 > "/dev/stderr"; exit 1 }
            {
                for (i = 3; i <= 6; i++) if (!($i > 0)) bad("column " i " not > 0")
                if ($6 < $5) bad("p99 < p50")
                if (!($8 > 0) || !($7 > 0)) bad("server CPU not > 0")
                if (!($14 > 0)) bad("fio CPU not > 0")
                if (t == "nbd-pcie" && !($10 > 0)) bad("client CPU not > 0")
                if (t != "nbd-pcie" && $10 != 0) bad("client CPU for a target without a relay")
                if ($15 != 1) bad("runs " $15 " != 1 (--quick)")
                # the emulated DMA engine times its copies of 256 KiB or more:
                # the 1 MiB workloads of nbd-pcie only; the stack less them
                if (NF != 21) bad(NF " columns, not 21")
                if (t == "nbd-pcie" && $2 ~ /-1m-/) {
                    if (!($18 > 0) || !($19 > 0)) bad("no emulated DMA engine CPU")
                    if (!($20 > 0) || !($20 < $11)) bad("stack less the engine not in (0, stack)")
                } else if ($18 != 0 || $20 != $11) bad("emulated DMA engine CPU where no long copy runs")
                # 4 KiB at QD1 above 10M IOPS or 1 MiB above 1 TB/s is no measurement.
                if ($3 > 1e7 || $4 > 1e6) bad("implausible throughput")
            }' <<<"$line"
        rows=$((rows + 1))
    done
done
[ "$(($(wc -l <"$CSV") - 1))" -eq "$rows" ] || fail "results.csv has $(($(wc -l <"$CSV") - 1)) rows, expected $rows"
[ "$(($(wc -l <"$OUT/runs.csv") - 1))" -eq "$rows" ] || fail "runs.csv rows != $rows"

grep -q '^Targets' "$OUT/table.txt" || fail "table.txt has no targets section"
grep -q 'IOPS/tcp' "$OUT/table.txt" || fail "table.txt has no ratios"
grep -q "less the emulated DMA engine's copies" "$OUT/table.txt" || fail "table.txt has no CPU less the engine's copies"
cmp -s "$OUT/table.txt" "$OUT/stdout" || fail "stdout is not table.txt"
grep -q 'median_us' "$OUT/transport.txt" || fail "transport.txt has no table"
[ "$(head -c 8 "$OUT/plot.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "plot.png is not a PNG"
[ "$(wc -l <"$OUT/load.txt")" -eq "$rows" ] || fail "load.txt does not have one line per run"
echo "bench-smoke: $rows rows, table, plot and transport table OK"

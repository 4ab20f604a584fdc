#!/usr/bin/env bash
# run-fuzz.sh FUZZER SEED_DIR WORK_DIR RUNS
# Runs a libFuzzer target for a bounded number of executions, starting from a
# copy of the seed corpus (the seeds in the source tree are never modified).
set -euo pipefail
fuzzer=$1 seeds=$2 work=$3 runs=$4
rm -rf "$work"; mkdir -p "$work"
if [ -d "$seeds" ]; then cp -r "$seeds"/. "$work"/; fi
exec "$fuzzer" -runs="$runs" -max_len=4096 -timeout=10 -rss_limit_mb=1024 "$work"

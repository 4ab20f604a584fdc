#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test through CTest.
#   build/      gcc, -Werror: every test (unit, integration, QEMU guest)
#   build/san/  clang, ASan+UBSan, libFuzzer targets: tests labelled "san"
#   build/tsan/ clang, ThreadSanitizer: tests labelled "tsan"
# Exits non-zero if anything fails; the last line sums up all three runs.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/install-deps.sh" || { echo "test: installing dependencies failed" >&2; exit 1; }
jobs=$(nproc)
passed=0 failed=0 rc=0

run_ctest() { # run_ctest DIR [ctest args...]
    local dir=$1; shift
    local log; log=$(mktemp)
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" "$@" 2>&1 | tee "$log"
    local line; line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        local f t
        f=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
        t=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
        passed=$((passed + t - f)); failed=$((failed + f))
        [ "$f" -eq 0 ] || rc=1
    elif grep -q 'No tests were found' "$log"; then
        :
    else
        echo "test: ctest in $dir printed no summary" >&2; rc=1
    fi
    rm -f "$log"
}

build() { # build DIR cmake-args...
    local dir=$1; shift
    cmake -S "$root" -B "$dir" "$@" >"$dir.configure.log" 2>&1 \
        || { mkdir -p "$dir"; cat "$dir.configure.log"; echo "test: configuring $dir failed" >&2; return 1; }
    cmake --build "$dir" -j"$jobs" 2>&1 | grep -vE '^\[ *[0-9]+%\] (Building|Linking)' \
        ; [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "test: building $dir failed" >&2; return 1; }
}

mkdir -p build
if build build/main -DNBDPCIE_WERROR=ON; then
    run_ctest build/main
else
    rc=1; failed=$((failed + 1))
fi
if build build/san -DCMAKE_C_COMPILER=clang -DNBDPCIE_WERROR=ON -DNBDPCIE_SANITIZE=ON \
        -DNBDPCIE_FUZZ=ON -DNBDPCIE_VM_TESTS=OFF; then
    run_ctest build/san -L san
else
    rc=1; failed=$((failed + 1))
fi
if build build/tsan -DCMAKE_C_COMPILER=clang -DNBDPCIE_WERROR=ON -DNBDPCIE_TSAN=ON \
        -DNBDPCIE_VM_TESTS=OFF; then
    run_ctest build/tsan -L tsan
else
    rc=1; failed=$((failed + 1))
fi
echo
echo "test: $passed passed, $failed failed"
exit $rc

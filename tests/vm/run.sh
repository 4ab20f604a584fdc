#!/usr/bin/env bash
# Runs one guest scenario by hand or from CTest:
#   tests/vm/run.sh [-B BUILD_DIR] NAME      (default BUILD_DIR: build/main)
# BUILD_DIR/tests/vm/vm-env.sh (written by CMake) says where the kernel, the
# initramfs, the logs and the binaries are.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../../build/main
if [ "${1:-}" = -B ]; then
    build=$2
    shift 2
fi
[ $# -eq 1 ] || { echo "usage: $0 [-B BUILD_DIR] SCENARIO (one of: $(cd "$here/scenarios" && ls | sed 's/\.sh$//' | tr '\n' ' '))" >&2; exit 2; }
env=$build/tests/vm/vm-env.sh
[ -f "$env" ] || { echo "run.sh: $env missing: configure and build with -DNBDPCIE_VM_TESTS=ON first" >&2; exit 2; }
[ -f "$here/scenarios/$1.sh" ] || { echo "run.sh: no scenario $here/scenarios/$1.sh" >&2; exit 2; }
# shellcheck source=/dev/null
. "$env"
[ -f "$VM_INITRAMFS" ] || { echo "run.sh: $VM_INITRAMFS missing: cmake --build $build" >&2; exit 2; }
exec bash "$here/scenarios/$1.sh"

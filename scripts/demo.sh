#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds, starts
# nbd-pcie-server with a scratch export on a shared-memory link, nbd-pcie-client
# serving that export on a local NBD socket, and a real NBD client (qemu-io,
# nbdcopy, nbdinfo) writing, reading back and verifying data through it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$root/build/main" >/dev/null
cmake --build "$root/build/main" -j"$(nproc)" >/dev/null
for bin in ep-server/nbd-pcie-server host-client/nbd-pcie-client; do
    if [ ! -x "$root/build/main/$bin" ]; then
        echo "demo: $(basename "$bin") is not built yet (see issues): nothing to run"
        exit 0
    fi
done
exec "$root/scripts/demo-run.sh" "$root/build/main"

#!/usr/bin/env bash
# vm-exports (issue 6, scenario 4): one EP, one link, two exports (alpha
# 32 MiB, beta 48 MiB, each pre-filled with its own pattern); the guest lists
# them (-l), attaches both at once on /dev/nbd0 and /dev/nbd1, reads the host
# data and writes to both in parallel; the host checks each backing file got
# exactly its own writes. Guest side: guest/exports.sh.
. "$(dirname "$0")/../lib.sh"
vm_init exports
ep_require

vm_two_exports

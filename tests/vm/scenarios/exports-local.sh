#!/usr/bin/env bash
# vm-exports-local (issue 6, scenario 4 through one relay): one EP, one link,
# two exports (alpha 32 MiB, beta 48 MiB, each pre-filled with its own
# pattern); in the guest ONE nbd-pcie-client serves the link on a local unix
# socket and Debian's nbd-client lists the exports and attaches both at once
# on /dev/nbd0 and /dev/nbd1; parallel writes to both; the host checks each
# backing file got exactly its own writes. (vm-exports: one nbd-pcie-client
# per device.) Guest side: guest/exports-local.sh.
. "$(dirname "$0")/../lib.sh"
vm_init exports-local
ep_require

vm_two_exports

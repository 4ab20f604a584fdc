/* nbdpcie-vmtool: the small helper the QEMU guest tests run in the guest
 * (and, for pattern checks, on the host against the EP's backing file).
 * Each section below lists what one .c file of this folder defines. */
#ifndef VMTOOL_INTERNAL_H
#define VMTOOL_INTERNAL_H

#include <stdint.h>
#include <stddef.h>

/* Each subcommand: argc/argv start at the subcommand's first argument;
 * returns the process exit status (0 success, 1 check failed, 2 usage). */

/* pci.c: libpciaccess (the same library nbd-pcie-client uses for -pcie pci:). */
int vmtool_cmd_pci_find(int argc, char **argv);
int vmtool_cmd_bar_write(int argc, char **argv);
int vmtool_cmd_bar_read(int argc, char **argv);
int vmtool_cmd_ctl_wait(int argc, char **argv);

/* genl.c: generic netlink family lookup through libnl-genl. */
int vmtool_cmd_genl_family(int argc, char **argv);

/* pattern.c: seeded pseudo-random data, written and verified at any offset. */
int vmtool_cmd_pattern(int argc, char **argv);
int vmtool_cmd_writeloop(int argc, char **argv);

/* main.c: number parsing shared by the subcommands. */
int vmtool_parse_u64(const char *what, const char *s, uint64_t *out);

#endif /* VMTOOL_INTERNAL_H */

/* nbdpcie-vmtool: entry point and argument helpers. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h"
#include "internal.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
} cmds[] = {
	{ "pci-find", vmtool_cmd_pci_find,
	  "pci-find VENDOR:DEVICE          print the address of each matching PCI device" },
	{ "bar-write", vmtool_cmd_bar_write,
	  "bar-write BDF BAR OFFSET TEXT   write TEXT (and a NUL) into a BAR" },
	{ "bar-read", vmtool_cmd_bar_read,
	  "bar-read BDF BAR OFFSET LEN     print up to LEN bytes of a BAR, stopping at NUL" },
	{ "ctl-wait", vmtool_cmd_ctl_wait,
	  "ctl-wait BDF KEY SECONDS        wait for a line KEY or KEY=VALUE in BAR2 text; print VALUE" },
	{ "genl-family", vmtool_cmd_genl_family,
	  "genl-family NAME                resolve a generic netlink family, print its id" },
	{ "pattern", vmtool_cmd_pattern,
	  "pattern write|verify PATH OFFSET LENGTH SEED|zero [direct] [sync]\n"
	  "                                write or check seeded data (zero: all zero bytes)" },
	{ "writeloop", vmtool_cmd_writeloop,
	  "writeloop PATH BLOCK COUNT SEED  write COUNT blocks with O_DIRECT|O_DSYNC, print ACK n after each" },
};

int vmtool_parse_u64(const char *what, const char *s, uint64_t *out)
{
	char *end;
	uint64_t v, mult = 1;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s) {
		fprintf(stderr, "vmtool: %s: '%s' is not a number\n", what, s);
		return -EINVAL;
	}
	switch (*end) {
	case 'K': mult = 1ULL << 10; end++; break;
	case 'M': mult = 1ULL << 20; end++; break;
	case 'G': mult = 1ULL << 30; end++; break;
	default: break;
	}
	if (*end) {
		fprintf(stderr, "vmtool: %s: '%s' has trailing characters\n", what, s);
		return -EINVAL;
	}
	if (v > UINT64_MAX / mult) {
		fprintf(stderr, "vmtool: %s: '%s' overflows 64 bits\n", what, s);
		return -ERANGE;
	}
	*out = v * mult;
	return 0;
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: nbdpcie-vmtool COMMAND ARGS...\n");
	for (i = 0; i < ARRAY_SIZE(cmds); i++)
		fprintf(f, "  %s\n", cmds[i].usage);
}

int main(int argc, char **argv)
{
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	for (i = 0; i < ARRAY_SIZE(cmds); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].run(argc - 2, argv + 2);
	fprintf(stderr, "vmtool: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}

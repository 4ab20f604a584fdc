/* Command line of nbd-pcie-client: nbd-client 3.24's options (single-dash long
 * options through getopt_long_only) plus -pcie LINK, -unix PATH, -pidfile. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Values for options that only have a long form. */
enum { OPT_PCIE = 0x100, OPT_PIDFILE, OPT_NBDTAB };

static const struct option long_opts[] = {
	{ "pcie", required_argument, NULL, OPT_PCIE },
	{ "pidfile", required_argument, NULL, OPT_PIDFILE },
	{ "nbdtab", required_argument, NULL, OPT_NBDTAB },
	{ "name", required_argument, NULL, 'N' },
	{ "block-size", required_argument, NULL, 'b' },
	{ "size", required_argument, NULL, 'B' },
	{ "timeout", required_argument, NULL, 't' },
	{ "connections", required_argument, NULL, 'C' },
	{ "persist", no_argument, NULL, 'p' },
	{ "readonly", no_argument, NULL, 'R' },
	{ "nofork", no_argument, NULL, 'n' },
	{ "identifier", required_argument, NULL, 'i' },
	{ "dead-timeout", required_argument, NULL, 'T' },
	{ "no-optgo", no_argument, NULL, 'g' },
	{ "disconnect", required_argument, NULL, 'd' },
	{ "check", required_argument, NULL, 'c' },
	{ "list", no_argument, NULL, 'l' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "unix", required_argument, NULL, 'u' },
	{ "swap", no_argument, NULL, 's' },
	{ "systemd-mark", no_argument, NULL, 'm' },
	/* nbd-client options that have no meaning over a PCIe link: accepted by
	 * the parser so that the message says why they are refused. */
	{ "nonetlink", no_argument, NULL, 'L' },
	{ "preinit", no_argument, NULL, 'P' },
	{ "sdp", no_argument, NULL, 'S' },
	{ "enable-tls", no_argument, NULL, 'x' },
	{ "certfile", required_argument, NULL, 'F' },
	{ "keyfile", required_argument, NULL, 'K' },
	{ "cacertfile", required_argument, NULL, 'A' },
	{ "tlshostname", required_argument, NULL, 'H' },
	{ NULL, 0, NULL, 0 },
};

/* Leading ':' makes getopt report a missing argument as ':' (not '?'). */
static const char short_opts[] = ":N:b:B:t:C:pRni:T:gd:c:lhVu:smLPSxF:K:A:H:";

void npc_cli_usage(FILE *f)
{
	fputs("Usage: nbd-pcie-client -pcie LINK [-N NAME] [-b BLOCKSIZE] [-B SIZE] [-t TIMEOUT]\n"
	      "         [-C CONNECTIONS] [-p|-persist] [-R|-readonly] [-n|-nofork]\n"
	      "         [-i IDENTIFIER] [-T DEAD_TIMEOUT] [-g|-no-optgo] [-s|-swap]\n"
	      "         [-m|-systemd-mark] [-pidfile PATH] /dev/nbdX\n"
	      "   or: nbd-pcie-client -pcie LINK -unix PATH [-N NAME] [-C CONNECTIONS] [-n]\n"
	      "         [-pidfile PATH]      serve the exports on a local NBD unix socket\n"
	      "   or: nbd-pcie-client -l -pcie LINK      list the exports\n"
	      "   or: nbd-pcie-client -d /dev/nbdX       disconnect\n"
	      "   or: nbd-pcie-client -c /dev/nbdX       check (exit 0 and print the PID if connected)\n"
	      "   or: nbd-pcie-client nbdX               settings from /etc/nbdtab (pcie=LINK)\n"
	      "   or: nbd-pcie-client -h | -V\n"
	      "LINK: pci:DOMAIN:BUS:DEV.FN or pci:VENDOR:DEVICE (the EP's PCI function; through\n"
	      "      nbd-pcie-host.ko when it is bound, else BAR-only) or shm:/dev/shm/NAME;\n"
	      "      options in docs/transport.md (Link strings).\n"
	      "BLOCKSIZE: 512, 1024, 2048 or 4096 (default: the export's minimum, at least 512).\n"
	      "TIMEOUT, DEAD_TIMEOUT: seconds. Exit status: 0 success, 1 failure;\n"
	      "-c: 0 connected, 1 not connected, 2 error. See nbd-pcie-client(8) in docs/.\n",
	      f);
}

int npc_cli_device_index(const char *dev)
{
	const char *p = dev;
	char *end;
	unsigned long v;

	if (strncmp(p, "/dev/", 5) == 0)
		p += 5;
	if (strncmp(p, "nbd", 3) != 0)
		return -EINVAL;
	p += 3;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(p, &end, 10);
	/* The kernel's nbd indices are ints; anything longer is not a device. */
	if (errno || *end || v > 0x7fffffffUL)
		return -EINVAL;
	return (int)v;
}

int npc_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -EINVAL; } while (0)

static int set_mode(struct npc_opts *o, enum npc_mode m, const char *flag, char *err, size_t errlen)
{
	static const char *const names[] = {
		[NPC_MODE_DISCONNECT] = "-d", [NPC_MODE_CHECK] = "-c", [NPC_MODE_LIST] = "-l",
		[NPC_MODE_LOCAL] = "-unix", [NPC_MODE_HELP] = "-h", [NPC_MODE_VERSION] = "-V",
	};

	if (o->mode != NPC_MODE_ATTACH && o->mode != m)
		FAIL("%s cannot be combined with %s: give one of -d, -c, -l, -unix, -h, -V",
		     flag, names[o->mode]);
	o->mode = m;
	return 0;
}

static int set_device(struct npc_opts *o, const char *flag, const char *dev, char *err,
		      size_t errlen)
{
	int idx = npc_cli_device_index(dev);

	if (idx < 0)
		FAIL("%s%s'%s' is not an nbd device: expected /dev/nbdN or nbdN",
		     flag, *flag ? " " : "", dev);
	o->device = dev;
	o->dev_index = idx;
	return 0;
}

static void defaults(struct npc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = NPC_MODE_ATTACH;
	o->name = "";
	o->dev_index = -1;
	o->connections = 1;
}

int npc_cli_parse(int argc, char **argv, struct npc_opts *o, char *err, size_t errlen)
{
	uint64_t v;
	int c, r;

	defaults(o);
	optind = 0; /* glibc: full re-initialisation, so the parser can run twice */
	opterr = 0;
	while ((c = getopt_long_only(argc, argv, short_opts, long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_PCIE:
			if (!*optarg)
				FAIL("-pcie '': empty link: give e.g. pci:0000:01:00.0 or shm:/dev/shm/NAME");
			o->link = optarg;
			break;
		case OPT_PIDFILE:
			o->pidfile = optarg;
			break;
		case OPT_NBDTAB:
			o->nbdtab = optarg;
			break;
		case 'N':
			/* The protocol's limit on export names. */
			if (strlen(optarg) > 4096)
				FAIL("-N: export name of %zu bytes is longer than the NBD limit of 4096",
				     strlen(optarg));
			o->name = optarg;
			break;
		case 'b':
			if (npc_parse_u64(optarg, 0, NPC_BLOCK_MAX, &v) || v < NPC_BLOCK_MIN || (v & (v - 1)))
				FAIL("-b %s: block size must be 512, 1024, 2048 or 4096", optarg);
			o->block_size = (uint32_t)v;
			break;
		case 'B':
			if (npc_parse_u64(optarg, 0, INT64_MAX, &v) || v == 0)
				FAIL("-B %s: size must be a positive number of bytes", optarg);
			o->size = v;
			break;
		case 't':
			if (npc_parse_u64(optarg, 0, UINT32_MAX, &v))
				FAIL("-t %s: timeout must be a number of seconds from 0 to %u",
				     optarg, UINT32_MAX);
			o->timeout = v;
			break;
		case 'T':
			if (npc_parse_u64(optarg, 0, UINT32_MAX, &v))
				FAIL("-T %s: dead connection timeout must be a number of seconds from 0 to %u",
				     optarg, UINT32_MAX);
			o->dead_timeout = v;
			break;
		case 'C':
			if (npc_parse_u64(optarg, 0, NPC_CONNECTIONS_MAX, &v) || v == 0)
				FAIL("-C %s: connections must be from 1 to %u", optarg,
				     NPC_CONNECTIONS_MAX);
			o->connections = (unsigned)v;
			o->connections_set = true;
			break;
		case 'i':
			/* Kernel sysfs shows it in one page; keep it far below. */
			if (!*optarg || strlen(optarg) > 255)
				FAIL("-i: identifier must be 1 to 255 characters (got %zu)",
				     strlen(optarg));
			o->identifier = optarg;
			break;
		case 'p': o->persist = true; break;
		case 'R': o->readonly = true; break;
		case 'n': o->nofork = true; break;
		case 'g': o->no_optgo = true; break;
		case 's': o->swap = true; break;
		case 'm': o->systemd_mark = true; break;
		case 'd':
			if ((r = set_mode(o, NPC_MODE_DISCONNECT, "-d", err, errlen)) ||
			    (r = set_device(o, "-d", optarg, err, errlen)))
				return r;
			break;
		case 'c':
			if ((r = set_mode(o, NPC_MODE_CHECK, "-c", err, errlen)) ||
			    (r = set_device(o, "-c", optarg, err, errlen)))
				return r;
			break;
		case 'l':
			if ((r = set_mode(o, NPC_MODE_LIST, "-l", err, errlen)))
				return r;
			break;
		case 'u':
			if ((r = set_mode(o, NPC_MODE_LOCAL, "-unix", err, errlen)))
				return r;
			/* sun_path holds 108 bytes with the terminating NUL. */
			if (!*optarg || strlen(optarg) > 107)
				FAIL("-unix '%s': socket path must be 1 to 107 bytes", optarg);
			o->unix_path = optarg;
			break;
		case 'h':
			if ((r = set_mode(o, NPC_MODE_HELP, "-h", err, errlen)))
				return r;
			break;
		case 'V':
			if ((r = set_mode(o, NPC_MODE_VERSION, "-V", err, errlen)))
				return r;
			break;
		case 'L':
			FAIL("-L: the ioctl interface is not supported; nbd-pcie-client configures the device through netlink only (drop -L)");
		case 'P':
			FAIL("-P: preinit is not supported: the export is always negotiated over the link (drop -P)");
		case 'S':
			FAIL("-S: SDP is not supported: the transport is the PCIe link (drop -S)");
		case 'x': case 'F': case 'K': case 'A': case 'H':
			FAIL("%s: TLS is not supported: a PCIe link is point to point, not a network (drop the TLS options)",
			     argv[optind - 1]);
		case ':':
			FAIL("%s: missing argument; see nbd-pcie-client -h", argv[optind - 1]);
		case '?':
		default:
			if (optopt > 0 && optopt < 0x100)
				FAIL("unknown option '-%c'; see nbd-pcie-client -h", optopt);
			FAIL("unknown option '%s'; see nbd-pcie-client -h", argv[optind - 1]);
		}
	}

	/* Positional arguments: the device for attach; nothing else. */
	for (int i = optind; i < argc; i++) {
		if ((o->mode == NPC_MODE_ATTACH) && !o->device) {
			if ((r = set_device(o, "", argv[i], err, errlen)))
				return r;
			continue;
		}
		FAIL("unexpected argument '%s'; see nbd-pcie-client -h", argv[i]);
	}

	switch (o->mode) {
	case NPC_MODE_HELP:
	case NPC_MODE_VERSION:
	case NPC_MODE_DISCONNECT:
	case NPC_MODE_CHECK:
		return 0;
	case NPC_MODE_LIST:
		if (!o->link)
			FAIL("-l needs -pcie LINK: the link whose exports to list (e.g. -pcie pci:0000:01:00.0)");
		return 0;
	case NPC_MODE_LOCAL:
		if (!o->link)
			FAIL("-unix needs -pcie LINK: the link whose exports to serve");
		if (o->persist)
			FAIL("-p: persist applies to a kernel device; in -unix mode clients reconnect themselves");
		return 0;
	case NPC_MODE_ATTACH:
		if (!o->device && !o->link)
			FAIL("missing -pcie LINK and device: e.g. nbd-pcie-client -pcie pci:0000:01:00.0 -N NAME /dev/nbd0");
		if (!o->device)
			FAIL("missing device: give the nbd device to attach, e.g. /dev/nbd0");
		if (!o->link) {
			/* nbd-client nbdX: take everything from nbdtab. */
			if (argc - optind == 1 && optind == 1) {
				o->mode = NPC_MODE_NBDTAB;
				return 0;
			}
			FAIL("missing -pcie LINK for %s: e.g. -pcie pci:0000:01:00.0 or -pcie shm:/dev/shm/NAME",
			     o->device);
		}
		if (o->size && o->block_size && o->size % o->block_size)
			FAIL("-B %" PRIu64 ": size must be a multiple of the block size %u",
			     o->size, o->block_size);
		return 0;
	case NPC_MODE_NBDTAB:
		break;
	}
	return 0;
}

/* The command line, in nbd-server's style:
 *   nbd-pcie-server -C FILE [-d] [-p PIDFILE] [-M MAX] [--pcie LINK]...
 *   nbd-pcie-server [options] [ip@]PORT FILE [SIZE] [-r] [-c]
 *   nbd-pcie-server [options] (--pcie LINK | -u SOCKET)... FILE [SIZE] [-r] [-c]
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "common/compiler.h"
#include "internal.h"

/* Long-only options. */
enum { OPT_PCIE = 256, OPT_SYSLOG, OPT_THREADS };

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, 'C' },
	{ "foreground", no_argument, NULL, 'd' },
	{ "pid-file", required_argument, NULL, 'p' },
	{ "max-connections", required_argument, NULL, 'M' },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ "read-only", no_argument, NULL, 'r' },
	{ "copy-on-write", no_argument, NULL, 'c' },
	{ "name", required_argument, NULL, 'N' },
	{ "unixsock", required_argument, NULL, 'u' },
	{ "pcie", required_argument, NULL, OPT_PCIE },
	{ "syslog", no_argument, NULL, OPT_SYSLOG },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ NULL, 0, NULL, 0 },
};

void srv_cli_usage(FILE *out)
{
	fprintf(out,
"Usage: nbd-pcie-server -C FILE [-d] [-p PIDFILE] [-M MAX] [--pcie LINK]...\n"
"       nbd-pcie-server [OPTIONS] [IP@]PORT FILE [SIZE] [-r] [-c]\n"
"       nbd-pcie-server [OPTIONS] (--pcie LINK | -u SOCKET)... FILE [SIZE] [-r] [-c]\n"
"\n"
"Serves files and block devices with nbd-server's semantics over PCIe links\n"
"(channels of the nbd-pcie transport), TCP and unix sockets.\n"
"\n"
"  -C, --config FILE        nbd-server config file (see docs/nbd-pcie-server.md)\n"
"  -d, --foreground         stay in the foreground, log to stderr\n"
"  -p, --pid-file FILE      write the server's PID to FILE\n"
"  -M, --max-connections N  connections at once (0 = unlimited)\n"
"      --pcie LINK          serve the exports over LINK (repeatable), e.g.\n"
"                           shm:/dev/shm/nbd-pcie0, or epf:/dev/nbd-pcie-ep0 on\n"
"                           an endpoint SoC (docs/transport.md, Link strings)\n"
"  -u, --unixsock PATH      serve on a unix socket (no TCP unless a PORT is given)\n"
"  -N, --name NAME          export name for FILE (default \"default\"; the\n"
"                           empty name \"\" always selects the first export)\n"
"  -r, --read-only          export FILE read-only\n"
"  -c, --copy-on-write      writes go to a per-connection diff, FILE is never\n"
"                           modified\n"
"      --threads N          worker threads, one io_uring each (default %d, max %d)\n"
"      --syslog             log to syslog even in the foreground\n"
"  -V, --version            print the version and exit\n"
"  -h, --help               print this help and exit\n"
"\n"
"  [IP@]PORT                TCP port (0 = any free port, logged) and optional\n"
"                           listen address\n"
"  SIZE                     export size in bytes (K/M/G/T suffixes), at most\n"
"                           the size of FILE\n"
"\n"
"Requests of up to %u MiB are served; larger ones get EINVAL (a larger WRITE\n"
"also ends its connection: its payload is not read).\n"
"Memory per socket connection: at most %u MiB of request payload buffers (in\n"
"use or kept for reuse) plus %u KiB of state; PCIe channels use the link's\n"
"staging memory instead.\n"
"SIGTERM/SIGINT: answer requests in flight, flush, exit 0.\n",
	        SRV_DEFAULT_THREADS, SRV_MAX_THREADS, SRV_MAX_REQUEST >> 20,
	        SRV_CONN_PAYLOAD_BUDGET >> 20, SRV_CONN_STATE_KIB);
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* "[ip@]PORT": fills addr (or NULL) and returns the port part, or NULL. */
static const char *split_port(const char *s, char **addr)
{
	const char *at = strrchr(s, '@');
	const char *p = at ? at + 1 : s;
	unsigned port;

	if (parse_uint(p, 65535, &port))
		return NULL;
	if (at && at == s)
		return NULL;
	*addr = at ? g_strndup(s, (gsize)(at - s)) : NULL;
	return p;
}

int srv_cli_parse(int argc, char **argv, struct srv_cli *cli, char *err, size_t errlen)
{
	const char *pos[8];
	int npos = 0;
	int opt;

	memset(cli, 0, sizeof(*cli));
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":C:dp:M:VhrcN:u:", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'C': cli->config_file = optarg; break;
		case 'd': cli->foreground = true; break;
		case 'p': cli->pidfile = optarg; break;
		case 'M':
			if (parse_uint(optarg, 1u << 30, &cli->max_conn)) {
				snprintf(err, errlen, "-M '%s': not a number of connections (0 to %u)",
				         optarg, 1u << 30);
				return -EINVAL;
			}
			break;
		case 'V': cli->version = true; break;
		case 'h': cli->help = true; break;
		case 'r': cli->readonly = true; break;
		case 'c': cli->cow = true; break;
		case 'N': cli->name = optarg; break;
		case 'u': cli->unixsock = optarg; break;
		case OPT_PCIE: {
			size_t n = cli->pcie ? g_strv_length(cli->pcie) : 0;
			if (!*optarg) {
				snprintf(err, errlen, "--pcie '': empty link string");
				return -EINVAL;
			}
			cli->pcie = g_renew(char *, cli->pcie, n + 2);
			cli->pcie[n] = g_strdup(optarg);
			cli->pcie[n + 1] = NULL;
			break;
		}
		case OPT_SYSLOG: cli->syslog = true; break;
		case OPT_THREADS:
			if (parse_uint(optarg, SRV_MAX_THREADS, &cli->threads) || !cli->threads) {
				snprintf(err, errlen, "--threads '%s': not a thread count (1 to %d)",
				         optarg, SRV_MAX_THREADS);
				return -EINVAL;
			}
			break;
		case ':':
			snprintf(err, errlen, "option %s needs a value", argv[optind - 1]);
			return -EINVAL;
		default:
			snprintf(err, errlen, "unknown option '%s' (see --help)", argv[optind - 1]);
			return -EINVAL;
		}
	}
	for (int i = optind; i < argc; i++) {
		if (npos == (int)ARRAY_SIZE(pos) || npos == 3) {
			snprintf(err, errlen, "too many arguments: '%s' (expected [IP@]PORT FILE [SIZE])",
			         argv[i]);
			return -EINVAL;
		}
		pos[npos++] = argv[i];
	}
	if (cli->help || cli->version)
		return 0;
	if (cli->config_file && npos) {
		snprintf(err, errlen, "'%s': a command-line export cannot be combined with -C %s",
		         pos[0], cli->config_file);
		return -EINVAL;
	}
	if (cli->config_file && (cli->readonly || cli->cow || cli->name)) {
		snprintf(err, errlen, "-r, -c and -N apply to a command-line export, not to -C %s",
		         cli->config_file);
		return -EINVAL;
	}
	if (!cli->config_file && npos == 0) {
		snprintf(err, errlen, "nothing to serve: give -C FILE or [IP@]PORT FILE (see --help)");
		return -EINVAL;
	}
	if (npos == 3 || (npos == 2 && split_port(pos[0], &cli->addr))) {
		cli->port = split_port(pos[0], &cli->addr);
		if (!cli->port) {
			snprintf(err, errlen, "'%s': not a [IP@]PORT (port 0 to 65535)", pos[0]);
			return -EINVAL;
		}
		cli->file = pos[1];
		cli->size = npos == 3 ? pos[2] : NULL;
	} else if (npos) {
		cli->file = pos[0];
		cli->size = npos == 2 ? pos[1] : NULL;
		if (!cli->pcie && !cli->unixsock) {
			snprintf(err, errlen, "'%s': a FILE without [IP@]PORT needs --pcie LINK or -u "
			         "SOCKET", cli->file);
			return -EINVAL;
		}
	}
	return 0;
}

void srv_cli_free(struct srv_cli *cli)
{
	g_strfreev(cli->pcie);
	g_free(cli->addr);
	memset(cli, 0, sizeof(*cli));
}

int srv_cli_to_config(const struct srv_cli *cli, struct srv_config *c, char *err, size_t errlen)
{
	int rc;

	srv_config_init(c);
	if (cli->config_file) {
		rc = srv_config_load(c, cli->config_file, err, errlen);
		if (rc)
			return rc;
		if (cli->max_conn)
			c->maxconnections = cli->max_conn;
	} else {
		struct srv_export_cfg *e;
		c->origin = g_strdup("command line");
		e = srv_config_add_export(c, cli->name ? cli->name : "default", cli->file,
		                          "command line");
		e->readonly = cli->readonly;
		e->copyonwrite = cli->cow;
		e->maxconnections = cli->max_conn;
		/* nbd-server's command-line export advertises flush and FUA only when
		 * configured; ours always does: a user on the command line gets safe
		 * defaults. */
		e->flush = true;
		e->fua = true;
		if (cli->size) {
			rc = srv_parse_size(cli->size, &e->filesize);
			if (rc || e->filesize == 0) {
				snprintf(err, errlen, "SIZE '%s': not a size (bytes > 0, optional "
				         "K/M/G/T suffix)", cli->size);
				return -EINVAL;
			}
		}
		if (cli->port) {
			c->port = g_strdup(cli->port);
			c->listenaddr = g_strdup(cli->addr);
			c->port_set = true;
		}
	}
	if (cli->unixsock) {
		g_free(c->unixsock);
		c->unixsock = g_strdup(cli->unixsock);
		if (cli->port)
			c->duallisten = true;
	}
	for (char **p = cli->pcie; p && *p; p++)
		srv_config_add_pcie(c, *p);
	if (cli->threads)
		c->max_threads = cli->threads;
	return srv_config_finish(c, err, errlen);
}

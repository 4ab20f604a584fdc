/* nbd-pcie-server internals: a map of the modules of ep-server/.
 * Every non-static symbol carries the srv_ prefix. */
#ifndef EP_SERVER_INTERNAL_H
#define EP_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- log.c: one line per event, stderr or syslog ------------------------- */
typedef void (*srv_log_sink_fn)(int prio, const char *msg, void *ctx);
void srv_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_log_to_syslog(bool on);
void srv_log_set_level(int prio);
void srv_log_set_sink(srv_log_sink_fn fn, void *ctx);   /* tests: capture messages */

/* ---- config.c: nbd-server's config format (GLib key file) ---------------- */

/* nbd-server's default TCP port (IANA-assigned to NBD). */
#define SRV_DEFAULT_PORT "10809"
/* Workers (threads, one io_uring each) when max_threads is not set: the
 * 2-core SoCs we target gain nothing from more. */
#define SRV_DEFAULT_THREADS 2
/* Upper bound on max_threads: one ring per worker, and more workers than
 * the largest EP SoC has cores only adds contention. */
#define SRV_MAX_THREADS 64

/* Largest request payload served (the limit; the kernel sends at
 * most 32 MiB, qemu 32 MiB): larger requests get EINVAL/EOVERFLOW. */
#define SRV_MAX_REQUEST (64u << 20)
/* Payload buffers one socket connection may hold at once: one request of
 * the maximum size always fits, so a connection never deadlocks. */
#define SRV_CONN_PAYLOAD_BUDGET (64u << 20)
/* Fixed state per connection (input buffer, request slots), for --help. */
#define SRV_CONN_STATE_KIB 256u

struct srv_export_cfg {
	char *name;             /* the group name = the NBD export name */
	char *path;             /* exportname: file or block device */
	char *origin;           /* config file the group came from (for messages) */
	uint64_t filesize;      /* 0 = the size of the backing store */
	bool readonly, flush, fua, trim, rotational, sync;
	bool copyonwrite, sparse_cow;
	char *cowdir;           /* NULL = next to the base file */
	unsigned maxconnections;   /* 0 = unlimited */
	char *authfile;         /* NULL = every TCP client allowed */
};

struct srv_config {
	char *origin;           /* main config file, or "command line" */
	char *listenaddr;       /* NULL = all addresses */
	char *port;             /* TCP port; used only when tcp is true */
	bool tcp;               /* derived: serve TCP (see srv_config_finish) */
	char *unixsock;
	bool duallisten, allowlist;
	char *user, *group;
	unsigned max_threads;
	unsigned maxconnections;   /* 0 = unlimited */
	char **pcie;            /* NULL-terminated link strings, may be NULL */
	unsigned pcie_channels, pcie_ring_entries;
	uint32_t pcie_data_per_channel;
	struct srv_export_cfg *exports;
	size_t nexports;
	bool port_set;          /* [generic] port or listenaddr was given */
};

void srv_config_init(struct srv_config *c);
/* Loads FILE (and its includedir) into c. On error returns -errno with a
 * message naming file, group, key and value in err; warnings go to srv_log. */
int  srv_config_load(struct srv_config *c, const char *file, char *err, size_t errlen);
/* Appends an export (command-line form); takes copies of the strings. */
struct srv_export_cfg *srv_config_add_export(struct srv_config *c, const char *name,
                                             const char *path, const char *origin);
/* Appends a PCIe link string. */
void srv_config_add_pcie(struct srv_config *c, const char *link);
/* Derives c->tcp and checks the whole configuration (at least one export,
 * something to listen on). */
int  srv_config_finish(struct srv_config *c, char *err, size_t errlen);
void srv_config_free(struct srv_config *c);
/* Parses a size with an optional K/M/G/T suffix (powers of 1024). */
int  srv_parse_size(const char *s, uint64_t *out);

/* ---- cli.c: the command line -------------------------------------------- */
struct srv_cli {
	const char *config_file;   /* -C */
	bool foreground;           /* -d */
	const char *pidfile;       /* -p */
	unsigned max_conn;         /* -M, 0 = not given */
	bool help, version;
	char **pcie;               /* --pcie, NULL-terminated (owned) */
	const char *unixsock;      /* -u / --unixsock */
	const char *name;          /* -N / --name */
	const char *port;          /* short form [ip@]PORT, split into addr + port */
	char *addr;                /* owned */
	const char *file;
	const char *size;
	bool readonly, cow;        /* -r, -c */
	bool syslog;               /* -l / --syslog */
	unsigned threads;          /* -t, 0 = not given */
};

/* Parses argv; 0 or -EINVAL with a message in err. */
int  srv_cli_parse(int argc, char **argv, struct srv_cli *cli, char *err, size_t errlen);
void srv_cli_free(struct srv_cli *cli);
/* Builds the configuration the command line asks for. */
int  srv_cli_to_config(const struct srv_cli *cli, struct srv_config *c, char *err, size_t errlen);
void srv_cli_usage(FILE *out);

#endif /* EP_SERVER_INTERNAL_H */

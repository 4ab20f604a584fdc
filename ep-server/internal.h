/* nbd-pcie-server internals: a map of the modules of ep-server/.
 * Every non-static symbol carries the srv_ prefix. */
#ifndef EP_SERVER_INTERNAL_H
#define EP_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

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
/* Payload buffers one socket connection may hold at once, in use or kept
 * for reuse: one request of the maximum size always fits, so a connection
 * never deadlocks. */
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


/* ---- export.c: backing stores ------------------------------------------- */
#include <nbdproto/nbd.h>
#include <nbdproto/server.h>
#include <nbdproto/validate.h>
#include <stdatomic.h>

/* Preferred block size advertised for files: the page size, which the page
 * cache works in. */
#define SRV_PREF_BLOCK 4096u

struct srv_export {
	const struct srv_export_cfg *cfg;
	int fd;                 /* O_RDONLY when readonly or copyonwrite */
	uint64_t size;          /* export size */
	bool is_blk;            /* block device: BLKDISCARD / BLKZEROOUT */
	bool rotational;        /* the block device reports a rotating disk */
	bool in_memory;         /* regular file on tmpfs or ramfs */
	bool inline_rw;         /* READ/WRITE by pread/pwrite on the worker, not io_uring:
	                           memory-backed file without RWF_NOWAIT (export.c) */
	const uint8_t *map;     /* read-only mapping of size bytes for direct reads (mapread.c),
	                           NULL when the export has none */
	uint32_t min_block, pref_block, max_block;
	uint16_t tflags;        /* NBD_FLAG_* without HAS_FLAGS */
	atomic_uint nconn;      /* connections in transmission */
};

/* Opens cfg->path (never for writing when readonly or copyonwrite) and works
 * out size, flags and block sizes. 0 or -errno with a message. */
int  srv_export_open(struct srv_export *e, const struct srv_export_cfg *cfg,
                     char *err, size_t errlen);
void srv_export_close(struct srv_export *e);
/* Whether authfile (if any) lets a TCP client with this address in. */
bool srv_export_allows(const struct srv_export *e, const struct sockaddr *sa);

/* ---- mapread.c: direct reads from a memory-backed export's pages ---------
 * srv_export_map maps an in-memory, non-copy-on-write export read-only (and
 * installs the process's SIGBUS handler); failures only log: the export
 * then has no map. srv_map_read calls fn with the mapping at off, guarded:
 * its result, -EIO when the file no longer holds off + len (checked before,
 * or a fault while fn read it), -EINVAL outside the export. */
void srv_export_map(struct srv_export *e);
int  srv_map_guard_install(void);   /* (re)installs the SIGBUS handler; 0 or -errno */
void srv_export_unmap(struct srv_export *e);
/* Whether [off, off + len) can be read from the map: inside the export and
 * the file, every page in memory (no hole, nothing swapped out). */
bool srv_map_covers(const struct srv_export *e, uint64_t off, uint32_t len);
typedef int (*srv_map_fn)(void *arg, const void *src);
int  srv_map_read(const struct srv_export *e, uint64_t off, uint32_t len, srv_map_fn fn,
                  void *arg);

/* ---- cow.c: copy-on-write diffs (one per connection) --------------------- */
struct srv_cow;
int  srv_cow_open(const struct srv_export *e, unsigned long conn_id, struct srv_cow **out,
                  char *err, size_t errlen);
void srv_cow_close(struct srv_cow *c);   /* NULL-safe; discards the diff */
int  srv_cow_read(struct srv_cow *c, void *buf, uint32_t len, uint64_t off);
int  srv_cow_write(struct srv_cow *c, const void *buf, uint32_t len, uint64_t off);
int  srv_cow_zero(struct srv_cow *c, uint32_t len, uint64_t off);

/* ---- engine.c: workers, connections and requests ------------------------- */
struct srv_server;
struct srv_worker;
struct srv_conn;

/* What a CQE's user_data points at: the first member of each owner. */
enum srv_ev_kind { SRV_EV_REQ = 1, SRV_EV_POLL, SRV_EV_WAKE, SRV_EV_CANCEL };
struct srv_ev { enum srv_ev_kind kind; };

/* One NBD request from validation to reply. Owned by its connection. */
struct srv_req {
	struct srv_ev ev;       /* SRV_EV_REQ */
	struct srv_conn *conn;
	struct nbd_request r;
	void *buf;              /* payload: WRITE data in, READ data out */
	uint32_t bufcap;        /* bytes allocated at buf (socket connections) */
	uint32_t err;           /* NBD error of the reply (0 = success) */
	uint32_t stage;         /* engine's progress through the command */
	uint64_t done;          /* bytes done of a READ/WRITE */
	struct srv_req *next;   /* connection's queues */
	void *priv;             /* the connection's own per-request data */
	bool direct;            /* READ to be pushed from the export's map by the
	                           connection's reply (ops->read_direct) */
};

/* How a connection reaches its peer: a socket or a PCIe channel. Every
 * callback runs on the connection's worker thread and must not block. */
struct srv_conn_ops {
	const char *kind;                       /* "tcp", "unix", "pcie" */
	/* Handshake bytes (required). -EAGAIN when nothing can move now; recv
	 * returns 0 when the peer closed. */
	ssize_t (*recv)(struct srv_conn *c, void *buf, size_t len);
	ssize_t (*send)(struct srv_conn *c, const void *buf, size_t len);
	/* The handshake is over (required); rest/nrest: bytes received beyond
	 * it, the first transmission bytes. 0 or -errno. */
	int (*begin)(struct srv_conn *c, const void *rest, size_t nrest);
	/* Transmission (required): take new requests (validate each through
	 * srv_conn_validate, hand ready ones to srv_engine_submit) and push out
	 * queued replies. >0 progress, 0 idle, -errno: connection down. When
	 * c->draining is set it takes no new requests. */
	int (*pump)(struct srv_conn *c);
	/* A request finished with q->err (required): queue its reply. The
	 * connection owns and frees q. Called also when the peer is gone. */
	void (*reply)(struct srv_conn *c, struct srv_req *q);
	/* Optional: fd to wait on when idle and its poll events; NULL for
	 * connections that must be polled. A PCIe channel returns its
	 * doorbell (-1 when it has none: it is polled with back-off). */
	int (*poll_fd)(struct srv_conn *c, unsigned *events);
	/* Optional, for connections polled in memory (PCIe channels): the
	 * worker is about to sleep. >0: armed, the peer rings poll_fd, call
	 * disarm after the sleep; 0: work is pending, do not sleep; <0:
	 * nothing rings us (no doorbell), poll with back-off. */
	int (*arm)(struct srv_conn *c);
	void (*disarm)(struct srv_conn *c);
	/* Optional: whether this connection's reply can push a READ's data
	 * straight from the export's map (q->direct; mapread.c). */
	bool (*read_direct)(struct srv_conn *c);
	/* Required: nothing left to send to the peer. */
	bool (*drained)(struct srv_conn *c);
	/* Required: frees the connection (called once nothing is in flight). */
	void (*destroy)(struct srv_conn *c);
	/* Optional: text appended to the connection's "closed" log line
	 * (statistics), "; ..." or left empty. */
	void (*close_note)(struct srv_conn *c, char *buf, size_t len);
};

enum srv_conn_state { SRV_C_HANDSHAKE, SRV_C_TRANSMISSION, SRV_C_CLOSING };

/* Handshake input buffered per connection: options are small. */
#define SRV_HS_BUF 4096

struct srv_conn {
	struct srv_ev poll_ev;  /* SRV_EV_POLL */
	struct srv_ev cancel_ev;/* SRV_EV_CANCEL */
	const struct srv_conn_ops *ops;
	struct srv_server *srv;
	struct srv_worker *w;
	struct srv_conn *next;  /* worker's list */
	unsigned long id;
	char desc[160];         /* "tcp 127.0.0.1:40000", "pcie shm:/dev/shm/x ch 2" */
	struct sockaddr_storage peer;   /* TCP peer, for authfile */
	bool has_peer;
	enum srv_conn_state state;
	bool draining;          /* DISC, EOF, shutdown: no new requests */
	bool dead;              /* the peer is gone: replies are dropped */
	bool poll_armed, cancel_armed;
	bool bell_armed;        /* ops->arm said "sleep": disarm after the wait */
	unsigned poll_events;   /* what the armed poll waits for */
	unsigned inflight;      /* requests handed to the engine, not yet replied */
	unsigned inflight_long; /* of those, READ/WRITE of NPT_LONG_XFER bytes or more */
	bool last_long;         /* the request submitted last was such a request */
	struct nbdp_server *hs;
	uint8_t hsbuf[SRV_HS_BUF];
	size_t hslen;
	struct srv_export *exp;
	bool counted;           /* holds one of exp->nconn */
	struct nbdp_limits limits;
	struct srv_cow *cow;
	unsigned bad_logged;    /* invalid requests logged so far */
};

/* Fills the common part; the caller sets ops and desc. */
void srv_conn_init(struct srv_conn *c, const struct srv_conn_ops *ops, struct srv_server *srv);
/* The ONE place requests are validated: 0 or the NBD error (logged). */
uint32_t srv_conn_validate(struct srv_conn *c, const struct nbd_request *r);
/* Starts executing a validated request; the reply comes through ops->reply. */
void srv_engine_submit(struct srv_conn *c, struct srv_req *q);
/* A CQE of q arrived (worker.c dispatches them). */
void srv_engine_cqe(struct srv_req *q, int res);

/* ---- server.c: exports, workers, connection limits ---------------------- */
struct srv_server {
	struct srv_config *cfg;
	struct srv_export *exports;
	size_t nexports;
	struct srv_worker **workers;
	unsigned nworkers;
	unsigned rr;            /* next worker for a socket connection */
	atomic_uint nconns;     /* connections alive (for maxconnections) */
	atomic_ulong next_id;
	atomic_bool stopping;   /* SIGTERM/SIGINT: drain and exit */
};

int  srv_server_open_exports(struct srv_server *s, struct srv_config *cfg, char *err, size_t errlen);
int  srv_server_start_workers(struct srv_server *s, char *err, size_t errlen);
/* Hands a new connection to a worker (hint: a worker index, -1 = any). */
void srv_server_add_conn(struct srv_server *s, struct srv_conn *c, int hint);
/* Asks every worker to drain, waits for them and flushes every export. */
void srv_server_stop(struct srv_server *s);
void srv_server_free(struct srv_server *s);
extern const struct nbdp_server_ops srv_handshake_ops;   /* opaque = the srv_conn */

/* ---- worker.c: one thread, one io_uring --------------------------------- */
struct srv_worker *srv_worker_new(struct srv_server *s, unsigned idx, char *err, size_t errlen);
int  srv_worker_start(struct srv_worker *w);
void srv_worker_add(struct srv_worker *w, struct srv_conn *c);
void srv_worker_stop(struct srv_worker *w);   /* drains, joins */
void srv_worker_free(struct srv_worker *w);
struct io_uring_sqe *srv_worker_sqe(struct srv_worker *w);  /* never NULL */
unsigned srv_worker_nconns(struct srv_worker *w);

/* ---- conn-sock.c: TCP and unix-socket connections ------------------------ */
/* Wraps an accepted socket (made non-blocking) in a connection. */
struct srv_conn *srv_sock_conn_new(struct srv_server *s, int fd, bool tcp);

/* ---- conn-pcie.c: PCIe channel connections ------------------------------ */
struct npt_chan;
struct npt_link;
/* spec: the link string, for logs. */
struct srv_conn *srv_pcie_conn_new(struct srv_server *s, struct npt_link *l, struct npt_chan *ch,
                                   const char *spec);

/* ---- listen.c: sockets and links the server accepts on ------------------- */
struct srv_listen;
int  srv_listen_open(struct srv_listen **out, struct srv_server *s, char *err, size_t errlen);
/* Accepts until stop_fd (a signalfd) reports SIGTERM/SIGINT; SIGHUP is
 * logged and ignored. */
int  srv_listen_run(struct srv_listen *l, int stop_fd);
void srv_listen_close(struct srv_listen *l);

#endif /* EP_SERVER_INTERNAL_H */

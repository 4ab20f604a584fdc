/* host-client internal interfaces: a map of the modules of nbd-pcie-client.
 * Each section names the .c file that defines it. Non-static symbols carry the
 * npc_ prefix (nbd-pcie client). */
#ifndef HOST_CLIENT_INTERNAL_H
#define HOST_CLIENT_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <nbdpcie/transport.h>
#include <nbdproto/nbd.h>
#include <nbdproto/validate.h>

/* ------------------------------------------------ flags shared by threads */

/* Stop requests (signal handler -> main loop, main loop -> relay threads):
 * a plain flag read on every loop turn. Nothing is published with it, so
 * no ordering is needed, only a single untorn load/store. */
static inline void npc_flag_raise(int *flag, int value)
{
	__atomic_store_n(flag, value, __ATOMIC_RELAXED);
}

static inline int npc_flag_read(const int *flag)
{
	return __atomic_load_n(flag, __ATOMIC_RELAXED);
}

/* A relay thread's "finished" flag: the release orders its results (return
 * code, error text, statistics) before the flag, the acquire makes them
 * visible to the main thread that sees the flag set. */
static inline void npc_done_publish(bool *done)
{
	__atomic_store_n(done, true, __ATOMIC_RELEASE);
}

static inline bool npc_done_seen(const bool *done)
{
	return __atomic_load_n(done, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------------ cli.c */

/* Whole-string unsigned decimal in [lo, hi] (the command line's and
 * nbdtab's numbers); -EINVAL if not a number or out of range. */
int npc_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* Exit codes, the same as nbd-client 3.24 (documented in docs/nbd-pcie-client.md). */
#define NPC_EXIT_OK 0
#define NPC_EXIT_FAIL 1            /* any error: usage, link, export, kernel */
#define NPC_EXIT_CHECK_NOT_CONNECTED 1 /* -c: device not connected or absent */
#define NPC_EXIT_CHECK_ERROR 2     /* -c: the check itself failed */

/* Kernel nbd accepts logical block sizes that are powers of two from 512 up
 * to the page size; nbd-client allows 512..4096, which every page size covers. */
#define NPC_BLOCK_MIN 512u
#define NPC_BLOCK_MAX 4096u

/* Upper bound for -C: the transport's channel limit per link. The real limit
 * (the EP's channel count) is checked once the link is open. */
#define NPC_CONNECTIONS_MAX 64u
/* Largest request the local socket mode accepts: the EP server serves 64 MiB
 * on every path and the relay chunks anything larger than the link's max_xfer,
 * so local NBD tools get the same limit as the server's own sockets. (The
 * kernel attach path keeps the kernel's 32 MiB, NBDP_DEFAULT_MAX_PAYLOAD.) */
#define NPC_LOCAL_MAX_REQUEST (64u << 20)

enum npc_mode {
	NPC_MODE_ATTACH,      /* -pcie LINK [opts] /dev/nbdX */
	NPC_MODE_DISCONNECT,  /* -d /dev/nbdX */
	NPC_MODE_CHECK,       /* -c /dev/nbdX */
	NPC_MODE_LIST,        /* -l -pcie LINK */
	NPC_MODE_LOCAL,       /* -pcie LINK -unix PATH */
	NPC_MODE_NBDTAB,      /* nbdX alone: settings from /etc/nbdtab */
	NPC_MODE_HELP,
	NPC_MODE_VERSION,
};

struct npc_opts {
	enum npc_mode mode;
	const char *link;          /* -pcie */
	const char *name;          /* -N; "" = the default export */
	const char *device;        /* /dev/nbdX as given */
	int dev_index;             /* X, or -1 when no device */
	uint32_t block_size;       /* -b; 0 = from the export (at least 512) */
	uint64_t size;             /* -B; 0 = the export's size */
	uint64_t timeout;          /* -t seconds; 0 = kernel default */
	uint64_t dead_timeout;     /* -T seconds; 0 = none (persist picks a default) */
	unsigned connections;      /* -C; 1 by default */
	bool connections_set;      /* -C given (-unix: cap on simultaneous connections) */
	bool persist, readonly, nofork, no_optgo, swap, systemd_mark;
	const char *identifier;    /* -i; NULL = derived from the link */
	const char *unix_path;     /* -unix */
	const char *pidfile;       /* -pidfile; NULL = default for the mode */
	const char *nbdtab;        /* -nbdtab FILE (tests); NULL = /etc/nbdtab */
	char *owned[3];            /* strings from nbdtab (link, name, identifier) */
};

/* Frees what npc_nbdtab_apply() allocated; safe to call twice. */
void npc_opts_release(struct npc_opts *o);

/* Parses argv like nbd-client 3.24 (getopt_long_only: -name and -N alike).
 * 0 on success; -EINVAL with a one-line message in err otherwise. */
int npc_cli_parse(int argc, char **argv, struct npc_opts *o, char *err, size_t errlen);
/* "/dev/nbd3" or "nbd3" -> 3; -EINVAL otherwise. */
int npc_cli_device_index(const char *dev);
void npc_cli_usage(FILE *f);

/* ------------------------------------------------------------- nbdtab.c */

/* Fills o (mode NPC_MODE_NBDTAB, device set) from the nbdtab line of that
 * device: "nbdX HOST EXPORT OPTS" where OPTS holds pcie=LINK. */
int npc_nbdtab_apply(const char *path, struct npc_opts *o, char *err, size_t errlen);

/* ------------------------------------------------------------ netlink.c */

struct nl_msg;
struct nlmsghdr;
struct npc_nl;

/* What NBD_CMD_CONNECT / NBD_CMD_RECONFIGURE carry. */
struct npc_nl_config {
	int index;               /* device index, -1 = let the kernel pick (CONNECT) */
	uint64_t size;           /* bytes */
	uint64_t block_size;     /* bytes, power of two 512..4096 */
	uint64_t server_flags;   /* NBD transmission flags (READ_ONLY for -R) */
	uint64_t client_flags;   /* NBD_CFLAG_* */
	uint64_t timeout;        /* seconds, 0 = not sent */
	uint64_t dead_timeout;   /* seconds, 0 = not sent */
	const char *identifier;  /* NBD_ATTR_BACKEND_IDENTIFIER or NULL */
	const int *fds;          /* one socket per connection */
	unsigned nfds;
};

/* Builders: 0 and *out (caller frees with nlmsg_free) or -errno. */
int npc_nl_build_connect(int family, const struct npc_nl_config *c, struct nl_msg **out);
int npc_nl_build_reconfigure(int family, const struct npc_nl_config *c, struct nl_msg **out);
int npc_nl_build_disconnect(int family, int index, struct nl_msg **out);
int npc_nl_build_status(int family, int index, struct nl_msg **out);
/* Parsers of the kernel's messages: CONNECT reply / LINK_DEAD (the index),
 * STATUS reply (is device `index` connected; -ENOENT if not listed). */
int npc_nl_parse_index(struct nlmsghdr *h, uint32_t *index);
int npc_nl_parse_status(struct nlmsghdr *h, int index, bool *connected);
/* The meaning of a kernel error for command cmd (NBD_CMD_*). */
const char *npc_nl_strerror(int cmd, int err);

/* Session: -ENOENT with the "module not loaded" message if family 'nbd' is absent. */
int npc_nl_open(struct npc_nl **out, char *err, size_t errlen);
void npc_nl_close(struct npc_nl *n);
int npc_nl_family(const struct npc_nl *n);
int npc_nl_connect(struct npc_nl *n, const struct npc_nl_config *c, uint32_t *index);
int npc_nl_reconfigure(struct npc_nl *n, const struct npc_nl_config *c);
int npc_nl_disconnect(struct npc_nl *n, int index);
int npc_nl_status(struct npc_nl *n, int index, bool *connected);
/* LINK_DEAD: join the multicast group; watch_fd is readable when a
 * notification waits; link_dead() drains them, 1 if one named `index`. */
int npc_nl_watch(struct npc_nl *n, char *err, size_t errlen);
int npc_nl_watch_fd(const struct npc_nl *n);
int npc_nl_link_dead(struct npc_nl *n, int index);

/* The kernel side of attach as an ops table: netlink in the binary, an
 * in-process fake in tests (the same process can use the fds it is given).
 * All return 0 or -errno (the kernel's errno for the commands). */
struct npc_kernel_ops {
	int (*open)(void **ctx, char *err, size_t errlen);
	void (*close)(void *ctx);
	int (*connect)(void *ctx, const struct npc_nl_config *c, uint32_t *index);
	int (*reconfigure)(void *ctx, const struct npc_nl_config *c);
	int (*disconnect)(void *ctx, int index);
	int (*watch)(void *ctx, char *err, size_t errlen);  /* join LINK_DEAD notifications */
	int (*link_dead)(void *ctx, int index);             /* drain them; 1 if one named index */
};
extern const struct npc_kernel_ops npc_kernel_netlink;
/* What attach uses; &npc_kernel_netlink unless a test replaces it. */
extern const struct npc_kernel_ops *npc_kernel;

/* Client flags from the uapi <linux/nbd.h>, which cannot be included here
 * (its command names clash with proto's): the kernel's ABI values. */
#define NPC_NBD_CFLAG_DESTROY_ON_DISCONNECT (1u << 0)
#define NPC_NBD_CFLAG_DISCONNECT_ON_CLOSE (1u << 1)

/* ---------------------------------------------------------------- log.c */

/* prio: syslog's LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
void npc_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void npc_vlog(int prio, const char *fmt, va_list ap);
void npc_log_to_syslog(void);
void npc_log_set_level(int prio);

/* ------------------------------------------------------------ control.c */

/* Each returns the process exit code. */
int npc_cmd_disconnect(const struct npc_opts *o);
int npc_cmd_check(const struct npc_opts *o);

/* -------------------------------------------------- list.c, local.c, attach.c */

int npc_cmd_list(const struct npc_opts *o);
int npc_cmd_local(const struct npc_opts *o);
int npc_cmd_attach(const struct npc_opts *o);

/* ------------------------------------------------- relay.c, upstream.c */

/* What the relay needs from the link side of a connection: an ops table so
 * that tests can put an in-memory EP behind the relay. Called from the
 * relay's thread only; none of them blocks. Buffers are owned by the relay
 * from buf_alloc to buf_free. */
struct npc_upstream_ops {
	/* 0, -EAGAIN (payload area full: retry after completions), -E2BIG. */
	int (*buf_alloc)(void *ctx, uint32_t len, struct npt_hbuf *b);
	void (*buf_free)(void *ctx, struct npt_hbuf *b);
	/* req: NBD request header (wire format, relay's cookie). 0 or -EAGAIN (ring full). */
	int (*submit)(void *ctx, const uint8_t req[NBD_REQUEST_SIZE], const struct npt_hbuf *b);
	/* >= 0 completions or -errno (link down). */
	int (*reap)(void *ctx, struct npt_hcomp *out, unsigned max);
	/* 0 up, -ECONNRESET / -EPROTO when the channel or link is down. */
	int (*status)(void *ctx);
	const char *(*error)(void *ctx);
	/* Optional (NULL: the relay polls with back-off): the channel's
	 * doorbell, as npt_chan_wait_fd / npt_chan_arm / npt_chan_disarm
	 * (rung false: npt_chan_disarm_unrung). */
	int  (*wait_fd)(void *ctx);
	bool (*arm)(void *ctx);
	void (*disarm)(void *ctx, bool rung);
	/* Optional: between hold and release, submit does not ring the peer;
	 * release rings once if needed (npt_chan_hold_kicks). */
	void (*hold)(void *ctx);
	void (*release)(void *ctx);
};

/* ctx = struct npt_chan *. */
extern const struct npc_upstream_ops npc_upstream_chan;

struct npc_relay_conf {
	int fd;                        /* downstream stream socket */
	const struct npc_upstream_ops *up;
	void *up_ctx;
	struct nbdp_limits limits;     /* the export as the downstream client sees it */
	uint32_t max_xfer;             /* largest link request (npt_link_max_xfer) */
	const void *pre;               /* transmission bytes already read with the handshake */
	size_t pre_len;
	const int *stop;               /* non-zero: return -EINTR soon */
};

struct npc_relay_stats {
	uint64_t requests;             /* replies sent */
	uint64_t bytes_read;           /* READ payload sent downstream */
	uint64_t bytes_written;        /* WRITE payload acknowledged by the link */
	uint64_t bytes_rx;             /* bytes received from downstream */
	bool saw_disc;                 /* the downstream ended with NBD_CMD_DISC */
};

/* Runs until the downstream side ends (NBD_CMD_DISC or EOF, all replies
 * sent: 0), the link fails (-ECONNRESET, -EPROTO...), the downstream breaks
 * the protocol (-EPROTO) or *stop is set (-EINTR). err says why. */
int npc_relay_run(const struct npc_relay_conf *conf, struct npc_relay_stats *stats, char *err,
		  size_t errlen);

/* ------------------------------------------------------------- daemon.c */

/* Non-zero (the signal number) once SIGTERM, SIGINT or SIGHUP arrived. */
extern int npc_stop_flag;
void npc_signals_init(void);
/* Forks unless nofork. false: go on, in the daemon (*notify_fd for
 * npc_daemon_ready) or, with nofork, in the only process (*notify_fd left
 * as it was); true: the starting process, once the daemon is ready or failed,
 * or when the fork failed (logged): return *parent_exit from the command. */
bool npc_daemon_start(bool nofork, int *notify_fd, int *parent_exit);
/* Tells the starter the daemon is up; logs go to syslog from now on. */
void npc_daemon_ready(int notify_fd);
int npc_pidfile_write(const char *path, char *err, size_t errlen);

/* ------------------------------------------------------------- remote.c */

struct npc_link;
struct nbdp_client_opts;

int npc_link_open(const char *spec, struct npc_link **out, char *err, size_t errlen);
void npc_link_close(struct npc_link *k);
struct npt_link *npc_link_raw(struct npc_link *k);
/* npt_link_check under the link lock (heartbeat); call every 50 ms or so. */
int npc_link_check(struct npc_link *k);
int npc_link_chan_open(struct npc_link *k, struct npt_chan **out);
/* Opens a channel and runs the client handshake with goal co->goal. GO:
 * *chan_out is the channel, switched to frames. INFO/LIST: the channel is
 * closed. *exp (may be NULL) gets the export (description NULL). */
int npc_remote_handshake(struct npc_link *k, const struct nbdp_client_opts *co, int timeout_ms,
			 struct npt_chan **chan_out, struct nbdp_export *exp, char *err,
			 size_t errlen);

/* How long a handshake over the link may take: the EP answers from memory,
 * so anything beyond a few seconds means it is stuck. */
#define NPC_HANDSHAKE_TIMEOUT_MS 10000

/* ---------------------------------------------------------------- ctl.c */

/* The control socket of the process that holds a link (abstract unix
 * socket named after the link). listen: fd, or -EADDRINUSE if another
 * process holds it. */
int npc_ctl_listen(const char *link, char *err, size_t errlen);
/* Answers waiting requests (non-blocking listen fd); who describes this
 * process ("/dev/nbd0 export 'x'"). Runs LIST over k; ATTACH through
 * attach() (NULL: refused), which fills msg either way. */
void npc_ctl_serve(int lfd, struct npc_link *k, const char *who,
		   int (*attach)(void *ctx, const struct npc_opts *o, char *msg, size_t msglen),
		   void *ctx);
/* Asks the holder of o->link to attach the device of o: 0 (msg: what was
 * attached), -errno with msg, or -ECONNREFUSED/-ENOENT when there is no
 * holder (then attach in this process). */
int npc_ctl_attach(const struct npc_opts *o, char *msg, size_t msglen);
/* Asks the holder of link: 0 and "PID DESCRIPTION" in who, or -ECONNREFUSED /
 * -ENOENT when no process holds it. */
int npc_ctl_who(const char *link, char *who, size_t wholen);
/* LIST through the holder: 0, -errno with err, or -ECONNREFUSED/-ENOENT
 * when there is no holder (then open the link directly). */
int npc_ctl_list(const char *link, void (*emit)(void *ctx, const char *name, const char *desc),
		 void *ctx, char *err, size_t errlen);
/* Logs who holds link and returns -EBUSY, or returns 0 when nobody does. */
int npc_ctl_refuse_if_held(const char *link, const char *what);

#endif /* HOST_CLIENT_INTERNAL_H */

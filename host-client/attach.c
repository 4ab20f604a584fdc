/* Attach: negotiate the export over C link channels, hand the kernel one
 * end of a socketpair per channel with NBD_CMD_CONNECT, and stay as the
 * relay between each socket and its channel (unlike nbd-client, which
 * exits in netlink mode).
 *
 * The process ends when the device is disconnected (-d from elsewhere, or
 * SIGTERM here: NBD_CMD_DISCONNECT, exit 0) or when the link dies without
 * -p (the device is disconnected, exit 1 with the reason). With -p a dead
 * link closes the kernel's sockets (the kernel announces LINK_DEAD and holds
 * I/O for the dead connection timeout), the client reopens the link,
 * renegotiates the same export (refusing a changed size) and hands new
 * sockets over with NBD_CMD_RECONFIGURE. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <linux/nbd-netlink.h>
#include <nbdproto/client.h>

#include "internal.h"

/* Dead connection timeout with -p and no -T: how long the kernel holds I/O
 * while the EP restarts (an EP reboot takes tens of seconds). */
#define ATTACH_PERSIST_DEAD_TIMEOUT_S 120
/* Main loop tick: the link's heartbeat needs a check every 100 ms. */
#define ATTACH_TICK_US 40000
/* After NBD_CMD_DISCONNECT, how long the relays get to see the kernel's
 * NBD_CMD_DISC before they are stopped. */
#define ATTACH_DRAIN_S 5

struct aconn {
	int fd;                      /* our end of the socketpair */
	int kfd;                     /* the kernel's end, closed once handed over */
	struct npt_chan *chan;
	pthread_t th;
	bool running, done;
	int ret;
	char err[512];
	struct npc_relay_stats st;
	struct attach *A;
};

struct attach {
	const struct npc_opts *o;
	void *nl;                    /* npc_kernel's context */
	struct npc_link *k;
	struct nbdp_export exp;
	uint64_t size;
	uint32_t block;
	uint16_t tflags;
	int index;
	char ident[320];
	int stop;                    /* relays: stop now */
	struct aconn *c;
	unsigned n;
};

static void *relay_main(void *arg)
{
	struct aconn *c = arg;
	struct attach *A = c->A;
	struct npc_relay_conf conf = {
		.fd = c->fd, .up = &npc_upstream_chan, .up_ctx = c->chan,
		.max_xfer = npt_link_max_xfer(npc_link_raw(A->k)), .stop = &A->stop,
		.limits = { .size = A->size, .tflags = A->tflags, .min_block = 1,
			    .max_payload = NBDP_DEFAULT_MAX_PAYLOAD },
	};

	c->ret = npc_relay_run(&conf, &c->st, c->err, sizeof(c->err));
	npc_done_publish(&c->done);
	return NULL;
}

static void close_conns(struct attach *A)
{
	for (unsigned i = 0; i < A->n; i++) {
		struct aconn *c = &A->c[i];
		if (c->running) {
			pthread_join(c->th, NULL);
			c->running = false;
		}
		if (c->fd >= 0)
			close(c->fd);
		if (c->kfd >= 0)
			close(c->kfd);
		c->fd = c->kfd = -1;
		npt_chan_close(c->chan);
		c->chan = NULL;
	}
}

/* Opens the link and negotiates A->n channels; first time fills A->exp. */
static int negotiate(struct attach *A, bool first, char *err, size_t errlen)
{
	const struct npc_opts *o = A->o;
	struct nbdp_client_opts co = { .goal = NBDP_GOAL_GO, .export_name = o->name,
				       .no_optgo = o->no_optgo };
	int r;

	if ((r = npc_link_open(o->link, &A->k, err, errlen)))
		return r;
	if (A->n > npt_link_nchannels(npc_link_raw(A->k))) {
		snprintf(err, errlen, "-C %u: the link %s has only %u channels", A->n, o->link,
			 npt_link_nchannels(npc_link_raw(A->k)));
		return -EINVAL;
	}
	for (unsigned i = 0; i < A->n; i++) {
		struct nbdp_export e;
		int sv[2];

		r = npc_remote_handshake(A->k, &co, NPC_HANDSHAKE_TIMEOUT_MS, &A->c[i].chan, &e, err,
					 errlen);
		if (r)
			return r;
		if (first && i == 0) {
			A->exp = e;
		} else if (e.size != A->exp.size) {
			snprintf(err, errlen, "export '%s' changed size from %" PRIu64 " to %" PRIu64
				 " bytes: refusing to reconnect /dev/nbd%d to it", o->name, A->exp.size,
				 e.size, A->index);
			return -ESTALE;
		}
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			return -errno;
		A->c[i].fd = sv[0];
		A->c[i].kfd = sv[1];
	}
	return 0;
}

/* Checks the export against the options; sets size, block size, flags. */
static int plan(struct attach *A, char *err, size_t errlen)
{
	const struct npc_opts *o = A->o;
	const struct nbdp_export *e = &A->exp;

	if (A->n > 1 && !(e->tflags & NBD_FLAG_CAN_MULTI_CONN)) {
		snprintf(err, errlen, "-C %u: export '%s' does not allow multiple connections (no NBD_FLAG_CAN_MULTI_CONN); use -C 1",
			 A->n, o->name);
		return -EINVAL;
	}
	A->block = o->block_size;
	if (!A->block) {
		A->block = NPC_BLOCK_MIN;
		while (A->block < e->min_block && A->block < NPC_BLOCK_MAX)
			A->block <<= 1;
	}
	if (e->min_block > A->block) {
		snprintf(err, errlen, "block size %u is below the export's minimum block size %u (the kernel allows at most %u)",
			 A->block, e->min_block, NPC_BLOCK_MAX);
		return -EINVAL;
	}
	A->size = o->size ? o->size : e->size;
	if (A->size > e->size) {
		snprintf(err, errlen, "-B %" PRIu64 ": larger than the export size %" PRIu64,
			 o->size, e->size);
		return -EINVAL;
	}
	A->size -= A->size % A->block;
	if (!A->size) {
		snprintf(err, errlen, "export '%s' of %" PRIu64 " bytes is smaller than one block of %u",
			 o->name, e->size, A->block);
		return -EINVAL;
	}
	A->tflags = e->tflags | NBD_FLAG_HAS_FLAGS;
	if (o->readonly)
		A->tflags |= NBD_FLAG_READ_ONLY;
	if (o->identifier)
		snprintf(A->ident, sizeof(A->ident), "%s", o->identifier);
	else
		snprintf(A->ident, sizeof(A->ident), "nbd-pcie:%s:%s", o->link,
			 *o->name ? o->name : "(default)");
	return 0;
}

static void fill_config(struct attach *A, struct npc_nl_config *cfg, int *fds)
{
	const struct npc_opts *o = A->o;

	for (unsigned i = 0; i < A->n; i++)
		fds[i] = A->c[i].kfd;
	memset(cfg, 0, sizeof(*cfg));
	cfg->index = A->index;
	cfg->size = A->size;
	cfg->block_size = A->block;
	cfg->server_flags = A->tflags;
	cfg->timeout = o->timeout;
	cfg->dead_timeout = o->dead_timeout ? o->dead_timeout
		: o->persist ? ATTACH_PERSIST_DEAD_TIMEOUT_S : 0;
	cfg->identifier = A->ident;
	cfg->fds = fds;
	cfg->nfds = A->n;
}

static int start_relays(struct attach *A, char *err, size_t errlen)
{
	npc_flag_raise(&A->stop, 0);
	for (unsigned i = 0; i < A->n; i++) {
		struct aconn *c = &A->c[i];
		/* The kernel holds its own reference to its end now. */
		close(c->kfd);
		c->kfd = -1;
		c->done = false;
		c->A = A;
		if (pthread_create(&c->th, NULL, relay_main, c)) {
			snprintf(err, errlen, "relay thread: %s", strerror(errno));
			return -EAGAIN;
		}
		c->running = true;
	}
	return 0;
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/* With -p: the link died. Returns 0 once new sockets are in the kernel. */
static int reconnect(struct attach *A, char *err, size_t errlen)
{
	const struct npc_opts *o = A->o;
	struct npc_nl_config cfg;
	int fds[NPC_CONNECTIONS_MAX];
	time_t give_up = time(NULL) + (time_t)(o->dead_timeout ? o->dead_timeout
					       : ATTACH_PERSIST_DEAD_TIMEOUT_S);
	int r = -ETIMEDOUT;

	/* Our ends close: the kernel marks the connections dead (LINK_DEAD)
	 * and holds I/O for the dead connection timeout. */
	npc_flag_raise(&A->stop, 1);
	close_conns(A);
	npc_link_close(A->k);
	A->k = NULL;
	while (time(NULL) < give_up && !npc_flag_read(&npc_stop_flag)) {
		r = negotiate(A, false, err, errlen);
		if (r == -ESTALE)
			return r;
		if (r) {
			npc_log(LOG_INFO, "persist: /dev/nbd%d: waiting for the EP: %s", A->index, err);
			close_conns(A);
			npc_link_close(A->k);
			A->k = NULL;
			sleep_us(500000);
			continue;
		}
		npc_kernel->link_dead(A->nl, A->index);   /* drain the notifications */
		fill_config(A, &cfg, fds);
		for (int tries = 0; tries < 20; tries++) {
			r = npc_kernel->reconfigure(A->nl, &cfg);
			if (r == 0)
				break;
			sleep_us(100000);    /* the kernel may not have seen the dead sockets yet */
		}
		if (r == 0)
			return start_relays(A, err, errlen);
		snprintf(err, errlen, "NBD_CMD_RECONFIGURE of /dev/nbd%d refused: %s", A->index,
			 npc_nl_strerror(NBD_CMD_RECONFIGURE, r));
		return r;
	}
	if (r == -ETIMEDOUT)
		snprintf(err, errlen, "persist: the EP did not come back within the dead connection timeout");
	return r;
}

int npc_cmd_attach(const struct npc_opts *o)
{
	struct attach A = { .o = o, .index = o->dev_index, .n = o->connections };
	struct npc_nl_config cfg;
	int fds[NPC_CONNECTIONS_MAX];
	char err[1024] = "", perr[256];
	int notify = -1, ret = NPC_EXIT_FAIL, r;
	const char *pidfile = o->pidfile;
	char defpid[64];
	bool wrote_pid = false;
	uint32_t index;

	npc_signals_init();
	/* Fail fast, before forking, when the kernel side is missing. */
	if ((r = npc_kernel->open(&A.nl, err, sizeof(err)))) {
		npc_log(LOG_ERR, "%s: %s", o->device, err);
		return NPC_EXIT_FAIL;
	}
	npc_kernel->close(A.nl);
	A.nl = NULL;
	if (!o->nofork) {
		int pexit;
		r = npc_daemon_fork(&notify, &pexit);
		if (r < 0) {
			npc_log(LOG_ERR, "fork: %s", strerror(-r));
			return NPC_EXIT_FAIL;
		}
		if (r == 1)
			return pexit;
	}
	A.c = calloc(A.n, sizeof(*A.c));
	if (!A.c)
		return NPC_EXIT_FAIL;
	for (unsigned i = 0; i < A.n; i++)
		A.c[i].fd = A.c[i].kfd = -1;
	if ((r = npc_kernel->open(&A.nl, err, sizeof(err)))) {
		npc_log(LOG_ERR, "%s: %s", o->device, err);
		goto out;
	}
	if (o->persist && npc_kernel->watch(A.nl, err, sizeof(err)))
		npc_log(LOG_WARNING, "%s: %s (reconnecting without LINK_DEAD notifications)",
			o->device, err);
	if ((r = negotiate(&A, true, err, sizeof(err))) || (r = plan(&A, err, sizeof(err)))) {
		npc_log(LOG_ERR, "%s: %s%s%s", o->device, err,
			r == -ENOENT ? "; list the exports with nbd-pcie-client -l -pcie " : "",
			r == -ENOENT ? o->link : "");
		goto out;
	}
	fill_config(&A, &cfg, fds);
	r = npc_kernel->connect(A.nl, &cfg, &index);
	if (r) {
		npc_log(LOG_ERR, "%s: NBD_CMD_CONNECT (size %" PRIu64 ", block size %u, %u connection%s) refused: %s",
			o->device, A.size, A.block, A.n, A.n > 1 ? "s" : "",
			npc_nl_strerror(NBD_CMD_CONNECT, r));
		goto out;
	}
	A.index = (int)index;
	if ((r = start_relays(&A, err, sizeof(err)))) {
		npc_log(LOG_ERR, "%s: %s", o->device, err);
		npc_kernel->disconnect(A.nl, A.index);
		goto out;
	}
	if (o->swap && mlockall(MCL_CURRENT | MCL_FUTURE))
		npc_log(LOG_WARNING, "-swap: mlockall: %s", strerror(errno));
	if (!pidfile) {
		snprintf(defpid, sizeof(defpid), "/run/nbd-pcie-client.nbd%d.pid", A.index);
		pidfile = defpid;
	}
	if (npc_pidfile_write(pidfile, perr, sizeof(perr)) == 0)
		wrote_pid = true;
	else if (o->pidfile)
		npc_log(LOG_WARNING, "%s", perr);
	npc_log(LOG_INFO, "/dev/nbd%d: export '%s' of %" PRIu64 " bytes, block size %u, %u connection%s over %s%s",
		A.index, o->name, A.size, A.block, A.n, A.n > 1 ? "s" : "",
		npt_link_describe(npc_link_raw(A.k)),
		(A.tflags & NBD_FLAG_READ_ONLY) ? ", read-only" : "");
	npc_daemon_ready(notify);
	notify = -1;

	bool disconnecting = false;
	time_t drain_deadline = 0;
	for (;;) {
		unsigned finished = 0;
		int link_err = 0;
		const char *why = NULL;

		if (!disconnecting && npc_flag_read(&npc_stop_flag)) {
			npc_log(LOG_INFO, "/dev/nbd%d: signal %d: disconnecting", A.index, npc_stop_flag);
			r = npc_kernel->disconnect(A.nl, A.index);
			if (r)
				npc_log(LOG_WARNING, "/dev/nbd%d: NBD_CMD_DISCONNECT: %s", A.index,
					npc_nl_strerror(NBD_CMD_DISCONNECT, r));
			disconnecting = true;
			drain_deadline = time(NULL) + ATTACH_DRAIN_S;
		}
		if (disconnecting && time(NULL) > drain_deadline)
			npc_flag_raise(&A.stop, 1);
		r = npc_link_check(A.k);
		if (r && r != -EAGAIN) {
			link_err = r;
			why = npt_link_error(npc_link_raw(A.k));
		}
		for (unsigned i = 0; i < A.n; i++) {
			struct aconn *c = &A.c[i];
			if (!npc_done_seen(&c->done))
				continue;
			finished++;
			if (c->ret && c->ret != -EINTR && c->ret != -EPIPE && !link_err) {
				link_err = c->ret;
				why = c->err;
			} else if ((!c->ret || c->ret == -EPIPE) && !c->st.saw_disc &&
				   o->persist && !link_err &&
				   !disconnecting) {
				/* The kernel dropped this connection without a
				 * disconnect (request timeout): with -p it waits
				 * for a new socket, as after a link loss. */
				link_err = -ECONNRESET;
				why = "the kernel closed a connection (request timeout?)";
			}
		}
		if (link_err && !disconnecting) {
			npc_log(LOG_ERR, "/dev/nbd%d: link lost: %s", A.index, why);
			if (o->persist) {
				r = reconnect(&A, err, sizeof(err));
				if (r == 0) {
					npc_log(LOG_INFO, "/dev/nbd%d: reconnected over %s", A.index,
						npt_link_describe(npc_link_raw(A.k)));
					continue;
				}
				npc_log(LOG_ERR, "/dev/nbd%d: %s", A.index, err);
			}
			npc_flag_raise(&A.stop, 1);
			npc_kernel->disconnect(A.nl, A.index);
			ret = NPC_EXIT_FAIL;
			break;
		}
		if (finished == A.n) {
			/* Every relay ended on the kernel's disconnect. */
			ret = NPC_EXIT_OK;
			break;
		}
		sleep_us(ATTACH_TICK_US);
	}
	{
		uint64_t rd = 0, wr = 0, reqs = 0;
		close_conns(&A);
		for (unsigned i = 0; i < A.n; i++) {
			rd += A.c[i].st.bytes_read;
			wr += A.c[i].st.bytes_written;
			reqs += A.c[i].st.requests;
		}
		npc_log(LOG_INFO, "/dev/nbd%d: detached: %" PRIu64 " requests, %" PRIu64 " bytes read, %" PRIu64 " bytes written",
			A.index, reqs, rd, wr);
	}
out:
	close_conns(&A);
	if (wrote_pid)
		unlink(pidfile);
	npc_link_close(A.k);
	if (A.nl)
		npc_kernel->close(A.nl);
	free(A.c);
	return ret;
}

/* -unix PATH: serve the EP's exports as an NBD server on a local unix
 * socket, so that nbd tooling (nbd-client -u, qemu-img/qemu-io, nbdinfo,
 * nbdcopy, fio's nbd engine) works without root and without the kernel
 * driver.
 *
 * One thread per local connection: it runs proto's server machine over the
 * socket; each export lookup negotiates NBD_OPT_GO for that export on a
 * fresh link channel (so a connection holds exactly one channel, and the
 * EP's answer is what the local client sees); when the local client
 * reaches transmission, the relay joins the socket and that channel.
 * Several local connections to one export are NBD multi-connection, one
 * channel each. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <nbdproto/client.h>
#include <nbdproto/server.h>

#include "internal.h"

/* A local client that sends nothing for this long during the handshake is
 * dropped, so that it cannot hold a thread forever. */
#define LOCAL_HANDSHAKE_IDLE_S 30
/* Main loop tick: the link's heartbeat needs a check every 100 ms. */
#define LOCAL_TICK_MS 40

struct local;

struct conn {
	struct local *L;
	int fd;
	pthread_t th;
	bool finished;
	struct npt_chan *chan;       /* GO'd channel for the export of the last lookup */
	struct nbdp_export chan_exp;
	struct conn *next;
};

struct local {
	const struct npc_opts *o;
	struct npc_link *k;
	int stop;
	pthread_mutex_t mu;
	struct conn *conns;
	struct npc_relay_stats total;
	unsigned served;
};

/* -------------------------------------------------- server machine ops */

static int lookup(void *opaque, const char *name, struct nbdp_export *out)
{
	struct conn *c = opaque;
	const char *real = *name ? name : c->L->o->name;
	struct nbdp_client_opts co = { .goal = NBDP_GOAL_GO, .export_name = real,
				       .no_optgo = c->L->o->no_optgo };
	struct nbdp_export e;
	char err[512];
	int r;

	npt_chan_close(c->chan);
	c->chan = NULL;
	r = npc_remote_handshake(c->L->k, &co, NPC_HANDSHAKE_TIMEOUT_MS, &c->chan, &e, err,
				 sizeof(err));
	if (r) {
		npc_log(LOG_WARNING, "local client asked for export '%s': %s", real, err);
		return r == -ENOENT || r == -EACCES || r == -EPERM || r == -ESHUTDOWN ? r : -EIO;
	}
	memset(out, 0, sizeof(*out));
	out->size = e.size;
	out->tflags = e.tflags & (uint16_t)~NBD_FLAG_HAS_FLAGS;
	out->min_block = e.min_block;
	out->pref_block = e.pref_block;
	/* The relay chunks a request of any size for the link. */
	out->max_block = e.max_block && e.max_block < NPC_LOCAL_MAX_REQUEST
		? e.max_block : NPC_LOCAL_MAX_REQUEST;
	if (out->min_block > out->max_block)
		out->min_block = 0;
	snprintf(out->name, sizeof(out->name), "%s", name);
	c->chan_exp = e;
	return 0;
}

struct list_fwd {
	void (*emit)(void *ctx, const char *name, const char *desc);
	void *ctx;
};

static void list_one(void *ctx, const char *name, const char *desc)
{
	struct list_fwd *f = ctx;

	f->emit(f->ctx, name, desc && *desc ? desc : NULL);
}

static int list(void *opaque, void (*emit)(void *ctx, const char *name, const char *desc),
		void *ctx)
{
	struct conn *c = opaque;
	struct list_fwd f = { emit, ctx };
	struct nbdp_client_opts co = { .goal = NBDP_GOAL_LIST, .export_name = "",
				       .on_list = list_one, .list_ctx = &f };
	char err[512];
	int r = npc_remote_handshake(c->L->k, &co, NPC_HANDSHAKE_TIMEOUT_MS, NULL, NULL, err,
				     sizeof(err));

	if (r)
		npc_log(LOG_WARNING, "local client asked for the export list: %s", err);
	return r == -EACCES || r == -EPERM ? r : r ? -EIO : 0;
}

static const struct nbdp_server_ops server_ops = { .lookup = lookup, .list = list };

/* --------------------------------------------------------- connection */

static int flush_server(struct nbdp_server *s, int fd)
{
	const void *data;
	size_t len;

	while ((len = nbdp_server_pending(s, &data)) > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -errno;
		nbdp_server_consumed(s, (size_t)n);
	}
	return 0;
}

static void *serve(void *arg)
{
	struct conn *c = arg;
	struct local *L = c->L;
	struct nbdp_server *s = nbdp_server_new(&server_ops, c);
	struct timeval tv = { .tv_sec = LOCAL_HANDSHAKE_IDLE_S };
	uint8_t buf[16384];
	size_t off = 0, n = 0;
	char err[512];

	if (!s)
		goto out;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (nbdp_server_state(s) == NBDP_NEGOTIATING) {
		if (flush_server(s, c->fd))
			goto out;
		ssize_t got = recv(c->fd, buf, sizeof(buf), 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			goto out;    /* client left, or idle too long */
		n = (size_t)got;
		for (off = 0; off < n && nbdp_server_state(s) == NBDP_NEGOTIATING;) {
			ssize_t took = nbdp_server_feed(s, buf + off, n - off);
			if (took < 0)
				break;
			if (took == 0) {
				if (flush_server(s, c->fd))
					goto out;
				continue;
			}
			off += (size_t)took;
		}
	}
	if (flush_server(s, c->fd) || nbdp_server_state(s) != NBDP_TRANSMISSION) {
		if (nbdp_server_state(s) == NBDP_CLOSED && *nbdp_server_reason(s))
			npc_log(LOG_INFO, "local client: handshake ended: %s", nbdp_server_reason(s));
		goto out;
	}
	if (!c->chan) {
		npc_log(LOG_ERR, "local client: transmission without a link channel");
		goto out;
	}
	tv.tv_sec = 0;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	struct npc_relay_conf conf = {
		.fd = c->fd, .up = &npc_upstream_chan, .up_ctx = c->chan,
		.max_xfer = npt_link_max_xfer(npc_link_raw(L->k)),
		.pre = buf + off, .pre_len = n - off, .stop = &L->stop,
	};
	struct npc_relay_stats st = { 0 };
	int r;

	nbdp_server_limits(s, &conf.limits);
	npc_log(LOG_INFO, "local client: export '%s' (%llu bytes) on channel %u",
		nbdp_server_export(s)->name, (unsigned long long)nbdp_server_export(s)->size,
		npt_chan_index(c->chan));
	r = npc_relay_run(&conf, &st, err, sizeof(err));
	if (r && r != -EINTR && r != -EPIPE)
		npc_log(LOG_ERR, "local client on channel %u: %s", npt_chan_index(c->chan), err);
	pthread_mutex_lock(&L->mu);
	L->total.requests += st.requests;
	L->total.bytes_read += st.bytes_read;
	L->total.bytes_written += st.bytes_written;
	L->served++;
	pthread_mutex_unlock(&L->mu);
out:
	nbdp_server_free(s);
	npt_chan_close(c->chan);
	c->chan = NULL;
	pthread_mutex_lock(&L->mu);
	close(c->fd);
	c->fd = -1;
	c->finished = true;
	pthread_mutex_unlock(&L->mu);
	return NULL;
}

/* Joins finished connection threads; all of them with `all`. */
static void reap_conns(struct local *L, bool all)
{
	struct conn **pp = &L->conns;

	while (*pp) {
		struct conn *c = *pp;
		bool done;

		pthread_mutex_lock(&L->mu);
		done = c->finished;
		if (all && !done && c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);   /* unblocks a handshake recv */
		pthread_mutex_unlock(&L->mu);
		if (done || all) {
			pthread_join(c->th, NULL);
			*pp = c->next;
			free(c);
			continue;
		}
		pp = &c->next;
	}
}

static unsigned count_conns(const struct local *L)
{
	unsigned n = 0;

	for (const struct conn *c = L->conns; c; c = c->next)
		n++;
	return n;
}

/* ------------------------------------------------------------ listener */

static int listen_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "-unix %s: exists and is not a socket; remove it or choose another path",
				 path);
			return -EEXIST;
		}
		unlink(path);   /* a stale socket from an earlier run */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64)) {
		int e = -errno;
		snprintf(err, errlen, "-unix %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return e;
	}
	return fd;
}

int npc_cmd_local(const struct npc_opts *o)
{
	struct local L = { .o = o };
	char err[512];
	int lfd = -1, notify = -1, ret = NPC_EXIT_FAIL, r, ctl = -1, pexit;
	char who[160];
	bool pidfile = false;

	npc_signals_init();
	/* Fork first: the transport may run threads, which a fork would not
	 * carry over. Until ready, errors still reach the terminal. */
	if (npc_daemon_start(o->nofork, &notify, &pexit))
		return pexit;
	if (npc_ctl_refuse_if_held(o->link, "-unix"))
		return NPC_EXIT_FAIL;
	if ((r = npc_link_open(o->link, &L.k, err, sizeof(err)))) {
		npc_log(LOG_ERR, "%s", err);
		return NPC_EXIT_FAIL;
	}
	ctl = npc_ctl_listen(o->link, err, sizeof(err));
	if (ctl < 0) {
		npc_log(LOG_ERR, "%s", err);
		npc_link_close(L.k);
		return NPC_EXIT_FAIL;
	}
	lfd = listen_unix(o->unix_path, err, sizeof(err));
	if (lfd < 0) {
		npc_log(LOG_ERR, "%s", err);
		close(ctl);
		npc_link_close(L.k);
		return NPC_EXIT_FAIL;
	}
	snprintf(who, sizeof(who), "(-unix %s)", o->unix_path);
	if (o->pidfile) {
		if (npc_pidfile_write(o->pidfile, err, sizeof(err))) {
			npc_log(LOG_ERR, "%s", err);
			goto out;
		}
		pidfile = true;
	}
	pthread_mutex_init(&L.mu, NULL);
	npc_log(LOG_INFO, "serving %s on %s", npt_link_describe(npc_link_raw(L.k)), o->unix_path);
	npc_daemon_ready(notify);
	notify = -1;

	ret = NPC_EXIT_OK;
	while (!npc_flag_read(&npc_stop_flag)) {
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
				       { .fd = ctl, .events = POLLIN } };

		r = npc_link_check(L.k);
		if (r && r != -EAGAIN) {
			npc_log(LOG_ERR, "link %s down: %s", o->link,
				npt_link_error(npc_link_raw(L.k)));
			ret = NPC_EXIT_FAIL;
			break;
		}
		if (poll(p, 2, LOCAL_TICK_MS) <= 0) {
			reap_conns(&L, false);
			continue;
		}
		if (p[1].revents)
			npc_ctl_serve(ctl, L.k, who, NULL, NULL);
		if (!p[0].revents)
			continue;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		reap_conns(&L, false);
		if (o->connections_set && count_conns(&L) >= o->connections) {
			npc_log(LOG_WARNING, "refusing a local connection: -C %u connections are open",
				o->connections);
			close(fd);
			continue;
		}
		struct conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->L = &L;
		c->fd = fd;
		if (pthread_create(&c->th, NULL, serve, c)) {
			close(fd);
			free(c);
			continue;
		}
		c->next = L.conns;
		L.conns = c;
		reap_conns(&L, false);
	}
	npc_flag_raise(&L.stop, 1);
	reap_conns(&L, true);
	npc_log(LOG_INFO, "stopped: %u connections, %llu requests, %llu bytes read, %llu bytes written",
		L.served, (unsigned long long)L.total.requests,
		(unsigned long long)L.total.bytes_read, (unsigned long long)L.total.bytes_written);
	pthread_mutex_destroy(&L.mu);
out:
	close(lfd);
	close(ctl);
	unlink(o->unix_path);
	if (pidfile)
		unlink(o->pidfile);
	npc_link_close(L.k);
	return ret;
}

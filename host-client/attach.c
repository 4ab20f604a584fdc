/* Attach: negotiate the export over C link channels, hand the kernel one
 * end of a socketpair per channel with NBD_CMD_CONNECT, and stay as the
 * relay between each socket and its channel (unlike nbd-client, which
 * exits in netlink mode).
 *
 * One process holds a link (the transport attaches one host at a time, see
 * ctl.c) and may serve several devices over it: a later
 * "nbd-pcie-client -pcie LINK ... /dev/nbdY" hands its request to the
 * holder through the control socket and exits with the holder's answer.
 *
 * A device ends when it is disconnected (-d from elsewhere, or SIGTERM here:
 * NBD_CMD_DISCONNECT for every device) or when the link dies without -p
 * (the device is disconnected, exit 1 with the reason); the process exits
 * with its last device. With -p a dead link closes the kernel's sockets
 * (the kernel announces LINK_DEAD and holds I/O for the dead connection
 * timeout), the client reopens the link, renegotiates the same export
 * (refusing a changed size) and hands new sockets over with
 * NBD_CMD_RECONFIGURE. */
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

#include <common/sock.h>
#include "internal.h"

/* Dead connection timeout with -p and no -T: how long the kernel holds I/O
 * while the EP restarts (an EP reboot takes tens of seconds). */
#define ATTACH_PERSIST_DEAD_TIMEOUT_S 120
/* Main loop tick: the link's heartbeat needs a check every 100 ms. */
#define ATTACH_TICK_US 40000
/* After NBD_CMD_DISCONNECT, how long the relays get to see the kernel's
 * NBD_CMD_DISC before they are stopped. */
#define ATTACH_DRAIN_S 5
/* Devices one process serves over its link: the kernel's default nbds_max
 * is 16. */
#define ATTACH_DEVICES_MAX 16

struct device;
struct owner;

struct aconn {
	int fd;                      /* our end of the socketpair */
	int kfd;                     /* the kernel's end, closed once handed over */
	struct npt_chan *chan;
	pthread_t th;
	bool running, done;
	int ret;
	char err[512];
	struct npc_relay_stats st;
	struct device *d;
};

struct device {
	struct owner *O;
	struct npc_opts o;           /* copy; name and identifier point below */
	char name[NBDP_NAME_MAX + 1];
	char ident_opt[256];
	struct nbdp_export exp;
	uint64_t size;
	uint32_t block;
	uint16_t tflags;
	int index;
	char ident[320];
	int stop;                    /* relays: stop now */
	bool disconnecting;
	time_t drain_deadline;
	struct aconn c[NPC_CONNECTIONS_MAX];
	unsigned n;
};

struct owner {
	const char *link;
	struct npc_link *k;
	void *nl;                    /* npc_kernel's context */
	int ctl;
	char who[512];
	struct device *dev[ATTACH_DEVICES_MAX];
	unsigned ndev;
	int exit_code;
};

static void *relay_main(void *arg)
{
	struct aconn *c = arg;
	struct device *d = c->d;
	struct npc_relay_conf conf = {
		.fd = c->fd, .up = &npc_upstream_chan, .up_ctx = c->chan,
		.max_xfer = npt_link_max_xfer(npc_link_raw(d->O->k)), .stop = &d->stop,
		.limits = { .size = d->size, .tflags = d->tflags, .min_block = 1,
			    .max_payload = NBDP_DEFAULT_MAX_PAYLOAD },
	};

	c->ret = npc_relay_run(&conf, &c->st, c->err, sizeof(c->err));
	npc_done_publish(&c->done);
	return NULL;
}

static void close_conns(struct device *d)
{
	for (unsigned i = 0; i < d->n; i++) {
		struct aconn *c = &d->c[i];
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

static struct device *device_new(struct owner *O, const struct npc_opts *o)
{
	struct device *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->O = O;
	d->o = *o;
	snprintf(d->name, sizeof(d->name), "%s", o->name);
	d->o.name = d->name;
	if (o->identifier) {
		snprintf(d->ident_opt, sizeof(d->ident_opt), "%s", o->identifier);
		d->o.identifier = d->ident_opt;
	}
	memset(d->o.owned, 0, sizeof(d->o.owned));
	d->index = o->dev_index;
	d->n = o->connections;
	for (unsigned i = 0; i < d->n; i++)
		d->c[i].fd = d->c[i].kfd = -1;
	return d;
}

static void device_free(struct device *d)
{
	if (!d)
		return;
	npc_flag_raise(&d->stop, 1);
	close_conns(d);
	free(d);
}

/* Negotiates d->n channels over the owner's link; the first time fills d->exp. */
static int open_channels(struct device *d, bool first, char *err, size_t errlen)
{
	struct owner *O = d->O;
	struct nbdp_client_opts co = { .goal = NBDP_GOAL_GO, .export_name = d->o.name,
				       .no_optgo = d->o.no_optgo };
	int r;

	if (d->n > npt_link_nchannels(npc_link_raw(O->k))) {
		snprintf(err, errlen, "-C %u: the link %s has only %u channels", d->n, O->link,
			 npt_link_nchannels(npc_link_raw(O->k)));
		return -EINVAL;
	}
	for (unsigned i = 0; i < d->n; i++) {
		struct nbdp_export e;
		int sv[2];

		r = npc_remote_handshake(O->k, &co, NPC_HANDSHAKE_TIMEOUT_MS, &d->c[i].chan, &e, err,
					 errlen);
		if (r)
			return r;
		if (first && i == 0) {
			d->exp = e;
		} else if (e.size != d->exp.size) {
			snprintf(err, errlen, "export '%s' changed size from %" PRIu64 " to %" PRIu64
				 " bytes: refusing to reconnect /dev/nbd%d to it", d->o.name,
				 d->exp.size, e.size, d->index);
			return -ESTALE;
		}
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			return -errno;
		d->c[i].fd = sv[0];
		d->c[i].kfd = sv[1];
		nbdpcie_sock_sndbuf(sv[1]);   /* the kernel sends WRITE payloads on it */
	}
	return 0;
}

/* Checks the export against the options; sets size, block size, flags. */
static int plan(struct device *d, char *err, size_t errlen)
{
	const struct npc_opts *o = &d->o;
	const struct nbdp_export *e = &d->exp;

	if (d->n > 1 && !(e->tflags & NBD_FLAG_CAN_MULTI_CONN)) {
		snprintf(err, errlen, "-C %u: export '%s' does not allow multiple connections (no NBD_FLAG_CAN_MULTI_CONN); use -C 1",
			 d->n, o->name);
		return -EINVAL;
	}
	d->block = o->block_size;
	if (!d->block) {
		d->block = NPC_BLOCK_MIN;
		while (d->block < e->min_block && d->block < NPC_BLOCK_MAX)
			d->block <<= 1;
	}
	if (e->min_block > d->block) {
		snprintf(err, errlen, "block size %u is below the export's minimum block size %u (the kernel allows at most %u)",
			 d->block, e->min_block, NPC_BLOCK_MAX);
		return -EINVAL;
	}
	d->size = o->size ? o->size : e->size;
	if (d->size > e->size) {
		snprintf(err, errlen, "-B %" PRIu64 ": larger than the export size %" PRIu64,
			 o->size, e->size);
		return -EINVAL;
	}
	d->size -= d->size % d->block;
	if (!d->size) {
		snprintf(err, errlen, "export '%s' of %" PRIu64 " bytes is smaller than one block of %u",
			 o->name, e->size, d->block);
		return -EINVAL;
	}
	d->tflags = e->tflags | NBD_FLAG_HAS_FLAGS;
	if (o->readonly)
		d->tflags |= NBD_FLAG_READ_ONLY;
	if (o->identifier)
		snprintf(d->ident, sizeof(d->ident), "%s", o->identifier);
	else
		snprintf(d->ident, sizeof(d->ident), "nbd-pcie:%s:%s", d->O->link,
			 *o->name ? o->name : "(default)");
	return 0;
}

static uint64_t dead_timeout(const struct device *d)
{
	return d->o.dead_timeout ? d->o.dead_timeout
		: d->o.persist ? ATTACH_PERSIST_DEAD_TIMEOUT_S : 0;
}

static void fill_config(struct device *d, struct npc_nl_config *cfg, int *fds)
{
	for (unsigned i = 0; i < d->n; i++)
		fds[i] = d->c[i].kfd;
	memset(cfg, 0, sizeof(*cfg));
	cfg->index = d->index;
	cfg->size = d->size;
	cfg->block_size = d->block;
	cfg->server_flags = d->tflags;
	cfg->timeout = d->o.timeout;
	cfg->dead_timeout = dead_timeout(d);
	cfg->identifier = d->ident;
	cfg->fds = fds;
	cfg->nfds = d->n;
}

static int start_relays(struct device *d, char *err, size_t errlen)
{
	npc_flag_raise(&d->stop, 0);
	for (unsigned i = 0; i < d->n; i++) {
		struct aconn *c = &d->c[i];
		/* The kernel holds its own reference to its end now. */
		close(c->kfd);
		c->kfd = -1;
		c->done = false;
		c->d = d;
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

/* Negotiates, plans and connects device d over the owner's link. err
 * receives the whole message (device included) on failure. */
static int device_attach(struct device *d, char *err, size_t errlen)
{
	struct owner *O = d->O;
	struct npc_nl_config cfg;
	int fds[NPC_CONNECTIONS_MAX];
	char e[1024];
	uint32_t index;
	int r;

	if ((r = open_channels(d, true, e, sizeof(e))) || (r = plan(d, e, sizeof(e)))) {
		snprintf(err, errlen, "/dev/nbd%d: %s%s%s", d->index, e,
			 r == -ENOENT ? "; list the exports with nbd-pcie-client -l -pcie " : "",
			 r == -ENOENT ? O->link : "");
		close_conns(d);
		return r;
	}
	fill_config(d, &cfg, fds);
	r = npc_kernel->connect(O->nl, &cfg, &index);
	if (r) {
		snprintf(err, errlen, "/dev/nbd%d: NBD_CMD_CONNECT (size %" PRIu64 ", block size %u, %u connection%s) refused: %s",
			 d->index, d->size, d->block, d->n, d->n > 1 ? "s" : "",
			 npc_nl_strerror(NBD_CMD_CONNECT, r));
		close_conns(d);
		return r;
	}
	d->index = (int)index;
	if ((r = start_relays(d, e, sizeof(e)))) {
		snprintf(err, errlen, "/dev/nbd%d: %s", d->index, e);
		npc_kernel->disconnect(O->nl, d->index);
		close_conns(d);
		return r;
	}
	if (d->o.swap && mlockall(MCL_CURRENT | MCL_FUTURE))
		npc_log(LOG_WARNING, "-swap: mlockall: %s", strerror(errno));
	snprintf(err, errlen, "/dev/nbd%d: export '%s' of %" PRIu64 " bytes, block size %u, %u connection%s over %s%s",
		 d->index, d->o.name, d->size, d->block, d->n, d->n > 1 ? "s" : "",
		 npt_link_describe(npc_link_raw(O->k)),
		 (d->tflags & NBD_FLAG_READ_ONLY) ? ", read-only" : "");
	return 0;
}

static void owner_describe(struct owner *O)
{
	size_t off = 0;

	O->who[0] = '\0';
	for (unsigned i = 0; i < O->ndev && off < sizeof(O->who); i++)
		off += (size_t)snprintf(O->who + off, sizeof(O->who) - off, "%s/dev/nbd%d (export '%s')",
					i ? ", " : "", O->dev[i]->index, O->dev[i]->o.name);
}

/* ATTACH from another nbd-pcie-client (ctl.c). */
static int attach_request(void *ctx, const struct npc_opts *o, char *msg, size_t msglen)
{
	struct owner *O = ctx;
	struct device *d;
	int r;

	for (unsigned i = 0; i < O->ndev; i++)
		if (O->dev[i]->index == o->dev_index) {
			snprintf(msg, msglen, "/dev/nbd%d is already served by this link's nbd-pcie-client",
				 o->dev_index);
			return -EBUSY;
		}
	if (O->ndev == ATTACH_DEVICES_MAX) {
		snprintf(msg, msglen, "this link's nbd-pcie-client serves %u devices already (the limit)",
			 ATTACH_DEVICES_MAX);
		return -ENOSPC;
	}
	if (!(d = device_new(O, o))) {
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	r = device_attach(d, msg, msglen);
	if (r) {
		npc_log(LOG_ERR, "%s", msg);
		device_free(d);
		return r;
	}
	npc_log(LOG_INFO, "%s", msg);
	O->dev[O->ndev++] = d;
	owner_describe(O);
	return 0;
}

static void remove_device(struct owner *O, unsigned i)
{
	device_free(O->dev[i]);
	O->dev[i] = O->dev[--O->ndev];
	owner_describe(O);
}

/* Device i could not be brought back: says why, disconnects it in the
 * kernel and removes it; the owner will exit with a failure. */
static void give_up_device(struct owner *O, unsigned i, const char *why)
{
	struct device *d = O->dev[i];

	npc_log(LOG_ERR, "/dev/nbd%d: %s", d->index, why);
	close_conns(d);
	npc_kernel->disconnect(O->nl, d->index);
	O->exit_code = NPC_EXIT_FAIL;
	remove_device(O, i);
}

static uint64_t stats_sum(const struct device *d, int what)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < d->n; i++)
		v += what == 0 ? d->c[i].st.requests : what == 1 ? d->c[i].st.bytes_read
			: d->c[i].st.bytes_written;
	return v;
}

static void log_detached(const struct device *d)
{
	npc_log(LOG_INFO, "/dev/nbd%d: detached: %" PRIu64 " requests, %" PRIu64 " bytes read, %" PRIu64 " bytes written",
		d->index, stats_sum(d, 0), stats_sum(d, 1), stats_sum(d, 2));
}

/* The link died. Devices without -p are disconnected; the others get new
 * channels and sockets (NBD_CMD_RECONFIGURE). 0 while some device lives. */
static void reconnect(struct owner *O, const char *why)
{
	struct npc_nl_config cfg;
	int fds[NPC_CONNECTIONS_MAX];
	char err[1024];
	uint64_t longest = 0;
	time_t give_up;
	int r;

	for (unsigned i = 0; i < O->ndev;) {
		struct device *d = O->dev[i];
		npc_flag_raise(&d->stop, 1);
		close_conns(d);   /* the kernel sees its sockets die: LINK_DEAD */
		if (!d->o.persist || d->disconnecting) {
			npc_log(LOG_ERR, "/dev/nbd%d: link lost: %s; disconnecting", d->index, why);
			npc_kernel->disconnect(O->nl, d->index);
			log_detached(d);
			O->exit_code = NPC_EXIT_FAIL;
			remove_device(O, i);
			continue;
		}
		npc_log(LOG_WARNING, "/dev/nbd%d: link lost: %s; reconnecting (-p)", d->index, why);
		if (dead_timeout(d) > longest)
			longest = dead_timeout(d);
		i++;
	}
	npc_link_close(O->k);
	O->k = NULL;
	give_up = time(NULL) + (time_t)longest;
	while (O->ndev && time(NULL) < give_up && !npc_flag_read(&npc_stop_flag)) {
		if ((r = npc_link_open(O->link, &O->k, err, sizeof(err)))) {
			npc_log(LOG_INFO, "persist: waiting for the EP: %s", err);
			sleep_us(500000);
			continue;
		}
		bool retry = false;
		for (unsigned i = 0; i < O->ndev && !retry;) {
			struct device *d = O->dev[i];
			r = open_channels(d, false, err, sizeof(err));
			if (r == -ESTALE) {
				give_up_device(O, i, err);
				continue;
			}
			if (r) {
				npc_log(LOG_INFO, "persist: /dev/nbd%d: waiting for the EP: %s", d->index,
					err);
				retry = true;
				break;
			}
			i++;
		}
		if (retry) {
			for (unsigned i = 0; i < O->ndev; i++)
				close_conns(O->dev[i]);
			npc_link_close(O->k);
			O->k = NULL;
			sleep_us(500000);
			continue;
		}
		for (unsigned i = 0; i < O->ndev;) {
			struct device *d = O->dev[i];
			npc_kernel->link_dead(O->nl, d->index);   /* drain the notifications */
			fill_config(d, &cfg, fds);
			for (int tries = 0; tries < 20; tries++) {
				r = npc_kernel->reconfigure(O->nl, &cfg);
				if (r == 0)
					break;
				sleep_us(100000);    /* the kernel may not have seen the dead sockets yet */
			}
			if (r == 0)
				r = start_relays(d, err, sizeof(err));
			else
				snprintf(err, sizeof(err), "NBD_CMD_RECONFIGURE refused: %s",
					 npc_nl_strerror(NBD_CMD_RECONFIGURE, r));
			if (r) {
				give_up_device(O, i, err);
				continue;
			}
			npc_log(LOG_INFO, "/dev/nbd%d: reconnected over %s", d->index,
				npt_link_describe(npc_link_raw(O->k)));
			i++;
		}
		return;
	}
	/* Gave up (or asked to stop): every remaining device goes. */
	while (O->ndev) {
		struct device *d = O->dev[0];
		npc_log(LOG_ERR, "/dev/nbd%d: persist: the EP did not come back within the dead connection timeout (%" PRIu64 " s); disconnecting",
			d->index, dead_timeout(d));
		npc_kernel->disconnect(O->nl, d->index);
		log_detached(d);
		O->exit_code = NPC_EXIT_FAIL;
		remove_device(O, 0);
	}
}

/* One look at a device's relays: 1 if the device is finished (every relay
 * ended on the kernel's disconnect), -errno for a link failure (*why), 0. */
static int check_device(struct device *d, const char **why)
{
	unsigned finished = 0;

	if (d->disconnecting && time(NULL) > d->drain_deadline)
		npc_flag_raise(&d->stop, 1);
	for (unsigned i = 0; i < d->n; i++) {
		struct aconn *c = &d->c[i];
		if (!npc_done_seen(&c->done))
			continue;
		finished++;
		if (d->disconnecting)
			continue;
		if (c->ret && c->ret != -EINTR && c->ret != -EPIPE) {
			*why = c->err;
			return c->ret;
		}
		if ((!c->ret || c->ret == -EPIPE) && !c->st.saw_disc && d->o.persist) {
			/* The kernel dropped this connection without a disconnect
			 * (request timeout): with -p it waits for a new socket,
			 * as after a link loss. */
			*why = "the kernel closed a connection (request timeout?)";
			return -ECONNRESET;
		}
	}
	return finished == d->n;
}

int npc_cmd_attach(const struct npc_opts *o)
{
	struct owner O = { .link = o->link, .ctl = -1, .exit_code = NPC_EXIT_OK };
	struct device *first = NULL;
	char err[1024] = "", perr[256];
	int notify = -1, pexit, r;
	const char *pidfile = o->pidfile;
	char defpid[64];
	bool wrote_pid = false, stopping = false;

	npc_signals_init();
	/* Fail fast, before forking, when the kernel side is missing. */
	if ((r = npc_kernel->open(&O.nl, err, sizeof(err)))) {
		npc_log(LOG_ERR, "%s: %s", o->device, err);
		return NPC_EXIT_FAIL;
	}
	npc_kernel->close(O.nl);
	O.nl = NULL;
	/* A process already holds the link: it attaches this device too. */
	r = npc_ctl_attach(o, err, sizeof(err));
	if (r != -ECONNREFUSED && r != -ENOENT) {
		if (r) {
			npc_log(LOG_ERR, "%s: %s", o->device, err);
			return NPC_EXIT_FAIL;
		}
		npc_log(LOG_INFO, "%s (served by the nbd-pcie-client that holds %s)", err, o->link);
		return NPC_EXIT_OK;
	}
	if (npc_daemon_start(o->nofork, &notify, &pexit))
		return pexit;
	O.exit_code = NPC_EXIT_FAIL;
	if ((r = npc_kernel->open(&O.nl, err, sizeof(err)))) {
		npc_log(LOG_ERR, "%s: %s", o->device, err);
		goto out;
	}
	if (o->persist && npc_kernel->watch(O.nl, err, sizeof(err)))
		npc_log(LOG_WARNING, "%s: %s (reconnecting without LINK_DEAD notifications)",
			o->device, err);
	if ((r = npc_link_open(o->link, &O.k, err, sizeof(err)))) {
		npc_log(LOG_ERR, "%s: %s", o->device, err);
		goto out;
	}
	if ((O.ctl = npc_ctl_listen(o->link, err, sizeof(err))) < 0) {
		npc_log(LOG_ERR, "%s: %s", o->device, err);
		goto out;
	}
	if (!(first = device_new(&O, o)))
		goto out;
	if ((r = device_attach(first, err, sizeof(err)))) {
		npc_log(LOG_ERR, "%s", err);
		device_free(first);
		goto out;
	}
	O.dev[O.ndev++] = first;
	owner_describe(&O);
	if (!pidfile) {
		snprintf(defpid, sizeof(defpid), "/run/nbd-pcie-client.nbd%d.pid", first->index);
		pidfile = defpid;
	}
	if (npc_pidfile_write(pidfile, perr, sizeof(perr)) == 0)
		wrote_pid = true;
	else if (o->pidfile)
		npc_log(LOG_WARNING, "%s", perr);
	npc_log(LOG_INFO, "%s", err);
	npc_daemon_ready(notify);
	notify = -1;
	O.exit_code = NPC_EXIT_OK;

	while (O.ndev) {
		const char *why = NULL;
		int link_err = 0;

		if (!stopping && npc_flag_read(&npc_stop_flag)) {
			npc_log(LOG_INFO, "signal %d: disconnecting every device", npc_stop_flag);
			stopping = true;
			for (unsigned i = 0; i < O.ndev; i++) {
				struct device *d = O.dev[i];
				r = npc_kernel->disconnect(O.nl, d->index);
				if (r)
					npc_log(LOG_WARNING, "/dev/nbd%d: NBD_CMD_DISCONNECT: %s", d->index,
						npc_nl_strerror(NBD_CMD_DISCONNECT, r));
				d->disconnecting = true;
				d->drain_deadline = time(NULL) + ATTACH_DRAIN_S;
			}
		}
		npc_ctl_serve(O.ctl, O.k, O.who, stopping ? NULL : attach_request, &O);
		r = npc_link_check(O.k);
		if (r && r != -EAGAIN) {
			link_err = r;
			why = npt_link_error(npc_link_raw(O.k));
		}
		for (unsigned i = 0; i < O.ndev && !link_err;) {
			struct device *d = O.dev[i];
			r = check_device(d, &why);
			if (r < 0) {
				link_err = r;
				break;
			}
			if (r == 1) {
				/* Every relay ended on the kernel's disconnect. */
				log_detached(d);
				remove_device(&O, i);
				continue;
			}
			i++;
		}
		if (link_err) {
			/* Keep the reason: reconnect() closes what it points into. */
			char reason[512];
			snprintf(reason, sizeof(reason), "%s", why ? why : strerror(-link_err));
			reconnect(&O, reason);
			continue;
		}
		sleep_us(ATTACH_TICK_US);
	}
out:
	if (notify >= 0)
		close(notify);   /* the starter sees EOF: we failed before ready */
	while (O.ndev)
		remove_device(&O, 0);
	if (O.ctl >= 0)
		close(O.ctl);
	if (wrote_pid)
		unlink(pidfile);
	npc_link_close(O.k);
	if (O.nl)
		npc_kernel->close(O.nl);
	return O.exit_code;
}

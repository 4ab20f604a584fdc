/* The link as the client uses it: open/close with a lock around the
 * link-level calls that must not run concurrently (npt_link_check and
 * npt_chan_open), and the client handshake over a channel (GO to attach,
 * INFO for a lookup, LIST for -l). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <nbdproto/client.h>

#include "internal.h"

struct npc_link {
	struct npt_link *l;
	pthread_mutex_t mu;
	int64_t last_check_ms;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int npc_link_open(const char *spec, struct npc_link **out, char *err, size_t errlen)
{
	struct npc_link *k = calloc(1, sizeof(*k));
	struct npt_link_params p = { 0 };   /* the transport's defaults */
	char terr[256] = "";
	int r;

	if (!k)
		return -ENOMEM;
	r = npt_link_open(spec, NPT_ROLE_HOST, &p, &k->l, terr, sizeof(terr));
	if (r) {
		snprintf(err, errlen, "-pcie %s: cannot open the link: %s", spec,
			 terr[0] ? terr : strerror(-r));
		free(k);
		return r;
	}
	pthread_mutex_init(&k->mu, NULL);
	*out = k;
	return 0;
}

void npc_link_close(struct npc_link *k)
{
	if (!k)
		return;
	npt_link_close(k->l);
	pthread_mutex_destroy(&k->mu);
	free(k);
}

struct npt_link *npc_link_raw(struct npc_link *k)
{
	return k->l;
}

int npc_link_check(struct npc_link *k)
{
	int r;

	pthread_mutex_lock(&k->mu);
	r = npt_link_check(k->l);
	/* A hint read without the lock by check_if_due(): untorn, unordered. */
	__atomic_store_n(&k->last_check_ms, now_ms(), __ATOMIC_RELAXED);
	pthread_mutex_unlock(&k->mu);
	return r;
}

/* Beats the heartbeat if nobody did for half its period. */
static int check_if_due(struct npc_link *k)
{
	if (now_ms() - __atomic_load_n(&k->last_check_ms, __ATOMIC_RELAXED) < NPT_HEARTBEAT_MS / 2)
		return 0;
	return npc_link_check(k);
}

int npc_link_chan_open(struct npc_link *k, struct npt_chan **out)
{
	int r;

	pthread_mutex_lock(&k->mu);
	r = npt_chan_open(k->l, -1, out);
	pthread_mutex_unlock(&k->mu);
	return r;
}

/* Sends what the machine has pending; 0, or -errno. */
static int flush_client(struct nbdp_client *c, struct npt_chan *ch)
{
	const void *data;
	size_t len;

	while ((len = nbdp_client_pending(c, &data)) > 0) {
		ssize_t n = npt_chan_send(ch, data, len);
		if (n == -EAGAIN)
			return -EAGAIN;
		if (n < 0)
			return (int)n;
		nbdp_client_consumed(c, (size_t)n);
	}
	return 0;
}

/* Nothing moved: sleep on the channel's doorbell (the EP rings when it
 * accepts, answers or makes room), or back off when it has none. The sleep
 * is bounded by NPT_WAIT_MAX_MS and the deadline: link checks and the
 * timeout keep their cadence. */
static void idle_wait(struct npt_chan *ch, struct npt_backoff *bo, int64_t deadline)
{
	struct pollfd p = { .fd = npt_chan_wait_fd(ch), .events = POLLIN };
	int64_t left = deadline - now_ms();

	if (p.fd >= 0) {
		if (npt_backoff_spin(bo))
			return;
		if (!npt_chan_arm(ch)) {
			poll(&p, 1, (int)(left < 0 ? 0 : left < NPT_WAIT_MAX_MS ? left : NPT_WAIT_MAX_MS));
			npt_chan_disarm(ch);
			return;
		}
	}
	unsigned us = npt_backoff_next_us(bo);
	if (us)
		usleep(us);
}

int npc_remote_handshake(struct npc_link *k, const struct nbdp_client_opts *co, int timeout_ms,
			 struct npt_chan **chan_out, struct nbdp_export *exp, char *err,
			 size_t errlen)
{
	struct nbdp_client *c = NULL;
	struct npt_chan *ch = NULL;
	struct npt_backoff bo;
	uint8_t buf[4096];
	int64_t deadline = now_ms() + timeout_ms;
	const char *what = co->goal == NBDP_GOAL_LIST ? "list" : co->goal == NBDP_GOAL_INFO ? "info" : "attach";
	int r;

	r = npc_link_chan_open(k, &ch);
	if (r) {
		snprintf(err, errlen, "%s: no free channel on %s (%u channels, all in use): %s", what,
			 npt_link_describe(k->l), npt_link_nchannels(k->l), strerror(-r));
		return r;
	}
	c = nbdp_client_new(co);
	if (!c) {
		r = errno ? -errno : -ENOMEM;
		snprintf(err, errlen, "%s: export name '%s': %s", what,
			 co->export_name ? co->export_name : "", strerror(-r));
		goto fail;
	}
	npt_backoff_reset(&bo);
	for (;;) {
		enum nbdp_client_state st = nbdp_client_state(c);
		r = flush_client(c, ch);
		if (r && r != -EAGAIN) {
			snprintf(err, errlen, "%s: sending the handshake to the EP failed: %s (%s)", what,
				 strerror(-r), npt_chan_error(ch));
			goto fail;
		}
		if (st == NBDP_C_FAILED) {
			r = nbdp_client_error_code(c);
			if (!r)
				r = -EPROTO;
			snprintf(err, errlen, "%s", nbdp_client_error(c));
			goto fail;
		}
		if ((st == NBDP_C_TRANSMISSION || st == NBDP_C_DONE) && r == 0)
			break;
		ssize_t n = npt_chan_recv(ch, buf, sizeof(buf));
		if (n > 0) {
			npt_backoff_reset(&bo);
			for (size_t off = 0; off < (size_t)n;) {
				ssize_t took = nbdp_client_feed(c, buf + off, (size_t)n - off);
				if (took < 0 || nbdp_client_state(c) != NBDP_C_NEGOTIATING)
					break;
				if (took == 0) {
					if ((r = flush_client(c, ch)) && r != -EAGAIN)
						break;
					continue;
				}
				off += (size_t)took;
			}
			continue;
		}
		if (n == 0) {
			r = -ECONNRESET;
			snprintf(err, errlen, "%s: the EP closed the channel during the handshake (%s)",
				 what, npt_chan_error(ch));
			goto fail;
		}
		if (n != -EAGAIN) {
			r = (int)n;
			snprintf(err, errlen, "%s: channel: %s (%s)", what, strerror(-r),
				 npt_chan_error(ch));
			goto fail;
		}
		if ((r = check_if_due(k)) && r != -EAGAIN) {
			snprintf(err, errlen, "%s: link down during the handshake: %s", what,
				 npt_link_error(k->l));
			goto fail;
		}
		if (now_ms() > deadline) {
			r = -ETIMEDOUT;
			snprintf(err, errlen, "%s: the EP did not answer the handshake within %d ms", what,
				 timeout_ms);
			goto fail;
		}
		idle_wait(ch, &bo, deadline);
	}
	if (exp && nbdp_client_export(c)) {
		*exp = *nbdp_client_export(c);
		exp->description = NULL;   /* owned by the machine, freed below */
	}
	if (chan_out && nbdp_client_state(c) == NBDP_C_TRANSMISSION) {
		r = npt_chan_begin_frames(ch);
		if (r) {
			snprintf(err, errlen, "%s: switching the channel to frames failed: %s", what,
				 npt_chan_error(ch));
			goto fail;
		}
		*chan_out = ch;
		ch = NULL;
	}
	r = 0;
fail:
	nbdp_client_free(c);
	npt_chan_close(ch);
	return r;
}

/* Channels: open (host), accept (EP), close, liveness, statistics, and the
 * handshake byte streams (docs/transport.md "Channels" and "Handshake
 * stream"). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

int npt_chan_fail(struct npt_chan *c, int err, const char *fmt, ...)
{
	va_list ap;

	if (c->status)
		return c->status;
	c->status = err;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return err;
}

void npt_chan_push_slow(struct npt_chan *c, const void *p, size_t len)
{
	uint64_t off = (uint64_t)((const uint8_t *)p - (const uint8_t *)c->hctl);
	int r;

	/* also after a failure: the close that follows still tells the host */
	if (!c->dma)
		return;
	r = c->link->dma_ops->write(c->dma, p, off, (uint32_t)len);
	if (r)
		npt_chan_fail(c, r, "channel %u: window write of %zu bytes at offset %" PRIu64 ": %s",
			      c->idx, len, off, strerror(-r));
}

int npt_chan_alive(struct npt_chan *c)
{
	unsigned epoch;
	int down;

	if (unlikely(c->status))
		return c->status;
	down = npt_link_state(c->link, &epoch);
	if (c->role == NPT_ROLE_HOST) {
		if (unlikely(down))
			return npt_chan_fail(c, -ECONNRESET, "channel %u: %s", c->idx,
					     npt_link_error(c->link));
	} else if (unlikely(epoch != c->epoch)) {
		return npt_chan_fail(c, -ECONNRESET, "channel %u: host reset or detached (%s)",
				     c->idx, npt_link_error(c->link));
	}
	return 0;
}

int npt_chan_peer_check(struct npt_chan *c)
{
	int r = npt_chan_alive(c);

	if (r)
		return r;
	if (c->role == NPT_ROLE_HOST) {
		uint32_t s = npt_load_acquire32(&c->hctl->session);
		uint32_t st = npt_load_acquire32(&c->hctl->ep_state);

		if (s != c->session)
			return 0;                       /* not accepted yet */
		if (st == NPL_CHE_ERROR) {
			uint32_t code = npt_rd32(&c->hctl->error);

			return npt_chan_fail(c, -EPROTO, "channel %u: EP rejected the channel: %s (code %" PRIu32 ")",
					     c->idx, npt_err_name(code), code);
		}
		if (st != NPL_CHE_ACCEPTED)
			return npt_chan_fail(c, -ECONNRESET, "channel %u: EP closed the channel", c->idx);
		c->accepted = true;
	} else {
		uint32_t st = npt_load_acquire32(&c->ectl->host_state);
		uint32_t s = npt_rd32(&c->ectl->session);

		if (st != NPL_CH_OPEN || s != c->session)
			return npt_chan_fail(c, -ECONNRESET, "channel %u: host closed the channel", c->idx);
	}
	return 0;
}

/* hp: the host-polled area in the window, or NULL for the BAR copy
 * (BAR-only mode, or an epf EP's shadow of the window); data: the payload
 * bytes the window gives a channel (0: the layout's data_per_chan). */
static void chan_map(struct npt_chan *c, uint8_t *hp, uint32_t data)
{
	const struct npt_layout *lay = &c->link->lay;
	uint8_t *base = c->link->bar + lay->chan_base + (uint64_t)c->idx * lay->chan_stride;

	c->n = lay->ring_entries;
	c->mask = c->n - 1;
	c->ssize = lay->stream_size;
	c->ectl = (struct npl_chan_ep_ctl *)base;
	c->sq = (struct npl_sqe *)(base + NPL_CHAN_SQ_OFFSET);
	c->h2e = base + NPL_CHAN_SQ_OFFSET + (size_t)c->n * sizeof(struct npl_sqe);
	if (!hp)
		hp = base + lay->hp_offset;
	c->data_size = data ? data : lay->data_per_chan;
	c->hctl = (struct npl_chan_host_ctl *)hp;
	c->cq = (struct npl_cqe *)(hp + NPL_CHAN_CQ_OFFSET);
	c->e2h = hp + NPL_CHAN_CQ_OFFSET + (size_t)c->n * sizeof(struct npl_cqe);
	c->payload = hp + lay->payload_offset;
	c->wc = c->role == NPT_ROLE_HOST && c->link->bar_wc;
}

int npt_chan_open(struct npt_link *l, int idx, struct npt_chan **out)
{
	int32_t self = (int32_t)getpid();
	struct npt_hosts_reg reg;
	struct npt_chan *c;
	uint8_t *hp = NULL;
	uint32_t session = 0, data = 0;
	int r, i;

	*out = NULL;
	if (l->role != NPT_ROLE_HOST)
		return -EINVAL;
	if (idx >= (int)l->lay.nchannels || idx < -1)
		return -EINVAL;
	r = npt_link_state(l, NULL);
	if (r)
		return r;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_lock(&l->lock);
	/* channels are shared with the other host processes of this link */
	r = npt_hosts_lock(l);
	if (r) {
		pthread_mutex_unlock(&l->lock);
		free(c);
		return r;
	}
	npt_hosts_read(l, &reg);
	if (reg.gen != l->gen) {
		/* another process attached a newer generation: ours is ending */
		npt_hosts_unlock(l);
		pthread_mutex_unlock(&l->lock);
		free(c);
		return -ECONNRESET;
	}
	if (idx < 0) {
		for (i = 0; i < (int)l->lay.nchannels; i++)
			if (!l->chan_busy[i] && (reg.pid[i] == self || !npt_hosts_pid_alive(reg.pid[i])))
				break;
		idx = i < (int)l->lay.nchannels ? i : -1;
	} else if (l->chan_busy[idx] || (reg.pid[idx] != self && npt_hosts_pid_alive(reg.pid[idx]))) {
		idx = -1;
	}
	if (idx >= 0) {
		struct npl_chan_ep_ctl *e = (struct npl_chan_ep_ctl *)
			(l->bar + l->lay.chan_base + (uint64_t)idx * l->lay.chan_stride);
		uint32_t bar_s = npt_rd32(&e->session);

		l->chan_busy[idx] = true;
		reg.pid[idx] = self;
		npt_hosts_write(l, &reg);
		/* Sessions: above both our own last one (a scribbled BAR value
		 * cannot repeat the EP's last accepted session) and the BAR's
		 * (another process may have used the channel since). */
		session = (l->chan_session[idx] > bar_s ? l->chan_session[idx] : bar_s) + 1;
		if (!session) {
			/* the BAR holds the largest value: wrap from our own
			 * last session instead, which is the one the EP most
			 * likely accepted last, so the new one differs from it */
			session = l->chan_session[idx] + 1;
			if (!session)
				session = 1;
		}
		l->chan_session[idx] = session;
		if (l->window) {
			hp = l->win->base + (uint64_t)idx * l->win_stride;
			data = l->win_data;
		}
	}
	npt_hosts_unlock(l);
	pthread_mutex_unlock(&l->lock);
	if (idx < 0) {
		free(c);
		return -EBUSY;
	}
	c->link = l;
	c->role = NPT_ROLE_HOST;
	c->idx = (unsigned)idx;
	chan_map(c, hp, data);
	r = npt_host_chan_init(c);
	if (r) {
		npt_link_release_chan(l, c->idx);
		npt_host_chan_fini(c);
		free(c);
		return r;
	}
	/* reset our side, then publish the new session: CLOSED, reset,
	 * session (release), OPEN (release) -- see docs "Opening a channel" */
	c->session = session;
	npt_store_release32(&c->ectl->host_state, NPL_CH_CLOSED);
	for (uint32_t k = 0; k < c->n; k++)
		npt_wr32(&c->sq[k].seq, 0);
	npt_wr32(&c->ectl->h2e_prod, 0);
	npt_wr32(&c->ectl->e2h_cons, 0);
	npt_wr32(&c->ectl->host_sleeping, NPL_AWAKE);
	npt_wc_fence(c->wc);
	npt_store_release32(&c->ectl->session, c->session);
	npt_wc_fence(c->wc);
	npt_store_release32(&c->ectl->host_state, NPL_CH_OPEN);
	npt_wc_fence(c->wc);
	npt_chan_bell_init(c);
	*out = c;
	return 0;
}

int npt_chan_accept(struct npt_link *l, struct npt_chan **out)
{
	const struct npt_layout *lay = &l->lay;
	struct npt_chan *c;
	unsigned epoch;
	int found = -1;
	uint32_t sess = 0, data = 0;
	uint8_t *hp = NULL;
	int r;

	*out = NULL;
	if (l->role != NPT_ROLE_EP)
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	if (l->down) {
		pthread_mutex_unlock(&l->lock);
		return -EAGAIN;
	}
	for (uint32_t i = 0; i < lay->nchannels && found < 0; i++) {
		struct npl_chan_ep_ctl *e = (struct npl_chan_ep_ctl *)
			(l->bar + lay->chan_base + (uint64_t)i * lay->chan_stride);
		uint32_t s1, st, s2;

		if (l->chan_busy[i])
			continue;
		s1 = npt_load_acquire32(&e->session);
		st = npt_load_acquire32(&e->host_state);
		s2 = npt_rd32(&e->session);
		if (st == NPL_CH_OPEN && s1 == s2 && s1 != l->chan_session[i]) {
			found = (int)i;
			sess = s1;
		}
	}
	if (found < 0) {
		pthread_mutex_unlock(&l->lock);
		return -EAGAIN;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		pthread_mutex_unlock(&l->lock);
		return -ENOMEM;
	}
	l->chan_busy[found] = true;
	l->chan_session[found] = sess;
	epoch = l->epoch;
	if (l->window) {
		c->win = l->win;
		c->win->refs++;
		c->shadow = l->win_shadow;
		if (!c->shadow)
			hp = c->win->base + (uint64_t)found * l->win_stride;
		data = l->win_data;
	}
	pthread_mutex_unlock(&l->lock);

	c->link = l;
	c->role = NPT_ROLE_EP;
	c->idx = (unsigned)found;
	c->session = sess;
	c->epoch = epoch;
	chan_map(c, hp, data);
	r = npt_ep_chan_init(c);
	if (r) {
		npt_chan_close(c);
		return r;
	}
	/* reset the host-polled area, then ACCEPTED, then session (release):
	 * the host trusts nothing in the area before it sees its session. */
	for (uint32_t k = 0; k < c->n; k++)
		npt_wr32(&c->cq[k].seq, 0);
	npt_wr32(&c->hctl->e2h_prod, 0);
	npt_wr32(&c->hctl->h2e_cons, 0);
	npt_wr32(&c->hctl->error, 0);
	npt_wr32(&c->hctl->ep_sleeping, NPL_AWAKE);
	npt_chan_push(c, &c->hctl->ep_sleeping, sizeof(__le32));
	npt_chan_push(c, c->cq, (size_t)c->n * sizeof(*c->cq));
	npt_chan_push(c, &c->hctl->e2h_prod, 3 * sizeof(__le32));   /* e2h_prod, h2e_cons, error */
	npt_store_release32(&c->hctl->ep_state, NPL_CHE_ACCEPTED);
	npt_chan_push(c, &c->hctl->ep_state, sizeof(__le32));
	npt_store_release32(&c->hctl->session, sess);
	npt_chan_push(c, &c->hctl->session, sizeof(__le32));
	npt_chan_bell_init(c);
	npt_chan_kick(c);   /* a host asleep waiting for the accept */
	*out = c;
	return 0;
}

void npt_chan_close(struct npt_chan *c)
{
	if (!c)
		return;
	if (c->role == NPT_ROLE_HOST) {
		struct npt_hosts_reg reg;

		if (c->ectl) {
			npt_store_release32(&c->ectl->host_state, NPL_CH_CLOSED);
			npt_wc_fence(c->wc);
			npt_chan_kick(c);
			npt_chan_bell_fini(c);
		}
		npt_host_chan_fini(c);
		/* after npt_link_close() the registry is no longer ours to touch */
		/* flock does not exclude the threads of one process: the link
		 * lock does (same order as in npt_chan_open) */
		pthread_mutex_lock(&c->link->lock);
		if (c->link->reg_fd >= 0 && !__atomic_load_n(&c->link->closing, __ATOMIC_ACQUIRE) &&
		    npt_hosts_lock(c->link) == 0) {
			npt_hosts_read(c->link, &reg);
			if (reg.gen == c->link->gen && reg.pid[c->idx] == (int32_t)getpid()) {
				reg.pid[c->idx] = 0;
				npt_hosts_write(c->link, &reg);
			}
			npt_hosts_unlock(c->link);
		}
		pthread_mutex_unlock(&c->link->lock);
	} else {
		if (c->hctl && c->status != -EPROTO) {
			npt_store_release32(&c->hctl->ep_state, NPL_CHE_CLOSED);
			npt_chan_push(c, &c->hctl->ep_state, sizeof(__le32));
		}
		if (c->hctl) {
			npt_chan_kick(c);
			npt_chan_bell_fini(c);
		}
		npt_ep_chan_fini(c);
		npt_link_win_put(c->link, c->win);
	}
	npt_link_release_chan(c->link, c->idx);
	free(c);
}

unsigned npt_chan_index(const struct npt_chan *c)
{
	return c->idx;
}

int npt_chan_status(struct npt_chan *c)
{
	return npt_chan_peer_check(c);
}

const char *npt_chan_error(struct npt_chan *c)
{
	return c->err;
}

int npt_chan_begin_frames(struct npt_chan *c)
{
	int r = npt_chan_alive(c);

	if (r)
		return r;
	c->frames = true;
	return 0;
}

/* ---- handshake byte streams ---------------------------------------------- */

ssize_t npt_chan_send(struct npt_chan *c, const void *buf, size_t len)
{
	uint8_t *data = c->role == NPT_ROLE_HOST ? c->h2e : c->e2h;
	__le32 *prod = c->role == NPT_ROLE_HOST ? &c->ectl->h2e_prod : &c->hctl->e2h_prod;
	__le32 *consw = c->role == NPT_ROLE_HOST ? &c->hctl->h2e_cons : &c->ectl->e2h_cons;
	uint32_t cons, used, room, pos, first;
	int r = npt_chan_alive(c);

	if (r)
		return r;
	if (c->frames) {
		npt_chan_fail(c, -EINVAL, "send: channel %u is in frame mode", c->idx);
		return -EINVAL;
	}
	if (c->role == NPT_ROLE_HOST && !c->accepted) {
		r = npt_chan_peer_check(c);
		if (r)
			return r;
	}
	/* before the EP accepted, it has consumed nothing (it resets h2e_cons) */
	cons = (c->role == NPT_ROLE_EP || c->accepted) ? npt_load_acquire32(consw) : 0;
	used = c->tx - cons;
	if (used > c->ssize)
		return npt_chan_fail(c, -EPROTO, "send: channel %u peer consumer index %" PRIu32
				     " outside %" PRIu32 "..%" PRIu32, c->idx, cons,
				     c->tx - c->ssize, c->tx);
	room = c->ssize - used;
	if (!room) {
		c->tx_blocked = len != 0;   /* npt_chan_arm waits for room */
		return len ? -EAGAIN : 0;
	}
	c->tx_blocked = false;
	if (len > room)
		len = room;
	pos = c->tx & (c->ssize - 1);
	first = c->ssize - pos < len ? c->ssize - pos : (uint32_t)len;
	memcpy(data + pos, buf, first);
	memcpy(data, (const uint8_t *)buf + first, len - first);
	npt_chan_push(c, data + pos, first);
	if (len > first)
		npt_chan_push(c, data, len - first);
	c->tx += (uint32_t)len;
	npt_wc_fence(c->wc);
	npt_store_release32(prod, c->tx);
	npt_chan_push(c, prod, sizeof(*prod));
	npt_wc_fence(c->wc);
	npt_chan_kick(c);
	return (ssize_t)len;
}

ssize_t npt_chan_recv(struct npt_chan *c, void *buf, size_t len)
{
	const uint8_t *data = c->role == NPT_ROLE_HOST ? c->e2h : c->h2e;
	__le32 *prodw = c->role == NPT_ROLE_HOST ? &c->hctl->e2h_prod : &c->ectl->h2e_prod;
	__le32 *cons = c->role == NPT_ROLE_HOST ? &c->ectl->e2h_cons : &c->hctl->h2e_cons;
	uint32_t prod, avail, pos, first;
	int r = npt_chan_alive(c);

	if (r && r != -ECONNRESET)
		return r;
	if (c->role == NPT_ROLE_HOST && !c->accepted) {
		if (!r)
			r = npt_chan_peer_check(c);
		if (!c->accepted)
			return r == -ECONNRESET ? 0 : (r ? r : -EAGAIN);
	}
	prod = npt_load_acquire32(prodw);
	avail = prod - c->rx;
	if (avail > c->ssize) {
		npt_chan_fail(c, -EPROTO, "recv: channel %u peer producer index %" PRIu32
			      " outside %" PRIu32 "..%" PRIu32, c->idx, prod, c->rx, c->rx + c->ssize);
		return -EPROTO;
	}
	if (!avail) {
		if (!r) {
			r = npt_chan_peer_check(c);
			if (!r)
				return -EAGAIN;
			if (r != -ECONNRESET)
				return r;
			/* closed: deliver what it wrote before closing, then EOF */
			prod = npt_load_acquire32(prodw);
			avail = prod - c->rx;
			if (avail > c->ssize)
				return 0;
		}
		if (!avail)
			return 0;
	}
	if (len > avail)
		len = avail;
	if (!len)
		return 0;
	pos = c->rx & (c->ssize - 1);
	first = c->ssize - pos < len ? c->ssize - pos : (uint32_t)len;
	memcpy(buf, data + pos, first);
	memcpy((uint8_t *)buf + first, data, len - first);
	c->rx += (uint32_t)len;
	npt_wc_fence(c->wc);
	npt_store_release32(cons, c->rx);
	npt_chan_push(c, cons, sizeof(*cons));
	npt_wc_fence(c->wc);
	npt_chan_kick(c);   /* a peer asleep on a full stream has room now */
	return (ssize_t)len;
}

struct npl_chan_host_ctl *npt_test_hctl(struct npt_chan *c)
{
	return c->hctl;
}

int npt_test_notify(struct npt_link *l, unsigned chan)
{
	return l->ops->notify ? l->ops->notify(l, chan) : -ENOTSUP;
}

void npt_chan_get_stats(const struct npt_chan *c, struct npt_chan_stats *out)
{
	const struct npt_dma_ops *ops = c->link->dma_ops;

	out->sleeps = c->sleeps;
	out->notifies = c->notifies;
	out->dma_xfers = c->dma_xfers;
	out->dma_bytes = c->dma_bytes;
	out->dma_cpu_ns = c->dma && ops && ops->cpu_ns ? ops->cpu_ns(c->dma) : 0;
}

/* Need-wakeup notifications (docs/transport.md "Notifications"): a side
 * about to sleep on a channel sets its sleeping word in the memory the peer
 * polls, fences, re-checks its rings and only then sleeps on the backend's
 * wait fd; a producer publishes, fences, and rings the peer if its sleeping
 * word is set. The two full fences make this Dekker's handshake: at least
 * one side sees the other's store, so either the sleeper sees the new work
 * or the producer sees the sleeper and rings it. */
#include "internal.h"

void npt_chan_bell_init(struct npt_chan *c)
{
	struct npt_link *l = c->link;
	bool peer_rings;

	c->wait_fd = -1;
	c->can_sleep = false;
	c->armed = false;
	if (c->role == NPT_ROLE_HOST) {
		c->my_sleep = &c->ectl->host_sleeping;
		c->peer_sleep = &c->hctl->ep_sleeping;
	} else {
		c->my_sleep = &c->hctl->ep_sleeping;
		c->peer_sleep = &c->ectl->host_sleeping;
	}
	pthread_mutex_lock(&l->lock);
	peer_rings = l->peer_rings;
	c->ring_peer = l->ring_peer && l->ops->notify;
	pthread_mutex_unlock(&l->lock);
	/* Sleep only if something will ring us: a peer that does not ring
	 * (a BAR-only guest host, a backend without doorbells) is polled. */
	if (peer_rings && l->ops->wait_fd && !l->bell_off) {
		c->wait_fd = l->ops->wait_fd(l, c->idx);
		c->can_sleep = c->wait_fd >= 0;
	}
}

void npt_chan_bell_fini(struct npt_chan *c)
{
	struct npt_link *l = c->link;

	if (c->armed) {
		npt_wr32(c->my_sleep, NPL_AWAKE);
		npt_wc_fence(c->wc);
		c->armed = false;
	}
	if (c->can_sleep && l->ops->wait_put)
		l->ops->wait_put(l, c->idx);
	c->wait_fd = -1;
	c->can_sleep = false;
}

void npt_chan_kick(struct npt_chan *c)
{
	uint32_t v;

	if (!c->ring_peer)
		return;
	if (c->kick_held) {
		c->kick_due = true;   /* rung once by npt_chan_release_kicks */
		return;
	}
	/* Orders the publishing store just made (release, flushed from any
	 * write-combining buffer) before the load of the peer's sleeping word. */
	npt_fence_full();
	/* A host's store into a real PCIe BAR is posted: read back a word of
	 * the BAR (a read completion cannot pass earlier posted writes), so
	 * that the store has reached the EP before we look at its word. The
	 * shm files are coherent memory; an EP's stores reach the host
	 * window by pushes that return once the data has arrived. */
	if (c->role == NPT_ROLE_HOST && c->link->spec.kind != NPT_KIND_SHM)
		(void)npt_load_acquire32(&c->ectl->host_state);
	/* Before the host has seen the EP accept it, the host-polled area is
	 * not ours to read; the session word tells (the EP publishes it before
	 * it can ever arm this channel, so the fence above covers it too). */
	if (c->role == NPT_ROLE_HOST && !c->accepted &&
	    npt_load_acquire32(&c->hctl->session) != c->session)
		return;
	/* Peer input, used for nothing but this test: any value other than
	 * AWAKE costs at most one doorbell per publish. Each sleep has its
	 * own value, so one ring per sleep is enough: the doorbell stays
	 * pending until that sleep ends. */
	v = npt_rd32(c->peer_sleep);
	if (v == NPL_AWAKE || v == c->rang_seq)
		return;
	c->rang_seq = v;
	c->notifies++;
	c->link->ops->notify(c->link, c->idx);
}

/* Anything the channel's user would find by polling now, or a state change
 * that ends the channel. Only conditions the user's polling clears (takes
 * the entry, reads the bytes) or turns final (the channel fails), so that a
 * true answer never repeats forever on a healthy channel. */
static bool chan_pending(struct npt_chan *c)
{
	unsigned epoch;
	int down = npt_link_state(c->link, &epoch);
	uint32_t cons;

	if (c->status)
		return true;
	if (c->role == NPT_ROLE_HOST) {
		if (down)
			return true;
		if (!c->accepted)
			return npt_load_acquire32(&c->hctl->session) == c->session;
		if (npt_load_acquire32(&c->hctl->ep_state) != NPL_CHE_ACCEPTED)
			return true;
		if (!c->frames && npt_load_acquire32(&c->hctl->e2h_prod) != c->rx)
			return true;
		if (c->tx_blocked) {
			cons = npt_load_acquire32(&c->hctl->h2e_cons);
			if (c->tx - cons < c->ssize)
				return true;
		}
		if (c->frames && c->inflight &&
		    npt_load_acquire32(&c->cq[c->cq_head & c->mask].seq) == c->cq_head + 1)
			return true;
		return false;
	}
	if (epoch != c->epoch)
		return true;
	if (npt_load_acquire32(&c->ectl->host_state) != NPL_CH_OPEN ||
	    npt_rd32(&c->ectl->session) != c->session)
		return true;
	if (!c->frames && npt_load_acquire32(&c->ectl->h2e_prod) != c->rx)
		return true;
	if (c->tx_blocked) {
		cons = npt_load_acquire32(&c->ectl->e2h_cons);
		if (c->tx - cons < c->ssize)
			return true;
	}
	if (c->frames) {
		if (npt_load_acquire32(&c->sq[c->sq_head & c->mask].seq) == c->sq_head + 1)
			return true;
		if (c->dma_pending || c->fetched_head != c->fetched_tail)
			return true;
	}
	return false;
}

int npt_chan_wait_fd(struct npt_chan *c)
{
	return c->can_sleep ? c->wait_fd : -1;
}

bool npt_chan_arm(struct npt_chan *c)
{
	if (!c->can_sleep || c->status)
		return true;
	/* a value of its own per sleep (never AWAKE): see npt_chan_kick */
	if (++c->sleep_seq == NPL_AWAKE)
		c->sleep_seq = 1;
	npt_wr32(c->my_sleep, c->sleep_seq);
	npt_wc_fence(c->wc);
	c->armed = true;
	/* Orders the sleeping word's store before the re-check's loads of the
	 * rings (the other half of the producer's fence in npt_chan_kick). */
	npt_fence_full();
	/* A host's store into a real PCIe BAR is posted and the fence does not
	 * wait for it to arrive; with a host window the re-check below reads
	 * only host memory, which the EP's completions reach without passing
	 * that store. Read a BAR word back (a read completion cannot pass
	 * earlier posted writes) so that the EP sees the word before we look
	 * at our rings. The shm files are coherent memory. */
	if (c->role == NPT_ROLE_HOST && c->link->spec.kind != NPT_KIND_SHM)
		(void)npt_load_acquire32(&c->ectl->host_state);
	if (chan_pending(c)) {
		npt_wr32(c->my_sleep, NPL_AWAKE);
		npt_wc_fence(c->wc);
		c->armed = false;
		return true;
	}
	c->sleeps++;
	return false;
}

static void disarm(struct npt_chan *c, bool ack)
{
	struct npt_link *l = c->link;

	if (!c->armed)
		return;
	npt_wr32(c->my_sleep, NPL_AWAKE);
	npt_wc_fence(c->wc);
	c->armed = false;
	/* Consume the doorbell before the caller polls its rings: a ring
	 * after this point stays pending and at worst wakes a later sleep
	 * early; none can be consumed without the rings being looked at. */
	if (ack && l->ops->wait_ack)
		l->ops->wait_ack(l, c->idx);
}

void npt_chan_disarm(struct npt_chan *c)
{
	disarm(c, true);
}

void npt_chan_disarm_unrung(struct npt_chan *c)
{
	disarm(c, false);
}

void npt_chan_hold_kicks(struct npt_chan *c)
{
	c->kick_held = true;
}

void npt_chan_release_kicks(struct npt_chan *c)
{
	c->kick_held = false;
	if (c->kick_due) {
		c->kick_due = false;
		npt_chan_kick(c);
	}
}

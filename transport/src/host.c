/* Host side of the frame phase: submit requests into the BAR's submission
 * ring, reap completions from the host-polled completion ring. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "internal.h"

#define NBD_REQUEST_MAGIC      0x25609513u   /* NBD protocol: request magic */
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u   /* NBD protocol: simple reply magic */
#define NBD_CMD_READ  0
#define NBD_CMD_WRITE 1
/* Empty reaps between two reads of the EP's channel state: bounds the cost
 * of noticing a closed channel to one link read per this many polls. */
#define IDLE_CHECK_EVERY 256

int npt_host_chan_init(struct npt_chan *c)
{
	c->htags = calloc(c->n, sizeof(*c->htags));
	c->free_tags = calloc(c->n, sizeof(*c->free_tags));
	if (!c->htags || !c->free_tags)
		return -ENOMEM;
	for (uint32_t i = 0; i < c->n; i++)
		c->free_tags[i] = (uint16_t)(c->n - 1 - i);
	c->nfree = c->n;
	return npt_hbuf_init(c);
}

void npt_host_chan_fini(struct npt_chan *c)
{
	free(c->htags);
	free(c->free_tags);
	c->htags = NULL;
	c->free_tags = NULL;
	npt_hbuf_fini(c);
}

int npt_host_submit(struct npt_chan *c, const uint8_t req[28], const struct npt_hbuf *b)
{
	struct npl_sqe e, *slot;
	struct npt_htag *t;
	uint32_t type, len, need, flags = 0;
	uint16_t tag;
	int r = npt_chan_alive(c);

	if (unlikely(r))
		return r;
	if (unlikely(!c->frames || c->role != NPT_ROLE_HOST))
		return -EINVAL;
	if (unlikely(get_be32(req) != NBD_REQUEST_MAGIC))
		return -EINVAL;
	if (c->inflight == c->n)
		return -EAGAIN;
	type = get_be16(req + 6);
	len = get_be32(req + 24);
	need = 0;
	if (type == NBD_CMD_READ || type == NBD_CMD_WRITE) {
		need = len;
		flags = type == NBD_CMD_READ ? NPL_SQE_TO_HOST : NPL_SQE_TO_EP;
	}
	if (need > npt_link_max_xfer(c->link))
		return -E2BIG;
	if (need && (!b || b->len != need))
		return -EINVAL;
	tag = c->free_tags[--c->nfree];
	t = &c->htags[tag];
	t->busy = true;
	t->type = (uint16_t)type;
	memcpy(t->cookie, req + 8, 8);
	if (need)
		t->buf = *b;
	else
		t->buf = (struct npt_hbuf){ NULL, 0, 0 };

	memset(&e, 0, sizeof(e));
	memcpy(e.nbd_req, req, NPT_NBD_REQ_SIZE);
	put_le32(&e.tag, tag);
	put_le32(&e.len, need);
	put_le32(&e.flags, flags);
	put_le64(&e.offset, need ? b->off : 0);
	/* The slot is free: fewer than n requests are in flight, and the EP
	 * takes entries in order before it completes any of them. */
	slot = &c->sq[c->sq_prod & c->mask];
	memcpy(slot, &e, offsetof(struct npl_sqe, seq));
	npt_wc_fence(c->wc);
	npt_store_release32(&slot->seq, c->sq_prod + 1);
	c->sq_prod++;
	c->inflight++;
	npt_chan_kick(c);
	return 0;
}

/* The one place a host checks a completion entry: e is a private copy. */
static int check_cqe(struct npt_chan *c, const struct npl_cqe *e, uint32_t pos)
{
	uint32_t tag = get_le32(&e->tag), len = get_le32(&e->len);
	const struct npt_htag *t;

	if (tag >= c->n)
		return npt_chan_fail(c, -EPROTO, "reap: channel %u completion %" PRIu32 " tag %" PRIu32
				     " beyond ring size %" PRIu32, c->idx, pos, tag, c->n);
	t = &c->htags[tag];
	if (!t->busy)
		return npt_chan_fail(c, -EPROTO, "reap: channel %u completion %" PRIu32 " tag %" PRIu32
				     " is not in flight", c->idx, pos, tag);
	if (get_be32(e->nbd_reply) != NBD_SIMPLE_REPLY_MAGIC)
		return npt_chan_fail(c, -EPROTO, "reap: channel %u completion %" PRIu32 " reply magic 0x%08"
				     PRIx32 " is not 0x%08x", c->idx, pos, get_be32(e->nbd_reply),
				     NBD_SIMPLE_REPLY_MAGIC);
	if (memcmp(e->nbd_reply + 8, t->cookie, 8))
		return npt_chan_fail(c, -EPROTO, "reap: channel %u completion %" PRIu32 " tag %" PRIu32
				     " cookie 0x%016" PRIx64 " differs from the request's 0x%016" PRIx64,
				     c->idx, pos, tag, get_be64(e->nbd_reply + 8), get_be64(t->cookie));
	if (len > t->buf.len || (t->type != NBD_CMD_READ && len) ||
	    (t->type == NBD_CMD_READ && get_be32(e->nbd_reply + 4) == 0 && len != t->buf.len))
		return npt_chan_fail(c, -EPROTO, "reap: channel %u completion %" PRIu32 " tag %" PRIu32
				     " length %" PRIu32 " but the request's buffer holds %" PRIu32,
				     c->idx, pos, tag, len, t->buf.len);
	return 0;
}

int npt_host_reap(struct npt_chan *c, struct npt_hcomp *out, unsigned max)
{
	unsigned n = 0;
	int r = npt_chan_alive(c);

	if (unlikely(r))
		return r;
	if (unlikely(!c->frames || c->role != NPT_ROLE_HOST))
		return -EINVAL;
	if (unlikely(!c->accepted)) {
		/* the completion ring may still hold a previous session's entries */
		r = npt_chan_peer_check(c);
		if (r || !c->accepted)
			return r;
	}
	while (n < max && c->inflight) {
		struct npl_cqe *slot = &c->cq[c->cq_head & c->mask];
		struct npl_cqe e;
		uint32_t tag;

		if (npt_load_acquire32(&slot->seq) != c->cq_head + 1)
			break;
		memcpy(&e, slot, sizeof(e));
		r = check_cqe(c, &e, c->cq_head);
		if (r)
			return r;
		tag = get_le32(&e.tag);
		memcpy(out[n].reply, e.nbd_reply, NPT_NBD_REPLY_SIZE);
		out[n].buf = c->htags[tag].buf;
		c->htags[tag].busy = false;
		c->free_tags[c->nfree++] = (uint16_t)tag;
		c->inflight--;
		c->cq_head++;
		n++;
	}
	/* nothing: look at the peer's channel state now and then (in BAR-only
	 * mode that is a slow read across the link) */
	if (!n && (++c->idle_polls & (IDLE_CHECK_EVERY - 1)) == 0) {
		r = npt_chan_peer_check(c);
		if (r)
			return r;
	}
	return (int)n;
}

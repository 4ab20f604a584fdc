/* EP side of the frame phase: take and validate submission entries, move
 * payloads (in place in BAR-only mode, by DMA through a staging area with a
 * host window), post completions. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"

#define NBD_REQUEST_MAGIC 0x25609513u   /* NBD protocol: request magic */
#define NBD_CMD_READ  0
#define NBD_CMD_WRITE 1
/* DMA cookie bit: the transfer pushes a READ payload (else it fetches a WRITE's). */
#define COOKIE_PUSH (1u << 31)
/* DMA completions handled per poll call. */
#define POLL_BATCH 32

int npt_ep_chan_init(struct npt_chan *c)
{
	const struct npt_link *l = c->link;
	int r;

	c->etags = calloc(c->n, sizeof(*c->etags));
	c->active = calloc(c->n, sizeof(*c->active));
	c->fetched = calloc(c->n, sizeof(*c->fetched));
	if (!c->etags || !c->active || !c->fetched)
		return -ENOMEM;
	if (c->win && c->shadow) {
		/* the BAR copy of the payload area: EP memory the engine reaches */
		c->staging = c->payload;
		c->staging_len = 0;
	} else if (c->win) {
		/* The staging area mirrors the host's payload area offset for
		 * offset; pages are only committed when a payload touches them. */
		c->staging_len = c->data_size;
		c->staging = mmap(NULL, c->staging_len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (c->staging == MAP_FAILED) {
			c->staging = NULL;
			return -ENOMEM;
		}
	}
	if (c->win) {
		r = l->dma_ops->open(c, &c->dma);
		if (r)
			return r;
	}
	return 0;
}

void npt_ep_chan_fini(struct npt_chan *c)
{
	if (c->dma)
		c->link->dma_ops->close(c->dma);
	c->dma = NULL;
	if (c->staging && c->staging_len)
		munmap(c->staging, c->staging_len);
	c->staging = NULL;
	free(c->etags);
	free(c->active);
	free(c->fetched);
	c->etags = NULL;
	c->active = NULL;
	c->fetched = NULL;
}

static int reject(struct npt_chan *c, uint32_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int reject(struct npt_chan *c, uint32_t code, const char *fmt, ...)
{
	char msg[NPT_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!c->status) {
		npt_wr32(&c->hctl->error, code);
		npt_chan_push(c, &c->hctl->error, sizeof(c->hctl->error));
		npt_store_release32(&c->hctl->ep_state, NPL_CHE_ERROR);
		npt_chan_push(c, &c->hctl->ep_state, sizeof(c->hctl->ep_state));
		npt_chan_kick(c);
	}
	return npt_chan_fail(c, -EPROTO, "%s", msg);
}

int npt_ep_check_sqe(struct npt_chan *c, const struct npl_sqe *e, uint32_t pos)
{
	uint32_t tag = get_le32(&e->tag), len = get_le32(&e->len), flags = get_le32(&e->flags);
	uint64_t off = get_le64(&e->offset);
	uint32_t type = get_be16(e->nbd_req + 6), nbdlen = get_be32(e->nbd_req + 24);
	const struct npt_layout *lay = &c->link->lay;

	if (tag >= c->n)
		return reject(c, NPL_ERR_TAG, "take: channel %u entry %" PRIu32 " tag %" PRIu32
			      " beyond ring size %" PRIu32, c->idx, pos, tag, c->n);
	if (c->etags[tag].busy)
		return reject(c, NPL_ERR_TAG_REUSED, "take: channel %u entry %" PRIu32 " tag %" PRIu32
			      " already in flight", c->idx, pos, tag);
	if (get_be32(e->nbd_req) != NBD_REQUEST_MAGIC)
		return reject(c, NPL_ERR_MAGIC, "take: channel %u entry %" PRIu32 " NBD magic 0x%08" PRIx32
			      " is not 0x%08x", c->idx, pos, get_be32(e->nbd_req), NBD_REQUEST_MAGIC);
	if (len > lay->max_xfer)
		return reject(c, NPL_ERR_LEN, "take: channel %u entry %" PRIu32 " length %" PRIu32
			      " beyond max_xfer %" PRIu32, c->idx, pos, len, lay->max_xfer);
	if (len && (off > c->data_size || len > c->data_size - off))
		return reject(c, NPL_ERR_RANGE, "take: channel %u entry %" PRIu32 " offset %" PRIu64
			      " + length %" PRIu32 " beyond payload area %" PRIu32,
			      c->idx, pos, off, len, c->data_size);
	if (type == NBD_CMD_READ || type == NBD_CMD_WRITE) {
		uint32_t want = type == NBD_CMD_READ ? NPL_SQE_TO_HOST : NPL_SQE_TO_EP;

		if (flags != want)
			return reject(c, NPL_ERR_DIR, "take: channel %u entry %" PRIu32 " flags 0x%" PRIx32
				      " for NBD %s, expected 0x%" PRIx32, c->idx, pos, flags,
				      type == NBD_CMD_READ ? "READ" : "WRITE", want);
		if (len != nbdlen)
			return reject(c, NPL_ERR_LEN, "take: channel %u entry %" PRIu32 " length %" PRIu32
				      " differs from NBD length %" PRIu32, c->idx, pos, len, nbdlen);
	} else if (flags || len) {
		return reject(c, NPL_ERR_DIR, "take: channel %u entry %" PRIu32 " NBD command %" PRIu32
			      " carries no payload but has flags 0x%" PRIx32 " length %" PRIu32,
			      c->idx, pos, type, flags, len);
	}
	for (unsigned i = 0; len && i < c->nactive; i++) {
		const struct npt_etag *t = &c->etags[c->active[i]];

		if (off < (uint64_t)t->off + t->len && t->off < off + len)
			return reject(c, NPL_ERR_OVERLAP, "take: channel %u entry %" PRIu32 " payload %" PRIu64
				      "+%" PRIu32 " overlaps tag %u payload %" PRIu32 "+%" PRIu32,
				      c->idx, pos, off, len, c->active[i], t->off, t->len);
	}
	return 0;
}

static uint8_t *local_base(struct npt_chan *c)
{
	return c->win ? c->staging : c->payload;
}

static void release_tag(struct npt_chan *c, uint32_t tag)
{
	struct npt_etag *t = &c->etags[tag];

	if (t->len) {
		unsigned pos = t->active_pos;
		uint16_t last = c->active[--c->nactive];

		c->active[pos] = last;
		c->etags[last].active_pos = pos;
	}
	t->busy = t->dma_busy = t->done_pending = false;
}

int npt_ep_take(struct npt_chan *c, struct npt_ereq *out, unsigned max)
{
	unsigned n = 0;
	int r = npt_chan_alive(c);

	if (unlikely(r))
		return r;
	if (unlikely(!c->frames || c->role != NPT_ROLE_EP))
		return -EINVAL;
	while (n < max) {
		struct npl_sqe *slot = &c->sq[c->sq_head & c->mask];
		struct npl_sqe e;
		struct npt_etag *t;
		uint32_t tag;

		if (npt_load_acquire32(&slot->seq) != c->sq_head + 1)
			break;
		/* one copy, then only the copy is checked and used */
		memcpy(&e, slot, sizeof(e));
		r = npt_ep_check_sqe(c, &e, c->sq_head);
		if (r)
			return r;
		tag = get_le32(&e.tag);
		t = &c->etags[tag];
		t->busy = true;
		t->off = (uint32_t)get_le64(&e.offset);
		t->len = get_le32(&e.len);
		t->flags = get_le32(&e.flags);
		if (t->len) {
			t->active_pos = c->nactive;
			c->active[c->nactive++] = (uint16_t)tag;
		}
		memcpy(out[n].hdr, e.nbd_req, NPT_NBD_REQ_SIZE);
		out[n].tag = tag;
		out[n].len = t->len;
		out[n].local = t->len ? local_base(c) + t->off : NULL;
		c->sq_head++;
		n++;
	}
	if (!n) {
		r = npt_chan_peer_check(c);
		if (r)
			return r;
	}
	return (int)n;
}

static struct npt_etag *caller_tag(struct npt_chan *c, const struct npt_ereq *r)
{
	if (!r || r->tag >= c->n || !c->etags[r->tag].busy || c->etags[r->tag].dma_busy)
		return NULL;
	return &c->etags[r->tag];
}

int npt_ep_fetch(struct npt_chan *c, const struct npt_ereq *r)
{
	struct npt_etag *t = caller_tag(c, r);
	int ret = npt_chan_alive(c);

	if (ret)
		return ret;
	if (!t || !(t->flags & NPL_SQE_TO_EP))
		return -EINVAL;
	if (c->win && t->len) {
		ret = c->link->dma_ops->submit(c->dma, NPT_DMA_FROM_HOST, c->staging + t->off,
					       (uint64_t)c->link->lay.payload_offset + t->off, t->len, r->tag);
		if (ret)
			return ret;
		c->dma_xfers++;
		c->dma_bytes += t->len;
		t->dma_busy = true;
		c->dma_pending++;
		npt_ep_progress(c);
		return 0;
	}
	/* BAR-only: the payload is already in the BAR slot */
	c->fetched[c->fetched_tail++ & c->mask] = (uint16_t)r->tag;
	return 0;
}

int npt_ep_fetched(struct npt_chan *c, uint32_t *tags, unsigned max)
{
	unsigned n = 0;

	npt_ep_progress(c);
	while (n < max && c->fetched_head != c->fetched_tail)
		tags[n++] = c->fetched[c->fetched_head++ & c->mask];
	return (int)n;
}

static void post_cqe(struct npt_chan *c, uint32_t tag, const uint8_t reply[16], uint32_t data_len)
{
	struct npl_cqe e, *slot = &c->cq[c->cq_prod & c->mask];

	memcpy(e.nbd_reply, reply, NPT_NBD_REPLY_SIZE);
	put_le32(&e.tag, tag);
	put_le32(&e.len, data_len);
	put_le32(&e.reserved, 0);
	memcpy(slot, &e, offsetof(struct npl_cqe, seq));
	npt_chan_push(c, slot, offsetof(struct npl_cqe, seq));   /* body before seq */
	npt_store_release32(&slot->seq, c->cq_prod + 1);
	npt_chan_push(c, &slot->seq, sizeof(slot->seq));
	c->cq_prod++;
	release_tag(c, tag);
	npt_chan_kick(c);
}

bool npt_ep_push_any_src(struct npt_chan *c)
{
	return c->win && c->dma && c->link->dma_ops->any_src && c->link->dma_ops->any_src(c->dma);
}

/* src: the staging area of the tag, or (npt_ep_push_any_src) any memory of
 * this process, which the engine reads within submit: up to that call
 * nothing of the channel has changed, so a fault reading src (a file
 * mapping that shrank) leaves the request the caller's (transport.h). */
static int complete(struct npt_chan *c, const struct npt_ereq *r, const uint8_t reply[16],
		    const void *src, uint32_t data_len)
{
	struct npt_etag *t = caller_tag(c, r);
	int ret;

	if (!t || data_len > t->len || (data_len && !(t->flags & NPL_SQE_TO_HOST)))
		return -EINVAL;
	ret = npt_chan_alive(c);
	if (ret) {
		release_tag(c, r->tag);
		return ret;
	}
	if (c->win && data_len) {
		ret = c->link->dma_ops->submit(c->dma, NPT_DMA_TO_HOST,
					       src ? (void *)(uintptr_t)src : c->staging + t->off,
					       (uint64_t)c->link->lay.payload_offset + t->off, data_len,
					       r->tag | COOKIE_PUSH);
		if (ret)
			return ret;
		c->dma_xfers++;
		c->dma_bytes += data_len;
		c->dma_pending++;
		memcpy(t->reply, reply, NPT_NBD_REPLY_SIZE);
		t->data_len = data_len;
		t->dma_busy = t->done_pending = true;
		npt_ep_progress(c);
		return 0;
	}
	post_cqe(c, r->tag, reply, data_len);
	return 0;
}

int npt_ep_complete(struct npt_chan *c, const struct npt_ereq *r, const uint8_t reply[16],
		    uint32_t data_len)
{
	return complete(c, r, reply, NULL, data_len);
}

int npt_ep_complete_from(struct npt_chan *c, const struct npt_ereq *r, const uint8_t reply[16],
			 const void *src, uint32_t data_len)
{
	if (!src || !npt_ep_push_any_src(c))
		return -EINVAL;
	return complete(c, r, reply, src, data_len);
}

int npt_ep_progress(struct npt_chan *c)
{
	uint32_t cookies[POLL_BATCH];
	int n, dead;

	if (!c->dma)
		return 0;
	n = c->link->dma_ops->poll(c->dma, cookies, POLL_BATCH);
	dead = npt_chan_alive(c);
	for (int i = 0; i < n; i++) {
		uint32_t tag = cookies[i] & ~COOKIE_PUSH;
		struct npt_etag *t = &c->etags[tag];

		t->dma_busy = false;
		c->dma_pending--;
		if (cookies[i] & COOKIE_PUSH) {
			if (dead)
				release_tag(c, tag);
			else
				post_cqe(c, tag, t->reply, t->data_len);
		} else {
			c->fetched[c->fetched_tail++ & c->mask] = (uint16_t)tag;
		}
	}
	return n > 0 ? n : 0;
}

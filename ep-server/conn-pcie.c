/* PCIe channel connections: the handshake runs over the channel's byte
 * stream, then requests arrive as ring entries whose payloads the transport
 * moves by DMA into EP-local memory (npt_ereq.local), where the engine reads
 * and writes them directly: no copy in the server. READs of a memory-backed
 * export may skip staging altogether (direct reads, mapread.c). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "common/compiler.h"
#include "common/endian.h"
#include "internal.h"
#include "nbdpcie/transport.h"

/* Ring entries taken per pump: a kernel nbd queue's worth arrives in a few
 * pumps without starving the worker's other connections. */
#define PCIE_BATCH 32

struct pcie_req {
	struct srv_req q;
	struct npt_ereq e;
	bool used;
};

struct pcie_conn {
	struct srv_conn base;
	struct npt_link *link;
	struct npt_chan *ch;
	struct pcie_req *slots;         /* by tag, NPT_MAX_RING_ENTRIES of them */
	struct srv_req *defer_head, *defer_tail;   /* completions the ring had no room for */
	unsigned fetching;              /* WRITE payloads being pulled */
	uint64_t direct_reads;          /* READs pushed from the export's map */
};

static struct pcie_conn *pc(struct srv_conn *c)
{
	return container_of(c, struct pcie_conn, base);
}

static ssize_t pcie_recv(struct srv_conn *c, void *buf, size_t len)
{
	return npt_chan_recv(pc(c)->ch, buf, len);
}

static ssize_t pcie_send(struct srv_conn *c, const void *buf, size_t len)
{
	return npt_chan_send(pc(c)->ch, buf, len);
}

static int pcie_begin(struct srv_conn *c, const void *rest, size_t nrest)
{
	if (nrest) {
		srv_log(LOG_NOTICE, "%s: %zu bytes after the handshake in the byte stream: "
		        "requests must come through the ring", c->desc, nrest);
		return -EPROTO;
	}
	return npt_chan_begin_frames(pc(c)->ch);
}

static void release(struct pcie_req *s)
{
	s->used = false;
}

struct direct_push {
	struct npt_chan *ch;
	const struct npt_ereq *e;
	const uint8_t *rep;
	uint32_t len;
	bool returned;   /* the push returned (its result is the transport's) */
};

static int push_from(void *arg, const void *src)
{
	struct direct_push *d = arg;
	int rc = npt_ep_complete_from(d->ch, d->e, d->rep, src, d->len);

	d->returned = true;
	return rc;
}

/* A direct READ (mapread.c): the engine reads the export's pages. A file
 * that no longer holds the range answers EIO, as a short read does. */
static int post_direct(struct pcie_conn *p, struct srv_req *q, uint8_t rep[NBD_SIMPLE_REPLY_SIZE])
{
	struct pcie_req *s = container_of(q, struct pcie_req, q);
	struct srv_conn *c = &p->base;
	struct direct_push d = { p->ch, &s->e, rep, q->r.length, false };
	int rc = srv_map_read(c->exp, q->r.offset, q->r.length, push_from, &d);

	if (rc == 0)
		p->direct_reads++;
	if (rc != -EIO || d.returned)
		return rc;
	srv_log(LOG_ERR, "%s: export %s: READ offset %llu: backing store ended early "
	        "(the file no longer holds the %u bytes; it shrank since the export was opened)",
	        c->desc, c->exp->cfg->name, (unsigned long long)q->r.offset, q->r.length);
	q->err = NBD_EIO;
	q->direct = false;
	nbd_reply_encode(rep, &(struct nbd_simple_reply){ .error = q->err, .cookie = q->r.cookie });
	return npt_ep_complete(p->ch, &s->e, rep, 0);
}

/* 0 posted (slot released), -EAGAIN ring full, -errno channel broken. */
static int post(struct pcie_conn *p, struct srv_req *q)
{
	struct pcie_req *s = container_of(q, struct pcie_req, q);
	uint8_t rep[NBD_SIMPLE_REPLY_SIZE];
	struct nbd_simple_reply r = { .error = q->err, .cookie = q->r.cookie };
	uint32_t dlen = (q->r.type == NBD_CMD_READ && !q->err) ? q->r.length : 0;
	int rc;

	nbd_reply_encode(rep, &r);
	if (q->direct && dlen)
		rc = post_direct(p, q, rep);
	else
		rc = npt_ep_complete(p->ch, &s->e, rep, dlen);
	if (rc == -EAGAIN)
		return rc;
	release(s);
	return rc < 0 ? rc : 0;
}

static void defer(struct pcie_conn *p, struct srv_req *q)
{
	q->next = NULL;
	if (p->defer_tail)
		p->defer_tail->next = q;
	else
		p->defer_head = q;
	p->defer_tail = q;
}

static void pcie_reply(struct srv_conn *c, struct srv_req *q)
{
	struct pcie_conn *p = pc(c);

	if (c->dead) {
		release(container_of(q, struct pcie_req, q));
		return;
	}
	if (p->defer_head) {
		defer(p, q);   /* keep completion order behind earlier ones */
		return;
	}
	int rc = post(p, q);
	if (rc == -EAGAIN) {
		defer(p, q);
	} else if (rc < 0) {
		srv_log(LOG_NOTICE, "%s: complete: %s", c->desc, strerror(-rc));
		c->dead = true;
	}
}

static int flush_deferred(struct pcie_conn *p)
{
	int progress = 0;

	while (p->defer_head) {
		struct srv_req *q = p->defer_head;
		int rc = post(p, q);
		if (rc == -EAGAIN)
			break;
		p->defer_head = q->next;
		if (!p->defer_head)
			p->defer_tail = NULL;
		if (rc < 0)
			return rc;
		progress = 1;
	}
	return progress;
}

static int take_one(struct pcie_conn *p, const struct npt_ereq *e)
{
	struct srv_conn *c = &p->base;
	struct pcie_req *s;
	struct nbd_request r;
	uint32_t err;

	if (e->tag >= NPT_MAX_RING_ENTRIES || p->slots[e->tag].used) {
		srv_log(LOG_NOTICE, "%s: ring entry with tag %u %s: closing", c->desc, e->tag,
		        e->tag >= NPT_MAX_RING_ENTRIES ? "beyond the tag space" : "already in use");
		return -EPROTO;
	}
	if (nbd_request_decode(e->hdr, &r) < 0) {
		srv_log(LOG_NOTICE, "%s: request with bad magic 0x%08x: closing", c->desc,
		        get_be32(e->hdr));
		return -EPROTO;
	}
	s = &p->slots[e->tag];
	memset(s, 0, sizeof(*s));
	s->used = true;
	s->e = *e;
	s->q.r = r;
	s->q.conn = c;
	if (r.type == NBD_CMD_DISC) {
		srv_log(LOG_INFO, "%s: disconnect requested", c->desc);
		c->draining = true;
		release(s);
		return 0;
	}
	err = srv_conn_validate(c, &r);
	if (!err && (r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE) && e->len != r.length) {
		srv_log(LOG_NOTICE, "%s: %s: payload descriptor of %u bytes for length %u",
		        c->desc, nbd_cmd_name(r.type), e->len, r.length);
		err = NBD_EINVAL;
	}
	if (err) {
		s->q.err = err;
		pcie_reply(c, &s->q);
		return 0;
	}
	s->q.buf = e->local;
	if (r.type == NBD_CMD_WRITE && r.length) {
		int rc = npt_ep_fetch(p->ch, &s->e);
		if (rc < 0) {
			srv_log(LOG_NOTICE, "%s: fetch of %u bytes: %s", c->desc, r.length,
			        strerror(-rc));
			release(s);
			return rc;
		}
		p->fetching++;
		return 0;
	}
	srv_engine_submit(c, &s->q);
	return 0;
}

static int pump(struct srv_conn *c)
{
	struct pcie_conn *p = pc(c);
	struct npt_ereq batch[PCIE_BATCH];
	uint32_t tags[PCIE_BATCH];
	int progress = 0, n, rc;

	rc = npt_chan_status(p->ch);
	if (rc < 0) {
		srv_log(LOG_INFO, "%s: channel down: %s", c->desc, npt_chan_error(p->ch));
		return rc;
	}
	rc = npt_ep_progress(p->ch);
	if (rc < 0)
		return rc;
	progress |= rc > 0;
	rc = flush_deferred(p);
	if (rc < 0)
		return rc;
	progress |= rc;
	n = npt_ep_fetched(p->ch, tags, PCIE_BATCH);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		struct pcie_req *s;
		if (tags[i] >= NPT_MAX_RING_ENTRIES || !p->slots[tags[i]].used || !p->fetching)
			return -EPROTO;   /* the transport reported a tag we never fetched */
		s = &p->slots[tags[i]];
		p->fetching--;
		srv_engine_submit(c, &s->q);
		progress = 1;
	}
	if (!c->draining) {
		n = npt_ep_take(p->ch, batch, PCIE_BATCH);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			rc = take_one(p, &batch[i]);
			if (rc < 0)
				return rc;
			progress = 1;
		}
	}
	return progress;
}

/* One ring of the host's doorbell per pump, after every completion of the
 * batch is posted (engine replies to tmpfs exports run inside the pump). */
static int pcie_pump(struct srv_conn *c)
{
	struct pcie_conn *p = pc(c);
	int rc;

	npt_chan_hold_kicks(p->ch);
	rc = pump(c);
	npt_chan_release_kicks(p->ch);
	return rc;
}

static bool pcie_drained(struct srv_conn *c)
{
	struct pcie_conn *p = pc(c);
	return !p->defer_head && !p->fetching;
}

/* For the "closed" line: what the channel's DMA engine moved; on a shm
 * link also the CPU its emulated copies took, which an EP's engine does
 * not cost (bench/run reads it to tell that share from the server's own). */
static void pcie_close_note(struct srv_conn *c, char *buf, size_t len)
{
	struct npt_chan_stats s;
	int n;

	npt_chan_get_stats(pc(c)->ch, &s);
	if (!s.dma_xfers)
		return;
	n = snprintf(buf, len, "; DMA engine moved %" PRIu64 " bytes in %" PRIu64 " transfers",
	             s.dma_bytes, s.dma_xfers);
	if (s.dma_cpu_ns && n > 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n,
		              ", its emulated copies of %u KiB or more took %.6f s of CPU",
		              NPT_LONG_XFER >> 10, (double)s.dma_cpu_ns / 1e9);
	if (pc(c)->direct_reads && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, "; %" PRIu64 " READs straight from the export's pages",
		         pc(c)->direct_reads);
}

static void pcie_destroy(struct srv_conn *c)
{
	struct pcie_conn *p = pc(c);
	npt_chan_close(p->ch);
	free(p->slots);
	free(p);
}

static int pcie_poll_fd(struct srv_conn *c, unsigned *events)
{
	*events = POLLIN;
	return npt_chan_wait_fd(pc(c)->ch);
}

static int pcie_arm(struct srv_conn *c)
{
	struct npt_chan *ch = pc(c)->ch;

	if (npt_chan_wait_fd(ch) < 0)
		return -1;
	return npt_chan_arm(ch) ? 0 : 1;
}

static void pcie_disarm(struct srv_conn *c)
{
	npt_chan_disarm(pc(c)->ch);
}

static bool pcie_read_direct(struct srv_conn *c)
{
	return npt_ep_push_any_src(pc(c)->ch);
}

static const struct srv_conn_ops pcie_ops = {
	.kind = "pcie",
	.recv = pcie_recv,
	.send = pcie_send,
	.begin = pcie_begin,
	.pump = pcie_pump,
	.reply = pcie_reply,
	.poll_fd = pcie_poll_fd,   /* the channel's doorbell, or -1: back-off */
	.arm = pcie_arm,
	.disarm = pcie_disarm,
	.drained = pcie_drained,
	.destroy = pcie_destroy,
	.close_note = pcie_close_note,
	.read_direct = pcie_read_direct,
};

struct srv_conn *srv_pcie_conn_new(struct srv_server *srv, struct npt_link *l, struct npt_chan *ch,
                                   const char *spec)
{
	struct pcie_conn *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->slots = calloc(NPT_MAX_RING_ENTRIES, sizeof(*p->slots));
	if (!p->slots) {
		free(p);
		return NULL;
	}
	srv_conn_init(&p->base, &pcie_ops, srv);
	p->link = l;
	p->ch = ch;
	snprintf(p->base.desc, sizeof(p->base.desc), "pcie %s ch %u #%lu", spec,
	         npt_chan_index(ch), p->base.id);
	return &p->base;
}

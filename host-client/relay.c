/* The relay: NBD transmission between a downstream stream socket (the
 * kernel's socketpair end, or a local NBD client) and one link channel.
 *
 * Per request: the 28-byte header is parsed from the socket stream and
 * validated once (nbdp_validate_request); WRITE payloads are received into
 * payload buffers that the link carries (directly by recv for large chunks,
 * through the small receive buffer otherwise; after such a write the next
 * header is received alone, so that its payload is not); requests larger than the
 * link's max_xfer are split into chunks and their replies merged (the first
 * error wins). Replies are sent with sendmsg over an iovec list that points
 * at the reply headers and straight at the READ payload buffers.
 *
 * Socket I/O goes through io_uring: at most one RECV and one SENDMSG are in
 * flight; their completions and the link's completions are both polled from
 * memory, so a busy relay makes one io_uring_enter per loop turn at most and
 * none while it only waits for the link. When idle it polls on for
 * NPT_BELL_SPIN_US (200 µs by default, yielding the core on each poll;
 * not when only transfers of NPT_LONG_XFER or more are in flight, nor
 * when none is after one), then
 * arms the channel's doorbell and sleeps in io_uring on the socket
 * and the doorbell (also while requests are in flight: the EP rings when it
 * completes one). A channel without a doorbell is polled with back-off.
 *
 * READs larger than one chunk stream: the reply header is sent when the
 * first chunk completes, so the error of a later chunk cannot be reported in
 * it; the relay then ends the connection (the NBD client sees EIO or, with
 * -p, reconnects). Single-chunk requests report every error exactly. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sched.h>
#include <syslog.h>
#include <time.h>

#include <common/endian.h>
#include <common/sock.h>
#include <common/uring.h>
#include <liburing.h>
#include <nbdproto/nbd.h>
#include <nbdproto/validate.h>

#include "internal.h"

/* Chunks in flight per connection: the transport's largest ring. */
#define RELAY_SLOTS 1024
/* NBD requests in progress per connection: the kernel's queue depth (128)
 * twice over, so that a new batch is parsed while replies still drain. */
#define RELAY_PARENTS 256
/* Receive buffer for headers and small payloads: holds a burst of 4 KiB
 * writes (a kernel queue's worth is 128 x 4 KiB). */
#define RELAY_RX_BUF (512u * 1024)
/* Write chunks at least this long are received directly into the link's
 * payload buffer; shorter ones are copied out of the receive buffer, which
 * costs less than the extra recv system call. */
#define RELAY_DIRECT_RECV (64u * 1024)
/* Entries of the output queue (headers and payload pieces), and how many go
 * into one sendmsg (the kernel's UIO_MAXIOV is 1024; 64 fills a socket). */
#define RELAY_OUTQ 2048
#define RELAY_SEND_IOV 64
/* How often a busy loop checks the channel's status (loop turns). */
#define RELAY_STATUS_EVERY 256

enum chunk_state { CH_FREE, CH_FILLING, CH_QUEUED, CH_INFLIGHT, CH_DONE };

struct chunk {
	uint8_t state;
	bool has_buf;
	uint16_t parent;
	int next;             /* next chunk of the same parent, -1 = last */
	int qnext;            /* submission queue link */
	uint32_t len, filled;
	uint64_t off;
	uint64_t gen;         /* part of the link cookie: catches stale replies */
	uint32_t err;         /* NBD error of its reply */
	struct npt_hbuf buf;
};

struct parent {
	bool used;
	bool queued_ready;    /* in the reply queue */
	bool hdr_queued;
	bool failed_early;    /* READ whose first chunk failed: issue no more */
	struct nbd_request req;
	uint32_t nchunks, created, completed;
	uint32_t err;         /* first error */
	uint32_t unsent;      /* output queue entries still referencing it */
	int head, tail, send_next;   /* chunk list; next chunk to stream */
	int ready_next;
	uint8_t hdr[NBD_SIMPLE_REPLY_SIZE];
};

enum outk { OUT_HDR, OUT_DATA };

struct outv {
	void *base;
	size_t len;
	uint8_t kind;
	uint16_t id;          /* parent for HDR, chunk for DATA */
};

enum rx_state { RX_HDR, RX_PAYLOAD, RX_DISCARD, RX_STOP };

struct relay {
	const struct npc_relay_conf *conf;
	struct io_uring ring;
	bool ring_ok;

	struct chunk chunks[RELAY_SLOTS];
	int chunk_free;       /* free list through qnext */
	struct parent parents[RELAY_PARENTS];
	int parent_free;      /* free list through ready_next */
	uint64_t gen;

	int sq_head, sq_tail; /* chunks ready to submit */
	uint16_t issue[RELAY_PARENTS];   /* READ parents with chunks still to create, FIFO */
	unsigned issue_r, issue_w;
	int ready_head, ready_tail;  /* parents whose replies go out, in order */

	uint8_t *rx;
	uint32_t rx_start, rx_end;
	enum rx_state rx_state;
	int rx_parent, rx_chunk;  /* RX_PAYLOAD: the write being received */
	uint32_t rx_left;         /* RX_PAYLOAD: payload bytes of the request not yet in a chunk;
	                             RX_DISCARD: bytes to drop */
	bool rx_close_after;      /* RX_DISCARD ends in closing (unskippable) */
	bool rx_hdr_only;         /* the last request was a write received directly:
	                             receive the next header alone, not the start
	                             of its payload (which would be copied) */
	bool recv_busy, recv_direct, eof;
	bool send_busy;
	bool bell_busy;           /* a poll on the doorbell is in the kernel */

	struct outv outq[RELAY_OUTQ];
	unsigned out_r, out_w;    /* ring indices (free-running) */
	struct iovec send_iov[RELAY_SEND_IOV];
	struct msghdr send_msg;
	unsigned send_n;          /* entries covered by the sendmsg in flight */

	unsigned inflight_parents;
	unsigned inflight_chunks; /* submitted to the link, not completed */
	unsigned inflight_long;   /* of those, READ/WRITE chunks of NPT_LONG_XFER or more */
	bool last_long;           /* the chunk submitted last was such a chunk */
	unsigned bufs_held;       /* payload buffers allocated and not freed */
	int fatal;                /* -errno ending the relay */
	int close_code;           /* -errno to return once the replies are out */
	char *err;
	size_t errlen;
	struct npc_relay_stats *stats;
};

static int fail(struct relay *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct relay *r, int code, const char *fmt, ...)
{
	va_list ap;

	if (!r->fatal) {
		r->fatal = code;
		va_start(ap, fmt);
		vsnprintf(r->err, r->errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* ------------------------------------------------------------ slots */

static void buf_put(struct relay *r, struct npt_hbuf *b)
{
	r->conf->up->buf_free(r->conf->up_ctx, b);
	r->bufs_held--;
}

static int chunk_get(struct relay *r)
{
	int i = r->chunk_free;

	if (i < 0)
		return -1;
	r->chunk_free = r->chunks[i].qnext;
	memset(&r->chunks[i], 0, sizeof(r->chunks[i]));
	r->chunks[i].next = r->chunks[i].qnext = -1;
	r->chunks[i].gen = ++r->gen;
	return i;
}

static void chunk_put(struct relay *r, int i)
{
	struct chunk *c = &r->chunks[i];

	if (c->has_buf)
		buf_put(r, &c->buf);
	c->has_buf = false;
	c->state = CH_FREE;
	c->qnext = r->chunk_free;
	r->chunk_free = i;
}

static int parent_get(struct relay *r)
{
	int i = r->parent_free;

	if (i < 0)
		return -1;
	r->parent_free = r->parents[i].ready_next;
	memset(&r->parents[i], 0, sizeof(r->parents[i]));
	r->parents[i].used = true;
	r->parents[i].head = r->parents[i].tail = r->parents[i].send_next = -1;
	r->parents[i].ready_next = -1;
	r->inflight_parents++;
	return i;
}

/* Frees p once nothing refers to it: every chunk created completed, its
 * reply fully queued and sent. Chunks already streamed were freed on send. */
static void parent_maybe_put(struct relay *r, int i)
{
	struct parent *p = &r->parents[i];

	if (!p->used || p->queued_ready || p->unsent || p->completed < p->created ||
	    (p->created < p->nchunks && !p->failed_early) || !p->hdr_queued)
		return;
	for (int c = p->head; c >= 0;) {
		int n = r->chunks[c].next;
		chunk_put(r, c);
		c = n;
	}
	p->used = false;
	p->ready_next = r->parent_free;
	r->parent_free = i;
	r->inflight_parents--;
}

static void ready_push(struct relay *r, int pi)
{
	struct parent *p = &r->parents[pi];

	if (p->queued_ready)
		return;
	p->queued_ready = true;
	p->ready_next = -1;
	if (r->ready_tail >= 0)
		r->parents[r->ready_tail].ready_next = pi;
	else
		r->ready_head = pi;
	r->ready_tail = pi;
}

static void sq_push(struct relay *r, int ci)
{
	r->chunks[ci].state = CH_QUEUED;
	r->chunks[ci].qnext = -1;
	if (r->sq_tail >= 0)
		r->chunks[r->sq_tail].qnext = ci;
	else
		r->sq_head = ci;
	r->sq_tail = ci;
}

/* Creates the next chunk of parent pi (in order) and appends it. */
static int chunk_new(struct relay *r, int pi)
{
	struct parent *p = &r->parents[pi];
	uint32_t max = r->conf->max_xfer;
	int ci = chunk_get(r);
	struct chunk *c;
	uint64_t done;

	if (ci < 0)
		return -EAGAIN;
	c = &r->chunks[ci];
	c->parent = (uint16_t)pi;
	done = (uint64_t)p->created * max;
	c->off = p->req.offset + done;
	if (p->req.type == NBD_CMD_READ || p->req.type == NBD_CMD_WRITE)
		c->len = p->req.length - done > max ? max : (uint32_t)(p->req.length - done);
	else
		c->len = p->req.length;
	if (p->req.type == NBD_CMD_READ || p->req.type == NBD_CMD_WRITE) {
		int e = r->conf->up->buf_alloc(r->conf->up_ctx, c->len, &c->buf);
		if (e == -EAGAIN && r->bufs_held == 0 && r->inflight_chunks == 0)
			e = -ENOBUFS;   /* an empty area that cannot hold one chunk never will */
		if (e == 0)
			r->bufs_held++;
		if (e) {
			c->state = CH_FREE;
			c->qnext = r->chunk_free;
			r->chunk_free = ci;
			return e;
		}
		c->has_buf = true;
	}
	c->state = CH_FILLING;
	if (p->tail >= 0)
		r->chunks[p->tail].next = ci;
	else
		p->head = ci;
	p->tail = ci;
	if (p->send_next < 0)
		p->send_next = ci;
	p->created++;
	return ci;
}

/* --------------------------------------------------------- output queue */

static unsigned outq_space(const struct relay *r)
{
	return RELAY_OUTQ - (r->out_w - r->out_r);
}

static void outq_add(struct relay *r, void *base, size_t len, enum outk kind, int id)
{
	struct outv *o = &r->outq[r->out_w++ % RELAY_OUTQ];

	o->base = base;
	o->len = len;
	o->kind = (uint8_t)kind;
	o->id = (uint16_t)id;
	if (kind == OUT_HDR) {
		r->parents[id].unsent++;
	} else {
		r->parents[r->chunks[id].parent].unsent++;
		if (r->stats)
			r->stats->bytes_read += len;
	}
}

/* An output entry was sent completely. */
static void outq_release(struct relay *r, const struct outv *o)
{
	int pi;

	if (o->kind == OUT_DATA) {
		struct chunk *c = &r->chunks[o->id];
		pi = c->parent;
		struct parent *p = &r->parents[pi];
		/* Streamed data: free the chunk now (it is the head of the list). */
		if (p->head == o->id) {
			p->head = c->next;
			if (p->tail == o->id)
				p->tail = -1;
			chunk_put(r, o->id);
		}
	} else {
		pi = o->id;
	}
	r->parents[pi].unsent--;
	parent_maybe_put(r, pi);
}

/* Moves finished replies into the output queue, in order, streaming READ
 * data as its chunks complete. */
static void pump_replies(struct relay *r)
{
	while (r->ready_head >= 0) {
		int pi = r->ready_head;
		struct parent *p = &r->parents[pi];

		if (!p->hdr_queued) {
			struct nbd_simple_reply rep = { .error = p->err, .cookie = p->req.cookie };
			if (outq_space(r) < 2)
				return;
			nbd_reply_encode(p->hdr, &rep);
			outq_add(r, p->hdr, sizeof(p->hdr), OUT_HDR, pi);
			p->hdr_queued = true;
			if (r->stats)
				r->stats->requests++;
		}
		if (p->req.type == NBD_CMD_READ && p->err == 0) {
			while (p->send_next >= 0) {
				struct chunk *c = &r->chunks[p->send_next];
				if (c->state != CH_DONE)
					return;   /* stream stalls until that chunk is back */
				if (c->err) {
					fail(r, -EIO, "read: offset %" PRIu64 " length %u failed on the link with %s after the reply was sent; closing the connection",
					     c->off, c->len, nbd_err_name(c->err));
					return;
				}
				if (outq_space(r) < 1)
					return;
				outq_add(r, c->buf.ptr, c->len, OUT_DATA, p->send_next);
				p->send_next = c->next;
			}
			if (p->created < p->nchunks)
				return;   /* more chunks to come */
		}
		r->ready_head = p->ready_next;
		if (r->ready_head < 0)
			r->ready_tail = -1;
		p->queued_ready = false;
		parent_maybe_put(r, pi);
	}
}

/* ---------------------------------------------------------- link side */

/* A chunk whose transfer outlasts the poll before sleeping (NPT_LONG_XFER). */
static bool chunk_is_long(const struct relay *r, const struct chunk *c)
{
	uint16_t t = r->parents[c->parent].req.type;

	return c->len >= NPT_LONG_XFER && (t == NBD_CMD_READ || t == NBD_CMD_WRITE);
}

static void submit_queued(struct relay *r)
{
	while (r->sq_head >= 0) {
		int ci = r->sq_head;
		struct chunk *c = &r->chunks[ci];
		struct parent *p = &r->parents[c->parent];
		struct nbd_request q = p->req;
		uint8_t hdr[NBD_REQUEST_SIZE];
		int e;

		q.cookie = (c->gen << 16) | (uint64_t)ci;
		q.offset = c->off;
		q.length = c->len;
		nbd_request_encode(hdr, &q);
		e = r->conf->up->submit(r->conf->up_ctx, hdr, c->has_buf ? &c->buf : NULL);
		if (e == -EAGAIN)
			return;
		if (e) {
			fail(r, e, "%s: offset %" PRIu64 " length %u: link refused the request: %s (%s)",
			     nbd_cmd_name(q.type), q.offset, q.length, strerror(-e),
			     r->conf->up->error(r->conf->up_ctx));
			return;
		}
		c->state = CH_INFLIGHT;
		r->inflight_chunks++;
		r->last_long = chunk_is_long(r, c);
		if (r->last_long)
			r->inflight_long++;
		r->sq_head = c->qnext;
		if (r->sq_head < 0)
			r->sq_tail = -1;
	}
}

/* The EP's doorbell rings once, after the whole batch is on the ring: rung
 * at the first entry, the EP woke, took that one and slept again. */
static void submit_chunks(struct relay *r)
{
	const struct npc_upstream_ops *up = r->conf->up;

	if (r->sq_head < 0)
		return;
	if (up->hold)
		up->hold(r->conf->up_ctx);
	submit_queued(r);
	if (up->release)
		up->release(r->conf->up_ctx);
}

/* Creates and queues READ chunks while payload buffers are available. */
static void issue_reads(struct relay *r)
{
	while (r->issue_r != r->issue_w) {
		int pi = r->issue[r->issue_r % RELAY_PARENTS];
		struct parent *p = &r->parents[pi];

		/* A READ that failed early may be freed (and its slot reused)
		 * while still queued here: only a live READ issues chunks. */
		if (!p->used || p->req.type != NBD_CMD_READ) {
			r->issue_r++;
			continue;
		}

		while (!p->failed_early && p->created < p->nchunks) {
			int ci = chunk_new(r, pi);
			if (ci == -EAGAIN)
				return;
			if (ci < 0) {
				fail(r, ci, "read: chunk of %u bytes: no payload buffer on the link: %s",
				     p->req.length < r->conf->max_xfer ? p->req.length : r->conf->max_xfer,
				     strerror(-ci));
				return;
			}
			sq_push(r, ci);
		}
		r->issue_r++;
	}
}

/* Validates one reply from the link and applies it. */
static void complete_one(struct relay *r, const struct npt_hcomp *hc)
{
	struct nbd_simple_reply rep;
	uint64_t idx;
	struct chunk *c;
	struct parent *p;
	int pi;

	if (nbd_reply_decode(hc->reply, &rep)) {
		fail(r, -EPROTO, "link: reply with a bad magic");
		return;
	}
	idx = rep.cookie & 0xffff;
	if (idx >= RELAY_SLOTS || r->chunks[idx].state != CH_INFLIGHT ||
	    r->chunks[idx].gen != rep.cookie >> 16) {
		fail(r, -EPROTO, "link: reply for cookie 0x%" PRIx64 " that is not in flight",
		     rep.cookie);
		return;
	}
	c = &r->chunks[idx];
	c->state = CH_DONE;
	c->err = rep.error;
	r->inflight_chunks--;
	if (chunk_is_long(r, c))
		r->inflight_long--;
	pi = c->parent;
	p = &r->parents[pi];
	p->completed++;
	if (p->req.type == NBD_CMD_READ) {
		/* An error known before the header goes out is reported in it;
		 * after that, pump_replies() ends the connection. */
		if (rep.error && !p->hdr_queued) {
			if (!p->err)
				p->err = rep.error;
			p->failed_early = true;
		}
		if (!p->hdr_queued && ((int)idx == p->head || p->failed_early))
			ready_push(r, pi);
		if (p->failed_early && c->has_buf) {
			/* Never streamed: the buffer goes back now. */
			buf_put(r, &c->buf);
			c->has_buf = false;
		}
		parent_maybe_put(r, pi);
		return;
	}
	if (rep.error && !p->err)
		p->err = rep.error;
	if (c->has_buf) {
		/* WRITE data is on the EP now: free the area for the next chunks. */
		buf_put(r, &c->buf);
		c->has_buf = false;
	}
	if (p->req.type == NBD_CMD_WRITE && r->stats && !rep.error)
		r->stats->bytes_written += c->len;
	if (p->completed == p->nchunks)
		ready_push(r, pi);
}

static int reap_link(struct relay *r)
{
	struct npt_hcomp hc[32];
	int n, total = 0;

	do {
		n = r->conf->up->reap(r->conf->up_ctx, hc, ARRAY_SIZE(hc));
		if (n < 0) {
			fail(r, n, "link: %s", r->conf->up->error(r->conf->up_ctx));
			return n;
		}
		for (int i = 0; i < n && !r->fatal; i++)
			complete_one(r, &hc[i]);
		total += n;
	} while (n == (int)ARRAY_SIZE(hc) && !r->fatal);
	return total;
}

/* ------------------------------------------------------- downstream rx */

/* Queues a locally produced error reply (the request never reached the link). */
static int reply_local(struct relay *r, const struct nbd_request *q, uint32_t err)
{
	int pi = parent_get(r);

	if (pi < 0)
		return -EAGAIN;
	r->parents[pi].req = *q;
	r->parents[pi].err = err;
	ready_push(r, pi);
	return 0;
}

/* Handles one parsed header; -EAGAIN when it must wait for resources. */
static int start_request(struct relay *r, const uint8_t *raw)
{
	struct nbd_request q;
	char msg[256];
	uint32_t err;
	int pi;

	if (nbd_request_decode(raw, &q))
		return fail(r, -EPROTO, "request: bad magic 0x%08x: the peer does not speak NBD transmission; closing",
			    get_be32(raw));
	if (r->parent_free < 0)
		return -EAGAIN;
	if (q.type == NBD_CMD_DISC) {
		r->rx_state = RX_STOP;
		if (r->stats)
			r->stats->saw_disc = true;
		return 0;
	}
	err = nbdp_validate_request(&q, &r->conf->limits, msg, sizeof(msg));
	if (err) {
		npc_log(LOG_WARNING, "%s (replying %s)", msg, nbd_err_name(err));
		if (q.type == NBD_CMD_WRITE && q.length) {
			r->rx_state = RX_DISCARD;
			r->rx_left = q.length;
			r->rx_close_after = !nbdp_validate_payload_skippable(&q, &r->conf->limits);
		}
		reply_local(r, &q, err);
		if (r->rx_close_after) {
			/* Reply, then close: the payload cannot be skipped. */
			r->rx_state = RX_STOP;
			r->close_code = -EPROTO;
			snprintf(r->err, r->errlen,
				 "%s: payload too long to skip; closed after the error reply", msg);
		}
		return 0;
	}
	pi = parent_get(r);
	r->parents[pi].req = q;
	if ((q.type == NBD_CMD_READ || q.type == NBD_CMD_WRITE) && q.length == 0) {
		ready_push(r, pi);   /* nothing to move */
		return 0;
	}
	r->parents[pi].nchunks = (q.type == NBD_CMD_READ || q.type == NBD_CMD_WRITE)
		? (q.length + r->conf->max_xfer - 1) / r->conf->max_xfer : 1;
	r->rx_hdr_only = q.type == NBD_CMD_WRITE && q.length >= RELAY_DIRECT_RECV;
	if (q.type == NBD_CMD_WRITE) {
		r->rx_state = RX_PAYLOAD;
		r->rx_parent = pi;
		r->rx_chunk = -1;
		r->rx_left = q.length;
	} else if (q.type == NBD_CMD_READ) {
		r->issue[r->issue_w++ % RELAY_PARENTS] = (uint16_t)pi;
	} else {
		int ci = chunk_new(r, pi);
		if (ci < 0)
			return fail(r, ci, "%s: no request slot", nbd_cmd_name(q.type));
		sq_push(r, ci);
	}
	return 0;
}

/* Consumes what the receive buffer holds. */
static void process_rx(struct relay *r)
{
	for (;;) {
		uint32_t avail = r->rx_end - r->rx_start;

		if (r->fatal)
			return;
		switch (r->rx_state) {
		case RX_STOP:
			return;
		case RX_HDR:
			if (avail < NBD_REQUEST_SIZE)
				return;
			if (start_request(r, r->rx + r->rx_start))
				return;
			r->rx_start += NBD_REQUEST_SIZE;
			if (r->stats)
				r->stats->bytes_rx += NBD_REQUEST_SIZE;
			break;
		case RX_DISCARD: {
			uint32_t n = avail < r->rx_left ? avail : r->rx_left;
			r->rx_start += n;
			r->rx_left -= n;
			if (r->rx_left)
				return;
			r->rx_state = RX_HDR;
			break;
		}
		case RX_PAYLOAD: {
			struct parent *p = &r->parents[r->rx_parent];
			struct chunk *c;
			if (r->rx_chunk < 0) {
				int ci = chunk_new(r, r->rx_parent);
				if (ci == -EAGAIN)
					return;    /* payload area full: wait for completions */
				if (ci < 0) {
					fail(r, ci, "write: chunk of %u bytes: no payload buffer on the link: %s",
					     p->req.length < r->conf->max_xfer ? p->req.length
					     : r->conf->max_xfer, strerror(-ci));
					return;
				}
				r->rx_chunk = ci;
			}
			c = &r->chunks[r->rx_chunk];
			uint32_t want = c->len - c->filled;
			uint32_t n = avail < want ? avail : want;
			memcpy((uint8_t *)c->buf.ptr + c->filled, r->rx + r->rx_start, n);
			c->filled += n;
			r->rx_start += n;
			if (c->filled < c->len)
				return;
			sq_push(r, r->rx_chunk);
			r->rx_chunk = -1;
			r->rx_left -= c->len;
			if (!r->rx_left)
				r->rx_state = RX_HDR;
			break;
		}
		}
	}
}

/* ------------------------------------------------------------- io_uring */

enum { UD_RECV = 1, UD_SEND = 2, UD_BELL = 3 };

/* Where the next receive goes: straight into the payload buffer of the
 * write being received, or the receive buffer; false when nothing should be
 * received now. */
static bool recv_target(struct relay *r, void **dst, size_t *len)
{
	if (r->recv_busy || r->eof || r->rx_state == RX_STOP || r->fatal)
		return false;
	r->recv_direct = false;
	if (r->rx_state == RX_PAYLOAD && r->rx_start == r->rx_end) {
		if (r->rx_chunk < 0)
			process_rx(r);   /* get a buffer for the next chunk */
		if (r->rx_chunk >= 0) {
			struct chunk *c = &r->chunks[r->rx_chunk];
			if (c->len - c->filled >= RELAY_DIRECT_RECV) {
				*dst = (uint8_t *)c->buf.ptr + c->filled;
				*len = c->len - c->filled;
				r->recv_direct = true;
				return true;
			}
		} else if (r->rx_state == RX_PAYLOAD) {
			return false;    /* waiting for payload space */
		}
	}
	if (r->rx_start == r->rx_end)
		r->rx_start = r->rx_end = 0;
	if (r->rx_start > RELAY_RX_BUF / 2) {
		memmove(r->rx, r->rx + r->rx_start, r->rx_end - r->rx_start);
		r->rx_end -= r->rx_start;
		r->rx_start = 0;
	}
	if (r->rx_end == RELAY_RX_BUF)
		return false;        /* full: headers wait for request slots */
	*dst = r->rx + r->rx_end;
	*len = RELAY_RX_BUF - r->rx_end;
	if (r->rx_state == RX_HDR && r->rx_hdr_only && r->rx_end - r->rx_start < NBD_REQUEST_SIZE)
		*len = NBD_REQUEST_SIZE - (r->rx_end - r->rx_start);
	return true;
}

/* A receive through io_uring: completes when data comes (the kernel polls
 * the socket for us), so it wakes a sleeping relay. */
static void post_recv(struct relay *r)
{
	struct io_uring_sqe *sqe;
	void *dst;
	size_t len;

	if (!recv_target(r, &dst, &len))
		return;
	sqe = io_uring_get_sqe(&r->ring);
	if (!sqe)
		return;
	io_uring_prep_recv(sqe, r->conf->fd, dst, len, 0);
	io_uring_sqe_set_data64(sqe, UD_RECV);
	r->recv_busy = true;
}

static void post_send(struct relay *r)
{
	struct io_uring_sqe *sqe;
	unsigned n = 0;

	if (r->send_busy || r->out_r == r->out_w)
		return;
	for (unsigned i = r->out_r; i != r->out_w && n < RELAY_SEND_IOV; i++, n++) {
		r->send_iov[n].iov_base = r->outq[i % RELAY_OUTQ].base;
		r->send_iov[n].iov_len = r->outq[i % RELAY_OUTQ].len;
	}
	sqe = io_uring_get_sqe(&r->ring);
	if (!sqe)
		return;
	memset(&r->send_msg, 0, sizeof(r->send_msg));
	r->send_msg.msg_iov = r->send_iov;
	r->send_msg.msg_iovlen = n;
	io_uring_prep_sendmsg(sqe, r->conf->fd, &r->send_msg, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD_SEND);
	r->send_busy = true;
	r->send_n = n;
}

static void on_recv(struct relay *r, int res)
{
	r->recv_busy = false;
	if (res == -EINTR || res == -EAGAIN)
		return;
	if (res < 0) {
		if (res != -ECONNRESET)
			fail(r, res, "downstream: recv: %s", strerror(-res));
		r->eof = true;
		return;
	}
	if (res == 0) {
		r->eof = true;
		return;
	}
	if (r->recv_direct) {
		struct chunk *c = &r->chunks[r->rx_chunk];
		c->filled += (uint32_t)res;
		if (r->stats)
			r->stats->bytes_rx += (uint64_t)res;
		if (c->filled == c->len) {
			sq_push(r, r->rx_chunk);
			r->rx_chunk = -1;
			r->rx_left -= c->len;
			if (!r->rx_left)
				r->rx_state = RX_HDR;
		}
	} else {
		r->rx_end += (uint32_t)res;
	}
}

static void on_send(struct relay *r, int res)
{
	size_t n;

	r->send_busy = false;
	if (res == -EINTR || res == -EAGAIN)
		return;
	if (res < 0) {
		fail(r, res == -EPIPE || res == -ECONNRESET ? -EPIPE : res,
		     "downstream: send: %s", strerror(-res));
		return;
	}
	n = (size_t)res;
	while (n && r->out_r != r->out_w) {
		struct outv *o = &r->outq[r->out_r % RELAY_OUTQ];
		if (n < o->len) {
			o->base = (uint8_t *)o->base + n;
			o->len -= n;
			break;
		}
		n -= o->len;
		r->out_r++;
		outq_release(r, o);
	}
}

/* A non-blocking receive on the spot, for a relay that polls: an io_uring
 * receive on an empty socket arms a poll on it (and its wake-up queues task
 * work), which costs more than a recv that finds nothing. 1 when data (or
 * EOF, or an error) came in. */
static int try_recv(struct relay *r)
{
	void *dst;
	size_t len;
	ssize_t n;

	if (!recv_target(r, &dst, &len))
		return 0;
	n = recv(r->conf->fd, dst, len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	r->recv_busy = true;     /* on_recv ends it, as for a completion */
	on_recv(r, n < 0 ? -errno : (int)n);
	return 1;
}

static int drain_cqes(struct relay *r)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&r->ring, head, cqe) {
		if (cqe->user_data == UD_RECV)
			on_recv(r, cqe->res);
		else if (cqe->user_data == UD_SEND)
			on_send(r, cqe->res);
		else if (cqe->user_data == UD_BELL)
			r->bell_busy = false;
		n++;
	}
	io_uring_cq_advance(&r->ring, n);
	return (int)n;
}

/* ------------------------------------------------------------ the loop */

static bool idle_done(const struct relay *r)
{
	/* Downstream closed in the middle of a request: nothing more can be
	 * answered; wait only for the link to give its buffers back. */
	if (r->eof && (r->rx_state == RX_PAYLOAD || r->rx_state == RX_DISCARD ||
		       (r->rx_state == RX_HDR && r->rx_end - r->rx_start > 0 &&
			r->rx_end - r->rx_start < NBD_REQUEST_SIZE)))
		return r->inflight_chunks == 0;
	/* Downstream finished (EOF or DISC) and every reply went out. */
	return (r->eof || r->rx_state == RX_STOP) && r->inflight_parents == 0 &&
	       r->out_r == r->out_w && !r->send_busy;
}

static void release_all(struct relay *r)
{
	for (int i = 0; i < RELAY_SLOTS; i++)
		if (r->chunks[i].state != CH_FREE && r->chunks[i].has_buf) {
			buf_put(r, &r->chunks[i].buf);
			r->chunks[i].has_buf = false;
		}
}

/* Sleeps until the socket, the EP's doorbell or NPT_WAIT_MAX_MS (the link
 * checks' cadence) wakes us; false without sleeping when the channel has
 * work pending. */
static bool sleep_on_bell(struct relay *r, int bell_fd)
{
	const struct npc_relay_conf *conf = r->conf;
	struct __kernel_timespec ts = { .tv_sec = NPT_WAIT_MAX_MS / 1000,
					.tv_nsec = (long long)(NPT_WAIT_MAX_MS % 1000) * 1000000 };
	struct io_uring_cqe *cqe;

	post_recv(r);            /* the socket wakes us too */
	if (!r->bell_busy) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

		if (!sqe)
			return false;
		io_uring_prep_poll_add(sqe, bell_fd, POLLIN);
		io_uring_sqe_set_data64(sqe, UD_BELL);
		r->bell_busy = true;
	}
	if (conf->up->arm(conf->up_ctx))
		return false;
	io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
	/* A socket completion or the timeout may have ended the sleep: with
	 * the doorbell's poll still pending, there is nothing to consume. */
	drain_cqes(r);
	conf->up->disarm(conf->up_ctx, !r->bell_busy);
	return true;
}

int npc_relay_run(const struct npc_relay_conf *conf, struct npc_relay_stats *stats, char *err,
		  size_t errlen)
{
	struct relay *r = calloc(1, sizeof(*r));
	struct npt_backoff bo;
	unsigned turns = 0;
	int ret, bell_fd;
	bool sq_deferred = false;  /* SQEs left for the next wait to submit */

	if (!conf->max_xfer) {
		snprintf(err, errlen, "relay: the link's largest transfer is 0 bytes");
		free(r);
		return -EINVAL;
	}
	if (!r)
		return -ENOMEM;
	r->conf = conf;
	r->err = err;
	r->errlen = errlen;
	r->stats = stats;
	err[0] = '\0';
	r->rx = nbdpcie_page_alloc(RELAY_RX_BUF);   /* the kernel copies WRITE payloads in */
	if (!r->rx) {
		free(r);
		return -ENOMEM;
	}
	/* Entries: one recv and one sendmsg at most, plus slack. */
	ret = nbdpcie_uring_init(8, &r->ring, NBDPCIE_URING_COOP);
	if (ret) {
		snprintf(err, errlen, "relay: io_uring_queue_init: %s", strerror(-ret));
		free(r->rx);
		free(r);
		return ret;
	}
	r->ring_ok = true;
	nbdpcie_sock_sndbuf(conf->fd);
	for (int i = RELAY_SLOTS - 1; i >= 0; i--) {
		r->chunks[i].qnext = i + 1 < RELAY_SLOTS ? i + 1 : -1;
	}
	r->chunk_free = 0;
	for (int i = 0; i < RELAY_PARENTS; i++)
		r->parents[i].ready_next = i + 1 < RELAY_PARENTS ? i + 1 : -1;
	r->parent_free = 0;
	r->sq_head = r->sq_tail = r->ready_head = r->ready_tail = -1;
	r->rx_chunk = -1;
	if (conf->pre_len) {
		uint32_t n = conf->pre_len > RELAY_RX_BUF ? RELAY_RX_BUF : (uint32_t)conf->pre_len;
		memcpy(r->rx, conf->pre, n);
		r->rx_end = n;
	}
	npt_backoff_reset(&bo);
	bell_fd = conf->up->wait_fd ? conf->up->wait_fd(conf->up_ctx) : -1;

	while (!r->fatal) {
		int work = 0;

		if (conf->stop && npc_flag_read(conf->stop)) {
			fail(r, -EINTR, "relay: stopped");
			break;
		}
		work += drain_cqes(r);
		if (r->fatal)
			break;
		int n = reap_link(r);
		if (n < 0)
			break;
		work += n;
		process_rx(r);
		issue_reads(r);
		submit_chunks(r);
		pump_replies(r);
		if (r->fatal)
			break;
		if (idle_done(r)) {
			r->fatal = r->close_code;
			break;
		}
		/* With a doorbell the loop polls the socket by non-blocking
		 * recv and arms a receive only to sleep on (sleep_on_bell). */
		if (bell_fd >= 0)
			work += try_recv(r);
		else
			post_recv(r);
		post_send(r);
		/* With a doorbell, new socket operations wait one loop turn: if
		 * that turn finds nothing else, the sleep submits them in the
		 * same system call as its wait (one io_uring_enter less per
		 * request). */
		if (io_uring_sq_ready(&r->ring) && (bell_fd < 0 || (work && sq_deferred))) {
			ret = io_uring_submit(&r->ring);
			if (ret < 0 && ret != -EINTR && ret != -EAGAIN) {
				fail(r, ret, "relay: io_uring_submit: %s", strerror(-ret));
				break;
			}
			work++;
			sq_deferred = false;
		} else if (io_uring_sq_ready(&r->ring)) {
			sq_deferred = true;
		}
		if (++turns % RELAY_STATUS_EVERY == 0 || !work) {
			int st = conf->up->status(conf->up_ctx);
			if (st) {
				fail(r, st, "link: %s", conf->up->error(conf->up_ctx));
				break;
			}
		}
		if (work) {
			npt_backoff_reset(&bo);
			continue;
		}
		if (bell_fd >= 0) {
			/* Only long transfers in flight, or none after a long one:
			 * the EP's doorbell ends the sleep when one completes, and
			 * the client's next request of a stream of long transfers
			 * comes no sooner than it has sent or taken in the last
			 * one's payload (the socket wakes us). */
			bool only_long = r->inflight_chunks ? r->inflight_long == r->inflight_chunks
			                                    : r->last_long;
			bool spin = !only_long && npt_backoff_spin(&bo);

			if (!spin && sleep_on_bell(r, bell_fd)) {
				sq_deferred = false;   /* submitted by the wait */
				continue;
			}
			/* spinning, or work pending: submit, look again */
			if (io_uring_sq_ready(&r->ring))
				io_uring_submit(&r->ring);
			sq_deferred = false;
			if (spin)
				continue;
			/* work pending: through the back-off */
		}
		unsigned us = npt_backoff_next_us(&bo);
		if (us && r->inflight_chunks) {
			/* Waiting for the EP: its answer cannot wake us, so a sleep
			 * would add its whole length to the request's latency.
			 * Yield the core instead (the EP may need it). */
			sched_yield();
			continue;
		}
		if (us) {
			struct __kernel_timespec ts = { .tv_sec = us / 1000000,
							.tv_nsec = (long long)(us % 1000000) * 1000 };
			struct io_uring_cqe *cqe;
			io_uring_wait_cqe_timeout(&r->ring, &cqe, &ts);
		}
	}
	ret = r->fatal;
	/* Cancel what the kernel may still hold, then wait for it: the buffers
	 * belong to this frame. */
	if (r->recv_busy || r->send_busy || r->bell_busy) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
		if (sqe) {
			io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
			io_uring_submit(&r->ring);
		}
		while (r->recv_busy || r->send_busy || r->bell_busy) {
			struct io_uring_cqe *cqe;
			if (io_uring_wait_cqe(&r->ring, &cqe))
				break;
			if (cqe->user_data == UD_RECV)
				r->recv_busy = false;
			else if (cqe->user_data == UD_SEND)
				r->send_busy = false;
			else if (cqe->user_data == UD_BELL)
				r->bell_busy = false;
			io_uring_cqe_seen(&r->ring, cqe);
		}
	}
	release_all(r);
	nbdpcie_uring_exit(&r->ring);
	free(r->rx);
	free(r);
	return ret;
}

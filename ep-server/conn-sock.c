/* Socket connections (TCP and unix), exactly like nbd-server's: requests
 * and WRITE payloads arrive inline on a non-blocking stream, replies (with
 * READ data) leave in completion order. Payload memory is bounded by
 * SRV_CONN_PAYLOAD_BUDGET: a request that does not fit waits until earlier
 * replies are sent. */
#define _GNU_SOURCE   /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>
#include <fcntl.h>

#include "common/compiler.h"
#include "common/endian.h"
#include "common/sock.h"
#include "internal.h"

/* Input buffer: many small requests arrive in one recv. */
#define SOCK_IN_SIZE (64u * 1024)
/* Requests taken per pump so one busy connection cannot starve the others
 * of its worker. */
#define SOCK_BATCH 64
/* Requests one socket connection may hold (in flight or with a reply
 * queued) before it stops reading: bounds the memory of a client that
 * pipelines without reading replies (512 x ~130 bytes), and is four
 * kernel nbd queues deep. */
#define SOCK_MAX_REQS 512
/* Freed payload buffers kept for reuse per connection: reusing them spares
 * the allocator's trim/madvise and the page faults that follow (measured:
 * ~0.8 ms per madvise at 1 MiB requests). Buffers up to BUF_CACHE_MAX_CAP
 * are rounded up to a power of two (at least BUF_MIN_CAP) so they fit
 * later requests; larger ones are exact and never kept. Kept buffers count
 * against SRV_CONN_PAYLOAD_BUDGET like buffers in use. */
#define BUF_CACHE_SLOTS 16
#define BUF_CACHE_MAX_CAP (8u << 20)
#define BUF_MIN_CAP 4096u
/* Replies gathered into one sendmsg: a QD32 batch of 4 KiB READ replies in
 * one system call instead of 32 (2 iovecs each, far below UIO_MAXIOV). */
#define SOCK_SEND_REPLIES 32

struct sock_conn {
	struct srv_conn base;
	int fd;
	uint8_t in[SOCK_IN_SIZE];
	size_t in_off, in_len;
	struct srv_req *cur;            /* WRITE whose payload is arriving */
	uint32_t cur_got;
	uint64_t skip;                  /* payload bytes of a refused WRITE to discard */
	struct srv_req *skip_req;       /* its error reply, queued once skipped */
	struct nbd_request waiting;     /* header waiting for payload budget */
	bool has_waiting;
	uint64_t budget;                /* payload buffer bytes in use now */
	struct { void *p; uint32_t cap; } cache[BUF_CACHE_SLOTS];
	unsigned ncache;
	uint64_t cached;                /* bytes in cache[] */
	unsigned nreqs;                 /* requests allocated now */
	struct srv_req *out_head, *out_tail;
	size_t out_off;                 /* bytes of out_head already sent */
};

static struct sock_conn *sk(struct srv_conn *c)
{
	return container_of(c, struct sock_conn, base);
}

static uint32_t buf_cap(uint32_t len)
{
	uint32_t cap = BUF_MIN_CAP;
	if (len > BUF_CACHE_MAX_CAP)
		return len;
	while (cap < len)
		cap <<= 1;
	return cap;
}

static void cache_drop_all(struct sock_conn *s)
{
	while (s->ncache) {
		s->ncache--;
		s->cached -= s->cache[s->ncache].cap;
		free(s->cache[s->ncache].p);
	}
}

/* A payload buffer of len bytes (capacity in *cap), or NULL when the budget
 * has no room now (*cap = 0) or memory is out (*cap != 0). */
static void *buf_get(struct sock_conn *s, uint32_t len, uint32_t *cap)
{
	uint32_t want = buf_cap(len);
	void *p;

	for (unsigned i = 0; i < s->ncache; i++) {
		if (s->cache[i].cap == want) {
			p = s->cache[i].p;
			s->cached -= want;
			s->cache[i] = s->cache[--s->ncache];
			s->budget += want;
			*cap = want;
			return p;
		}
	}
	*cap = 0;
	if (s->budget && s->budget + want > SRV_CONN_PAYLOAD_BUDGET)
		return NULL;   /* wait for replies to free buffers */
	if (s->budget + s->cached + want > SRV_CONN_PAYLOAD_BUDGET)
		cache_drop_all(s);
	*cap = want;
	p = nbdpcie_page_alloc(want);   /* the kernel copies file data into it */
	if (p)
		s->budget += want;
	return p;
}

static void buf_put(struct sock_conn *s, void *p, uint32_t cap)
{
	s->budget -= cap;
	if (cap <= BUF_CACHE_MAX_CAP && s->ncache < BUF_CACHE_SLOTS &&
	    s->budget + s->cached + cap <= SRV_CONN_PAYLOAD_BUDGET) {
		s->cache[s->ncache].p = p;
		s->cache[s->ncache].cap = cap;
		s->ncache++;
		s->cached += cap;
		return;
	}
	free(p);
}

static void req_free(struct sock_conn *s, struct srv_req *q)
{
	s->nreqs--;
	if (q->buf)
		buf_put(s, q->buf, q->bufcap);
	free(q);
}

static ssize_t sock_recv(struct srv_conn *c, void *buf, size_t len)
{
	ssize_t n = recv(sk(c)->fd, buf, len, MSG_DONTWAIT);
	if (n < 0)
		return errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
	return n;
}

static ssize_t sock_send(struct srv_conn *c, const void *buf, size_t len)
{
	ssize_t n = send(sk(c)->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0)
		return errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
	return n;
}

static int sock_begin(struct srv_conn *c, const void *rest, size_t nrest)
{
	struct sock_conn *s = sk(c);
	memcpy(s->in, rest, nrest);   /* nrest <= SRV_HS_BUF < SOCK_IN_SIZE */
	s->in_off = 0;
	s->in_len = nrest;
	return 0;
}

static void queue_reply(struct sock_conn *s, struct srv_req *q)
{
	q->next = NULL;
	if (s->out_tail)
		s->out_tail->next = q;
	else
		s->out_head = q;
	s->out_tail = q;
}

static void sock_reply(struct srv_conn *c, struct srv_req *q)
{
	struct sock_conn *s = sk(c);
	if (c->dead)
		req_free(s, q);
	else
		queue_reply(s, q);
}

static size_t reply_dlen(const struct srv_req *q)
{
	return (q->r.type == NBD_CMD_READ && !q->err) ? q->r.length : 0;
}

/* Sends queued replies, up to SOCK_SEND_REPLIES per sendmsg (headers and
 * READ data gathered straight from the requests' buffers). */
static int flush_out(struct sock_conn *s)
{
	int progress = 0;

	while (s->out_head) {
		uint8_t hdr[SOCK_SEND_REPLIES][NBD_SIMPLE_REPLY_SIZE];
		struct iovec iov[2 * SOCK_SEND_REPLIES];
		struct msghdr mh = { .msg_iov = iov };
		size_t skip = s->out_off, sent, total = 0;
		unsigned niov = 0, nrep = 0;
		ssize_t n;

		for (struct srv_req *q = s->out_head; q && nrep < SOCK_SEND_REPLIES; q = q->next, nrep++) {
			struct nbd_simple_reply rep = { .error = q->err, .cookie = q->r.cookie };
			size_t dlen = reply_dlen(q);

			nbd_reply_encode(hdr[nrep], &rep);
			if (skip < NBD_SIMPLE_REPLY_SIZE)
				iov[niov++] = (struct iovec){ hdr[nrep] + skip, NBD_SIMPLE_REPLY_SIZE - skip };
			if (dlen) {
				size_t d = skip > NBD_SIMPLE_REPLY_SIZE ? skip - NBD_SIMPLE_REPLY_SIZE : 0;
				iov[niov++] = (struct iovec){ (char *)q->buf + d, dlen - d };
			}
			total += NBD_SIMPLE_REPLY_SIZE + dlen - skip;
			skip = 0;
		}
		mh.msg_iovlen = niov;
		n = sendmsg(s->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EWOULDBLOCK || errno == EINTR)
				break;
			srv_log(LOG_INFO, "%s: send reply: %s", s->base.desc, strerror(errno));
			return -errno;
		}
		progress = 1;
		/* Free the replies sent completely; the next one keeps its offset. */
		sent = (size_t)n;
		while (s->out_head) {
			struct srv_req *q = s->out_head;
			size_t left = NBD_SIMPLE_REPLY_SIZE + reply_dlen(q) - s->out_off;
			if (sent < left) {
				s->out_off += sent;
				break;
			}
			sent -= left;
			s->out_off = 0;
			s->out_head = q->next;
			if (!s->out_head)
				s->out_tail = NULL;
			req_free(s, q);
		}
		if ((size_t)n < total)
			break;   /* the socket is full: wait for POLLOUT */
	}
	return progress;
}

static struct srv_req *req_new(struct sock_conn *s, const struct nbd_request *r)
{
	struct srv_req *q = calloc(1, sizeof(*q));
	if (q) {
		q->r = *r;
		s->nreqs++;
	}
	return q;
}

/* A request that needs a payload buffer: allocate within the budget.
 * 1 started, 0 must wait, -errno fatal. */
static int start_payload(struct sock_conn *s)
{
	struct srv_conn *c = &s->base;
	const struct nbd_request *r = &s->waiting;
	struct srv_req *q;

	uint32_t cap;
	void *buf = buf_get(s, r->length, &cap);

	if (!buf && !cap)
		return 0;      /* no room in the budget yet */
	q = req_new(s, r);
	if (!q) {
		if (buf)
			buf_put(s, buf, cap);
		return -ENOMEM;
	}
	q->buf = buf;
	q->bufcap = cap;
	if (!q->buf) {
		/* no memory: refuse this request, keep the stream in sync */
		q->err = NBD_ENOMEM;
		s->has_waiting = false;
		if (r->type == NBD_CMD_WRITE) {
			s->skip = r->length;
			s->skip_req = q;
		} else {
			queue_reply(s, q);
		}
		return 1;
	}
	s->has_waiting = false;
	if (r->type == NBD_CMD_WRITE) {
		s->cur = q;
		s->cur_got = 0;
	} else {
		srv_engine_submit(c, q);
	}
	return 1;
}

static int handle_header(struct sock_conn *s, const struct nbd_request *r)
{
	struct srv_conn *c = &s->base;
	struct srv_req *q;
	uint32_t err;

	if (r->type == NBD_CMD_DISC) {
		srv_log(LOG_INFO, "%s: disconnect requested", c->desc);
		c->draining = true;
		return 0;
	}
	err = srv_conn_validate(c, r);
	if (err) {
		q = req_new(s, r);
		if (!q)
			return -ENOMEM;
		q->err = err;
		if (r->type == NBD_CMD_WRITE && r->length) {
			if (nbdp_validate_payload_skippable(r, &c->limits)) {
				s->skip = r->length;
				s->skip_req = q;
				return 0;
			}
			/* the payload is more than we will read: reply, then close */
			queue_reply(s, q);
			c->draining = true;
			srv_log(LOG_NOTICE, "%s: closing: WRITE payload of %u bytes not read", c->desc,
			        r->length);
			return 0;
		}
		queue_reply(s, q);
		return 0;
	}
	if ((r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) && r->length) {
		s->waiting = *r;
		s->has_waiting = true;
		return start_payload(s) < 0 ? -ENOMEM : 0;
	}
	q = req_new(s, r);
	if (!q)
		return -ENOMEM;
	srv_engine_submit(c, q);
	return 0;
}

/* Takes bytes from the input buffer, else from the socket. */
static ssize_t take(struct sock_conn *s, void *dst, size_t want)
{
	size_t have = s->in_len - s->in_off;
	if (have) {
		size_t n = have < want ? have : want;
		if (dst)
			memcpy(dst, s->in + s->in_off, n);
		s->in_off += n;
		return (ssize_t)n;
	}
	if (!dst) {
		/* discard: read into the (empty) input buffer */
		dst = s->in;
		if (want > sizeof(s->in))
			want = sizeof(s->in);
	}
	return sock_recv(&s->base, dst, want);
}

static int read_in(struct sock_conn *s)
{
	struct srv_conn *c = &s->base;
	int progress = 0;

	for (int i = 0; i < SOCK_BATCH && !c->draining; ) {
		ssize_t n;
		if (s->cur) {
			struct srv_req *q = s->cur;
			n = take(s, (char *)q->buf + s->cur_got, q->r.length - s->cur_got);
			if (n == -EAGAIN)
				break;
			if (n <= 0)
				goto eof;
			s->cur_got += (uint32_t)n;
			progress = 1;
			if (s->cur_got == q->r.length) {
				s->cur = NULL;
				srv_engine_submit(c, q);
				i++;
			}
			continue;
		}
		if (s->skip) {
			n = take(s, NULL, s->skip);
			if (n == -EAGAIN)
				break;
			if (n <= 0)
				goto eof;
			s->skip -= (uint64_t)n;
			progress = 1;
			if (!s->skip) {
				queue_reply(s, s->skip_req);
				s->skip_req = NULL;
				i++;
			}
			continue;
		}
		if (s->has_waiting) {
			int rc = start_payload(s);
			if (rc < 0)
				return rc;
			if (rc == 0)
				break;   /* wait for replies to free budget */
			progress = 1;
			continue;
		}
		if (s->nreqs >= SOCK_MAX_REQS)
			break;   /* wait for replies to go out */
		if (s->in_len - s->in_off < NBD_REQUEST_SIZE) {
			memmove(s->in, s->in + s->in_off, s->in_len - s->in_off);
			s->in_len -= s->in_off;
			s->in_off = 0;
			n = sock_recv(c, s->in + s->in_len, sizeof(s->in) - s->in_len);
			if (n == -EAGAIN)
				break;
			if (n <= 0)
				goto eof;
			s->in_len += (size_t)n;
			progress = 1;
			continue;
		}
		struct nbd_request r;
		if (nbd_request_decode(s->in + s->in_off, &r) < 0) {
			srv_log(LOG_NOTICE, "%s: request with bad magic 0x%08x: closing", c->desc,
			        get_be32(s->in + s->in_off));
			return -EPROTO;
		}
		s->in_off += NBD_REQUEST_SIZE;
		progress = 1;
		i++;
		int rc = handle_header(s, &r);
		if (rc < 0)
			return rc;
	}
	return progress;
eof:
	if (s->cur || s->skip || s->in_len != s->in_off)
		srv_log(LOG_NOTICE, "%s: peer closed in the middle of a request", c->desc);
	else
		srv_log(LOG_INFO, "%s: peer closed the connection", c->desc);
	c->draining = true;   /* replies still go out if the peer only half-closed */
	return 1;
}

static int sock_pump(struct srv_conn *c)
{
	struct sock_conn *s = sk(c);
	int p1, p2 = 0;

	p1 = flush_out(s);
	if (p1 < 0)
		return p1;
	if (!c->draining) {
		p2 = read_in(s);
		if (p2 < 0)
			return p2;
		if (s->out_head) {
			int p3 = flush_out(s);
			if (p3 < 0)
				return p3;
		}
	}
	return p1 | p2;
}

static int sock_poll_fd(struct srv_conn *c, unsigned *events)
{
	struct sock_conn *s = sk(c);
	*events = 0;
	if (!c->draining && !s->has_waiting && s->nreqs < SOCK_MAX_REQS)
		*events |= POLLIN;
	if (s->out_head)
		*events |= POLLOUT;
	return s->fd;
}

static bool sock_drained(struct srv_conn *c)
{
	return !sk(c)->out_head;
}

static void sock_destroy(struct srv_conn *c)
{
	struct sock_conn *s = sk(c);
	while (s->out_head) {
		struct srv_req *q = s->out_head;
		s->out_head = q->next;
		req_free(s, q);
	}
	if (s->cur)
		req_free(s, s->cur);
	if (s->skip_req)
		req_free(s, s->skip_req);
	cache_drop_all(s);
	close(s->fd);
	free(s);
}

/* TCP and unix connections differ only in the kind they report. */
#define SOCK_CONN_OPS(kind_) {		\
	.kind = (kind_),		\
	.recv = sock_recv,		\
	.send = sock_send,		\
	.begin = sock_begin,		\
	.pump = sock_pump,		\
	.reply = sock_reply,		\
	.poll_fd = sock_poll_fd,	\
	.drained = sock_drained,	\
	.destroy = sock_destroy,	\
}

static const struct srv_conn_ops sock_tcp_ops = SOCK_CONN_OPS("tcp");
static const struct srv_conn_ops sock_unix_ops = SOCK_CONN_OPS("unix");

struct srv_conn *srv_sock_conn_new(struct srv_server *srv, int fd, bool tcp)
{
	struct sock_conn *s = calloc(1, sizeof(*s));
	struct srv_conn *c;
	int fl;

	if (!s)
		return NULL;
	c = &s->base;
	srv_conn_init(c, tcp ? &sock_tcp_ops : &sock_unix_ops, srv);
	s->fd = fd;
	nbdpcie_sock_sndbuf(fd);   /* a 1 MiB READ reply leaves in one or two sends */
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (tcp) {
		socklen_t sl = sizeof(c->peer);
		char host[INET6_ADDRSTRLEN] = "?";
		unsigned port = 0;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (getpeername(fd, (struct sockaddr *)&c->peer, &sl) == 0) {
			c->has_peer = true;
			if (c->peer.ss_family == AF_INET) {
				struct sockaddr_in *a = (struct sockaddr_in *)&c->peer;
				inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
				port = ntohs(a->sin_port);
			} else if (c->peer.ss_family == AF_INET6) {
				struct sockaddr_in6 *a = (struct sockaddr_in6 *)&c->peer;
				inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
				port = ntohs(a->sin6_port);
			}
		}
		snprintf(c->desc, sizeof(c->desc), "tcp %s:%u #%lu", host, port, c->id);
	} else {
		snprintf(c->desc, sizeof(c->desc), "unix #%lu", c->id);
	}
	return c;
}

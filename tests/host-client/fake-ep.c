/* See fake-ep.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fake-ep.h"




static int f_alloc_locked(struct fake *f, uint32_t len, struct npt_hbuf *b);

/* Each op holds f->mu so that a test thread may look at the counters and
 * the disk (under the same lock) while the relay runs. */
static int f_alloc(void *ctx, uint32_t len, struct npt_hbuf *b)
{
	struct fake *f = ctx;
	int r;

	pthread_mutex_lock(&f->mu);
	r = f_alloc_locked(f, len, b);
	pthread_mutex_unlock(&f->mu);
	return r;
}

static int f_alloc_locked(struct fake *f, uint32_t len, struct npt_hbuf *b)
{

	if (len > 4u << 20)
		return -E2BIG;
	if (f->area_used + len > f->area)
		return -EAGAIN;
	f->area_used += len;
	b->ptr = malloc(len ? len : 1);
	b->len = len;
	b->off = 0;
	return 0;
}

static void f_free(void *ctx, struct npt_hbuf *b)
{
	struct fake *f = ctx;

	pthread_mutex_lock(&f->mu);
	f->area_used -= b->len;
	pthread_mutex_unlock(&f->mu);
	free(b->ptr);
	b->ptr = NULL;
}

static int f_submit_locked(struct fake *f, const uint8_t req[28], const struct npt_hbuf *b);

static int f_submit(void *ctx, const uint8_t req[28], const struct npt_hbuf *b)
{
	struct fake *f = ctx;
	int r;

	pthread_mutex_lock(&f->mu);
	r = f_submit_locked(f, req, b);
	pthread_mutex_unlock(&f->mu);
	return r;
}

static int f_submit_locked(struct fake *f, const uint8_t req[28], const struct npt_hbuf *b)
{

	if (f->dead)
		return -ECONNRESET;
	if (f->nq == f->ring)
		return -EAGAIN;
	if (f->die_after >= 0 && (int)f->submits >= f->die_after) {
		f->dead = true;
		return -ECONNRESET;
	}
	memcpy(f->q[f->nq].hdr, req, 28);
	f->q[f->nq].has = b != NULL;
	if (b)
		f->q[f->nq].b = *b;
	f->nq++;
	f->submits++;
	return 0;
}

static void execute(struct fake *f, const uint8_t *hdr, const struct npt_hbuf *b, uint8_t reply[16])
{
	struct nbd_request q;
	struct nbd_simple_reply rep = { 0 };

	if (nbd_request_decode(hdr, &q))
		abort();   /* the relay always encodes valid headers */
	rep.cookie = f->bogus_cookie ? 0xdead0000beefull : q.cookie;
	if (q.length > f->max_len_seen)
		f->max_len_seen = q.length;
	if (f->err_off != UINT64_MAX && q.offset < f->err_off + 4096 &&
	    q.offset + q.length > f->err_off)
		rep.error = NBD_EIO;
	else if (q.type == NBD_CMD_READ)
		memcpy(b->ptr, f->disk + q.offset, q.length);
	else if (q.type == NBD_CMD_WRITE)
		memcpy(f->disk + q.offset, b->ptr, q.length);
	nbd_reply_encode(reply, &rep);
}

static int f_reap(void *ctx, struct npt_hcomp *out, unsigned max)
{
	struct fake *f = ctx;
	unsigned n = 0;

	pthread_mutex_lock(&f->mu);
	if (f->dead) {
		pthread_mutex_unlock(&f->mu);
		return -ECONNRESET;
	}
	while (f->nq && n < max) {
		unsigned i = f->reverse ? f->nq - 1 : 0;
		execute(f, f->q[i].hdr, &f->q[i].b, out[n].reply);
		out[n].buf = f->q[i].has ? f->q[i].b : (struct npt_hbuf){ 0 };
		if (!f->reverse)
			memmove(&f->q[0], &f->q[1], (f->nq - 1) * sizeof(f->q[0]));
		f->nq--;
		n++;
	}
	pthread_mutex_unlock(&f->mu);
	return (int)n;
}

static int f_status(void *ctx)
{
	struct fake *f = ctx;
	bool dead;

	pthread_mutex_lock(&f->mu);
	dead = f->dead;
	pthread_mutex_unlock(&f->mu);
	return dead ? -ECONNRESET : 0;
}

static const char *f_error(void *ctx)
{
	return f_status(ctx) ? "peer reset (test)" : "";
}

const struct npc_upstream_ops fake_ep_ops = {
	.buf_alloc = f_alloc, .buf_free = f_free, .submit = f_submit, .reap = f_reap,
	.status = f_status, .error = f_error,
};

static int f_wait_fd(void *ctx)
{
	return ((struct fake *)ctx)->bell_fd;
}

/* true: work is pending, do not sleep (npt_chan_arm). */
static bool f_arm(void *ctx)
{
	struct fake *f = ctx;
	bool pending;

	pthread_mutex_lock(&f->mu);
	pending = f->nq > 0 || f->dead;
	if (!pending)
		f->sleeps++;
	pthread_mutex_unlock(&f->mu);
	return pending;
}

static void f_disarm(void *ctx, bool rung)
{
	(void)ctx;
	(void)rung;
}

const struct npc_upstream_ops fake_ep_bell_ops = {
	.buf_alloc = f_alloc, .buf_free = f_free, .submit = f_submit, .reap = f_reap,
	.status = f_status, .error = f_error,
	.wait_fd = f_wait_fd, .arm = f_arm, .disarm = f_disarm,
};

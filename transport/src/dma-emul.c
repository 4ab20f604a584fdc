/* The emulated DMA engine: copies between EP memory and the mapped host
 * window with memcpy, reporting completions like a real engine (in order,
 * by cookie, only when polled). Optionally models link bandwidth and
 * latency: a transfer becomes visible (is copied) only once the modelled
 * engine would have finished it. Transfers run inline in poll(); no thread.
 * The copies are CPU work a real engine does not cost the EP: copies of
 * NPT_LONG_XFER or more are timed on the thread's CPU clock (two system
 * calls, under 1% of such a copy), so that benchmarks can tell the engine's
 * share from the server's (docs/performance.md). */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

struct xfer {
	void *dst;
	const void *src;
	uint32_t len, cookie;
	uint64_t due_ns;          /* 0: copied at submit time */
};

struct npt_dma {
	uint8_t *win;             /* the channel's host-polled area in the mapped window */
	struct xfer *q;
	uint32_t mask, head, tail;
	double ns_per_byte;       /* 0: no bandwidth model */
	uint64_t lat_ns;
	uint64_t busy_until;      /* modelled engine busy until this time */
	uint64_t cpu_ns;          /* CPU time of the timed copies */
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void copy(struct npt_dma *d, void *dst, const void *src, uint32_t len)
{
	uint64_t t0, t1;

	if (len < NPT_LONG_XFER) {
		memcpy(dst, src, len);
		return;
	}
	t0 = thread_cpu_ns();
	memcpy(dst, src, len);
	t1 = thread_cpu_ns();
	if (t0 && t1 > t0)
		d->cpu_ns += t1 - t0;
}

static int emul_open(struct npt_chan *c, struct npt_dma **out)
{
	struct npt_dma *d = calloc(1, sizeof(*d));
	double gbps = c->link->spec.dma_gbps, lat_us = c->link->spec.dma_lat_us;
	unsigned n = 1, depth = c->n;

	if (!d)
		return -ENOMEM;
	while (n < depth)
		n <<= 1;
	d->q = calloc(n, sizeof(*d->q));
	if (!d->q) {
		free(d);
		return -ENOMEM;
	}
	d->mask = n - 1;
	/* the host-polled area starts with its control line (chan.c chan_map) */
	d->win = (uint8_t *)c->hctl;
	d->ns_per_byte = gbps > 0 ? 8.0 / gbps : 0;   /* Gbit/s -> ns per byte */
	d->lat_ns = (uint64_t)(lat_us * 1000.0);
	*out = d;
	return 0;
}

static bool modelled(const struct npt_dma *d)
{
	return d->ns_per_byte > 0 || d->lat_ns;
}

static int emul_submit(struct npt_dma *d, enum npt_dma_dir dir, void *local, uint64_t win_off,
		       uint32_t len, uint32_t cookie)
{
	void *dst = dir == NPT_DMA_TO_HOST ? d->win + win_off : local;
	const void *src = dir == NPT_DMA_TO_HOST ? (const void *)local : d->win + win_off;
	struct xfer *x;

	if (d->tail - d->head > d->mask)
		return -EAGAIN;
	x = &d->q[d->tail & d->mask];
	x->dst = dst;
	x->src = src;
	x->len = len;
	x->cookie = cookie;
	x->due_ns = 0;
	if (modelled(d)) {
		uint64_t now = npt_now_ns();
		uint64_t start = d->busy_until > now ? d->busy_until : now;

		d->busy_until = start + (uint64_t)(len * d->ns_per_byte);
		x->due_ns = d->busy_until + d->lat_ns;
		if (!x->due_ns)
			x->due_ns = 1;
	} else {
		copy(d, dst, src, len);
	}
	d->tail++;
	return 0;
}

static int emul_poll(struct npt_dma *d, uint32_t *cookies, unsigned max)
{
	uint64_t now = 0;
	unsigned n = 0;

	while (n < max && d->head != d->tail) {
		struct xfer *x = &d->q[d->head & d->mask];

		if (x->due_ns) {
			if (!now)
				now = npt_now_ns();
			if (now < x->due_ns)
				break;
			copy(d, x->dst, x->src, x->len);
		}
		cookies[n++] = x->cookie;
		d->head++;
	}
	return (int)n;
}

static void emul_close(struct npt_dma *d)
{
	if (!d)
		return;
	free(d->q);
	free(d);
}

static uint64_t emul_cpu_ns(const struct npt_dma *d)
{
	return d->cpu_ns;
}

/* Without a model every copy happens in submit, from wherever local points. */
static bool emul_any_src(const struct npt_dma *d)
{
	return !modelled(d);
}

const struct npt_dma_ops npt_dma_emul_ops = {
	.name = "emulated",
	.open = emul_open,
	.submit = emul_submit,
	.poll = emul_poll,
	.close = emul_close,
	.cpu_ns = emul_cpu_ns,
	.any_src = emul_any_src,
};

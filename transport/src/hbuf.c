/* Host payload buffers: a first-fit page allocator over the channel's
 * payload area (host window, or the BAR in BAR-only mode). One bit per
 * NPT_HBUF_PAGE; a buffer is a run of pages. Owned by the channel's thread. */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

int npt_hbuf_init(struct npt_chan *c)
{
	c->npages = c->data_size / NPT_HBUF_PAGE;
	c->pages = calloc((c->npages + 63) / 64 + 1, sizeof(uint64_t));
	return c->pages ? 0 : -ENOMEM;
}

void npt_hbuf_fini(struct npt_chan *c)
{
	free(c->pages);
	c->pages = NULL;
}

static bool page_used(const struct npt_chan *c, uint32_t p)
{
	return c->pages[p / 64] >> (p % 64) & 1;
}

static void mark(struct npt_chan *c, uint32_t first, uint32_t n, bool used)
{
	for (uint32_t p = first; p < first + n; p++) {
		if (used)
			c->pages[p / 64] |= 1ull << (p % 64);
		else
			c->pages[p / 64] &= ~(1ull << (p % 64));
	}
}

/* First run of n free pages at or after `from`, below `to`; -1 if none. */
static int64_t find_run(const struct npt_chan *c, uint32_t from, uint32_t to, uint32_t n)
{
	uint32_t p = from, run = 0;

	while (p < to) {
		if (!run && p % 64 == 0 && c->pages[p / 64] == ~0ull) {
			p += 64;
			continue;
		}
		if (page_used(c, p)) {
			run = 0;
		} else if (++run == n) {
			return (int64_t)(p + 1 - n);
		}
		p++;
	}
	return -1;
}

int npt_host_buf_alloc(struct npt_chan *c, uint32_t len, struct npt_hbuf *b)
{
	uint32_t n;
	int64_t at;
	int r = npt_chan_alive(c);

	if (r)
		return r;
	if (len > npt_link_max_xfer(c->link))
		return -E2BIG;
	if (!len) {
		*b = (struct npt_hbuf){ .ptr = c->payload, .len = 0, .off = 0 };
		return 0;
	}
	n = (len + NPT_HBUF_PAGE - 1) / NPT_HBUF_PAGE;
	at = find_run(c, c->page_hint, c->npages, n);
	if (at < 0)
		at = find_run(c, 0, c->npages, n);
	if (at < 0)
		return -EAGAIN;
	mark(c, (uint32_t)at, n, true);
	c->page_hint = (uint32_t)at + n < c->npages ? (uint32_t)at + n : 0;
	b->off = (uint32_t)at * NPT_HBUF_PAGE;
	b->len = len;
	b->ptr = c->payload + b->off;
	return 0;
}

void npt_host_buf_free(struct npt_chan *c, struct npt_hbuf *b)
{
	uint32_t first, n;

	if (!c || !b || !b->len || !c->pages)
		return;
	first = b->off / NPT_HBUF_PAGE;
	n = (b->len + NPT_HBUF_PAGE - 1) / NPT_HBUF_PAGE;
	if (b->off % NPT_HBUF_PAGE || first + n > c->npages || first + n < first)
		return;   /* not one of ours: ignore rather than corrupt the map */
	mark(c, first, n, false);
	b->len = 0;
	b->ptr = NULL;
}

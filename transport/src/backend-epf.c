/* The EP kernel-module backend (epf:/dev/nbd-pcie-ep<N>): the BAR is the
 * endpoint function's memory, mapped through the pci-epf-nbd character
 * device (docs/kmod.md); the physical link state comes from the device's
 * read() events; notifications are MSI-X (or MSI) interrupts the module
 * raises on the host.
 *
 * Modes: BAR-only (the host polls the BAR), and host window when the
 * function can move data (dma ENGINE or CPU): the EP cannot map host memory,
 * so each channel keeps its host-polled area in the BAR copy (the shadow,
 * l->win_shadow), and every store the EP makes there (completion entries,
 * stream bytes, state words) and every payload goes to the host window
 * through NPK_EP_IOC_DMA after NPK_EP_IOC_SET_WINDOW with the window the host
 * published (docs/transport.md "EP kernel-module backend"). `,bar_only` in
 * the link string keeps a DMA-capable function BAR-only.
 *
 * The device is untrusted input too: its INFO is checked in one place
 * (npt_epf_check_info) before a single size from it is used. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* The module's own limits (kmod/shared/npk-check.h), restated: the
 * transport does not build kmod/ sources, and a device reporting more than
 * the module can configure is broken. */
#define EPF_MIN_REGION  (2u * NPL_PAGE)       /* header page + one page of channel space */
#define EPF_MAX_REGION  (1ull << 30)
#define EPF_MAX_MSI     32
#define EPF_MAX_MSIX    2048

struct epf_dev {
	int fd;
	struct npk_ep_info info;    /* checked at open, constant afterwards */
	uint32_t nvec;              /* MSI-X vectors, else MSI; 0 = none (the host polls) */
	struct npt_epf_linkstate ls; /* link state as followed by the heartbeat thread */
	struct npt_winmap *cur_win; /* the window set in the device (under the link lock) */
};

static struct epf_dev *dev_of(struct npt_link *l)
{
	return l->priv;
}

static const char *link_bits(uint32_t link, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s", link & NPK_EP_LINK_INIT ? "init" : "no init",
		 link & NPK_EP_LINK_UP ? ",up" : ",not up", link & NPK_EP_LINK_BME ? ",bus master" : "",
		 link & ~(uint32_t)(NPK_EP_LINK_INIT | NPK_EP_LINK_UP | NPK_EP_LINK_BME) ? ",unknown bits" : "");
	return buf;
}

int npt_epf_check_info(const struct npk_ep_info *in, char *err, size_t errlen)
{
	uint64_t bar = in->region[NPK_EP_REGION_BAR].size;

	if (in->api_version != NPK_API_VERSION) {
		npt_seterr(err, errlen, "module API version %" PRIu32 ", this program speaks %d "
			   "(rebuild pci-epf-nbd.ko and nbd-pcie-server from one tree)",
			   in->api_version, NPK_API_VERSION);
		return -EPROTO;
	}
	if (!bar) {
		npt_seterr(err, errlen, "the function is not bound to an endpoint controller "
			   "(BAR region size 0): link it under controllers/ in configfs (docs/kmod.md)");
		return -ENOTCONN;
	}
	if (bar % NPL_PAGE || bar < EPF_MIN_REGION || bar > EPF_MAX_REGION) {
		npt_seterr(err, errlen, "BAR region size %" PRIu64 " is not a multiple of %d in "
			   "%u..%llu", bar, NPL_PAGE, EPF_MIN_REGION, EPF_MAX_REGION);
		return -EPROTO;
	}
	if (in->nchannels < 1 || in->nchannels > NPT_MAX_CHANNELS) {
		npt_seterr(err, errlen, "channel count %" PRIu32 " outside 1..%d", in->nchannels,
			   NPT_MAX_CHANNELS);
		return -EPROTO;
	}
	if (in->dma != NPK_EP_DMA_NONE &&
	    (!in->dma_align || in->dma_align & (in->dma_align - 1) || in->dma_align > NPL_PAGE ||
	     in->max_xfer < NPL_PAGE)) {
		npt_seterr(err, errlen, "DMA alignment %" PRIu32 " (a power of two up to %d) or "
			   "largest transfer %" PRIu32 " (at least %d) out of range",
			   in->dma_align, NPL_PAGE, in->max_xfer, NPL_PAGE);
		return -EPROTO;
	}
	if (in->msi_vectors > EPF_MAX_MSI || in->msix_vectors > EPF_MAX_MSIX) {
		npt_seterr(err, errlen, "MSI vectors %" PRIu32 " (limit %d) or MSI-X vectors %" PRIu32
			   " (limit %d) beyond what PCI allows", in->msi_vectors, EPF_MAX_MSI,
			   in->msix_vectors, EPF_MAX_MSIX);
		return -EPROTO;
	}
	return 0;
}

int npt_epf_vector(const struct npk_ep_info *in, unsigned chan, struct npk_ep_irq *irq)
{
	uint32_t n = in->msix_vectors ? in->msix_vectors : in->msi_vectors;

	if (!n)
		return -EOPNOTSUPP;
	irq->type = in->msix_vectors ? NPK_EP_IRQ_MSIX : NPK_EP_IRQ_MSI;
	irq->vector = chan % n + 1;   /* 1-based; host vector (0-based) = chan mod n */
	return 0;
}

int npt_epf_open(struct npt_link *l, char *err, size_t errlen)
{
	const char *path = l->spec.epf_path;
	struct epf_dev *d;
	char why[NPT_ERRLEN];
	ssize_t n;
	int r;

	if (l->role != NPT_ROLE_EP) {
		npt_seterr(err, errlen, "epf: %s: an epf: link is EP-side only; the host uses "
			   "pci: or shm:", path);
		return -EINVAL;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	l->priv = d;
	/* O_NONBLOCK: the heartbeat thread reads link events without waiting */
	d->fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (d->fd < 0) {
		r = -errno;
		npt_seterr(err, errlen, "epf: %s: %s%s", path, strerror(errno),
			   errno == ENOENT ? " (is pci-epf-nbd loaded and the function created "
					     "in configfs? docs/kmod.md)" : "");
		return r;
	}
	if (ioctl(d->fd, NPK_EP_IOC_INFO, &d->info)) {
		r = -errno;
		npt_seterr(err, errlen, "epf: %s: INFO ioctl: %s (not a pci-epf-nbd device?)",
			   path, strerror(errno));
		return r;
	}
	r = npt_epf_check_info(&d->info, why, sizeof(why));
	if (r) {
		npt_seterr(err, errlen, "epf: %s: %s", path, why);
		return r;
	}
	/* the first read returns the current state at once */
	n = read(d->fd, &d->ls.last, sizeof(d->ls.last));
	if (n != (ssize_t)sizeof(d->ls.last)) {
		r = n < 0 ? -errno : -EIO;
		npt_seterr(err, errlen, "epf: %s: reading the link state: %s", path,
			   n < 0 ? strerror(errno) : "short read");
		return r;
	}
	d->nvec = d->info.msix_vectors ? d->info.msix_vectors : d->info.msi_vectors;
	l->dev_channels = d->info.nchannels;
	l->win_shadow = d->info.dma != NPK_EP_DMA_NONE && !l->spec.epf_bar_only;
	l->dma_ops = &npt_dma_epf_ops;
	return 0;
}

static int epf_map_bar(struct npt_link *l, uint64_t size, char *err, size_t errlen)
{
	struct epf_dev *d = dev_of(l);
	uint64_t region = d->info.region[NPK_EP_REGION_BAR].size;
	void *p;

	/* The BAR's size is the controller's and configfs', not ours: an
	 * implicit layout is fitted into it (link.c), an explicit one must fit. */
	if (size > region && !l->bar_fit) {
		npt_seterr(err, errlen, "epf: %s: the layout needs %" PRIu64 " bytes (pcie_data_per_channel "
			   "set), the BAR's link part is %" PRIu64 " bytes: lower it or raise "
			   "bar_size in configfs", l->spec.epf_path, size, region);
		return -ENOSPC;
	}
	p = mmap(NULL, (size_t)region, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd,
		 (off_t)NPK_MMAP_OFFSET(NPK_EP_REGION_BAR));
	if (p == MAP_FAILED) {
		int e = errno;

		npt_seterr(err, errlen, "epf: %s: mapping the BAR (%" PRIu64 " bytes): %s", l->spec.epf_path,
			   region, strerror(e));
		return -e;
	}
	l->bar = p;
	l->bar_map = p;
	l->bar_maplen = (size_t)region;
	l->bar_size = region;
	return 0;
}

/* The host published a window (ep_attach, lock held): the device accepts
 * transfers into it only after SET_WINDOW, so a wrong offset can never
 * reach host memory outside it. Nothing is mapped: base stays NULL. */
static int epf_map_window(struct npt_link *l, uint64_t *bus, uint64_t size,
			  struct npt_winmap **out, char *err, size_t errlen)
{
	struct epf_dev *d = dev_of(l);
	struct npk_ep_window w = { .bus_addr = *bus, .size = size };
	struct npt_winmap *m;

	if (!l->win_shadow) {
		npt_seterr(err, errlen, "epf: %s: BAR-only (no DMA, or bar_only set)", l->spec.epf_path);
		return -EOPNOTSUPP;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	if (ioctl(d->fd, NPK_EP_IOC_SET_WINDOW, &w)) {
		int e = errno;

		npt_seterr(err, errlen, "epf: %s: SET_WINDOW bus address 0x%" PRIx64 " size %" PRIu64
			   ": %s", l->spec.epf_path, *bus, size, strerror(e));
		free(m);
		return -e;
	}
	m->refs = 1;
	m->size = size;
	m->bus = *bus;
	d->cur_win = m;
	*out = m;
	return 0;
}

static void epf_unmap_window(struct npt_link *l, struct npt_winmap *m)
{
	struct epf_dev *d = dev_of(l);
	struct npk_ep_window none = { 0, 0 };

	if (!m)
		return;
	/* only the window still set: a newer host's window replaced it otherwise */
	if (d && d->cur_win == m) {
		ioctl(d->fd, NPK_EP_IOC_SET_WINDOW, &none);   /* fails only when unbound: moot */
		d->cur_win = NULL;
	}
	free(m);
}

static void epf_close(struct npt_link *l)
{
	struct epf_dev *d = dev_of(l);

	if (l->bar_map) {
		munmap(l->bar_map, l->bar_maplen);
		l->bar_map = NULL;
		l->bar = NULL;
	}
	if (!d)
		return;
	if (d->fd >= 0)
		close(d->fd);
	free(d);
	l->priv = NULL;
}

static int epf_notify(struct npt_link *l, unsigned chan)
{
	struct epf_dev *d = dev_of(l);
	struct npk_ep_irq irq;

	if (npt_epf_vector(&d->info, chan, &irq))
		return -EOPNOTSUPP;
	return ioctl(d->fd, NPK_EP_IOC_RAISE_IRQ, &irq) ? -errno : 0;
}

/* More state changes than changed bits: some bit went off and on again in
 * between. INIT and UP only ever drop with a link loss (BME drops with UP),
 * so that is a link loss the caller must treat as a reset. */
static bool bounced(const struct npk_ep_event *a, const struct npk_ep_event *b)
{
	return b->events - a->events > (uint32_t)__builtin_popcount(a->link ^ b->link);
}

int npt_epf_link_step(struct npt_epf_linkstate *s, const struct npk_ep_event *ev, bool *reset)
{
	/* INIT lost (unbind, PERST#) or UP lost (link down): the host lost the
	 * BAR; so did it if a bit toggled between two reads */
	uint32_t lost = s->last.link & ~ev->link & (NPK_EP_LINK_INIT | NPK_EP_LINK_UP);

	*reset = false;
	if (lost || bounced(&s->last, ev))
		s->down = true;
	s->last = *ev;
	if (s->down && (ev->link & NPK_EP_LINK_INIT) && (ev->link & NPK_EP_LINK_UP)) {
		s->down = false;
		*reset = true;
	}
	return s->down ? 0 : 1;
}

static int epf_link_watch(struct npt_link *l, bool *reset, char *why, size_t len)
{
	struct epf_dev *d = dev_of(l);
	struct npk_ep_event ev;
	char bits[64];
	ssize_t n;
	int up;

	*reset = false;
	n = read(d->fd, &ev, sizeof(ev));
	if (n < 0 && errno == EAGAIN)
		return d->ls.down ? 0 : 1;           /* nothing changed */
	if (n != (ssize_t)sizeof(ev)) {
		snprintf(why, len, "epf: %s: link events: %s", l->spec.epf_path,
			 n < 0 ? strerror(errno) : "short read");
		d->ls.down = true;
		return n < 0 ? -errno : -EIO;
	}
	up = npt_epf_link_step(&d->ls, &ev, reset);
	if (*reset || !up)
		snprintf(why, len, "PCIe link %s (%s, %" PRIu32 " state changes)",
			 up ? "back up" : "down", link_bits(ev.link, bits, sizeof(bits)), ev.events);
	return up;
}

static void epf_describe(struct npt_link *l, char *buf, size_t len)
{
	struct epf_dev *d = dev_of(l);
	char bits[64];

	snprintf(buf, len, "epf:%s (%s, %" PRIu32 " ch, BAR%" PRIu32 " link part %" PRIu64
		 " bytes, %s, %s %" PRIu32 " vectors)", l->spec.epf_path,
		 l->win_shadow ? (d->info.dma == NPK_EP_DMA_ENGINE ? "host window by DMA offered" :
				  "host window by CPU copy offered") : "BAR-only", l->lay.nchannels,
		 d->info.bar, l->bar_size, link_bits(d->info.link, bits, sizeof(bits)),
		 d->info.msix_vectors ? "MSI-X" : "MSI", d->nvec);
}

const struct npt_backend_ops npt_epf_ops = {
	.name = "epf",
	.map_bar = epf_map_bar,
	.map_window = epf_map_window,
	.unmap_window = epf_unmap_window,
	.close = epf_close,
	.reg_path = NULL,         /* EP only */
	.notify = epf_notify,
	.wait_fd = NULL,          /* nothing rings the EP: it polls its BAR */
	.wait_ack = NULL,
	.link_watch = epf_link_watch,
	.describe = epf_describe,
};

/* ---- the epf DMA engine: NPK_EP_IOC_DMA between a channel's BAR shadow and
 * its host-polled area in the window ----------------------------------------- */
struct npt_dma {
	struct npt_link *l;
	struct epf_dev *d;
	uint64_t hp_bar;            /* BAR region offset of the channel's shadow */
	uint64_t hp_bus;            /* bus address of its host-polled area */
	uint32_t hp_size;
	uint32_t *done;             /* cookies of finished transfers, in order */
	uint32_t mask, head, tail;
};

static int epf_dma_open(struct npt_chan *c, struct npt_dma **out)
{
	struct npt_link *l = c->link;
	struct npt_dma *e = calloc(1, sizeof(*e));
	unsigned n = 1;

	if (!e)
		return -ENOMEM;
	while (n < c->n)
		n <<= 1;
	e->done = c->win ? calloc(n, sizeof(*e->done)) : NULL;
	if (!e->done) {
		free(e);
		return c->win ? -ENOMEM : -EINVAL;   /* the engine serves a window */
	}
	e->mask = n - 1;
	e->l = l;
	e->d = dev_of(l);
	e->hp_bar = l->lay.chan_base + (uint64_t)c->idx * l->lay.chan_stride + l->lay.hp_offset;
	e->hp_bus = c->win->bus + (uint64_t)c->idx * c->win->stride;
	/* the channel's part of the window: a host may have shrunk the payload
	 * areas to fit its window (docs/transport.md 3.1) */
	e->hp_size = l->lay.payload_offset + c->data_size;
	*out = e;
	return 0;
}

/* One transfer of [win_off, win_off + len) of the area, rounded out to the
 * device's alignment (the shadow mirrors the window byte for byte, so the
 * extra bytes are the window's own; hp_size is a page multiple, so the
 * rounded range stays in the area), in pieces of at most max_xfer. */
static int epf_xfer(struct npt_dma *e, uint32_t dir, const void *local, uint64_t win_off, uint32_t len)
{
	uint32_t a = e->d->info.dma_align, chunk = e->d->info.max_xfer & ~(a - 1);
	uint64_t pos = win_off & ~(uint64_t)(a - 1);
	uint64_t end = (win_off + len + a - 1) & ~(uint64_t)(a - 1);

	if ((const uint8_t *)local != e->l->bar + e->hp_bar + win_off || end > e->hp_size)
		return -EINVAL;     /* not the channel's shadow, or beyond its area */
	while (pos < end) {
		struct npk_ep_dma x = {
			.dir = dir, .region = NPK_EP_REGION_BAR, .offset = e->hp_bar + pos,
			.host_addr = e->hp_bus + pos,
			.len = (uint32_t)(end - pos < chunk ? end - pos : chunk),
		};

		if (ioctl(e->d->fd, NPK_EP_IOC_DMA, &x))
			return -errno;
		pos += x.len;
	}
	return 0;
}

static int epf_dma_submit(struct npt_dma *e, enum npt_dma_dir dir, void *local, uint64_t win_off,
			  uint32_t len, uint32_t cookie)
{
	int r;

	if (e->tail - e->head > e->mask)
		return -EAGAIN;
	r = epf_xfer(e, dir == NPT_DMA_TO_HOST ? NPK_EP_DMA_TO_HOST : NPK_EP_DMA_FROM_HOST,
		     local, win_off, len);
	if (r)
		return r;
	e->done[e->tail++ & e->mask] = cookie;
	return 0;
}

static int epf_dma_poll(struct npt_dma *e, uint32_t *cookies, unsigned max)
{
	unsigned n = 0;

	while (n < max && e->head != e->tail)
		cookies[n++] = e->done[e->head++ & e->mask];
	return (int)n;
}

static int epf_dma_write(struct npt_dma *e, const void *local, uint64_t win_off, uint32_t len)
{
	return epf_xfer(e, NPK_EP_DMA_TO_HOST, local, win_off, len);
}

static void epf_dma_close(struct npt_dma *e)
{
	if (!e)
		return;
	free(e->done);
	free(e);
}

const struct npt_dma_ops npt_dma_epf_ops = {
	.name = "epf",
	.open = epf_dma_open,
	.submit = epf_dma_submit,
	.poll = epf_dma_poll,
	.write = epf_dma_write,
	.close = epf_dma_close,
};

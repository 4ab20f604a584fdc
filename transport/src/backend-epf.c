/* The EP kernel-module backend (epf:/dev/nbd-pcie-ep<N>): the BAR is the
 * endpoint function's memory, mapped through the pci-epf-nbd character
 * device (docs/kmod.md); the physical link state comes from the device's
 * read() events; notifications are MSI-X (or MSI) interrupts the module
 * raises on the host.
 *
 * Modes: BAR-only. The host-window mode needs every EP store into the
 * host-polled area to become an NPK_EP_IOC_DMA (the EP cannot map host
 * memory); docs/transport.md "EP kernel-module backend" has the design. Until
 * then this backend offers no NPL_F_HOST_WINDOW, so hosts run BAR-only.
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
	struct npk_ep_event last;   /* link state at the previous watch */
	bool down;                  /* a link loss was seen and the link is not back yet */
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
	n = read(d->fd, &d->last, sizeof(d->last));
	if (n != (ssize_t)sizeof(d->last)) {
		r = n < 0 ? -errno : -EIO;
		npt_seterr(err, errlen, "epf: %s: reading the link state: %s", path,
			   n < 0 ? strerror(errno) : "short read");
		return r;
	}
	d->nvec = d->info.msix_vectors ? d->info.msix_vectors : d->info.msi_vectors;
	l->dev_channels = d->info.nchannels;
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

static int epf_link_watch(struct npt_link *l, bool *reset, char *why, size_t len)
{
	struct epf_dev *d = dev_of(l);
	struct npk_ep_event ev;
	uint32_t lost;
	char bits[64];
	ssize_t n;

	*reset = false;
	n = read(d->fd, &ev, sizeof(ev));
	if (n < 0 && errno == EAGAIN)
		return d->down ? 0 : 1;              /* nothing changed */
	if (n != (ssize_t)sizeof(ev)) {
		snprintf(why, len, "epf: %s: link events: %s", l->spec.epf_path,
			 n < 0 ? strerror(errno) : "short read");
		d->down = true;
		return n < 0 ? -errno : -EIO;
	}
	/* INIT lost (unbind, PERST#) or UP lost (link down): the host lost the
	 * BAR; so did it if either bit toggled between two reads */
	lost = d->last.link & ~ev.link & (NPK_EP_LINK_INIT | NPK_EP_LINK_UP);
	if (lost || bounced(&d->last, &ev))
		d->down = true;
	d->last = ev;
	if (d->down && (ev.link & NPK_EP_LINK_INIT) && (ev.link & NPK_EP_LINK_UP)) {
		d->down = false;
		*reset = true;
		snprintf(why, len, "PCIe link back up (%s, %" PRIu32 " state changes)",
			 link_bits(ev.link, bits, sizeof(bits)), ev.events);
		return 1;
	}
	if (d->down) {
		snprintf(why, len, "PCIe link down (%s, %" PRIu32 " state changes)",
			 link_bits(ev.link, bits, sizeof(bits)), ev.events);
		return 0;
	}
	return 1;
}

static void epf_describe(struct npt_link *l, char *buf, size_t len)
{
	struct epf_dev *d = dev_of(l);
	char bits[64];

	snprintf(buf, len, "epf:%s (BAR-only, %" PRIu32 " ch, BAR%" PRIu32 " link part %" PRIu64
		 " bytes, %s, %s %" PRIu32 " vectors)", l->spec.epf_path, l->lay.nchannels,
		 d->info.bar, l->bar_size, link_bits(d->last.link, bits, sizeof(bits)),
		 d->info.msix_vectors ? "MSI-X" : "MSI", d->nvec);
}

const struct npt_backend_ops npt_epf_ops = {
	.name = "epf",
	.map_bar = epf_map_bar,
	.map_window = NULL,       /* BAR-only (see the top of this file) */
	.unmap_window = NULL,
	.close = epf_close,
	.reg_path = NULL,         /* EP only */
	.notify = epf_notify,
	.wait_fd = NULL,          /* nothing rings the EP: it polls its BAR */
	.wait_ack = NULL,
	.link_watch = epf_link_watch,
	.describe = epf_describe,
};

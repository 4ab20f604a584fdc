/* The host pci backend. Two modes, chosen per device at open:
 *  - module: the nbd-pcie-host kernel module is bound to the function
 *    (/sys/bus/pci/devices/BDF/chardev names its /dev node): the BAR is
 *    mapped through it (write-combined), the host window is its
 *    DMA-coherent buffer at the bus address it reports, and each channel
 *    sleeps on its MSI-X vector through a file of its own;
 *  - libpciaccess: no module bound: the BAR is mapped through sysfs
 *    (write-combined where the platform allows), no window (BAR-only), no
 *    interrupts.
 * The link's describe string says which mode and why (docs/transport.md
 * "Link strings"). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pciaccess.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define SYSFS_PCI "/sys/bus/pci/devices"

struct pci_state {
	unsigned domain, bus, dev, func;
	char bdf[16];                /* DDDD:BB:DD.F */
	struct pci_device *pdev;     /* libpciaccess mode */
	bool sys_init;               /* pci_system_init() done */
	int fd;                      /* module mode: the /dev node, else -1 */
	char node[80];
	struct npk_host_info info;
	pthread_mutex_t lock;        /* wfd[] opening */
	int wfd[NPT_MAX_CHANNELS];   /* per-channel interrupt files, -1 = not open yet */
};

static struct pci_state *st(struct npt_link *l)
{
	return l->pci_dev;
}

static struct pci_device *find_device(const struct npt_spec *s)
{
	struct pci_device_iterator *it;
	struct pci_device *d;

	if (s->pci_by_id) {
		struct pci_id_match m = {
			.vendor_id = s->vendor, .device_id = s->device,
			.subvendor_id = PCI_MATCH_ANY, .subdevice_id = PCI_MATCH_ANY,
		};
		it = pci_id_match_iterator_create(&m);
	} else {
		struct pci_slot_match m = {
			.domain = s->domain, .bus = s->bus, .dev = s->dev, .func = s->func,
		};
		it = pci_slot_match_iterator_create(&m);
	}
	if (!it)
		return NULL;
	d = pci_device_next(it);
	pci_iterator_destroy(it);
	return d;
}

/* The driver bound to the function ("" if none). */
static void bound_driver(const struct pci_state *ps, char *buf, size_t len)
{
	char path[128], target[256];
	ssize_t n;
	const char *b;

	snprintf(path, sizeof(path), SYSFS_PCI "/%s/driver", ps->bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0) {
		buf[0] = '\0';
		return;
	}
	target[n] = '\0';
	b = strrchr(target, '/');
	b = b ? b + 1 : target;
	n = (ssize_t)strlen(b);
	if ((size_t)n >= len)
		n = (ssize_t)len - 1;
	memcpy(buf, b, (size_t)n);
	buf[n] = '\0';
}

/* Module mode if the module is bound: 1 and ps->fd open; 0 if it is not
 * bound (l->bnote says so); -errno if it is bound but unusable. */
static int module_open(struct npt_link *l, struct pci_state *ps, char *err, size_t errlen)
{
	char path[128], name[64], drv[64];
	FILE *f;

	snprintf(path, sizeof(path), SYSFS_PCI "/%s/chardev", ps->bdf);
	f = fopen(path, "re");
	if (!f || !fgets(name, sizeof(name), f) || !name[0] || name[0] == '\n') {
		if (f)
			fclose(f);
		bound_driver(ps, drv, sizeof(drv));
		snprintf(l->bnote, sizeof(l->bnote), "libpciaccess: %s has %s%s, not nbd-pcie-host",
			 ps->bdf, drv[0] ? "driver " : "no driver", drv);
		return 0;
	}
	fclose(f);
	name[strcspn(name, "\n")] = '\0';
	snprintf(ps->node, sizeof(ps->node), "/dev/%s", name);
	ps->fd = open(ps->node, O_RDWR | O_CLOEXEC);
	if (ps->fd < 0) {
		int e = errno;

		npt_seterr(err, errlen, "pci: %s is bound to nbd-pcie-host but %s cannot be opened: %s",
			   ps->bdf, ps->node, strerror(e));
		return -e;
	}
	if (ioctl(ps->fd, NPK_HOST_IOC_INFO, &ps->info)) {
		int e = errno;

		npt_seterr(err, errlen, "pci: %s: NPK_HOST_IOC_INFO: %s", ps->node, strerror(e));
		return -e;
	}
	if (ps->info.api_version != NPK_API_VERSION) {
		npt_seterr(err, errlen, "pci: %s speaks module API %" PRIu32 ", this side %d",
			   ps->node, ps->info.api_version, NPK_API_VERSION);
		return -EPROTO;
	}
	if (ps->info.nvectors > NPK_HOST_MAX_VECTORS)
		ps->info.nvectors = NPK_HOST_MAX_VECTORS;
	snprintf(l->bnote, sizeof(l->bnote), "through %s (nbd-pcie-host), %" PRIu32 " interrupt vector%s%s",
		 ps->node, ps->info.nvectors, ps->info.nvectors == 1 ? "" : "s",
		 ps->info.region[NPK_HOST_REGION_WIN].size ? "" :
		 ", no window (module parameter win_size=0, or its allocation failed: dmesg)");
	return 1;
}

static int module_map_bar(struct npt_link *l, struct pci_state *ps, char *err, size_t errlen)
{
	int bar = l->spec.bar < 0 ? (int)ps->info.shm_bar : l->spec.bar;
	uint64_t size;
	void *p;

	if (bar < 0 || bar >= NPK_HOST_NREGIONS - 1 || !ps->info.region[bar].size) {
		npt_seterr(err, errlen, "pci: BAR%d of %s is not mappable through %s (no memory BAR there)",
			   bar, ps->bdf, ps->node);
		return -EINVAL;
	}
	size = ps->info.region[bar].size;
	if (size > SIZE_MAX) {
		npt_seterr(err, errlen, "pci: BAR%d of %s: %" PRIu64 " bytes beyond the address space",
			   bar, ps->bdf, size);
		return -EFBIG;
	}
	p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, ps->fd,
		 (off_t)NPK_MMAP_OFFSET(NPK_HOST_REGION_BAR(bar)));
	if (p == MAP_FAILED) {
		int e = errno;

		npt_seterr(err, errlen, "pci: mapping BAR%d (%" PRIu64 " bytes) of %s through %s: %s",
			   bar, size, ps->bdf, ps->node, strerror(e));
		return -e;
	}
	/* The module maps the link's BAR write-combined (others uncached, for
	 * which the fence is merely redundant). */
	l->bar_wc = true;
	l->bar = p;
	l->bar_map = p;
	l->bar_size = size;
	l->bar_maplen = (size_t)size;
	return 0;
}

static int lib_map_bar(struct npt_link *l, struct pci_state *ps, char *err, size_t errlen)
{
	struct pci_device *d = ps->pdev;
	int r, bar = l->spec.bar, i;
	void *p = NULL;

	r = pci_device_probe(d);
	if (r) {
		npt_seterr(err, errlen, "pci: probing %s: %s", ps->bdf, strerror(r));
		return -r;
	}
	if (bar < 0) {
		for (i = 0; i < 6; i++)
			if (!d->regions[i].is_IO && d->regions[i].size &&
			    (bar < 0 || d->regions[i].size > d->regions[bar].size))
				bar = i;
		if (bar < 0) {
			npt_seterr(err, errlen, "pci: %s has no memory BAR", ps->bdf);
			return -ENODEV;
		}
	} else if (d->regions[bar].is_IO || !d->regions[bar].size) {
		npt_seterr(err, errlen, "pci: BAR%d of %s is not a memory BAR", bar, ps->bdf);
		return -EINVAL;
	}
	r = pci_device_map_range(d, d->regions[bar].base_addr, d->regions[bar].size,
				 PCI_DEV_MAP_FLAG_WRITABLE | PCI_DEV_MAP_FLAG_WRITE_COMBINE, &p);
	if (!r) {
		l->bar_wc = true;
	} else {
		r = pci_device_map_range(d, d->regions[bar].base_addr, d->regions[bar].size,
					 PCI_DEV_MAP_FLAG_WRITABLE, &p);
	}
	if (r) {
		npt_seterr(err, errlen, "pci: mapping BAR%d (%" PRIu64 " bytes) of %s: %s",
			   bar, (uint64_t)d->regions[bar].size, ps->bdf, strerror(r));
		return -r;
	}
	l->bar = p;
	l->bar_map = p;
	l->bar_size = d->regions[bar].size;
	l->bar_maplen = (size_t)l->bar_size;
	return 0;
}

static void pci_close(struct npt_link *l)
{
	struct pci_state *ps = st(l);

	if (!ps)
		return;
	if (l->bar_map) {
		if (ps->fd >= 0)
			munmap(l->bar_map, l->bar_maplen);
		else
			pci_device_unmap_range(ps->pdev, l->bar_map, l->bar_maplen);
		l->bar_map = NULL;
		l->bar = NULL;
	}
	for (unsigned i = 0; i < NPT_MAX_CHANNELS; i++)
		if (ps->wfd[i] >= 0)
			close(ps->wfd[i]);
	if (ps->fd >= 0)
		close(ps->fd);
	if (ps->sys_init)
		pci_system_cleanup();
	pthread_mutex_destroy(&ps->lock);
	free(ps);
	l->pci_dev = NULL;
}

static int pci_map_bar(struct npt_link *l, uint64_t size, char *err, size_t errlen)
{
	const struct npt_spec *s = &l->spec;
	struct pci_state *ps;
	struct pci_device *d;
	int r;

	(void)size;
	if (l->role != NPT_ROLE_HOST) {
		npt_seterr(err, errlen, "pci: a pci: link is host-side only; the EP uses shm: or epf:");
		return -EINVAL;
	}
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	ps->fd = -1;
	for (unsigned i = 0; i < NPT_MAX_CHANNELS; i++)
		ps->wfd[i] = -1;
	pthread_mutex_init(&ps->lock, NULL);
	l->pci_dev = ps;
	r = pci_system_init();
	if (r) {
		npt_seterr(err, errlen, "pci: cannot initialise libpciaccess: %s", strerror(r));
		r = -r;
		goto fail;
	}
	ps->sys_init = true;
	d = find_device(s);
	if (!d) {
		if (s->pci_by_id)
			npt_seterr(err, errlen, "pci: no device %04x:%04x", s->vendor, s->device);
		else
			npt_seterr(err, errlen, "pci: no device %04x:%02x:%02x.%x",
				   s->domain, s->bus, s->dev, s->func);
		r = -ENODEV;
		goto fail;
	}
	ps->pdev = d;
	ps->domain = d->domain;
	ps->bus = d->bus;
	ps->dev = d->dev;
	ps->func = d->func;
	snprintf(ps->bdf, sizeof(ps->bdf), "%04x:%02x:%02x.%x", ps->domain & 0xffff,
		 ps->bus & 0xff, ps->dev & 0x1f, ps->func & 7);
	r = module_open(l, ps, err, errlen);
	if (r < 0)
		goto fail;
	if (r > 0) {
		/* libpciaccess only found the function: the module does the rest */
		ps->pdev = NULL;
		pci_system_cleanup();
		ps->sys_init = false;
		r = module_map_bar(l, ps, err, errlen);
	} else {
		r = lib_map_bar(l, ps, err, errlen);
	}
	if (r)
		goto fail;
	return 0;
fail:
	pci_close(l);
	return r;
}

static uint64_t pci_win_max(struct npt_link *l)
{
	struct pci_state *ps = st(l);

	return ps && ps->fd >= 0 ? ps->info.region[NPK_HOST_REGION_WIN].size : 0;
}

/* The module's window: `size` bytes of it from its start. A host attaching
 * anew gets it zeroed (a previous host's rings are no business of the EP's
 * new generation); a joining one checks it is this device's window. */
static int pci_map_window(struct npt_link *l, uint64_t *bus, uint64_t size,
			  struct npt_winmap **out, char *err, size_t errlen)
{
	struct pci_state *ps = st(l);
	const struct npk_region *win = &ps->info.region[NPK_HOST_REGION_WIN];
	struct npt_winmap *w;
	void *p;

	if (ps->fd < 0 || !win->size) {
		npt_seterr(err, errlen, "pci: %s has no host window (nbd-pcie-host not bound or win_size=0)",
			   ps->bdf);
		return -ENODEV;
	}
	if (size > win->size || size > SIZE_MAX) {
		npt_seterr(err, errlen, "pci: window of %" PRIu64 " bytes beyond the %" PRIu64
			   " bytes %s provides (module parameter win_size)", size, (uint64_t)win->size,
			   ps->node);
		return -ENOSPC;
	}
	if (l->win_join && *bus != win->bus_addr) {
		npt_seterr(err, errlen, "pci: the published window at bus 0x%" PRIx64 " is not %s's "
			   "window at bus 0x%" PRIx64, *bus, ps->node, (uint64_t)win->bus_addr);
		return -EBUSY;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, ps->fd,
		 (off_t)NPK_MMAP_OFFSET(NPK_HOST_REGION_WIN));
	if (p == MAP_FAILED) {
		int e = errno;

		npt_seterr(err, errlen, "pci: mapping the %" PRIu64 "-byte window of %s: %s",
			   size, ps->node, strerror(e));
		free(w);
		return -e;
	}
	if (!l->win_join)
		memset(p, 0, (size_t)size);
	*bus = win->bus_addr;
	w->refs = 1;
	w->base = p;
	w->size = size;
	w->map = p;
	w->maplen = (size_t)size;
	*out = w;
	return 0;
}

static void pci_unmap_window(struct npt_link *l, struct npt_winmap *w)
{
	(void)l;
	if (!w)
		return;
	if (w->map)
		munmap(w->map, w->maplen);
	free(w);
}

/* Channel chan sleeps on vector chan mod nvectors (the EP rings the same,
 * docs/transport.md "Notifications"), through a file of its own: the
 * module counts per file, so no thread consumes another's interrupt. */
static int pci_wait_fd(struct npt_link *l, unsigned chan)
{
	struct pci_state *ps = st(l);
	uint32_t mask;
	int fd;

	if (!ps || ps->fd < 0 || !ps->info.nvectors || chan >= NPT_MAX_CHANNELS)
		return -1;
	fd = __atomic_load_n(&ps->wfd[chan], __ATOMIC_ACQUIRE);
	if (fd >= 0)
		return fd;
	pthread_mutex_lock(&ps->lock);
	fd = ps->wfd[chan];
	if (fd < 0) {
		fd = open(ps->node, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		mask = 1u << (chan % ps->info.nvectors);
		if (fd >= 0 && ioctl(fd, NPK_HOST_IOC_SET_VECTORS, &mask)) {
			close(fd);
			fd = -1;
		}
		if (fd >= 0)
			__atomic_store_n(&ps->wfd[chan], fd, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&ps->lock);
	return fd;
}

static void pci_wait_ack(struct npt_link *l, unsigned chan)
{
	struct pci_state *ps = st(l);
	uint64_t n;
	ssize_t r;
	int fd;

	if (!ps || chan >= NPT_MAX_CHANNELS)
		return;
	fd = __atomic_load_n(&ps->wfd[chan], __ATOMIC_ACQUIRE);
	if (fd < 0)
		return;
	/* -EAGAIN: nothing to take; -ENODEV: unbound (the link fails anyway) */
	r = read(fd, &n, sizeof(n));
	(void)r;
}

/* The channel's handle is gone: its interrupt file goes with it (a new
 * handle of the channel opens a fresh one, counting from then on). */
static void pci_wait_put(struct npt_link *l, unsigned chan)
{
	struct pci_state *ps = st(l);
	int fd;

	if (!ps || chan >= NPT_MAX_CHANNELS)
		return;
	pthread_mutex_lock(&ps->lock);
	fd = ps->wfd[chan];
	__atomic_store_n(&ps->wfd[chan], -1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ps->lock);
	if (fd >= 0)
		close(fd);
}

/* Host processes of one PCI link meet in a file named after the function:
 * $NPT_RUNDIR, else /run, else /tmp (a minimal guest may have only /tmp). */
static void pci_reg_path(struct npt_link *l, char *buf, size_t len)
{
	const struct pci_state *ps = st(l);
	const char *dir = getenv("NPT_RUNDIR");

	if (!dir || !*dir)
		dir = access("/run", W_OK) == 0 ? "/run" : "/tmp";
	snprintf(buf, len, "%s/nbd-pcie-%s.hosts", dir, ps ? ps->bdf : "0000:00:00.0");
}

const struct npt_backend_ops npt_pci_ops = {
	.name = "pci",
	.map_bar = pci_map_bar,
	.map_window = pci_map_window,
	.unmap_window = pci_unmap_window,
	.win_max = pci_win_max,
	.close = pci_close,
	.reg_path = pci_reg_path,
	.notify = NULL,          /* no host->EP doorbell: the EP polls */
	.wait_fd = pci_wait_fd,
	.wait_ack = pci_wait_ack,
	.wait_put = pci_wait_put,
};

/* The host pci backend: maps the EP's BAR with libpciaccess (write-combined
 * where the platform allows). No host window until the host kernel module
 * exists, so links over it run in BAR-only mode. */
#include <errno.h>
#include <inttypes.h>
#include <pciaccess.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

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

static int pci_map_bar(struct npt_link *l, uint64_t size, char *err, size_t errlen)
{
	const struct npt_spec *s = &l->spec;
	struct pci_device *d;
	void *p = NULL;
	int r, bar = s->bar, i;

	if (l->role != NPT_ROLE_HOST) {
		npt_seterr(err, errlen, "pci: a pci: link is host-side only; the EP uses shm: or epf:");
		return -EINVAL;
	}
	r = pci_system_init();
	if (r) {
		npt_seterr(err, errlen, "pci: cannot initialise libpciaccess: %s", strerror(r));
		return -r;
	}
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
	r = pci_device_probe(d);
	if (r) {
		npt_seterr(err, errlen, "pci: probing %04x:%02x:%02x.%x: %s",
			   d->domain, d->bus, d->dev, d->func, strerror(r));
		r = -r;
		goto fail;
	}
	if (bar < 0) {
		for (i = 0; i < 6; i++)
			if (!d->regions[i].is_IO && d->regions[i].size &&
			    (bar < 0 || d->regions[i].size > d->regions[bar].size))
				bar = i;
		if (bar < 0) {
			npt_seterr(err, errlen, "pci: %04x:%02x:%02x.%x has no memory BAR",
				   d->domain, d->bus, d->dev, d->func);
			r = -ENODEV;
			goto fail;
		}
	} else if (d->regions[bar].is_IO || !d->regions[bar].size) {
		npt_seterr(err, errlen, "pci: BAR%d of %04x:%02x:%02x.%x is not a memory BAR",
			   bar, d->domain, d->bus, d->dev, d->func);
		r = -EINVAL;
		goto fail;
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
		npt_seterr(err, errlen, "pci: mapping BAR%d (%" PRIu64 " bytes) of %04x:%02x:%02x.%x: %s",
			   bar, (uint64_t)d->regions[bar].size, d->domain, d->bus, d->dev, d->func,
			   strerror(r));
		r = -r;
		goto fail;
	}
	l->pci_dev = d;
	l->bar = p;
	l->bar_map = p;
	l->bar_size = d->regions[bar].size;
	l->bar_maplen = (size_t)l->bar_size;
	return 0;
fail:
	pci_system_cleanup();
	return r;
}

static void pci_close(struct npt_link *l)
{
	if (l->bar_map) {
		pci_device_unmap_range(l->pci_dev, l->bar_map, l->bar_maplen);
		l->bar_map = NULL;
		l->bar = NULL;
	}
	if (l->pci_dev) {
		l->pci_dev = NULL;
		pci_system_cleanup();
	}
}

/* Host processes of one PCI link meet in a file named after the function:
 * $NPT_RUNDIR, else /run, else /tmp (a minimal guest may have only /tmp). */
static void pci_reg_path(struct npt_link *l, char *buf, size_t len)
{
	const struct pci_device *d = l->pci_dev;
	const char *dir = getenv("NPT_RUNDIR");

	if (!dir || !*dir)
		dir = access("/run", W_OK) == 0 ? "/run" : "/tmp";
	snprintf(buf, len, "%s/nbd-pcie-%04x:%02x:%02x.%x.hosts", dir,
		 d ? d->domain : 0, d ? d->bus : 0, d ? d->dev : 0, d ? d->func : 0);
}

const struct npt_backend_ops npt_pci_ops = {
	.name = "pci",
	.map_bar = pci_map_bar,
	.map_window = NULL,      /* BAR-only until the host kernel module exists */
	.unmap_window = NULL,
	.close = pci_close,
	.reg_path = pci_reg_path,
};

// SPDX-License-Identifier: GPL-2.0
/*
 * pci-epf-nbd: PCI endpoint function driver for nbd-pcie-server.
 *
 * Configured through configfs (docs/kmod.md): the standard function
 * attributes (vendorid, deviceid, msi_interrupts, msix_interrupts, ...) and
 * this driver's "nbd" group (bar, bar_size, channels, stage_size, cfs.c).
 * On bind it computes the BAR layout (shared/npk-check.c), allocates the BAR
 * memory, and once the controller is initialised writes the config header,
 * sets the BAR and the MSI/MSI-X capabilities. Link and init events become
 * read()/poll() events of /dev/nbd-pcie-ep<N> (cdev.c).
 */
#include <linux/dma-mapping.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "internal.h"

/* Defaults of a new function (docs/kmod.md). IDs as nbd-pcie-host expects;
 * class "mass storage, other". BAR0 of 16 MiB: the size the QEMU guest tests
 * give the link (the server fits its layout into it) and an allocation the
 * CMA pools of common EP SoCs satisfy; the 4 MiB staging buffer holds one
 * max_xfer payload. */
#define NPE_DEFAULT_VENDOR   0x1234
#define NPE_DEFAULT_DEVICE   0x4e42
#define NPE_DEFAULT_BAR_SIZE (16u << 20)
#define NPE_DEFAULT_CHANNELS 4
#define NPE_DEFAULT_STAGE    (4u << 20)

void npe_event(struct npe_func *f, u32 set, u32 clear)
{
	unsigned long flags;
	u32 old;

	spin_lock_irqsave(&f->ev_lock, flags);
	old = f->link;
	f->link = (f->link & ~clear) | set;
	if (f->link != old)
		f->events++;
	spin_unlock_irqrestore(&f->ev_lock, flags);
	wake_up_interruptible_all(&f->wq);
}

static void npe_func_free(struct kref *ref)
{
	kfree(container_of(ref, struct npe_func, ref));
}

void npe_func_put(struct npe_func *f)
{
	kref_put(&f->ref, npe_func_free);
}

/* The controller is ready for configuration (at bind, or at its init
 * event): header, BAR, interrupt capabilities. */
static void npe_init_work(struct work_struct *work)
{
	struct npe_func *f = container_of(work, struct npe_func, init_work);
	struct pci_epf *epf = f->epf;
	struct pci_epc *epc;
	u32 bar;
	int r;

	down_read(&f->lock);
	if (!f->bound || f->dead)
		goto out;
	epc = epf->epc;
	bar = f->cfg.bar;
	r = pci_epc_write_header(epc, epf->func_no, epf->vfunc_no, epf->header);
	if (r) {
		dev_err(&epf->dev, "init: writing the config header failed: %d\n", r);
		goto out;
	}
	r = pci_epc_set_bar(epc, epf->func_no, epf->vfunc_no, &epf->bar[bar]);
	if (r) {
		dev_err(&epf->dev, "init: setting BAR%u (%zu bytes) failed: %d\n", bar,
			epf->bar[bar].size, r);
		goto out;
	}
	if (f->cfg.msi) {
		r = pci_epc_set_msi(epc, epf->func_no, epf->vfunc_no, f->cfg.msi);
		if (r) {
			dev_err(&epf->dev, "init: msi_interrupts %u refused: %d\n", f->cfg.msi, r);
			goto clear_bar;
		}
	}
	if (f->cfg.msix) {
		r = pci_epc_set_msix(epc, epf->func_no, epf->vfunc_no, f->cfg.msix, bar,
				     f->layout.msix_table_off);
		if (r) {
			dev_err(&epf->dev, "init: msix_interrupts %u refused: %d\n", f->cfg.msix, r);
			goto clear_bar;
		}
	}
	npe_event(f, NPK_EP_LINK_INIT, 0);
	goto out;

clear_bar:
	pci_epc_clear_bar(epc, epf->func_no, epf->vfunc_no, &epf->bar[bar]);
out:
	up_read(&f->lock);
}

static void npe_caps(const struct pci_epc_features *feat, struct npk_epc_caps *caps)
{
	int i;

	memset(caps, 0, sizeof(*caps));
	caps->msi_capable = feat->msi_capable;
	caps->msix_capable = feat->msix_capable;
	caps->align = feat->align;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
	for (i = 0; i < PCI_STD_NUM_BARS; i++) {
		if (feat->bar[i].type == BAR_RESERVED)
			caps->reserved_bar_mask |= 1u << i;
		if (feat->bar[i].type == BAR_FIXED)
			caps->fixed_size[i] = feat->bar[i].fixed_size;
		if (feat->bar[i].only_64bit)
			caps->fixed_64bit_mask |= 1u << i;
	}
#else
	caps->reserved_bar_mask = feat->reserved_bar;
	caps->fixed_64bit_mask = feat->bar_fixed_64bit;
	for (i = 0; i < PCI_STD_NUM_BARS; i++)
		caps->fixed_size[i] = feat->bar_fixed_size[i];
#endif
}

static void *npe_alloc_space(struct pci_epf *epf, size_t size, enum pci_barno bar,
			     const struct pci_epc_features *feat)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
	return pci_epf_alloc_space(epf, size, bar, feat, PRIMARY_INTERFACE);
#else
	return pci_epf_alloc_space(epf, size, bar, feat->align, PRIMARY_INTERFACE);
#endif
}

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 4, 0)
/* Called in atomic context (atomic notifier chain): defer the init. */
static int npe_notifier(struct notifier_block *nb, unsigned long val, void *data)
{
	struct npe_func *f = container_of(nb, struct npe_func, nb);

	switch (val) {
	case CORE_INIT:
		schedule_work(&f->init_work);
		return NOTIFY_OK;
	case LINK_UP:
		npe_event(f, NPK_EP_LINK_UP, 0);
		return NOTIFY_OK;
	default:
		return NOTIFY_DONE;
	}
}
#else
static int npe_ev_init(struct pci_epf *epf)
{
	schedule_work(&((struct npe_func *)epf_get_drvdata(epf))->init_work);
	return 0;
}

static int npe_ev_link_up(struct pci_epf *epf)
{
	npe_event(epf_get_drvdata(epf), NPK_EP_LINK_UP, 0);
	return 0;
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
static int npe_ev_link_down(struct pci_epf *epf)
{
	npe_event(epf_get_drvdata(epf), 0, NPK_EP_LINK_UP | NPK_EP_LINK_BME);
	return 0;
}

static int npe_ev_bme(struct pci_epf *epf)
{
	npe_event(epf_get_drvdata(epf), NPK_EP_LINK_BME, 0);
	return 0;
}
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
/* PERST# asserted: the controller loses its configuration. */
static void npe_ev_deinit(struct pci_epf *epf)
{
	struct npe_func *f = epf_get_drvdata(epf);

	cancel_work_sync(&f->init_work);
	down_read(&f->lock);
	if (f->bound && (f->link & NPK_EP_LINK_INIT))
		pci_epc_clear_bar(epf->epc, epf->func_no, epf->vfunc_no, &epf->bar[f->cfg.bar]);
	up_read(&f->lock);
	npe_event(f, 0, NPK_EP_LINK_INIT | NPK_EP_LINK_UP | NPK_EP_LINK_BME);
}
#endif

static const struct pci_epc_event_ops npe_event_ops = {
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
	.epc_init = npe_ev_init,
	.epc_deinit = npe_ev_deinit,
#else
	.core_init = npe_ev_init,
#endif
	.link_up = npe_ev_link_up,
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
	.link_down = npe_ev_link_down,
	.bme = npe_ev_bme,
#endif
};
#endif

static void npe_free_memory(struct npe_func *f)
{
	struct pci_epf *epf = f->epf;

	if (f->stage)
		dma_free_coherent(f->dma_dev, f->stage_size, f->stage, f->stage_dma);
	f->stage = NULL;
	f->stage_size = 0;
	if (f->bar_mem)
		pci_epf_free_space(epf, f->bar_mem, f->cfg.bar, PRIMARY_INTERFACE);
	f->bar_mem = NULL;
}

static int npe_bind(struct pci_epf *epf)
{
	struct npe_func *f = epf_get_drvdata(epf);
	struct pci_epc *epc = epf->epc;
	const struct pci_epc_features *feat;
	struct npk_epc_caps caps;
	struct npk_epf_layout lay;
	char msg[NPE_MSG_LEN];
	int r;

	feat = pci_epc_get_features(epc, epf->func_no, epf->vfunc_no);
	if (!feat) {
		dev_err(&epf->dev, "bind: controller %s reports no features\n", dev_name(&epc->dev));
		return -EOPNOTSUPP;
	}
	npe_caps(feat, &caps);

	down_write(&f->lock);
	f->cfg.vendor = epf->header->vendorid;
	f->cfg.device = epf->header->deviceid;
	f->cfg.msi = epf->msi_interrupts;
	f->cfg.msix = epf->msix_interrupts;
	r = npk_epf_compute_layout(&f->cfg, &caps, &lay, msg, sizeof(msg));
	if (r) {
		dev_err(&epf->dev, "bind: %s\n", msg);
		goto unlock;
	}
	f->layout = lay;
	f->dma_dev = epc->dev.parent;
	f->bar_mem = npe_alloc_space(epf, lay.bar_size, f->cfg.bar, feat);
	if (!f->bar_mem) {
		dev_err(&epf->dev, "bind: cannot allocate %llu bytes of BAR%u memory\n",
			lay.bar_size, f->cfg.bar);
		r = -ENOMEM;
		goto unlock;
	}
	/* Zeroed memory reads as NPL_EP_DOWN until the server writes a layout. */
	memset(f->bar_mem, 0, epf->bar[f->cfg.bar].size);
	if (lay.bar64)
		epf->bar[f->cfg.bar].flags |= PCI_BASE_ADDRESS_MEM_TYPE_64;
	/* Plain memory has no read side effects: prefetchable lets the host map
	 * it write-combined. Not with the MSI-X table in the same BAR. */
	if (!f->cfg.msix)
		epf->bar[f->cfg.bar].flags |= PCI_BASE_ADDRESS_MEM_PREFETCH;
	if (f->cfg.stage_size) {
		f->stage = dma_alloc_coherent(f->dma_dev, f->cfg.stage_size, &f->stage_dma,
					      GFP_KERNEL);
		if (!f->stage) {
			dev_err(&epf->dev, "bind: cannot allocate stage_size %llu bytes\n",
				f->cfg.stage_size);
			r = -ENOMEM;
			goto free;
		}
		f->stage_size = f->cfg.stage_size;
	}
	npe_dma_setup(f);
	f->bound = true;
	up_write(&f->lock);

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 4, 0)
	f->nb.notifier_call = npe_notifier;
	pci_epc_register_notifier(epc, &f->nb);
#endif
	/* Controllers without an init notifier are ready now; without a link
	 * notifier either, the link is taken as up (as pci-epf-test does). */
	if (!feat->core_init_notifier) {
		npe_init_work(&f->init_work);
		if (!feat->linkup_notifier)
			npe_event(f, NPK_EP_LINK_UP, 0);
	}
	dev_info(&epf->dev, "bound to %s: BAR%u %llu bytes (%llu for the link), %u channels, "
		 "MSI %u, MSI-X %u, stage %zu bytes\n", dev_name(&epc->dev), f->cfg.bar,
		 lay.bar_size, lay.shm_size, f->cfg.nchannels, f->cfg.msi, f->cfg.msix,
		 f->stage_size);
	return 0;

free:
	npe_free_memory(f);
unlock:
	up_write(&f->lock);
	return r;
}

static void npe_unbind(struct pci_epf *epf)
{
	struct npe_func *f = epf_get_drvdata(epf);
	struct pci_epc *epc = epf->epc;

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 4, 0)
	atomic_notifier_chain_unregister(&epc->notifier, &f->nb);
#endif
	cancel_work_sync(&f->init_work);
	/* Waits for transfers in flight (they hold the lock for reading). */
	down_write(&f->lock);
	f->bound = false;
	up_write(&f->lock);
	npe_cdev_zap_mappings(f);

	npe_dma_teardown(f);
	if (f->link & NPK_EP_LINK_INIT)
		pci_epc_clear_bar(epc, epf->func_no, epf->vfunc_no, &epf->bar[f->cfg.bar]);
	npe_free_memory(f);
	spin_lock_irq(&f->ev_lock);
	memset(&f->window, 0, sizeof(f->window));
	spin_unlock_irq(&f->ev_lock);
	npe_event(f, 0, NPK_EP_LINK_INIT | NPK_EP_LINK_UP | NPK_EP_LINK_BME);
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
static int npe_probe(struct pci_epf *epf, const struct pci_epf_device_id *id)
#else
static int npe_probe(struct pci_epf *epf)
#endif
{
	struct npe_func *f;
	int r;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	kref_init(&f->ref);
	f->epf = epf;
	f->header.vendorid = NPE_DEFAULT_VENDOR;
	f->header.deviceid = NPE_DEFAULT_DEVICE;
	f->header.baseclass_code = PCI_BASE_CLASS_STORAGE;
	f->header.subclass_code = 0x80;       /* "other mass storage controller" */
	f->header.interrupt_pin = PCI_INTERRUPT_INTA;
	f->cfg.bar = 0;
	f->cfg.bar_size = NPE_DEFAULT_BAR_SIZE;
	f->cfg.nchannels = NPE_DEFAULT_CHANNELS;
	f->cfg.stage_size = NPE_DEFAULT_STAGE;
	init_rwsem(&f->lock);
	spin_lock_init(&f->ev_lock);
	init_waitqueue_head(&f->wq);
	INIT_WORK(&f->init_work, npe_init_work);
	mutex_init(&f->dma_lock);
	mutex_init(&f->files_lock);
	INIT_LIST_HEAD(&f->files);

	epf->header = &f->header;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	epf->event_ops = &npe_event_ops;
#endif
	epf_set_drvdata(epf, f);
	r = npe_cdev_add(f);
	if (r) {
		epf_set_drvdata(epf, NULL);
		npe_func_put(f);
	}
	return r;
}

static void npe_remove(struct pci_epf *epf)
{
	struct npe_func *f = epf_get_drvdata(epf);

	npe_cdev_del(f);
	down_write(&f->lock);
	f->dead = true;
	up_write(&f->lock);
	npe_cdev_zap_mappings(f);
	wake_up_interruptible_all(&f->wq);
	epf_set_drvdata(epf, NULL);
	npe_func_put(f);
}

static const struct pci_epf_device_id npe_ids[] = {
	{ .name = NPE_NAME },
	{ },
};
MODULE_DEVICE_TABLE(pci_epf, npe_ids);

static struct pci_epf_ops npe_ops = {
	.bind = npe_bind,
	.unbind = npe_unbind,
	.add_cfs = npe_cfs_add,
};

static struct pci_epf_driver npe_driver = {
	.driver.name = NPE_NAME,
	.probe = npe_probe,
	.remove = npe_remove,
	.id_table = npe_ids,
	.ops = &npe_ops,
	.owner = THIS_MODULE,
};

static int __init npe_init(void)
{
	int r;

	r = npe_cdev_init();
	if (r)
		return r;
	r = pci_epf_register_driver(&npe_driver);
	if (r) {
		pr_err(NPE_NAME ": registering the endpoint function driver failed: %d\n", r);
		npe_cdev_exit();
	}
	return r;
}

static void __exit npe_exit(void)
{
	pci_epf_unregister_driver(&npe_driver);
	npe_cdev_exit();
}

module_init(npe_init);
module_exit(npe_exit);
MODULE_DESCRIPTION("nbd-pcie endpoint function: BAR memory, DMA to the host, MSI/MSI-X");
MODULE_LICENSE("GPL");

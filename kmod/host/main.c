// SPDX-License-Identifier: GPL-2.0
/*
 * nbd-pcie-host: host (root complex) PCI driver for an nbd-pcie endpoint.
 *
 * Binds the project's device ID (module parameters vendor/device) or, through
 * driver_override, any device with a memory BAR such as QEMU's ivshmem
 * (1af4:1110). Per device it exposes /dev/nbd-pcie-host<N> (cdev.c), a
 * DMA-coherent host window the EP's DMA engine writes into, and the
 * interrupts (irq.c). docs/kmod.md describes loading and binding.
 */
#include <linux/dma-mapping.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "internal.h"
#include "../shared/npk-check.h"

/* Default IDs the EP function presents (docs/kmod.md): 0x1234 is the
 * unassigned vendor value QEMU and many test devices use; 0x4e42 is "NB".
 * Products set their own through the EP's configfs and these parameters. */
#define NPH_DEFAULT_VENDOR 0x1234
#define NPH_DEFAULT_DEVICE 0x4e42
/* Default host window: 4 MiB, the largest buffer the buddy allocator
 * returns on x86-64 without CMA (MAX_ORDER 11 pages of 4 KiB). A layout
 * that wants more gets its payload areas shrunk by the transport. */
#define NPH_DEFAULT_WIN (4ul << 20)

static ushort vendor = NPH_DEFAULT_VENDOR;
module_param(vendor, ushort, 0444);
MODULE_PARM_DESC(vendor, "PCI vendor ID to bind (default 0x1234)");
static ushort device = NPH_DEFAULT_DEVICE;
module_param(device, ushort, 0444);
MODULE_PARM_DESC(device, "PCI device ID to bind (default 0x4e42)");
static ulong win_size = NPH_DEFAULT_WIN;
module_param(win_size, ulong, 0444);
MODULE_PARM_DESC(win_size, "bytes of the DMA-coherent host window per device, page multiple, "
		 "0 = none (BAR-only mode); default 4 MiB");

static struct pci_device_id nph_ids[] = {
	{ PCI_DEVICE(NPH_DEFAULT_VENDOR, NPH_DEFAULT_DEVICE) },
	{ }
};
MODULE_DEVICE_TABLE(pci, nph_ids);

static void nph_dev_free(struct kref *ref)
{
	struct nph_dev *d = container_of(ref, struct nph_dev, ref);

	pci_dev_put(d->pdev);
	kfree(d);
}

void nph_dev_put(struct nph_dev *d)
{
	kref_put(&d->ref, nph_dev_free);
}

/* Where the MSI-X table or PBA starts in BAR `bar` (config space BIR and
 * offset), or the BAR's length if neither is there. Userspace must never
 * map them: a stray store would redirect the interrupts. */
static resource_size_t nph_msix_limit(struct pci_dev *pdev, int bar, resource_size_t len)
{
	static const int regs[] = { PCI_MSIX_TABLE, PCI_MSIX_PBA };
	resource_size_t limit = len;
	u32 v;
	int i;

	if (!pdev->msix_cap)
		return len;
	for (i = 0; i < ARRAY_SIZE(regs); i++) {
		pci_read_config_dword(pdev, pdev->msix_cap + regs[i], &v);
		if ((v & PCI_MSIX_TABLE_BIR) == bar)
			limit = min_t(resource_size_t, limit, v & PCI_MSIX_TABLE_OFFSET);
	}
	return round_down(limit, PAGE_SIZE);
}

/* Records the memory BARs userspace may map: page aligned and at least a
 * page long (a smaller BAR would expose its neighbours' registers), up to
 * the MSI-X structures if the BAR holds them (all of ivshmem's BAR1; the
 * end of pci-epf-nbd's BAR). The shared-memory BAR is the largest one
 * (BAR2 on ivshmem). */
static int nph_scan_bars(struct nph_dev *d)
{
	struct pci_dev *pdev = d->pdev;
	resource_size_t best = 0;
	int i;

	for (i = 0; i < PCI_STD_NUM_BARS; i++) {
		resource_size_t start = pci_resource_start(pdev, i);
		resource_size_t len = pci_resource_len(pdev, i);
		unsigned long flags = pci_resource_flags(pdev, i);

		if (!(flags & IORESOURCE_MEM) || !len)
			continue;
		len = nph_msix_limit(pdev, i, len);
		if (!len) {
			dev_dbg(&pdev->dev, "BAR%d: holds the MSI-X table, not mappable\n", i);
			continue;
		}
		if (len < PAGE_SIZE || !PAGE_ALIGNED(start)) {
			dev_dbg(&pdev->dev, "BAR%d: %pa bytes at %pa not mappable page-wise\n",
				i, &len, &start);
			continue;
		}
		d->bar_start[i] = start;
		d->bar_prefetch[i] = !!(flags & IORESOURCE_PREFETCH);
		d->region_size[NPK_HOST_REGION_BAR(i)] = len;
		if (len > best) {
			best = len;
			d->shm_bar = i;
		}
	}
	if (!best) {
		dev_err(&pdev->dev, "no memory BAR of at least %lu bytes to map\n", PAGE_SIZE);
		return -ENODEV;
	}
	return 0;
}

static int nph_alloc_window(struct nph_dev *d)
{
	struct pci_dev *pdev = d->pdev;
	char msg[160];
	int r;

	r = npk_check_host_win_size(win_size, PAGE_SIZE, msg, sizeof(msg));
	if (r) {
		dev_err(&pdev->dev, "%s\n", msg);
		return r;
	}
	if (!win_size)
		return 0;
	r = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (r)
		r = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(32));
	if (r) {
		dev_err(&pdev->dev, "window: no usable DMA mask (64 or 32 bit): %d\n", r);
		return r;
	}
	d->win = dma_alloc_coherent(&pdev->dev, win_size, &d->win_bus, GFP_KERNEL);
	if (!d->win) {
		/* Not fatal: the transport falls back to BAR-only mode. */
		dev_warn(&pdev->dev, "window: dma_alloc_coherent of win_size %lu bytes failed "
			 "(contiguous memory limit); continuing without a host window\n",
			 win_size);
		return 0;
	}
	d->win_size = win_size;
	d->region_size[NPK_HOST_REGION_WIN] = win_size;
	return 0;
}

static int nph_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct nph_dev *d;
	int r;

	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	kref_init(&d->ref);
	d->pdev = pci_dev_get(pdev);
	init_rwsem(&d->lock);
	init_waitqueue_head(&d->wq);
	mutex_init(&d->files_lock);
	INIT_LIST_HEAD(&d->files);

	r = pci_enable_device_mem(pdev);
	if (r) {
		dev_err(&pdev->dev, "pci_enable_device_mem failed: %d\n", r);
		goto put_dev;
	}
	r = pci_request_mem_regions(pdev, NPH_NAME);
	if (r) {
		dev_err(&pdev->dev, "BARs are claimed by another driver: %d\n", r);
		goto disable;
	}
	r = nph_scan_bars(d);
	if (r)
		goto release;
	r = nph_alloc_window(d);
	if (r)
		goto release;
	/* The EP's DMA engine is a bus master of this function. */
	pci_set_master(pdev);
	r = nph_irq_setup(d);
	if (r)
		goto free_window;
	pci_set_drvdata(pdev, d);
	r = nph_cdev_add(d);
	if (r)
		goto free_irq;
	dev_info(&pdev->dev, "%s%d: shm BAR%u %llu bytes, window %zu bytes at bus 0x%llx, "
		 "%u interrupt vectors\n", NPH_NAME, d->minor, d->shm_bar,
		 d->region_size[d->shm_bar], d->win_size, (unsigned long long)d->win_bus, d->nvec);
	return 0;

free_irq:
	pci_set_drvdata(pdev, NULL);
	nph_irq_teardown(d);
free_window:
	pci_clear_master(pdev);
	if (d->win)
		dma_free_coherent(&pdev->dev, d->win_size, d->win, d->win_bus);
release:
	pci_release_mem_regions(pdev);
disable:
	pci_disable_device(pdev);
put_dev:
	nph_dev_put(d);
	return r;
}

/* Unbind, rmmod (only with no file open: the cdev holds the module) and
 * surprise removal all end here. Open files and mappings outlive it safely. */
static void nph_remove(struct pci_dev *pdev)
{
	struct nph_dev *d = pci_get_drvdata(pdev);

	nph_cdev_del(d);
	down_write(&d->lock);
	WRITE_ONCE(d->dead, true);
	up_write(&d->lock);
	nph_cdev_zap_mappings(d);
	wake_up_interruptible_all(&d->wq);

	nph_irq_teardown(d);
	/* Stop the EP's DMA into the window before its pages go back. */
	pci_clear_master(pdev);
	if (d->win)
		dma_free_coherent(&pdev->dev, d->win_size, d->win, d->win_bus);
	d->win = NULL;
	pci_release_mem_regions(pdev);
	pci_disable_device(pdev);
	pci_set_drvdata(pdev, NULL);
	nph_dev_put(d);
}

/* sysfs attributes of the PCI device (pci_driver.dev_groups). */
static struct nph_dev *nph_from_dev(struct device *dev)
{
	return pci_get_drvdata(to_pci_dev(dev));
}

static ssize_t win_bus_addr_show(struct device *dev, struct device_attribute *a, char *buf)
{
	struct nph_dev *d = nph_from_dev(dev);

	return sysfs_emit(buf, "0x%llx\n", d->win ? (unsigned long long)d->win_bus : 0ull);
}
static DEVICE_ATTR_RO(win_bus_addr);

static ssize_t win_size_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%zu\n", nph_from_dev(dev)->win_size);
}
static DEVICE_ATTR_RO(win_size);

static ssize_t shm_bar_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%u\n", nph_from_dev(dev)->shm_bar);
}
static DEVICE_ATTR_RO(shm_bar);

static ssize_t irq_vectors_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%u\n", nph_from_dev(dev)->nvec);
}
static DEVICE_ATTR_RO(irq_vectors);

static ssize_t irq_count_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(&nph_from_dev(dev)->irq_total));
}
static DEVICE_ATTR_RO(irq_count);

static ssize_t chardev_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%s%d\n", NPH_NAME, nph_from_dev(dev)->minor);
}
static DEVICE_ATTR_RO(chardev);

static struct attribute *nph_attrs[] = {
	&dev_attr_win_bus_addr.attr,
	&dev_attr_win_size.attr,
	&dev_attr_shm_bar.attr,
	&dev_attr_irq_vectors.attr,
	&dev_attr_irq_count.attr,
	&dev_attr_chardev.attr,
	NULL,
};
ATTRIBUTE_GROUPS(nph);

static struct pci_driver nph_driver = {
	.name = NPH_NAME,
	.id_table = nph_ids,
	.probe = nph_probe,
	.remove = nph_remove,
	.dev_groups = nph_groups,
};

static int __init nph_init(void)
{
	int r;

	/* The ID parameters replace the default entry; the alias table built
	 * at compile time still autoloads on the default ID. */
	nph_ids[0].vendor = vendor;
	nph_ids[0].device = device;
	r = nph_cdev_init();
	if (r)
		return r;
	r = pci_register_driver(&nph_driver);
	if (r)
		nph_cdev_exit();
	return r;
}

static void __exit nph_exit(void)
{
	pci_unregister_driver(&nph_driver);
	nph_cdev_exit();
}

module_init(nph_init);
module_exit(nph_exit);
MODULE_DESCRIPTION("nbd-pcie host PCI driver: BAR and DMA window mapping, MSI-X events");
MODULE_LICENSE("GPL");

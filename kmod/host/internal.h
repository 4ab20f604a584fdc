/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nbd-pcie-host: private interfaces, sectioned by the file that defines them.
 *   main.c  PCI driver (probe/remove), module parameters, sysfs attributes
 *   cdev.c  the character device: open/read/poll/ioctl/mmap, removal zapping
 *   irq.c   MSI-X/MSI vectors turned into counters and wake-ups
 */
#ifndef NPH_INTERNAL_H
#define NPH_INTERNAL_H

#include <linux/atomic.h>
#include <linux/cdev.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/rwsem.h>
#include <linux/wait.h>

#include <uapi/nbd-pcie-link.h>

#define NPH_NAME "nbd-pcie-host"
/* Devices one host can bind at once: one per EP function; 64 is far more
 * than any board has slots for and keeps the minor table small. */
#define NPH_MAX_DEVS 64

struct nph_dev;

/* One MSI-X/MSI vector: its handler argument. */
struct nph_vec {
	struct nph_dev *d;
	unsigned int idx;
};

/* One bound PCI function. Freed when the last open file and the driver
 * binding are gone (kref); everything touching hardware or the window checks
 * `dead` under `lock` first. */
struct nph_dev {
	struct kref ref;
	struct pci_dev *pdev;            /* reference held until the last kref */
	struct rw_semaphore lock;        /* write: remove(); read: file operations */
	bool dead;                       /* unbound or removed: every op -> -ENODEV */
	int minor;
	struct cdev *cdev;
	struct device *chardev;

	u64 region_size[NPK_HOST_NREGIONS];
	resource_size_t bar_start[PCI_STD_NUM_BARS];
	bool bar_prefetch[PCI_STD_NUM_BARS];
	unsigned int shm_bar;

	void *win;                       /* host DMA window (dma_alloc_coherent) */
	dma_addr_t win_bus;
	size_t win_size;

	unsigned int nvec;
	struct nph_vec vec[NPK_HOST_MAX_VECTORS];
	atomic64_t irq_count[NPK_HOST_MAX_VECTORS];
	atomic64_t irq_total;
	wait_queue_head_t wq;

	struct mutex files_lock;         /* protects files */
	struct list_head files;          /* struct nph_file, for zapping on remove */
};

/* main.c */
void nph_dev_put(struct nph_dev *d);

/* cdev.c */
int nph_cdev_init(void);
void nph_cdev_exit(void);
int nph_cdev_add(struct nph_dev *d);
void nph_cdev_del(struct nph_dev *d);
void nph_cdev_zap_mappings(struct nph_dev *d);

/* irq.c */
int nph_irq_setup(struct nph_dev *d);
void nph_irq_teardown(struct nph_dev *d);

#endif /* NPH_INTERNAL_H */

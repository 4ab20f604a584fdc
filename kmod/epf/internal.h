/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pci-epf-nbd: private interfaces, sectioned by the file that defines them.
 *   main.c  EPF driver: probe/remove, bind/unbind, controller events, the
 *           version shims for the endpoint API
 *   cfs.c   configfs attributes of the function (bar, bar_size, channels, ...)
 *   cdev.c  the character device /dev/nbd-pcie-ep<N>
 *   dma.c   transfers between EP memory and host bus addresses (dmaengine
 *           slave channels of dw-edma, CPU copy through the outbound window)
 *
 * Endpoint API differences handled here (only the 6.1 branch is compiled in
 * this project's CI; the others follow the kernel's history):
 *   6.4  EPC->EPF events: atomic notifier (CORE_INIT, LINK_UP) replaced by
 *        struct pci_epc_event_ops (core_init, link_up) in epf->event_ops
 *   6.5  event_ops gain link_down and bme
 *   6.8  pci_epc_raise_irq() takes PCI_IRQ_MSI/PCI_IRQ_MSIX instead of
 *        enum pci_epc_irq_type (PCI_EPC_IRQ_MSI/PCI_EPC_IRQ_MSIX)
 *   6.9  pci_epf_alloc_space() takes the epc_features instead of an
 *        alignment; pci_epc_features describes BARs in bar[] (type, fixed
 *        size, only_64bit) instead of reserved_bar/bar_fixed_*
 *   6.11 core_init renamed epc_init; epc_deinit added
 *   6.13 pci_epc_mem_map()/pci_epc_mem_unmap() map a host range through
 *        the outbound window with the controller's alignment handled;
 *        before, pci_epc_mem_alloc_addr() + pci_epc_map_addr() on an
 *        address aligned to the window's page size
 */
#ifndef NPE_INTERNAL_H
#define NPE_INTERNAL_H

#include <linux/cdev.h>
#include <linux/completion.h>
#include <linux/configfs.h>
#include <linux/dmaengine.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/pci-epc.h>
#include <linux/pci-epf.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>
#include <linux/version.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include <uapi/nbd-pcie-link.h>
#include "../shared/npk-check.h"

#define NPE_NAME      "pci_epf_nbd"
#define NPE_DEV_NAME  "nbd-pcie-ep"
/* Functions one EP can host: controllers offer a handful of physical
 * functions; 16 leaves room for virtual functions too. */
#define NPE_MAX_DEVS  16
/* Largest single transfer: the transport's default max_xfer (4 MiB), so one
 * ioctl moves one ring entry's payload. */
#define NPE_MAX_XFER  (4u << 20)
/* DMA offsets, host addresses and lengths are DWORD multiples: PCIe moves
 * DWORDs and the transport's payloads are 512-byte sectors anyway. */
#define NPE_DMA_ALIGN 4
/* A DMA transfer of NPE_MAX_XFER takes a few ms even on Gen1 x1; 5 s means
 * the engine or the link is stuck. */
#define NPE_DMA_TIMEOUT_MS 5000
/* Message buffer for validation failures (logged rate-limited). */
#define NPE_MSG_LEN 160

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
#define NPE_IRQ_MSI   PCI_IRQ_MSI
#define NPE_IRQ_MSIX  PCI_IRQ_MSIX
#else
#define NPE_IRQ_MSI   PCI_EPC_IRQ_MSI
#define NPE_IRQ_MSIX  PCI_EPC_IRQ_MSIX
#endif

/* One endpoint function. Lives from probe to the last kref (the driver
 * binding plus one per open file); what depends on a controller exists only
 * between bind and unbind (`bound`). */
struct npe_func {
	struct kref ref;
	struct pci_epf *epf;
	struct pci_epf_header header;     /* epf->header points here (configfs edits it) */
	struct config_group group;        /* configfs "nbd" group (cfs.c) */

	/* write: bind/unbind/remove and configfs stores; read: file operations */
	struct rw_semaphore lock;
	struct npk_epf_config cfg;        /* configfs values; vendor/device/msi/msix copied at bind */
	bool bound;                       /* bound to a controller: BAR memory exists */
	bool dead;                        /* driver removed: every op -> -ENODEV */
	struct npk_epf_layout layout;
	void *bar_mem;                    /* BAR memory (pci_epf_alloc_space) */
	void *stage;                      /* local DMA staging buffer */
	dma_addr_t stage_dma;
	size_t stage_size;
	struct device *dma_dev;           /* the controller's parent: owns both buffers */

	/* events */
	spinlock_t ev_lock;               /* link, events, window */
	struct npk_ep_window window;      /* host range DMA may target; size 0 = none */
	u32 link;                         /* NPK_EP_LINK_* */
	u32 events;                       /* changes of link so far */
	wait_queue_head_t wq;
	struct work_struct init_work;     /* core init in process context */
	bool core_init_pending;

	/* dma.c */
	struct mutex dma_lock;            /* engine: config+prep+submit; CPU: whole copy */
	struct dma_chan *tx, *rx;         /* MEM_TO_DEV (to host), DEV_TO_MEM (from host) */

	/* cdev.c */
	int minor;
	struct cdev *cdev;
	struct device *chardev;
	struct mutex files_lock;
	struct list_head files;
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 4, 0)
	struct notifier_block nb;
#endif
};

/* main.c */
void npe_func_put(struct npe_func *f);
void npe_event(struct npe_func *f, u32 set, u32 clear);

/* cfs.c */
struct config_group *npe_cfs_add(struct pci_epf *epf, struct config_group *group);

/* cdev.c */
int npe_cdev_init(void);
void npe_cdev_exit(void);
int npe_cdev_add(struct npe_func *f);
void npe_cdev_del(struct npe_func *f);
void npe_cdev_zap_mappings(struct npe_func *f);

/* dma.c */
void npe_dma_setup(struct npe_func *f);
void npe_dma_teardown(struct npe_func *f);
int npe_dma_xfer(struct npe_func *f, const struct npk_ep_dma *d);
u32 npe_dma_mode(struct npe_func *f);

#endif /* NPE_INTERNAL_H */

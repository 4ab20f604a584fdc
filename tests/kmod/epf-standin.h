/* A userspace stand-in for pci-epf-nbd's character device /dev/nbd-pcie-ep<N>
 * (docs/kmod.md), for tests on machines without an endpoint controller.
 *
 * epf-standin.c interposes open/close/ioctl/mmap/read/poll: a path
 * /dev/nbd-pcie-ep<N> opened while $NPK_STANDIN_DIR is set becomes the
 * function N described by files in that directory, and every call on it
 * follows the module's documented semantics, its arguments checked by
 * kmod/shared/npk-check.c exactly as the module checks them:
 *   epN.ctl    struct npks_state below (shared, mmapped by every party)
 *   epN.bar    the function's BAR memory (whole BAR; the host side maps it
 *              with the shm backend: shm:bar=DIR/epN.bar)
 *   epN.stage  the DMA staging buffer
 *   epN.win    the host window: bus address win_base = file offset 0
 * epf-standin-ctl (epf-standin-ctl.c) creates the files, scripts link
 * events and corrupts INFO, and prints the counters.
 */
#ifndef NPK_EPF_STANDIN_H
#define NPK_EPF_STANDIN_H

#include <stdint.h>

#include "npk-check.h"

#define NPKS_MAGIC   0x4e53504bu   /* "KPSN" */
#define NPKS_VERSION 1
#define NPKS_MSIX_COUNTED 64       /* per-vector counters kept for vectors 1..64 */
#define NPKS_MSGLEN  256
#define NPKS_LOG     64            /* the last transfers, for order checks */

struct npks_xfer {                 /* one NPK_EP_IOC_DMA that moved data */
	uint32_t dir, len;
	uint64_t offset, host_addr;
};

struct npks_state {
	uint32_t magic, version;
	struct npk_ep_info info;        /* what INFO reports (a test may corrupt it) */
	uint64_t region_size[NPK_EP_NREGIONS]; /* what the "module" really has */
	uint64_t bar_size;              /* whole BAR (link part + MSI-X table) */
	uint32_t bound, dead;           /* 0/1: bound to a controller; function removed */
	uint64_t linkev;                /* events << 32 | link (NPK_EP_LINK_*), one atomic word */
	uint64_t win_bus, win_size;     /* set by NPK_EP_IOC_SET_WINDOW */
	uint64_t win_base;              /* bus address of epN.win's offset 0 */
	/* counters (atomic adds) */
	uint64_t irq_msi[NPK_EPF_MAX_MSI + 1];       /* by 1-based vector */
	uint64_t irq_msix[NPKS_MSIX_COUNTED + 1];
	uint64_t irq_total, irq_refused;
	uint64_t dma_to_host, dma_from_host, dma_bytes, dma_refused;
	uint64_t set_window, mmaps, mmap_refused;
	char last_refusal[NPKS_MSGLEN];  /* npk-check's message of the last refused call */
	uint64_t nlog;                   /* transfers logged so far; entry i at log[i % NPKS_LOG] */
	struct npks_xfer log[NPKS_LOG];
};

#endif /* NPK_EPF_STANDIN_H */

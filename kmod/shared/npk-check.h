/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Argument validation and layout computation of the nbd-pcie kernel modules,
 * kept free of kernel APIs so that the same source builds into both modules
 * and into the userspace unit tests (tests/kmod). Every function returns 0
 * or -errno and, on failure, writes a message naming the argument, its value
 * and the limit into msg (callers print it; msg may be NULL).
 */
#ifndef NPK_CHECK_H
#define NPK_CHECK_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#endif

#include <uapi/nbd-pcie-link.h>

/* Smallest BAR the function accepts: the link header page plus one page of
 * channel space; anything smaller cannot hold a single channel. */
#define NPK_EPF_MIN_BAR        (2 * NPL_PAGE)
/* Largest BAR: the EPC allocates it as one coherent buffer, and contiguous
 * EP memory beyond 1 GiB exceeds every SoC CMA pool we know of. */
#define NPK_EPF_MAX_BAR        (1ull << 30)
/* Largest local DMA staging buffer, same reason at a smaller scale: it is
 * allocated coherent next to the BAR memory. */
#define NPK_EPF_MAX_STAGE      (256ull << 20)
/* Channel count bounds of the link layout (npl_bar_header.nchannels). */
#define NPK_EPF_MAX_CHANNELS   64
/* MSI allows at most 32 vectors per function (Multiple Message Capable). */
#define NPK_EPF_MAX_MSI        32
/* MSI-X allows at most 2048 table entries (Table Size field is 11 bits). */
#define NPK_EPF_MAX_MSIX       2048
/* Bytes of one MSI-X table entry and PBA bits per QWORD (PCIe spec). */
#define NPK_MSIX_ENTRY_SIZE    16
#define NPK_MSIX_PBA_BITS      64
/* Largest host DMA window: one dma_alloc_coherent() buffer; the host module
 * also reports the allocator's own refusal with the size it asked for. */
#define NPK_HOST_MAX_WIN       (1ull << 30)

/* What the EP function was configured with through configfs. */
struct npk_epf_config {
	__u16 vendor, device;
	__u32 bar;               /* BAR number 0..5 */
	__u64 bar_size;          /* bytes, power of two; 0 = controller's fixed size */
	__u32 nchannels;         /* 1..NPK_EPF_MAX_CHANNELS */
	__u32 msi;               /* MSI vectors, 0..NPK_EPF_MAX_MSI */
	__u32 msix;              /* MSI-X vectors, 0..NPK_EPF_MAX_MSIX */
	__u64 stage_size;        /* local DMA staging buffer bytes, 0 = none */
};

/* What the endpoint controller offers (struct pci_epc_features, flattened). */
struct npk_epc_caps {
	bool msi_capable, msix_capable;
	__u32 reserved_bar_mask; /* bit n: BAR n unusable */
	__u32 fixed_64bit_mask;  /* bit n: BAR n is a fixed 64-bit BAR */
	__u64 fixed_size[6];     /* nonzero: BAR n has this size and no other */
	__u64 align;             /* BAR memory alignment, 0 = none, else power of two */
};

/* Where things sit in the function's BAR. */
struct npk_epf_layout {
	__u64 bar_size;          /* size programmed into the BAR */
	__u64 shm_size;          /* bytes at offset 0 for the link layout */
	__u64 msix_table_off;    /* MSI-X table offset in the BAR (0 when msix == 0) */
	__u64 msix_pba_off;      /* MSI-X PBA offset in the BAR (0 when msix == 0) */
	bool bar64;              /* BAR must be a 64-bit BAR */
};

/* Limits an EP ioctl is checked against. */
struct npk_ep_limits {
	__u64 region_size[NPK_EP_NREGIONS];
	__u32 dma_align;         /* power of two */
	__u32 max_xfer;
	__u32 msi_vectors;
	__u32 msix_vectors;
	struct npk_ep_window window;   /* size 0: none set, every DMA refused */
};

int npk_epf_compute_layout(const struct npk_epf_config *cfg, const struct npk_epc_caps *caps,
			   struct npk_epf_layout *out, char *msg, size_t msglen);
int npk_check_ep_dma(const struct npk_ep_dma *d, const struct npk_ep_limits *lim,
		     char *msg, size_t msglen);
int npk_check_ep_window(const struct npk_ep_window *w, char *msg, size_t msglen);
int npk_check_ep_irq(const struct npk_ep_irq *irq, const struct npk_ep_limits *lim,
		     char *msg, size_t msglen);
int npk_check_mmap(__u64 offset, __u64 len, const __u64 *region_size, unsigned int nregions,
		   __u64 page_size, unsigned int *region, __u64 *region_off,
		   char *msg, size_t msglen);
int npk_check_host_win_size(__u64 size, __u64 page_size, char *msg, size_t msglen);
int npk_check_vector_mask(__u32 mask, __u32 nvectors, char *msg, size_t msglen);

#endif /* NPK_CHECK_H */

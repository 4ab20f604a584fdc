// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Validation of every value that reaches the nbd-pcie kernel modules from
 * userspace or configfs, and the EP function's BAR layout. No kernel APIs:
 * this file is also compiled into the unit tests (tests/kmod).
 */
#ifdef __KERNEL__
#include <linux/errno.h>
#include <linux/kernel.h>
#else
#include <errno.h>
#include <stdio.h>
#endif

#include "npk-check.h"

#define npk_msg(msg, len, ...) \
	do { if (msg && len) snprintf(msg, len, __VA_ARGS__); } while (0)

typedef unsigned long long npk_ull;   /* printf argument type for __u64 */

/* The ioctl structs cross the user/kernel boundary: their sizes are ABI and
 * must be the same for 32- and 64-bit userspace (no implicit padding). */
_Static_assert(sizeof(struct npk_region) == 16, "npk_region must be 16 bytes");
_Static_assert(sizeof(struct npk_host_info) == 160, "npk_host_info must be 160 bytes");
_Static_assert(sizeof(struct npk_host_irq_counts) == 8 * NPK_HOST_MAX_VECTORS,
	       "npk_host_irq_counts must be 8 bytes per vector");
_Static_assert(sizeof(struct npk_ep_info) == 104, "npk_ep_info must be 104 bytes");
_Static_assert(sizeof(struct npk_ep_dma) == 32, "npk_ep_dma must be 32 bytes");
_Static_assert(sizeof(struct npk_ep_irq) == 8, "npk_ep_irq must be 8 bytes");
_Static_assert(sizeof(struct npk_ep_event) == 16, "npk_ep_event must be 16 bytes");
_Static_assert(sizeof(struct npk_ep_window) == 16, "npk_ep_window must be 16 bytes");

static bool npk_is_pow2(__u64 v)
{
	return v && !(v & (v - 1));
}

static __u64 npk_round_up(__u64 v, __u64 align)
{
	return (v + align - 1) / align * align;
}

int npk_epf_compute_layout(const struct npk_epf_config *cfg, const struct npk_epc_caps *caps,
			   struct npk_epf_layout *out, char *msg, size_t msglen)
{
	__u64 size, fixed, table = 0, pba = 0, reserve = 0;

	if (cfg->vendor == 0 || cfg->vendor == 0xffff) {
		npk_msg(msg, msglen, "vendorid: 0x%04x is not a valid PCI vendor ID", cfg->vendor);
		return -EINVAL;
	}
	if (cfg->bar > 5) {
		npk_msg(msg, msglen, "bar: %u beyond the last BAR 5", cfg->bar);
		return -EINVAL;
	}
	if (caps->reserved_bar_mask & (1u << cfg->bar)) {
		npk_msg(msg, msglen, "bar: BAR%u is reserved by the endpoint controller", cfg->bar);
		return -EINVAL;
	}
	fixed = caps->fixed_size[cfg->bar];
	size = cfg->bar_size ? cfg->bar_size : fixed;
	if (!size) {
		npk_msg(msg, msglen, "bar_size: 0 but BAR%u has no fixed size; set bar_size", cfg->bar);
		return -EINVAL;
	}
	if (fixed && size != fixed) {
		npk_msg(msg, msglen, "bar_size: %llu but the controller fixes BAR%u at %llu",
			(npk_ull)size, cfg->bar, (npk_ull)fixed);
		return -EINVAL;
	}
	if (!npk_is_pow2(size)) {
		npk_msg(msg, msglen, "bar_size: %llu is not a power of two", (npk_ull)size);
		return -EINVAL;
	}
	if (size < NPK_EPF_MIN_BAR || size > NPK_EPF_MAX_BAR) {
		npk_msg(msg, msglen, "bar_size: %llu outside %llu..%llu", (npk_ull)size,
			(npk_ull)NPK_EPF_MIN_BAR, (npk_ull)NPK_EPF_MAX_BAR);
		return -EINVAL;
	}
	if (caps->align && !npk_is_pow2(caps->align)) {
		npk_msg(msg, msglen, "controller: BAR alignment %llu is not a power of two",
			(npk_ull)caps->align);
		return -EINVAL;
	}
	if (cfg->nchannels < 1 || cfg->nchannels > NPK_EPF_MAX_CHANNELS) {
		npk_msg(msg, msglen, "channels: %u outside 1..%u", cfg->nchannels,
			NPK_EPF_MAX_CHANNELS);
		return -EINVAL;
	}
	if (cfg->msi > NPK_EPF_MAX_MSI) {
		npk_msg(msg, msglen, "msi_interrupts: %u beyond the MSI limit %u", cfg->msi,
			NPK_EPF_MAX_MSI);
		return -EINVAL;
	}
	if (cfg->msix > NPK_EPF_MAX_MSIX) {
		npk_msg(msg, msglen, "msix_interrupts: %u beyond the MSI-X limit %u", cfg->msix,
			NPK_EPF_MAX_MSIX);
		return -EINVAL;
	}
	if (cfg->msi && !caps->msi_capable) {
		npk_msg(msg, msglen, "msi_interrupts: %u but the controller is not MSI capable",
			cfg->msi);
		return -EOPNOTSUPP;
	}
	if (cfg->msix && !caps->msix_capable) {
		npk_msg(msg, msglen, "msix_interrupts: %u but the controller is not MSI-X capable",
			cfg->msix);
		return -EOPNOTSUPP;
	}
	if (cfg->stage_size % NPL_PAGE || cfg->stage_size > NPK_EPF_MAX_STAGE) {
		npk_msg(msg, msglen, "stage_size: %llu must be a multiple of %u up to %llu",
			(npk_ull)cfg->stage_size, NPL_PAGE, (npk_ull)NPK_EPF_MAX_STAGE);
		return -EINVAL;
	}
	out->bar64 = !!(caps->fixed_64bit_mask & (1u << cfg->bar));
	if (out->bar64 && cfg->bar == 5) {
		npk_msg(msg, msglen, "bar: BAR5 is a 64-bit BAR here and would need a BAR6");
		return -EINVAL;
	}
	if (cfg->msix) {
		/* Table then PBA at the end of the BAR, on their own pages so that
		 * the host can map the link layout write-combined without them. */
		table = (__u64)cfg->msix * NPK_MSIX_ENTRY_SIZE;
		pba = npk_round_up(cfg->msix, NPK_MSIX_PBA_BITS) / 8;
		reserve = npk_round_up(table + pba, NPL_PAGE);
	}
	if (size - reserve < NPK_EPF_MIN_BAR) {
		npk_msg(msg, msglen, "bar_size: %llu leaves %llu bytes beside the MSI-X table of "
			"%u vectors, below the minimum %llu", (npk_ull)size,
			(npk_ull)(size - reserve), cfg->msix, (npk_ull)NPK_EPF_MIN_BAR);
		return -ENOSPC;
	}
	out->bar_size = size;
	out->shm_size = size - reserve;
	out->msix_table_off = cfg->msix ? size - reserve : 0;
	out->msix_pba_off = cfg->msix ? size - reserve + table : 0;
	return 0;
}

int npk_check_ep_dma(const struct npk_ep_dma *d, const struct npk_ep_limits *lim,
		     char *msg, size_t msglen)
{
	__u64 rsize;

	if (d->flags) {
		npk_msg(msg, msglen, "dma: flags 0x%x, no flag is defined", d->flags);
		return -EINVAL;
	}
	if (d->dir != NPK_EP_DMA_TO_HOST && d->dir != NPK_EP_DMA_FROM_HOST) {
		npk_msg(msg, msglen, "dma: direction %u is neither TO_HOST (%u) nor FROM_HOST (%u)",
			d->dir, NPK_EP_DMA_TO_HOST, NPK_EP_DMA_FROM_HOST);
		return -EINVAL;
	}
	if (d->region >= NPK_EP_NREGIONS || !lim->region_size[d->region]) {
		npk_msg(msg, msglen, "dma: region %u does not exist", d->region);
		return -EINVAL;
	}
	rsize = lim->region_size[d->region];
	if (d->len == 0 || d->len > lim->max_xfer) {
		npk_msg(msg, msglen, "dma: length %u outside 1..%u", d->len, lim->max_xfer);
		return -EINVAL;
	}
	if ((d->offset | d->host_addr | d->len) & (lim->dma_align - 1)) {
		npk_msg(msg, msglen, "dma: offset 0x%llx, host address 0x%llx and length %u "
			"must be multiples of %u", (npk_ull)d->offset, (npk_ull)d->host_addr,
			d->len, lim->dma_align);
		return -EINVAL;
	}
	if (d->offset > rsize || d->len > rsize - d->offset) {
		npk_msg(msg, msglen, "dma: offset %llu + length %u beyond region %u size %llu",
			(npk_ull)d->offset, d->len, d->region, (npk_ull)rsize);
		return -EINVAL;
	}
	if (d->host_addr > ~(__u64)0 - (d->len - 1)) {
		npk_msg(msg, msglen, "dma: host address 0x%llx + length %u wraps the bus "
			"address space", (npk_ull)d->host_addr, d->len);
		return -EINVAL;
	}
	if (!lim->window.size) {
		npk_msg(msg, msglen, "dma: no host window set (NPK_EP_IOC_SET_WINDOW); "
			"host address 0x%llx refused", (npk_ull)d->host_addr);
		return -EINVAL;
	}
	if (d->host_addr < lim->window.bus_addr ||
	    d->host_addr - lim->window.bus_addr > lim->window.size ||
	    d->len > lim->window.size - (d->host_addr - lim->window.bus_addr)) {
		npk_msg(msg, msglen, "dma: host address 0x%llx + length %u outside the host "
			"window 0x%llx + %llu", (npk_ull)d->host_addr, d->len,
			(npk_ull)lim->window.bus_addr, (npk_ull)lim->window.size);
		return -EINVAL;
	}
	return 0;
}

int npk_check_ep_window(const struct npk_ep_window *w, char *msg, size_t msglen)
{
	if (!w->size)
		return 0;   /* clears the window */
	if ((w->bus_addr | w->size) % NPL_PAGE) {
		npk_msg(msg, msglen, "window: bus address 0x%llx and size %llu must be multiples "
			"of %u", (npk_ull)w->bus_addr, (npk_ull)w->size, NPL_PAGE);
		return -EINVAL;
	}
	if (w->bus_addr > ~(__u64)0 - (w->size - 1)) {
		npk_msg(msg, msglen, "window: bus address 0x%llx + size %llu wraps the bus "
			"address space", (npk_ull)w->bus_addr, (npk_ull)w->size);
		return -EINVAL;
	}
	return 0;
}

int npk_check_ep_irq(const struct npk_ep_irq *irq, const struct npk_ep_limits *lim,
		     char *msg, size_t msglen)
{
	__u32 max;
	const char *name;

	switch (irq->type) {
	case NPK_EP_IRQ_MSI:
		max = lim->msi_vectors;
		name = "MSI";
		break;
	case NPK_EP_IRQ_MSIX:
		max = lim->msix_vectors;
		name = "MSI-X";
		break;
	default:
		npk_msg(msg, msglen, "irq: type %u is neither MSI (%u) nor MSI-X (%u)", irq->type,
			NPK_EP_IRQ_MSI, NPK_EP_IRQ_MSIX);
		return -EINVAL;
	}
	if (!max) {
		npk_msg(msg, msglen, "irq: no %s vectors configured", name);
		return -EOPNOTSUPP;
	}
	if (irq->vector < 1 || irq->vector > max) {
		npk_msg(msg, msglen, "irq: %s vector %u outside 1..%u", name, irq->vector, max);
		return -EINVAL;
	}
	return 0;
}

int npk_check_mmap(__u64 offset, __u64 len, const __u64 *region_size, unsigned int nregions,
		   __u64 page_size, unsigned int *region, __u64 *region_off,
		   char *msg, size_t msglen)
{
	__u64 r = offset >> NPK_MMAP_REGION_SHIFT;
	__u64 off = offset & ((1ull << NPK_MMAP_REGION_SHIFT) - 1);
	__u64 limit;

	if (r >= nregions || !region_size[r]) {
		npk_msg(msg, msglen, "mmap: offset 0x%llx selects region %llu, which does not exist",
			(npk_ull)offset, (npk_ull)r);
		return -EINVAL;
	}
	if (off % page_size) {
		npk_msg(msg, msglen, "mmap: offset 0x%llx in region %llu is not a multiple of the "
			"page size %llu", (npk_ull)off, (npk_ull)r, (npk_ull)page_size);
		return -EINVAL;
	}
	limit = npk_round_up(region_size[r], page_size);
	if (len == 0 || off > limit || len > limit - off) {
		npk_msg(msg, msglen, "mmap: offset %llu + length %llu beyond region %llu size %llu",
			(npk_ull)off, (npk_ull)len, (npk_ull)r, (npk_ull)region_size[r]);
		return -EINVAL;
	}
	*region = (unsigned int)r;
	*region_off = off;
	return 0;
}

int npk_check_host_win_size(__u64 size, __u64 page_size, char *msg, size_t msglen)
{
	if (size == 0)
		return 0;   /* no host window: the link runs in BAR-only mode */
	if (size % page_size || size > NPK_HOST_MAX_WIN) {
		npk_msg(msg, msglen, "win_size: %llu must be a multiple of the page size %llu "
			"up to %llu", (npk_ull)size, (npk_ull)page_size,
			(npk_ull)NPK_HOST_MAX_WIN);
		return -EINVAL;
	}
	return 0;
}

int npk_check_vector_mask(__u32 mask, __u32 nvectors, char *msg, size_t msglen)
{
	__u32 valid = nvectors >= 32 ? ~0u : (1u << nvectors) - 1;

	if (!nvectors) {
		npk_msg(msg, msglen, "vectors: the device has no interrupt vectors");
		return -EOPNOTSUPP;
	}
	if (!mask || (mask & ~valid)) {
		npk_msg(msg, msglen, "vectors: mask 0x%x selects none of or more than the "
			"device's %u vectors (valid mask 0x%x)", mask, nvectors, valid);
		return -EINVAL;
	}
	return 0;
}

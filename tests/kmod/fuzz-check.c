/* libFuzzer target for kmod/shared/npk-check.c: arbitrary ioctl arguments,
 * mmap offsets and configfs values. Whatever a check accepts must satisfy
 * the property the kernel code relies on right after it (ranges inside
 * their region, no wrap, layout inside the BAR); a violation aborts, which
 * libFuzzer reports with the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "npk-check.h"
#include "fuzz-input.h"

static void fuzz_dma(const uint8_t **p, size_t *left)
{
	struct npk_ep_dma d;
	struct npk_ep_limits lim;
	uint8_t align_shift;
	char msg[160];

	take(p, left, &d, sizeof(d));
	take(p, left, &lim, sizeof(lim));
	take(p, left, &align_shift, 1);
	lim.dma_align = 1u << (align_shift % 13);     /* the driver's is a power of two */
	if (npk_check_ep_dma(&d, &lim, msg, sizeof(msg)))
		return;
	check(d.region < NPK_EP_NREGIONS);
	check(d.len >= 1 && d.len <= lim.max_xfer);
	check(d.offset <= lim.region_size[d.region]);
	check(d.len <= lim.region_size[d.region] - d.offset);
	check(d.host_addr + (d.len - 1) >= d.host_addr);
	check(d.offset % lim.dma_align == 0 && d.host_addr % lim.dma_align == 0 &&
	      d.len % lim.dma_align == 0);
	check(lim.window.size != 0);
	check(d.host_addr >= lim.window.bus_addr);
	check(d.host_addr - lim.window.bus_addr + d.len <= lim.window.size);
}

static void fuzz_window(const uint8_t **p, size_t *left)
{
	struct npk_ep_window w;
	char msg[160];

	take(p, left, &w, sizeof(w));
	if (npk_check_ep_window(&w, msg, sizeof(msg)) || !w.size)
		return;
	check(w.bus_addr % NPL_PAGE == 0 && w.size % NPL_PAGE == 0);
	check(w.bus_addr + (w.size - 1) >= w.bus_addr);
}

static void fuzz_irq(const uint8_t **p, size_t *left)
{
	struct npk_ep_irq irq;
	struct npk_ep_limits lim;
	char msg[160];

	take(p, left, &irq, sizeof(irq));
	take(p, left, &lim, sizeof(lim));
	if (npk_check_ep_irq(&irq, &lim, msg, sizeof(msg)))
		return;
	check(irq.vector >= 1);
	check(irq.type == NPK_EP_IRQ_MSI ? irq.vector <= lim.msi_vectors :
	      irq.type == NPK_EP_IRQ_MSIX && irq.vector <= lim.msix_vectors);
}

static void fuzz_mmap(const uint8_t **p, size_t *left)
{
	__u64 sizes[NPK_HOST_NREGIONS], offset, len, roff;
	unsigned int region;
	uint8_t page_shift;
	char msg[160];

	take(p, left, sizes, sizeof(sizes));
	take(p, left, &offset, sizeof(offset));
	take(p, left, &len, sizeof(len));
	take(p, left, &page_shift, 1);
	for (region = 0; region < NPK_HOST_NREGIONS; region++)
		sizes[region] &= (1ull << 40) - 1;    /* real regions are far below 2^40 */
	if (npk_check_mmap(offset, len, sizes, NPK_HOST_NREGIONS, 1ull << (12 + page_shift % 5),
			   &region, &roff, msg, sizeof(msg)))
		return;
	check(region < NPK_HOST_NREGIONS && sizes[region] != 0);
	check(NPK_MMAP_OFFSET(region) + roff == offset);
	check(len >= 1);
	check(roff + len <= ((sizes[region] + (1ull << 16) - 1) & ~((1ull << 16) - 1)));
}

static void fuzz_layout(const uint8_t **p, size_t *left)
{
	struct npk_epf_config cfg;
	struct npk_epc_caps caps;
	struct npk_epf_layout lay;
	char msg[160];
	uint8_t flags;

	take(p, left, &cfg, sizeof(cfg));
	/* Field by field: arbitrary bytes are not valid bools. */
	memset(&caps, 0, sizeof(caps));
	take(p, left, &flags, 1);
	caps.msi_capable = flags & 1;
	caps.msix_capable = (flags >> 1) & 1;
	take(p, left, &caps.reserved_bar_mask, sizeof(caps.reserved_bar_mask));
	take(p, left, &caps.fixed_64bit_mask, sizeof(caps.fixed_64bit_mask));
	take(p, left, caps.fixed_size, sizeof(caps.fixed_size));
	take(p, left, &caps.align, sizeof(caps.align));
	if (npk_epf_compute_layout(&cfg, &caps, &lay, msg, sizeof(msg)))
		return;
	check(cfg.bar <= 5 && !(caps.reserved_bar_mask & (1u << cfg.bar)));
	check(lay.bar_size >= NPK_EPF_MIN_BAR && lay.bar_size <= NPK_EPF_MAX_BAR);
	check((lay.bar_size & (lay.bar_size - 1)) == 0);
	check(lay.shm_size >= NPK_EPF_MIN_BAR && lay.shm_size <= lay.bar_size);
	check(lay.shm_size % NPL_PAGE == 0);
	check(cfg.nchannels >= 1 && cfg.nchannels <= NPK_EPF_MAX_CHANNELS);
	check(cfg.msi <= NPK_EPF_MAX_MSI && cfg.msix <= NPK_EPF_MAX_MSIX);
	if (cfg.msix) {
		check(lay.msix_table_off >= lay.shm_size);
		check(lay.msix_pba_off >= lay.msix_table_off + (__u64)cfg.msix * NPK_MSIX_ENTRY_SIZE);
		check(lay.msix_pba_off + (cfg.msix + 63) / 64 * 8 <= lay.bar_size);
		check(lay.msix_table_off % 8 == 0 && lay.msix_pba_off % 8 == 0);
	} else {
		check(lay.shm_size == lay.bar_size);
	}
}

static void fuzz_vectors(const uint8_t **p, size_t *left)
{
	__u32 mask, nvec;
	char msg[160];

	take(p, left, &mask, sizeof(mask));
	take(p, left, &nvec, sizeof(nvec));
	nvec %= 40;
	if (npk_check_vector_mask(mask, nvec, msg, sizeof(msg)))
		return;
	check(mask != 0 && nvec >= 1);
	check(nvec >= 32 || (mask >> nvec) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data;
	size_t left = size;
	uint8_t which;

	take(&p, &left, &which, 1);
	switch (which % 6) {
	case 0: fuzz_dma(&p, &left); break;
	case 1: fuzz_irq(&p, &left); break;
	case 2: fuzz_mmap(&p, &left); break;
	case 3: fuzz_layout(&p, &left); break;
	case 4: fuzz_vectors(&p, &left); break;
	default: fuzz_window(&p, &left); break;
	}
	return 0;
}

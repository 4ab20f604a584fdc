/* kmod/shared/npk-check.c: the validation and layout logic both kernel
 * modules run on every ioctl, mmap and configfs bind, tested in userspace. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "npk-check.h"

static char msg[160];

/* The message names the value and the limit. */
static void assert_msg_has(const char *a, const char *b)
{
	if (!strstr(msg, a) || (b && !strstr(msg, b)))
		fail_msg("message \"%s\" lacks \"%s\"%s%s", msg, a, b ? " or " : "", b ? b : "");
}

/* ---- EP BAR layout ------------------------------------------------------ */

static struct npk_epf_config cfg_default(void)
{
	struct npk_epf_config c = {
		.vendor = 0x1234, .device = 0x4e42, .bar = 0, .bar_size = 1 << 20,
		.nchannels = 4, .msi = 0, .msix = 0, .stage_size = 4 << 20,
	};
	return c;
}

static struct npk_epc_caps caps_default(void)
{
	struct npk_epc_caps c = { .msi_capable = true, .msix_capable = true, .align = 4096 };
	return c;
}

static void layout_without_msix_gives_whole_bar_to_link(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), 0);
	assert_int_equal(l.bar_size, 1 << 20);
	assert_int_equal(l.shm_size, 1 << 20);
	assert_int_equal(l.msix_table_off, 0);
	assert_int_equal(l.msix_pba_off, 0);
	assert_false(l.bar64);
}

static void layout_msix_table_and_pba_on_last_page(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.msix = 32;     /* table 512 bytes + PBA 8 bytes: one page */
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), 0);
	assert_int_equal(l.shm_size, (1 << 20) - 4096);
	assert_int_equal(l.msix_table_off, (1 << 20) - 4096);
	assert_int_equal(l.msix_pba_off, (1 << 20) - 4096 + 32 * 16);
}

static void layout_msix_2048_reserves_nine_pages(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.msix = 2048;   /* table 32768 + PBA 256 = 33024 bytes -> 9 pages */
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), 0);
	assert_int_equal(l.shm_size, (1 << 20) - 9 * 4096);
	assert_int_equal(l.msix_table_off, l.shm_size);
	assert_int_equal(l.msix_pba_off, l.shm_size + 32768);
	assert_int_equal(l.msix_pba_off % 8, 0);
}

static void layout_size_zero_takes_controller_fixed_size(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.bar = 2;
	c.bar_size = 0;
	k.fixed_size[2] = 256 << 10;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), 0);
	assert_int_equal(l.bar_size, 256 << 10);
	assert_int_equal(l.shm_size, 256 << 10);
}

static void layout_size_zero_without_fixed_size_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.bar_size = 0;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("bar_size: 0", "BAR0");
}

static void layout_size_other_than_fixed_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	k.fixed_size[0] = 64 << 10;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("1048576", "65536");
}

static void layout_size_not_power_of_two_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.bar_size = 3 << 20;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("3145728", "power of two");
}

static void layout_size_below_minimum_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.bar_size = 4096;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("4096", "8192");
}

static void layout_size_above_maximum_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.bar_size = 2ull << 30;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("2147483648", "1073741824");
}

static void layout_bar_number_above_5_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.bar = 6;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("bar: 6", "5");
}

static void layout_reserved_bar_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.bar = 4;
	k.reserved_bar_mask = 1u << 4;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("BAR4", "reserved");
}

static void layout_fixed_64bit_bar_flagged(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.bar = 2;
	k.fixed_64bit_mask = 1u << 2;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), 0);
	assert_true(l.bar64);
}

static void layout_64bit_bar5_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.bar = 5;
	k.fixed_64bit_mask = 1u << 5;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("BAR5", "64-bit");
}

static void layout_msi_above_32_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.msi = 33;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("33", "32");
}

static void layout_msix_above_2048_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.msix = 2049;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("2049", "2048");
}

static void layout_msi_without_capability_unsupported(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.msi = 4;
	k.msi_capable = false;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EOPNOTSUPP);
	assert_msg_has("msi_interrupts: 4", "not MSI capable");
}

static void layout_msix_without_capability_unsupported(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.msix = 4;
	k.msix_capable = false;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EOPNOTSUPP);
	assert_msg_has("msix_interrupts: 4", "not MSI-X capable");
}

static void layout_channels_zero_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.nchannels = 0;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("channels: 0", "1..64");
}

static void layout_channels_above_64_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.nchannels = 65;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("channels: 65", "1..64");
}

static void layout_invalid_vendor_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.vendor = 0xffff;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("0xffff", NULL);
}

static void layout_stage_not_page_multiple_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.stage_size = 4096 + 512;
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("4608", "4096");
}

static void layout_msix_table_leaving_too_little_link_space_rejected(void **state)
{
	struct npk_epf_config c = cfg_default();
	struct npk_epc_caps k = caps_default();
	struct npk_epf_layout l;

	c.bar_size = 8192;
	c.msix = 256;    /* table 4096 + PBA 32: two pages, nothing left */
	assert_int_equal(npk_epf_compute_layout(&c, &k, &l, msg, sizeof(msg)), -ENOSPC);
	assert_msg_has("256 vectors", "8192");
}

/* ---- EP DMA ioctl ------------------------------------------------------- */

static struct npk_ep_limits lim_default(void)
{
	struct npk_ep_limits l = {
		.region_size = { 1 << 20, 4 << 20 }, .dma_align = 4, .max_xfer = 4 << 20,
		.msi_vectors = 4, .msix_vectors = 0,
		.window = { .bus_addr = 0x3600000, .size = 4 << 20 },
	};
	return l;
}

static struct npk_ep_dma dma_default(void)
{
	struct npk_ep_dma d = {
		.dir = NPK_EP_DMA_TO_HOST, .region = NPK_EP_REGION_STAGE, .offset = 8192,
		.host_addr = 0x36b3000, .len = 65536, .flags = 0,
	};
	return d;
}

static void dma_valid_request_accepted(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), 0);
	d.dir = NPK_EP_DMA_FROM_HOST;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), 0);
}

static void dma_range_ending_at_region_end_accepted(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.region = NPK_EP_REGION_BAR;
	d.offset = (1 << 20) - 4096;
	d.len = 4096;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), 0);
}

static void dma_range_beyond_region_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.region = NPK_EP_REGION_BAR;
	d.offset = (1 << 20) - 4096;
	d.len = 8192;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("offset 1044480 + length 8192", "size 1048576");
}

static void dma_offset_overflowing_u64_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.offset = UINT64_MAX - 3;   /* aligned; offset + len wraps to a small value */
	d.len = 8;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
}

static void dma_host_address_wrapping_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	l.window.bus_addr = UINT64_MAX - 65535;
	l.window.size = 65536;
	d.host_addr = UINT64_MAX - 4095;
	d.len = 8192;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("wraps", NULL);
}

static void dma_host_range_ending_at_top_accepted(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	l.window.bus_addr = UINT64_MAX - 65535;
	l.window.size = 65536;
	d.host_addr = UINT64_MAX - 4095;
	d.len = 4096;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), 0);
}

static void dma_range_ending_at_window_end_accepted(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.host_addr = 0x3600000 + (4 << 20) - 65536;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), 0);
}

static void dma_range_crossing_window_end_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.host_addr = 0x3600000 + (4 << 20) - 4096;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("0x39ff000 + length 65536", "window 0x3600000 + 4194304");
}

static void dma_below_window_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.host_addr = 0x35ff000;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("0x35ff000", "window 0x3600000");
}

static void dma_without_window_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	l.window.size = 0;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("no host window", "0x36b3000");
}

/* ---- EP host window ioctl ----------------------------------------------- */

static void window_page_aligned_accepted(void **state)
{
	struct npk_ep_window w = { .bus_addr = 0x4100000, .size = 1 << 20 };

	assert_int_equal(npk_check_ep_window(&w, msg, sizeof(msg)), 0);
}

static void window_size_zero_clears(void **state)
{
	struct npk_ep_window w = { .bus_addr = 0x1234, .size = 0 };

	assert_int_equal(npk_check_ep_window(&w, msg, sizeof(msg)), 0);
}

static void window_unaligned_rejected(void **state)
{
	struct npk_ep_window w = { .bus_addr = 0x4100200, .size = 1 << 20 };

	assert_int_equal(npk_check_ep_window(&w, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("0x4100200", "multiples of 4096");
}

static void window_wrapping_rejected(void **state)
{
	struct npk_ep_window w = { .bus_addr = UINT64_MAX - 4095, .size = 8192 };

	assert_int_equal(npk_check_ep_window(&w, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("wraps", NULL);
}

static void dma_zero_length_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.len = 0;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("length 0", "4194304");
}

static void dma_length_above_max_xfer_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.offset = 0;
	d.len = (4 << 20) + 4;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("4194308", "4194304");
}

static void dma_misaligned_offset_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.offset = 8194;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("0x2002", "multiples of 4");
}

static void dma_misaligned_host_address_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.host_addr = 0x36b3001;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("0x36b3001", "multiples of 4");
}

static void dma_misaligned_length_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.len = 513;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("513", "multiples of 4");
}

static void dma_unknown_direction_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.dir = 3;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("direction 3", NULL);
}

static void dma_nonzero_flags_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.flags = 1;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("flags 0x1", NULL);
}

static void dma_unknown_region_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	d.region = NPK_EP_NREGIONS;
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("region 2", NULL);
}

static void dma_absent_region_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_dma d = dma_default();

	l.region_size[NPK_EP_REGION_STAGE] = 0;   /* stage_size 0, or not bound */
	assert_int_equal(npk_check_ep_dma(&d, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("region 1", "does not exist");
}

/* ---- EP interrupt ioctl ------------------------------------------------- */

static void irq_msi_vector_in_range_accepted(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_irq i = { .type = NPK_EP_IRQ_MSI, .vector = 4 };

	assert_int_equal(npk_check_ep_irq(&i, &l, msg, sizeof(msg)), 0);
	i.vector = 1;
	assert_int_equal(npk_check_ep_irq(&i, &l, msg, sizeof(msg)), 0);
}

static void irq_vector_zero_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_irq i = { .type = NPK_EP_IRQ_MSI, .vector = 0 };

	assert_int_equal(npk_check_ep_irq(&i, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("vector 0", "1..4");
}

static void irq_vector_above_count_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_irq i = { .type = NPK_EP_IRQ_MSI, .vector = 5 };

	assert_int_equal(npk_check_ep_irq(&i, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("vector 5", "1..4");
}

static void irq_type_without_vectors_unsupported(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_irq i = { .type = NPK_EP_IRQ_MSIX, .vector = 1 };

	assert_int_equal(npk_check_ep_irq(&i, &l, msg, sizeof(msg)), -EOPNOTSUPP);
	assert_msg_has("no MSI-X vectors", NULL);
}

static void irq_unknown_type_rejected(void **state)
{
	struct npk_ep_limits l = lim_default();
	struct npk_ep_irq i = { .type = 0, .vector = 1 };

	assert_int_equal(npk_check_ep_irq(&i, &l, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("type 0", NULL);
}

/* ---- mmap offsets (both modules) --------------------------------------- */

static const uint64_t host_regions[NPK_HOST_NREGIONS] = {
	0, 0, 16 << 20, 0, 0, 0, 4 << 20,   /* ivshmem: BAR2 16 MiB; window 4 MiB */
};

static void mmap_offset_selects_region_and_offset(void **state)
{
	unsigned int r;
	uint64_t off;

	assert_int_equal(npk_check_mmap(NPK_MMAP_OFFSET(NPK_HOST_REGION_WIN) + 8192, 4096,
					 (const __u64 *)host_regions, NPK_HOST_NREGIONS, 4096,
					 &r, (__u64 *)&off, msg, sizeof(msg)), 0);
	assert_int_equal(r, NPK_HOST_REGION_WIN);
	assert_int_equal(off, 8192);
	assert_int_equal(npk_check_mmap(NPK_MMAP_OFFSET(2), 16 << 20,
					 (const __u64 *)host_regions, NPK_HOST_NREGIONS, 4096,
					 &r, (__u64 *)&off, msg, sizeof(msg)), 0);
	assert_int_equal(r, 2);
	assert_int_equal(off, 0);
}

static void mmap_absent_region_rejected(void **state)
{
	unsigned int r;
	uint64_t off;

	assert_int_equal(npk_check_mmap(NPK_MMAP_OFFSET(0), 4096, (const __u64 *)host_regions,
					 NPK_HOST_NREGIONS, 4096, &r, (__u64 *)&off, msg,
					 sizeof(msg)), -EINVAL);
	assert_msg_has("region 0", "does not exist");
	assert_int_equal(npk_check_mmap(NPK_MMAP_OFFSET(7), 4096, (const __u64 *)host_regions,
					 NPK_HOST_NREGIONS, 4096, &r, (__u64 *)&off, msg,
					 sizeof(msg)), -EINVAL);
	assert_msg_has("region 7", NULL);
}

static void mmap_beyond_region_rejected(void **state)
{
	unsigned int r;
	uint64_t off;

	assert_int_equal(npk_check_mmap(NPK_MMAP_OFFSET(NPK_HOST_REGION_WIN) + (4 << 20) - 4096,
					 8192, (const __u64 *)host_regions, NPK_HOST_NREGIONS,
					 4096, &r, (__u64 *)&off, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("4190208 + length 8192", "size 4194304");
}

static void mmap_region_rounded_up_to_page(void **state)
{
	const uint64_t regions[2] = { 6000, 0 };   /* a BAR part not a page multiple */
	unsigned int r;
	uint64_t off;

	assert_int_equal(npk_check_mmap(0, 8192, (const __u64 *)regions, 2, 4096, &r,
					 (__u64 *)&off, msg, sizeof(msg)), 0);
	assert_int_equal(npk_check_mmap(0, 12288, (const __u64 *)regions, 2, 4096, &r,
					 (__u64 *)&off, msg, sizeof(msg)), -EINVAL);
}

static void mmap_unaligned_offset_rejected(void **state)
{
	unsigned int r;
	uint64_t off;

	assert_int_equal(npk_check_mmap(NPK_MMAP_OFFSET(2) + 512, 4096,
					 (const __u64 *)host_regions, NPK_HOST_NREGIONS, 4096,
					 &r, (__u64 *)&off, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("0x200", "page size 4096");
}

/* ---- host window size parameter ---------------------------------------- */

static void win_size_zero_means_bar_only(void **state)
{
	assert_int_equal(npk_check_host_win_size(0, 4096, msg, sizeof(msg)), 0);
}

static void win_size_page_multiple_accepted(void **state)
{
	assert_int_equal(npk_check_host_win_size(4 << 20, 4096, msg, sizeof(msg)), 0);
}

static void win_size_not_page_multiple_rejected(void **state)
{
	assert_int_equal(npk_check_host_win_size(5000, 4096, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("5000", "4096");
}

static void win_size_above_maximum_rejected(void **state)
{
	assert_int_equal(npk_check_host_win_size(2ull << 30, 4096, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("2147483648", "1073741824");
}

/* ---- host per-file vector mask ----------------------------------------- */

static void vector_mask_within_vectors_accepted(void **state)
{
	assert_int_equal(npk_check_vector_mask(0x2, 2, msg, sizeof(msg)), 0);
	assert_int_equal(npk_check_vector_mask(0x3, 2, msg, sizeof(msg)), 0);
	assert_int_equal(npk_check_vector_mask(0xffffffffu, 32, msg, sizeof(msg)), 0);
}

static void vector_mask_beyond_vectors_rejected(void **state)
{
	assert_int_equal(npk_check_vector_mask(0x4, 2, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("mask 0x4", "valid mask 0x3");
}

static void vector_mask_empty_rejected(void **state)
{
	assert_int_equal(npk_check_vector_mask(0, 2, msg, sizeof(msg)), -EINVAL);
	assert_msg_has("mask 0x0", "2 vectors");
}

static void vector_mask_without_vectors_unsupported(void **state)
{
	assert_int_equal(npk_check_vector_mask(0x1, 0, msg, sizeof(msg)), -EOPNOTSUPP);
	assert_msg_has("no interrupt vectors", NULL);
}

/* ---- uapi ------------------------------------------------------------- */

static void ioctl_numbers_are_distinct_and_sized(void **state)
{
	const unsigned long nr[] = {
		NPK_HOST_IOC_INFO, NPK_HOST_IOC_IRQ_COUNTS, NPK_HOST_IOC_SET_VECTORS, NPK_EP_IOC_INFO,
		NPK_EP_IOC_DMA, NPK_EP_IOC_RAISE_IRQ, NPK_EP_IOC_SET_WINDOW,
	};
	size_t i, j;

	for (i = 0; i < sizeof(nr) / sizeof(nr[0]); i++)
		for (j = i + 1; j < sizeof(nr) / sizeof(nr[0]); j++)
			assert_true(nr[i] != nr[j]);
	assert_int_equal(_IOC_SIZE(NPK_HOST_IOC_INFO), sizeof(struct npk_host_info));
	assert_int_equal(_IOC_SIZE(NPK_EP_IOC_DMA), 32);
	assert_int_equal(_IOC_TYPE(NPK_EP_IOC_RAISE_IRQ), NPK_IOC_MAGIC);
	assert_int_equal(_IOC_DIR(NPK_EP_IOC_DMA), _IOC_WRITE);
	assert_int_equal(_IOC_DIR(NPK_EP_IOC_INFO), _IOC_READ);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(layout_without_msix_gives_whole_bar_to_link),
		cmocka_unit_test(layout_msix_table_and_pba_on_last_page),
		cmocka_unit_test(layout_msix_2048_reserves_nine_pages),
		cmocka_unit_test(layout_size_zero_takes_controller_fixed_size),
		cmocka_unit_test(layout_size_zero_without_fixed_size_rejected),
		cmocka_unit_test(layout_size_other_than_fixed_rejected),
		cmocka_unit_test(layout_size_not_power_of_two_rejected),
		cmocka_unit_test(layout_size_below_minimum_rejected),
		cmocka_unit_test(layout_size_above_maximum_rejected),
		cmocka_unit_test(layout_bar_number_above_5_rejected),
		cmocka_unit_test(layout_reserved_bar_rejected),
		cmocka_unit_test(layout_fixed_64bit_bar_flagged),
		cmocka_unit_test(layout_64bit_bar5_rejected),
		cmocka_unit_test(layout_msi_above_32_rejected),
		cmocka_unit_test(layout_msix_above_2048_rejected),
		cmocka_unit_test(layout_msi_without_capability_unsupported),
		cmocka_unit_test(layout_msix_without_capability_unsupported),
		cmocka_unit_test(layout_channels_zero_rejected),
		cmocka_unit_test(layout_channels_above_64_rejected),
		cmocka_unit_test(layout_invalid_vendor_rejected),
		cmocka_unit_test(layout_stage_not_page_multiple_rejected),
		cmocka_unit_test(layout_msix_table_leaving_too_little_link_space_rejected),
		cmocka_unit_test(dma_valid_request_accepted),
		cmocka_unit_test(dma_range_ending_at_region_end_accepted),
		cmocka_unit_test(dma_range_beyond_region_rejected),
		cmocka_unit_test(dma_offset_overflowing_u64_rejected),
		cmocka_unit_test(dma_host_address_wrapping_rejected),
		cmocka_unit_test(dma_host_range_ending_at_top_accepted),
		cmocka_unit_test(dma_range_ending_at_window_end_accepted),
		cmocka_unit_test(dma_range_crossing_window_end_rejected),
		cmocka_unit_test(dma_below_window_rejected),
		cmocka_unit_test(dma_without_window_rejected),
		cmocka_unit_test(window_page_aligned_accepted),
		cmocka_unit_test(window_size_zero_clears),
		cmocka_unit_test(window_unaligned_rejected),
		cmocka_unit_test(window_wrapping_rejected),
		cmocka_unit_test(dma_zero_length_rejected),
		cmocka_unit_test(dma_length_above_max_xfer_rejected),
		cmocka_unit_test(dma_misaligned_offset_rejected),
		cmocka_unit_test(dma_misaligned_host_address_rejected),
		cmocka_unit_test(dma_misaligned_length_rejected),
		cmocka_unit_test(dma_unknown_direction_rejected),
		cmocka_unit_test(dma_nonzero_flags_rejected),
		cmocka_unit_test(dma_unknown_region_rejected),
		cmocka_unit_test(dma_absent_region_rejected),
		cmocka_unit_test(irq_msi_vector_in_range_accepted),
		cmocka_unit_test(irq_vector_zero_rejected),
		cmocka_unit_test(irq_vector_above_count_rejected),
		cmocka_unit_test(irq_type_without_vectors_unsupported),
		cmocka_unit_test(irq_unknown_type_rejected),
		cmocka_unit_test(mmap_offset_selects_region_and_offset),
		cmocka_unit_test(mmap_absent_region_rejected),
		cmocka_unit_test(mmap_beyond_region_rejected),
		cmocka_unit_test(mmap_region_rounded_up_to_page),
		cmocka_unit_test(mmap_unaligned_offset_rejected),
		cmocka_unit_test(win_size_zero_means_bar_only),
		cmocka_unit_test(win_size_page_multiple_accepted),
		cmocka_unit_test(win_size_not_page_multiple_rejected),
		cmocka_unit_test(win_size_above_maximum_rejected),
		cmocka_unit_test(vector_mask_within_vectors_accepted),
		cmocka_unit_test(vector_mask_beyond_vectors_rejected),
		cmocka_unit_test(vector_mask_empty_rejected),
		cmocka_unit_test(vector_mask_without_vectors_unsupported),
		cmocka_unit_test(ioctl_numbers_are_distinct_and_sized),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests: link strings, layout computation and layout validation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "internal.h"

static void spec_shm_path_has_default_window(void **st)
{
	struct npt_spec s;
	char err[512];

	assert_int_equal(npt_spec_parse("shm:/dev/shm/x", &s, err, sizeof(err)), 0);
	assert_int_equal(s.kind, NPT_KIND_SHM);
	assert_string_equal(s.bar_path, "/dev/shm/x");
	assert_string_equal(s.win_path, "/dev/shm/x.win");
	assert_true(s.win_default);
	assert_int_equal(s.win_base, 0);
}

static void spec_shm_explicit_files_and_base(void **st)
{
	struct npt_spec s;
	char err[512];

	assert_int_equal(npt_spec_parse("shm:bar=/a/b,win=/c/d,win_base=0x100000", &s, err, sizeof(err)), 0);
	assert_string_equal(s.bar_path, "/a/b");
	assert_string_equal(s.win_path, "/c/d");
	assert_false(s.win_default);
	assert_int_equal(s.win_base, 0x100000);
}

static void spec_shm_bar_only(void **st)
{
	struct npt_spec s;
	char err[512];

	assert_int_equal(npt_spec_parse("shm:bar=/dev/shm/ivshmem", &s, err, sizeof(err)), 0);
	assert_string_equal(s.bar_path, "/dev/shm/ivshmem");
	assert_string_equal(s.win_path, "");
}

static void spec_shm_dma_model_options(void **st)
{
	struct npt_spec s;
	char err[512];

	assert_int_equal(npt_spec_parse("shm:/x,dma_gbps=16,dma_lat_us=1.5", &s, err, sizeof(err)), 0);
	assert_true(s.dma_gbps == 16.0);
	assert_true(s.dma_lat_us == 1.5);
}

static void spec_pci_address_forms(void **st)
{
	struct npt_spec s;
	char err[512];

	assert_int_equal(npt_spec_parse("pci:0000:00:02.0,bar=2", &s, err, sizeof(err)), 0);
	assert_int_equal(s.kind, NPT_KIND_PCI);
	assert_false(s.pci_by_id);
	assert_int_equal(s.bus, 0);
	assert_int_equal(s.dev, 2);
	assert_int_equal(s.func, 0);
	assert_int_equal(s.bar, 2);
	assert_int_equal(npt_spec_parse("pci:01:1f.7", &s, err, sizeof(err)), 0);
	assert_int_equal(s.domain, 0);
	assert_int_equal(s.bus, 1);
	assert_int_equal(s.dev, 0x1f);
	assert_int_equal(s.func, 7);
	assert_int_equal(s.bar, -1);
}

static void spec_pci_vendor_device(void **st)
{
	struct npt_spec s;
	char err[512];

	assert_int_equal(npt_spec_parse("pci:1af4:1110", &s, err, sizeof(err)), 0);
	assert_true(s.pci_by_id);
	assert_int_equal(s.vendor, 0x1af4);
	assert_int_equal(s.device, 0x1110);
	assert_int_equal(s.bar, -1);
}

static void spec_epf_path(void **st)
{
	struct npt_spec s;
	char err[512];

	assert_int_equal(npt_spec_parse("epf:/dev/nbd-pcie-epf0", &s, err, sizeof(err)), 0);
	assert_int_equal(s.kind, NPT_KIND_EPF);
	assert_string_equal(s.epf_path, "/dev/nbd-pcie-epf0");
	assert_false(s.epf_bar_only);
	assert_int_equal(npt_spec_parse("epf:/dev/nbd-pcie-ep1,bar_only", &s, err, sizeof(err)), 0);
	assert_string_equal(s.epf_path, "/dev/nbd-pcie-ep1");
	assert_true(s.epf_bar_only);
}

static void expect_bad(const char *spec, const char *needle)
{
	struct npt_spec s;
	char err[1024] = "";

	assert_int_equal(npt_spec_parse(spec, &s, err, sizeof(err)), -EINVAL);
	if (!strstr(err, needle) || !strstr(err, "accepted forms: shm:PATH"))
		fail_msg("spec \"%s\": message \"%s\" lacks \"%s\" or the accepted forms", spec, err, needle);
}

static void spec_errors_name_value_and_forms(void **st)
{
	expect_bad("tcp:localhost", "unknown backend prefix");
	expect_bad("shm:", "shm: no BAR file");
	expect_bad("shm:bar=", "bar= PATH is empty");
	expect_bad("shm:bar=/x,win_base=4097,win=/y", "win_base \"4097\" is not a multiple of 4096");
	expect_bad("shm:bar=/x,win_base=4096", "win_base without win=");
	expect_bad("shm:/x,frob=1", "unknown option \"frob\"");
	expect_bad("shm:/x,dma_gbps=fast", "dma_gbps \"fast\"");
	expect_bad("pci:0000:00:02.0,bar=6", "bar \"6\" is not a BAR index 0..5");
	expect_bad("pci:0000:00:20.0", "out of range");
	expect_bad("pci:zz:00.0", "is not DDDD:BB:DD.F");
	expect_bad("pci:12345:1", "neither DDDD:BB:DD.F nor VVVV:DDDD");
	expect_bad("epf:", "no device path");
	expect_bad("epf:,bar_only", "no device path");
	expect_bad("epf:/dev/nbd-pcie-ep0,window=1", "epf: unknown option \"window=1\"");
}

static void epf_open_missing_device_names_it(void **st)
{
	struct npt_link *l = (void *)1;
	char err[512];

	assert_int_equal(npt_link_open("epf:/nonexistent/nbd-pcie-ep9", NPT_ROLE_EP, NULL, &l, err, sizeof(err)),
			 -ENOENT);
	assert_null(l);
	assert_non_null(strstr(err, "/nonexistent/nbd-pcie-ep9"));
	assert_non_null(strstr(err, "configfs"));
}

static void epf_link_is_ep_only(void **st)
{
	struct npt_link *l = (void *)1;
	char err[512];

	assert_int_equal(npt_link_open("epf:/dev/nbd-pcie-ep0", NPT_ROLE_HOST, NULL, &l, err, sizeof(err)),
			 -EINVAL);
	assert_null(l);
	assert_non_null(strstr(err, "EP-side only"));
}

static void pci_link_is_host_only(void **st)
{
	struct npt_link *l = (void *)1;
	char err[512];

	assert_int_equal(npt_link_open("pci:0000:00:02.0", NPT_ROLE_EP, NULL, &l, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "host-side only"));
}

static void layout_defaults(void **st)
{
	struct npt_layout lay;
	char err[256];

	assert_int_equal(npt_layout_compute(NULL, 0, &lay, err, sizeof(err)), 0);
	assert_int_equal(lay.nchannels, 4);
	assert_int_equal(lay.ring_entries, 128);
	assert_int_equal(lay.max_xfer, 4u << 20);
	assert_int_equal(lay.data_per_chan, 16u << 20);
	assert_int_equal(lay.chan_base % 4096, 0);
	assert_int_equal(lay.chan_stride % 4096, 0);
	assert_true(lay.hp_offset >= 64 + 128 * 64 + lay.stream_size);
	assert_true(lay.payload_offset >= 64 + 128 * 32 + lay.stream_size);
	assert_int_equal(lay.bar_size, lay.chan_base + 4ull * lay.chan_stride);
}

static void layout_rejects_bad_params(void **st)
{
	struct npt_link_params p = { .ring_entries = 100 };
	struct npt_layout lay;
	char err[256];

	assert_int_equal(npt_layout_compute(&p, 0, &lay, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ring_entries 100 is not a power of two in 2..1024"));
	p = (struct npt_link_params){ .nchannels = 65 };
	assert_int_equal(npt_layout_compute(&p, 0, &lay, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nchannels 65 beyond the maximum 64"));
	p = (struct npt_link_params){ .max_xfer = 1 << 20, .data_per_chan = 1 << 19 };
	assert_int_equal(npt_layout_compute(&p, 0, &lay, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "max_xfer 1048576 beyond data_per_chan 524288"));
}

/* A header written from a computed layout, then one field corrupted. */
static void corrupt_and_read(void (*corrupt)(struct npl_bar_header *), const char *needle)
{
	struct npt_link_params p = { .nchannels = 2, .ring_entries = 8, .data_per_chan = 1 << 20,
				     .max_xfer = 1 << 18 };
	struct npt_layout lay, got;
	struct npl_bar_header h;
	char err[512] = "";

	memset(&h, 0, sizeof(h));
	assert_int_equal(npt_layout_compute(&p, 0, &lay, err, sizeof(err)), 0);
	npt_layout_write(&h, &lay);
	assert_int_equal(npt_layout_read(&h, lay.bar_size, &got, err, sizeof(err)), 0);
	assert_memory_equal(&got, &lay, sizeof(lay));
	corrupt(&h);
	assert_int_equal(npt_layout_read(&h, lay.bar_size, &got, err, sizeof(err)), -EPROTO);
	if (!strstr(err, needle))
		fail_msg("message \"%s\" lacks \"%s\"", err, needle);
}

static void c_magic(struct npl_bar_header *h) { npt_wr32(&h->magic, 0x12345678); }
static void c_version(struct npl_bar_header *h) { h->version = htole16(9); }
static void c_nch(struct npl_bar_header *h) { npt_wr32(&h->nchannels, 65); }
static void c_ring(struct npl_bar_header *h) { npt_wr32(&h->ring_entries, 12); }
static void c_xfer(struct npl_bar_header *h) { npt_wr32(&h->max_xfer, 2 << 20); }
static void c_hpoff(struct npl_bar_header *h) { npt_wr32(&h->hp_offset, 4096); }
static void c_payoff(struct npl_bar_header *h) { npt_wr32(&h->payload_offset, 0); }
static void c_stride(struct npl_bar_header *h) { npt_wr32(&h->chan_stride, 8192); }
static void c_barsize(struct npl_bar_header *h) { npt_wr64(&h->bar_size, 1ull << 40); }
static void c_align(struct npl_bar_header *h) { npt_wr64(&h->chan_base, 4096 + 64); }

static void layout_read_rejects_each_corruption(void **st)
{
	corrupt_and_read(c_magic, "magic 0x12345678");
	corrupt_and_read(c_version, "version 9");
	corrupt_and_read(c_nch, "nchannels 65 outside 1..64");
	corrupt_and_read(c_ring, "ring_entries 12");
	corrupt_and_read(c_xfer, "max_xfer 2097152 beyond data_per_chan 1048576");
	corrupt_and_read(c_hpoff, "overlaps the submission ring");
	corrupt_and_read(c_payoff, "overlaps the completion ring");
	corrupt_and_read(c_stride, "beyond chan_stride 8192");
	corrupt_and_read(c_barsize, "BAR mapped");
	corrupt_and_read(c_align, "not a multiple of 4096");
}

static void window_check_limits(void **st)
{
	struct npt_layout lay;
	char err[256];

	assert_int_equal(npt_layout_compute(NULL, NPL_F_HOST_WINDOW, &lay, err, sizeof(err)), 0);
	assert_int_equal(npt_window_check(&lay, 0, 4ull * lay.hp_size, lay.hp_size, 0, err, sizeof(err)), 0);
	assert_int_equal(npt_window_check(&lay, 100, 4ull * lay.hp_size, lay.hp_size, 0, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "bus address 0x64"));
	assert_int_equal(npt_window_check(&lay, 0, lay.hp_size, lay.hp_size, 0, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "below 4 channels"));
	assert_int_equal(npt_window_check(&lay, 0, 4ull * lay.hp_size, 4096, 0, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "channel stride 4096 outside"));
}

/* A shrunk window: the stride must hold the rings and the announced payload
 * area; the area is page-aligned and never above the layout's. */
static void window_check_shrunk_payload(void **st)
{
	struct npt_layout lay;
	char err[256];
	uint64_t stride;

	assert_int_equal(npt_layout_compute(NULL, NPL_F_HOST_WINDOW, &lay, err, sizeof(err)), 0);
	stride = lay.payload_offset + (1u << 20);
	assert_int_equal(npt_window_check(&lay, 0, 4 * stride, stride, 1u << 20, err, sizeof(err)), 0);
	assert_int_equal(npt_window_check(&lay, 0, 4 * stride, stride, 2u << 20, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "channel stride"));
	assert_int_equal(npt_window_check(&lay, 0, 4 * stride, stride, 1000, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "payload area 1000 not a multiple of 4096"));
	assert_int_equal(npt_window_check(&lay, 0, 64ull << 20, 32u << 20, 32u << 20, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "up to data_per_chan 16777216"));
}

/* The host fits its layout into what the window backend gives: all of it
 * when it fits, else shrunk payload areas (and max_xfer), else -ENOSPC. */
static void window_plan_fits_or_shrinks(void **st)
{
	struct npt_layout lay;
	struct npt_winplan wp;
	char err[256];

	assert_int_equal(npt_layout_compute(NULL, NPL_F_HOST_WINDOW, &lay, err, sizeof(err)), 0);
	assert_int_equal(npt_window_plan(&lay, UINT64_MAX, &wp, err, sizeof(err)), 0);
	assert_int_equal(wp.stride, lay.hp_size);
	assert_int_equal(wp.size, 4ull * lay.hp_size);
	assert_int_equal(wp.data, 0);
	assert_int_equal(wp.data_eff, lay.data_per_chan);
	assert_int_equal(wp.max_xfer, lay.max_xfer);

	/* the module's 4 MiB window: 1 MiB per channel, minus the rings */
	assert_int_equal(npt_window_plan(&lay, 4u << 20, &wp, err, sizeof(err)), 0);
	assert_int_equal(wp.stride, 1u << 20);
	assert_int_equal(wp.size, 4u << 20);
	assert_int_equal(wp.data, (1u << 20) - lay.payload_offset);
	assert_int_equal(wp.data_eff, wp.data);
	assert_int_equal(wp.max_xfer, 256u << 10);   /* two in flight, a power of two */
	assert_int_equal(npt_window_check(&lay, 4096, wp.size, wp.stride, wp.data, err, sizeof(err)), 0);
	assert_int_equal(npt_window_xfer(&lay, wp.data), wp.max_xfer);
	assert_int_equal(npt_window_xfer(&lay, 0), lay.max_xfer);

	/* a size that is not a page multiple per channel rounds down */
	assert_int_equal(npt_window_plan(&lay, (4u << 20) + 3 * 4096 + 5, &wp, err, sizeof(err)), 0);
	assert_true(wp.size <= (4u << 20) + 3 * 4096 + 5);
	assert_int_equal(wp.stride % 4096, 0);

	assert_int_equal(npt_window_plan(&lay, 4 * (lay.payload_offset + 4096), &wp, err, sizeof(err)), -ENOSPC);
	assert_non_null(strstr(err, "too small for 4 channels"));
}

static void backoff_spins_then_sleeps_up_to_cap(void **st)
{
	struct npt_backoff b;
	unsigned us = 0, spins = 0, last = 0;

	npt_backoff_reset(&b);
	while ((us = npt_backoff_next_us(&b)) == 0)
		spins++;
	assert_true(spins >= 1000);
	assert_true(us > 0 && us <= 1000);
	for (int i = 0; i < 100; i++) {
		us = npt_backoff_next_us(&b);
		assert_true(us >= last);
		last = us;
	}
	assert_int_equal(last, 1000);
	npt_backoff_reset(&b);
	assert_int_equal(npt_backoff_next_us(&b), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(spec_shm_path_has_default_window),
		cmocka_unit_test(spec_shm_explicit_files_and_base),
		cmocka_unit_test(spec_shm_bar_only),
		cmocka_unit_test(spec_shm_dma_model_options),
		cmocka_unit_test(spec_pci_address_forms),
		cmocka_unit_test(spec_pci_vendor_device),
		cmocka_unit_test(spec_epf_path),
		cmocka_unit_test(spec_errors_name_value_and_forms),
		cmocka_unit_test(epf_open_missing_device_names_it),
		cmocka_unit_test(epf_link_is_ep_only),
		cmocka_unit_test(pci_link_is_host_only),
		cmocka_unit_test(layout_defaults),
		cmocka_unit_test(layout_rejects_bad_params),
		cmocka_unit_test(layout_read_rejects_each_corruption),
		cmocka_unit_test(window_check_limits),
		cmocka_unit_test(window_check_shrunk_payload),
		cmocka_unit_test(window_plan_fits_or_shrinks),
		cmocka_unit_test(backoff_spins_then_sleeps_up_to_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

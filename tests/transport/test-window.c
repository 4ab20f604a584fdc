/* A host window smaller than the EP's layout (docs/transport.md 3.1), on the
 * shm link with the host's win_max= cap standing in for the host module's
 * 4 MiB window: payload areas shrink (and max_xfer with them), data still
 * flows, the EP holds the host to the shrunk area, and a window too small
 * for any payload leaves the link BAR-only. Also: the EP's DMA statistics
 * and direct pushes (npt_ep_complete_from). */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "internal.h"
#include "helpers.h"

/* EP layout: 2 channels, 1 MiB payload areas, 256 KiB max_xfer. */
static const struct npt_link_params ep_params = {
	.nchannels = 2, .ring_entries = 8, .data_per_chan = 1 << 20, .max_xfer = 256 << 10,
};

struct pair {
	char path[128];
	struct npt_link *ep, *host;
	struct npt_chan *ec, *hc;
};

/* Opens both sides; the host caps its window at win_max bytes (0: none);
 * ep_opts: more options of the EP's link (",dma_gbps=8"), or "". */
static void pair_open_ep(struct pair *p, uint64_t win_max, const char *ep_opts)
{
	struct npt_link_params hp = ep_params;
	char spec[256], err[512];
	uint64_t t0;
	int r;

	t_shm_path(p->path, sizeof(p->path), "win");
	snprintf(spec, sizeof(spec), "shm:%s%s", p->path, ep_opts);
	if (npt_link_open(spec, NPT_ROLE_EP, &ep_params, &p->ep, err, sizeof(err)))
		fail_msg("EP open: %s", err);
	snprintf(spec, sizeof(spec), "shm:%s", p->path);
	if (win_max)
		snprintf(spec, sizeof(spec), "shm:%s,win_max=%" PRIu64, p->path, win_max);
	hp.connect_timeout_ms = 3000;
	if (npt_link_open(spec, NPT_ROLE_HOST, &hp, &p->host, err, sizeof(err)))
		fail_msg("host open: %s", err);
	assert_int_equal(npt_chan_open(p->host, 0, &p->hc), 0);
	t0 = t_now_ms();
	while ((r = npt_chan_accept(p->ep, &p->ec)) == -EAGAIN) {
		if (t_now_ms() - t0 > 2000)
			fail_msg("EP did not see the channel within 2 s");
		t_sleep_ms(1);
	}
	assert_int_equal(r, 0);
	assert_int_equal(npt_chan_begin_frames(p->hc), 0);
	assert_int_equal(npt_chan_begin_frames(p->ec), 0);
}

static void pair_open(struct pair *p, uint64_t win_max)
{
	pair_open_ep(p, win_max, "");
}

/* Clean close removes what each side created; a test that failed midway
 * leaves a half-open pair, which teardown closes and removes by name. */
static void pair_close(struct pair *p)
{
	char win[160], reg[160];
	bool clean = p->ep && p->host;

	npt_chan_close(p->hc);
	npt_chan_close(p->ec);
	npt_link_close(p->host);
	npt_link_close(p->ep);
	p->hc = p->ec = NULL;
	p->host = p->ep = NULL;
	if (!p->path[0])
		return;
	snprintf(win, sizeof(win), "%s.win", p->path);
	snprintf(reg, sizeof(reg), "%s.hosts", p->path);
	if (clean) {
		assert_int_equal(access(p->path, F_OK), -1);
		assert_int_equal(access(win, F_OK), -1);
	}
	unlink(p->path);
	unlink(win);
	unlink(reg);
	p->path[0] = '\0';
}

static int setup(void **st)
{
	*st = calloc(1, sizeof(struct pair));
	return *st ? 0 : -1;
}

static int teardown(void **st)
{
	pair_close(*st);
	free(*st);
	return 0;
}

/* A WRITE of len bytes through the whole path, then the same bytes read back. */
static void write_read(struct pair *p, uint32_t len, uint64_t seed)
{
	struct npt_hbuf b = { 0 };
	struct npt_hcomp comp;
	struct npt_ereq r;
	uint8_t req[28], rep[16];
	uint32_t tag;
	int n;

	assert_int_equal(npt_host_buf_alloc(p->hc, len, &b), 0);
	t_fill(b.ptr, len, seed);
	t_make_req(req, T_NBD_CMD_WRITE, 1, 0, len);
	assert_int_equal(npt_host_submit(p->hc, req, &b), 0);
	assert_int_equal(npt_ep_take(p->ec, &r, 1), 1);
	assert_int_equal(npt_ep_fetch(p->ec, &r), 0);
	for (int i = 0; (n = npt_ep_fetched(p->ec, &tag, 1)) == 0 && i < 1000000; i++)
		;
	assert_int_equal(n, 1);
	assert_int_equal(t_sum(r.local, len), t_sum(b.ptr, len));
	t_make_reply(rep, req, 0);
	assert_int_equal(npt_ep_complete(p->ec, &r, rep, 0), 0);
	for (int i = 0; (n = npt_host_reap(p->hc, &comp, 1)) == 0 && i < 1000000; i++)
		npt_ep_progress(p->ec);
	assert_int_equal(n, 1);
	npt_host_buf_free(p->hc, &comp.buf);

	assert_int_equal(npt_host_buf_alloc(p->hc, len, &b), 0);
	memset(b.ptr, 0xee, len);
	t_make_req(req, T_NBD_CMD_READ, 2, 0, len);
	assert_int_equal(npt_host_submit(p->hc, req, &b), 0);
	assert_int_equal(npt_ep_take(p->ec, &r, 1), 1);
	t_fill(r.local, len, seed);
	t_make_reply(rep, req, 0);
	assert_int_equal(npt_ep_complete(p->ec, &r, rep, len), 0);
	for (int i = 0; (n = npt_host_reap(p->hc, &comp, 1)) == 0 && i < 1000000; i++)
		npt_ep_progress(p->ec);
	assert_int_equal(n, 1);
	assert_int_equal(comp.buf.len, len);
	assert_int_equal(t_sum(comp.buf.ptr, len), t_sum(r.local, len));
	npt_host_buf_free(p->hc, &comp.buf);
}

/* 2 x (rings + 256 KiB): the host publishes 256 KiB payload areas, uses
 * 128 KiB max_xfer (two fill the area), allocates only 4 x 64 KiB, and the
 * data path works. */
static void shrunk_window_carries_payloads(void **st)
{
	struct pair *p = *st;
	struct npl_bar_header *h;
	struct npt_hbuf b[5];
	uint64_t hp;

	pair_open(p, 0);       /* a first run tells the layout's payload_offset */
	hp = p->host->lay.payload_offset;
	pair_close(p);
	pair_open(p, 2 * (hp + (256 << 10)));
	h = (struct npl_bar_header *)npt_test_bar(p->host);
	assert_int_equal(npt_rd32(&h->host_features) & NPL_F_HOST_WINDOW, NPL_F_HOST_WINDOW);
	assert_int_equal(npt_rd32(&h->win_data_per_chan), 256 << 10);
	assert_int_equal(npt_rd64(&h->win_chan_stride), hp + (256 << 10));
	assert_int_equal(npt_rd64(&h->win_size), 2 * (hp + (256 << 10)));
	assert_int_equal(npt_link_max_xfer(p->host), 128 << 10);
	assert_int_equal(npt_link_max_xfer(p->ep), 256 << 10);
	assert_non_null(strstr(npt_link_describe(p->host), "payload areas shrunk to 262144 bytes, max_xfer 131072"));
	assert_non_null(strstr(npt_link_error(p->ep), "host window, payload areas shrunk to 262144 bytes"));

	assert_int_equal(npt_host_buf_alloc(p->hc, (128 << 10) + 1, &b[0]), -E2BIG);
	for (int i = 0; i < 4; i++)
		assert_int_equal(npt_host_buf_alloc(p->hc, 64 << 10, &b[i]), 0);
	assert_int_equal(npt_host_buf_alloc(p->hc, 4096, &b[4]), -EAGAIN);
	for (int i = 0; i < 4; i++)
		npt_host_buf_free(p->hc, &b[i]);
	write_read(p, 128 << 10, 11);
	write_read(p, 4096, 12);
	pair_close(p);
}

/* The EP checks payload ranges against the shrunk area, not its layout's. */
static void ep_rejects_payload_beyond_shrunk_area(void **st)
{
	struct pair *p = *st;
	struct npt_chan *h;
	struct npl_sqe *slot;
	struct npt_ereq r[2];
	uint8_t req[28];
	uint64_t hp;
	int n;

	pair_open(p, 0);
	hp = p->host->lay.payload_offset;
	pair_close(p);
	pair_open(p, 2 * (hp + (256 << 10)));
	/* a faulty host: offset 256 KiB is inside data_per_chan (1 MiB) but
	 * beyond the 256 KiB it published */
	h = p->hc;
	slot = &h->sq[h->sq_prod & h->mask];
	t_make_req(req, T_NBD_CMD_WRITE, 0x77, 0, 4096);
	memcpy(slot->nbd_req, req, 28);
	put_le32(&slot->tag, 0);
	put_le32(&slot->len, 4096);
	put_le32(&slot->flags, NPL_SQE_TO_EP);
	put_le64(&slot->offset, 256 << 10);
	npt_store_release32(&slot->seq, h->sq_prod + 1);
	h->sq_prod++;
	while ((n = npt_ep_take(p->ec, r, 2)) > 0)
		;
	assert_int_equal(n, -EPROTO);
	assert_non_null(strstr(npt_chan_error(p->ec), "offset 262144 + length 4096 beyond payload area 262144"));
	assert_int_equal(npt_rd32(&p->hc->hctl->error), NPL_ERR_RANGE);
	pair_close(p);
}

/* A window that leaves less than 64 KiB of payload per channel: BAR-only,
 * and the link still works. */
static void window_too_small_runs_bar_only(void **st)
{
	struct pair *p = *st;
	struct npl_bar_header *h;

	pair_open(p, 64 << 10);
	h = (struct npl_bar_header *)npt_test_bar(p->host);
	assert_int_equal(npt_rd32(&h->host_features) & NPL_F_HOST_WINDOW, 0);
	assert_non_null(strstr(npt_link_describe(p->host), "BAR-only"));
	assert_int_equal(npt_link_max_xfer(p->host), 256 << 10);
	write_read(p, 256 << 10, 13);
	pair_close(p);
}

/* The EP's channel counts what its DMA engine moved; the emulated engine
 * times its copies of NPT_LONG_XFER or more (not shorter ones). BAR-only:
 * no engine, nothing counted. The host counts no DMA. */
static void chan_stats_count_dma(void **st)
{
	struct pair *p = *st;
	struct npt_chan_stats s;

	pair_open(p, 0);
	npt_chan_get_stats(p->ec, &s);
	assert_true(s.dma_xfers == 0 && s.dma_bytes == 0 && s.dma_cpu_ns == 0);
	write_read(p, 4096, 21);             /* a fetch and a push of 4 KiB */
	npt_chan_get_stats(p->ec, &s);
	assert_int_equal(s.dma_xfers, 2);
	assert_int_equal(s.dma_bytes, 8192);
	assert_int_equal(s.dma_cpu_ns, 0);
	write_read(p, NPT_LONG_XFER, 22);
	npt_chan_get_stats(p->ec, &s);
	assert_int_equal(s.dma_xfers, 4);
	assert_int_equal(s.dma_bytes, 8192 + 2 * NPT_LONG_XFER);
	assert_true(s.dma_cpu_ns > 0);
	assert_true(s.dma_cpu_ns < 2000000000ull);
	npt_chan_get_stats(p->hc, &s);
	assert_true(s.dma_xfers == 0 && s.dma_bytes == 0 && s.dma_cpu_ns == 0);
	pair_close(p);

	pair_open(p, 64 << 10);              /* BAR-only */
	write_read(p, NPT_LONG_XFER, 23);
	npt_chan_get_stats(p->ec, &s);
	assert_true(s.dma_xfers == 0 && s.dma_bytes == 0 && s.dma_cpu_ns == 0);
	pair_close(p);
}

/* A READ of len bytes answered with npt_ep_complete_from(src); returns the
 * completion's result and, when it completed, checks the host got src. */
static int read_from(struct pair *p, uint32_t len, const void *src)
{
	struct npt_hbuf b = { 0 };
	struct npt_hcomp comp;
	struct npt_ereq r;
	uint8_t req[28], rep[16];
	int n, rc;

	assert_int_equal(npt_host_buf_alloc(p->hc, len, &b), 0);
	memset(b.ptr, 0xee, len);
	t_make_req(req, T_NBD_CMD_READ, 3, 0, len);
	assert_int_equal(npt_host_submit(p->hc, req, &b), 0);
	assert_int_equal(npt_ep_take(p->ec, &r, 1), 1);
	memset(r.local, 0x55, len);   /* staging must not be what arrives */
	t_make_reply(rep, req, 0);
	rc = npt_ep_complete_from(p->ec, &r, rep, src, len);
	if (rc) {
		/* the request is still the caller's: answer it the usual way */
		memcpy(r.local, src ? src : r.local, len);
		assert_int_equal(npt_ep_complete(p->ec, &r, rep, len), 0);
	}
	for (int i = 0; (n = npt_host_reap(p->hc, &comp, 1)) == 0 && i < 1000000; i++)
		npt_ep_progress(p->ec);
	assert_int_equal(n, 1);
	assert_int_equal(comp.buf.len, len);
	if (src)
		assert_memory_equal(comp.buf.ptr, src, len);
	npt_host_buf_free(p->hc, &comp.buf);
	return rc;
}

/* Direct pushes: the emulated engine without a model takes a READ's data
 * from any memory (counted like any push); with a bandwidth model (copies
 * deferred to poll), BAR-only, or without a source it refuses and the
 * request stays the caller's. */
static void push_from_any_src(void **st)
{
	struct pair *p = *st;
	struct npt_chan_stats s;
	uint32_t len = NPT_LONG_XFER;
	uint8_t *src = malloc(len);

	assert_non_null(src);
	t_fill(src, len, 31);
	pair_open(p, 0);
	assert_true(npt_ep_push_any_src(p->ec));
	assert_false(npt_ep_push_any_src(p->hc));
	assert_int_equal(read_from(p, len, src), 0);
	assert_int_equal(read_from(p, 4096, src + 4096), 0);
	npt_chan_get_stats(p->ec, &s);
	assert_int_equal(s.dma_xfers, 2);
	assert_int_equal(s.dma_bytes, len + 4096);
	assert_true(s.dma_cpu_ns > 0);
	assert_int_equal(read_from(p, 4096, NULL), -EINVAL);
	pair_close(p);

	pair_open_ep(p, 0, ",dma_gbps=64");
	assert_false(npt_ep_push_any_src(p->ec));
	assert_int_equal(read_from(p, 4096, src), -EINVAL);
	pair_close(p);

	pair_open(p, 64 << 10);              /* BAR-only */
	assert_false(npt_ep_push_any_src(p->ec));
	assert_int_equal(read_from(p, 4096, src), -EINVAL);
	pair_close(p);
	free(src);
}

static void win_max_option_errors(void **st)
{
	struct npt_spec sp;
	char err[512];

	assert_int_equal(npt_spec_parse("shm:/x,win_max=100", &sp, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "win_max \"100\" is not a size of at least 4096 bytes"));
	assert_int_equal(npt_spec_parse("shm:/x,win_max=4194304", &sp, err, sizeof(err)), 0);
	assert_int_equal(sp.win_max, 4u << 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(shrunk_window_carries_payloads, setup, teardown),
		cmocka_unit_test_setup_teardown(ep_rejects_payload_beyond_shrunk_area, setup, teardown),
		cmocka_unit_test_setup_teardown(window_too_small_runs_bar_only, setup, teardown),
		cmocka_unit_test_setup_teardown(chan_stats_count_dma, setup, teardown),
		cmocka_unit_test_setup_teardown(push_from_any_src, setup, teardown),
		cmocka_unit_test(win_max_option_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

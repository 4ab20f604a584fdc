/* Unit tests over an in-process link pair (EP and host links on the same
 * /dev/shm files): streams, rings, payloads, validation of every malformed
 * entry, link and channel lifecycle. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "internal.h"
#include "pair.h"

static int setup_window(void **st)
{
	*st = t_pair_new("ut", false, true, true, true);
	return 0;
}

static int setup_bar_only(void **st)
{
	*st = t_pair_new("ut", true, true, true, true);
	return 0;
}

static int setup_stream(void **st)
{
	*st = t_pair_new("ut", false, true, true, false);
	return 0;
}

static int teardown(void **st)
{
	struct t_pair *p = *st;
	char win[160];
	struct stat sb;

	/* clean close removes what each side created */
	t_pair_close(p);
	snprintf(win, sizeof(win), "%s.hosts", p->path);
	assert_int_equal(stat(win, &sb), -1);
	free(p);
	return 0;
}

/* ---- handshake byte stream ---------------------------------------------- */

static void stream_roundtrip_both_directions(void **st)
{
	struct t_pair *p = *st;
	char buf[64];

	assert_int_equal(npt_chan_send(p->hc, "NBDMAGIC", 8), 8);
	assert_int_equal(npt_chan_recv(p->ec, buf, sizeof(buf)), 8);
	assert_memory_equal(buf, "NBDMAGIC", 8);
	assert_int_equal(npt_chan_send(p->ec, "IHAVEOPT", 8), 8);
	assert_int_equal(npt_chan_recv(p->hc, buf, sizeof(buf)), 8);
	assert_memory_equal(buf, "IHAVEOPT", 8);
	assert_int_equal(npt_chan_recv(p->hc, buf, sizeof(buf)), -EAGAIN);
	assert_int_equal(npt_chan_recv(p->ec, buf, sizeof(buf)), -EAGAIN);
}

static void stream_full_returns_eagain_then_drains(void **st)
{
	struct t_pair *p = *st;
	static uint8_t big[NPT_STREAM_SIZE + 100], got[NPT_STREAM_SIZE + 100];

	t_fill(big, sizeof(big), 7);
	assert_int_equal(npt_chan_send(p->hc, big, sizeof(big)), NPT_STREAM_SIZE);
	assert_int_equal(npt_chan_send(p->hc, big, 1), -EAGAIN);
	assert_int_equal(npt_chan_recv(p->ec, got, sizeof(got)), NPT_STREAM_SIZE);
	assert_memory_equal(got, big, NPT_STREAM_SIZE);
}

static void stream_wraps_around(void **st)
{
	struct t_pair *p = *st;
	static uint8_t src[5 * NPT_STREAM_SIZE], dst[5 * NPT_STREAM_SIZE];
	size_t sent = 0, got = 0;

	t_fill(src, sizeof(src), 99);
	while (got < sizeof(src)) {
		size_t chunk = sizeof(src) - sent < 3001 ? sizeof(src) - sent : 3001;
		ssize_t n;

		if (chunk) {
			n = npt_chan_send(p->ec, src + sent, chunk);
			assert_true(n > 0 || n == -EAGAIN);
			if (n > 0)
				sent += (size_t)n;
		}
		n = npt_chan_recv(p->hc, dst + got, 1777);
		assert_true(n > 0 || n == -EAGAIN);
		if (n > 0)
			got += (size_t)n;
	}
	assert_memory_equal(src, dst, sizeof(src));
}

static void stream_eof_after_peer_close_delivers_pending_bytes(void **st)
{
	struct t_pair *p = *st;
	char buf[16];

	assert_int_equal(npt_chan_send(p->hc, "bye", 3), 3);
	npt_chan_close(p->hc);
	p->hc = NULL;
	assert_int_equal(npt_chan_recv(p->ec, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "bye", 3);
	assert_int_equal(npt_chan_recv(p->ec, buf, sizeof(buf)), 0);
	assert_int_equal(npt_chan_status(p->ec), -ECONNRESET);
	assert_non_null(strstr(npt_chan_error(p->ec), "host closed the channel"));
}

static void stream_bytes_before_frames_still_delivered(void **st)
{
	struct t_pair *p = *st;
	char buf[16];

	assert_int_equal(npt_chan_send(p->ec, "reply", 5), 5);
	assert_int_equal(npt_chan_begin_frames(p->ec), 0);
	assert_int_equal(npt_chan_send(p->ec, "x", 1), -EINVAL);
	assert_int_equal(npt_chan_recv(p->hc, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "reply", 5);
	assert_int_equal(npt_chan_begin_frames(p->hc), 0);
}

static void stream_bad_producer_index_is_a_violation(void **st)
{
	struct t_pair *p = *st;
	char buf[16];

	/* the host scribbles a producer index beyond the ring */
	npt_wr32(&p->hc->ectl->h2e_prod, NPT_STREAM_SIZE + 1);
	assert_int_equal(npt_chan_recv(p->ec, buf, sizeof(buf)), -EPROTO);
	assert_non_null(strstr(npt_chan_error(p->ec), "peer producer index 8193 outside 0..8192"));
}

static void stream_bad_consumer_index_is_a_violation(void **st)
{
	struct t_pair *p = *st;

	npt_wr32(&p->ec->ectl->e2h_cons, 5000);   /* EP side reads it: host "consumed" unsent bytes */
	assert_int_equal(npt_chan_send(p->ec, "x", 1), -EPROTO);
	assert_non_null(strstr(npt_chan_error(p->ec), "peer consumer index 5000"));
}

/* ---- frames -------------------------------------------------------------- */

/* One request through the whole path; returns the reaped completion. */
static void roundtrip(struct t_pair *p, uint16_t type, uint32_t len, uint64_t cookie, uint64_t seed)
{
	struct npt_hbuf b = { 0 };
	struct npt_ereq r;
	struct npt_hcomp comp;
	uint8_t req[28], rep[16];
	uint32_t tag;
	int n;

	t_make_req(req, type, cookie, 4096, len);
	if (type == T_NBD_CMD_READ || type == T_NBD_CMD_WRITE) {
		assert_int_equal(npt_host_buf_alloc(p->hc, len, &b), 0);
		if (type == T_NBD_CMD_WRITE)
			t_fill(b.ptr, len, seed);
		else
			memset(b.ptr, 0xee, len);
	}
	assert_int_equal(npt_host_submit(p->hc, req, len || type <= 1 ? &b : NULL), 0);
	assert_int_equal(npt_ep_take(p->ec, &r, 1), 1);
	assert_memory_equal(r.hdr, req, 28);
	assert_int_equal(r.len, type <= 1 ? len : 0);
	if (type == T_NBD_CMD_WRITE) {
		assert_int_equal(npt_ep_fetch(p->ec, &r), 0);
		for (int i = 0; (n = npt_ep_fetched(p->ec, &tag, 1)) == 0 && i < 1000000; i++)
			;
		assert_int_equal(n, 1);
		assert_int_equal(tag, r.tag);
		assert_int_equal(t_sum(r.local, len), t_sum(b.ptr, len));
	} else if (type == T_NBD_CMD_READ) {
		t_fill(r.local, len, seed);
	}
	t_make_reply(rep, req, 0);
	assert_int_equal(npt_ep_complete(p->ec, &r, rep, type == T_NBD_CMD_READ ? len : 0), 0);
	for (int i = 0; (n = npt_host_reap(p->hc, &comp, 1)) == 0 && i < 1000000; i++)
		npt_ep_progress(p->ec);
	assert_int_equal(n, 1);
	assert_memory_equal(comp.reply, rep, 16);
	if (type == T_NBD_CMD_READ) {
		uint8_t *want = malloc(len ? len : 1);

		t_fill(want, len, seed);
		assert_int_equal(comp.buf.len, len);
		assert_memory_equal(comp.buf.ptr, want, len);
		free(want);
	}
	if (b.len)
		npt_host_buf_free(p->hc, &comp.buf);
}

static void frames_write_read_flush_roundtrip(void **st)
{
	struct t_pair *p = *st;

	roundtrip(p, T_NBD_CMD_WRITE, 65536, 1, 11);
	roundtrip(p, T_NBD_CMD_READ, 65536, 2, 12);
	roundtrip(p, T_NBD_CMD_READ, 1, 3, 13);
	roundtrip(p, T_NBD_CMD_WRITE, 256 << 10, 4, 14);
	roundtrip(p, T_NBD_CMD_FLUSH, 0, 5, 0);
	roundtrip(p, T_NBD_CMD_READ, 0, 6, 0);
}

static void ring_full_returns_eagain(void **st)
{
	struct t_pair *p = *st;
	struct npt_ereq r[16];
	struct npt_hcomp comp[16];
	uint8_t req[28], rep[16];
	int n = 0;

	for (int i = 0; i < 8; i++) {
		t_make_req(req, T_NBD_CMD_FLUSH, (uint64_t)i, 0, 0);
		assert_int_equal(npt_host_submit(p->hc, req, NULL), 0);
	}
	t_make_req(req, T_NBD_CMD_FLUSH, 99, 0, 0);
	assert_int_equal(npt_host_submit(p->hc, req, NULL), -EAGAIN);
	assert_int_equal(npt_ep_take(p->ec, r, 16), 8);
	/* taken but not completed: still full */
	assert_int_equal(npt_host_submit(p->hc, req, NULL), -EAGAIN);
	t_make_reply(rep, r[3].hdr, 0);
	assert_int_equal(npt_ep_complete(p->ec, &r[3], rep, 0), 0);
	assert_int_equal(npt_host_reap(p->hc, comp, 16), 1);
	assert_int_equal(get_be64(comp[0].reply + 8), 3);
	assert_int_equal(npt_host_submit(p->hc, req, NULL), 0);
	for (int i = 0; i < 8; i++) {
		if (i == 3)
			continue;
		t_make_reply(rep, r[i].hdr, 0);
		assert_int_equal(npt_ep_complete(p->ec, &r[i], rep, 0), 0);
	}
	assert_int_equal(npt_ep_take(p->ec, r, 16), 1);
	t_make_reply(rep, r[0].hdr, 0);
	assert_int_equal(npt_ep_complete(p->ec, &r[0], rep, 0), 0);
	n = npt_host_reap(p->hc, comp, 16);
	assert_int_equal(n, 8);
	assert_int_equal(npt_host_reap(p->hc, comp, 16), 0);
	assert_int_equal(npt_ep_take(p->ec, r, 16), 0);
}

static void ring_empty_returns_zero(void **st)
{
	struct t_pair *p = *st;
	struct npt_ereq r;
	struct npt_hcomp comp;

	assert_int_equal(npt_ep_take(p->ec, &r, 1), 0);
	assert_int_equal(npt_host_reap(p->hc, &comp, 1), 0);
}

static void ring_wraps_around_many_times(void **st)
{
	struct t_pair *p = *st;

	for (uint64_t i = 0; i < 8 * 40 + 3; i++)
		roundtrip(p, (i % 3) == 0 ? T_NBD_CMD_WRITE : T_NBD_CMD_READ, 4096 + (uint32_t)i, i, i);
}

static void completions_out_of_order(void **st)
{
	struct t_pair *p = *st;
	struct npt_ereq r[4];
	struct npt_hcomp comp[4];
	uint8_t req[28], rep[16];

	for (int i = 0; i < 4; i++) {
		t_make_req(req, T_NBD_CMD_FLUSH, 100 + (uint64_t)i, 0, 0);
		assert_int_equal(npt_host_submit(p->hc, req, NULL), 0);
	}
	assert_int_equal(npt_ep_take(p->ec, r, 4), 4);
	for (int i = 3; i >= 0; i--) {
		t_make_reply(rep, r[i].hdr, (uint32_t)i);
		assert_int_equal(npt_ep_complete(p->ec, &r[i], rep, 0), 0);
	}
	assert_int_equal(npt_host_reap(p->hc, comp, 4), 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(get_be64(comp[i].reply + 8), 103 - i);
		assert_int_equal(get_be32(comp[i].reply + 4), 3 - i);
	}
}

static void hbuf_area_full_and_too_big(void **st)
{
	struct t_pair *p = *st;
	struct npt_hbuf b[8];

	assert_int_equal(npt_host_buf_alloc(p->hc, (256 << 10) + 1, &b[0]), -E2BIG);
	for (int i = 0; i < 4; i++)
		assert_int_equal(npt_host_buf_alloc(p->hc, 256 << 10, &b[i]), 0);
	assert_int_equal(npt_host_buf_alloc(p->hc, 1, &b[4]), -EAGAIN);
	/* buffers never overlap */
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++)
			assert_true(b[i].off + b[i].len <= b[j].off || b[j].off + b[j].len <= b[i].off);
	npt_host_buf_free(p->hc, &b[2]);
	assert_int_equal(npt_host_buf_alloc(p->hc, 4096, &b[4]), 0);
	assert_int_equal(b[4].off, 512 << 10);
}

static void submit_rejects_length_mismatch(void **st)
{
	struct t_pair *p = *st;
	struct npt_hbuf b;
	uint8_t req[28];

	assert_int_equal(npt_host_buf_alloc(p->hc, 4096, &b), 0);
	t_make_req(req, T_NBD_CMD_WRITE, 1, 0, 8192);
	assert_int_equal(npt_host_submit(p->hc, req, &b), -EINVAL);
	t_make_req(req, T_NBD_CMD_WRITE, 1, 0, 1 << 20);
	assert_int_equal(npt_host_submit(p->hc, req, &b), -E2BIG);
	npt_host_buf_free(p->hc, &b);
}

/* ---- malformed submission entries (EP validation) ------------------------- */

/* Writes a raw entry at the EP's next position, as a faulty host would. */
static void inject_sqe(struct t_pair *p, uint16_t type, uint32_t tag, uint32_t len, uint32_t flags,
		       uint64_t off, uint32_t nbdlen, uint32_t magic)
{
	struct npt_chan *h = p->hc;
	struct npl_sqe *slot = &h->sq[h->sq_prod & h->mask];
	uint8_t req[28];

	t_make_req(req, type, 0x77, 0, nbdlen);
	put_be32(req, magic);
	memcpy(slot->nbd_req, req, 28);
	put_le32(&slot->tag, tag);
	put_le32(&slot->len, len);
	put_le32(&slot->flags, flags);
	put_le64(&slot->offset, off);
	npt_store_release32(&slot->seq, h->sq_prod + 1);
	h->sq_prod++;
}

static void expect_rejected(struct t_pair *p, uint32_t code, const char *needle)
{
	struct npt_ereq r[4];
	int n;

	while ((n = npt_ep_take(p->ec, r, 4)) > 0)
		;
	assert_int_equal(n, -EPROTO);
	if (!strstr(npt_chan_error(p->ec), needle))
		fail_msg("EP message \"%s\" lacks \"%s\"", npt_chan_error(p->ec), needle);
	/* the host learns why */
	assert_int_equal(npt_chan_status(p->hc), -EPROTO);
	assert_non_null(strstr(npt_chan_error(p->hc), npt_err_name(code)));
	assert_int_equal(npt_rd32(&p->hc->hctl->error), code);
}

static void malformed_tag_out_of_range(void **st)
{
	inject_sqe(*st, T_NBD_CMD_FLUSH, 8, 0, 0, 0, 0, T_NBD_REQUEST_MAGIC);
	expect_rejected(*st, NPL_ERR_TAG, "tag 8 beyond ring size 8");
}

static void malformed_reused_tag(void **st)
{
	inject_sqe(*st, T_NBD_CMD_FLUSH, 2, 0, 0, 0, 0, T_NBD_REQUEST_MAGIC);
	inject_sqe(*st, T_NBD_CMD_FLUSH, 2, 0, 0, 0, 0, T_NBD_REQUEST_MAGIC);
	expect_rejected(*st, NPL_ERR_TAG_REUSED, "tag 2 already in flight");
}

static void malformed_length_past_window(void **st)
{
	inject_sqe(*st, T_NBD_CMD_WRITE, 0, 4096, NPL_SQE_TO_EP, (1 << 20) - 4095, 4096, T_NBD_REQUEST_MAGIC);
	expect_rejected(*st, NPL_ERR_RANGE, "offset 1044481 + length 4096 beyond payload area 1048576");
}

static void malformed_offset_overflow(void **st)
{
	inject_sqe(*st, T_NBD_CMD_WRITE, 0, 4096, NPL_SQE_TO_EP, UINT64_MAX - 100, 4096, T_NBD_REQUEST_MAGIC);
	expect_rejected(*st, NPL_ERR_RANGE, "beyond payload area");
}

static void malformed_length_beyond_max_xfer(void **st)
{
	inject_sqe(*st, T_NBD_CMD_WRITE, 0, (256 << 10) + 1, NPL_SQE_TO_EP, 0, (256 << 10) + 1, T_NBD_REQUEST_MAGIC);
	expect_rejected(*st, NPL_ERR_LEN, "length 262145 beyond max_xfer 262144");
}

static void malformed_length_differs_from_nbd(void **st)
{
	inject_sqe(*st, T_NBD_CMD_READ, 0, 4096, NPL_SQE_TO_HOST, 0, 8192, T_NBD_REQUEST_MAGIC);
	expect_rejected(*st, NPL_ERR_LEN, "length 4096 differs from NBD length 8192");
}

static void malformed_overlapping_descriptors(void **st)
{
	inject_sqe(*st, T_NBD_CMD_WRITE, 0, 8192, NPL_SQE_TO_EP, 0, 8192, T_NBD_REQUEST_MAGIC);
	inject_sqe(*st, T_NBD_CMD_READ, 1, 4096, NPL_SQE_TO_HOST, 4096, 4096, T_NBD_REQUEST_MAGIC);
	expect_rejected(*st, NPL_ERR_OVERLAP, "payload 4096+4096 overlaps tag 0 payload 0+8192");
}

static void malformed_direction_mismatch(void **st)
{
	inject_sqe(*st, T_NBD_CMD_WRITE, 0, 4096, NPL_SQE_TO_HOST, 0, 4096, T_NBD_REQUEST_MAGIC);
	expect_rejected(*st, NPL_ERR_DIR, "for NBD WRITE, expected 0x1");
}

static void malformed_payload_on_flush(void **st)
{
	inject_sqe(*st, T_NBD_CMD_FLUSH, 0, 4096, NPL_SQE_TO_EP, 0, 0, T_NBD_REQUEST_MAGIC);
	expect_rejected(*st, NPL_ERR_DIR, "carries no payload");
}

static void malformed_nbd_magic(void **st)
{
	inject_sqe(*st, T_NBD_CMD_FLUSH, 0, 0, 0, 0, 0, 0xdeadbeef);
	expect_rejected(*st, NPL_ERR_MAGIC, "NBD magic 0xdeadbeef");
}

/* ---- malformed completion entries (host validation) ---------------------- */

static void inject_cqe(struct t_pair *p, uint32_t tag, uint32_t len, uint32_t magic, uint64_t cookie)
{
	struct npt_chan *e = p->ec;
	struct npl_cqe *slot = &e->cq[e->cq_prod & e->mask];

	put_be32(slot->nbd_reply, magic);
	put_be32(slot->nbd_reply + 4, 0);
	put_be64(slot->nbd_reply + 8, cookie);
	put_le32(&slot->tag, tag);
	put_le32(&slot->len, len);
	npt_store_release32(&slot->seq, e->cq_prod + 1);
	e->cq_prod++;
}

static void host_expect_violation(struct t_pair *p, const char *needle)
{
	struct npt_hcomp comp[4];

	assert_int_equal(npt_host_reap(p->hc, comp, 4), -EPROTO);
	if (!strstr(npt_chan_error(p->hc), needle))
		fail_msg("host message \"%s\" lacks \"%s\"", npt_chan_error(p->hc), needle);
	assert_int_equal(npt_host_submit(p->hc, (uint8_t[28]){0}, NULL), -EPROTO);
}

static void submit_one_read(struct t_pair *p, uint32_t len, uint64_t cookie)
{
	struct npt_hbuf b;
	uint8_t req[28];

	assert_int_equal(npt_host_buf_alloc(p->hc, len, &b), 0);
	t_make_req(req, T_NBD_CMD_READ, cookie, 0, len);
	assert_int_equal(npt_host_submit(p->hc, req, &b), 0);
}

static void completion_tag_out_of_range(void **st)
{
	submit_one_read(*st, 4096, 5);
	inject_cqe(*st, 9, 0, T_NBD_REPLY_MAGIC, 5);
	host_expect_violation(*st, "tag 9 beyond ring size 8");
}

static void completion_tag_not_in_flight(void **st)
{
	submit_one_read(*st, 4096, 5);
	inject_cqe(*st, 3, 0, T_NBD_REPLY_MAGIC, 5);
	host_expect_violation(*st, "tag 3 is not in flight");
}

static void completion_cookie_mismatch(void **st)
{
	struct t_pair *p = *st;
	struct npt_ereq r;

	submit_one_read(p, 4096, 5);
	assert_int_equal(npt_ep_take(p->ec, &r, 1), 1);
	inject_cqe(p, r.tag, 4096, T_NBD_REPLY_MAGIC, 6);
	host_expect_violation(p, "differs from the request's");
}

static void completion_length_beyond_buffer(void **st)
{
	struct t_pair *p = *st;
	struct npt_ereq r;

	submit_one_read(p, 4096, 5);
	assert_int_equal(npt_ep_take(p->ec, &r, 1), 1);
	inject_cqe(p, r.tag, 8192, T_NBD_REPLY_MAGIC, 5);
	host_expect_violation(p, "length 8192 but the request's buffer holds 4096");
}

static void completion_bad_reply_magic(void **st)
{
	struct t_pair *p = *st;
	struct npt_ereq r;

	submit_one_read(p, 4096, 5);
	assert_int_equal(npt_ep_take(p->ec, &r, 1), 1);
	inject_cqe(p, r.tag, 4096, 0x12345678, 5);
	host_expect_violation(p, "reply magic 0x12345678");
}


static void reopened_channel_ignores_previous_completions(void **st)
{
	struct t_pair *p = *st;
	struct npt_hcomp comp;
	struct npt_ereq r;
	uint8_t req[28], rep[16];
	unsigned idx = npt_chan_index(p->hc);

	roundtrip(p, T_NBD_CMD_FLUSH, 0, 1, 0);   /* completion slot 0 now holds seq 1 */
	npt_chan_close(p->hc);
	npt_chan_close(p->ec);
	p->ec = NULL;
	assert_int_equal(npt_chan_open(p->host, (int)idx, &p->hc), 0);
	assert_int_equal(npt_chan_begin_frames(p->hc), 0);
	t_make_req(req, T_NBD_CMD_FLUSH, 2, 0, 0);
	assert_int_equal(npt_host_submit(p->hc, req, NULL), 0);
	/* not accepted yet: the stale entry must not be reaped */
	assert_int_equal(npt_host_reap(p->hc, &comp, 1), 0);
	assert_int_equal(npt_chan_accept(p->ep, &p->ec), 0);
	assert_int_equal(npt_chan_begin_frames(p->ec), 0);
	assert_int_equal(npt_ep_take(p->ec, &r, 1), 1);
	assert_int_equal(get_be64(r.hdr + 8), 2);
	t_make_reply(rep, r.hdr, 0);
	assert_int_equal(npt_ep_complete(p->ec, &r, rep, 0), 0);
	assert_int_equal(npt_host_reap(p->hc, &comp, 1), 1);
	assert_int_equal(get_be64(comp.reply + 8), 2);
}

/* ---- lifecycle -------------------------------------------------------------- */

static void chan_open_busy_and_first_free(void **st)
{
	struct t_pair *p = *st;
	struct npt_chan *c2, *c3;

	assert_int_equal(npt_chan_open(p->host, (int)npt_chan_index(p->hc), &c2), -EBUSY);
	assert_int_equal(npt_chan_open(p->host, -1, &c2), 0);
	assert_int_not_equal(npt_chan_index(c2), npt_chan_index(p->hc));
	assert_int_equal(npt_chan_open(p->host, -1, &c3), -EBUSY);
	assert_int_equal(npt_chan_open(p->host, 2, &c3), -EINVAL);
	npt_chan_close(c2);
}

static void chan_reopen_after_close_is_accepted(void **st)
{
	struct t_pair *p = *st;
	char buf[8];

	npt_chan_close(p->hc);
	npt_chan_close(p->ec);
	p->hc = p->ec = NULL;
	t_pair_chan(p, 0);
	assert_int_equal(npt_chan_send(p->hc, "again", 5), 5);
	assert_int_equal(npt_chan_recv(p->ec, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "again", 5);
}

static void ep_close_seen_by_host_channel(void **st)
{
	struct t_pair *p = *st;
	char buf[8];

	npt_chan_close(p->ec);
	p->ec = NULL;
	assert_int_equal(npt_chan_recv(p->hc, buf, sizeof(buf)), 0);
	assert_int_equal(npt_chan_status(p->hc), -ECONNRESET);
	assert_non_null(strstr(npt_chan_error(p->hc), "EP closed the channel"));
}

static void link_describe_and_limits(void **st)
{
	struct t_pair *p = *st;

	assert_int_equal(npt_link_nchannels(p->host), 2);
	assert_int_equal(npt_link_max_xfer(p->host), 256 << 10);
	assert_non_null(strstr(npt_link_describe(p->host), "host window, 2 ch"));
	assert_int_equal(npt_link_check(p->host), 0);
	assert_int_equal(npt_link_check(p->ep), 0);
}

static void link_describe_bar_only(void **st)
{
	struct t_pair *p = *st;

	assert_non_null(strstr(npt_link_describe(p->host), "BAR-only, 2 ch"));
}

static void ep_link_close_brings_host_link_down(void **st)
{
	struct t_pair *p = *st;
	uint64_t t0;

	npt_chan_close(p->ec);
	p->ec = NULL;
	npt_link_close(p->ep);
	p->ep = NULL;
	t0 = t_now_ms();
	while (npt_link_check(p->host) == 0 && t_now_ms() - t0 < 2000)
		t_sleep_ms(5);
	assert_int_equal(npt_link_check(p->host), -ECONNRESET);
	assert_non_null(strstr(npt_link_error(p->host), "EP closed the link"));
	assert_int_equal(npt_chan_status(p->hc), -ECONNRESET);
	assert_true(t_now_ms() - t0 < 500);
}

static void host_link_close_resets_ep_channels_and_new_host_attaches(void **st)
{
	struct t_pair *p = *st;
	struct npt_link_params hp = t_pair_params;
	char err[512];
	uint64_t t0;

	npt_chan_close(p->hc);
	p->hc = NULL;
	npt_link_close(p->host);
	p->host = NULL;
	t0 = t_now_ms();
	while (npt_chan_status(p->ec) == 0 && t_now_ms() - t0 < 2000)
		t_sleep_ms(5);
	assert_int_equal(npt_chan_status(p->ec), -ECONNRESET);
	while (npt_link_check(p->ep) == 0 && t_now_ms() - t0 < 2000)
		t_sleep_ms(5);
	assert_int_equal(npt_link_check(p->ep), -EAGAIN);
	assert_non_null(strstr(npt_link_error(p->ep), "detached"));
	npt_chan_close(p->ec);
	p->ec = NULL;
	if (npt_link_open(p->spec, NPT_ROLE_HOST, &hp, &p->host, err, sizeof(err)))
		fail_msg("host reopen: %s", err);
	t_pair_chan(p, -1);
	t_pair_frames(p);
	roundtrip(p, T_NBD_CMD_WRITE, 4096, 1, 1);
	assert_int_equal(npt_link_check(p->ep), 0);
}

static void host_open_times_out_without_ep(void **st)
{
	struct npt_link_params hp = { .connect_timeout_ms = 200 };
	struct npt_link *l = (void *)1;
	char path[128], spec[160], err[512];
	uint64_t t0 = t_now_ms();

	t_shm_path(path, sizeof(path), "none");
	snprintf(spec, sizeof(spec), "shm:%s", path);
	assert_int_equal(npt_link_open(spec, NPT_ROLE_HOST, &hp, &l, err, sizeof(err)), -ETIMEDOUT);
	assert_null(l);
	assert_true(t_now_ms() - t0 >= 200);
	assert_non_null(strstr(err, "no live EP within 200 ms"));
	assert_non_null(strstr(err, "does not exist"));
}

static void dma_model_delays_but_delivers(void **st)
{
	struct t_pair *p = calloc(1, sizeof(*p));
	uint64_t t0;

	t_pair_open(p, "ut", ",dma_gbps=8,dma_lat_us=200", false, true, true);
	t_pair_chan(p, -1);
	t_pair_frames(p);
	t0 = t_now_ms();
	roundtrip(p, T_NBD_CMD_READ, 64 << 10, 1, 3);
	roundtrip(p, T_NBD_CMD_WRITE, 64 << 10, 2, 4);
	/* two transfers of >= 200 us latency each */
	assert_true(t_now_ms() - t0 >= 1);
	*st = p;
	teardown(st);
}


static void make_foreign_file(const char *path, off_t size)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), size), 0);
	fclose(f);
}

static void ep_fits_layout_into_foreign_bar_file(void **st)
{
	struct npt_link_params prm = { .connect_timeout_ms = 3000 };
	struct t_pair *p = calloc(1, sizeof(*p));
	char err[512];
	struct stat sb;

	t_shm_path(p->path, sizeof(p->path), "ivshmem");
	snprintf(p->spec, sizeof(p->spec), "shm:bar=%s", p->path);
	make_foreign_file(p->path, 16 << 20);          /* like QEMU's ivshmem memory */
	if (npt_link_open(p->spec, NPT_ROLE_EP, &prm, &p->ep, err, sizeof(err)))
		fail_msg("EP open: %s", err);
	assert_int_equal(stat(p->path, &sb), 0);
	assert_int_equal(sb.st_size, 16 << 20);        /* never resized */
	assert_int_equal(npt_link_nchannels(p->ep), 4);
	assert_int_equal(npt_link_max_xfer(p->ep), 1 << 20);
	assert_true(p->ep->lay.bar_size <= 16u << 20);
	assert_true(p->ep->lay.data_per_chan >= 2u << 20);
	if (npt_link_open(p->spec, NPT_ROLE_HOST, &prm, &p->host, err, sizeof(err)))
		fail_msg("host open: %s", err);
	t_pair_chan(p, 3);
	t_pair_frames(p);
	roundtrip(p, T_NBD_CMD_WRITE, 1 << 20, 1, 5);
	roundtrip(p, T_NBD_CMD_READ, 1 << 20, 2, 6);
	npt_chan_close(p->hc);
	npt_chan_close(p->ec);
	npt_link_close(p->host);
	npt_link_close(p->ep);
	assert_int_equal(stat(p->path, &sb), 0);       /* not ours to remove */
	unlink(p->path);
	free(p);
}

static void ep_refuses_foreign_bar_file_too_small(void **st)
{
	struct npt_link *l = (void *)1;
	char path[128], spec[160], err[512];
	struct stat sb;

	t_shm_path(path, sizeof(path), "tiny");
	snprintf(spec, sizeof(spec), "shm:bar=%s", path);
	make_foreign_file(path, 64 << 10);
	assert_int_equal(npt_link_open(spec, NPT_ROLE_EP, NULL, &l, err, sizeof(err)), -ENOSPC);
	assert_null(l);
	assert_non_null(strstr(err, "BAR of 65536 bytes too small for 4 channels x 128 entries"));
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 64 << 10);
	unlink(path);
}

static void link_close_with_open_channels_defers_the_free(void **st)
{
	struct t_pair *p = *st;
	struct npt_hcomp comp;
	struct npt_ereq r;
	uint8_t req[28];

	npt_link_close(p->host);
	p->host = NULL;
	npt_link_close(p->ep);
	p->ep = NULL;
	t_make_req(req, T_NBD_CMD_FLUSH, 1, 0, 0);
	assert_int_equal(npt_host_submit(p->hc, req, NULL), -ECONNRESET);
	assert_int_equal(npt_host_reap(p->hc, &comp, 1), -ECONNRESET);
	assert_int_equal(npt_ep_take(p->ec, &r, 1), -ECONNRESET);
	assert_non_null(strstr(npt_chan_error(p->hc), "link closed by this side"));
	npt_chan_close(p->hc);      /* the last of each link's channels frees it */
	npt_chan_close(p->ec);
	p->hc = p->ec = NULL;
}

/* A host (or a scribble) leaves the largest session value in the BAR, twice
 * in a row: each reopen must still be a session the EP has not seen last,
 * or the EP would ignore the open for good. */
static void chan_reopen_after_max_session_in_bar_is_accepted(void **st)
{
	struct t_pair *p = *st;

	for (int round = 0; round < 3; round++) {
		npt_wr32(&p->hc->ectl->session, UINT32_MAX);
		npt_chan_close(p->hc);
		npt_chan_close(p->ec);
		p->hc = p->ec = NULL;
		t_pair_chan(p, 0);
		assert_int_not_equal(p->hc->session, 0);
		assert_int_equal(p->ec->session, p->hc->session);
	}
}

#define W(t) cmocka_unit_test_setup_teardown(t, setup_window, teardown)
#define B(t) cmocka_unit_test_setup_teardown(t, setup_bar_only, teardown)
#define S(t) cmocka_unit_test_setup_teardown(t, setup_stream, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		S(stream_roundtrip_both_directions),
		S(stream_full_returns_eagain_then_drains),
		S(stream_wraps_around),
		S(stream_eof_after_peer_close_delivers_pending_bytes),
		S(stream_bytes_before_frames_still_delivered),
		S(stream_bad_producer_index_is_a_violation),
		S(stream_bad_consumer_index_is_a_violation),
		W(frames_write_read_flush_roundtrip),
		B(frames_write_read_flush_roundtrip),
		W(ring_full_returns_eagain),
		W(ring_empty_returns_zero),
		W(ring_wraps_around_many_times),
		B(ring_wraps_around_many_times),
		W(completions_out_of_order),
		W(hbuf_area_full_and_too_big),
		W(submit_rejects_length_mismatch),
		W(malformed_tag_out_of_range),
		W(malformed_reused_tag),
		W(malformed_length_past_window),
		W(malformed_offset_overflow),
		W(malformed_length_beyond_max_xfer),
		W(malformed_length_differs_from_nbd),
		W(malformed_overlapping_descriptors),
		B(malformed_overlapping_descriptors),
		W(malformed_direction_mismatch),
		W(malformed_payload_on_flush),
		W(malformed_nbd_magic),
		W(completion_tag_out_of_range),
		W(completion_tag_not_in_flight),
		W(completion_cookie_mismatch),
		W(completion_length_beyond_buffer),
		B(completion_bad_reply_magic),
		W(reopened_channel_ignores_previous_completions),
		W(link_close_with_open_channels_defers_the_free),
		S(chan_open_busy_and_first_free),
		S(chan_reopen_after_close_is_accepted),
		S(chan_reopen_after_max_session_in_bar_is_accepted),
		S(ep_close_seen_by_host_channel),
		S(link_describe_and_limits),
		B(link_describe_bar_only),
		S(ep_link_close_brings_host_link_down),
		W(host_link_close_resets_ep_channels_and_new_host_attaches),
		cmocka_unit_test(host_open_times_out_without_ep),
		cmocka_unit_test(ep_fits_layout_into_foreign_bar_file),
		cmocka_unit_test(ep_refuses_foreign_bar_file_too_small),
		cmocka_unit_test(dma_model_delays_but_delivers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

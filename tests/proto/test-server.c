/* Server handshake machine: byte-exact transcripts for each option and
 * each error path. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <nbdproto/server.h>

#include "helpers.h"

/* ---- a fixed set of exports ------------------------------------------- */

static int marker_disk, marker_aligned;

static int t_lookup(void *opaque, const char *name, struct nbdp_export *out)
{
	if (!strcmp(name, "disk") || !strcmp(name, "")) {
		strcpy(out->name, "disk");       /* "" is the default export: canonical "disk" */
		out->size = 1 << 20;
		out->tflags = NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA;
		out->description = "test disk";
		out->handle = &marker_disk;
		return 0;
	}
	if (!strcmp(name, "ro")) {
		out->size = 4096;
		out->tflags = NBD_FLAG_READ_ONLY;
		return 0;
	}
	if (!strcmp(name, "aligned")) {
		out->size = 1 << 20;
		out->min_block = 512;
		out->pref_block = 4096;
		out->max_block = 1 << 20;
		out->handle = &marker_aligned;
		return 0;
	}
	if (!strcmp(name, "oddflags")) {
		out->size = 8192;
		out->tflags = NBD_FLAG_SEND_DF | NBD_FLAG_SEND_FAST_ZERO | 0x8000;
		return 0;
	}
	if (!strcmp(name, "badblock")) {
		out->size = 8192;
		out->min_block = 3;
		return 0;
	}
	if (!strcmp(name, "broken"))
		return -EIO;
	if (!strcmp(name, "denied"))
		return -EACCES;
	if (!strcmp(name, "closing"))
		return -ESHUTDOWN;
	return -ENOENT;
}

static int t_list(void *opaque, void (*emit)(void *ctx, const char *name, const char *desc),
		  void *ctx)
{
	emit(ctx, "disk", "test disk");
	emit(ctx, "ro", NULL);
	return 0;
}

static int t_list_denied(void *opaque, void (*emit)(void *ctx, const char *name, const char *desc),
			 void *ctx)
{
	emit(ctx, "disk", NULL);
	return -EACCES;
}

static const struct nbdp_server_ops ops = { .lookup = t_lookup, .list = t_list };
static const struct nbdp_server_ops ops_nolist = { .lookup = t_lookup };
static const struct nbdp_server_ops ops_list_denied = { .lookup = t_lookup, .list = t_list_denied };

/* ---- driving helpers ---------------------------------------------------- */

static struct tbuf in, want, got;

static void drain(struct nbdp_server *s, struct tbuf *out)
{
	const void *p;
	size_t n;

	tb_reset(out);
	while ((n = nbdp_server_pending(s, &p)) > 0) {
		tb_mem(out, p, n);
		nbdp_server_consumed(s, n);
	}
}

static void assert_output(struct nbdp_server *s, const struct tbuf *expect)
{
	drain(s, &got);
	assert_int_equal(got.n, expect->n);
	assert_memory_equal(got.d, expect->d, expect->n);
}

static void feed_all(struct nbdp_server *s, const struct tbuf *b)
{
	assert_int_equal(nbdp_server_feed(s, b->d, b->n), (ssize_t)b->n);
}

/* New server, greeting drained and checked, client flags sent. */
static struct nbdp_server *start(const struct nbdp_server_ops *o, uint32_t cflags)
{
	struct nbdp_server *s = nbdp_server_new(o, NULL);
	struct tbuf flags;

	assert_non_null(s);
	tb_reset(&want);
	tb_greeting(&want, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	assert_output(s, &want);
	tb_reset(&flags);
	tb_be32(&flags, cflags);
	feed_all(s, &flags);
	assert_int_equal(nbdp_server_state(s), NBDP_NEGOTIATING);
	return s;
}

#define FIXED_NZ (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)

static void expect_err(uint32_t opt, uint32_t type, const char *msg)
{
	tb_rep(&want, opt, type, (uint32_t)strlen(msg));
	tb_str(&want, msg);
}

/* Sends option opt with len bytes of data (all taken) and empties want for
 * the expected answer. */
static void send_opt(struct nbdp_server *s, uint32_t opt, const void *data, uint32_t len)
{
	tb_reset(&in);
	tb_opt(&in, opt, data, len);
	feed_all(s, &in);
	tb_reset(&want);
}

/* The same for NBD_OPT_INFO or NBD_OPT_GO of export name with nreq
 * information requests. */
static void send_info_go(struct nbdp_server *s, uint32_t opt, const char *name,
			 const uint16_t *reqs, uint16_t nreq)
{
	tb_reset(&in);
	tb_info_go(&in, opt, name, reqs, nreq);
	feed_all(s, &in);
	tb_reset(&want);
}

/* Feeds `in` whole; the server answers exactly one error reply to opt
 * (type, msg) and goes on negotiating. */
static void feed_expect_err(struct nbdp_server *s, uint32_t opt, uint32_t type, const char *msg)
{
	feed_all(s, &in);
	tb_reset(&want);
	expect_err(opt, type, msg);
	assert_output(s, &want);
	assert_int_equal(nbdp_server_state(s), NBDP_NEGOTIATING);
}

/* A fresh server (ops o) answers option opt carrying len bytes of data
 * with one error reply (type, msg) and goes on negotiating. */
static void opt_gets_err(const struct nbdp_server_ops *o, uint32_t opt, const void *data,
			 uint32_t len, uint32_t type, const char *msg)
{
	struct nbdp_server *s = start(o, FIXED_NZ);

	tb_reset(&in);
	tb_opt(&in, opt, data, len);
	feed_expect_err(s, opt, type, msg);
	nbdp_server_free(s);
}

/* A fresh server (ops o) answers NBD_OPT_GO of export name, without
 * information requests, with one error reply (type, msg) and goes on
 * negotiating. */
static void go_gets_err(const struct nbdp_server_ops *o, const char *name, uint32_t type,
			const char *msg)
{
	struct nbdp_server *s = start(o, FIXED_NZ);

	tb_reset(&in);
	tb_info_go(&in, NBD_OPT_GO, name, NULL, 0);
	feed_expect_err(s, NBD_OPT_GO, type, msg);
	nbdp_server_free(s);
}

static void expect_info_export(uint32_t opt, uint64_t size, uint16_t tflags)
{
	tb_rep(&want, opt, NBD_REP_INFO, 12);
	tb_be16(&want, NBD_INFO_EXPORT);
	tb_be64(&want, size);
	tb_be16(&want, tflags);
}

static void expect_info_block(uint32_t opt, uint32_t min, uint32_t pref, uint32_t max)
{
	tb_rep(&want, opt, NBD_REP_INFO, 14);
	tb_be16(&want, NBD_INFO_BLOCK_SIZE);
	tb_be32(&want, min);
	tb_be32(&want, pref);
	tb_be32(&want, max);
}

static void expect_info_string(uint32_t opt, uint16_t type, const char *str)
{
	tb_rep(&want, opt, NBD_REP_INFO, (uint32_t)(2 + strlen(str)));
	tb_be16(&want, type);
	tb_str(&want, str);
}

/* ---- greeting and client flags ------------------------------------------ */

static void greeting_is_fixed_newstyle_with_no_zeroes(void **state)
{
	struct nbdp_server *s = nbdp_server_new(&ops, NULL);
	static const uint8_t expect[18] = {
		'N', 'B', 'D', 'M', 'A', 'G', 'I', 'C',
		'I', 'H', 'A', 'V', 'E', 'O', 'P', 'T', 0x00, 0x03,
	};

	drain(s, &got);
	assert_int_equal(got.n, sizeof(expect));
	assert_memory_equal(got.d, expect, sizeof(expect));
	nbdp_server_free(s);
}

static void unknown_client_flag_closes(void **state)
{
	struct nbdp_server *s = nbdp_server_new(&ops, NULL);
	uint8_t flags[4] = { 0, 0, 0, 0x05 };

	drain(s, &got);
	assert_int_equal(nbdp_server_feed(s, flags, 4), -EPROTO);
	assert_int_equal(nbdp_server_state(s), NBDP_CLOSED);
	assert_non_null(strstr(nbdp_server_reason(s), "unknown bits 0x00000004"));
	drain(s, &got);
	assert_int_equal(got.n, 0);
	nbdp_server_free(s);
}

static void new_without_lookup_is_einval(void **state)
{
	static const struct nbdp_server_ops none = { .lookup = NULL };

	errno = 0;
	assert_null(nbdp_server_new(&none, NULL));
	assert_int_equal(errno, EINVAL);
}

static void bad_option_magic_closes(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	tb_reset(&in);
	tb_be64(&in, 0x1122334455667788ULL);
	tb_be32(&in, NBD_OPT_LIST);
	tb_be32(&in, 0);
	assert_int_equal(nbdp_server_feed(s, in.d, in.n), -EPROTO);
	assert_int_equal(nbdp_server_state(s), NBDP_CLOSED);
	assert_non_null(strstr(nbdp_server_reason(s), "magic 0x1122334455667788"));
	nbdp_server_free(s);
}

/* ---- EXPORT_NAME ------------------------------------------------------- */

static void export_name_sends_124_zeroes_without_no_zeroes(void **state)
{
	struct nbdp_server *s = start(&ops, NBD_FLAG_C_FIXED_NEWSTYLE);

	send_opt(s, NBD_OPT_EXPORT_NAME, "disk", 4);
	tb_be64(&want, 1 << 20);
	tb_be16(&want, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA);
	tb_zero(&want, 124);
	assert_output(s, &want);
	assert_int_equal(nbdp_server_state(s), NBDP_TRANSMISSION);
	assert_ptr_equal(nbdp_server_export(s)->handle, &marker_disk);
	nbdp_server_free(s);
}

static void export_name_omits_zeroes_with_no_zeroes(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	send_opt(s, NBD_OPT_EXPORT_NAME, "ro", 2);
	tb_be64(&want, 4096);
	tb_be16(&want, NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY);
	assert_output(s, &want);
	assert_int_equal(nbdp_server_state(s), NBDP_TRANSMISSION);
	nbdp_server_free(s);
}

static void export_name_empty_selects_default_export(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	tb_reset(&in);
	tb_opt(&in, NBD_OPT_EXPORT_NAME, NULL, 0);
	feed_all(s, &in);
	assert_int_equal(nbdp_server_state(s), NBDP_TRANSMISSION);
	assert_string_equal(nbdp_server_export(s)->name, "disk");
	nbdp_server_free(s);
}

static void export_name_unknown_closes_without_reply(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	tb_reset(&in);
	tb_opt(&in, NBD_OPT_EXPORT_NAME, "nope", 4);
	feed_all(s, &in);
	assert_int_equal(nbdp_server_state(s), NBDP_CLOSED);
	drain(s, &got);
	assert_int_equal(got.n, 0);
	assert_string_equal(nbdp_server_reason(s),
			    "NBD_OPT_EXPORT_NAME: export 'nope' refused: unknown export");
	assert_null(nbdp_server_export(s));
	nbdp_server_free(s);
}

static void export_name_longer_than_4096_closes(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	tb_reset(&in);
	tb_be64(&in, NBD_IHAVEOPT);
	tb_be32(&in, NBD_OPT_EXPORT_NAME);
	tb_be32(&in, 4097);
	assert_int_equal(nbdp_server_feed(s, in.d, in.n), -EPROTO);
	assert_int_equal(nbdp_server_state(s), NBDP_CLOSED);
	assert_string_equal(nbdp_server_reason(s),
			    "NBD_OPT_EXPORT_NAME: name length 4097 beyond limit 4096");
	nbdp_server_free(s);
}

static void export_name_never_agrees_block_sizes(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);
	struct nbdp_limits l;

	tb_reset(&in);
	tb_opt(&in, NBD_OPT_EXPORT_NAME, "aligned", 7);
	feed_all(s, &in);
	assert_int_equal(nbdp_server_state(s), NBDP_TRANSMISSION);
	assert_false(nbdp_server_block_size_agreed(s));
	assert_int_equal(nbdp_server_min_block(s), 1);
	assert_int_equal(nbdp_server_limits(s, &l), 0);
	assert_int_equal(l.min_block, 1);
	assert_int_equal(l.max_payload, 1 << 20);
	assert_int_equal(l.size, 1 << 20);
	nbdp_server_free(s);
}

/* ---- ABORT and LIST ---------------------------------------------------- */

static void abort_acks_and_closes(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	tb_reset(&in);
	tb_opt(&in, NBD_OPT_ABORT, "junk", 4);     /* data is ignored, not even read */
	assert_int_equal(nbdp_server_feed(s, in.d, in.n), 16);
	tb_reset(&want);
	tb_rep(&want, NBD_OPT_ABORT, NBD_REP_ACK, 0);
	assert_output(s, &want);
	assert_int_equal(nbdp_server_state(s), NBDP_CLOSED);
	assert_string_equal(nbdp_server_reason(s), "client sent NBD_OPT_ABORT");
	nbdp_server_free(s);
}

static void abort_with_oversized_data_acks_without_reading_it(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	tb_reset(&in);
	tb_be64(&in, NBD_IHAVEOPT);
	tb_be32(&in, NBD_OPT_ABORT);
	tb_be32(&in, 1u << 30);
	tb_zero(&in, 100);          /* the start of the data: not taken */
	assert_int_equal(nbdp_server_feed(s, in.d, in.n), 16);
	tb_reset(&want);
	tb_rep(&want, NBD_OPT_ABORT, NBD_REP_ACK, 0);
	assert_output(s, &want);
	assert_int_equal(nbdp_server_state(s), NBDP_CLOSED);
	nbdp_server_free(s);
}

static void list_sends_one_server_reply_per_export_then_ack(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	send_opt(s, NBD_OPT_LIST, NULL, 0);
	tb_rep(&want, NBD_OPT_LIST, NBD_REP_SERVER, 4 + 4 + 9);
	tb_be32(&want, 4);
	tb_str(&want, "disk");
	tb_str(&want, "test disk");
	tb_rep(&want, NBD_OPT_LIST, NBD_REP_SERVER, 4 + 2);
	tb_be32(&want, 2);
	tb_str(&want, "ro");
	tb_rep(&want, NBD_OPT_LIST, NBD_REP_ACK, 0);
	assert_output(s, &want);
	assert_int_equal(nbdp_server_state(s), NBDP_NEGOTIATING);
	nbdp_server_free(s);
}

static void list_with_data_is_invalid(void **state)
{
	opt_gets_err(&ops, NBD_OPT_LIST, "xy", 2, NBD_REP_ERR_INVALID,
		     "NBD_OPT_LIST: option length 2, must be 0");
}

static void list_without_list_callback_is_policy(void **state)
{
	opt_gets_err(&ops_nolist, NBD_OPT_LIST, NULL, 0, NBD_REP_ERR_POLICY,
		     "NBD_OPT_LIST: listing exports is disabled on this server");
}

/* ---- INFO and GO ------------------------------------------------------- */

static void info_without_requests_sends_export_only(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	send_info_go(s, NBD_OPT_INFO, "disk", NULL, 0);
	expect_info_export(NBD_OPT_INFO, 1 << 20,
			   NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA);
	tb_rep(&want, NBD_OPT_INFO, NBD_REP_ACK, 0);
	assert_output(s, &want);
	assert_int_equal(nbdp_server_state(s), NBDP_NEGOTIATING);
	nbdp_server_free(s);
}

static void info_answers_name_description_and_block_size(void **state)
{
	static const uint16_t reqs[] = { NBD_INFO_NAME, NBD_INFO_DESCRIPTION,
					 NBD_INFO_BLOCK_SIZE, 77 /* unknown: ignored */ };
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	send_info_go(s, NBD_OPT_INFO, "", reqs, 4);
	expect_info_export(NBD_OPT_INFO, 1 << 20,
			   NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA);
	expect_info_string(NBD_OPT_INFO, NBD_INFO_NAME, "disk");
	expect_info_string(NBD_OPT_INFO, NBD_INFO_DESCRIPTION, "test disk");
	expect_info_block(NBD_OPT_INFO, 1, 4096, NBDP_DEFAULT_MAX_PAYLOAD);
	tb_rep(&want, NBD_OPT_INFO, NBD_REP_ACK, 0);
	assert_output(s, &want);
	nbdp_server_free(s);
}

static void info_sends_block_size_unasked_when_export_needs_alignment(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	send_info_go(s, NBD_OPT_INFO, "aligned", NULL, 0);
	expect_info_export(NBD_OPT_INFO, 1 << 20, NBD_FLAG_HAS_FLAGS);
	expect_info_block(NBD_OPT_INFO, 512, 4096, 1 << 20);
	tb_rep(&want, NBD_OPT_INFO, NBD_REP_ACK, 0);
	assert_output(s, &want);
	nbdp_server_free(s);
}

static void go_enters_transmission_after_ack(void **state)
{
	static const uint16_t reqs[] = { NBD_INFO_BLOCK_SIZE };
	struct nbdp_server *s = start(&ops, FIXED_NZ);
	struct nbdp_limits l;

	send_info_go(s, NBD_OPT_GO, "disk", reqs, 1);
	expect_info_export(NBD_OPT_GO, 1 << 20,
			   NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA);
	expect_info_block(NBD_OPT_GO, 1, 4096, NBDP_DEFAULT_MAX_PAYLOAD);
	tb_rep(&want, NBD_OPT_GO, NBD_REP_ACK, 0);
	assert_output(s, &want);
	assert_int_equal(nbdp_server_state(s), NBDP_TRANSMISSION);
	assert_ptr_equal(nbdp_server_export(s)->handle, &marker_disk);
	assert_true(nbdp_server_block_size_agreed(s));
	assert_int_equal(nbdp_server_limits(s, &l), 0);
	assert_int_equal(l.tflags, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA);
	assert_int_equal(l.max_payload, NBDP_DEFAULT_MAX_PAYLOAD);
	assert_int_equal(l.min_block, 1);
	nbdp_server_free(s);
}

static void go_unknown_export_is_err_unknown_with_message(void **state)
{
	go_gets_err(&ops, "nope", NBD_REP_ERR_UNKNOWN, "NBD_OPT_GO: export 'nope': unknown export");
}

static void go_denied_export_is_err_policy(void **state)
{
	go_gets_err(&ops, "denied", NBD_REP_ERR_POLICY,
		    "NBD_OPT_GO: export 'denied': access denied by server policy");
}

static void go_while_shutting_down_is_err_shutdown(void **state)
{
	go_gets_err(&ops, "closing", NBD_REP_ERR_SHUTDOWN,
		    "NBD_OPT_GO: export 'closing': server is shutting down");
}

static void go_without_block_size_request_on_aligned_export_is_block_size_reqd(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	send_info_go(s, NBD_OPT_GO, "aligned", NULL, 0);
	expect_info_block(NBD_OPT_GO, 512, 4096, 1 << 20);
	expect_err(NBD_OPT_GO, NBD_REP_ERR_BLOCK_SIZE_REQD,
		   "NBD_OPT_GO: export 'aligned' needs minimum block size 512: request NBD_INFO_BLOCK_SIZE");
	assert_output(s, &want);
	assert_int_equal(nbdp_server_state(s), NBDP_NEGOTIATING);
	nbdp_server_free(s);
}

static void go_with_block_size_request_agrees_minimum_block(void **state)
{
	static const uint16_t reqs[] = { NBD_INFO_BLOCK_SIZE };
	struct nbdp_server *s = start(&ops, FIXED_NZ);
	struct nbdp_limits l;

	send_info_go(s, NBD_OPT_GO, "aligned", reqs, 1);
	expect_info_export(NBD_OPT_GO, 1 << 20, NBD_FLAG_HAS_FLAGS);
	expect_info_block(NBD_OPT_GO, 512, 4096, 1 << 20);
	tb_rep(&want, NBD_OPT_GO, NBD_REP_ACK, 0);
	assert_output(s, &want);
	assert_int_equal(nbdp_server_state(s), NBDP_TRANSMISSION);
	assert_int_equal(nbdp_server_min_block(s), 512);
	assert_int_equal(nbdp_server_limits(s, &l), 0);
	assert_int_equal(l.min_block, 512);
	assert_int_equal(l.max_payload, 1 << 20);
	nbdp_server_free(s);
}

static void go_sanitizes_transmission_flags(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	send_info_go(s, NBD_OPT_GO, "oddflags", NULL, 0);
	/* DF needs structured replies, FAST_ZERO needs WRITE_ZEROES, bit 15 is undefined. */
	expect_info_export(NBD_OPT_GO, 8192, NBD_FLAG_HAS_FLAGS);
	tb_rep(&want, NBD_OPT_GO, NBD_REP_ACK, 0);
	assert_output(s, &want);
	assert_int_equal(nbdp_server_export(s)->tflags, NBD_FLAG_HAS_FLAGS);
	nbdp_server_free(s);
}

static void go_with_insane_export_block_size_is_err_platform(void **state)
{
	go_gets_err(&ops, "badblock", NBD_REP_ERR_PLATFORM,
		    "NBD_OPT_GO: export 'badblock': min_block 3 is not a power of two <= 65536");
}

static void go_shorter_than_six_bytes_is_invalid(void **state)
{
	opt_gets_err(&ops, NBD_OPT_GO, "\0\0\0\0\0", 5, NBD_REP_ERR_INVALID,
		     "NBD_OPT_GO: option length 5 below minimum 6");
}

static void go_name_length_beyond_option_is_invalid(void **state)
{
	struct tbuf data;

	tb_reset(&data);
	tb_be32(&data, 100);         /* claims 100 bytes of name */
	tb_str(&data, "disk");
	tb_be16(&data, 0);
	opt_gets_err(&ops, NBD_OPT_GO, data.d, (uint32_t)data.n, NBD_REP_ERR_INVALID,
		     "NBD_OPT_GO: name length 100 beyond option length 10 - 6");
}

static void go_request_count_not_matching_length_is_invalid(void **state)
{
	struct tbuf data;

	tb_reset(&data);
	tb_be32(&data, 4);
	tb_str(&data, "disk");
	tb_be16(&data, 3);           /* three requests announced, one sent */
	tb_be16(&data, NBD_INFO_NAME);
	opt_gets_err(&ops, NBD_OPT_GO, data.d, (uint32_t)data.n, NBD_REP_ERR_INVALID,
		     "NBD_OPT_GO: 3 information requests after a 4-byte name do not fill option length 12");
}

static void go_name_longer_than_4096_is_invalid(void **state)
{
	static char name[4098];

	memset(name, 'a', 4097);
	name[4097] = '\0';
	go_gets_err(&ops, name, NBD_REP_ERR_INVALID, "NBD_OPT_GO: name length 4097 beyond limit 4096");
}

static void go_name_with_nul_is_invalid(void **state)
{
	struct tbuf data;

	tb_reset(&data);
	tb_be32(&data, 3);
	tb_mem(&data, "a\0b", 3);
	tb_be16(&data, 0);
	opt_gets_err(&ops, NBD_OPT_GO, data.d, (uint32_t)data.n, NBD_REP_ERR_INVALID,
		     "NBD_OPT_GO: export name contains a NUL byte");
}

/* ---- options we do not implement -------------------------------------- */

static void check_unsup(uint32_t opt, const char *msg)
{
	opt_gets_err(&ops, opt, NULL, 0, NBD_REP_ERR_UNSUP, msg);
}

static void structured_reply_is_unsup(void **state)
{
	check_unsup(NBD_OPT_STRUCTURED_REPLY,
		    "NBD_OPT_STRUCTURED_REPLY: this server sends simple replies only");
}

static void list_meta_context_is_unsup(void **state)
{
	check_unsup(NBD_OPT_LIST_META_CONTEXT,
		    "NBD_OPT_LIST_META_CONTEXT: this server sends simple replies only");
}

static void set_meta_context_is_unsup(void **state)
{
	check_unsup(NBD_OPT_SET_META_CONTEXT,
		    "NBD_OPT_SET_META_CONTEXT: this server sends simple replies only");
}

static void extended_headers_is_unsup(void **state)
{
	check_unsup(NBD_OPT_EXTENDED_HEADERS,
		    "NBD_OPT_EXTENDED_HEADERS: this server sends simple replies only");
}

static void starttls_is_unsup(void **state)
{
	check_unsup(NBD_OPT_STARTTLS, "NBD_OPT_STARTTLS: this server has no TLS");
}

static void unknown_option_is_unsup(void **state)
{
	check_unsup(4242, "option 4242 not supported");
}

static void peek_export_is_unsup(void **state)
{
	check_unsup(NBD_OPT_PEEK_EXPORT, "option 4 not supported");
}

/* ---- oversized options and stream behaviour ------------------------------ */

static void oversized_option_is_skipped_and_too_big(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);
	static uint8_t junk[20000];
	size_t off;

	memset(junk, 0xab, sizeof(junk));
	tb_reset(&in);
	tb_opt(&in, NBD_OPT_INFO, junk, sizeof(junk));
	tb_opt(&in, NBD_OPT_LIST, NULL, 0);     /* the stream must still be in step */
	/* Feed in 1000-byte pieces: nothing is buffered beyond the limit. */
	for (off = 0; off < in.n; off += 1000) {
		size_t n = in.n - off < 1000 ? in.n - off : 1000;

		assert_int_equal(nbdp_server_feed(s, in.d + off, n), (ssize_t)n);
	}
	tb_reset(&want);
	expect_err(NBD_OPT_INFO, NBD_REP_ERR_TOO_BIG, "NBD_OPT_INFO: option length 20000 beyond limit 8192");
	tb_rep(&want, NBD_OPT_LIST, NBD_REP_SERVER, 4 + 4 + 9);
	tb_be32(&want, 4);
	tb_str(&want, "disk");
	tb_str(&want, "test disk");
	tb_rep(&want, NBD_OPT_LIST, NBD_REP_SERVER, 4 + 2);
	tb_be32(&want, 2);
	tb_str(&want, "ro");
	tb_rep(&want, NBD_OPT_LIST, NBD_REP_ACK, 0);
	assert_output(s, &want);
	nbdp_server_free(s);
}

static void feed_stops_at_end_of_handshake(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);
	size_t go_len;

	tb_reset(&in);
	tb_info_go(&in, NBD_OPT_GO, "disk", NULL, 0);
	go_len = in.n;
	tb_be32(&in, NBD_REQUEST_MAGIC);     /* first transmission bytes */
	tb_zero(&in, 24);
	assert_int_equal(nbdp_server_feed(s, in.d, in.n), (ssize_t)go_len);
	assert_int_equal(nbdp_server_state(s), NBDP_TRANSMISSION);
	assert_int_equal(nbdp_server_feed(s, in.d + go_len, in.n - go_len), 0);
	nbdp_server_free(s);
}

/* The same session fed in one piece and one byte at a time gives the same bytes. */
static void byte_at_a_time_gives_same_transcript(void **state)
{
	static const uint16_t reqs[] = { NBD_INFO_NAME, NBD_INFO_BLOCK_SIZE };
	struct nbdp_server *a = nbdp_server_new(&ops, NULL);
	struct nbdp_server *b = nbdp_server_new(&ops, NULL);
	static struct tbuf out_a, out_b;
	size_t i;

	tb_reset(&in);
	tb_be32(&in, FIXED_NZ);
	tb_opt(&in, NBD_OPT_LIST, NULL, 0);
	tb_opt(&in, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	tb_info_go(&in, NBD_OPT_INFO, "nope", NULL, 0);
	tb_info_go(&in, NBD_OPT_GO, "aligned", reqs, 2);

	feed_all(a, &in);
	for (i = 0; i < in.n; i++)
		assert_int_equal(nbdp_server_feed(b, in.d + i, 1), 1);
	drain(a, &out_a);
	drain(b, &out_b);
	assert_true(out_a.n > 200);
	assert_int_equal(out_a.n, out_b.n);
	assert_memory_equal(out_a.d, out_b.d, out_a.n);
	assert_int_equal(nbdp_server_state(b), NBDP_TRANSMISSION);
	assert_int_equal(nbdp_server_min_block(b), 512);
	nbdp_server_free(a);
	nbdp_server_free(b);
}

static void output_backlog_pauses_input(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);
	const void *p;
	size_t off = 0, rounds = 0;
	ssize_t r;

	tb_reset(&in);
	while (in.n + 16 <= 16 * 2000)
		tb_opt(&in, NBD_OPT_LIST, NULL, 0);   /* 2000 LISTs, about 88 KB of replies */
	r = nbdp_server_feed(s, in.d, in.n);
	assert_true(r > 0 && (size_t)r < in.n);
	assert_true(nbdp_server_pending(s, &p) > NBDP_SERVER_OUT_HIGH);
	assert_true(nbdp_server_pending(s, &p) < NBDP_SERVER_OUT_HIGH + 100);
	assert_int_equal(nbdp_server_feed(s, in.d + r, in.n - (size_t)r), 0);
	off = (size_t)r;
	while (off < in.n) {
		drain(s, &got);
		r = nbdp_server_feed(s, in.d + off, in.n - off);
		assert_true(r > 0);
		off += (size_t)r;
		rounds++;
	}
	assert_true(rounds >= 1);
	nbdp_server_free(s);
}

static void client_without_fixed_flag_is_still_answered(void **state)
{
	struct nbdp_server *s = start(&ops, 0);

	tb_reset(&in);
	tb_opt(&in, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	tb_opt(&in, NBD_OPT_EXPORT_NAME, "disk", 4);
	feed_all(s, &in);
	tb_reset(&want);
	expect_err(NBD_OPT_STRUCTURED_REPLY, NBD_REP_ERR_UNSUP,
		   "NBD_OPT_STRUCTURED_REPLY: this server sends simple replies only");
	tb_be64(&want, 1 << 20);
	tb_be16(&want, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA);
	tb_zero(&want, 124);
	assert_output(s, &want);
	assert_int_equal(nbdp_server_state(s), NBDP_TRANSMISSION);
	nbdp_server_free(s);
}

static void list_callback_error_ends_list_with_error(void **state)
{
	struct nbdp_server *s = start(&ops_list_denied, FIXED_NZ);

	send_opt(s, NBD_OPT_LIST, NULL, 0);
	tb_rep(&want, NBD_OPT_LIST, NBD_REP_SERVER, 4 + 4);
	tb_be32(&want, 4);
	tb_str(&want, "disk");
	expect_err(NBD_OPT_LIST, NBD_REP_ERR_POLICY, "NBD_OPT_LIST: access denied by server policy");
	assert_output(s, &want);
	nbdp_server_free(s);
}

static void go_lookup_failure_is_err_platform_with_errno_text(void **state)
{
	go_gets_err(&ops, "broken", NBD_REP_ERR_PLATFORM, "NBD_OPT_GO: export 'broken': Input/output error");
}

static void info_then_go_on_one_connection(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	tb_reset(&in);
	tb_info_go(&in, NBD_OPT_INFO, "ro", NULL, 0);
	tb_info_go(&in, NBD_OPT_GO, "ro", NULL, 0);
	feed_all(s, &in);
	tb_reset(&want);
	expect_info_export(NBD_OPT_INFO, 4096, NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY);
	tb_rep(&want, NBD_OPT_INFO, NBD_REP_ACK, 0);
	expect_info_export(NBD_OPT_GO, 4096, NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY);
	tb_rep(&want, NBD_OPT_GO, NBD_REP_ACK, 0);
	assert_output(s, &want);
	assert_int_equal(nbdp_server_state(s), NBDP_TRANSMISSION);
	assert_int_equal(nbdp_server_export(s)->size, 4096);
	nbdp_server_free(s);
}

static void nothing_is_taken_after_close(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);

	tb_reset(&in);
	tb_opt(&in, NBD_OPT_ABORT, NULL, 0);
	feed_all(s, &in);
	assert_int_equal(nbdp_server_state(s), NBDP_CLOSED);
	assert_int_equal(nbdp_server_feed(s, in.d, in.n), 0);
	assert_null(nbdp_server_export(s));
	nbdp_server_free(s);
}

static void limits_before_transmission_are_einval(void **state)
{
	struct nbdp_server *s = start(&ops, FIXED_NZ);
	struct nbdp_limits l;

	assert_int_equal(nbdp_server_limits(s, &l), -EINVAL);
	assert_false(nbdp_server_block_size_agreed(s));
	nbdp_server_free(s);
}

static void free_accepts_null(void **state)
{
	nbdp_server_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(greeting_is_fixed_newstyle_with_no_zeroes),
		cmocka_unit_test(unknown_client_flag_closes),
		cmocka_unit_test(new_without_lookup_is_einval),
		cmocka_unit_test(bad_option_magic_closes),
		cmocka_unit_test(export_name_sends_124_zeroes_without_no_zeroes),
		cmocka_unit_test(export_name_omits_zeroes_with_no_zeroes),
		cmocka_unit_test(export_name_empty_selects_default_export),
		cmocka_unit_test(export_name_unknown_closes_without_reply),
		cmocka_unit_test(export_name_longer_than_4096_closes),
		cmocka_unit_test(export_name_never_agrees_block_sizes),
		cmocka_unit_test(abort_acks_and_closes),
		cmocka_unit_test(abort_with_oversized_data_acks_without_reading_it),
		cmocka_unit_test(list_sends_one_server_reply_per_export_then_ack),
		cmocka_unit_test(list_with_data_is_invalid),
		cmocka_unit_test(list_without_list_callback_is_policy),
		cmocka_unit_test(info_without_requests_sends_export_only),
		cmocka_unit_test(info_answers_name_description_and_block_size),
		cmocka_unit_test(info_sends_block_size_unasked_when_export_needs_alignment),
		cmocka_unit_test(go_enters_transmission_after_ack),
		cmocka_unit_test(go_unknown_export_is_err_unknown_with_message),
		cmocka_unit_test(go_denied_export_is_err_policy),
		cmocka_unit_test(go_while_shutting_down_is_err_shutdown),
		cmocka_unit_test(go_without_block_size_request_on_aligned_export_is_block_size_reqd),
		cmocka_unit_test(go_with_block_size_request_agrees_minimum_block),
		cmocka_unit_test(go_sanitizes_transmission_flags),
		cmocka_unit_test(go_with_insane_export_block_size_is_err_platform),
		cmocka_unit_test(go_shorter_than_six_bytes_is_invalid),
		cmocka_unit_test(go_name_length_beyond_option_is_invalid),
		cmocka_unit_test(go_request_count_not_matching_length_is_invalid),
		cmocka_unit_test(go_name_longer_than_4096_is_invalid),
		cmocka_unit_test(go_name_with_nul_is_invalid),
		cmocka_unit_test(structured_reply_is_unsup),
		cmocka_unit_test(list_meta_context_is_unsup),
		cmocka_unit_test(set_meta_context_is_unsup),
		cmocka_unit_test(extended_headers_is_unsup),
		cmocka_unit_test(starttls_is_unsup),
		cmocka_unit_test(unknown_option_is_unsup),
		cmocka_unit_test(peek_export_is_unsup),
		cmocka_unit_test(oversized_option_is_skipped_and_too_big),
		cmocka_unit_test(feed_stops_at_end_of_handshake),
		cmocka_unit_test(byte_at_a_time_gives_same_transcript),
		cmocka_unit_test(output_backlog_pauses_input),
		cmocka_unit_test(client_without_fixed_flag_is_still_answered),
		cmocka_unit_test(list_callback_error_ends_list_with_error),
		cmocka_unit_test(go_lookup_failure_is_err_platform_with_errno_text),
		cmocka_unit_test(info_then_go_on_one_connection),
		cmocka_unit_test(nothing_is_taken_after_close),
		cmocka_unit_test(limits_before_transmission_are_einval),
		cmocka_unit_test(free_accepts_null),
	};

	return cmocka_run_group_tests_name("proto-server", tests, NULL, NULL);
}

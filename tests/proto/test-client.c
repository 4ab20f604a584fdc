/* Client handshake machine: byte-exact requests, reply handling, errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <nbdproto/client.h>

#include "helpers.h"

static struct tbuf in, want, got;

static void drain(struct nbdp_client *c, struct tbuf *out)
{
	const void *p;
	size_t n;

	tb_reset(out);
	while ((n = nbdp_client_pending(c, &p)) > 0) {
		tb_mem(out, p, n);
		nbdp_client_consumed(c, n);
	}
}

static void assert_output(struct nbdp_client *c, const struct tbuf *expect)
{
	drain(c, &got);
	assert_int_equal(got.n, expect->n);
	assert_memory_equal(got.d, expect->d, expect->n);
}

static void feed_all(struct nbdp_client *c, const struct tbuf *b)
{
	assert_int_equal(nbdp_client_feed(c, b->d, b->n), (ssize_t)b->n);
}

static struct nbdp_client *client(enum nbdp_client_goal goal, const char *name, bool no_optgo)
{
	struct nbdp_client_opts o = { .goal = goal, .export_name = name, .no_optgo = no_optgo };
	struct nbdp_client *c = nbdp_client_new(&o);

	assert_non_null(c);
	return c;
}

/* What the client sends for INFO/GO: BLOCK_SIZE, NAME, DESCRIPTION requests. */
static void expect_info_go(uint32_t opt, const char *name)
{
	static const uint16_t reqs[] = { NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME, NBD_INFO_DESCRIPTION };

	tb_info_go(&want, opt, name, reqs, 3);
}

static void expect_abort(void)
{
	tb_opt(&want, NBD_OPT_ABORT, NULL, 0);
}

static void greet(struct nbdp_client *c, uint16_t hflags)
{
	tb_reset(&in);
	tb_greeting(&in, hflags);
	feed_all(c, &in);
}

#define FIXED_NZ (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES)

static void rep_info_export(uint32_t opt, uint64_t size, uint16_t tflags)
{
	tb_rep(&in, opt, NBD_REP_INFO, 12);
	tb_be16(&in, NBD_INFO_EXPORT);
	tb_be64(&in, size);
	tb_be16(&in, tflags);
}

static void rep_info_block(uint32_t opt, uint32_t min, uint32_t pref, uint32_t max)
{
	tb_rep(&in, opt, NBD_REP_INFO, 14);
	tb_be16(&in, NBD_INFO_BLOCK_SIZE);
	tb_be32(&in, min);
	tb_be32(&in, pref);
	tb_be32(&in, max);
}

static void rep_info_string(uint32_t opt, uint16_t type, const char *s)
{
	tb_rep(&in, opt, NBD_REP_INFO, (uint32_t)(2 + strlen(s)));
	tb_be16(&in, type);
	tb_str(&in, s);
}

static void rep_err(uint32_t opt, uint32_t type, const char *msg)
{
	tb_rep(&in, opt, type, (uint32_t)strlen(msg));
	tb_str(&in, msg);
}

/* ---- what the client sends ---------------------------------------------- */

static void go_sends_flags_then_go_with_info_requests(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "disk", false);

	drain(c, &got);
	assert_int_equal(got.n, 0);          /* the server speaks first */
	greet(c, FIXED_NZ);
	tb_reset(&want);
	tb_be32(&want, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	expect_info_go(NBD_OPT_GO, "disk");
	assert_output(c, &want);
	assert_int_equal(nbdp_client_state(c), NBDP_C_NEGOTIATING);
	nbdp_client_free(c);
}

static void no_optgo_sends_export_name_directly(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "disk", true);

	greet(c, FIXED_NZ);
	tb_reset(&want);
	tb_be32(&want, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	tb_opt(&want, NBD_OPT_EXPORT_NAME, "disk", 4);
	assert_output(c, &want);
	nbdp_client_free(c);
}

static void client_flags_follow_server_handshake_flags(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "", false);

	greet(c, 0);                 /* plain newstyle: no fixed, no NO_ZEROES */
	tb_reset(&want);
	tb_be32(&want, 0);
	tb_opt(&want, NBD_OPT_EXPORT_NAME, NULL, 0);   /* only option a non-fixed server knows */
	assert_output(c, &want);
	nbdp_client_free(c);
}

static void list_sends_list_option(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_LIST, NULL, false);

	greet(c, NBD_FLAG_FIXED_NEWSTYLE);
	tb_reset(&want);
	tb_be32(&want, NBD_FLAG_C_FIXED_NEWSTYLE);
	tb_opt(&want, NBD_OPT_LIST, NULL, 0);
	assert_output(c, &want);
	nbdp_client_free(c);
}

/* ---- GO ---------------------------------------------------------------- */

static void go_success_reports_export_and_block_sizes(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "", false);
	const struct nbdp_export *e;

	greet(c, FIXED_NZ);
	drain(c, &got);
	tb_reset(&in);
	rep_info_export(NBD_OPT_GO, 65536, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH);
	rep_info_block(NBD_OPT_GO, 512, 4096, 1 << 20);
	rep_info_string(NBD_OPT_GO, NBD_INFO_NAME, "canonical");
	rep_info_string(NBD_OPT_GO, NBD_INFO_DESCRIPTION, "a disk");
	rep_info_string(NBD_OPT_GO, 99, "unknown info: ignored");
	tb_rep(&in, NBD_OPT_GO, NBD_REP_ACK, 0);
	feed_all(c, &in);
	assert_int_equal(nbdp_client_state(c), NBDP_C_TRANSMISSION);
	e = nbdp_client_export(c);
	assert_non_null(e);
	assert_int_equal(e->size, 65536);
	assert_int_equal(e->tflags, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH);
	assert_int_equal(e->min_block, 512);
	assert_int_equal(e->pref_block, 4096);
	assert_int_equal(e->max_block, 1 << 20);
	assert_string_equal(e->name, "canonical");
	assert_string_equal(e->description, "a disk");
	assert_false(nbdp_client_used_export_name(c));
	drain(c, &got);
	assert_int_equal(got.n, 0);
	nbdp_client_free(c);
}

static void go_without_block_size_info_reports_zero(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "disk", false);
	const struct nbdp_export *e;

	greet(c, FIXED_NZ);
	tb_reset(&in);
	rep_info_export(NBD_OPT_GO, 4096, NBD_FLAG_HAS_FLAGS);
	tb_rep(&in, NBD_OPT_GO, NBD_REP_ACK, 0);
	feed_all(c, &in);
	e = nbdp_client_export(c);
	assert_int_equal(e->min_block, 0);
	assert_int_equal(e->pref_block, 0);
	assert_int_equal(e->max_block, 0);
	assert_string_equal(e->name, "disk");
	assert_null(e->description);
	nbdp_client_free(c);
}

static void go_unsup_falls_back_to_export_name(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "disk", false);
	const struct nbdp_export *e;

	greet(c, NBD_FLAG_FIXED_NEWSTYLE);    /* no NO_ZEROES: 124 zeroes follow */
	drain(c, &got);
	tb_reset(&in);
	rep_err(NBD_OPT_GO, NBD_REP_ERR_UNSUP, "");
	feed_all(c, &in);
	tb_reset(&want);
	tb_opt(&want, NBD_OPT_EXPORT_NAME, "disk", 4);
	assert_output(c, &want);
	assert_int_equal(nbdp_client_state(c), NBDP_C_NEGOTIATING);

	tb_reset(&in);
	tb_be64(&in, 1 << 30);
	tb_be16(&in, NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY);
	tb_zero(&in, 124);
	feed_all(c, &in);
	assert_int_equal(nbdp_client_state(c), NBDP_C_TRANSMISSION);
	e = nbdp_client_export(c);
	assert_int_equal(e->size, 1 << 30);
	assert_int_equal(e->tflags, NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY);
	assert_true(nbdp_client_used_export_name(c));
	nbdp_client_free(c);
}

static void export_name_reply_without_zeroes_when_agreed(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "disk", true);
	size_t reply_len;

	greet(c, FIXED_NZ);
	tb_reset(&in);
	tb_be64(&in, 8192);
	tb_be16(&in, NBD_FLAG_HAS_FLAGS);
	reply_len = in.n;
	tb_be32(&in, NBD_SIMPLE_REPLY_MAGIC);      /* transmission data: not taken */
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), (ssize_t)reply_len);
	assert_int_equal(nbdp_client_state(c), NBDP_C_TRANSMISSION);
	assert_int_equal(nbdp_client_export(c)->size, 8192);
	nbdp_client_free(c);
}

static void go_unknown_export_fails_with_server_text_and_aborts(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	greet(c, FIXED_NZ);
	drain(c, &got);
	tb_reset(&in);
	rep_err(NBD_OPT_GO, NBD_REP_ERR_UNKNOWN, "no such export");
	feed_all(c, &in);
	assert_int_equal(nbdp_client_state(c), NBDP_C_FAILED);
	assert_string_equal(nbdp_client_error(c),
			    "server refused export 'foo': unknown export (NBD_REP_ERR_UNKNOWN): no such export");
	assert_int_equal(nbdp_client_error_code(c), -ENOENT);
	assert_null(nbdp_client_export(c));
	tb_reset(&want);
	expect_abort();
	assert_output(c, &want);
	nbdp_client_free(c);
}

static void go_error_without_text_has_no_trailing_colon(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	rep_err(NBD_OPT_GO, NBD_REP_ERR_POLICY, "");
	feed_all(c, &in);
	assert_string_equal(nbdp_client_error(c),
			    "server refused export 'foo': forbidden by server policy (NBD_REP_ERR_POLICY)");
	assert_int_equal(nbdp_client_error_code(c), -EACCES);
	nbdp_client_free(c);
}

static void go_error_text_control_characters_are_replaced(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	rep_err(NBD_OPT_GO, NBD_REP_ERR_SHUTDOWN, "bye\n\033[2J");
	feed_all(c, &in);
	assert_string_equal(nbdp_client_error(c),
			    "server refused export 'foo': server is shutting down (NBD_REP_ERR_SHUTDOWN): bye??[2J");
	assert_int_equal(nbdp_client_error_code(c), -ESHUTDOWN);
	nbdp_client_free(c);
}

static void go_block_size_reqd_fails_with_einval(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	rep_info_block(NBD_OPT_GO, 512, 4096, 65536);
	rep_err(NBD_OPT_GO, NBD_REP_ERR_BLOCK_SIZE_REQD, "");
	feed_all(c, &in);
	assert_int_equal(nbdp_client_state(c), NBDP_C_FAILED);
	assert_int_equal(nbdp_client_error_code(c), -EINVAL);
	assert_non_null(strstr(nbdp_client_error(c), "NBD_REP_ERR_BLOCK_SIZE_REQD"));
	nbdp_client_free(c);
}

static void go_ack_without_info_export_is_protocol_error(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	tb_rep(&in, NBD_OPT_GO, NBD_REP_ACK, 0);
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), -EPROTO);
	assert_int_equal(nbdp_client_state(c), NBDP_C_FAILED);
	assert_string_equal(nbdp_client_error(c), "NBD_OPT_GO: NBD_REP_ACK without NBD_INFO_EXPORT");
	nbdp_client_free(c);
}

static void info_export_with_wrong_length_is_protocol_error(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	tb_rep(&in, NBD_OPT_GO, NBD_REP_INFO, 10);
	tb_be16(&in, NBD_INFO_EXPORT);
	tb_be64(&in, 1);
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), -EPROTO);
	assert_string_equal(nbdp_client_error(c), "NBD_INFO_EXPORT: length 10, must be 12");
	nbdp_client_free(c);
}

static void block_size_minimum_not_power_of_two_is_protocol_error(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	rep_info_block(NBD_OPT_GO, 768, 4096, 65536);
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), -EPROTO);
	assert_string_equal(nbdp_client_error(c),
			    "NBD_INFO_BLOCK_SIZE: minimum block 768 is not a power of two <= 65536");
	nbdp_client_free(c);
}

static void reply_for_another_option_is_protocol_error(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	tb_rep(&in, NBD_OPT_LIST, NBD_REP_ACK, 0);
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), -EPROTO);
	assert_string_equal(nbdp_client_error(c),
			    "option reply: for option 3, expected NBD_OPT_GO (7)");
	nbdp_client_free(c);
}

static void reply_longer_than_limit_is_protocol_error(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);
	char msg[128];

	greet(c, FIXED_NZ);
	tb_reset(&in);
	tb_rep(&in, NBD_OPT_GO, NBD_REP_INFO, 0x7fffffff);
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), -EPROTO);
	snprintf(msg, sizeof(msg), "option reply to NBD_OPT_GO: length 2147483647 beyond limit %u",
		 NBDP_CLIENT_REPLY_MAX);
	assert_string_equal(nbdp_client_error(c), msg);
	nbdp_client_free(c);
}

static void bad_reply_magic_is_protocol_error(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	tb_be64(&in, 0xdeadbeefULL);
	tb_be32(&in, NBD_OPT_GO);
	tb_be32(&in, NBD_REP_ACK);
	tb_be32(&in, 0);
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), -EPROTO);
	assert_non_null(strstr(nbdp_client_error(c), "magic 0x00000000deadbeef"));
	nbdp_client_free(c);
}

/* ---- greeting ------------------------------------------------------------ */

static void oldstyle_server_is_not_supported(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	tb_reset(&in);
	tb_be64(&in, NBDMAGIC);
	tb_be64(&in, NBD_OLDSTYLE_MAGIC);
	tb_be16(&in, 0);
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), -EPROTONOSUPPORT);
	assert_int_equal(nbdp_client_state(c), NBDP_C_FAILED);
	assert_string_equal(nbdp_client_error(c),
			    "greeting: server uses the oldstyle handshake, which is not supported");
	nbdp_client_free(c);
}

static void not_an_nbd_server_is_protocol_error(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	tb_reset(&in);
	tb_str(&in, "HTTP/1.1 400 Bad");
	tb_be16(&in, 0);
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), -EPROTO);
	assert_non_null(strstr(nbdp_client_error(c), "expected NBDMAGIC"));
	nbdp_client_free(c);
}

static void info_on_non_fixed_server_fails(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_INFO, "foo", false);

	tb_reset(&in);
	tb_greeting(&in, 0);
	feed_all(c, &in);
	assert_int_equal(nbdp_client_state(c), NBDP_C_FAILED);
	assert_int_equal(nbdp_client_error_code(c), -ENOTSUP);
	assert_string_equal(nbdp_client_error(c),
			    "server does not speak fixed newstyle: cannot ask for export information");
	nbdp_client_free(c);
}

/* ---- INFO and LIST ------------------------------------------------------- */

static void info_success_is_done_with_abort_queued(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_INFO, "disk", false);

	greet(c, FIXED_NZ);
	tb_reset(&want);
	tb_be32(&want, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	expect_info_go(NBD_OPT_INFO, "disk");
	assert_output(c, &want);
	tb_reset(&in);
	rep_info_export(NBD_OPT_INFO, 123456, NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY);
	tb_rep(&in, NBD_OPT_INFO, NBD_REP_ACK, 0);
	feed_all(c, &in);
	assert_int_equal(nbdp_client_state(c), NBDP_C_DONE);
	assert_int_equal(nbdp_client_export(c)->size, 123456);
	tb_reset(&want);
	expect_abort();
	assert_output(c, &want);
	/* The server's ACK to our ABORT is not taken: the handshake is over. */
	tb_reset(&in);
	tb_rep(&in, NBD_OPT_ABORT, NBD_REP_ACK, 0);
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), 0);
	nbdp_client_free(c);
}

static void info_unsup_fails_without_fallback(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_INFO, "disk", false);

	greet(c, FIXED_NZ);
	drain(c, &got);
	tb_reset(&in);
	rep_err(NBD_OPT_INFO, NBD_REP_ERR_UNSUP, "");
	feed_all(c, &in);
	assert_int_equal(nbdp_client_state(c), NBDP_C_FAILED);
	assert_int_equal(nbdp_client_error_code(c), -ENOTSUP);
	nbdp_client_free(c);
}

struct listing {
	char names[8][64];
	char descs[8][64];
	int n;
};

static void on_list(void *ctx, const char *name, const char *desc)
{
	struct listing *l = ctx;

	assert_true(l->n < 8);
	snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
	snprintf(l->descs[l->n], sizeof(l->descs[0]), "%s", desc);
	l->n++;
}

static void list_reports_names_and_descriptions_then_aborts(void **state)
{
	struct listing l = { .n = 0 };
	struct nbdp_client_opts o = { .goal = NBDP_GOAL_LIST, .on_list = on_list, .list_ctx = &l };
	struct nbdp_client *c = nbdp_client_new(&o);

	greet(c, FIXED_NZ);
	drain(c, &got);
	tb_reset(&in);
	tb_rep(&in, NBD_OPT_LIST, NBD_REP_SERVER, 4 + 4 + 6);
	tb_be32(&in, 4);
	tb_str(&in, "disk");
	tb_str(&in, "a disk");
	tb_rep(&in, NBD_OPT_LIST, NBD_REP_SERVER, 4 + 2);
	tb_be32(&in, 2);
	tb_str(&in, "ro");
	tb_rep(&in, NBD_OPT_LIST, NBD_REP_ACK, 0);
	feed_all(c, &in);
	assert_int_equal(nbdp_client_state(c), NBDP_C_DONE);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.names[0], "disk");
	assert_string_equal(l.descs[0], "a disk");
	assert_string_equal(l.names[1], "ro");
	assert_string_equal(l.descs[1], "");
	tb_reset(&want);
	expect_abort();
	assert_output(c, &want);
	nbdp_client_free(c);
}

static void list_refused_by_policy_fails_with_message(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_LIST, NULL, false);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	rep_err(NBD_OPT_LIST, NBD_REP_ERR_POLICY, "listing disabled");
	feed_all(c, &in);
	assert_string_equal(nbdp_client_error(c),
			    "server refused to list exports: forbidden by server policy (NBD_REP_ERR_POLICY): listing disabled");
	assert_int_equal(nbdp_client_error_code(c), -EACCES);
	nbdp_client_free(c);
}

static void list_name_length_beyond_reply_is_protocol_error(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_LIST, NULL, false);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	tb_rep(&in, NBD_OPT_LIST, NBD_REP_SERVER, 4 + 2);
	tb_be32(&in, 3);
	tb_str(&in, "ro");
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), -EPROTO);
	assert_string_equal(nbdp_client_error(c),
			    "NBD_REP_SERVER: name length 3 beyond reply length 6 - 4");
	nbdp_client_free(c);
}

/* ---- stream behaviour and EOF ---------------------------------------------- */

static void byte_at_a_time_reaches_transmission(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "disk", false);
	size_t i;

	tb_reset(&in);
	tb_greeting(&in, FIXED_NZ);
	rep_info_export(NBD_OPT_GO, 777, NBD_FLAG_HAS_FLAGS);
	rep_info_string(NBD_OPT_GO, NBD_INFO_DESCRIPTION, "slow");
	tb_rep(&in, NBD_OPT_GO, NBD_REP_ACK, 0);
	for (i = 0; i < in.n; i++)
		assert_int_equal(nbdp_client_feed(c, in.d + i, 1), 1);
	assert_int_equal(nbdp_client_state(c), NBDP_C_TRANSMISSION);
	assert_int_equal(nbdp_client_export(c)->size, 777);
	assert_string_equal(nbdp_client_export(c)->description, "slow");
	nbdp_client_free(c);
}

static void eof_after_export_name_names_the_export(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "nope", true);

	greet(c, FIXED_NZ);
	assert_int_equal(nbdp_client_eof(c), -ECONNRESET);
	assert_int_equal(nbdp_client_state(c), NBDP_C_FAILED);
	assert_string_equal(nbdp_client_error(c),
			    "server closed the connection after NBD_OPT_EXPORT_NAME: export 'nope' unknown or refused");
	nbdp_client_free(c);
}

static void eof_after_transmission_is_not_an_error(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "disk", true);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	tb_be64(&in, 1);
	tb_be16(&in, 1);
	feed_all(c, &in);
	assert_int_equal(nbdp_client_eof(c), 0);
	assert_int_equal(nbdp_client_state(c), NBDP_C_TRANSMISSION);
	nbdp_client_free(c);
}

static void info_name_with_nul_is_protocol_error(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	tb_rep(&in, NBD_OPT_GO, NBD_REP_INFO, 5);
	tb_be16(&in, NBD_INFO_NAME);
	tb_mem(&in, "a\0b", 3);
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), -EPROTO);
	assert_string_equal(nbdp_client_error(c), "NBD_INFO_NAME: name contains a NUL byte");
	nbdp_client_free(c);
}

static void info_name_longer_than_4096_is_protocol_error(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	tb_rep(&in, NBD_OPT_GO, NBD_REP_INFO, 2 + 4097);
	tb_be16(&in, NBD_INFO_NAME);
	memset(in.d + in.n, 'n', 4097);
	in.n += 4097;
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), -EPROTO);
	assert_string_equal(nbdp_client_error(c), "NBD_INFO_NAME: name length 4097 beyond limit 4096");
	nbdp_client_free(c);
}

static void server_reply_to_go_is_protocol_error(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	greet(c, FIXED_NZ);
	tb_reset(&in);
	tb_rep(&in, NBD_OPT_GO, NBD_REP_SERVER, 4);
	tb_be32(&in, 0);
	assert_int_equal(nbdp_client_feed(c, in.d, in.n), -EPROTO);
	assert_string_equal(nbdp_client_error(c), "NBD_OPT_GO: unexpected reply type NBD_REP_SERVER (2)");
	nbdp_client_free(c);
}

static void eof_during_greeting_says_how_much_arrived(void **state)
{
	struct nbdp_client *c = client(NBDP_GOAL_GO, "foo", false);

	tb_reset(&in);
	tb_be64(&in, NBDMAGIC);
	feed_all(c, &in);
	assert_int_equal(nbdp_client_eof(c), -ECONNRESET);
	assert_string_equal(nbdp_client_error(c),
			    "server closed the connection before its greeting (8 of 18 bytes)");
	nbdp_client_free(c);
}

static void name_longer_than_4096_is_rejected_at_creation(void **state)
{
	static char name[4098];
	struct nbdp_client_opts o = { .goal = NBDP_GOAL_GO, .export_name = name };

	memset(name, 'x', 4097);
	errno = 0;
	assert_null(nbdp_client_new(&o));
	assert_int_equal(errno, ENAMETOOLONG);
}

static void unknown_goal_is_rejected_at_creation(void **state)
{
	struct nbdp_client_opts o = { .goal = (enum nbdp_client_goal)42 };

	errno = 0;
	assert_null(nbdp_client_new(&o));
	assert_int_equal(errno, EINVAL);
	nbdp_client_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(go_sends_flags_then_go_with_info_requests),
		cmocka_unit_test(no_optgo_sends_export_name_directly),
		cmocka_unit_test(client_flags_follow_server_handshake_flags),
		cmocka_unit_test(list_sends_list_option),
		cmocka_unit_test(go_success_reports_export_and_block_sizes),
		cmocka_unit_test(go_without_block_size_info_reports_zero),
		cmocka_unit_test(go_unsup_falls_back_to_export_name),
		cmocka_unit_test(export_name_reply_without_zeroes_when_agreed),
		cmocka_unit_test(go_unknown_export_fails_with_server_text_and_aborts),
		cmocka_unit_test(go_error_without_text_has_no_trailing_colon),
		cmocka_unit_test(go_error_text_control_characters_are_replaced),
		cmocka_unit_test(go_block_size_reqd_fails_with_einval),
		cmocka_unit_test(go_ack_without_info_export_is_protocol_error),
		cmocka_unit_test(info_export_with_wrong_length_is_protocol_error),
		cmocka_unit_test(block_size_minimum_not_power_of_two_is_protocol_error),
		cmocka_unit_test(reply_for_another_option_is_protocol_error),
		cmocka_unit_test(reply_longer_than_limit_is_protocol_error),
		cmocka_unit_test(bad_reply_magic_is_protocol_error),
		cmocka_unit_test(oldstyle_server_is_not_supported),
		cmocka_unit_test(not_an_nbd_server_is_protocol_error),
		cmocka_unit_test(info_on_non_fixed_server_fails),
		cmocka_unit_test(info_success_is_done_with_abort_queued),
		cmocka_unit_test(info_unsup_fails_without_fallback),
		cmocka_unit_test(list_reports_names_and_descriptions_then_aborts),
		cmocka_unit_test(list_refused_by_policy_fails_with_message),
		cmocka_unit_test(list_name_length_beyond_reply_is_protocol_error),
		cmocka_unit_test(byte_at_a_time_reaches_transmission),
		cmocka_unit_test(eof_after_export_name_names_the_export),
		cmocka_unit_test(eof_after_transmission_is_not_an_error),
		cmocka_unit_test(info_name_with_nul_is_protocol_error),
		cmocka_unit_test(info_name_longer_than_4096_is_protocol_error),
		cmocka_unit_test(server_reply_to_go_is_protocol_error),
		cmocka_unit_test(eof_during_greeting_says_how_much_arrived),
		cmocka_unit_test(name_longer_than_4096_is_rejected_at_creation),
		cmocka_unit_test(unknown_goal_is_rejected_at_creation),
	};

	return cmocka_run_group_tests_name("proto-client", tests, NULL, NULL);
}

/* The client machine talking to the server machine through memory, with
 * the bytes moved in pieces of various sizes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <nbdproto/client.h>
#include <nbdproto/server.h>

static int lookup(void *opaque, const char *name, struct nbdp_export *out)
{
	if (!strcmp(name, "disk")) {
		out->size = 10 << 20;
		out->tflags = NBD_FLAG_SEND_FLUSH;
		out->description = "ten megs";
		return 0;
	}
	if (!strcmp(name, "aligned")) {
		out->size = 1 << 20;
		out->min_block = 4096;
		out->max_block = 1 << 20;
		return 0;
	}
	return -ENOENT;
}

static int list(void *opaque, void (*emit)(void *ctx, const char *name, const char *desc), void *ctx)
{
	emit(ctx, "disk", "ten megs");
	emit(ctx, "aligned", "");
	return 0;
}

static const struct nbdp_server_ops ops = { .lookup = lookup, .list = list };

/* Moves bytes both ways, at most `chunk` per call, until neither side has
 * anything to say or takes anything. */
static void pump(struct nbdp_server *s, struct nbdp_client *c, size_t chunk)
{
	bool moved = true;

	while (moved) {
		const void *p;
		size_t n;
		ssize_t r;

		moved = false;
		n = nbdp_server_pending(s, &p);
		if (n && nbdp_client_state(c) == NBDP_C_NEGOTIATING) {
			r = nbdp_client_feed(c, p, n < chunk ? n : chunk);
			assert_true(r >= 0);
			nbdp_server_consumed(s, (size_t)r);
			moved |= r > 0;
		}
		n = nbdp_client_pending(c, &p);
		if (n && nbdp_server_state(s) == NBDP_NEGOTIATING) {
			r = nbdp_server_feed(s, p, n < chunk ? n : chunk);
			assert_true(r >= 0);
			nbdp_client_consumed(c, (size_t)r);
			moved |= r > 0;
		}
	}
}

static struct nbdp_client *client(enum nbdp_client_goal goal, const char *name, bool no_optgo,
				  void (*on_list)(void *, const char *, const char *), void *ctx)
{
	struct nbdp_client_opts o = { .goal = goal, .export_name = name, .no_optgo = no_optgo,
				      .on_list = on_list, .list_ctx = ctx };
	struct nbdp_client *c = nbdp_client_new(&o);

	assert_non_null(c);
	return c;
}

static void go_reaches_transmission_on_both_sides_in_any_split(void **state)
{
	static const size_t chunks[] = { 1, 3, 7, 64, 1 << 20 };
	size_t i;

	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct nbdp_server *s = nbdp_server_new(&ops, NULL);
		struct nbdp_client *c = client(NBDP_GOAL_GO, "disk", false, NULL, NULL);
		const struct nbdp_export *e;

		pump(s, c, chunks[i]);
		assert_int_equal(nbdp_server_state(s), NBDP_TRANSMISSION);
		assert_int_equal(nbdp_client_state(c), NBDP_C_TRANSMISSION);
		e = nbdp_client_export(c);
		assert_int_equal(e->size, 10 << 20);
		assert_int_equal(e->tflags, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH);
		assert_int_equal(e->min_block, 1);
		assert_int_equal(e->pref_block, 4096);
		assert_int_equal(e->max_block, NBDP_DEFAULT_MAX_PAYLOAD);
		assert_string_equal(e->name, "disk");
		assert_string_equal(e->description, "ten megs");
		assert_false(nbdp_client_used_export_name(c));
		assert_true(nbdp_server_block_size_agreed(s));
		nbdp_client_free(c);
		nbdp_server_free(s);
	}
}

static void export_name_mode_reaches_transmission(void **state)
{
	struct nbdp_server *s = nbdp_server_new(&ops, NULL);
	struct nbdp_client *c = client(NBDP_GOAL_GO, "disk", true, NULL, NULL);

	pump(s, c, 5);
	assert_int_equal(nbdp_server_state(s), NBDP_TRANSMISSION);
	assert_int_equal(nbdp_client_state(c), NBDP_C_TRANSMISSION);
	assert_true(nbdp_client_used_export_name(c));
	assert_int_equal(nbdp_client_export(c)->size, 10 << 20);
	assert_false(nbdp_server_block_size_agreed(s));
	nbdp_client_free(c);
	nbdp_server_free(s);
}

static void aligned_export_is_agreed_by_our_client(void **state)
{
	struct nbdp_server *s = nbdp_server_new(&ops, NULL);
	struct nbdp_client *c = client(NBDP_GOAL_GO, "aligned", false, NULL, NULL);

	pump(s, c, 1 << 20);
	assert_int_equal(nbdp_client_state(c), NBDP_C_TRANSMISSION);
	assert_int_equal(nbdp_client_export(c)->min_block, 4096);
	assert_int_equal(nbdp_client_export(c)->max_block, 1 << 20);
	assert_int_equal(nbdp_server_min_block(s), 4096);
	nbdp_client_free(c);
	nbdp_server_free(s);
}

static void unknown_export_message_reaches_client_and_server_sees_abort(void **state)
{
	struct nbdp_server *s = nbdp_server_new(&ops, NULL);
	struct nbdp_client *c = client(NBDP_GOAL_GO, "nope", false, NULL, NULL);
	const void *p;
	size_t n;

	pump(s, c, 2);
	assert_int_equal(nbdp_client_state(c), NBDP_C_FAILED);
	assert_string_equal(nbdp_client_error(c),
			    "server refused export 'nope': unknown export (NBD_REP_ERR_UNKNOWN): "
			    "NBD_OPT_GO: export 'nope': unknown export");
	assert_int_equal(nbdp_client_error_code(c), -ENOENT);
	/* The client's soft disconnect: the server acks and closes. */
	assert_int_equal(nbdp_server_state(s), NBDP_CLOSED);
	assert_string_equal(nbdp_server_reason(s), "client sent NBD_OPT_ABORT");
	n = nbdp_server_pending(s, &p);
	assert_int_equal(n, 20);      /* the ACK to ABORT, which the client no longer reads */
	nbdp_client_free(c);
	nbdp_server_free(s);
}

struct names {
	char buf[256];
};

static void collect(void *ctx, const char *name, const char *desc)
{
	struct names *n = ctx;
	size_t l = strlen(n->buf);

	snprintf(n->buf + l, sizeof(n->buf) - l, "%s=%s;", name, desc);
}

static void list_reports_every_export(void **state)
{
	struct names names = { .buf = "" };
	struct nbdp_server *s = nbdp_server_new(&ops, NULL);
	struct nbdp_client *c = client(NBDP_GOAL_LIST, NULL, false, collect, &names);

	pump(s, c, 3);
	assert_int_equal(nbdp_client_state(c), NBDP_C_DONE);
	assert_string_equal(names.buf, "disk=ten megs;aligned=;");
	assert_int_equal(nbdp_server_state(s), NBDP_CLOSED);
	nbdp_client_free(c);
	nbdp_server_free(s);
}

static void info_reports_export_without_entering_transmission(void **state)
{
	struct nbdp_server *s = nbdp_server_new(&ops, NULL);
	struct nbdp_client *c = client(NBDP_GOAL_INFO, "aligned", false, NULL, NULL);

	pump(s, c, 11);
	assert_int_equal(nbdp_client_state(c), NBDP_C_DONE);
	assert_int_equal(nbdp_client_export(c)->size, 1 << 20);
	assert_int_equal(nbdp_client_export(c)->min_block, 4096);
	assert_int_equal(nbdp_server_state(s), NBDP_CLOSED);
	nbdp_client_free(c);
	nbdp_server_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(go_reaches_transmission_on_both_sides_in_any_split),
		cmocka_unit_test(export_name_mode_reaches_transmission),
		cmocka_unit_test(aligned_export_is_agreed_by_our_client),
		cmocka_unit_test(unknown_export_message_reaches_client_and_server_sees_abort),
		cmocka_unit_test(list_reports_every_export),
		cmocka_unit_test(info_reports_export_without_entering_transmission),
	};

	return cmocka_run_group_tests_name("proto-loopback", tests, NULL, NULL);
}

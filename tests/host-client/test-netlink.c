/* Netlink messages built by nbd-pcie-client, parsed back with libnl's own
 * parser (genlmsg_parse / nla_parse_nested with type policies); replies the
 * kernel would send, built with libnl and parsed by the client's parsers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <linux/nbd-netlink.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

#include "internal.h"

/* Any id: the builders do not resolve the family. */
#define FAMILY 0x1d

static struct nla_policy pol[NBD_ATTR_MAX + 1] = {
	[NBD_ATTR_INDEX] = { .type = NLA_U32 },
	[NBD_ATTR_SIZE_BYTES] = { .type = NLA_U64 },
	[NBD_ATTR_BLOCK_SIZE_BYTES] = { .type = NLA_U64 },
	[NBD_ATTR_TIMEOUT] = { .type = NLA_U64 },
	[NBD_ATTR_SERVER_FLAGS] = { .type = NLA_U64 },
	[NBD_ATTR_CLIENT_FLAGS] = { .type = NLA_U64 },
	[NBD_ATTR_SOCKETS] = { .type = NLA_NESTED },
	[NBD_ATTR_DEAD_CONN_TIMEOUT] = { .type = NLA_U64 },
	[NBD_ATTR_DEVICE_LIST] = { .type = NLA_NESTED },
	[NBD_ATTR_BACKEND_IDENTIFIER] = { .type = NLA_NUL_STRING },
};
static struct nla_policy sock_pol[NBD_SOCK_MAX + 1] = {
	[NBD_SOCK_FD] = { .type = NLA_U32 },
};

static struct genlmsghdr *header(struct nl_msg *m)
{
	return nlmsg_data(nlmsg_hdr(m));
}

static void parse(struct nl_msg *m, struct nlattr **tb)
{
	assert_int_equal(nlmsg_hdr(m)->nlmsg_type, FAMILY);
	assert_int_equal(genlmsg_parse(nlmsg_hdr(m), 0, tb, NBD_ATTR_MAX, pol), 0);
	assert_int_equal(header(m)->version, NBD_GENL_VERSION);
}

/* Collects the fds of NBD_ATTR_SOCKETS, checking every item's nesting. */
static unsigned socket_fds(struct nlattr *socks, uint32_t *fds, unsigned max)
{
	struct nlattr *item, *stb[NBD_SOCK_MAX + 1];
	unsigned n = 0;
	int rem;

	nla_for_each_nested(item, socks, rem) {
		assert_int_equal(nla_type(item), NBD_SOCK_ITEM);
		assert_int_equal(nla_parse_nested(stb, NBD_SOCK_MAX, item, sock_pol), 0);
		assert_non_null(stb[NBD_SOCK_FD]);
		assert_true(n < max);
		fds[n++] = nla_get_u32(stb[NBD_SOCK_FD]);
	}
	return n;
}

static void connect_carries_every_attribute(void **s)
{
	int fds[3] = { 7, 9, 11 };
	struct npc_nl_config c = {
		.index = 4, .size = 256u << 20, .block_size = 4096, .server_flags = 0x10b,
		.client_flags = NPC_NBD_CFLAG_DESTROY_ON_DISCONNECT, .timeout = 30,
		.dead_timeout = 120, .identifier = "pcie-0000:01:00.0-disk", .fds = fds, .nfds = 3,
	};
	struct nlattr *tb[NBD_ATTR_MAX + 1];
	struct nl_msg *m;
	uint32_t got[8];

	assert_int_equal(npc_nl_build_connect(FAMILY, &c, &m), 0);
	assert_int_equal(header(m)->cmd, NBD_CMD_CONNECT);
	parse(m, tb);
	assert_int_equal(nla_get_u32(tb[NBD_ATTR_INDEX]), 4);
	assert_int_equal(nla_get_u64(tb[NBD_ATTR_SIZE_BYTES]), 256u << 20);
	assert_int_equal(nla_get_u64(tb[NBD_ATTR_BLOCK_SIZE_BYTES]), 4096);
	assert_int_equal(nla_get_u64(tb[NBD_ATTR_SERVER_FLAGS]), 0x10b);
	assert_int_equal(nla_get_u64(tb[NBD_ATTR_CLIENT_FLAGS]), 1);
	assert_int_equal(nla_get_u64(tb[NBD_ATTR_TIMEOUT]), 30);
	assert_int_equal(nla_get_u64(tb[NBD_ATTR_DEAD_CONN_TIMEOUT]), 120);
	assert_string_equal(nla_get_string(tb[NBD_ATTR_BACKEND_IDENTIFIER]),
			    "pcie-0000:01:00.0-disk");
	assert_int_equal(socket_fds(tb[NBD_ATTR_SOCKETS], got, 8), 3);
	assert_int_equal(got[0], 7);
	assert_int_equal(got[1], 9);
	assert_int_equal(got[2], 11);
	nlmsg_free(m);
}

static void connect_without_index_lets_kernel_pick(void **s)
{
	int fd = 5;
	struct npc_nl_config c = { .index = -1, .size = 1 << 20, .block_size = 512, .fds = &fd,
				   .nfds = 1 };
	struct nlattr *tb[NBD_ATTR_MAX + 1];
	struct nl_msg *m;

	assert_int_equal(npc_nl_build_connect(FAMILY, &c, &m), 0);
	parse(m, tb);
	assert_null(tb[NBD_ATTR_INDEX]);
	assert_null(tb[NBD_ATTR_TIMEOUT]);
	assert_null(tb[NBD_ATTR_DEAD_CONN_TIMEOUT]);
	assert_null(tb[NBD_ATTR_BACKEND_IDENTIFIER]);
	assert_non_null(tb[NBD_ATTR_SOCKETS]);
	nlmsg_free(m);
}

static void connect_without_sockets_refused(void **s)
{
	struct npc_nl_config c = { .index = 0, .size = 1 << 20, .block_size = 512 };
	struct nl_msg *m = NULL;

	assert_int_equal(npc_nl_build_connect(FAMILY, &c, &m), -EINVAL);
	assert_null(m);
}

static void readonly_flag_reaches_server_flags(void **s)
{
	int fd = 3;
	/* NBD_FLAG_HAS_FLAGS (bit 0) | NBD_FLAG_READ_ONLY (bit 1): protocol values. */
	struct npc_nl_config c = { .index = 0, .size = 4096, .block_size = 512,
				   .server_flags = 0x3, .fds = &fd, .nfds = 1 };
	struct nlattr *tb[NBD_ATTR_MAX + 1];
	struct nl_msg *m;

	assert_int_equal(npc_nl_build_connect(FAMILY, &c, &m), 0);
	parse(m, tb);
	assert_true(nla_get_u64(tb[NBD_ATTR_SERVER_FLAGS]) & 0x2);
	nlmsg_free(m);
}

static void reconfigure_carries_index_and_new_sockets_only(void **s)
{
	int fds[2] = { 20, 21 };
	struct npc_nl_config c = { .index = 2, .size = 999, .block_size = 512, .dead_timeout = 60,
				   .identifier = "id", .fds = fds, .nfds = 2 };
	struct nlattr *tb[NBD_ATTR_MAX + 1];
	struct nl_msg *m;
	uint32_t got[4];

	assert_int_equal(npc_nl_build_reconfigure(FAMILY, &c, &m), 0);
	assert_int_equal(header(m)->cmd, NBD_CMD_RECONFIGURE);
	parse(m, tb);
	assert_int_equal(nla_get_u32(tb[NBD_ATTR_INDEX]), 2);
	assert_null(tb[NBD_ATTR_SIZE_BYTES]);       /* size cannot change on reconfigure */
	assert_null(tb[NBD_ATTR_BLOCK_SIZE_BYTES]);
	assert_int_equal(nla_get_u64(tb[NBD_ATTR_DEAD_CONN_TIMEOUT]), 60);
	assert_string_equal(nla_get_string(tb[NBD_ATTR_BACKEND_IDENTIFIER]), "id");
	assert_int_equal(socket_fds(tb[NBD_ATTR_SOCKETS], got, 4), 2);
	assert_int_equal(got[1], 21);
	nlmsg_free(m);
}

static void reconfigure_needs_index(void **s)
{
	int fd = 1;
	struct npc_nl_config c = { .index = -1, .fds = &fd, .nfds = 1 };
	struct nl_msg *m;

	assert_int_equal(npc_nl_build_reconfigure(FAMILY, &c, &m), -EINVAL);
}

static void disconnect_names_index(void **s)
{
	struct nlattr *tb[NBD_ATTR_MAX + 1];
	struct nl_msg *m;

	assert_int_equal(npc_nl_build_disconnect(FAMILY, 9, &m), 0);
	assert_int_equal(header(m)->cmd, NBD_CMD_DISCONNECT);
	parse(m, tb);
	assert_int_equal(nla_get_u32(tb[NBD_ATTR_INDEX]), 9);
	assert_null(tb[NBD_ATTR_SOCKETS]);
	nlmsg_free(m);
}

static void status_names_index_or_all(void **s)
{
	struct nlattr *tb[NBD_ATTR_MAX + 1];
	struct nl_msg *m;

	assert_int_equal(npc_nl_build_status(FAMILY, 1, &m), 0);
	assert_int_equal(header(m)->cmd, NBD_CMD_STATUS);
	parse(m, tb);
	assert_int_equal(nla_get_u32(tb[NBD_ATTR_INDEX]), 1);
	nlmsg_free(m);
	assert_int_equal(npc_nl_build_status(FAMILY, -1, &m), 0);
	parse(m, tb);
	assert_null(tb[NBD_ATTR_INDEX]);
	nlmsg_free(m);
}

/* A STATUS reply as the kernel lays it out (nbd_genl_status). */
static struct nl_msg *status_reply(const int *idx, const int *conn, unsigned n)
{
	struct nl_msg *m = nlmsg_alloc();
	struct nlattr *list, *item;

	genlmsg_put(m, 0, 0, FAMILY, 0, 0, NBD_CMD_STATUS, NBD_GENL_VERSION);
	list = nla_nest_start(m, NBD_ATTR_DEVICE_LIST);
	for (unsigned i = 0; i < n; i++) {
		item = nla_nest_start(m, NBD_DEVICE_ITEM);
		nla_put_u32(m, NBD_DEVICE_INDEX, (uint32_t)idx[i]);
		nla_put_u8(m, NBD_DEVICE_CONNECTED, (uint8_t)conn[i]);
		nla_nest_end(m, item);
	}
	nla_nest_end(m, list);
	return m;
}

static void status_reply_finds_device(void **s)
{
	int idx[3] = { 0, 1, 2 }, conn[3] = { 0, 1, 0 };
	struct nl_msg *m = status_reply(idx, conn, 3);
	bool c = false;

	assert_int_equal(npc_nl_parse_status(nlmsg_hdr(m), 1, &c), 0);
	assert_true(c);
	assert_int_equal(npc_nl_parse_status(nlmsg_hdr(m), 2, &c), 0);
	assert_false(c);
	assert_int_equal(npc_nl_parse_status(nlmsg_hdr(m), 7, &c), -ENOENT);
	nlmsg_free(m);
}

static void status_reply_item_without_fields_is_protocol_error(void **s)
{
	struct nl_msg *m = nlmsg_alloc();
	struct nlattr *list, *item;
	bool c;

	genlmsg_put(m, 0, 0, FAMILY, 0, 0, NBD_CMD_STATUS, NBD_GENL_VERSION);
	list = nla_nest_start(m, NBD_ATTR_DEVICE_LIST);
	item = nla_nest_start(m, NBD_DEVICE_ITEM);
	nla_put_u32(m, NBD_DEVICE_INDEX, 0);
	nla_nest_end(m, item);
	nla_nest_end(m, list);
	assert_int_equal(npc_nl_parse_status(nlmsg_hdr(m), 0, &c), -EPROTO);
	nlmsg_free(m);
}

static void connect_reply_gives_index(void **s)
{
	struct nl_msg *m = nlmsg_alloc();
	uint32_t idx = 0;

	genlmsg_put(m, 0, 0, FAMILY, 0, 0, NBD_CMD_CONNECT, NBD_GENL_VERSION);
	nla_put_u32(m, NBD_ATTR_INDEX, 6);
	assert_int_equal(npc_nl_parse_index(nlmsg_hdr(m), &idx), 0);
	assert_int_equal(idx, 6);
	nlmsg_free(m);
}

static void reply_with_wrong_attribute_type_is_protocol_error(void **s)
{
	struct nl_msg *m = nlmsg_alloc();
	uint32_t idx;

	genlmsg_put(m, 0, 0, FAMILY, 0, 0, NBD_CMD_LINK_DEAD, NBD_GENL_VERSION);
	nla_put_u8(m, NBD_ATTR_INDEX, 6); /* a u8 where the policy wants a u32 */
	assert_int_equal(npc_nl_parse_index(nlmsg_hdr(m), &idx), -EPROTO);
	nlmsg_free(m);
}

static void kernel_errors_have_meanings(void **s)
{
	assert_non_null(strstr(npc_nl_strerror(NBD_CMD_CONNECT, -EBUSY), "already connected"));
	assert_non_null(strstr(npc_nl_strerror(NBD_CMD_CONNECT, -EPERM), "CAP_SYS_ADMIN"));
	assert_non_null(strstr(npc_nl_strerror(NBD_CMD_DISCONNECT, -EINVAL), "no such nbd device"));
	assert_non_null(strstr(npc_nl_strerror(NBD_CMD_CONNECT, -EOPNOTSUPP), "5.14"));
}

static void open_without_nbd_module_says_modprobe(void **s)
{
	struct npc_nl *n = NULL;
	char err[256] = "";
	int r = npc_nl_open(&n, err, sizeof(err));

	/* This machine's kernel has no nbd driver; where one is loaded the
	 * session opens and the family id is positive. */
	if (r == 0) {
		assert_true(npc_nl_family(n) > 0);
		npc_nl_close(n);
		return;
	}
	if (r == -EIO)
		skip(); /* no generic netlink at all (sandbox): nothing to check */
	assert_int_equal(r, -ENOENT);
	assert_string_equal(err, "kernel nbd module not loaded: genl family 'nbd' not found; run modprobe nbd");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(connect_carries_every_attribute),
		cmocka_unit_test(connect_without_index_lets_kernel_pick),
		cmocka_unit_test(connect_without_sockets_refused),
		cmocka_unit_test(readonly_flag_reaches_server_flags),
		cmocka_unit_test(reconfigure_carries_index_and_new_sockets_only),
		cmocka_unit_test(reconfigure_needs_index),
		cmocka_unit_test(disconnect_names_index),
		cmocka_unit_test(status_names_index_or_all),
		cmocka_unit_test(status_reply_finds_device),
		cmocka_unit_test(status_reply_item_without_fields_is_protocol_error),
		cmocka_unit_test(connect_reply_gives_index),
		cmocka_unit_test(reply_with_wrong_attribute_type_is_protocol_error),
		cmocka_unit_test(kernel_errors_have_meanings),
		cmocka_unit_test(open_without_nbd_module_says_modprobe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Request and simple-reply codecs, errno mapping and value names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <nbdproto/nbd.h>

static void request_encodes_big_endian_fields(void **state)
{
	struct nbd_request r = { .flags = NBD_CMD_FLAG_FUA, .type = NBD_CMD_WRITE,
				 .cookie = 0x0102030405060708ULL, .offset = 0x1122334455667788ULL,
				 .length = 0xaabbccdd };
	static const uint8_t expect[NBD_REQUEST_SIZE] = {
		0x25, 0x60, 0x95, 0x13, 0x00, 0x01, 0x00, 0x01,
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
		0xaa, 0xbb, 0xcc, 0xdd,
	};
	uint8_t out[NBD_REQUEST_SIZE];

	nbd_request_encode(out, &r);
	assert_memory_equal(out, expect, sizeof(expect));
}

static void request_round_trips(void **state)
{
	struct nbd_request r = { .flags = 0x1f, .type = NBD_CMD_WRITE_ZEROES, .cookie = ~0ULL,
				 .offset = 1ULL << 62, .length = 4096 }, back;
	uint8_t buf[NBD_REQUEST_SIZE];

	nbd_request_encode(buf, &r);
	assert_int_equal(nbd_request_decode(buf, &back), 0);
	assert_int_equal(back.flags, r.flags);
	assert_int_equal(back.type, r.type);
	assert_int_equal(back.cookie, r.cookie);
	assert_int_equal(back.offset, r.offset);
	assert_int_equal(back.length, r.length);
}

static void request_with_bad_magic_is_eproto_and_untouched(void **state)
{
	struct nbd_request r = { .type = NBD_CMD_READ, .length = 512 }, back = { .cookie = 99 };
	uint8_t buf[NBD_REQUEST_SIZE];

	nbd_request_encode(buf, &r);
	buf[3] ^= 1;
	assert_int_equal(nbd_request_decode(buf, &back), -EPROTO);
	assert_int_equal(back.cookie, 99);
}

static void reply_encodes_big_endian_fields(void **state)
{
	struct nbd_simple_reply r = { .error = NBD_ENOSPC, .cookie = 0x0102030405060708ULL };
	static const uint8_t expect[NBD_SIMPLE_REPLY_SIZE] = {
		0x67, 0x44, 0x66, 0x98, 0x00, 0x00, 0x00, 0x1c,
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	};
	uint8_t out[NBD_SIMPLE_REPLY_SIZE];

	nbd_reply_encode(out, &r);
	assert_memory_equal(out, expect, sizeof(expect));
}

static void reply_round_trips(void **state)
{
	struct nbd_simple_reply r = { .error = NBD_EIO, .cookie = 42 }, back;
	uint8_t buf[NBD_SIMPLE_REPLY_SIZE];

	nbd_reply_encode(buf, &r);
	assert_int_equal(nbd_reply_decode(buf, &back), 0);
	assert_int_equal(back.error, NBD_EIO);
	assert_int_equal(back.cookie, 42);
}

static void reply_with_bad_magic_is_eproto(void **state)
{
	uint8_t buf[NBD_SIMPLE_REPLY_SIZE] = { 0x67, 0x44, 0x66, 0x99 };
	struct nbd_simple_reply back;

	assert_int_equal(nbd_reply_decode(buf, &back), -EPROTO);
}

static void payload_follows_write_only(void **state)
{
	struct nbd_request r = { .length = 4096 };
	uint16_t t;

	for (t = 0; t <= NBD_CMD_BLOCK_STATUS; t++) {
		r.type = t;
		assert_int_equal(nbd_request_payload_len(&r), t == NBD_CMD_WRITE ? 4096 : 0);
	}
}

static void errno_maps_to_nbd_errors(void **state)
{
	assert_int_equal(nbd_errno_to_nbd(0), 0);
	assert_int_equal(nbd_errno_to_nbd(EPERM), NBD_EPERM);
	assert_int_equal(nbd_errno_to_nbd(EROFS), NBD_EPERM);
	assert_int_equal(nbd_errno_to_nbd(EIO), NBD_EIO);
	assert_int_equal(nbd_errno_to_nbd(ENOMEM), NBD_ENOMEM);
	assert_int_equal(nbd_errno_to_nbd(EINVAL), NBD_EINVAL);
	assert_int_equal(nbd_errno_to_nbd(ENOSPC), NBD_ENOSPC);
	assert_int_equal(nbd_errno_to_nbd(EDQUOT), NBD_ENOSPC);
	assert_int_equal(nbd_errno_to_nbd(EFBIG), NBD_ENOSPC);
	assert_int_equal(nbd_errno_to_nbd(EOVERFLOW), NBD_EOVERFLOW);
	assert_int_equal(nbd_errno_to_nbd(EOPNOTSUPP), NBD_ENOTSUP);
	assert_int_equal(nbd_errno_to_nbd(ESHUTDOWN), NBD_ESHUTDOWN);
	assert_int_equal(nbd_errno_to_nbd(EBADF), NBD_EIO);
}

static void nbd_errors_map_to_errno(void **state)
{
	assert_int_equal(nbd_err_to_errno(0), 0);
	assert_int_equal(nbd_err_to_errno(NBD_EPERM), EPERM);
	assert_int_equal(nbd_err_to_errno(NBD_EIO), EIO);
	assert_int_equal(nbd_err_to_errno(NBD_ENOMEM), ENOMEM);
	assert_int_equal(nbd_err_to_errno(NBD_EINVAL), EINVAL);
	assert_int_equal(nbd_err_to_errno(NBD_ENOSPC), ENOSPC);
	assert_int_equal(nbd_err_to_errno(NBD_EOVERFLOW), EOVERFLOW);
	assert_int_equal(nbd_err_to_errno(NBD_ENOTSUP), ENOTSUP);
	assert_int_equal(nbd_err_to_errno(NBD_ESHUTDOWN), ESHUTDOWN);
	assert_int_equal(nbd_err_to_errno(12345), EIO);
}

static void names_cover_every_value(void **state)
{
	assert_string_equal(nbd_cmd_name(NBD_CMD_READ), "NBD_CMD_READ");
	assert_string_equal(nbd_cmd_name(NBD_CMD_BLOCK_STATUS), "NBD_CMD_BLOCK_STATUS");
	assert_string_equal(nbd_cmd_name(99), "NBD_CMD_unknown");
	assert_string_equal(nbd_err_name(NBD_ESHUTDOWN), "NBD_ESHUTDOWN");
	assert_string_equal(nbd_err_name(3), "NBD_E_unknown");
	assert_string_equal(nbd_opt_name(NBD_OPT_GO), "NBD_OPT_GO");
	assert_string_equal(nbd_opt_name(NBD_OPT_EXTENDED_HEADERS), "NBD_OPT_EXTENDED_HEADERS");
	assert_string_equal(nbd_rep_name(NBD_REP_ERR_BLOCK_SIZE_REQD), "NBD_REP_ERR_BLOCK_SIZE_REQD");
	assert_string_equal(nbd_rep_name(NBD_REP_ERR_BIT | 77), "NBD_REP_ERR_unknown");
	assert_string_equal(nbd_rep_name(77), "NBD_REP_unknown");
	assert_string_equal(nbd_info_name(NBD_INFO_BLOCK_SIZE), "NBD_INFO_BLOCK_SIZE");
	assert_string_equal(nbd_info_name(9), "NBD_INFO_unknown");
}

static void protocol_constants_have_document_values(void **state)
{
	assert_true(NBDMAGIC == 0x4e42444d41474943ULL);
	assert_true(NBD_IHAVEOPT == 0x49484156454F5054ULL);
	assert_true(NBD_REP_MAGIC == 0x3e889045565a9ULL);
	assert_true(NBD_OLDSTYLE_MAGIC == 0x00420281861253ULL);
	assert_int_equal(NBD_REP_ERR_UNSUP, 0x80000001u);
	assert_int_equal(NBD_REP_ERR_EXT_HEADER_REQD, 0x8000000au);
	assert_int_equal(NBD_FLAG_SEND_FAST_ZERO, 1u << 11);
	assert_int_equal(NBD_CMD_FLAG_FAST_ZERO, 1u << 4);
	assert_int_equal(NBD_OPT_EXTENDED_HEADERS, 11);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(request_encodes_big_endian_fields),
		cmocka_unit_test(request_round_trips),
		cmocka_unit_test(request_with_bad_magic_is_eproto_and_untouched),
		cmocka_unit_test(reply_encodes_big_endian_fields),
		cmocka_unit_test(reply_round_trips),
		cmocka_unit_test(reply_with_bad_magic_is_eproto),
		cmocka_unit_test(payload_follows_write_only),
		cmocka_unit_test(errno_maps_to_nbd_errors),
		cmocka_unit_test(nbd_errors_map_to_errno),
		cmocka_unit_test(names_cover_every_value),
		cmocka_unit_test(protocol_constants_have_document_values),
	};

	return cmocka_run_group_tests_name("proto-codec", tests, NULL, NULL);
}

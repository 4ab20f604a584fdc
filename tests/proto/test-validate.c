/* nbdp_validate_request(): one test per rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <nbdproto/validate.h>

#define MiB (1024u * 1024u)

static const uint16_t ALL_FLAGS = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
	NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_CACHE |
	NBD_FLAG_SEND_FAST_ZERO;

static struct nbdp_limits lim(void)
{
	struct nbdp_limits l = { .size = MiB, .tflags = ALL_FLAGS, .min_block = 1,
				 .max_payload = 32 * MiB };
	return l;
}

static char msg[256];

static uint32_t check(uint16_t type, uint16_t flags, uint64_t off, uint32_t len,
		      const struct nbdp_limits *l)
{
	struct nbd_request r = { .type = type, .flags = flags, .offset = off, .length = len,
				 .cookie = 1 };

	memset(msg, 'x', sizeof(msg));
	return nbdp_validate_request(&r, l, msg, sizeof(msg));
}

/* ---- bounds ------------------------------------------------------------ */

static void read_inside_export_is_valid(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_READ, 0, 4096, 8192, &l), 0);
	assert_string_equal(msg, "");
}

static void read_ending_at_export_end_is_valid(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_READ, 0, MiB - 512, 512, &l), 0);
}

static void read_beyond_end_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_READ, 0, MiB - 512, 1024, &l), NBD_EINVAL);
	assert_string_equal(msg, "read: offset 1048064 + length 1024 beyond export size 1048576");
}

static void read_offset_beyond_end_with_zero_length_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_READ, 0, MiB + 1, 0, &l), NBD_EINVAL);
}

static void offset_plus_length_wrapping_64_bits_is_rejected(void **state)
{
	struct nbdp_limits l = lim();

	l.size = UINT64_MAX - 100;
	assert_int_equal(check(NBD_CMD_READ, 0, UINT64_MAX - 10, 4096, &l), NBD_EINVAL);
	assert_int_equal(check(NBD_CMD_WRITE, 0, UINT64_MAX - 10, 4096, &l), NBD_ENOSPC);
}

static void write_beyond_end_is_enospc(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_WRITE, 0, 4096, MiB, &l), NBD_ENOSPC);
	assert_string_equal(msg, "write: offset 4096 + length 1048576 beyond export size 1048576");
}

static void write_zeroes_beyond_end_is_enospc(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_WRITE_ZEROES, 0, MiB, 1, &l), NBD_ENOSPC);
	assert_string_equal(msg, "write-zeroes: offset 1048576 + length 1 beyond export size 1048576");
}

static void trim_beyond_end_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_TRIM, 0, MiB, 4096, &l), NBD_EINVAL);
}

static void cache_beyond_end_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_CACHE, 0, MiB, 4096, &l), NBD_EINVAL);
}

static void zero_length_read_is_valid(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_READ, 0, 0, 0, &l), 0);
}

/* ---- read-only ----------------------------------------------------------- */

static void write_to_read_only_is_eperm(void **state)
{
	struct nbdp_limits l = lim();

	l.tflags |= NBD_FLAG_READ_ONLY;
	assert_int_equal(check(NBD_CMD_WRITE, 0, 0, 512, &l), NBD_EPERM);
	assert_string_equal(msg, "write: export is read-only");
}

static void write_beyond_end_of_read_only_is_eperm(void **state)
{
	struct nbdp_limits l = lim();

	l.tflags |= NBD_FLAG_READ_ONLY;
	assert_int_equal(check(NBD_CMD_WRITE, 0, 2 * MiB, 512, &l), NBD_EPERM);
}

static void trim_on_read_only_is_eperm(void **state)
{
	struct nbdp_limits l = lim();

	l.tflags |= NBD_FLAG_READ_ONLY;
	assert_int_equal(check(NBD_CMD_TRIM, 0, 0, 512, &l), NBD_EPERM);
	assert_string_equal(msg, "trim: export is read-only");
}

static void write_zeroes_on_read_only_is_eperm(void **state)
{
	struct nbdp_limits l = lim();

	l.tflags |= NBD_FLAG_READ_ONLY;
	assert_int_equal(check(NBD_CMD_WRITE_ZEROES, 0, 0, 512, &l), NBD_EPERM);
}

static void read_from_read_only_is_valid(void **state)
{
	struct nbdp_limits l = lim();

	l.tflags |= NBD_FLAG_READ_ONLY;
	assert_int_equal(check(NBD_CMD_READ, 0, 0, 512, &l), 0);
}

/* ---- payload size -------------------------------------------------------- */

static void read_longer_than_max_payload_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	l.size = 1ULL << 40;
	l.max_payload = MiB;
	assert_int_equal(check(NBD_CMD_READ, 0, 0, MiB + 512, &l), NBD_EINVAL);
	assert_string_equal(msg, "read: length 1049088 beyond maximum payload 1048576");
}

static void write_longer_than_max_payload_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	l.size = 1ULL << 40;
	l.max_payload = MiB;
	assert_int_equal(check(NBD_CMD_WRITE, 0, 0, 2 * MiB, &l), NBD_EINVAL);
}

static void zero_max_payload_means_32_mib(void **state)
{
	struct nbdp_limits l = lim();

	l.size = 1ULL << 40;
	l.max_payload = 0;
	assert_int_equal(check(NBD_CMD_READ, 0, 0, 32 * MiB, &l), 0);
	assert_int_equal(check(NBD_CMD_READ, 0, 0, 32 * MiB + 1, &l), NBD_EINVAL);
}

static void trim_and_write_zeroes_are_not_limited_by_max_payload(void **state)
{
	struct nbdp_limits l = lim();

	l.size = 1ULL << 40;
	l.max_payload = MiB;
	assert_int_equal(check(NBD_CMD_TRIM, 0, 0, 1024 * MiB, &l), 0);
	assert_int_equal(check(NBD_CMD_WRITE_ZEROES, 0, 0, 1024 * MiB, &l), 0);
}

static void oversized_write_payload_is_not_skippable(void **state)
{
	struct nbdp_limits l = lim();
	struct nbd_request r = { .type = NBD_CMD_WRITE, .length = 64 * MiB };

	l.max_payload = MiB;
	assert_false(nbdp_validate_payload_skippable(&r, &l));
}

static void write_below_32_mib_is_skippable_even_above_max_payload(void **state)
{
	struct nbdp_limits l = lim();
	struct nbd_request r = { .type = NBD_CMD_WRITE, .length = 16 * MiB };

	l.max_payload = MiB;
	assert_true(nbdp_validate_payload_skippable(&r, &l));
}

static void read_has_no_payload_to_skip(void **state)
{
	struct nbdp_limits l = lim();
	struct nbd_request r = { .type = NBD_CMD_READ, .length = UINT32_MAX };

	assert_true(nbdp_validate_payload_skippable(&r, &l));
}

/* ---- alignment ------------------------------------------------------------ */

static void unaligned_offset_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	l.min_block = 512;
	assert_int_equal(check(NBD_CMD_READ, 0, 100, 512, &l), NBD_EINVAL);
	assert_string_equal(msg, "read: offset 100 + length 512 not aligned to minimum block size 512");
}

static void unaligned_length_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	l.min_block = 4096;
	assert_int_equal(check(NBD_CMD_WRITE, 0, 4096, 512, &l), NBD_EINVAL);
}

static void unaligned_trim_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	l.min_block = 512;
	assert_int_equal(check(NBD_CMD_TRIM, 0, 512, 100, &l), NBD_EINVAL);
}

static void aligned_request_is_valid(void **state)
{
	struct nbdp_limits l = lim();

	l.min_block = 512;
	assert_int_equal(check(NBD_CMD_WRITE, 0, 1024, 2048, &l), 0);
}

static void min_block_zero_or_one_has_no_alignment_rule(void **state)
{
	struct nbdp_limits l = lim();

	l.min_block = 0;
	assert_int_equal(check(NBD_CMD_READ, 0, 3, 7, &l), 0);
	l.min_block = 1;
	assert_int_equal(check(NBD_CMD_READ, 0, 3, 7, &l), 0);
}

/* ---- commands ------------------------------------------------------------ */

static void flush_not_advertised_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	l.tflags &= (uint16_t)~NBD_FLAG_SEND_FLUSH;
	assert_int_equal(check(NBD_CMD_FLUSH, 0, 0, 0, &l), NBD_EINVAL);
	assert_string_equal(msg, "flush: not advertised to the client (transmission flags 0x0c69)");
}

static void flush_ignores_reserved_offset_and_length(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_FLUSH, 0, 0, 0, &l), 0);
	assert_int_equal(check(NBD_CMD_FLUSH, 0, 5 * MiB, 3, &l), 0);
}

static void trim_not_advertised_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	l.tflags &= (uint16_t)~NBD_FLAG_SEND_TRIM;
	assert_int_equal(check(NBD_CMD_TRIM, 0, 0, 512, &l), NBD_EINVAL);
}

static void write_zeroes_not_advertised_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	l.tflags &= (uint16_t)~NBD_FLAG_SEND_WRITE_ZEROES;
	assert_int_equal(check(NBD_CMD_WRITE_ZEROES, 0, 0, 512, &l), NBD_EINVAL);
}

static void cache_not_advertised_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	l.tflags &= (uint16_t)~NBD_FLAG_SEND_CACHE;
	assert_int_equal(check(NBD_CMD_CACHE, 0, 0, 512, &l), NBD_EINVAL);
}

static void block_status_is_einval_without_meta_context(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_BLOCK_STATUS, 0, 0, 512, &l), NBD_EINVAL);
	assert_string_equal(msg, "block-status: no metadata context negotiated (this server has none)");
}

static void unknown_command_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(9, 0, 0, 512, &l), NBD_EINVAL);
	assert_string_equal(msg, "command: type 9 unknown (known 0..7)");
}

static void disconnect_is_always_valid(void **state)
{
	struct nbdp_limits l = lim();

	l.tflags |= NBD_FLAG_READ_ONLY;
	assert_int_equal(check(NBD_CMD_DISC, 0xffff, 5 * MiB, 7, &l), 0);
}

/* ---- command flags -------------------------------------------------------- */

static void unknown_command_flag_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_WRITE, 0x80, 0, 512, &l), NBD_EINVAL);
	assert_string_equal(msg, "write: command flags 0x0080 not valid for this command (allowed 0x0001)");
}

static void no_hole_on_write_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_WRITE, NBD_CMD_FLAG_NO_HOLE, 0, 512, &l), NBD_EINVAL);
}

static void no_hole_on_write_zeroes_is_valid(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE, 0, 512, &l), 0);
}

static void req_one_on_read_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_READ, NBD_CMD_FLAG_REQ_ONE, 0, 512, &l), NBD_EINVAL);
}

static void fua_without_send_fua_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	l.tflags &= (uint16_t)~NBD_FLAG_SEND_FUA;
	assert_int_equal(check(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 0, 512, &l), NBD_EINVAL);
	assert_string_equal(msg, "write: FUA flag set but NBD_FLAG_SEND_FUA not advertised");
}

static void fua_on_read_is_valid_when_advertised(void **state)
{
	struct nbdp_limits l = lim();

	/* The document: FUA is valid for all commands once SEND_FUA is negotiated. */
	assert_int_equal(check(NBD_CMD_READ, NBD_CMD_FLAG_FUA, 0, 512, &l), 0);
	assert_int_equal(check(NBD_CMD_FLUSH, NBD_CMD_FLAG_FUA, 0, 0, &l), 0);
}

static void df_without_send_df_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 512, &l), NBD_EINVAL);
	assert_string_equal(msg, "read: DF flag set but NBD_FLAG_SEND_DF not advertised");
}

static void fast_zero_without_send_fast_zero_is_einval(void **state)
{
	struct nbdp_limits l = lim();

	l.tflags &= (uint16_t)~NBD_FLAG_SEND_FAST_ZERO;
	assert_int_equal(check(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO, 0, 512, &l), NBD_EINVAL);
}

static void fast_zero_on_write_zeroes_is_valid_when_advertised(void **state)
{
	struct nbdp_limits l = lim();

	assert_int_equal(check(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO | NBD_CMD_FLAG_FUA,
			       0, 512, &l), 0);
}

/* ---- message buffer -------------------------------------------------------- */

static void null_message_buffer_is_allowed(void **state)
{
	struct nbdp_limits l = lim();
	struct nbd_request r = { .type = NBD_CMD_READ, .offset = 2 * MiB, .length = 1 };

	assert_int_equal(nbdp_validate_request(&r, &l, NULL, 0), NBD_EINVAL);
}

static void short_message_buffer_is_truncated_and_terminated(void **state)
{
	struct nbdp_limits l = lim();
	struct nbd_request r = { .type = NBD_CMD_READ, .offset = 2 * MiB, .length = 1 };
	char small[8];

	assert_int_equal(nbdp_validate_request(&r, &l, small, sizeof(small)), NBD_EINVAL);
	assert_string_equal(small, "read: o");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(read_inside_export_is_valid),
		cmocka_unit_test(read_ending_at_export_end_is_valid),
		cmocka_unit_test(read_beyond_end_is_einval),
		cmocka_unit_test(read_offset_beyond_end_with_zero_length_is_einval),
		cmocka_unit_test(offset_plus_length_wrapping_64_bits_is_rejected),
		cmocka_unit_test(write_beyond_end_is_enospc),
		cmocka_unit_test(write_zeroes_beyond_end_is_enospc),
		cmocka_unit_test(trim_beyond_end_is_einval),
		cmocka_unit_test(cache_beyond_end_is_einval),
		cmocka_unit_test(zero_length_read_is_valid),
		cmocka_unit_test(write_to_read_only_is_eperm),
		cmocka_unit_test(write_beyond_end_of_read_only_is_eperm),
		cmocka_unit_test(trim_on_read_only_is_eperm),
		cmocka_unit_test(write_zeroes_on_read_only_is_eperm),
		cmocka_unit_test(read_from_read_only_is_valid),
		cmocka_unit_test(read_longer_than_max_payload_is_einval),
		cmocka_unit_test(write_longer_than_max_payload_is_einval),
		cmocka_unit_test(zero_max_payload_means_32_mib),
		cmocka_unit_test(trim_and_write_zeroes_are_not_limited_by_max_payload),
		cmocka_unit_test(oversized_write_payload_is_not_skippable),
		cmocka_unit_test(write_below_32_mib_is_skippable_even_above_max_payload),
		cmocka_unit_test(read_has_no_payload_to_skip),
		cmocka_unit_test(unaligned_offset_is_einval),
		cmocka_unit_test(unaligned_length_is_einval),
		cmocka_unit_test(unaligned_trim_is_einval),
		cmocka_unit_test(aligned_request_is_valid),
		cmocka_unit_test(min_block_zero_or_one_has_no_alignment_rule),
		cmocka_unit_test(flush_not_advertised_is_einval),
		cmocka_unit_test(flush_ignores_reserved_offset_and_length),
		cmocka_unit_test(trim_not_advertised_is_einval),
		cmocka_unit_test(write_zeroes_not_advertised_is_einval),
		cmocka_unit_test(cache_not_advertised_is_einval),
		cmocka_unit_test(block_status_is_einval_without_meta_context),
		cmocka_unit_test(unknown_command_is_einval),
		cmocka_unit_test(disconnect_is_always_valid),
		cmocka_unit_test(unknown_command_flag_is_einval),
		cmocka_unit_test(no_hole_on_write_is_einval),
		cmocka_unit_test(no_hole_on_write_zeroes_is_valid),
		cmocka_unit_test(req_one_on_read_is_einval),
		cmocka_unit_test(fua_without_send_fua_is_einval),
		cmocka_unit_test(fua_on_read_is_valid_when_advertised),
		cmocka_unit_test(df_without_send_df_is_einval),
		cmocka_unit_test(fast_zero_without_send_fast_zero_is_einval),
		cmocka_unit_test(fast_zero_on_write_zeroes_is_valid_when_advertised),
		cmocka_unit_test(null_message_buffer_is_allowed),
		cmocka_unit_test(short_message_buffer_is_truncated_and_terminated),
	};

	return cmocka_run_group_tests_name("proto-validate", tests, NULL, NULL);
}

/* libFuzzer target: request decoding + validation. Input: 28 bytes of
 * request header, then the limits (size, tflags, min_block, max_payload).
 * A request the validator accepts must really satisfy every rule. */
#include <stdint.h>
#include <string.h>

#include <common/endian.h>
#include <nbdproto/validate.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nbd_request r;
	struct nbdp_limits l;
	char msg[160];
	uint32_t err, maxp;
	uint8_t hdr[NBD_REQUEST_SIZE];

	if (size < NBD_REQUEST_SIZE + 8 + 2 + 1 + 4)
		return 0;
	memcpy(hdr, data, NBD_REQUEST_SIZE);
	put_be32(hdr, NBD_REQUEST_MAGIC);       /* reach the validator most of the time */
	if (nbd_request_decode(hdr, &r) != 0)
		__builtin_trap();
	data += NBD_REQUEST_SIZE;
	l.size = get_be64(data);
	l.tflags = get_be16(data + 8);
	l.min_block = 1u << (data[10] % 17);   /* the powers of two the protocol allows */
	if (data[10] & 0x80)
		l.min_block = 0;
	l.max_payload = get_be32(data + 11);

	msg[0] = 'x';
	err = nbdp_validate_request(&r, &l, msg, sizeof(msg));
	if (memchr(msg, 0, sizeof(msg)) == NULL)
		__builtin_trap();                        /* always terminated */
	if (err != 0 && msg[0] == '\0')
		__builtin_trap();                        /* every error explains itself */
	if (err != 0 && err != NBD_EINVAL && err != NBD_EPERM && err != NBD_ENOSPC)
		__builtin_trap();
	if (err == 0 && r.type != NBD_CMD_DISC && r.type != NBD_CMD_FLUSH) {
		maxp = l.max_payload ? l.max_payload : NBDP_DEFAULT_MAX_PAYLOAD;
		if (r.type > NBD_CMD_WRITE_ZEROES)
			__builtin_trap();
		if ((unsigned __int128)r.offset + r.length > l.size)
			__builtin_trap();
		if (l.min_block > 1 && (r.offset % l.min_block || r.length % l.min_block))
			__builtin_trap();
		if ((r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE) && r.length > maxp)
			__builtin_trap();
		if ((l.tflags & NBD_FLAG_READ_ONLY) &&
		    (r.type == NBD_CMD_WRITE || r.type == NBD_CMD_TRIM || r.type == NBD_CMD_WRITE_ZEROES))
			__builtin_trap();
		if ((r.flags & NBD_CMD_FLAG_FUA) && !(l.tflags & NBD_FLAG_SEND_FUA))
			__builtin_trap();
		if ((r.flags & NBD_CMD_FLAG_FAST_ZERO) && !(l.tflags & NBD_FLAG_SEND_FAST_ZERO))
			__builtin_trap();
		if ((r.flags & NBD_CMD_FLAG_DF) && !(l.tflags & NBD_FLAG_SEND_DF))
			__builtin_trap();
		if (r.flags & ~(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO |
				NBD_CMD_FLAG_DF))
			__builtin_trap();
		if ((r.flags & (NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO)) &&
		    r.type != NBD_CMD_WRITE_ZEROES)
			__builtin_trap();
		if ((r.flags & NBD_CMD_FLAG_DF) && r.type != NBD_CMD_READ)
			__builtin_trap();
	}
	return 0;
}

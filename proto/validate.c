/* The one check of a transmission request against the export.
 *
 * Errors follow the "Error values" section of the protocol document:
 *   - unknown command, a command the export did not advertise (FLUSH, TRIM,
 *     WRITE_ZEROES, CACHE without their NBD_FLAG_SEND_*), BLOCK_STATUS
 *     (no metadata context can be negotiated here), an unknown command
 *     flag or a flag not documented for the command -> NBD_EINVAL;
 *   - WRITE, WRITE_ZEROES or TRIM on a read-only export -> NBD_EPERM;
 *   - WRITE or WRITE_ZEROES beyond the end -> NBD_ENOSPC;
 *     READ, TRIM or CACHE beyond the end -> NBD_EINVAL;
 *   - offset or length not a multiple of the agreed minimum block -> NBD_EINVAL;
 *   - READ or WRITE longer than the maximum payload -> NBD_EINVAL.
 * NBD_ENOTSUP and NBD_EOVERFLOW are never returned: the document reserves
 * them for FAST_ZERO and for DF reads with structured replies, and this
 * library negotiates neither structured replies nor DF. FLUSH's offset and
 * length are reserved; they are ignored rather than rejected. DISC is
 * always valid (it has no reply). Zero lengths are valid (the document asks
 * servers not to disconnect on them). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include <nbdproto/validate.h>

/* Command flags each command may carry (FUA also needs NBD_FLAG_SEND_FUA,
 * FAST_ZERO also needs NBD_FLAG_SEND_FAST_ZERO, DF needs NBD_FLAG_SEND_DF). */
static uint16_t allowed_flags(uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ:         return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_DF;
	case NBD_CMD_WRITE_ZEROES: return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE |
					  NBD_CMD_FLAG_FAST_ZERO;
	case NBD_CMD_BLOCK_STATUS: return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE;
	default:                   return NBD_CMD_FLAG_FUA;   /* valid on every command */
	}
}

/* Short operation names for messages ("write: offset ..."). */
static const char *op_name(uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ:         return "read";
	case NBD_CMD_WRITE:        return "write";
	case NBD_CMD_DISC:         return "disconnect";
	case NBD_CMD_FLUSH:        return "flush";
	case NBD_CMD_TRIM:         return "trim";
	case NBD_CMD_CACHE:        return "cache";
	case NBD_CMD_WRITE_ZEROES: return "write-zeroes";
	case NBD_CMD_BLOCK_STATUS: return "block-status";
	default:                   return "command";
	}
}

static uint32_t fail(uint32_t err, char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static uint32_t fail(uint32_t err, char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (msg && msglen) {
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return err;
}

static uint32_t max_payload(const struct nbdp_limits *l)
{
	return l->max_payload ? l->max_payload : NBDP_DEFAULT_MAX_PAYLOAD;
}

uint32_t nbdp_validate_request(const struct nbd_request *r, const struct nbdp_limits *l,
			       char *msg, size_t msglen)
{
	const char *op = op_name(r->type);
	uint16_t bad;
	uint32_t need_flag = 0;
	bool writes = false, payload = false;
	uint32_t beyond_err = NBD_EINVAL;

	if (msg && msglen)
		msg[0] = '\0';

	switch (r->type) {
	case NBD_CMD_DISC:
		return 0;
	case NBD_CMD_READ:
		payload = true;
		break;
	case NBD_CMD_WRITE:
		writes = payload = true;
		beyond_err = NBD_ENOSPC;
		break;
	case NBD_CMD_FLUSH:
		need_flag = NBD_FLAG_SEND_FLUSH;
		break;
	case NBD_CMD_TRIM:
		need_flag = NBD_FLAG_SEND_TRIM;
		writes = true;
		break;
	case NBD_CMD_CACHE:
		need_flag = NBD_FLAG_SEND_CACHE;
		break;
	case NBD_CMD_WRITE_ZEROES:
		need_flag = NBD_FLAG_SEND_WRITE_ZEROES;
		writes = true;
		beyond_err = NBD_ENOSPC;
		break;
	case NBD_CMD_BLOCK_STATUS:
		return fail(NBD_EINVAL, msg, msglen,
			    "block-status: no metadata context negotiated (this server has none)");
	default:
		return fail(NBD_EINVAL, msg, msglen, "command: type %u unknown (known 0..%u)",
			    r->type, NBD_CMD_BLOCK_STATUS);
	}
	if (need_flag && !(l->tflags & need_flag))
		return fail(NBD_EINVAL, msg, msglen,
			    "%s: not advertised to the client (transmission flags 0x%04x)",
			    op, l->tflags);

	bad = r->flags & (uint16_t)~allowed_flags(r->type);
	if (bad)
		return fail(NBD_EINVAL, msg, msglen,
			    "%s: command flags 0x%04x not valid for this command (allowed 0x%04x)",
			    op, bad, allowed_flags(r->type));
	if ((r->flags & NBD_CMD_FLAG_FUA) && !(l->tflags & NBD_FLAG_SEND_FUA))
		return fail(NBD_EINVAL, msg, msglen,
			    "%s: FUA flag set but NBD_FLAG_SEND_FUA not advertised", op);
	if ((r->flags & NBD_CMD_FLAG_DF) && !(l->tflags & NBD_FLAG_SEND_DF))
		return fail(NBD_EINVAL, msg, msglen,
			    "%s: DF flag set but NBD_FLAG_SEND_DF not advertised", op);
	if ((r->flags & NBD_CMD_FLAG_FAST_ZERO) && !(l->tflags & NBD_FLAG_SEND_FAST_ZERO))
		return fail(NBD_EINVAL, msg, msglen,
			    "%s: FAST_ZERO flag set but NBD_FLAG_SEND_FAST_ZERO not advertised", op);

	if (r->type == NBD_CMD_FLUSH)
		return 0;     /* offset and length are reserved */

	if (writes && (l->tflags & NBD_FLAG_READ_ONLY))
		return fail(NBD_EPERM, msg, msglen, "%s: export is read-only", op);

	if (payload && r->length > max_payload(l))
		return fail(NBD_EINVAL, msg, msglen, "%s: length %" PRIu32
			    " beyond maximum payload %" PRIu32, op, r->length, max_payload(l));

	if (l->min_block > 1 && (r->offset % l->min_block || r->length % l->min_block))
		return fail(NBD_EINVAL, msg, msglen, "%s: offset %" PRIu64 " + length %" PRIu32
			    " not aligned to minimum block size %" PRIu32,
			    op, r->offset, r->length, l->min_block);

	/* Overflow-safe: offset + length > size without computing the sum. */
	if (r->offset > l->size || r->length > l->size - r->offset)
		return fail(beyond_err, msg, msglen, "%s: offset %" PRIu64 " + length %" PRIu32
			    " beyond export size %" PRIu64, op, r->offset, r->length, l->size);
	return 0;
}

bool nbdp_validate_payload_skippable(const struct nbd_request *r, const struct nbdp_limits *l)
{
	uint32_t limit = max_payload(l);

	/* The document: no length below 2^25 should be taken as an attack,
	 * whatever maximum was advertised. */
	if (limit < NBDP_DEFAULT_MAX_PAYLOAD)
		limit = NBDP_DEFAULT_MAX_PAYLOAD;
	return nbd_request_payload_len(r) <= limit;
}

/* Transmission-phase codecs: request header and simple reply, and the
 * mapping between host errno values and NBD error values. */
#include <errno.h>

#include <common/endian.h>
#include <nbdproto/nbd.h>

void nbd_request_encode(uint8_t out[NBD_REQUEST_SIZE], const struct nbd_request *r)
{
	struct nbd_wire_request *w = (struct nbd_wire_request *)out;

	put_be32(w->magic, NBD_REQUEST_MAGIC);
	put_be16(w->flags, r->flags);
	put_be16(w->type, r->type);
	put_be64(w->cookie, r->cookie);
	put_be64(w->offset, r->offset);
	put_be32(w->length, r->length);
}

int nbd_request_decode(const uint8_t in[NBD_REQUEST_SIZE], struct nbd_request *r)
{
	const struct nbd_wire_request *w = (const struct nbd_wire_request *)in;

	if (get_be32(w->magic) != NBD_REQUEST_MAGIC)
		return -EPROTO;
	r->flags = get_be16(w->flags);
	r->type = get_be16(w->type);
	r->cookie = get_be64(w->cookie);
	r->offset = get_be64(w->offset);
	r->length = get_be32(w->length);
	return 0;
}

void nbd_reply_encode(uint8_t out[NBD_SIMPLE_REPLY_SIZE], const struct nbd_simple_reply *r)
{
	struct nbd_wire_simple_reply *w = (struct nbd_wire_simple_reply *)out;

	put_be32(w->magic, NBD_SIMPLE_REPLY_MAGIC);
	put_be32(w->error, r->error);
	put_be64(w->cookie, r->cookie);
}

int nbd_reply_decode(const uint8_t in[NBD_SIMPLE_REPLY_SIZE], struct nbd_simple_reply *r)
{
	const struct nbd_wire_simple_reply *w = (const struct nbd_wire_simple_reply *)in;

	if (get_be32(w->magic) != NBD_SIMPLE_REPLY_MAGIC)
		return -EPROTO;
	r->error = get_be32(w->error);
	r->cookie = get_be64(w->cookie);
	return 0;
}

uint32_t nbd_errno_to_nbd(int err)
{
	switch (err) {
	case 0:         return NBD_SUCCESS;
	case EPERM:
	case EROFS:     return NBD_EPERM;
	case ENOMEM:    return NBD_ENOMEM;
	case EINVAL:    return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:     return NBD_ENOSPC;
	case EOVERFLOW: return NBD_EOVERFLOW;
	case ENOTSUP:   return NBD_ENOTSUP;   /* == EOPNOTSUPP on Linux */
	case ESHUTDOWN: return NBD_ESHUTDOWN;
	default:        return NBD_EIO;
	}
}

int nbd_err_to_errno(uint32_t nbd_err)
{
	switch (nbd_err) {
	case NBD_SUCCESS:   return 0;
	case NBD_EPERM:     return EPERM;
	case NBD_EIO:       return EIO;
	case NBD_ENOMEM:    return ENOMEM;
	case NBD_EINVAL:    return EINVAL;
	case NBD_ENOSPC:    return ENOSPC;
	case NBD_EOVERFLOW: return EOVERFLOW;
	case NBD_ENOTSUP:   return ENOTSUP;
	case NBD_ESHUTDOWN: return ESHUTDOWN;
	default:            return EIO;
	}
}

/* Output queue shared by the handshake machines. */
#include <stdlib.h>
#include <string.h>

#include <common/endian.h>

#include "internal.h"

/* First allocation: a greeting plus a few option replies fit without growing. */
#define OUTBUF_INITIAL 512

void nbdp_outbuf_free(struct nbdp_outbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->head = b->len = b->cap = 0;
}

uint8_t *nbdp_outbuf_reserve(struct nbdp_outbuf *b, size_t n)
{
	if (b->failed)
		return NULL;
	if (b->head == b->len) {
		b->head = b->len = 0;
	} else if (b->head > 0 && b->len + n > b->cap) {
		memmove(b->data, b->data + b->head, b->len - b->head);
		b->len -= b->head;
		b->head = 0;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : OUTBUF_INITIAL;
		uint8_t *d;

		while (cap < b->len + n)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d) {
			b->failed = true;
			return NULL;
		}
		b->data = d;
		b->cap = cap;
	}
	b->len += n;
	return b->data + b->len - n;
}

void nbdp_outbuf_put(struct nbdp_outbuf *b, const void *p, size_t n)
{
	uint8_t *d = nbdp_outbuf_reserve(b, n);

	if (d && n)
		memcpy(d, p, n);
}

void nbdp_outbuf_put_be16(struct nbdp_outbuf *b, uint16_t v)
{
	uint8_t *d = nbdp_outbuf_reserve(b, 2);

	if (d)
		put_be16(d, v);
}

void nbdp_outbuf_put_be32(struct nbdp_outbuf *b, uint32_t v)
{
	uint8_t *d = nbdp_outbuf_reserve(b, 4);

	if (d)
		put_be32(d, v);
}

void nbdp_outbuf_put_be64(struct nbdp_outbuf *b, uint64_t v)
{
	uint8_t *d = nbdp_outbuf_reserve(b, 8);

	if (d)
		put_be64(d, v);
}

size_t nbdp_outbuf_pending(const struct nbdp_outbuf *b, const void **data)
{
	if (!b->data) {            /* nothing queued yet */
		*data = NULL;
		return 0;
	}
	*data = b->data + b->head;
	return b->len - b->head;
}

void nbdp_outbuf_consumed(struct nbdp_outbuf *b, size_t n)
{
	size_t left = b->len - b->head;

	b->head += n < left ? n : left;
	if (b->head == b->len)
		b->head = b->len = 0;
}

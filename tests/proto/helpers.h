/* Byte-building helpers for the proto unit tests and fuzz seeds. */
#ifndef TESTS_PROTO_HELPERS_H
#define TESTS_PROTO_HELPERS_H

#include <stdint.h>
#include <string.h>

#include <common/endian.h>
#include <nbdproto/nbd.h>

/* Large enough for any transcript a test builds (a few oversized options). */
#define TBUF_MAX (1 << 17)

struct tbuf {
	uint8_t d[TBUF_MAX];
	size_t n;
};

static inline void tb_reset(struct tbuf *b) { b->n = 0; }
static inline void tb_be16(struct tbuf *b, uint16_t v) { put_be16(b->d + b->n, v); b->n += 2; }
static inline void tb_be32(struct tbuf *b, uint32_t v) { put_be32(b->d + b->n, v); b->n += 4; }
static inline void tb_be64(struct tbuf *b, uint64_t v) { put_be64(b->d + b->n, v); b->n += 8; }
static inline void tb_mem(struct tbuf *b, const void *p, size_t n)
{
	memcpy(b->d + b->n, p, n);
	b->n += n;
}
static inline void tb_str(struct tbuf *b, const char *s) { tb_mem(b, s, strlen(s)); }
static inline void tb_zero(struct tbuf *b, size_t n)
{
	memset(b->d + b->n, 0, n);
	b->n += n;
}

/* C: option header + data */
static inline void tb_opt(struct tbuf *b, uint32_t opt, const void *data, uint32_t len)
{
	tb_be64(b, NBD_IHAVEOPT);
	tb_be32(b, opt);
	tb_be32(b, len);
	if (len)
		tb_mem(b, data, len);
}

/* C: INFO or GO with a name and a list of information requests */
static inline void tb_info_go(struct tbuf *b, uint32_t opt, const char *name,
			      const uint16_t *reqs, uint16_t nreq)
{
	uint16_t i;

	tb_be64(b, NBD_IHAVEOPT);
	tb_be32(b, opt);
	tb_be32(b, (uint32_t)(4 + strlen(name) + 2 + 2 * nreq));
	tb_be32(b, (uint32_t)strlen(name));
	tb_str(b, name);
	tb_be16(b, nreq);
	for (i = 0; i < nreq; i++)
		tb_be16(b, reqs[i]);
}

/* S: option reply header */
static inline void tb_rep(struct tbuf *b, uint32_t opt, uint32_t type, uint32_t len)
{
	tb_be64(b, NBD_REP_MAGIC);
	tb_be32(b, opt);
	tb_be32(b, type);
	tb_be32(b, len);
}

/* S: greeting */
static inline void tb_greeting(struct tbuf *b, uint16_t hflags)
{
	tb_be64(b, NBDMAGIC);
	tb_be64(b, NBD_IHAVEOPT);
	tb_be16(b, hflags);
}

#endif /* TESTS_PROTO_HELPERS_H */

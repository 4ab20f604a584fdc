/* Private to proto/: the pieces shared by the server and client machines.
 * Sectioned by the .c file that defines each group. */
#ifndef PROTO_INTERNAL_H
#define PROTO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- outbuf.c: growable output queue ------------------------------------
 * Bytes a machine produced and the caller has not sent yet. Its size is
 * driven by our own replies only; the machines stop taking input while
 * more than their high-water mark is queued. */
struct nbdp_outbuf {
	uint8_t *data;
	size_t head;      /* first byte not yet sent */
	size_t len;       /* end of queued bytes: data[head..len) are pending */
	size_t cap;
	bool failed;      /* an append ran out of memory: the queue is unusable */
};

void   nbdp_outbuf_free(struct nbdp_outbuf *b);
/* Reserves n bytes at the end and returns them (NULL on ENOMEM: b->failed). */
uint8_t *nbdp_outbuf_reserve(struct nbdp_outbuf *b, size_t n);
void   nbdp_outbuf_put(struct nbdp_outbuf *b, const void *p, size_t n);
void   nbdp_outbuf_put_be16(struct nbdp_outbuf *b, uint16_t v);
void   nbdp_outbuf_put_be32(struct nbdp_outbuf *b, uint32_t v);
void   nbdp_outbuf_put_be64(struct nbdp_outbuf *b, uint64_t v);
size_t nbdp_outbuf_pending(const struct nbdp_outbuf *b, const void **data);
void   nbdp_outbuf_consumed(struct nbdp_outbuf *b, size_t n);

/* ---- inbuf.c: fixed-size input accumulator ------------------------------
 * Collects exactly `want` bytes of a message from a byte stream that may
 * deliver them in any split. */
struct nbdp_in {
	uint8_t *buf;     /* at least `want` bytes, owned by the machine */
	size_t have;
	size_t want;
};

/* Takes up to want - have bytes from *p and *len (advancing both); returns true
 * when the message is complete. */
bool nbdp_in_fill(struct nbdp_in *in, const uint8_t **p, size_t *len);
static inline void nbdp_in_expect(struct nbdp_in *in, uint8_t *buf, size_t want)
{
	in->buf = buf;
	in->have = 0;
	in->want = want;
}

/* ---- inbuf.c (also): peer strings ----------------------------------------- */
/* Whether the n bytes at s hold no NUL (the protocol forbids NUL in strings). */
bool nbdp_str_ok(const uint8_t *s, size_t n);
/* Copies n bytes of peer text into dst (dstlen >= 1), replacing control
 * characters by '?' so they cannot forge log lines, and NUL-terminating. */
void nbdp_str_sanitize(char *dst, size_t dstlen, const uint8_t *s, size_t n);

#endif /* PROTO_INTERNAL_H */

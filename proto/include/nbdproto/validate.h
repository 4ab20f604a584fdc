/* The one place where a transmission request from the peer is checked
 * against the export before anything acts on it. */
#ifndef NBDPROTO_VALIDATE_H
#define NBDPROTO_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nbdproto/nbd.h>

struct nbdp_limits {
	uint64_t size;          /* export size in bytes */
	uint16_t tflags;        /* transmission flags sent to the client */
	uint32_t min_block;     /* 0 or 1 = no alignment rule */
	uint32_t max_payload;   /* largest READ/WRITE length accepted; 0 = NBDP_DEFAULT_MAX_PAYLOAD */
};

/* Returns 0 when r may be executed, else the NBD error to reply with
 * (NBD_EINVAL, NBD_EPERM, NBD_ENOSPC, NBD_EOVERFLOW, NBD_ENOTSUP) and writes
 * a message naming the operation, the value and the limit into msg (if msg
 * and msglen are non-zero), e.g.
 * "write: offset 4096 + length 8192 beyond export size 8192".
 * See docs/proto.md for the rule table. NBD_CMD_DISC is valid (0). */
uint32_t nbdp_validate_request(const struct nbd_request *r, const struct nbdp_limits *l,
			       char *msg, size_t msglen);

/* Whether the server should read (and drop) the payload of a request that
 * failed validation so the stream stays in step: false only for a WRITE
 * longer than both max_payload and NBDP_DEFAULT_MAX_PAYLOAD (the protocol
 * says lengths below 32 MiB are never a denial of service); the server then
 * sends the error reply and closes the connection (a hard disconnect, which
 * the protocol allows for such payloads). */
bool nbdp_validate_payload_skippable(const struct nbd_request *r, const struct nbdp_limits *l);

#endif /* NBDPROTO_VALIDATE_H */

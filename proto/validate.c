/* Request validation (stub: implementation follows). */
#include <nbdproto/validate.h>

uint32_t nbdp_validate_request(const struct nbd_request *r, const struct nbdp_limits *l, char *msg, size_t msglen) { return NBD_ENOTSUP; }
bool nbdp_validate_payload_skippable(const struct nbd_request *r, const struct nbdp_limits *l) { return false; }

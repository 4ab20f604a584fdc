/* Server handshake machine (stub: implementation follows). */
#include <errno.h>
#include <stdlib.h>

#include <nbdproto/server.h>

struct nbdp_server { int unused; };

struct nbdp_server *nbdp_server_new(const struct nbdp_server_ops *ops, void *opaque) { errno = ENOSYS; return NULL; }
void nbdp_server_free(struct nbdp_server *s) { }
ssize_t nbdp_server_feed(struct nbdp_server *s, const void *buf, size_t len) { return -ENOSYS; }
size_t nbdp_server_pending(struct nbdp_server *s, const void **data) { *data = NULL; return 0; }
void nbdp_server_consumed(struct nbdp_server *s, size_t n) { }
enum nbdp_state nbdp_server_state(const struct nbdp_server *s) { return NBDP_CLOSED; }
const struct nbdp_export *nbdp_server_export(const struct nbdp_server *s) { return NULL; }
bool nbdp_server_block_size_agreed(const struct nbdp_server *s) { return false; }
uint32_t nbdp_server_min_block(const struct nbdp_server *s) { return 1; }
int nbdp_server_limits(const struct nbdp_server *s, struct nbdp_limits *l) { return -ENOSYS; }
const char *nbdp_server_reason(const struct nbdp_server *s) { return "not implemented"; }

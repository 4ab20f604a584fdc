/* Client handshake machine (stub: implementation follows). */
#include <errno.h>
#include <stdlib.h>

#include <nbdproto/client.h>

struct nbdp_client { int unused; };

struct nbdp_client *nbdp_client_new(const struct nbdp_client_opts *o) { errno = ENOSYS; return NULL; }
void nbdp_client_free(struct nbdp_client *c) { }
ssize_t nbdp_client_feed(struct nbdp_client *c, const void *buf, size_t len) { return -ENOSYS; }
size_t nbdp_client_pending(struct nbdp_client *c, const void **data) { *data = NULL; return 0; }
void nbdp_client_consumed(struct nbdp_client *c, size_t n) { }
enum nbdp_client_state nbdp_client_state(const struct nbdp_client *c) { return NBDP_C_FAILED; }
const struct nbdp_export *nbdp_client_export(const struct nbdp_client *c) { return NULL; }
const char *nbdp_client_error(const struct nbdp_client *c) { return "not implemented"; }
int nbdp_client_error_code(const struct nbdp_client *c) { return -ENOSYS; }
bool nbdp_client_used_export_name(const struct nbdp_client *c) { return false; }

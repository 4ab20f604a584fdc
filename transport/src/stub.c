/* Temporary stubs so that other layers can link against the API while the
 * implementation lands (replaced in the following commits). */
#include <errno.h>
#include <stdio.h>
#include <nbdpcie/transport.h>

int npt_link_open(const char *spec, enum npt_role role, const struct npt_link_params *p,
		  struct npt_link **out, char *err, size_t errlen)
{ if (err && errlen) snprintf(err, errlen, "link: %s: transport not implemented yet", spec); *out = NULL; return -ENOSYS; }
void npt_link_close(struct npt_link *l) { }
int npt_link_check(struct npt_link *l) { return -ENOSYS; }
const char *npt_link_error(struct npt_link *l) { return "not implemented"; }
unsigned npt_link_nchannels(const struct npt_link *l) { return 0; }
uint32_t npt_link_max_xfer(const struct npt_link *l) { return 0; }
const char *npt_link_describe(const struct npt_link *l) { return "stub"; }
int npt_chan_open(struct npt_link *l, int idx, struct npt_chan **out) { return -ENOSYS; }
int npt_chan_accept(struct npt_link *l, struct npt_chan **out) { return -ENOSYS; }
void npt_chan_close(struct npt_chan *c) { }
unsigned npt_chan_index(const struct npt_chan *c) { return 0; }
ssize_t npt_chan_send(struct npt_chan *c, const void *buf, size_t len) { return -ENOSYS; }
ssize_t npt_chan_recv(struct npt_chan *c, void *buf, size_t len) { return -ENOSYS; }
int npt_chan_begin_frames(struct npt_chan *c) { return -ENOSYS; }
int npt_chan_status(struct npt_chan *c) { return -ENOSYS; }
const char *npt_chan_error(struct npt_chan *c) { return "not implemented"; }
int npt_host_buf_alloc(struct npt_chan *c, uint32_t len, struct npt_hbuf *b) { return -ENOSYS; }
void npt_host_buf_free(struct npt_chan *c, struct npt_hbuf *b) { }
int npt_host_submit(struct npt_chan *c, const uint8_t req[28], const struct npt_hbuf *b) { return -ENOSYS; }
int npt_host_reap(struct npt_chan *c, struct npt_hcomp *out, unsigned max) { return -ENOSYS; }
int npt_ep_take(struct npt_chan *c, struct npt_ereq *out, unsigned max) { return -ENOSYS; }
int npt_ep_fetch(struct npt_chan *c, const struct npt_ereq *r) { return -ENOSYS; }
int npt_ep_fetched(struct npt_chan *c, uint32_t *tags, unsigned max) { return -ENOSYS; }
int npt_ep_complete(struct npt_chan *c, const struct npt_ereq *r, const uint8_t reply[16], uint32_t data_len) { return -ENOSYS; }
int npt_ep_progress(struct npt_chan *c) { return -ENOSYS; }
void npt_backoff_reset(struct npt_backoff *b) { b->idle = 0; }
unsigned npt_backoff_next_us(struct npt_backoff *b) { return 0; }

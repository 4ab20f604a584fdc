/* An in-memory EP behind the relay's upstream ops, for tests and fuzzing:
 * a RAM disk that answers requests, with a bounded payload area and ring,
 * reordering, error and link-loss injection. */
#ifndef TESTS_HOST_CLIENT_FAKE_EP_H
#define TESTS_HOST_CLIENT_FAKE_EP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

struct fake {
	uint8_t *disk;
	uint32_t area, area_used;     /* payload area size, bytes allocated */
	unsigned ring, nq;            /* ring capacity, queued requests */
	struct { uint8_t hdr[28]; struct npt_hbuf b; bool has; } q[1024];
	bool reverse;                 /* complete newest first */
	uint64_t err_off;             /* requests touching [err_off, +4096) fail with EIO */
	int die_after;                /* submits before the link dies; -1 never */
	bool dead;
	bool bogus_cookie;            /* answer with a cookie never sent */
	unsigned submits, max_len_seen;
	int bell_fd;                  /* fake_ep_bell_ops: an eventfd, never rung (every
	                                 queued request is answered at the next reap) */
	unsigned sleeps;              /* fake_ep_bell_ops: arms that let the relay sleep */
	pthread_mutex_t mu;
};

extern const struct npc_upstream_ops fake_ep_ops;
/* The same EP with a doorbell: the relay then polls its socket by
 * non-blocking recv and sleeps on the socket and the doorbell when idle, as
 * on a real link (bell_fd must be set). */
extern const struct npc_upstream_ops fake_ep_bell_ops;

#endif

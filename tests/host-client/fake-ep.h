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
	pthread_mutex_t mu;
};

extern const struct npc_upstream_ops fake_ep_ops;

#endif

/* Traffic generators for the multi-process transport tests: a host side
 * that issues random NBD requests and verifies every byte it reads, and an
 * EP side that serves them and verifies every byte it is written. Payload
 * bytes are a function of the request's cookie, so each side can check the
 * other's data without shared state. */
#ifndef TESTS_TRANSPORT_TRAFFIC_H
#define TESTS_TRANSPORT_TRAFFIC_H

#include <stdbool.h>
#include <stdint.h>

#include <nbdpcie/transport.h>

struct traffic_stats {
	uint64_t requests, reads, writes, others, bytes;
	uint64_t bad_data;       /* payloads whose checksum differed */
	uint64_t bad_replies;    /* replies with the wrong cookie or an error */
};

struct traffic_opts {
	uint64_t requests;       /* host: how many (UINT64_MAX: until *stop) */
	uint64_t seed;
	uint32_t max_len;        /* largest payload */
	unsigned max_qd;         /* queue depth varies randomly in 1..max_qd */
	volatile int *stop;      /* optional: set to end early */
	unsigned pause_max_us;   /* host: after half the reaps, pause 0..this (peer falls asleep) */
};

/* How an idle side waits (both sides, all channels of the process). With
 * sleep set it sleeps on the channel's wait fd (npt_chan_arm, poll,
 * npt_chan_disarm) instead of backing off. Every sleep is bounded by
 * timeout_ms, far above any wake-up latency: a sleep that ends by it is a
 * lost wake-up, and the tests count them instead of timing requests.
 * NPT_TRAFFIC_SLEEP_MS=N in the environment sets sleep with timeout N. */
struct traffic_wait {
	bool sleep;
	bool require;            /* a channel without a wait fd fails with -ENOTSUP */
	int timeout_ms;
	uint64_t sleeps, wakes, timeouts, notifies;   /* updated atomically */
};
extern struct traffic_wait traffic_wait;

/* Host: the handshake stand-in ("HELLO" -> "OK") then frames. */
int traffic_host_handshake(struct npt_chan *c, int timeout_ms);
/* Host: runs o->requests requests; 0 when all completed and verified. */
int traffic_host_run(struct npt_chan *c, const struct traffic_opts *o, struct traffic_stats *st);
/* EP: handshake then serve until the host closes (returns 0) or an error. */
int traffic_ep_serve(struct npt_chan *c, volatile int *stop, struct traffic_stats *st);
/* EP: accept channels and serve each in its own thread until *stop. If
 * exit_on_detach, returns once a host has attached and gone. */
int traffic_ep_loop(struct npt_link *l, volatile int *stop, bool exit_on_detach,
		    struct traffic_stats *st);

void traffic_fill(void *buf, uint32_t len, uint64_t seed);
bool traffic_check(const void *buf, uint32_t len, uint64_t seed);

#endif

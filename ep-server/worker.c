/* Workers: one thread and one io_uring each, serving the connections given
 * to it (handshake, then transmission through the engine). When idle with
 * connections in transmission, the worker polls on for NPT_BELL_SPIN_US
 * (200 µs by default, yielding the core on each poll: sockets by their
 * non-blocking recv, PCIe channels in memory; not while only transfers of
 * NPT_LONG_XFER or more are in flight, nor when none is after one), then
 * sleeps in io_uring:
 * socket connections on polls of their fds, PCIe channels on their
 * doorbells (npt_chan_arm), at most NPT_WAIT_MAX_MS so that the link
 * checks keep their cadence. A channel without a doorbell (a peer that does
 * not ring, e.g. a BAR-only guest host) is polled with the transport's
 * adaptive back-off instead. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <syslog.h>
#include <unistd.h>

#include <liburing.h>

#include "common/compiler.h"
#include "common/uring.h"
#include "internal.h"
#include "nbdpcie/transport.h"

/* How long a stopping worker waits for its connections to drain (in-flight
 * requests answered, replies sent) before dropping peers that do not read
 * their replies: a stuck client must not keep the server from exiting. */
#define DRAIN_TIMEOUT_MS 10000
/* While stopping, the worker wakes at least this often to check the deadline. */
#define DRAIN_TICK_MS 100

/* Submission queue entries per worker ring: a full kernel nbd queue (128)
 * on a few connections without waiting for the ring to drain. */
#define WORKER_RING_ENTRIES 512

struct srv_worker {
	struct srv_ev wake_ev;          /* SRV_EV_WAKE */
	struct srv_server *srv;
	unsigned idx;
	pthread_t thread;
	bool started;
	struct io_uring ring;
	bool ring_ok;
	int efd;                        /* eventfd: new connections, stop */
	bool wake_armed;
	pthread_mutex_t lock;           /* guards inbox and stop */
	struct srv_conn *inbox;
	bool stop;
	struct srv_conn *conns;         /* owned by the worker thread */
	atomic_uint nconns;
	struct npt_backoff backoff;
	uint64_t drain_deadline;        /* monotonic ms; 0 = not stopping */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct io_uring_sqe *srv_worker_sqe(struct srv_worker *w)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&w->ring)))
		io_uring_submit(&w->ring);   /* full: hand the batch to the kernel */
	return sqe;
}

unsigned srv_worker_nconns(struct srv_worker *w)
{
	return atomic_load(&w->nconns);
}

struct srv_worker *srv_worker_new(struct srv_server *s, unsigned idx, char *err, size_t errlen)
{
	struct srv_worker *w = calloc(1, sizeof(*w));
	int rc;

	if (!w) {
		snprintf(err, errlen, "worker %u: out of memory", idx);
		return NULL;
	}
	w->wake_ev.kind = SRV_EV_WAKE;
	w->srv = s;
	w->idx = idx;
	w->efd = -1;
	pthread_mutex_init(&w->lock, NULL);
	rc = nbdpcie_uring_init(WORKER_RING_ENTRIES, &w->ring, NBDPCIE_URING_COOP);
	if (rc < 0) {
		snprintf(err, errlen, "worker %u: io_uring_queue_init(%u entries): %s", idx,
		         WORKER_RING_ENTRIES, strerror(-rc));
		srv_worker_free(w);
		return NULL;
	}
	w->ring_ok = true;
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0) {
		snprintf(err, errlen, "worker %u: eventfd: %s", idx, strerror(errno));
		srv_worker_free(w);
		return NULL;
	}
	npt_backoff_reset(&w->backoff);
	return w;
}

static void wake(struct srv_worker *w)
{
	uint64_t one = 1;
	ssize_t n = write(w->efd, &one, sizeof(one));
	(void)n;   /* a full counter already means "wake up" */
}

void srv_worker_add(struct srv_worker *w, struct srv_conn *c)
{
	c->w = w;
	atomic_fetch_add(&w->nconns, 1);
	pthread_mutex_lock(&w->lock);
	c->next = w->inbox;
	w->inbox = c;
	pthread_mutex_unlock(&w->lock);
	wake(w);
}

/* ---- handshake ----------------------------------------------------------- */

static int enter_transmission(struct srv_conn *c)
{
	const struct nbdp_export *x = nbdp_server_export(c->hs);
	struct srv_export *e = x->handle;
	unsigned max = e->cfg->maxconnections;
	char err[256];
	int rc;

	c->exp = e;
	if (atomic_fetch_add(&e->nconn, 1) >= max && max) {
		atomic_fetch_sub(&e->nconn, 1);
		srv_log(LOG_NOTICE, "%s: export %s: refused, maxconnections %u reached", c->desc,
		        e->cfg->name, max);
		return -EBUSY;
	}
	c->counted = true;
	rc = nbdp_server_limits(c->hs, &c->limits);
	if (rc)
		return rc;
	if (e->cfg->copyonwrite) {
		rc = srv_cow_open(e, c->id, &c->cow, err, sizeof(err));
		if (rc) {
			srv_log(LOG_ERR, "%s: %s", c->desc, err);
			return rc;
		}
	}
	rc = c->ops->begin(c, c->hsbuf, c->hslen);
	c->hslen = 0;
	if (rc)
		return rc;
	c->state = SRV_C_TRANSMISSION;
	srv_log(LOG_INFO, "%s: export %s: size %llu, flags 0x%04x%s%s%s%s%s, min block %u",
	        c->desc, e->cfg->name, (unsigned long long)e->size, c->limits.tflags,
	        (c->limits.tflags & NBD_FLAG_READ_ONLY) ? " read-only" : "",
	        (c->limits.tflags & NBD_FLAG_SEND_FLUSH) ? " flush" : "",
	        (c->limits.tflags & NBD_FLAG_SEND_FUA) ? " fua" : "",
	        (c->limits.tflags & NBD_FLAG_SEND_TRIM) ? " trim" : "",
	        c->cow ? " copy-on-write" : "", c->limits.min_block);
	return 0;
}

/* Drives the handshake machine: >0 progress, 0 waiting, <0 close. */
static int hs_step(struct srv_conn *c)
{
	int progress = 0;

	for (;;) {
		const void *out;
		size_t n;
		bool stalled = false;

		while ((n = nbdp_server_pending(c->hs, &out)) > 0) {
			ssize_t s = c->ops->send(c, out, n);
			if (s == -EAGAIN) {
				stalled = true;
				break;
			}
			if (s < 0) {
				srv_log(LOG_INFO, "%s: handshake: send: %s", c->desc, strerror((int)-s));
				return -1;
			}
			nbdp_server_consumed(c->hs, (size_t)s);
			progress = 1;
		}
		switch (nbdp_server_state(c->hs)) {
		case NBDP_CLOSED:
			if (stalled)
				return progress;
			if (*nbdp_server_reason(c->hs))
				srv_log(LOG_INFO, "%s: handshake ended: %s", c->desc,
				        nbdp_server_reason(c->hs));
			return -1;
		case NBDP_TRANSMISSION:
			if (stalled)
				return progress;
			return enter_transmission(c) ? -1 : 1;
		case NBDP_NEGOTIATING:
			break;
		}
		if (c->hslen) {
			ssize_t took = nbdp_server_feed(c->hs, c->hsbuf, c->hslen);
			if (took < 0)
				continue;   /* CLOSED now: flush what it says, then close */
			if (took > 0) {
				memmove(c->hsbuf, c->hsbuf + took, c->hslen - (size_t)took);
				c->hslen -= (size_t)took;
				progress = 1;
				continue;
			}
			if (stalled || c->hslen == sizeof(c->hsbuf))
				return progress;   /* output backlog: wait for the peer to read */
		}
		if (stalled)
			return progress;
		ssize_t r = c->ops->recv(c, c->hsbuf + c->hslen, sizeof(c->hsbuf) - c->hslen);
		if (r == -EAGAIN)
			return progress;
		if (r <= 0) {
			srv_log(LOG_INFO, "%s: closed during the handshake%s%s", c->desc,
			        r < 0 ? ": " : "", r < 0 ? strerror((int)-r) : "");
			return -1;
		}
		c->hslen += (size_t)r;
		progress = 1;
	}
}

/* ---- connection life ----------------------------------------------------- */

static void conn_free(struct srv_worker *w, struct srv_conn *c)
{
	char note[256] = "";

	if (c->counted)
		atomic_fetch_sub(&c->exp->nconn, 1);
	atomic_fetch_sub(&w->srv->nconns, 1);
	atomic_fetch_sub(&w->nconns, 1);
	srv_cow_close(c->cow);
	nbdp_server_free(c->hs);
	if (c->ops->close_note)
		c->ops->close_note(c, note, sizeof(note));
	srv_log(LOG_INFO, "%s: closed%s", c->desc, note);
	c->ops->destroy(c);
}

/* One step of a connection: >0 progress; sets CLOSING when it is over. */
static int conn_step(struct srv_worker *w, struct srv_conn *c, bool stopping)
{
	int rc = 0;

	if (c->state == SRV_C_HANDSHAKE) {
		if (stopping) {
			c->state = SRV_C_CLOSING;
			c->dead = true;
			return 1;
		}
		rc = hs_step(c);
		if (rc < 0) {
			c->state = SRV_C_CLOSING;
			c->dead = true;
			return 1;
		}
		if (c->state != SRV_C_TRANSMISSION)
			return rc;
	}
	if (c->state == SRV_C_TRANSMISSION) {
		if (stopping)
			c->draining = true;
		if (!c->dead) {
			rc = c->ops->pump(c);
			if (rc < 0) {
				c->dead = true;
				c->draining = true;
				rc = 1;
			}
		}
		if (c->draining && c->inflight == 0 && (c->dead || c->ops->drained(c))) {
			c->state = SRV_C_CLOSING;
			rc = 1;
		}
	}
	return rc;
}

static void arm_poll(struct srv_worker *w, struct srv_conn *c)
{
	unsigned events = 0;
	int fd;
	struct io_uring_sqe *sqe;

	if (c->state == SRV_C_CLOSING || !c->ops->poll_fd)
		return;
	fd = c->ops->poll_fd(c, &events);
	if (c->state == SRV_C_HANDSHAKE && !c->ops->arm) {
		/* sockets: wait for room too (a doorbell also rings for room) */
		const void *out;
		events = POLLIN | (nbdp_server_pending(c->hs, &out) ? POLLOUT : 0);
	}
	if (fd < 0 || !events)
		return;
	if (c->poll_armed) {
		/* A poll armed for other events (POLLIN only while replies now
		 * wait for POLLOUT) would never wake us: remove it; its CQE
		 * (fired or cancelled) brings us back here to arm a new one.
		 * Not IORING_POLL_UPDATE_EVENTS: an update to a mask that is
		 * already ready was seen to post no completion at all (a reply
		 * queued for POLLOUT on an empty socket, the connection hung;
		 * bench/run, 1 MiB reads at QD8, about one run in five). */
		if (c->poll_events == events || c->cancel_armed)
			return;
		sqe = srv_worker_sqe(w);
		io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)&c->poll_ev);
		io_uring_sqe_set_data(sqe, &c->cancel_ev);
		c->cancel_armed = true;
		return;
	}
	sqe = srv_worker_sqe(w);
	io_uring_prep_poll_add(sqe, fd, events);
	io_uring_sqe_set_data(sqe, &c->poll_ev);
	c->poll_armed = true;
	c->poll_events = events;
}

static void dispatch(struct srv_worker *w, struct io_uring_cqe *cqe)
{
	struct srv_ev *ev = io_uring_cqe_get_data(cqe);
	int res = cqe->res;

	io_uring_cqe_seen(&w->ring, cqe);
	if (!ev)
		return;
	switch (ev->kind) {
	case SRV_EV_REQ:
		srv_engine_cqe(container_of(ev, struct srv_req, ev), res);
		break;
	case SRV_EV_POLL:
		container_of(ev, struct srv_conn, poll_ev)->poll_armed = false;
		break;
	case SRV_EV_CANCEL:
		container_of(ev, struct srv_conn, cancel_ev)->cancel_armed = false;
		break;
	case SRV_EV_WAKE: {
		uint64_t v;
		ssize_t n = read(w->efd, &v, sizeof(v));
		(void)n;
		w->wake_armed = false;
		break;
	}
	}
}

static void submit_pending(struct srv_worker *w)
{
	if (io_uring_sq_ready(&w->ring))
		io_uring_submit(&w->ring);
}

static void wait_us(struct srv_worker *w, unsigned us)
{
	struct __kernel_timespec ts = {
		.tv_sec = us / 1000000,
		.tv_nsec = (long long)(us % 1000000) * 1000,
	};
	struct io_uring_cqe *cqe;

	io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
}

/* One idle wait of the worker; true when it went back to polling without
 * sleeping (spin phase). */
static bool idle_wait(struct srv_worker *w, bool busy_poll, bool stopping)
{
	bool bells = false, pending = false, serving = false;
	unsigned us = 0, inflight = 0, inflight_long = 0;
	bool after_long = true;   /* every connection's last request was long */

	/* Channels without a doorbell need the back-off like fd-less ones. */
	for (struct srv_conn *c = w->conns; c; c = c->next) {
		unsigned ev;

		if (c->state == SRV_C_TRANSMISSION)
			serving = true;
		inflight += c->inflight;
		inflight_long += c->inflight_long;
		if (!c->last_long)
			after_long = false;
		if (!c->ops->arm || c->state == SRV_C_CLOSING)
			continue;
		if (c->ops->poll_fd(c, &ev) < 0)
			busy_poll = true;
		else
			bells = true;
	}
	if (busy_poll) {
		/* poll again after the back-off, or earlier when a completion,
		 * a socket or a doorbell wakes us */
		us = npt_backoff_next_us(&w->backoff);
		if (!us) {
			submit_pending(w);
			return true;
		}
	} else if ((bells || serving) && !(inflight ? inflight_long == inflight : after_long) &&
	           npt_backoff_spin(&w->backoff)) {
		/* the next request is likely within a round trip: keep polling
		 * (rings in memory; sockets by their non-blocking recv in the
		 * pump) rather than sleep and pay a wake-up per request; not
		 * while only long transfers are in flight (NPT_LONG_XFER):
		 * their CQEs wake us; nor with none in flight after long
		 * ones: the next request of such a stream comes no sooner
		 * than its peer has moved the last one's payload */
		submit_pending(w);
		return true;
	}
	/* About to sleep: tell the peers of the channels (a peer rings only
	 * a sleeping side); a channel with work pending keeps us awake. */
	for (struct srv_conn *c = w->conns; c && bells; c = c->next) {
		int a;

		if (!c->ops->arm || c->state == SRV_C_CLOSING)
			continue;
		a = c->ops->arm(c);
		if (a > 0)
			c->bell_armed = true;
		else if (a == 0)
			pending = true;
	}
	if (pending && !busy_poll) {
		/* usually found at once; the back-off bounds a state that
		 * stays pending without progress (a modelled DMA transfer) */
		us = npt_backoff_next_us(&w->backoff);
		if (!us)
			goto disarm;
	}
	for (struct srv_conn *c = w->conns; c; c = c->next)
		arm_poll(w, c);
	if (!w->wake_armed) {
		struct io_uring_sqe *sqe = srv_worker_sqe(w);
		io_uring_prep_poll_add(sqe, w->efd, POLLIN);
		io_uring_sqe_set_data(sqe, &w->wake_ev);
		w->wake_armed = true;
	}
	if (us) {
		wait_us(w, us);
	} else if (stopping) {
		wait_us(w, DRAIN_TICK_MS * 1000);
	} else if (bells) {
		/* doorbells ring for channel work; heartbeats and link checks
		 * do not: wake up to run them at their usual cadence */
		wait_us(w, NPT_WAIT_MAX_MS * 1000);
	} else {
		io_uring_submit_and_wait(&w->ring, 1);
	}
disarm:
	for (struct srv_conn *c = w->conns; c; c = c->next) {
		if (c->bell_armed) {
			c->ops->disarm(c);
			c->bell_armed = false;
		}
	}
	return false;
}

static void *worker_main(void *arg)
{
	struct srv_worker *w = arg;

	for (;;) {
		struct srv_conn *in, **pp;
		struct io_uring_cqe *cqe;
		bool stopping, busy_poll = false;
		int progress = 0;

		pthread_mutex_lock(&w->lock);
		in = w->inbox;
		w->inbox = NULL;
		stopping = w->stop;
		pthread_mutex_unlock(&w->lock);
		if (stopping && !w->drain_deadline)
			w->drain_deadline = now_ms() + DRAIN_TIMEOUT_MS;
		if (stopping && now_ms() > w->drain_deadline) {
			for (struct srv_conn *c = w->conns; c; c = c->next) {
				if (!c->dead && c->state == SRV_C_TRANSMISSION)
					srv_log(LOG_NOTICE, "%s: not drained after %d ms: dropping it",
					        c->desc, DRAIN_TIMEOUT_MS);
				c->dead = true;
				c->draining = true;
			}
		}
		while (in) {
			struct srv_conn *next = in->next;
			in->next = w->conns;
			w->conns = in;
			in = next;
			progress = 1;
		}

		for (pp = &w->conns; *pp;) {
			struct srv_conn *c = *pp;
			if (conn_step(w, c, stopping) > 0)
				progress = 1;
			if (c->state == SRV_C_CLOSING && c->inflight == 0) {
				if (c->poll_armed) {
					if (!c->cancel_armed) {
						struct io_uring_sqe *sqe = srv_worker_sqe(w);
						io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)&c->poll_ev);
						io_uring_sqe_set_data(sqe, &c->cancel_ev);
						c->cancel_armed = true;
					}
				} else if (!c->cancel_armed) {
					*pp = c->next;
					conn_free(w, c);
					continue;
				}
			}
			if (!c->ops->poll_fd && c->state != SRV_C_CLOSING)
				busy_poll = true;
			pp = &c->next;
		}

		if (io_uring_sq_ready(&w->ring))
			io_uring_submit(&w->ring);
		while (io_uring_peek_cqe(&w->ring, &cqe) == 0) {
			dispatch(w, cqe);
			progress = 1;
		}
		if (stopping && !w->conns)
			break;
		if (progress) {
			npt_backoff_reset(&w->backoff);
			continue;
		}

		/* Idle: wait for an fd, a completion, a wake-up, a doorbell or
		 * the back-off. */
		if (idle_wait(w, busy_poll, stopping))
			continue;
	}
	return NULL;
}

int srv_worker_start(struct srv_worker *w)
{
	int rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc)
		return -rc;
	w->started = true;
	return 0;
}

void srv_worker_stop(struct srv_worker *w)
{
	if (!w || !w->started)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_mutex_unlock(&w->lock);
	wake(w);
	pthread_join(w->thread, NULL);
	w->started = false;
}

void srv_worker_free(struct srv_worker *w)
{
	if (!w)
		return;
	srv_worker_stop(w);
	if (w->ring_ok)
		nbdpcie_uring_exit(&w->ring);
	if (w->efd >= 0)
		close(w->efd);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

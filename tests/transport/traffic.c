/* See traffic.h. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "traffic.h"

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void traffic_fill(void *buf, uint32_t len, uint64_t seed)
{
	uint8_t *p = buf;
	uint32_t i = 0;
	uint64_t w;

	for (; i + 8 <= len; i += 8) {
		w = splitmix(seed + i);
		memcpy(p + i, &w, 8);
	}
	if (i < len) {
		w = splitmix(seed + i);
		memcpy(p + i, &w, len - i);
	}
}

bool traffic_check(const void *buf, uint32_t len, uint64_t seed)
{
	const uint8_t *p = buf;
	uint32_t i = 0;
	uint64_t w;

	for (; i + 8 <= len; i += 8) {
		w = splitmix(seed + i);
		if (memcmp(p + i, &w, 8))
			return false;
	}
	if (i < len) {
		w = splitmix(seed + i);
		if (memcmp(p + i, &w, len - i))
			return false;
	}
	return true;
}

/* The cookie is (counter << 8 | NBD command): it names both the payload's
 * bytes and what kind of request it was. */
static uint64_t data_seed(uint64_t cookie)
{
	return splitmix(cookie);
}

static bool stopped(volatile int *stop)
{
	return stop && __atomic_load_n(stop, __ATOMIC_RELAXED);
}

static void pause_us(struct npt_backoff *b)
{
	unsigned us = npt_backoff_next_us(b);

	if (us) {
		struct timespec ts = { 0, (long)us * 1000 };

		nanosleep(&ts, NULL);
	}
}

struct traffic_wait traffic_wait;

/* NPT_TRAFFIC_SLEEP_MS=N: sleep on doorbells, each sleep bounded by N ms
 * (for the fault scenarios, where peers die while the other side sleeps). */
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void env_init(void)
{
	const char *e = getenv("NPT_TRAFFIC_SLEEP_MS");

	if (e && !traffic_wait.sleep) {
		traffic_wait.timeout_ms = atoi(e);
		traffic_wait.sleep = true;
		traffic_wait.require = true;   /* every channel must have its doorbell */
	}
}

static void count(uint64_t *v, uint64_t n)
{
	__atomic_add_fetch(v, n, __ATOMIC_RELAXED);
}

/* Nothing to do on c: sleep on its doorbell or back off. */
static int idle(struct npt_chan *c, struct npt_backoff *b)
{
	struct pollfd p = { .events = POLLIN };
	int n;

	pthread_once(&env_once, env_init);
	if (!traffic_wait.sleep) {
		pause_us(b);
		return 0;
	}
	p.fd = npt_chan_wait_fd(c);
	if (p.fd < 0) {
		if (traffic_wait.require)
			return -ENOTSUP;
		pause_us(b);
		return 0;
	}
	if (npt_chan_arm(c)) {
		pause_us(b);     /* work pending: look again */
		return 0;
	}
	n = poll(&p, 1, traffic_wait.timeout_ms);
	npt_chan_disarm(c);
	count(&traffic_wait.sleeps, 1);
	count(n == 0 ? &traffic_wait.timeouts : &traffic_wait.wakes, 1);
	return 0;
}

static void count_notifies(struct npt_chan *c)
{
	struct npt_chan_stats s;

	npt_chan_get_stats(c, &s);
	count(&traffic_wait.notifies, s.notifies);
}

int traffic_host_handshake(struct npt_chan *c, int timeout_ms)
{
	uint64_t t0 = t_now_ms();
	struct npt_backoff b;
	char buf[8];
	size_t got = 0;
	ssize_t n;

	npt_backoff_reset(&b);
	while ((n = npt_chan_send(c, "HELLO", 5)) == -EAGAIN)
		pause_us(&b);
	if (n != 5)
		return n < 0 ? (int)n : -EIO;
	while (got < 2) {
		n = npt_chan_recv(c, buf + got, 2 - got);
		if (n == -EAGAIN) {
			if ((int)(t_now_ms() - t0) > timeout_ms)
				return -ETIMEDOUT;
			n = idle(c, &b);
			if (n)
				return (int)n;
			continue;
		}
		if (n <= 0)
			return n ? (int)n : -ECONNRESET;
		got += (size_t)n;
	}
	if (memcmp(buf, "OK", 2))
		return -EPROTO;
	return npt_chan_begin_frames(c);
}

struct hreq {
	uint8_t req[28];
	struct npt_hbuf buf;
	bool busy;
};

int traffic_host_run(struct npt_chan *c, const struct traffic_opts *o, struct traffic_stats *st)
{
	uint64_t rnd = o->seed | 1, submitted = 0, done = 0, cookie = o->seed << 32;
	unsigned qd = 1, inflight = 0, max_qd = o->max_qd ? o->max_qd : 1;
	struct npt_hcomp comp[64];
	struct npt_backoff b;
	int r = 0;

	npt_backoff_reset(&b);
	while (done < o->requests && !stopped(o->stop)) {
		bool work = false;

		if (submitted % 1024 == 0)
			qd = 1 + (unsigned)(t_rand(&rnd) % max_qd);
		while (submitted < o->requests && inflight < qd && !stopped(o->stop)) {
			uint64_t x = t_rand(&rnd);
			unsigned kind = (unsigned)(x % 10);
			uint16_t type = kind < 5 ? T_NBD_CMD_READ : kind < 9 ? T_NBD_CMD_WRITE : T_NBD_CMD_FLUSH;
			/* sizes: 1 in 8 anywhere in 0..max_len, else 0..8 KiB */
			uint32_t len = (x >> 8) % 8 == 0 ? (uint32_t)((x >> 16) % ((uint64_t)o->max_len + 1))
							 : (uint32_t)((x >> 16) % 8193);
			struct npt_hbuf hb = { 0 };
			uint8_t req[28];

			if (len > o->max_len)
				len = o->max_len;
			if (type == T_NBD_CMD_FLUSH)
				len = 0;
			cookie += 256;
			t_make_req(req, type, cookie | type, x & 0xfffffe00u, len);
			if (type != T_NBD_CMD_FLUSH) {
				r = npt_host_buf_alloc(c, len, &hb);
				if (r == -EAGAIN)
					break;
				if (r)
					goto out;
				if (type == T_NBD_CMD_WRITE)
					traffic_fill(hb.ptr, len, data_seed(cookie | type));
			}
			r = npt_host_submit(c, req, type == T_NBD_CMD_FLUSH ? NULL : &hb);
			if (r == -EAGAIN) {
				npt_host_buf_free(c, &hb);
				break;
			}
			if (r)
				goto out;
			submitted++;
			inflight++;
			work = true;
		}
		r = npt_host_reap(c, comp, 64);
		if (r < 0)
			goto out;
		for (int i = 0; i < r; i++) {
			const uint8_t *rep = comp[i].reply;

			uint64_t ck = get_be64(rep + 8);

			if (get_be32(rep + 4) != 0)
				st->bad_replies++;
			if ((ck & 0xff) == T_NBD_CMD_READ) {
				/* a READ's buffer came back: its bytes must be the EP's */
				if (!traffic_check(comp[i].buf.ptr, comp[i].buf.len, data_seed(ck)))
					st->bad_data++;
				st->reads++;
			} else if ((ck & 0xff) == T_NBD_CMD_WRITE) {
				st->writes++;
			} else {
				st->others++;
			}
			st->bytes += comp[i].buf.len;
			npt_host_buf_free(c, &comp[i].buf);
		}
		if (r > 0) {
			done += (uint64_t)r;
			inflight -= (unsigned)r;
			work = true;
			if (o->pause_max_us && t_rand(&rnd) % 2) {
				struct timespec ts = { 0, (long)(t_rand(&rnd) % o->pause_max_us) * 1000 };

				nanosleep(&ts, NULL);
			}
		}
		if (work) {
			npt_backoff_reset(&b);
		} else {
			r = idle(c, &b);
			if (r)
				goto out;
		}
	}
	r = 0;
out:
	st->requests += done;
	count_notifies(c);
	return r;
}

int traffic_ep_serve(struct npt_chan *c, volatile int *stop, struct traffic_stats *st)
{
	struct npt_ereq *reqs, batch[32];
	struct npt_backoff b;
	uint32_t tags[32];
	char buf[8];
	size_t got = 0;
	ssize_t n;
	int r = 0;

	reqs = calloc(NPT_MAX_RING_ENTRIES, sizeof(*reqs));
	if (!reqs)
		return -ENOMEM;
	npt_backoff_reset(&b);
	/* handshake stand-in */
	while (got < 5) {
		if (stopped(stop))
			goto out;
		n = npt_chan_recv(c, buf + got, 5 - got);
		if (n == -EAGAIN) {
			r = idle(c, &b);
			if (r)
				goto out;
			continue;
		}
		if (n <= 0) {
			r = n ? (int)n : -ECONNRESET;
			goto out;
		}
		got += (size_t)n;
	}
	if (memcmp(buf, "HELLO", 5) || npt_chan_send(c, "OK", 2) != 2) {
		r = -EPROTO;
		goto out;
	}
	r = npt_chan_begin_frames(c);
	if (r)
		goto out;
	while (!stopped(stop)) {
		bool work = false;
		uint8_t rep[16];
		int n_take, n_fetched;

		n_take = npt_ep_take(c, batch, 32);
		if (n_take < 0) {
			r = n_take;
			break;
		}
		for (int i = 0; i < n_take; i++) {
			struct npt_ereq *q = &reqs[batch[i].tag];
			uint16_t type = get_be16(batch[i].hdr + 6);

			*q = batch[i];
			if (type == T_NBD_CMD_WRITE) {
				r = npt_ep_fetch(c, q);
				if (r)
					goto out;
				continue;
			}
			t_make_reply(rep, q->hdr, 0);
			if (type == T_NBD_CMD_READ) {
				traffic_fill(q->local, q->len, data_seed(get_be64(q->hdr + 8)));
				st->reads++;
				st->bytes += q->len;
			} else {
				st->others++;
			}
			r = npt_ep_complete(c, q, rep, type == T_NBD_CMD_READ ? q->len : 0);
			if (r)
				goto out;
			st->requests++;
		}
		work = n_take > 0;
		n_fetched = npt_ep_fetched(c, tags, 32);
		for (int i = 0; i < n_fetched; i++) {
			struct npt_ereq *q = &reqs[tags[i]];

			if (!traffic_check(q->local, q->len, data_seed(get_be64(q->hdr + 8))))
				st->bad_data++;
			st->writes++;
			st->bytes += q->len;
			t_make_reply(rep, q->hdr, 0);
			r = npt_ep_complete(c, q, rep, 0);
			if (r)
				goto out;
			st->requests++;
			work = true;
		}
		if (npt_ep_progress(c) > 0)
			work = true;
		if (work) {
			npt_backoff_reset(&b);
		} else {
			r = idle(c, &b);
			if (r)
				break;
		}
	}
	if (r == -ECONNRESET && strstr(npt_chan_error(c), "host closed the channel"))
		r = 0;    /* the host closed the channel: the normal end */
out:
	count_notifies(c);
	if (r && getenv("NPT_TRAFFIC_VERBOSE"))
		fprintf(stderr, "traffic ep: channel %u ends: %s (%s)\n", npt_chan_index(c),
			strerror(-r), npt_chan_error(c));
	free(reqs);
	return r;
}

struct serve_thread {
	pthread_t th;
	struct npt_chan *c;
	volatile int *stop;
	struct traffic_stats st;
	int result;
	volatile int finished;
};

static void *serve_main(void *arg)
{
	struct serve_thread *t = arg;

	t->result = traffic_ep_serve(t->c, t->stop, &t->st);
	npt_chan_close(t->c);
	__atomic_store_n(&t->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void reap_threads(struct serve_thread **ths, unsigned *n, struct traffic_stats *st,
			 int *errors, bool all)
{
	for (unsigned i = 0; i < *n;) {
		struct serve_thread *t = ths[i];

		if (!all && !__atomic_load_n(&t->finished, __ATOMIC_ACQUIRE)) {
			i++;
			continue;
		}
		pthread_join(t->th, NULL);
		st->requests += t->st.requests;
		st->reads += t->st.reads;
		st->writes += t->st.writes;
		st->others += t->st.others;
		st->bytes += t->st.bytes;
		st->bad_data += t->st.bad_data;
		if (t->result && t->result != -ECONNRESET)
			(*errors)++;
		free(t);
		ths[i] = ths[--*n];
	}
}

int traffic_ep_loop(struct npt_link *l, volatile int *stop, bool exit_on_detach,
		    struct traffic_stats *st)
{
	struct serve_thread *ths[NPT_MAX_CHANNELS * 4];
	struct npt_backoff b;
	unsigned n = 0;
	bool attached = false;
	int errors = 0;

	npt_backoff_reset(&b);
	while (!stopped(stop)) {
		struct npt_chan *c;
		int r = npt_chan_accept(l, &c);

		reap_threads(ths, &n, st, &errors, false);
		if (r == 0) {
			struct serve_thread *t = calloc(1, sizeof(*t));

			if (!t || n == sizeof(ths) / sizeof(ths[0])) {
				free(t);
				npt_chan_close(c);
				continue;
			}
			t->c = c;
			t->stop = stop;
			pthread_create(&t->th, NULL, serve_main, t);
			ths[n++] = t;
			npt_backoff_reset(&b);
			continue;
		}
		if (npt_link_check(l) == 0) {
			attached = true;
		} else if (attached && exit_on_detach && n == 0) {
			break;
		}
		/* accept is a slow path: poll it every millisecond at most */
		t_sleep_ms(1);
	}
	if (stop)
		__atomic_store_n(stop, 1, __ATOMIC_RELAXED);
	reap_threads(ths, &n, st, &errors, true);
	return errors ? -EIO : 0;
}

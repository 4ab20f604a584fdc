/* bench/transport: round-trip latency and throughput of the shm link with the
 * emulated DMA engine, next to this machine's floors measured in the same
 * run (cross-core shared-memory ping-pong, streaming memcpy bandwidth).
 * The EP runs in a forked child pinned to one CPU, the host in the parent
 * pinned to another. Payloads are not touched by the host (the transport's
 * cost only); READ requests move payload EP -> host (one DMA copy each).
 * A benchmark, not a test: it prints numbers and never fails on speed. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <common/endian.h>
#include <nbdpcie/transport.h>

#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_REPLY_MAGIC   0x67446698u

static double g_secs = 0.4;          /* per measurement point */
static int g_cpu_host = 0, g_cpu_ep = 1;
/* Shared with the forked EP: set by the host once it is done, so that the
 * EP reports a channel that fails only when the host did not end it. */
static int *g_host_done;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ---- floors ---------------------------------------------------------------- */

struct pp { _Alignas(64) volatile uint64_t ping; _Alignas(64) volatile uint64_t pong; };

static void *pong_main(void *arg)
{
	struct pp *p = arg;
	uint64_t seen = 0;

	pin(g_cpu_ep);
	for (;;) {
		uint64_t v;

		while ((v = __atomic_load_n(&p->ping, __ATOMIC_ACQUIRE)) == seen)
			;
		if (v == UINT64_MAX)
			return NULL;
		seen = v;
		__atomic_store_n(&p->pong, v, __ATOMIC_RELEASE);
	}
}

static double floor_pingpong_ns(void)
{
	enum { N = 200000 };
	struct pp *p = aligned_alloc(64, sizeof(*p));
	uint64_t *s = malloc(N * sizeof(*s)), t;
	pthread_t th;
	double med;

	memset(p, 0, sizeof(*p));
	pthread_create(&th, NULL, pong_main, p);
	pin(g_cpu_host);
	for (uint64_t i = 1; i <= N; i++) {
		t = now_ns();
		__atomic_store_n(&p->ping, i, __ATOMIC_RELEASE);
		while (__atomic_load_n(&p->pong, __ATOMIC_ACQUIRE) != i)
			;
		s[i - 1] = now_ns() - t;
	}
	__atomic_store_n(&p->ping, UINT64_MAX, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	qsort(s, N, sizeof(*s), cmp_u64);
	med = (double)s[N / 2];
	free(s);
	free(p);
	return med;
}

static double floor_memcpy_gbs(void)
{
	size_t len = 64 << 20;    /* well beyond the caches: streaming */
	uint8_t *a = malloc(len), *b = malloc(len);
	double best = 0;

	memset(a, 1, len);
	memset(b, 2, len);
	for (int rep = 0; rep < 5; rep++) {
		uint64_t t = now_ns();

		for (size_t off = 0; off < len; off += 1 << 20)
			memcpy(b + off, a + off, 1 << 20);
		double gbs = (double)len / (double)(now_ns() - t);

		if (gbs > best)
			best = gbs;
	}
	free(a);
	free(b);
	return best;     /* bytes per ns = GB/s */
}

/* ---- EP child ---------------------------------------------------------------- */

static int ep_main(const char *spec, const struct npt_link_params *p)
{
	struct npt_ereq reqs[1024], batch[64];
	struct npt_backoff b;
	struct npt_link *l;
	struct npt_chan *c = NULL;
	uint32_t tags[64];
	char err[512];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	pin(g_cpu_ep);
	if (npt_link_open(spec, NPT_ROLE_EP, p, &l, err, sizeof(err))) {
		fprintf(stderr, "bench ep: %s\n", err);
		return 1;
	}
	while (npt_chan_accept(l, &c) == -EAGAIN)
		usleep(1000);
	npt_chan_begin_frames(c);
	npt_backoff_reset(&b);
	for (;;) {
		int n = npt_ep_take(c, batch, 64), work = n;

		if (n < 0) {
			/* the host sees only "EP closed the link": say why here */
			if (!__atomic_load_n(g_host_done, __ATOMIC_ACQUIRE))
				fprintf(stderr, "bench ep: channel %u failed: %s (link: %s)\n",
					npt_chan_index(c), strerror(-n), npt_link_error(l));
			break;
		}
		for (int i = 0; i < n; i++) {
			uint8_t rep[16];
			struct npt_ereq *q = &reqs[batch[i].tag];
			uint16_t type = get_be16(batch[i].hdr + 6);

			*q = batch[i];
			if (type == 1) {
				npt_ep_fetch(c, q);
				continue;
			}
			put_be32(rep, NBD_REPLY_MAGIC);
			put_be32(rep + 4, 0);
			memcpy(rep + 8, q->hdr + 8, 8);
			npt_ep_complete(c, q, rep, type == 0 ? q->len : 0);
		}
		n = npt_ep_fetched(c, tags, 64);
		for (int i = 0; i < n; i++) {
			uint8_t rep[16];

			put_be32(rep, NBD_REPLY_MAGIC);
			put_be32(rep + 4, 0);
			memcpy(rep + 8, reqs[tags[i]].hdr + 8, 8);
			npt_ep_complete(c, &reqs[tags[i]], rep, 0);
		}
		work += n + npt_ep_progress(c);
		if (work) {
			npt_backoff_reset(&b);
		} else {
			unsigned us = npt_backoff_next_us(&b);

			if (us)
				usleep(us);
		}
	}
	npt_chan_close(c);
	npt_link_close(l);
	return 0;
}

/* ---- host measurements ------------------------------------------------------- */

struct point { double med_ns, p99_ns, ops, gbs; };

/* Runs READs (type 0) or WRITEs (1) of len bytes at queue depth qd for
 * g_secs; per-request latencies from submit to reap. */
static int measure(struct npt_chan *c, uint16_t type, uint32_t len, unsigned qd, struct point *pt)
{
	enum { MAXS = 1 << 22 };
	static uint64_t lat[MAXS], start[1024];
	struct npt_hbuf bufs[1024];
	struct npt_hcomp comp[64];
	uint64_t cookie = 0, done = 0, t0, tend, nsamp = 0;
	unsigned inflight = 0;
	int r;

	for (unsigned i = 0; i < qd; i++) {
		r = npt_host_buf_alloc(c, len, &bufs[i]);
		if (r) {
			fprintf(stderr, "bench: buffer %u of %u bytes: %s\n", i, len, strerror(-r));
			return r;
		}
	}
	t0 = now_ns();
	tend = t0 + (uint64_t)(g_secs * 1e9);
	for (;;) {
		uint64_t t = now_ns();

		if (t < tend) {
			while (inflight < qd) {
				uint8_t req[28];
				unsigned slot = (unsigned)(cookie % qd);

				put_be32(req, NBD_REQUEST_MAGIC);
				put_be16(req + 4, 0);
				put_be16(req + 6, type);
				put_be64(req + 8, cookie);
				put_be64(req + 16, 0);
				put_be32(req + 24, len);
				/* cookie % qd picks a buffer that is free: completions of
				 * one slot come back before the slot is reused */
				r = npt_host_submit(c, req, &bufs[slot]);
				if (r)
					return r;
				start[slot] = t;
				cookie++;
				inflight++;
			}
		} else if (!inflight) {
			break;
		}
		r = npt_host_reap(c, comp, 64);
		if (r < 0)
			return r;
		if (r > 0) {
			uint64_t tr = now_ns();

			for (int i = 0; i < r; i++) {
				uint64_t ck = get_be64(comp[i].reply + 8);

				if (nsamp < MAXS)
					lat[nsamp++] = tr - start[ck % qd];
			}
			inflight -= (unsigned)r;
			done += (uint64_t)r;
		}
	}
	tend = now_ns();
	for (unsigned i = 0; i < qd; i++)
		npt_host_buf_free(c, &bufs[i]);
	qsort(lat, nsamp, sizeof(lat[0]), cmp_u64);
	pt->med_ns = (double)lat[nsamp / 2];
	pt->p99_ns = (double)lat[nsamp * 99 / 100];
	pt->ops = (double)done / ((double)(tend - t0) / 1e9);
	pt->gbs = pt->ops * len / 1e9;
	return 0;
}

int main(int argc, char **argv)
{
	static const uint32_t sizes[] = { 0, 4096, 65536, 1 << 20 };
	static const unsigned qds[] = { 1, 2, 4, 8, 16, 32, 64 };
	struct npt_link_params p = { .nchannels = 1, .ring_entries = 64, .max_xfer = 1 << 20,
				     .data_per_chan = 72 << 20, .connect_timeout_ms = 5000 };
	char path[128], spec[256], err[512], opts[128] = "";
	double pp, mbw;
	struct npt_link *l;
	struct npt_chan *c;
	bool writes = false;
	int ch, status, rc = 0;
	pid_t pid;

	long only_size = -1, only_qd = -1;

	while ((ch = getopt(argc, argv, "t:wo:s:q:h")) != -1) {
		switch (ch) {
		case 's': only_size = atol(optarg); break;
		case 'q': only_qd = atol(optarg); break;
		case 't': g_secs = atof(optarg); break;
		case 'w': writes = true; break;
		case 'o': snprintf(opts, sizeof(opts), ",%s", optarg); break;
		default:
			fprintf(stderr, "usage: bench-transport [-t SECONDS_PER_POINT] [-w (WRITEs)] [-s PAYLOAD] [-q QD]\n"
					"                       [-o dma_gbps=X,dma_lat_us=Y]\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	pp = floor_pingpong_ns();
	mbw = floor_memcpy_gbs();
	printf("floor: cross-core ping-pong round trip %.0f ns (median), streaming memcpy %.2f GB/s\n", pp, mbw);

	snprintf(path, sizeof(path), "/dev/shm/npt-bench-%d", (int)getpid());
	snprintf(spec, sizeof(spec), "shm:%s%s", path, opts);
	g_host_done = mmap(NULL, sizeof(*g_host_done), PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g_host_done == MAP_FAILED) {
		fprintf(stderr, "bench: mmap: %s\n", strerror(errno));
		return 1;
	}
	*g_host_done = 0;
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(ep_main(spec, &p));
	pin(g_cpu_host);
	if (npt_link_open(spec, NPT_ROLE_HOST, &p, &l, err, sizeof(err))) {
		fprintf(stderr, "bench: %s\n", err);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		unlink(path);
		return 1;
	}
	npt_chan_open(l, 0, &c);
	npt_chan_begin_frames(c);
	printf("link: %s, %s, %.2f s per point\n", npt_link_describe(l), writes ? "WRITE" : "READ", g_secs);
	printf("%8s %4s %10s %10s %12s %10s %12s %12s\n", "payload", "qd", "median_us", "p99_us",
	       "ops/s", "GB/s", "rt/pingpong", "bw/memcpy");
	for (unsigned si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		for (unsigned qi = 0; qi < sizeof(qds) / sizeof(qds[0]); qi++) {
			struct point pt;
			int r;

			if ((uint64_t)sizes[si] * qds[qi] > p.data_per_chan ||
			    (only_size >= 0 && sizes[si] != (uint32_t)only_size) ||
			    (only_qd >= 0 && qds[qi] != (unsigned)only_qd))
				continue;
			r = measure(c, writes ? 1 : 0, sizes[si], qds[qi], &pt);
			if (r) {
				fprintf(stderr, "bench: %s: %s\n", strerror(-r), npt_chan_error(c));
				rc = 1;
				goto out;
			}
			printf("%8u %4u %10.2f %10.2f %12.0f %10.2f %12.1f %12.2f\n", sizes[si], qds[qi],
			       pt.med_ns / 1000, pt.p99_ns / 1000, pt.ops, pt.gbs, pt.med_ns / pp,
			       pt.gbs / mbw);
			fflush(stdout);
		}
	}
out:
	__atomic_store_n(g_host_done, 1, __ATOMIC_RELEASE);
	npt_chan_close(c);
	npt_link_close(l);
	waitpid(pid, &status, 0);
	return rc;
}

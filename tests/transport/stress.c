/* Two-process stress test of the shm link: the EP runs in a forked child,
 * the host in the parent, one thread per channel on each side. Random
 * request kinds, sizes (0..max payload) and queue depths; every payload byte
 * is verified on the receiving side. Exit 0 only if every request completed
 * with the right cookie and data. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "traffic.h"

struct opts {
	uint64_t requests, seed;
	unsigned channels, ring, qd;
	uint32_t max_len;
	bool bar_only;
	bool sleep;              /* idle sides sleep on doorbells (must have them) */
	unsigned pause_us;       /* host pauses up to this after replies */
};

/* Doorbell accounting of one side: every sleep ended by a ring, none by the
 * test's 5 s timeout (a lost wake-up), and sleeps did happen. */
static int check_wait(const char *side, const struct opts *o)
{
	const struct traffic_wait *w = &traffic_wait;

	if (!o->sleep)
		return 0;
	printf("stress %s: %llu sleeps, %llu woken by a doorbell, %llu timed out, %llu doorbells rung\n",
	       side, (unsigned long long)w->sleeps, (unsigned long long)w->wakes,
	       (unsigned long long)w->timeouts, (unsigned long long)w->notifies);
	if (w->timeouts || !w->sleeps || !w->notifies) {
		fprintf(stderr, "stress %s: FAILED: %llu lost wake-ups, %llu sleeps, %llu doorbells "
			"(want 0 lost, > 0 sleeps and doorbells)\n", side,
			(unsigned long long)w->timeouts, (unsigned long long)w->sleeps,
			(unsigned long long)w->notifies);
		return 1;
	}
	return 0;
}

static void set_wait(const struct opts *o)
{
	traffic_wait.sleep = o->sleep;
	traffic_wait.require = o->sleep;
	traffic_wait.timeout_ms = 5000;
}

struct host_thread {
	pthread_t th;
	struct npt_link *l;
	int idx;
	struct traffic_opts to;
	struct traffic_stats st;
	int result;
	char err[256];
};

static void *host_main(void *arg)
{
	struct host_thread *t = arg;
	struct npt_chan *c;

	t->result = npt_chan_open(t->l, t->idx, &c);
	if (t->result) {
		snprintf(t->err, sizeof(t->err), "open channel %d: %s", t->idx, strerror(-t->result));
		return NULL;
	}
	t->result = traffic_host_handshake(c, 5000);
	if (!t->result)
		t->result = traffic_host_run(c, &t->to, &t->st);
	if (t->result)
		snprintf(t->err, sizeof(t->err), "channel %d: %s (%s)", t->idx, strerror(-t->result),
			 npt_chan_error(c));
	npt_chan_close(c);
	return NULL;
}

static struct npt_link_params params(const struct opts *o)
{
	return (struct npt_link_params){
		.nchannels = o->channels, .ring_entries = o->ring, .max_xfer = o->max_len,
		.data_per_chan = 4u << 20 > o->max_len * 2 ? 4u << 20 : o->max_len * 2,
		.connect_timeout_ms = 10000, .bar_only = o->bar_only,
	};
}

static int run_ep(const char *spec, const struct opts *o)
{
	struct npt_link_params p = params(o);
	struct traffic_stats st = { 0 };
	struct npt_link *l;
	char err[512];
	int r;

	r = npt_link_open(spec, NPT_ROLE_EP, &p, &l, err, sizeof(err));
	if (r) {
		fprintf(stderr, "stress ep: %s\n", err);
		return 1;
	}
	set_wait(o);
	r = traffic_ep_loop(l, NULL, true, &st);
	npt_link_close(l);
	printf("stress ep: %llu requests (%llu reads, %llu writes, %llu other), %llu bytes, %llu bad payloads\n",
	       (unsigned long long)st.requests, (unsigned long long)st.reads,
	       (unsigned long long)st.writes, (unsigned long long)st.others,
	       (unsigned long long)st.bytes, (unsigned long long)st.bad_data);
	if (r || st.bad_data || st.requests != o->requests) {
		fprintf(stderr, "stress ep: FAILED: result %d, %llu bad payloads, %llu of %llu requests\n",
			r, (unsigned long long)st.bad_data, (unsigned long long)st.requests,
			(unsigned long long)o->requests);
		return 1;
	}
	return check_wait("ep", o);
}

static int run_host(const char *spec, const struct opts *o)
{
	struct npt_link_params p = params(o);
	struct host_thread *ths = calloc(o->channels, sizeof(*ths));
	struct traffic_stats sum = { 0 };
	struct npt_link *l;
	char err[512];
	uint64_t t0;
	int r, bad = 0;

	r = npt_link_open(spec, NPT_ROLE_HOST, &p, &l, err, sizeof(err));
	if (r) {
		fprintf(stderr, "stress host: %s\n", err);
		return 1;
	}
	printf("stress host: %s, %llu requests, payload 0..%u bytes, queue depth 1..%u\n",
	       npt_link_describe(l), (unsigned long long)o->requests, o->max_len, o->qd);
	set_wait(o);
	t0 = t_now_ms();
	for (unsigned i = 0; i < o->channels; i++) {
		ths[i].l = l;
		ths[i].idx = (int)i;
		ths[i].to.requests = o->requests / o->channels + (i < o->requests % o->channels);
		ths[i].to.seed = o->seed + i;
		ths[i].to.max_len = o->max_len;
		ths[i].to.max_qd = o->qd;
		ths[i].to.pause_max_us = o->pause_us;
		pthread_create(&ths[i].th, NULL, host_main, &ths[i]);
	}
	for (unsigned i = 0; i < o->channels; i++) {
		pthread_join(ths[i].th, NULL);
		if (ths[i].result) {
			fprintf(stderr, "stress host: %s\n", ths[i].err);
			bad++;
		}
		sum.requests += ths[i].st.requests;
		sum.reads += ths[i].st.reads;
		sum.writes += ths[i].st.writes;
		sum.others += ths[i].st.others;
		sum.bytes += ths[i].st.bytes;
		sum.bad_data += ths[i].st.bad_data;
		sum.bad_replies += ths[i].st.bad_replies;
	}
	npt_link_close(l);
	free(ths);
	printf("stress host: %llu requests (%llu reads, %llu writes, %llu other), %llu bytes in %llu ms, "
	       "%llu bad payloads, %llu bad replies\n",
	       (unsigned long long)sum.requests, (unsigned long long)sum.reads,
	       (unsigned long long)sum.writes, (unsigned long long)sum.others,
	       (unsigned long long)sum.bytes, (unsigned long long)(t_now_ms() - t0),
	       (unsigned long long)sum.bad_data, (unsigned long long)sum.bad_replies);
	if (bad || sum.bad_data || sum.bad_replies || sum.requests != o->requests)
		return 1;
	return check_wait("host", o);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: npt-stress [--requests N] [--channels C] [--ring N] [--qd N] [--max-len BYTES]\n"
		   "                  [--seed S] [--bar-only] [--sleep] [--pause-us N]\n"
		   "Forks an EP child and runs random verified NBD traffic over shm:/dev/shm/npt-stress-PID.\n"
		   "--sleep: idle sides sleep on the channels' doorbells, and the run fails if one is\n"
		   "missing, if no side slept or if a sleep was not ended by a doorbell (a lost wake-up).\n"
		   "--pause-us N: the host pauses 0..N us after half of its reaps (the EP falls asleep).\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "requests", required_argument, 0, 'n' }, { "channels", required_argument, 0, 'c' },
		{ "ring", required_argument, 0, 'r' }, { "qd", required_argument, 0, 'q' },
		{ "max-len", required_argument, 0, 'm' }, { "seed", required_argument, 0, 's' },
		{ "bar-only", no_argument, 0, 'b' }, { "sleep", no_argument, 0, 'S' },
		{ "pause-us", required_argument, 0, 'p' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
	};
	struct opts o = { .requests = 1000000, .seed = 1, .channels = 2, .ring = 128, .qd = 64,
			  .max_len = 128 << 10 };
	char path[128], spec[160];
	int ch, status = 0, hr;
	pid_t pid;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'n': o.requests = strtoull(optarg, NULL, 0); break;
		case 'c': o.channels = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'r': o.ring = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'q': o.qd = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'm': o.max_len = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 's': o.seed = strtoull(optarg, NULL, 0); break;
		case 'b': o.bar_only = true; break;
		case 'S': o.sleep = true; break;
		case 'p': o.pause_us = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!o.channels || o.qd > o.ring || !o.qd) {
		fprintf(stderr, "npt-stress: --qd %u must be in 1..--ring %u, --channels >= 1\n", o.qd, o.ring);
		return 2;
	}
	snprintf(path, sizeof(path), "/dev/shm/npt-stress-%d", (int)getpid());
	snprintf(spec, sizeof(spec), "shm:%s", path);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return perror("fork"), 1;
	if (pid == 0)
		{ int rc = run_ep(spec, &o); fflush(stdout); _exit(rc); }
	hr = run_host(spec, &o);
	if (hr) {
		kill(pid, SIGKILL);
	}
	waitpid(pid, &status, 0);
	/* after a failure nobody closed cleanly: remove what is left */
	unlink(path);
	strcat(path, ".win");
	unlink(path);
	strcpy(path + strlen(path) - 4, ".hosts");
	unlink(path);
	if (hr || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "npt-stress: FAILED (host %d, EP status 0x%x)\n", hr, status);
		return 1;
	}
	printf("npt-stress: OK\n");
	return 0;
}

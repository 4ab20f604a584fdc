/* Fault tests of the shm link, one scenario per invocation:
 *   ep-killed      kill -9 the EP mid-traffic: the host notices within the
 *                  spec's bound, reports it, frees everything, reattaches to
 *                  a new EP
 *   host-killed    kill -9 the host mid-traffic: the EP notices within the
 *                  bound, drops the channels, serves the next host
 *   scribble-host  a host that writes random bytes over the BAR and window:
 *                  the EP neither crashes nor hangs and serves the next host
 *   scribble-ep    an EP that writes random bytes over the BAR and window:
 *                  the host neither crashes nor hangs; the link goes down
 *   two-hosts      two host processes share one link (one channel each)
 * Children die with the parent (PR_SET_PDEATHSIG); files are removed on exit. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "helpers.h"
#include "traffic.h"

/* Detection bound the spec promises (docs/transport.md "Peer death"):
 * NPT_PEER_DEAD_MS plus one heartbeat-thread period plus scheduling slack
 * on a loaded 2-core machine. */
#define DETECT_LIMIT_MS (NPT_PEER_DEAD_MS + NPT_HEARTBEAT_MS + 400)
#define SCRIBBLE_MS 1000

static char g_path[128], g_spec[160];
static const struct npt_link_params g_params = {
	.nchannels = 2, .ring_entries = 64, .max_xfer = 64 << 10, .data_per_chan = 2 << 20,
	.connect_timeout_ms = 5000,
};

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "fault: FAILED %s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); cleanup(); exit(1); } } while (0)

static pid_t g_children[8];
static unsigned g_nchildren;

static void cleanup(void)
{
	char win[160];

	for (unsigned i = 0; i < g_nchildren; i++)
		if (g_children[i] > 0) {
			kill(g_children[i], SIGKILL);
			waitpid(g_children[i], NULL, 0);
		}
	g_nchildren = 0;
	unlink(g_path);
	snprintf(win, sizeof(win), "%s.win", g_path);
	unlink(win);
	snprintf(win, sizeof(win), "%s.hosts", g_path);
	unlink(win);
}

static void child_init(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(1);
}

static void scribble(uint8_t *p, uint64_t len, uint64_t *rnd)
{
	uint64_t t0 = t_now_ms();

	while (t_now_ms() - t0 < SCRIBBLE_MS) {
		for (int i = 0; i < 1000; i++) {
			uint64_t x = t_rand(rnd);

			p[x % len] = (uint8_t)(x >> 56);
		}
		t_sleep_ms(1);
	}
}

/* ---- children ------------------------------------------------------------ */

struct ep_thread { pthread_t th; struct npt_link *l; volatile int stop; struct traffic_stats st; int r; };

static void *ep_loop_main(void *arg)
{
	struct ep_thread *t = arg;

	t->r = traffic_ep_loop(t->l, &t->stop, false, &t->st);
	return NULL;
}

/* Children are this program again (fork + exec), so that they never
 * inherit the state of the parent's threads (locks held at fork time). */
static pid_t spawn(const char *role, const char *a, const char *b)
{
	pid_t pid = fork();

	if (pid)
		return g_children[g_nchildren++] = pid;
	child_init();
	execl("/proc/self/exe", "npt-fault", role, g_path, a, b, (char *)NULL);
	_exit(127);
}

static pid_t spawn_ep(bool scribbler)
{
	return spawn("child-ep", scribbler ? "1" : "0", "0");
}

static pid_t spawn_host(uint64_t requests, bool scribbler)
{
	char n[32];

	snprintf(n, sizeof(n), "%llu", (unsigned long long)requests);
	return spawn("child-host", scribbler ? "1" : "0", n);
}

static int child_ep(bool scribbler)
{
	{
		struct ep_thread t = { 0 };
		char err[512];
		uint64_t rnd = (uint64_t)getpid() * 7919;

		if (npt_link_open(g_spec, NPT_ROLE_EP, &g_params, &t.l, err, sizeof(err))) {
			fprintf(stderr, "fault ep: %s\n", err);
			_exit(1);
		}
		pthread_create(&t.th, NULL, ep_loop_main, &t);
		if (!scribbler)
			for (;;)
				pause();
		while (npt_link_check(t.l) != 0)
			t_sleep_ms(5);
		t_sleep_ms(300);
		scribble(npt_test_bar(t.l), t.l->bar_size, &rnd);
		if (t.l->win)
			scribble(t.l->win->base, t.l->win->size, &rnd);
		_exit(0);   /* no clean close: the host must find out by itself */
	}
}

static int child_host(uint64_t requests, bool scribbler)
{
	{
		struct traffic_opts o = { .requests = requests, .seed = (uint64_t)getpid(),
					  .max_len = 64 << 10, .max_qd = 32 };
		struct traffic_stats st = { 0 };
		struct npt_link *l;
		struct npt_chan *c;
		char err[512];
		uint64_t rnd = (uint64_t)getpid() * 104729;
		int r;

		if (npt_link_open(g_spec, NPT_ROLE_HOST, &g_params, &l, err, sizeof(err))) {
			fprintf(stderr, "fault host: %s\n", err);
			_exit(1);
		}
		r = npt_chan_open(l, -1, &c);
		if (!r)
			r = traffic_host_handshake(c, 5000);
		if (scribbler) {
			if (!r)
				traffic_host_run(c, &(struct traffic_opts){ .requests = 2000, .seed = 1,
						 .max_len = 64 << 10, .max_qd = 16 }, &st);
			scribble(npt_test_bar(l), l->bar_size, &rnd);
			if (l->win)
				scribble(l->win->base, l->win->size, &rnd);
			_exit(0);
		}
		if (!r)
			r = traffic_host_run(c, &o, &st);
		if (r || st.bad_data || st.bad_replies || st.requests != requests) {
			fprintf(stderr, "fault host: %s (%s): %llu of %llu requests, %llu bad payloads\n",
				strerror(-r), npt_chan_error(c), (unsigned long long)st.requests,
				(unsigned long long)requests, (unsigned long long)st.bad_data);
			_exit(1);
		}
		npt_chan_close(c);
		npt_link_close(l);
		_exit(0);
	}
}

static void wait_child_ok(pid_t pid, const char *what)
{
	int status = 0;

	CHECK(waitpid(pid, &status, 0) == pid, "waitpid %s", what);
	for (unsigned i = 0; i < g_nchildren; i++)
		if (g_children[i] == pid)
			g_children[i] = 0;
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s exited with status 0x%x", what, status);
}

static void kill_child(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	for (unsigned i = 0; i < g_nchildren; i++)
		if (g_children[i] == pid)
			g_children[i] = 0;
}

/* ---- host-side scenarios --------------------------------------------------- */

struct host_thread { pthread_t th; struct npt_chan *c; volatile int stop; struct traffic_stats st; int r; };

static void *host_traffic_main(void *arg)
{
	struct host_thread *t = arg;
	struct traffic_opts o = { .requests = UINT64_MAX, .seed = 5, .max_len = 64 << 10,
				  .max_qd = 32, .stop = &t->stop };

	t->r = traffic_host_run(t->c, &o, &t->st);
	return NULL;
}

static struct npt_link *host_open(void)
{
	struct npt_link *l;
	char err[512];

	CHECK(npt_link_open(g_spec, NPT_ROLE_HOST, &g_params, &l, err, sizeof(err)) == 0,
	      "host open: %s", err);
	return l;
}

static int scenario_ep_killed(void)
{
	struct host_thread t = { 0 };
	struct npt_link *l;
	pid_t ep = spawn_ep(false);
	uint64_t t_kill, t_seen;
	char err[NPT_ERRLEN];

	l = host_open();
	CHECK(npt_chan_open(l, -1, &t.c) == 0, "channel open");
	CHECK(traffic_host_handshake(t.c, 5000) == 0, "handshake: %s", npt_chan_error(t.c));
	pthread_create(&t.th, NULL, host_traffic_main, &t);
	t_sleep_ms(300);
	kill(ep, SIGKILL);
	t_kill = t_now_ms();
	while (npt_link_check(l) == 0 && t_now_ms() - t_kill < 5000)
		t_sleep_ms(5);
	t_seen = t_now_ms();
	snprintf(err, sizeof(err), "%s", npt_link_error(l));
	pthread_join(t.th, NULL);
	printf("fault: EP killed after %llu requests; host saw it after %llu ms: %s\n",
	       (unsigned long long)t.st.requests, (unsigned long long)(t_seen - t_kill), err);
	CHECK(t.st.requests > 0, "no traffic before the kill");
	CHECK(t.st.bad_data == 0 && t.st.bad_replies == 0, "bad data before the kill");
	CHECK(npt_link_check(l) == -ECONNRESET, "link check %d", npt_link_check(l));
	CHECK(t_seen - t_kill <= DETECT_LIMIT_MS, "detected after %llu ms, limit %d ms",
	      (unsigned long long)(t_seen - t_kill), DETECT_LIMIT_MS);
	CHECK(strstr(err, "no heartbeat for") && strstr(err, "limit 1000 ms"), "message: %s", err);
	CHECK(t.r == -ECONNRESET, "traffic ended with %d (%s)", t.r, npt_chan_error(t.c));
	CHECK(strstr(npt_chan_error(t.c), "no heartbeat"), "channel message: %s", npt_chan_error(t.c));
	CHECK(npt_chan_open(l, -1, &(struct npt_chan *){0}) == -ECONNRESET, "open on a dead link");
	npt_chan_close(t.c);
	npt_link_close(l);
	kill_child(ep);

	/* a new EP on the same BAR file: the host reattaches and traffic flows */
	ep = spawn_ep(false);
	l = host_open();
	memset(&t, 0, sizeof(t));
	CHECK(npt_chan_open(l, -1, &t.c) == 0, "channel open after restart");
	CHECK(traffic_host_handshake(t.c, 5000) == 0, "handshake after restart: %s", npt_chan_error(t.c));
	CHECK(traffic_host_run(t.c, &(struct traffic_opts){ .requests = 20000, .seed = 9,
			       .max_len = 64 << 10, .max_qd = 32 }, &t.st) == 0,
	      "traffic after restart: %s", npt_chan_error(t.c));
	CHECK(t.st.requests == 20000 && t.st.bad_data == 0 && t.st.bad_replies == 0,
	      "after restart: %llu requests, %llu bad", (unsigned long long)t.st.requests,
	      (unsigned long long)t.st.bad_data);
	npt_chan_close(t.c);
	npt_link_close(l);
	kill_child(ep);
	printf("fault: reattached to the restarted EP, 20000 requests verified\n");
	return 0;
}

static int scenario_scribble_ep(void)
{
	struct host_thread t = { 0 };
	struct npt_link *l;
	pid_t ep = spawn_ep(true);
	uint64_t t0;

	l = host_open();
	CHECK(npt_chan_open(l, -1, &t.c) == 0, "channel open");
	CHECK(traffic_host_handshake(t.c, 5000) == 0, "handshake: %s", npt_chan_error(t.c));
	pthread_create(&t.th, NULL, host_traffic_main, &t);
	t0 = t_now_ms();
	/* the traffic ends by itself: a violation, or the link going down */
	while (npt_link_check(l) == 0 && npt_chan_status(t.c) == 0 &&
	       t_now_ms() - t0 < 300 + 2 * SCRIBBLE_MS + DETECT_LIMIT_MS + 1000)
		t_sleep_ms(10);
	wait_child_ok(ep, "scribbling EP");
	while (npt_link_check(l) == 0 && t_now_ms() - t0 < 300 + 2 * SCRIBBLE_MS + 2 * DETECT_LIMIT_MS)
		t_sleep_ms(10);
	__atomic_store_n(&t.stop, 1, __ATOMIC_RELAXED);
	pthread_join(t.th, NULL);
	printf("fault: scribbling EP: host link %d after %llu ms (%s); channel: %s\n",
	       npt_link_check(l), (unsigned long long)(t_now_ms() - t0), npt_link_error(l),
	       npt_chan_error(t.c));
	CHECK(npt_link_check(l) != 0, "host link still up after the EP died");
	CHECK(t.r != 0, "traffic did not notice anything");
	npt_chan_close(t.c);
	npt_link_close(l);
	return 0;
}

/* ---- EP-side scenarios ----------------------------------------------------- */

static struct ep_thread *ep_start(void)
{
	struct ep_thread *t = calloc(1, sizeof(*t));
	char err[512];

	CHECK(npt_link_open(g_spec, NPT_ROLE_EP, &g_params, &t->l, err, sizeof(err)) == 0,
	      "EP open: %s", err);
	pthread_create(&t->th, NULL, ep_loop_main, t);
	return t;
}

static void ep_stop(struct ep_thread *t)
{
	__atomic_store_n(&t->stop, 1, __ATOMIC_RELAXED);
	pthread_join(t->th, NULL);
	npt_link_close(t->l);
	free(t);
}

static int scenario_host_killed(void)
{
	struct ep_thread *t = ep_start();
	pid_t host = spawn_host(UINT64_MAX, false);
	uint64_t t0 = t_now_ms(), t_kill, t_seen;
	char err[NPT_ERRLEN];

	while (npt_link_check(t->l) != 0 && t_now_ms() - t0 < 5000)
		t_sleep_ms(5);
	CHECK(npt_link_check(t->l) == 0, "no host attached: %s", npt_link_error(t->l));
	t_sleep_ms(300);
	kill_child(host);
	t_kill = t_now_ms();
	while (npt_link_check(t->l) == 0 && t_now_ms() - t_kill < 5000)
		t_sleep_ms(5);
	t_seen = t_now_ms();
	snprintf(err, sizeof(err), "%s", npt_link_error(t->l));
	printf("fault: host killed; EP saw it after %llu ms: %s\n",
	       (unsigned long long)(t_seen - t_kill), err);
	CHECK(npt_link_check(t->l) == -EAGAIN, "EP link check %d", npt_link_check(t->l));
	CHECK(t_seen - t_kill <= DETECT_LIMIT_MS, "detected after %llu ms, limit %d ms",
	      (unsigned long long)(t_seen - t_kill), DETECT_LIMIT_MS);
	CHECK(strstr(err, "no heartbeat for") && strstr(err, "limit 1000 ms"), "message: %s", err);

	host = spawn_host(20000, false);
	wait_child_ok(host, "second host");
	ep_stop(t);
	printf("fault: EP served a new host after the kill, 20000 requests verified\n");
	return 0;
}

static int scenario_scribble_host(void)
{
	struct ep_thread *t = ep_start();
	pid_t host = spawn_host(0, true);

	wait_child_ok(host, "scribbling host");
	/* the EP is still there and serves a well-behaved host */
	host = spawn_host(20000, false);
	wait_child_ok(host, "host after the scribbler");
	CHECK(t->st.bad_data == 0, "EP saw bad payloads from the good host");
	ep_stop(t);
	printf("fault: EP survived a scribbling host and served the next one\n");
	return 0;
}


/* Two host processes share the link: one attach, one channel each, both
 * verified; the EP never sees a second host; the last one out detaches. */
static int scenario_two_hosts(void)
{
	struct ep_thread *t = ep_start();
	pid_t a = spawn_host(30000, false), b = spawn_host(60000, false);
	char path[200];
	uint64_t t0;

	wait_child_ok(a, "first host process");
	CHECK(npt_link_check(t->l) == 0, "EP lost the host when one of two processes left: %s",
	      npt_link_error(t->l));
	wait_child_ok(b, "second host process");
	t0 = t_now_ms();
	while (npt_link_check(t->l) == 0 && t_now_ms() - t0 < 2000)
		t_sleep_ms(5);
	CHECK(npt_link_check(t->l) == -EAGAIN, "EP link %d after both hosts left", npt_link_check(t->l));
	CHECK(strstr(npt_link_error(t->l), "host generation 1 detached"),
	      "expected one host generation, detached: %s", npt_link_error(t->l));
	snprintf(path, sizeof(path), "%s.hosts", g_path);
	CHECK(access(path, F_OK) != 0, "%s left behind", path);
	snprintf(path, sizeof(path), "%s.win", g_path);
	CHECK(access(path, F_OK) != 0, "%s left behind", path);
	ep_stop(t);
	printf("fault: two host processes shared the link, 90000 requests verified\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *s = argc > 1 ? argv[1] : "";
	int r;

	signal(SIGPIPE, SIG_IGN);
	if (argc == 5 && !strncmp(s, "child-", 6)) {
		snprintf(g_path, sizeof(g_path), "%s", argv[2]);
		snprintf(g_spec, sizeof(g_spec), "shm:%s", g_path);
		if (!strcmp(s, "child-ep"))
			return child_ep(argv[3][0] == '1');
		return child_host(strtoull(argv[4], NULL, 0), argv[3][0] == '1');
	}
	t_shm_path(g_path, sizeof(g_path), "fault");
	snprintf(g_spec, sizeof(g_spec), "shm:%s", g_path);
	if (!strcmp(s, "ep-killed"))
		r = scenario_ep_killed();
	else if (!strcmp(s, "host-killed"))
		r = scenario_host_killed();
	else if (!strcmp(s, "scribble-host"))
		r = scenario_scribble_host();
	else if (!strcmp(s, "scribble-ep"))
		r = scenario_scribble_ep();
	else if (!strcmp(s, "two-hosts"))
		r = scenario_two_hosts();
	else {
		fprintf(stderr, "usage: npt-fault ep-killed|host-killed|scribble-host|scribble-ep|two-hosts\n");
		return 2;
	}
	cleanup();
	return r;
}

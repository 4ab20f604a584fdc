/* The EP's irq=ivshmem: option (transport/src/irq-ivshmem.c) against the
 * project's ivshmem server (tests/kmod/ivshmem-doorbell.c): a test peer
 * plays the QEMU guest and reads its own interrupt eventfds, which is what
 * QEMU turns into MSI-X vectors.
 *   test-transport-ivshmem DOORBELL-BINARY */
#define _GNU_SOURCE   /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "internal.h"
#include "helpers.h"

static const char *doorbell_bin;

struct server {
	pid_t pid;
	int in, out;                 /* its stdin (commands), its stdout */
	char sock[108], shm[128], bar[128], spec[512];
	char buf[4096];              /* its output not matched yet */
	size_t have;
};

/* The server of the running test, for teardown after a failed assertion
 * (which skips the test's own server_stop): killed by PID, files removed. */
static struct server *live;

static struct npt_link_params small = {
	.nchannels = 4, .ring_entries = 8, .data_per_chan = 64 << 10, .max_xfer = 16 << 10,
};

/* Waits for a line containing `what` on the server's stdout. */
static void server_expect(struct server *s, const char *what)
{
	char *buf = s->buf;
	size_t have = s->have;
	uint64_t t0 = t_now_ms();

	for (;;) {
		struct pollfd p = { .fd = s->out, .events = POLLIN };
		char *hit;
		ssize_t n;

		buf[have] = '\0';
		if ((hit = strstr(buf, what))) {
			char *nl = strchr(hit, '\n');
			size_t used = nl ? (size_t)(nl + 1 - buf) : have;

			memmove(buf, buf + used, have - used);
			s->have = have - used;
			return;
		}
		if (t_now_ms() - t0 > 5000)
			fail_msg("ivshmem server did not print '%s' within 5 s (got '%s')", what, buf);
		if (poll(&p, 1, 100) == 1) {
			n = read(s->out, buf + have, sizeof(s->buf) - 1 - have);
			if (n <= 0)
				fail_msg("ivshmem server exited before printing '%s'", what);
			have += (size_t)n;
		}
	}
}

static void server_start(struct server *s, int vectors)
{
	int in[2], out[2], fd;
	char nv[16];

	memset(s, 0, sizeof(*s));
	snprintf(s->sock, sizeof(s->sock), "/tmp/npt-ivsh-%d.sock", (int)getpid());
	t_shm_path(s->shm, sizeof(s->shm), "ivsh-shm");
	t_shm_path(s->bar, sizeof(s->bar), "ivsh-bar");
	snprintf(s->spec, sizeof(s->spec), "shm:bar=%s,irq=ivshmem:%s", s->bar, s->sock);
	unlink(s->sock);
	fd = open(s->shm, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	snprintf(nv, sizeof(nv), "%d", vectors);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execl(doorbell_bin, doorbell_bin, s->sock, s->shm, nv, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	s->in = in[1];
	s->out = out[0];
	live = s;
	server_expect(s, "LISTENING");
}

static void server_stop(struct server *s)
{
	int status;

	close(s->in);         /* EOF on stdin ends it */
	if (waitpid(s->pid, &status, 0) != s->pid || !WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("ivshmem server (pid %d) did not exit cleanly", (int)s->pid);
	close(s->out);
	unlink(s->shm);
	unlink(s->bar);
	unlink(s->sock);
	live = NULL;
}

static int teardown(void **st)
{
	struct server *s = live;

	(void)st;
	if (!s)
		return 0;
	kill(s->pid, SIGTERM);
	waitpid(s->pid, NULL, 0);
	close(s->in);
	close(s->out);
	unlink(s->shm);
	unlink(s->bar);
	unlink(s->sock);
	live = NULL;
	return 0;
}

static struct npt_link *ep_open(struct server *s, const char *extra)
{
	char spec[600], err[512];
	struct npt_link *l;

	snprintf(spec, sizeof(spec), "%s%s", s->spec, extra);
	if (npt_link_open(spec, NPT_ROLE_EP, &small, &l, err, sizeof(err)))
		fail_msg("EP open %s: %s", spec, err);
	return l;
}

/* Interrupts pending on a peer's own vector, consumed (eventfd read). */
static uint64_t taken(struct npt_ivsh *g, unsigned vec)
{
	int fd = npt_ivsh_own_fd(g, vec);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t n = 0;

	assert_true(fd >= 0);
	if (poll(&p, 1, 0) == 1)
		assert_int_equal(read(fd, &n, sizeof(n)), (ssize_t)sizeof(n));
	return n;
}

static struct npt_ivsh *guest(struct server *s)
{
	struct npt_ivsh *g;
	char err[256];

	if (npt_ivsh_open(s->sock, -1, &g, err, sizeof(err)))
		fail_msg("guest peer: %s", err);
	return g;
}

/* Channel c rings vector c mod the guest's vectors, once per notify. */
static void ep_rings_guest_vector_per_channel(void **st)
{
	static struct server s;   /* static: teardown may need it after a failure */
	struct npt_ivsh *g;
	struct npt_link *l;

	server_start(&s, 2);
	g = guest(&s);
	server_expect(&s, "CONNECTED peer 1");
	assert_int_equal(npt_ivsh_id(g), 1);
	l = ep_open(&s, "");
	server_expect(&s, "PEER 2 joined");
	assert_int_equal(npt_test_notify(l, 0), 0);
	assert_int_equal(npt_test_notify(l, 1), 0);
	assert_int_equal(npt_test_notify(l, 2), 0);
	assert_int_equal(npt_test_notify(l, 0), 0);
	assert_int_equal(taken(g, 0), 3);
	assert_int_equal(taken(g, 1), 1);
	assert_int_equal(taken(g, 0), 0);
	npt_link_close(l);
	npt_ivsh_close(g);
	server_stop(&s);
}

/* The EP may connect first: the guest that arrives later is found at the
 * next notify, and one that leaves is forgotten (-ENOTCONN). */
static void ep_finds_late_guest_and_forgets_gone_one(void **st)
{
	static struct server s;   /* static: teardown may need it after a failure */
	struct npt_ivsh *g;
	struct npt_link *l;

	server_start(&s, 2);
	l = ep_open(&s, "");
	server_expect(&s, "CONNECTED peer 1");
	assert_int_equal(npt_test_notify(l, 0), -ENOTCONN);
	g = guest(&s);
	server_expect(&s, "PEER 2 joined");
	t_sleep_ms(20);
	assert_int_equal(npt_test_notify(l, 1), 0);
	assert_int_equal(taken(g, 1), 1);
	npt_ivsh_close(g);
	server_expect(&s, "PEER 2 left");
	t_sleep_ms(150);      /* beyond the 100 ms rescan period */
	assert_int_equal(npt_test_notify(l, 1), -ENOTCONN);
	npt_link_close(l);
	server_stop(&s);
}

/* irq_peer=ID rings that peer, not the lowest other one. */
static void irq_peer_selects_the_guest(void **st)
{
	static struct server s;   /* static: teardown may need it after a failure */
	struct npt_ivsh *a, *b;
	struct npt_link *l;

	server_start(&s, 1);
	a = guest(&s);
	server_expect(&s, "CONNECTED peer 1");
	b = guest(&s);
	server_expect(&s, "PEER 2 joined");
	l = ep_open(&s, ",irq_peer=2");
	assert_int_equal(npt_test_notify(l, 5), 0);
	assert_int_equal(taken(b, 0), 1);
	assert_int_equal(taken(a, 0), 0);
	npt_link_close(l);
	l = ep_open(&s, "");
	assert_int_equal(npt_test_notify(l, 0), 0);
	assert_int_equal(taken(a, 0), 1);
	assert_int_equal(taken(b, 0), 0);
	npt_link_close(l);
	npt_ivsh_close(a);
	npt_ivsh_close(b);
	server_stop(&s);
}

/* Bad strings and uses fail with a message naming the value. */
static void irq_option_errors(void **st)
{
	struct npt_spec sp;
	struct npt_link *l;
	char err[512];

	assert_int_equal(npt_spec_parse("shm:bar=/x,irq=doorbell:/s", &sp, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "irq \"doorbell:/s\" is not ivshmem:SOCKET"));
	assert_int_equal(npt_spec_parse("shm:bar=/x,irq_peer=3", &sp, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "irq_peer without irq="));
	assert_int_equal(npt_spec_parse("shm:bar=/x,irq=ivshmem:/s,irq_peer=70000", &sp, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "irq_peer \"70000\" is not an ivshmem peer ID 0..65535"));
	assert_int_equal(npt_spec_parse("shm:/x,irq=ivshmem:/s,irq_peer=2", &sp, err, sizeof(err)), 0);
	assert_string_equal(sp.irq_sock, "/s");
	assert_int_equal(sp.irq_peer, 2);
	assert_int_equal(npt_spec_parse("shm:/x", &sp, err, sizeof(err)), 0);
	assert_int_equal(sp.irq_peer, -1);

	assert_int_equal(npt_link_open("shm:bar=/dev/shm/npt-test-ivsh-none,irq=ivshmem:/nonexistent/sock",
				       NPT_ROLE_EP, &small, &l, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot connect to the ivshmem server at /nonexistent/sock"));
	assert_null(l);
	assert_int_equal(access("/dev/shm/npt-test-ivsh-none", F_OK), -1);
}

/* A host link takes no irq= (nothing rings an EP through ivshmem here). */
static void host_refuses_irq(void **st)
{
	static struct server s;   /* static: teardown may need it after a failure */
	struct npt_link *ep, *h;
	struct npt_link_params hp = small;
	char spec[600], err[512];

	server_start(&s, 1);
	ep = ep_open(&s, "");
	hp.connect_timeout_ms = 2000;
	snprintf(spec, sizeof(spec), "shm:bar=%s,irq=ivshmem:%s", s.bar, s.sock);
	assert_int_equal(npt_link_open(spec, NPT_ROLE_HOST, &hp, &h, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "a host link string takes no irq="));
	npt_link_close(ep);
	server_stop(&s);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(ep_rings_guest_vector_per_channel, teardown),
		cmocka_unit_test_teardown(ep_finds_late_guest_and_forgets_gone_one, teardown),
		cmocka_unit_test_teardown(irq_peer_selects_the_guest, teardown),
		cmocka_unit_test(irq_option_errors),
		cmocka_unit_test_teardown(host_refuses_irq, teardown),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s DOORBELL-BINARY\n", argv[0]);
		return 2;
	}
	doorbell_bin = argv[1];
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

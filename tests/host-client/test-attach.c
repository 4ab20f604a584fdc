/* The attach path end to end except the kernel: nbd-pcie-client's attach
 * (npc_cmd_attach) against a real nbd-pcie-server over a shm link, with an
 * in-process fake of the kernel's nbd netlink interface that takes the
 * sockets it is handed and drives NBD requests through them like the
 * kernel's nbd driver. Covers connect parameters, I/O through every
 * connection, SIGTERM disconnect, read-only, link loss without -p, and -p
 * reconnect (RECONFIGURE with new sockets, same data, refusal of a changed
 * size). Usage: test-host-client-attach PATH/TO/nbd-pcie-server */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "internal.h"

static const char *server_bin;

/* --------------------------------------------------------- fake kernel */

struct fk_dev {
	int fds[NPC_CONNECTIONS_MAX];
	unsigned n;
	struct npc_nl_config cfg;
	char ident[320];
};

/* What the kernel holds per device index (the tests use /dev/nbd3, nbd4). */
struct fk {
	pthread_mutex_t mu;
	struct fk_dev dev[8];
	int connects, reconfigs, disconnects;
};

static struct fk K;

static int fk_open(void **ctx, char *err, size_t errlen)
{
	*ctx = &K;
	return 0;
}

static void fk_close(void *ctx)
{
}

static void take_fds(const struct npc_nl_config *c)
{
	struct fk_dev *d = &K.dev[c->index];

	for (unsigned i = 0; i < d->n; i++)
		close(d->fds[i]);
	for (unsigned i = 0; i < c->nfds; i++)
		d->fds[i] = fcntl(c->fds[i], F_DUPFD_CLOEXEC, 0);
	d->n = c->nfds;
}

static int fk_connect(void *ctx, const struct npc_nl_config *c, uint32_t *index)
{
	pthread_mutex_lock(&K.mu);
	assert_true(c->index >= 0 && c->index < 8);
	K.dev[c->index].cfg = *c;
	snprintf(K.dev[c->index].ident, sizeof(K.dev[c->index].ident), "%s",
		 c->identifier ? c->identifier : "");
	take_fds(c);
	*index = (uint32_t)c->index;
	K.connects++;
	pthread_mutex_unlock(&K.mu);
	return 0;
}

static int fk_reconfigure(void *ctx, const struct npc_nl_config *c)
{
	pthread_mutex_lock(&K.mu);
	/* The kernel checks these; so does the fake. */
	assert_int_equal(c->index, K.dev[c->index].cfg.index);
	assert_string_equal(c->identifier, K.dev[c->index].ident);
	assert_int_equal(c->nfds, K.dev[c->index].n);
	take_fds(c);
	K.reconfigs++;
	pthread_mutex_unlock(&K.mu);
	return 0;
}

static int fk_disconnect(void *ctx, int index)
{
	struct nbd_request q = { .type = NBD_CMD_DISC, .cookie = 0xd15c };
	uint8_t hdr[NBD_REQUEST_SIZE];

	nbd_request_encode(hdr, &q);
	pthread_mutex_lock(&K.mu);
	for (unsigned i = 0; i < K.dev[index].n; i++) {
		ssize_t w = send(K.dev[index].fds[i], hdr, sizeof(hdr), MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w;
		shutdown(K.dev[index].fds[i], SHUT_RDWR);
	}
	K.disconnects++;
	pthread_mutex_unlock(&K.mu);
	return 0;
}

static int fk_watch(void *ctx, char *err, size_t errlen)
{
	return 0;
}

static int fk_link_dead(void *ctx, int index)
{
	return 0;
}

static const struct npc_kernel_ops fake_kernel = {
	.open = fk_open, .close = fk_close, .connect = fk_connect, .reconfigure = fk_reconfigure,
	.disconnect = fk_disconnect, .watch = fk_watch, .link_dead = fk_link_dead,
};

/* One synchronous NBD request over connection i of device dev, as the
 * kernel would send it. */
static uint32_t kio_dev(int dev, unsigned i, uint16_t type, uint64_t off, uint32_t len, void *buf)
{
	struct nbd_request q = { .type = type, .cookie = 0x1000 + off, .offset = off, .length = len };
	struct nbd_simple_reply rep;
	uint8_t hdr[NBD_REQUEST_SIZE], raw[NBD_SIMPLE_REPLY_SIZE];
	int fd;

	pthread_mutex_lock(&K.mu);
	fd = K.dev[dev].fds[i];
	pthread_mutex_unlock(&K.mu);
	nbd_request_encode(hdr, &q);
	assert_int_equal(send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL), sizeof(hdr));
	if (type == NBD_CMD_WRITE)
		assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), len);
	assert_int_equal(recv(fd, raw, sizeof(raw), MSG_WAITALL), sizeof(raw));
	assert_int_equal(nbd_reply_decode(raw, &rep), 0);
	assert_int_equal(rep.cookie, q.cookie);
	if (type == NBD_CMD_READ && rep.error == 0)
		assert_int_equal(recv(fd, buf, len, MSG_WAITALL), len);
	return rep.error;
}

static uint32_t kio(unsigned i, uint16_t type, uint64_t off, uint32_t len, void *buf)
{
	return kio_dev(3, i, type, off, len, buf);
}

/* ------------------------------------------------------ EP server, attach */

struct env {
	char dir[64], img[96], shm[64], link[80], pidfile[96];
	pid_t server;
	pthread_t th;
	int ret;
	bool running;
};

static void start_server(struct env *e, const char *size)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "truncate -s %s %s", size, e->img);
	assert_int_equal(system(cmd), 0);
	e->server = fork();
	assert_true(e->server >= 0);
	if (e->server == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execl(server_bin, server_bin, "-d", "--pcie", e->link, "-N", "scratch", e->img,
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && access(e->shm, F_OK); i++)
		usleep(20000);
	assert_int_equal(access(e->shm, F_OK), 0);
}

static void kill_server(struct env *e)
{
	if (e->server > 0) {
		kill(e->server, SIGKILL);
		waitpid(e->server, NULL, 0);
		e->server = 0;
	}
	char path[96];
	snprintf(path, sizeof(path), "%s.win", e->shm);
	unlink(e->shm);
	unlink(path);
}

static struct npc_opts opts;
static char *argv_store[32];

static void *attach_thread(void *arg)
{
	struct env *e = arg;

	e->ret = npc_cmd_attach(&opts);
	return NULL;
}

static void start_attach(struct env *e, const char *extra1, const char *extra2)
{
	char err[512];
	int argc = 0;

	argv_store[argc++] = "nbd-pcie-client";
	argv_store[argc++] = "-n";
	argv_store[argc++] = "-pcie";
	argv_store[argc++] = e->link;
	argv_store[argc++] = "-N";
	argv_store[argc++] = "scratch";
	argv_store[argc++] = "-pidfile";
	argv_store[argc++] = e->pidfile;
	if (extra1)
		argv_store[argc++] = (char *)extra1;
	if (extra2)
		argv_store[argc++] = (char *)extra2;
	argv_store[argc++] = "/dev/nbd3";
	argv_store[argc] = NULL;
	assert_int_equal(npc_cli_parse(argc, argv_store, &opts, err, sizeof(err)), 0);
	__atomic_store_n(&npc_stop_flag, 0, __ATOMIC_RELAXED);
	assert_int_equal(pthread_create(&e->th, NULL, attach_thread, e), 0);
	e->running = true;
}

/* Waits until cond() holds (polling the fake's counters), up to ms. */
static bool wait_until(int *counter, int want, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		pthread_mutex_lock(&K.mu);
		int v = *counter;
		pthread_mutex_unlock(&K.mu);
		if (v >= want)
			return true;
		usleep(10000);
	}
	return false;
}

static int stop_attach(struct env *e, bool signal)
{
	if (signal)
		__atomic_store_n(&npc_stop_flag, SIGTERM, __ATOMIC_RELAXED);
	pthread_join(e->th, NULL);
	e->running = false;
	return e->ret;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	static int seq;

	seq++;
	snprintf(e->dir, sizeof(e->dir), "/tmp/npc-attach-%d-%d", (int)getpid(), seq);
	mkdir(e->dir, 0700);
	snprintf(e->img, sizeof(e->img), "%s/disk.img", e->dir);
	snprintf(e->pidfile, sizeof(e->pidfile), "%s/client.pid", e->dir);
	snprintf(e->shm, sizeof(e->shm), "/dev/shm/npc-attach-%d-%d", (int)getpid(), seq);
	snprintf(e->link, sizeof(e->link), "shm:%s", e->shm);
	pthread_mutex_lock(&K.mu);
	for (unsigned d = 0; d < 8; d++) {
		for (unsigned i = 0; i < K.dev[d].n; i++)
			close(K.dev[d].fds[i]);
		K.dev[d].n = 0;
	}
	K.connects = K.reconfigs = K.disconnects = 0;
	pthread_mutex_unlock(&K.mu);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	if (e->running)
		stop_attach(e, true);
	kill_server(e);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	if (system(cmd))
		return -1;
	free(e);
	return 0;
}

/* ----------------------------------------------------------------- tests */

static void connect_carries_export_and_options(void **state)
{
	struct env *e = *state;
	char want[160];

	start_server(e, "64M");
	start_attach(e, "-C", "2");
	assert_true(wait_until(&K.connects, 1, 10000));
	assert_int_equal(K.dev[3].cfg.index, 3);
	assert_int_equal(K.dev[3].cfg.size, 64u << 20);
	assert_int_equal(K.dev[3].cfg.block_size, 512);
	assert_int_equal(K.dev[3].cfg.nfds, 2);
	assert_true(K.dev[3].cfg.server_flags & NBD_FLAG_HAS_FLAGS);
	assert_true(K.dev[3].cfg.server_flags & NBD_FLAG_CAN_MULTI_CONN);
	assert_false(K.dev[3].cfg.server_flags & NBD_FLAG_READ_ONLY);
	snprintf(want, sizeof(want), "nbd-pcie:%s:scratch", e->link);
	assert_string_equal(K.dev[3].ident, want);
	assert_int_equal(stop_attach(e, true), NPC_EXIT_OK);
}

static void io_through_every_connection_reaches_the_file(void **state)
{
	struct env *e = *state;
	uint8_t data[8192], back[8192], file[8192];
	int fd;

	start_server(e, "64M");
	start_attach(e, "-C", "2");
	assert_true(wait_until(&K.connects, 1, 10000));
	for (unsigned c = 0; c < 2; c++) {
		memset(data, 0x30 + (int)c, sizeof(data));
		assert_int_equal(kio(c, NBD_CMD_WRITE, c << 20, sizeof(data), data), 0);
		assert_int_equal(kio(c, NBD_CMD_FLUSH, 0, 0, NULL), 0);
		assert_int_equal(kio(1 - c, NBD_CMD_READ, c << 20, sizeof(back), back), 0);
		assert_memory_equal(back, data, sizeof(data));
		fd = open(e->img, O_RDONLY);
		assert_int_equal(pread(fd, file, sizeof(file), (off_t)c << 20), sizeof(file));
		close(fd);
		assert_memory_equal(file, data, sizeof(data));
	}
	assert_int_equal(stop_attach(e, true), NPC_EXIT_OK);
}

static void sigterm_disconnects_device_and_exits_zero(void **state)
{
	struct env *e = *state;

	start_server(e, "16M");
	start_attach(e, NULL, NULL);
	assert_true(wait_until(&K.connects, 1, 10000));
	/* The pidfile follows the connect once the relays run. */
	for (int i = 0; i < 500 && access(e->pidfile, F_OK); i++)
		usleep(10000);
	assert_int_equal(access(e->pidfile, F_OK), 0);
	assert_int_equal(stop_attach(e, true), NPC_EXIT_OK);
	assert_int_equal(K.disconnects, 1);
	assert_int_equal(access(e->pidfile, F_OK), -1);   /* removed on exit */
}

static void readonly_option_sets_flag_and_refuses_writes(void **state)
{
	struct env *e = *state;
	uint8_t data[4096] = { 1 };

	start_server(e, "16M");
	start_attach(e, "-R", NULL);
	assert_true(wait_until(&K.connects, 1, 10000));
	assert_true(K.dev[3].cfg.server_flags & NBD_FLAG_READ_ONLY);
	assert_int_equal(kio(0, NBD_CMD_WRITE, 0, sizeof(data), data), NBD_EPERM);
	assert_int_equal(stop_attach(e, true), NPC_EXIT_OK);
}

static void link_loss_without_persist_disconnects_and_fails(void **state)
{
	struct env *e = *state;

	start_server(e, "16M");
	start_attach(e, NULL, NULL);
	assert_true(wait_until(&K.connects, 1, 10000));
	kill_server(e);
	assert_int_equal(stop_attach(e, false), NPC_EXIT_FAIL);
	assert_int_equal(K.disconnects, 1);
	assert_int_equal(K.reconfigs, 0);
}

static void persist_reconnects_with_new_sockets_after_ep_restart(void **state)
{
	struct env *e = *state;
	uint8_t data[65536], back[65536];

	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13);
	start_server(e, "32M");
	start_attach(e, "-p", NULL);
	assert_true(wait_until(&K.connects, 1, 10000));
	assert_int_equal(K.dev[3].cfg.dead_timeout, 120);   /* -p default */
	assert_int_equal(kio(0, NBD_CMD_WRITE, 4096, sizeof(data), data), 0);
	assert_int_equal(kio(0, NBD_CMD_FLUSH, 0, 0, NULL), 0);
	kill_server(e);
	start_server(e, "32M");
	assert_true(wait_until(&K.reconfigs, 1, 20000));
	assert_int_equal(K.disconnects, 0);
	assert_int_equal(kio(0, NBD_CMD_READ, 4096, sizeof(back), back), 0);
	assert_memory_equal(back, data, sizeof(data));
	assert_int_equal(stop_attach(e, true), NPC_EXIT_OK);
}

static void persist_replaces_a_connection_the_kernel_dropped(void **state)
{
	struct env *e = *state;
	uint8_t data[4096], back[4096];

	memset(data, 0x6b, sizeof(data));
	start_server(e, "16M");
	start_attach(e, "-p", NULL);
	assert_true(wait_until(&K.connects, 1, 10000));
	assert_int_equal(kio(0, NBD_CMD_WRITE, 0, sizeof(data), data), 0);
	/* What the kernel does on a request timeout: shut the socket, no DISC. */
	pthread_mutex_lock(&K.mu);
	shutdown(K.dev[3].fds[0], SHUT_RDWR);
	pthread_mutex_unlock(&K.mu);
	assert_true(wait_until(&K.reconfigs, 1, 20000));
	assert_int_equal(kio(0, NBD_CMD_READ, 0, sizeof(back), back), 0);
	assert_memory_equal(back, data, sizeof(data));
	assert_int_equal(stop_attach(e, true), NPC_EXIT_OK);
	assert_int_equal(K.disconnects, 1);
}

static void persist_refuses_export_whose_size_changed(void **state)
{
	struct env *e = *state;

	start_server(e, "32M");
	start_attach(e, "-p", NULL);
	assert_true(wait_until(&K.connects, 1, 10000));
	kill_server(e);
	unlink(e->img);
	start_server(e, "48M");
	assert_int_equal(stop_attach(e, false), NPC_EXIT_FAIL);
	assert_int_equal(K.reconfigs, 0);
	assert_int_equal(K.disconnects, 1);
}

static void unknown_export_refused_before_the_kernel_is_touched(void **state)
{
	struct env *e = *state;

	start_server(e, "16M");
	start_attach(e, "-N", "nosuch");   /* the last -N wins */
	assert_int_equal(stop_attach(e, false), NPC_EXIT_FAIL);
	assert_int_equal(K.connects, 0);
}

static void second_device_on_the_same_link_is_served_by_the_holder(void **state)
{
	struct env *e = *state;
	char *argv[] = { "nbd-pcie-client", "-n", "-pcie", e->link, "-N", "scratch", "-R",
			 "/dev/nbd4", NULL };
	struct npc_opts o2;
	char err[256];
	uint8_t data[512], back[512];

	memset(data, 0x44, sizeof(data));
	start_server(e, "16M");
	start_attach(e, NULL, NULL);
	assert_true(wait_until(&K.connects, 1, 10000));
	/* A second attach of the same link (here: from this process) must not
	 * take the link over: the holder attaches it and the starter returns. */
	assert_int_equal(npc_cli_parse(8, argv, &o2, err, sizeof(err)), 0);
	assert_int_equal(npc_cmd_attach(&o2), NPC_EXIT_OK);
	assert_int_equal(K.connects, 2);
	pthread_mutex_lock(&K.mu);
	assert_int_equal(K.dev[4].cfg.index, 4);
	assert_true(K.dev[4].cfg.server_flags & NBD_FLAG_READ_ONLY);
	pthread_mutex_unlock(&K.mu);
	/* Both devices work; the first one was not disturbed. */
	assert_int_equal(kio(0, NBD_CMD_WRITE, 0, sizeof(data), data), 0);
	assert_int_equal(kio_dev(4, 0, NBD_CMD_READ, 0, sizeof(back), back), 0);
	assert_memory_equal(back, data, sizeof(data));
	assert_int_equal(kio_dev(4, 0, NBD_CMD_WRITE, 0, sizeof(data), data), NBD_EPERM);
	/* -d of the second device: the holder keeps serving the first. */
	fk_disconnect(&K, 4);
	usleep(200000);
	assert_int_equal(kio(0, NBD_CMD_READ, 0, sizeof(back), back), 0);
	assert_int_equal(stop_attach(e, true), NPC_EXIT_OK);
}

static void more_connections_than_channels_refused(void **state)
{
	struct env *e = *state;

	start_server(e, "16M");   /* the server's default: 4 channels */
	start_attach(e, "-C", "8");
	assert_int_equal(stop_attach(e, false), NPC_EXIT_FAIL);
	assert_int_equal(K.connects, 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(connect_carries_export_and_options, setup, teardown),
		cmocka_unit_test_setup_teardown(io_through_every_connection_reaches_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(sigterm_disconnects_device_and_exits_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(readonly_option_sets_flag_and_refuses_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(link_loss_without_persist_disconnects_and_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(persist_reconnects_with_new_sockets_after_ep_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(persist_replaces_a_connection_the_kernel_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(persist_refuses_export_whose_size_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(unknown_export_refused_before_the_kernel_is_touched, setup, teardown),
		cmocka_unit_test_setup_teardown(second_device_on_the_same_link_is_served_by_the_holder, setup, teardown),
		cmocka_unit_test_setup_teardown(more_connections_than_channels_refused, setup, teardown),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH/TO/nbd-pcie-server\n", argv[0]);
		return 2;
	}
	server_bin = argv[1];
	pthread_mutex_init(&K.mu, NULL);
	npc_kernel = &fake_kernel;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* libFuzzer target: arbitrary bytes from a socket client (handshake,
 * request headers, payloads) into a running nbd-pcie-server core: one
 * worker, one io_uring, a scratch export. Every input is one connection; the
 * target reads the server's answers until it closes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* Size of the scratch export: small, so fuzzed offsets hit its end. */
#define FUZZ_EXPORT_SIZE (1u << 20)

static struct srv_server srv;
static struct srv_config cfg;

static void quiet(int prio, const char *msg, void *ctx)
{
	(void)prio;
	(void)msg;
	(void)ctx;
}

static void setup_once(void)
{
	static int done;
	char path[64], err[256];
	struct srv_export_cfg *e;
	int fd;

	if (done)
		return;
	done = 1;
	srv_log_set_sink(quiet, NULL);
	/* on tmpfs: FLUSH and FUA cost nothing, so a busy disk cannot make an
	 * input look hung */
	snprintf(path, sizeof(path), "/dev/shm/fuzz-srv-sock-%d", (int)getpid());
	fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, FUZZ_EXPORT_SIZE) < 0)
		abort();
	close(fd);
	srv_config_init(&cfg);
	cfg.max_threads = 1;
	cfg.allowlist = true;
	e = srv_config_add_export(&cfg, "fuzz", path, "fuzz");
	e->flush = e->fua = e->trim = true;
	if (srv_server_open_exports(&srv, &cfg, err, sizeof(err)) ||
	    srv_server_start_workers(&srv, err, sizeof(err))) {
		fprintf(stderr, "fuzz-sock: %s\n", err);
		abort();
	}
	unlink(path);   /* the export keeps its fd */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	size_t off = 0;
	uint8_t buf[65536];
	struct srv_conn *c;

	setup_once();
	/* How long a silent server counts as hung: below libFuzzer's -timeout=10
	 * (scripts/run-fuzz.sh) so a hang is reported as one; FUZZ_HANG_MS
	 * overrides it when debugging. */
	static int hang_ms;
	if (!hang_ms)
		hang_ms = getenv("FUZZ_HANG_MS") ? atoi(getenv("FUZZ_HANG_MS")) : 8000;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	c = srv_sock_conn_new(&srv, sv[0], false);
	if (!c)
		abort();
	srv_server_add_conn(&srv, c, -1);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	if (size == 0)
		shutdown(sv[1], SHUT_WR);
	/* send the input while draining replies, then EOF, then read to EOF */
	for (;;) {
		struct pollfd p = { .fd = sv[1], .events = POLLIN | (off < size ? POLLOUT : 0) };
		if (poll(&p, 1, hang_ms) <= 0) {
			fprintf(stderr, "fuzz-sock: server silent for %d ms on this input\n", hang_ms);
			abort();
		}
		if (p.revents & POLLOUT) {
			ssize_t n = send(sv[1], data + off, size - off, MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				off = size;   /* the server closed early */
			if (off == size)
				shutdown(sv[1], SHUT_WR);
		}
		if (p.revents & (POLLIN | POLLHUP)) {
			ssize_t n = recv(sv[1], buf, sizeof(buf), 0);
			if (n == 0 || (n < 0 && errno != EAGAIN))
				break;
		}
	}
	close(sv[1]);
	return 0;
}

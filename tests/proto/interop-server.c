/* The SERVER machine behind a minimal socket loop, for driving with real
 * NBD clients (nbdinfo, qemu-io, nbdcopy).
 *
 *   interop-server SOCKET PIDFILE
 *
 * Serves three RAM-backed exports over a unix socket, one connection at a
 * time, until SIGTERM:
 *   disk     64 MiB, FLUSH FUA TRIM WRITE_ZEROES CACHE (the default export)
 *   ro        4 MiB, read-only, every byte 0x5a
 *   aligned   8 MiB, minimum block 4096, maximum block 1 MiB
 * Every request goes through nbd_request_decode() and
 * nbdp_validate_request(); refused requests are logged on stderr with the
 * validator's message. The pidfile is written once the socket listens. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <common/endian.h>
#include <nbdproto/server.h>
#include <nbdproto/validate.h>

#include "sockio.h"

#define MiB (1024u * 1024u)

/* A client that sends nothing for this long is dropped, so a stuck test
 * peer cannot keep the server (and the test) alive. */
#define IDLE_TIMEOUT_S 20

struct ram_export {
	const char *name;
	const char *desc;
	uint64_t size;
	uint16_t tflags;
	uint32_t min_block, max_block;
	uint8_t *data;
};

static struct ram_export exports[] = {
	{ "disk", "64 MiB RAM disk", 64 * MiB,
	  NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |
	  NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_CACHE, 0, 0, NULL },
	{ "ro", "read-only, 0x5a", 4 * MiB, NBD_FLAG_READ_ONLY, 0, 0, NULL },
	{ "aligned", "4 KiB blocks", 8 * MiB, NBD_FLAG_SEND_FLUSH, 4096, MiB, NULL },
};

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	stop = 1;
}

static int lookup(void *opaque, const char *name, struct nbdp_export *out)
{
	size_t i;

	if (!*name)
		name = "disk";
	for (i = 0; i < sizeof(exports) / sizeof(exports[0]); i++) {
		if (strcmp(name, exports[i].name))
			continue;
		snprintf(out->name, sizeof(out->name), "%s", exports[i].name);
		out->size = exports[i].size;
		out->tflags = exports[i].tflags;
		out->min_block = exports[i].min_block;
		out->max_block = exports[i].max_block;
		out->description = exports[i].desc;
		out->handle = &exports[i];
		return 0;
	}
	return -ENOENT;
}

static int list(void *opaque, void (*emit)(void *ctx, const char *name, const char *desc), void *ctx)
{
	size_t i;

	for (i = 0; i < sizeof(exports) / sizeof(exports[0]); i++)
		emit(ctx, exports[i].name, exports[i].desc);
	return 0;
}

static const struct nbdp_server_ops ops = { .lookup = lookup, .list = list };

/* Reads from what the handshake left over first, then from the socket. */
struct reader {
	int fd;
	const uint8_t *left;
	size_t nleft;
};

static int read_exact(struct reader *rd, void *dst, size_t n)
{
	size_t take = n < rd->nleft ? n : rd->nleft;

	memcpy(dst, rd->left, take);
	rd->left += take;
	rd->nleft -= take;
	return take == n ? 0 : sock_read_all(rd->fd, (uint8_t *)dst + take, n - take);
}

static int skip_exact(struct reader *rd, size_t n, uint8_t *scratch, size_t scratch_len)
{
	while (n) {
		size_t k = n < scratch_len ? n : scratch_len;
		int r = read_exact(rd, scratch, k);

		if (r < 0)
			return r;
		n -= k;
	}
	return 0;
}

static int send_reply(int fd, uint64_t cookie, uint32_t err, const void *data, size_t len)
{
	struct nbd_simple_reply rp = { .error = err, .cookie = cookie };
	uint8_t hdr[NBD_SIMPLE_REPLY_SIZE];
	int r;

	nbd_reply_encode(hdr, &rp);
	r = sock_write_all(fd, hdr, sizeof(hdr));
	if (r == 0 && len)
		r = sock_write_all(fd, data, len);
	return r;
}

static int flush_out(int fd, struct nbdp_server *s)
{
	const void *p;
	size_t n;

	while ((n = nbdp_server_pending(s, &p)) > 0) {
		int r = sock_write_all(fd, p, n);

		if (r < 0)
			return r;
		nbdp_server_consumed(s, n);
	}
	return 0;
}

static void transmission(struct reader *rd, const struct nbdp_limits *l, struct ram_export *ex,
			 uint8_t *payload, size_t payload_len)
{
	for (;;) {
		uint8_t hdr[NBD_REQUEST_SIZE];
		struct nbd_request rq;
		char msg[256];
		uint32_t err;

		if (read_exact(rd, hdr, sizeof(hdr)) < 0)
			return;
		if (nbd_request_decode(hdr, &rq) < 0) {
			fprintf(stderr, "interop-server: request magic 0x%08x: closing\n", get_be32(hdr));
			return;
		}
		err = nbdp_validate_request(&rq, l, msg, sizeof(msg));
		if (err) {
			fprintf(stderr, "interop-server: %s -> %s\n", msg, nbd_err_name(err));
			if (rq.type == NBD_CMD_WRITE) {
				if (!nbdp_validate_payload_skippable(&rq, l)) {
					send_reply(rd->fd, rq.cookie, err, NULL, 0);
					return;
				}
				if (skip_exact(rd, rq.length, payload, payload_len) < 0)
					return;
			}
			if (send_reply(rd->fd, rq.cookie, err, NULL, 0) < 0)
				return;
			continue;
		}
		switch (rq.type) {
		case NBD_CMD_DISC:
			return;
		case NBD_CMD_READ:
			if (send_reply(rd->fd, rq.cookie, 0, ex->data + rq.offset, rq.length) < 0)
				return;
			continue;
		case NBD_CMD_WRITE:
			/* Validated: offset + length within the export, length <= max payload. */
			if (read_exact(rd, ex->data + rq.offset, rq.length) < 0)
				return;
			break;
		case NBD_CMD_TRIM:
		case NBD_CMD_WRITE_ZEROES:
			memset(ex->data + rq.offset, 0, rq.length);
			break;
		default:              /* FLUSH, CACHE: RAM needs nothing */
			break;
		}
		if (send_reply(rd->fd, rq.cookie, 0, NULL, 0) < 0)
			return;
	}
}

static void serve(int fd, uint8_t *payload, size_t payload_len)
{
	static uint8_t buf[65536];
	struct nbdp_server *s = nbdp_server_new(&ops, NULL);
	struct reader rd = { .fd = fd };
	struct nbdp_limits l;
	ssize_t n = 0, off = 0;

	if (!s)
		return;
	while (nbdp_server_state(s) == NBDP_NEGOTIATING) {
		if (flush_out(fd, s) < 0)
			goto out;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			goto out;
		for (off = 0; off < n && nbdp_server_state(s) == NBDP_NEGOTIATING;) {
			ssize_t r = nbdp_server_feed(s, buf + off, (size_t)(n - off));

			if (r < 0)
				break;
			if (r == 0 && flush_out(fd, s) < 0)
				goto out;
			off += r;
		}
	}
	flush_out(fd, s);
	if (nbdp_server_state(s) != NBDP_TRANSMISSION) {
		fprintf(stderr, "interop-server: handshake ended: %s\n", nbdp_server_reason(s));
		goto out;
	}
	nbdp_server_limits(s, &l);
	fprintf(stderr, "interop-server: %s (min_block %u, max_payload %u)\n", nbdp_server_reason(s),
		l.min_block, l.max_payload);
	rd.left = buf + off;
	rd.nleft = (size_t)(n - off);
	transmission(&rd, &l, nbdp_server_export(s)->handle, payload, payload_len);
out:
	nbdp_server_free(s);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };
	struct sockaddr_un addr;
	struct timeval tv = { .tv_sec = IDLE_TIMEOUT_S };
	static uint8_t *payload;
	size_t i;
	FILE *f;
	int lfd;

	if (argc != 3) {
		fprintf(stderr, "usage: %s SOCKET PIDFILE\n", argv[0]);
		return 2;
	}
	for (i = 0; i < sizeof(exports) / sizeof(exports[0]); i++) {
		exports[i].data = calloc(1, exports[i].size);
		if (!exports[i].data) {
			perror("calloc");
			return 1;
		}
	}
	memset(exports[1].data, 0x5a, exports[1].size);
	payload = malloc(MiB);     /* scratch for skipping refused payloads */
	if (!payload)
		return 1;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (sock_fill_addr(&addr, argv[1]) < 0) {
		fprintf(stderr, "socket path %s too long (limit %zu)\n", argv[1], sizeof(addr.sun_path) - 1);
		return 2;
	}
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 8) < 0) {
		fprintf(stderr, "listen on %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	f = fopen(argv[2], "w");
	if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
		fprintf(stderr, "pidfile %s: %s\n", argv[2], strerror(errno));
		unlink(argv[1]);
		return 1;
	}
	while (!stop) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;     /* EINTR on SIGTERM: the loop condition ends us */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		serve(fd, payload, MiB);
		close(fd);
	}
	close(lfd);
	unlink(argv[1]);
	unlink(argv[2]);
	for (i = 0; i < sizeof(exports) / sizeof(exports[0]); i++)
		free(exports[i].data);
	free(payload);
	return 0;
}

/* Drives the CLIENT machine over a real unix socket against a real NBD
 * server (nbdkit, nbd-server, or our own interop-server).
 *
 *   interop-client list SOCKET
 *   interop-client info SOCKET EXPORT
 *   interop-client go   SOCKET EXPORT [--no-optgo]
 *
 * list/info print what the server said. go negotiates, then, within the
 * advertised block sizes, writes, reads back and compares data, checks that
 * a never-written region reads as zeroes and that a read past the end fails
 * without breaking the connection, flushes, and disconnects; on a read-only
 * export it checks that a write is refused with an error reply and that the
 * connection survives. Exit 0 on success, 1 on a data or transmission
 * failure, 2 when the handshake fails (message on stderr). */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <common/endian.h>
#include <nbdproto/client.h>

#include "sockio.h"

#define MiB (1024u * 1024u)

static void on_list(void *ctx, const char *name, const char *desc)
{
	printf("export\t%s\t%s\n", name, desc);
}

/* Runs the handshake on fd; returns the final state. */
static enum nbdp_client_state handshake(int fd, struct nbdp_client *c)
{
	uint8_t buf[4096];

	for (;;) {
		const void *out;
		size_t n = nbdp_client_pending(c, &out);
		ssize_t got;
		size_t off = 0;

		if (n) {
			if (sock_write_all(fd, out, n) < 0 && nbdp_client_state(c) == NBDP_C_NEGOTIATING) {
				nbdp_client_eof(c);
				break;
			}
			nbdp_client_consumed(c, n);
			continue;
		}
		if (nbdp_client_state(c) != NBDP_C_NEGOTIATING)
			break;
		got = read(fd, buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			nbdp_client_eof(c);
			break;
		}
		while (off < (size_t)got && nbdp_client_state(c) == NBDP_C_NEGOTIATING) {
			ssize_t r = nbdp_client_feed(c, buf + off, (size_t)got - off);

			if (r < 0)
				break;
			off += (size_t)r;
		}
		if (off < (size_t)got && nbdp_client_state(c) == NBDP_C_TRANSMISSION) {
			fprintf(stderr, "handshake: server sent %zu bytes after the handshake\n",
				(size_t)got - off);
			return NBDP_C_FAILED;
		}
	}
	return nbdp_client_state(c);
}

static uint64_t next_cookie = 1;

/* One request; for READ, data receives length bytes. Returns the NBD error
 * (0 = success) or -errno on a transport or protocol failure. */
static int64_t request(int fd, uint16_t type, uint16_t flags, uint64_t offset, uint32_t length,
		       void *data)
{
	struct nbd_request rq = { .flags = flags, .type = type, .cookie = next_cookie++,
				  .offset = offset, .length = length };
	struct nbd_simple_reply rp;
	uint8_t hdr[NBD_REQUEST_SIZE], rep[NBD_SIMPLE_REPLY_SIZE];
	int r;

	nbd_request_encode(hdr, &rq);
	r = sock_write_all(fd, hdr, sizeof(hdr));
	if (r == 0 && type == NBD_CMD_WRITE)
		r = sock_write_all(fd, data, length);
	if (r < 0 || type == NBD_CMD_DISC)
		return r;
	r = sock_read_all(fd, rep, sizeof(rep));
	if (r < 0)
		return r;
	if (nbd_reply_decode(rep, &rp) < 0) {
		fprintf(stderr, "%s: reply magic 0x%08x is not the simple reply magic\n",
			nbd_cmd_name(type), get_be32(rep));
		return -EPROTO;
	}
	if (rp.cookie != rq.cookie) {
		fprintf(stderr, "%s: reply cookie %" PRIu64 ", expected %" PRIu64 "\n",
			nbd_cmd_name(type), rp.cookie, rq.cookie);
		return -EPROTO;
	}
	if (rp.error == 0 && type == NBD_CMD_READ) {
		r = sock_read_all(fd, data, length);
		if (r < 0)
			return r;
	}
	return rp.error;
}

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); \
	return 1; } } while (0)

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 9));
}

/* A read-only export: reads work, a write gets an error reply and leaves
 * the connection usable. */
static int read_only_test(int fd, const struct nbdp_export *e)
{
	static uint8_t buf[4096];
	int64_t r;

	r = request(fd, NBD_CMD_READ, 0, 0, sizeof(buf), buf);
	CHECK(r == 0, "read: offset 0 length 4096 failed: %" PRId64, r);
	r = request(fd, NBD_CMD_WRITE, 0, 0, sizeof(buf), buf);
	CHECK(r > 0, "write to a read-only export: got %" PRId64 ", expected an NBD error", r);
	printf("write to read-only: %s\n", nbd_err_name((uint32_t)r));
	r = request(fd, NBD_CMD_READ, 0, 0, sizeof(buf), buf);
	CHECK(r == 0, "read after the refused write failed: %" PRId64, r);
	r = request(fd, NBD_CMD_DISC, 0, 0, 0, NULL);
	CHECK(r == 0, "disconnect failed: %" PRId64, r);
	printf("data: ok (read-only)\n");
	return 0;
}

static int data_test(int fd, const struct nbdp_export *e)
{
	static uint8_t wbuf[MiB], rbuf[MiB];
	uint32_t min = e->min_block > 1 ? e->min_block : 512;
	uint32_t big = e->max_block && e->max_block < MiB ? e->max_block / min * min : MiB;
	uint64_t tail = (e->size - 4096) / min * min;
	int64_t r;

	CHECK(e->size >= 4 * MiB, "export size %" PRIu64 " below the 4 MiB this test needs", e->size);
	if (e->tflags & NBD_FLAG_READ_ONLY)
		return read_only_test(fd, e);

	fill(wbuf, 65536, 1);
	r = request(fd, NBD_CMD_WRITE, 0, 0, 65536, wbuf);
	CHECK(r == 0, "write: offset 0 length 65536 failed: %" PRId64, r);
	memset(rbuf, 0xee, 65536);
	r = request(fd, NBD_CMD_READ, 0, 0, 65536, rbuf);
	CHECK(r == 0, "read: offset 0 length 65536 failed: %" PRId64, r);
	CHECK(!memcmp(rbuf, wbuf, 65536), "read: offset 0 length 65536 differs from what was written");

	fill(wbuf, 4096, 99);
	r = request(fd, NBD_CMD_WRITE, (e->tflags & NBD_FLAG_SEND_FUA) ? NBD_CMD_FLAG_FUA : 0,
		    tail, 4096, wbuf);
	CHECK(r == 0, "write: offset %" PRIu64 " length 4096 failed: %" PRId64, tail, r);
	r = request(fd, NBD_CMD_READ, 0, tail, 4096, rbuf);
	CHECK(r == 0 && !memcmp(rbuf, wbuf, 4096), "read-back at the end of the export differs");

	fill(wbuf, big, 5);
	r = request(fd, NBD_CMD_WRITE, 0, MiB, big, wbuf);
	CHECK(r == 0, "write: offset 1 MiB length %u failed: %" PRId64, big, r);
	r = request(fd, NBD_CMD_READ, 0, MiB, big, rbuf);
	CHECK(r == 0 && !memcmp(rbuf, wbuf, big), "read-back of %u bytes at 1 MiB differs", big);

	memset(rbuf, 0xee, 4096);
	r = request(fd, NBD_CMD_READ, 0, 3 * MiB, 4096, rbuf);
	CHECK(r == 0, "read: offset 3 MiB failed: %" PRId64, r);
	memset(wbuf, 0, 4096);
	CHECK(!memcmp(rbuf, wbuf, 4096), "read: never-written region at 3 MiB is not zero");

	r = request(fd, NBD_CMD_READ, 0, e->size - min, 2 * min, rbuf);
	CHECK(r > 0, "read: past the end of the export succeeded (%" PRId64 ")", r);
	printf("read past end: %s\n", nbd_err_name((uint32_t)r));
	r = request(fd, NBD_CMD_READ, 0, 0, 512 < min ? min : 512, rbuf);
	CHECK(r == 0, "read after an error reply failed: %" PRId64, r);

	if (e->tflags & NBD_FLAG_SEND_FLUSH) {
		r = request(fd, NBD_CMD_FLUSH, 0, 0, 0, NULL);
		CHECK(r == 0, "flush failed: %" PRId64, r);
	}
	r = request(fd, NBD_CMD_DISC, 0, 0, 0, NULL);
	CHECK(r == 0, "disconnect failed: %" PRId64, r);
	printf("data: ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct nbdp_client_opts o = { .on_list = on_list };
	struct nbdp_client *c;
	const struct nbdp_export *e;
	enum nbdp_client_state st;
	int fd, rc = 0;

	if (argc < 3 || (strcmp(argv[1], "list") && argc < 4)) {
		fprintf(stderr, "usage: %s list SOCKET | info SOCKET EXPORT | go SOCKET EXPORT [--no-optgo]\n",
			argv[0]);
		return 2;
	}
	if (!strcmp(argv[1], "list")) {
		o.goal = NBDP_GOAL_LIST;
	} else if (!strcmp(argv[1], "info")) {
		o.goal = NBDP_GOAL_INFO;
		o.export_name = argv[3];
	} else if (!strcmp(argv[1], "go")) {
		o.goal = NBDP_GOAL_GO;
		o.export_name = argv[3];
		o.no_optgo = argc > 4 && !strcmp(argv[4], "--no-optgo");
	} else {
		fprintf(stderr, "%s: unknown mode '%s'\n", argv[0], argv[1]);
		return 2;
	}
	c = nbdp_client_new(&o);
	if (!c) {
		perror("nbdp_client_new");
		return 2;
	}
	fd = sock_connect(argv[2]);
	if (fd < 0) {
		fprintf(stderr, "connect %s: %s\n", argv[2], strerror(-fd));
		nbdp_client_free(c);
		return 2;
	}
	st = handshake(fd, c);
	if (st == NBDP_C_FAILED) {
		fprintf(stderr, "handshake failed: %s (%s)\n", nbdp_client_error(c),
			strerror(-nbdp_client_error_code(c)));
		rc = 2;
		goto out;
	}
	e = nbdp_client_export(c);
	if (e) {
		printf("name %s\nsize %" PRIu64 "\nflags 0x%04x\nmin %u\npref %u\nmax %u\n", e->name,
		       e->size, e->tflags, e->min_block, e->pref_block, e->max_block);
		printf("description %s\n", e->description ? e->description : "");
	}
	if (st == NBDP_C_TRANSMISSION) {
		printf("mode %s\n", nbdp_client_used_export_name(c) ? "export_name" : "go");
		fflush(stdout);
		rc = data_test(fd, e);
	}
out:
	fflush(stdout);
	close(fd);
	nbdp_client_free(c);
	return rc;
}

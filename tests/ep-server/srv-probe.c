/* srv-probe: a small NBD client that drives nbd-pcie-server through one
 * scenario and checks every reply and every byte. Used by it.sh.
 *
 *   srv-probe ADDR EXPORT SCENARIO [BACKING-FILE]
 *   ADDR: unix:PATH or tcp:HOST:PORT
 *
 * Exit 0 when every check holds, 1 with "FAIL: ..." otherwise. The
 * handshake goes through the proto library's client machine. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/uio.h>
#include <signal.h>
#include <unistd.h>

#include <nbdproto/client.h>
#include <nbdproto/nbd.h>

#include "probe-check.h"

struct probe {
	int fd;
	struct nbd_export_info {
		uint64_t size;
		uint16_t tflags;
		uint32_t min_block, max_block;
	} x;
	uint64_t cookie;
	const char *backing;
};

static int connect_to(const char *addr)
{
	int fd;
	if (!strncmp(addr, "unix:", 5)) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", addr + 5);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			fail("connect %s: %s", addr, strerror(errno));
		return fd;
	}
	if (!strncmp(addr, "tcp:", 4)) {
		char host[256];
		const char *colon = strrchr(addr + 4, ':');
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
		CHECK(colon, "bad address %s", addr);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - addr - 4), addr + 4);
		if (getaddrinfo(host, colon + 1, &hints, &res))
			fail("resolve %s", addr);
		fd = socket(res->ai_family, SOCK_STREAM, 0);
		if (connect(fd, res->ai_addr, res->ai_addrlen) < 0)
			fail("connect %s: %s", addr, strerror(errno));
		freeaddrinfo(res);
		return fd;
	}
	fail("address %s: expected unix:PATH or tcp:HOST:PORT", addr);
	return -1;
}

static void write_all(int fd, const void *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		CHECK(n > 0, "send: %s", strerror(errno));
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
}

/* 0 ok, -1 EOF before len bytes. */
static int read_all(int fd, void *buf, size_t len)
{
	while (len) {
		ssize_t n = recv(fd, buf, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf = (char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

static int handshake(struct probe *p, const char *addr, const char *name)
{
	struct nbdp_client_opts o = { .goal = NBDP_GOAL_GO, .export_name = name };
	struct nbdp_client *c = nbdp_client_new(&o);
	uint8_t buf[4096];

	p->fd = connect_to(addr);
	for (;;) {
		const void *out;
		size_t n;
		enum nbdp_client_state st = nbdp_client_state(c);
		if (st == NBDP_C_FAILED || st == NBDP_C_DONE) {
			int code = nbdp_client_error_code(c);
			/* the ABORT it may queue is a courtesy: the server may be gone */
			if ((n = nbdp_client_pending(c, &out)) > 0)
				(void)!send(p->fd, out, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			fprintf(stderr, "handshake: %s\n", nbdp_client_error(c));
			nbdp_client_free(c);
			close(p->fd);
			return code ? code : -EPROTO;
		}
		while ((n = nbdp_client_pending(c, &out)) > 0) {
			write_all(p->fd, out, n);
			nbdp_client_consumed(c, n);
		}
		if (st == NBDP_C_TRANSMISSION)
			break;
		/* one byte at a time: never read past the end of the handshake */
		ssize_t r = recv(p->fd, buf, 1, 0);
		if (r <= 0) {
			int code = nbdp_client_eof(c);
			fprintf(stderr, "handshake: %s\n", nbdp_client_error(c));
			nbdp_client_free(c);
			close(p->fd);
			return code ? code : -ECONNRESET;
		}
		if (nbdp_client_feed(c, buf, (size_t)r) < 0)
			continue;   /* FAILED: reported at the top of the loop */
	}
	const struct nbdp_export *x = nbdp_client_export(c);
	p->x.size = x->size;
	p->x.tflags = x->tflags;
	p->x.min_block = x->min_block;
	p->x.max_block = x->max_block;
	nbdp_client_free(c);
	return 0;
}

static uint64_t send_req(struct probe *p, uint16_t type, uint16_t flags, uint64_t off,
                         uint32_t len, const void *payload)
{
	uint8_t hdr[NBD_REQUEST_SIZE];
	struct nbd_request r = { .flags = flags, .type = type, .cookie = ++p->cookie,
	                         .offset = off, .length = len };
	nbd_request_encode(hdr, &r);
	write_all(p->fd, hdr, sizeof(hdr));
	if (payload)
		write_all(p->fd, payload, len);
	return r.cookie;
}

/* Reads one reply header; -1 on EOF. */
static int recv_reply(struct probe *p, struct nbd_simple_reply *rep)
{
	uint8_t hdr[NBD_SIMPLE_REPLY_SIZE];
	if (read_all(p->fd, hdr, sizeof(hdr)))
		return -1;
	CHECK(nbd_reply_decode(hdr, rep) == 0, "reply with bad magic");
	return 0;
}

/* One request, waits for its reply (and READ data into rbuf). */
static uint32_t cmd(struct probe *p, uint16_t type, uint16_t flags, uint64_t off, uint32_t len,
                    const void *wbuf, void *rbuf)
{
	struct nbd_simple_reply rep;
	uint64_t ck = send_req(p, type, flags, off, len, type == NBD_CMD_WRITE ? wbuf : NULL);
	CHECK(recv_reply(p, &rep) == 0, "%s offset %llu length %u: connection closed",
	      nbd_cmd_name(type), (unsigned long long)off, len);
	CHECK(rep.cookie == ck, "%s: reply cookie %llu, expected %llu", nbd_cmd_name(type),
	      (unsigned long long)rep.cookie, (unsigned long long)ck);
	if (type == NBD_CMD_READ && rep.error == 0)
		CHECK(read_all(p->fd, rbuf, len) == 0, "read: data cut short");
	return rep.error;
}

static void expect_err(uint32_t got, uint32_t want, const char *what)
{
	CHECK(got == want, "%s: got %s, expected %s", what, nbd_err_name(got), nbd_err_name(want));
	printf("ok: %s -> %s\n", what, nbd_err_name(got));
}

static void fill(uint8_t *b, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 12)) ^ seed);
}

static void disc(struct probe *p)
{
	send_req(p, NBD_CMD_DISC, 0, 0, 0, NULL);
	close(p->fd);
}

static void *xmalloc(size_t n)
{
	void *b = malloc(n);
	CHECK(b, "out of memory");
	return b;
}

/* Reads the backing file around [off, off+len) with O_DIRECT and compares. */
static void check_direct(const char *path, uint64_t off, const uint8_t *want, size_t len)
{
	const size_t al = 4096;
	uint64_t start = off / al * al;
	size_t span = (size_t)(((off + len + al - 1) / al * al) - start);
	void *buf;
	int fd = open(path, O_RDONLY | O_DIRECT);
	CHECK(fd >= 0, "open %s O_DIRECT: %s", path, strerror(errno));
	CHECK(posix_memalign(&buf, al, span) == 0, "memalign");
	CHECK(pread(fd, buf, span, (off_t)start) == (ssize_t)span, "pread O_DIRECT %s", path);
	CHECK(!memcmp((uint8_t *)buf + (off - start), want, len),
	      "backing file %s differs at offset %llu after the reply", path,
	      (unsigned long long)off);
	free(buf);
	close(fd);
}

static void check_file(const char *path, uint64_t off, const uint8_t *want, size_t len)
{
	uint8_t *b = xmalloc(len);
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, b, len, (off_t)off) == (ssize_t)len, "read %s", path);
	CHECK(!memcmp(b, want, len), "backing file %s differs at offset %llu", path,
	      (unsigned long long)off);
	close(fd);
	free(b);
}

/* ---- scenarios ----------------------------------------------------------- */

static void sc_readonly(struct probe *p)
{
	uint8_t b[4096], r[4096];
	fill(b, sizeof(b), 1);
	CHECK(p->x.tflags & NBD_FLAG_READ_ONLY, "READ_ONLY flag not advertised");
	expect_err(cmd(p, NBD_CMD_WRITE, 0, 0, sizeof(b), b, NULL), NBD_EPERM, "write on read-only");
	if (p->x.tflags & NBD_FLAG_SEND_TRIM)
		expect_err(cmd(p, NBD_CMD_TRIM, 0, 0, 4096, NULL, NULL), NBD_EPERM, "trim on read-only");
	else
		printf("ok: trim not advertised, not tried\n");
	expect_err(cmd(p, NBD_CMD_WRITE_ZEROES, 0, 0, 4096, NULL, NULL), NBD_EPERM,
	           "write-zeroes on read-only");
	expect_err(cmd(p, NBD_CMD_READ, 0, 0, sizeof(r), NULL, r), 0, "read on read-only");
	if (p->backing)
		check_file(p->backing, 0, r, sizeof(r));
}

static void sc_bounds(struct probe *p)
{
	uint8_t b[4096];
	uint64_t end = p->x.size;
	/* aligned to an agreed block size, so only the range is wrong */
	uint32_t u = p->x.min_block > 1 ? p->x.min_block : 512;
	fill(b, sizeof(b), 2);
	expect_err(cmd(p, NBD_CMD_READ, 0, end - u, 2 * u, NULL, b), NBD_EINVAL, "read across the end");
	expect_err(cmd(p, NBD_CMD_WRITE, 0, end, sizeof(b), b, NULL), NBD_ENOSPC, "write at the end");
	expect_err(cmd(p, NBD_CMD_WRITE_ZEROES, 0, end - u, 2 * u, NULL, NULL), NBD_ENOSPC,
	           "write-zeroes across the end");
	expect_err(cmd(p, NBD_CMD_CACHE, 0, end + 4096, u, NULL, NULL), NBD_EINVAL, "cache beyond the end");
	expect_err(cmd(p, NBD_CMD_READ, 0, UINT64_MAX - 4095, 4096, NULL, b), NBD_EINVAL,
	           "read with offset overflow");
	/* the connection is still usable */
	expect_err(cmd(p, NBD_CMD_WRITE, 0, end - 4096, sizeof(b), b, NULL), 0, "write of the last block");
	uint8_t r[4096];
	expect_err(cmd(p, NBD_CMD_READ, 0, end - 4096, sizeof(r), NULL, r), 0, "read of the last block");
	CHECK(!memcmp(b, r, sizeof(r)), "last block reads back different data");
}

static void sc_oversized(struct probe *p)
{
	uint8_t b[16];
	const uint32_t big = (64u << 20) + 1;
	expect_err(cmd(p, NBD_CMD_READ, 0, 0, big, NULL, b), NBD_EINVAL, "read of 64 MiB + 1");
	expect_err(cmd(p, NBD_CMD_READ, 0, 0, 16, NULL, b), 0, "read after refusing one");
	/* a WRITE whose payload the server will not read: error, then EOF */
	struct nbd_simple_reply rep;
	send_req(p, NBD_CMD_WRITE, 0, 0, big, NULL);
	CHECK(recv_reply(p, &rep) == 0, "oversized write: no reply");
	expect_err(rep.error, NBD_EINVAL, "write of 64 MiB + 1");
	CHECK(recv_reply(p, &rep) == -1, "server kept the stream open after an unread payload");
	printf("ok: connection closed after the unread payload\n");
}

/* The largest request the server advertises (at most the 64 MiB the
 * server promises; 32 MiB, the protocol's default, when it states none). */
static void sc_max_request(struct probe *p)
{
	const uint32_t len = p->x.max_block ? (p->x.max_block < (64u << 20) ? p->x.max_block :
	                                       64u << 20) : 32u << 20;
	uint8_t *w = xmalloc(len), *r = xmalloc(len);
	CHECK(p->x.size >= len, "export too small for this scenario");
	fill(w, len, 3);
	printf("ok: maximum request %u bytes\n", len);
	expect_err(cmd(p, NBD_CMD_WRITE, 0, 0, len, w, NULL), 0, "write of the maximum length");
	memset(r, 0, len);
	expect_err(cmd(p, NBD_CMD_READ, 0, 0, len, NULL, r), 0, "read of the maximum length");
	CHECK(!memcmp(w, r, len), "maximum-length read differs from the write");
	if (p->backing)
		check_file(p->backing, 0, w, len);
	free(w);
	free(r);
}

static void sc_unknown(struct probe *p)
{
	uint8_t b[512];
	expect_err(cmd(p, 42, 0, 0, 512, NULL, NULL), NBD_EINVAL, "unknown command 42");
	expect_err(cmd(p, NBD_CMD_READ, 1u << 9, 0, 512, NULL, b), NBD_EINVAL, "unknown flag bit 9");
	expect_err(cmd(p, NBD_CMD_BLOCK_STATUS, 0, 0, 512, NULL, NULL), NBD_EINVAL,
	           "block-status without a meta context");
	expect_err(cmd(p, NBD_CMD_READ, 0, 0, 0, NULL, b), 0, "read of 0 bytes");
	expect_err(cmd(p, NBD_CMD_WRITE, 0, 0, 0, b, NULL), 0, "write of 0 bytes");
	expect_err(cmd(p, NBD_CMD_READ, 0, 0, sizeof(b), NULL, b), 0, "read afterwards");
}

static void sc_unaligned(struct probe *p)
{
	uint8_t *b = xmalloc(8192);
	uint32_t mb = p->x.min_block;
	CHECK(mb > 1, "export has no minimum block size (min_block %u)", mb);
	printf("ok: min_block %u\n", mb);
	expect_err(cmd(p, NBD_CMD_READ, 0, mb / 2, mb, NULL, b), NBD_EINVAL, "unaligned read offset");
	expect_err(cmd(p, NBD_CMD_WRITE, 0, 0, mb + 1, b, NULL), NBD_EINVAL, "unaligned write length");
	fill(b, mb, 4);
	expect_err(cmd(p, NBD_CMD_WRITE, 0, mb, mb, b, NULL), 0, "aligned write");
	expect_err(cmd(p, NBD_CMD_READ, 0, mb, mb, NULL, b + 4096), 0, "aligned read");
	CHECK(!memcmp(b, b + 4096, mb), "aligned read differs");
	free(b);
}

static void sc_fua(struct probe *p)
{
	uint8_t b[8192];
	CHECK(p->backing, "fua needs the backing file");
	CHECK(p->x.tflags & NBD_FLAG_SEND_FUA, "SEND_FUA not advertised");
	fill(b, sizeof(b), 5);
	expect_err(cmd(p, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 12288, sizeof(b), b, NULL), 0, "write+FUA");
	check_direct(p->backing, 12288, b, sizeof(b));
	printf("ok: FUA data in the backing file (O_DIRECT) at the reply\n");
}

static void sc_flush(struct probe *p)
{
	uint8_t b[3][4096];
	CHECK(p->backing, "flush needs the backing file");
	CHECK(p->x.tflags & NBD_FLAG_SEND_FLUSH, "SEND_FLUSH not advertised");
	for (int i = 0; i < 3; i++) {
		fill(b[i], 4096, 10 + i);
		send_req(p, NBD_CMD_WRITE, 0, 65536 * (uint64_t)i + 4096, 4096, b[i]);
	}
	for (int i = 0; i < 3; i++) {
		struct nbd_simple_reply rep;
		CHECK(recv_reply(p, &rep) == 0 && rep.error == 0, "write %d failed", i);
	}
	expect_err(cmd(p, NBD_CMD_FLUSH, 0, 0, 0, NULL, NULL), 0, "flush");
	for (int i = 0; i < 3; i++)
		check_direct(p->backing, 65536 * (uint64_t)i + 4096, b[i], 4096);
	printf("ok: flushed writes in the backing file (O_DIRECT)\n");
}

static void sc_zeroes(struct probe *p)
{
	uint8_t b[65536], r[65536], z[65536] = { 0 };
	CHECK(p->x.tflags & NBD_FLAG_SEND_WRITE_ZEROES, "SEND_WRITE_ZEROES not advertised");
	for (int noh = 0; noh < 2; noh++) {
		uint64_t off = 1u << 20 | (uint64_t)noh << 17;
		fill(b, sizeof(b), 20);
		expect_err(cmd(p, NBD_CMD_WRITE, 0, off, sizeof(b), b, NULL), 0, "write pattern");
		expect_err(cmd(p, NBD_CMD_WRITE_ZEROES, noh ? NBD_CMD_FLAG_NO_HOLE : 0, off + 4096,
		               32768, NULL, NULL), 0, noh ? "write-zeroes NO_HOLE" : "write-zeroes");
		expect_err(cmd(p, NBD_CMD_READ, 0, off, sizeof(r), NULL, r), 0, "read back");
		CHECK(!memcmp(r, b, 4096), "data before the zeroed range changed");
		CHECK(!memcmp(r + 4096, z, 32768), "zeroed range does not read as zeroes");
		CHECK(!memcmp(r + 4096 + 32768, b + 4096 + 32768, sizeof(b) - 4096 - 32768),
		      "data after the zeroed range changed");
		if (p->backing) {
			check_file(p->backing, off + 4096, z, 32768);
			check_file(p->backing, off, b, 4096);
		}
	}
	expect_err(cmd(p, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FUA, 0, 4096, NULL, NULL), 0,
	           "write-zeroes FUA");
	if (p->backing)
		check_direct(p->backing, 0, z, 4096);
}

static void sc_trim(struct probe *p)
{
	uint8_t b[65536], r[65536], z[65536] = { 0 };
	CHECK(p->x.tflags & NBD_FLAG_SEND_TRIM, "SEND_TRIM not advertised");
	fill(b, sizeof(b), 30);
	expect_err(cmd(p, NBD_CMD_WRITE, 0, 2u << 20, sizeof(b), b, NULL), 0, "write pattern");
	expect_err(cmd(p, NBD_CMD_TRIM, 0, 2u << 20, sizeof(b), NULL, NULL), 0, "trim");
	expect_err(cmd(p, NBD_CMD_READ, 0, 2u << 20, sizeof(r), NULL, r), 0, "read after trim");
	/* files: the range is a hole now */
	CHECK(!memcmp(r, z, sizeof(r)), "trimmed range of a file does not read as zeroes");
	expect_err(cmd(p, NBD_CMD_CACHE, 0, 0, 65536, NULL, NULL), 0, "cache");
}

static void sc_concurrent(struct probe *p)
{
	enum { N = 64, LEN = 16384 };
	uint8_t *w = xmalloc((size_t)N * LEN), *r = xmalloc(LEN);
	uint64_t first = p->cookie + 1;
	bool seen[N] = { false };
	int out_of_order = 0;

	for (int i = 0; i < N; i++) {
		fill(w + (size_t)i * LEN, LEN, 100 + i);
		send_req(p, NBD_CMD_WRITE, 0, (uint64_t)i * LEN * 3, LEN, w + (size_t)i * LEN);
	}
	for (int i = 0; i < N; i++) {
		struct nbd_simple_reply rep;
		CHECK(recv_reply(p, &rep) == 0, "write replies cut short");
		CHECK(rep.error == 0, "write %llu: %s", (unsigned long long)rep.cookie,
		      nbd_err_name(rep.error));
		CHECK(rep.cookie >= first && rep.cookie < first + N && !seen[rep.cookie - first],
		      "unexpected cookie %llu", (unsigned long long)rep.cookie);
		seen[rep.cookie - first] = true;
	}
	first = p->cookie + 1;
	for (int i = 0; i < N; i++)
		send_req(p, NBD_CMD_READ, 0, (uint64_t)i * LEN * 3, LEN, NULL);
	for (int i = 0; i < N; i++) {
		struct nbd_simple_reply rep;
		CHECK(recv_reply(p, &rep) == 0 && rep.error == 0, "read reply %d", i);
		uint64_t k = rep.cookie - first;
		CHECK(k < N, "unexpected cookie %llu", (unsigned long long)rep.cookie);
		if (k != (uint64_t)i)
			out_of_order++;
		CHECK(read_all(p->fd, r, LEN) == 0, "read data cut short");
		CHECK(!memcmp(r, w + k * LEN, LEN), "read %llu returned another request's data",
		      (unsigned long long)k);
	}
	printf("ok: %d pipelined writes and reads verified (%d replies out of order)\n", N,
	       out_of_order);
	free(w);
	free(r);
}

static void sc_enospc(struct probe *p)
{
	const uint32_t len = 256 * 1024;
	uint8_t *b = xmalloc(len), r[512];
	uint32_t err = 0;
	uint64_t off;
	fill(b, len, 40);
	for (off = 0; off + len <= p->x.size; off += len) {
		err = cmd(p, NBD_CMD_WRITE, 0, off, len, b, NULL);
		if (err)
			break;
	}
	expect_err(err, NBD_ENOSPC, "write to a full backing store");
	printf("ok: ENOSPC at offset %llu\n", (unsigned long long)off);
	expect_err(cmd(p, NBD_CMD_READ, 0, 0, sizeof(r), NULL, r), 0, "read after ENOSPC");
	CHECK(!memcmp(r, b, sizeof(r)), "data written before ENOSPC is wrong");
	free(b);
}

/* The store shrank under the server: a read past its new end comes back
 * short, which must be an error (EIO), not stale or missing data. */
static void sc_shortread(struct probe *p)
{
	uint8_t b[4096];
	expect_err(cmd(p, NBD_CMD_READ, 0, p->x.size - sizeof(b), sizeof(b), NULL, b), NBD_EIO,
	           "read beyond the shrunk store");
	expect_err(cmd(p, NBD_CMD_READ, 0, 0, sizeof(b), NULL, b), 0, "read inside the store");
	if (p->backing)
		check_file(p->backing, 0, b, sizeof(b));
}

static void sc_vanish(struct probe *p, const char *addr, const char *name)
{
	/* half a WRITE payload, then gone */
	uint8_t *b = xmalloc(1u << 20);
	fill(b, 1u << 20, 50);
	send_req(p, NBD_CMD_WRITE, 0, 0, 32u << 20, NULL);
	write_all(p->fd, b, 1u << 20);
	close(p->fd);
	/* reads queued, replies never read */
	struct probe q = { 0 };
	CHECK(handshake(&q, addr, name) == 0, "second connection refused");
	for (int i = 0; i < 32; i++)
		send_req(&q, NBD_CMD_READ, 0, 0, 1u << 20, NULL);
	close(q.fd);
	/* the server still serves */
	struct probe t = { 0 };
	CHECK(handshake(&t, addr, name) == 0, "server stopped serving after clients vanished");
	expect_err(cmd(&t, NBD_CMD_READ, 0, 0, 4096, NULL, b), 0, "read on a new connection");
	disc(&t);
	free(b);
}

static void sc_cow(struct probe *p, const char *addr, const char *name)
{
	uint8_t w[10000], r[10000], orig[10000];
	CHECK(!(p->x.tflags & NBD_FLAG_CAN_MULTI_CONN), "CAN_MULTI_CONN on a copy-on-write export");
	CHECK(p->backing, "cow needs the base file");
	expect_err(cmd(p, NBD_CMD_READ, 0, 4000, sizeof(orig), NULL, orig), 0, "read base");
	fill(w, sizeof(w), 60);
	expect_err(cmd(p, NBD_CMD_WRITE, 0, 4000, sizeof(w), w, NULL), 0, "unaligned write to the diff");
	expect_err(cmd(p, NBD_CMD_READ, 0, 0, sizeof(r), NULL, r), 0, "read across diff and base");
	CHECK(!memcmp(r + 4000, w, sizeof(r) - 4000), "the connection does not see its own write");
	check_file(p->backing, 0, r, 4000);
	expect_err(cmd(p, NBD_CMD_WRITE_ZEROES, 0, 8192, 100, NULL, NULL), 0, "write-zeroes to the diff");
	expect_err(cmd(p, NBD_CMD_READ, 0, 8192, 100, NULL, r), 0, "read zeroes");
	for (int i = 0; i < 100; i++)
		CHECK(r[i] == 0, "zeroed byte %d reads %u", i, r[i]);
	if (p->x.tflags & NBD_FLAG_SEND_FLUSH)
		expect_err(cmd(p, NBD_CMD_FLUSH, 0, 0, 0, NULL, NULL), 0, "flush of the diff");
	check_file(p->backing, 4000, orig, sizeof(orig));
	printf("ok: base file unchanged while the diff holds the writes\n");
	/* another connection sees the base, not this connection's diff */
	struct probe q = { 0 };
	CHECK(handshake(&q, addr, name) == 0, "second connection refused");
	expect_err(cmd(&q, NBD_CMD_READ, 0, 4000, sizeof(r), NULL, r), 0, "read on a 2nd connection");
	CHECK(!memcmp(r, orig, sizeof(r)), "a second connection sees the first one's diff");
	disc(&q);
}

/* Pipelined writes; prints "busy" once the first reply is in, then takes
 * replies until the server closes (it was told to stop). Every reply must be
 * a success and every acknowledged write must be in the backing file. */
static void sc_sigterm(struct probe *p)
{
	enum { N = 256, LEN = 65536 };
	uint8_t *w = xmalloc((size_t)N * LEN);
	uint64_t first = p->cookie + 1;
	int acked = 0;
	struct nbd_simple_reply rep;

	CHECK(p->backing, "sigterm needs the backing file");
	for (int i = 0; i < N; i++) {
		uint8_t hdr[NBD_REQUEST_SIZE];
		struct nbd_request r = { .type = NBD_CMD_WRITE, .cookie = ++p->cookie,
		                         .offset = (uint64_t)i * LEN, .length = LEN };
		struct iovec iov[2] = { { hdr, sizeof(hdr) }, { w + (size_t)i * LEN, LEN } };
		fill(w + (size_t)i * LEN, LEN, 200 + i);
		nbd_request_encode(hdr, &r);
		/* the server stops reading when told to stop: sending may fail */
		if (writev(p->fd, iov, 2) != (ssize_t)(sizeof(hdr) + LEN))
			break;
		if (i == 0) {
			CHECK(recv_reply(p, &rep) == 0 && rep.error == 0, "first write failed");
			check_file(p->backing, 0, w, LEN);
			acked++;
			printf("busy\n");
			fflush(stdout);
		}
	}
	while (recv_reply(p, &rep) == 0) {
		uint64_t k = rep.cookie - first;
		CHECK(k < N, "unexpected cookie %llu", (unsigned long long)rep.cookie);
		CHECK(rep.error == 0, "write %llu failed during shutdown: %s",
		      (unsigned long long)k, nbd_err_name(rep.error));
		check_file(p->backing, k * LEN, w + k * LEN, LEN);
		acked++;
	}
	printf("ok: %d of %d writes acknowledged before the server stopped, all in the file\n",
	       acked, N);
	free(w);
}

int main(int argc, char **argv)
{
	struct probe p = { 0 };
	int rc;

	if (argc < 4) {
		fprintf(stderr, "usage: srv-probe ADDR EXPORT SCENARIO [BACKING]\n");
		return 2;
	}
	p.backing = argc > 4 ? argv[4] : NULL;
	signal(SIGPIPE, SIG_IGN);
	const char *sc = argv[3];
	rc = handshake(&p, argv[1], argv[2]);
	if (!strcmp(sc, "refused")) {
		CHECK(rc != 0, "export '%s' was served, expected a refusal", argv[2]);
		printf("ok: refused (%s)\n", strerror(-rc));
		return 0;
	}
	CHECK(rc == 0, "handshake for export '%s' failed: %s", argv[2], strerror(-rc));
	if (!strcmp(sc, "readonly")) sc_readonly(&p);
	else if (!strcmp(sc, "bounds")) sc_bounds(&p);
	else if (!strcmp(sc, "oversized")) { sc_oversized(&p); return 0; }
	else if (!strcmp(sc, "max-request")) sc_max_request(&p);
	else if (!strcmp(sc, "unknown")) sc_unknown(&p);
	else if (!strcmp(sc, "unaligned")) sc_unaligned(&p);
	else if (!strcmp(sc, "fua")) sc_fua(&p);
	else if (!strcmp(sc, "flush")) sc_flush(&p);
	else if (!strcmp(sc, "zeroes")) sc_zeroes(&p);
	else if (!strcmp(sc, "trim")) sc_trim(&p);
	else if (!strcmp(sc, "concurrent")) sc_concurrent(&p);
	else if (!strcmp(sc, "enospc")) sc_enospc(&p);
	else if (!strcmp(sc, "shortread")) sc_shortread(&p);
	else if (!strcmp(sc, "vanish")) { sc_vanish(&p, argv[1], argv[2]); return 0; }
	else if (!strcmp(sc, "cow")) sc_cow(&p, argv[1], argv[2]);
	else if (!strcmp(sc, "sigterm")) { sc_sigterm(&p); return 0; }
	else if (!strcmp(sc, "stuck")) {
		/* asks for 64 MiB of replies and never reads them */
		for (int i = 0; i < 64; i++)
			send_req(&p, NBD_CMD_READ, 0, 0, 1u << 20, NULL);
		/* the first reply is coming: the server has taken the requests */
		struct pollfd pfd = { .fd = p.fd, .events = POLLIN };
		CHECK(poll(&pfd, 1, 10000) == 1, "no reply within 10 s");
		printf("busy\n");
		fflush(stdout);
		char c;
		while (read(0, &c, 1) > 0)
			;
		return 0;
	}
	else if (!strcmp(sc, "hold")) {
		/* keeps the connection open until stdin closes (connection limits) */
		char c;
		printf("ok: connected\n");
		fflush(stdout);
		while (read(0, &c, 1) > 0)
			;
	}
	else fail("unknown scenario %s", sc);
	disc(&p);
	return 0;
}

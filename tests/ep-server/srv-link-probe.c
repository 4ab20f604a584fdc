/* srv-link-probe: the host side of a shm link, written directly against the
 * transport library's host API and the proto client machine (no
 * nbd-pcie-client in between), to check what nbd-pcie-server does with
 * frames a relay would never send.
 *
 *   srv-link-probe LINK EXPORT SCENARIO
 *   rw        write patterns of several sizes, read them back, DISC
 *   invalid   unknown commands and flags get EINVAL on a channel that stays
 *             usable; a new channel is served after the host closed one
 *   readonly  WRITE on a read-only export: EPERM, READ still works
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nbdpcie/transport.h>
#include <nbdproto/client.h>
#include <nbdproto/nbd.h>

#include "probe-check.h"

/* Everything here waits at most this long for the server (ms). */
#define WAIT_MS 10000

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static struct npt_link *link_open(const char *spec)
{
	struct npt_link *l;
	char err[256] = "";
	int rc = npt_link_open(spec, NPT_ROLE_HOST, &(struct npt_link_params){ 0 }, &l, err,
	                       sizeof(err));
	CHECK(rc == 0, "open %s: %s", spec, err);
	long long end = now_ms() + WAIT_MS;
	while ((rc = npt_link_check(l)) != 0) {
		CHECK(now_ms() < end, "link %s not up: %s", spec, npt_link_error(l));
		usleep(1000);
	}
	return l;
}

/* Opens a channel and runs the handshake; returns the channel in frames mode. */
static struct npt_chan *chan_connect(struct npt_link *l, const char *name, struct nbdp_export *x)
{
	struct nbdp_client_opts o = { .goal = NBDP_GOAL_GO, .export_name = name };
	struct nbdp_client *c = nbdp_client_new(&o);
	struct npt_chan *ch;
	uint8_t buf[4096];
	long long end = now_ms() + WAIT_MS;
	int rc = npt_chan_open(l, -1, &ch);

	CHECK(rc == 0, "npt_chan_open: %s", strerror(-rc));
	for (;;) {
		const void *out;
		size_t n;
		CHECK(now_ms() < end, "handshake timed out");
		npt_link_check(l);
		while ((n = nbdp_client_pending(c, &out)) > 0) {
			ssize_t s = npt_chan_send(ch, out, n);
			if (s == -EAGAIN)
				break;
			CHECK(s > 0, "npt_chan_send: %s", strerror((int)-s));
			nbdp_client_consumed(c, (size_t)s);
		}
		enum nbdp_client_state st = nbdp_client_state(c);
		CHECK(st != NBDP_C_FAILED && st != NBDP_C_DONE, "handshake: %s", nbdp_client_error(c));
		if (st == NBDP_C_TRANSMISSION && !nbdp_client_pending(c, &out))
			break;
		ssize_t r = npt_chan_recv(ch, buf, 1);   /* never past the handshake */
		if (r == -EAGAIN) {
			usleep(50);
			continue;
		}
		CHECK(r > 0, "handshake: channel closed (%zd)", r);
		nbdp_client_feed(c, buf, (size_t)r);
	}
	*x = *nbdp_client_export(c);
	nbdp_client_free(c);
	CHECK(npt_chan_begin_frames(ch) == 0, "begin_frames");
	return ch;
}

static uint64_t cookie;

/* One request through the ring; returns the NBD error. */
static uint32_t cmd(struct npt_link *l, struct npt_chan *ch, uint16_t type, uint16_t flags,
                    uint64_t off, uint32_t len, void *data)
{
	uint8_t req[NBD_REQUEST_SIZE];
	struct nbd_request r = { .flags = flags, .type = type, .cookie = ++cookie, .offset = off,
	                         .length = len };
	struct npt_hbuf b = { 0 };
	bool payload = type == NBD_CMD_READ || type == NBD_CMD_WRITE;
	struct npt_hcomp comp;
	struct nbd_simple_reply rep;
	long long end = now_ms() + WAIT_MS;
	int rc;

	nbd_request_encode(req, &r);
	if (payload) {
		CHECK(npt_host_buf_alloc(ch, len, &b) == 0, "buf_alloc %u", len);
		if (type == NBD_CMD_WRITE)
			memcpy(b.ptr, data, len);
	}
	while ((rc = npt_host_submit(ch, req, payload ? &b : NULL)) == -EAGAIN)
		CHECK(now_ms() < end, "ring full for %d s", WAIT_MS / 1000);
	CHECK(rc == 0, "npt_host_submit: %s", strerror(-rc));
	for (;;) {
		npt_link_check(l);
		rc = npt_host_reap(ch, &comp, 1);
		if (rc < 0) {
			if (payload)
				npt_host_buf_free(ch, &b);
			return UINT32_MAX;   /* channel ended */
		}
		if (rc == 1)
			break;
		if (npt_chan_status(ch) < 0) {
			if (payload)
				npt_host_buf_free(ch, &b);
			return UINT32_MAX;
		}
		CHECK(now_ms() < end, "no completion within %d s", WAIT_MS / 1000);
		usleep(20);
	}
	CHECK(nbd_reply_decode(comp.reply, &rep) == 0, "reply magic");
	CHECK(rep.cookie == r.cookie, "cookie %llu, expected %llu", (unsigned long long)rep.cookie,
	      (unsigned long long)r.cookie);
	if (type == NBD_CMD_READ && rep.error == 0)
		memcpy(data, comp.buf.ptr, len);
	if (payload)
		npt_host_buf_free(ch, &b);
	return rep.error;
}

static void expect(uint32_t got, uint32_t want, const char *what)
{
	CHECK(got == want, "%s: got %s, expected %s", what,
	      got == UINT32_MAX ? "channel closed" : nbd_err_name(got), nbd_err_name(want));
	printf("ok: %s -> %s\n", what, nbd_err_name(got));
}

static void sc_rw(struct npt_link *l, const char *name)
{
	struct nbdp_export x;
	struct npt_chan *ch = chan_connect(l, name, &x);
	uint32_t sizes[] = { 512, 4096, 65536, 1u << 20, npt_link_max_xfer(l) };
	uint64_t off = 0;

	printf("ok: export %s, %llu bytes, flags 0x%04x, max_xfer %u\n", x.name,
	       (unsigned long long)x.size, x.tflags, npt_link_max_xfer(l));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint32_t n = sizes[i];
		uint8_t *w = malloc(n), *r = malloc(n);
		for (uint32_t k = 0; k < n; k++)
			w[k] = (uint8_t)(k * 13 + i);
		CHECK(off + n <= x.size, "export too small");
		expect(cmd(l, ch, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, off, n, w), 0, "write+FUA");
		memset(r, 0, n);
		expect(cmd(l, ch, NBD_CMD_READ, 0, off, n, r), 0, "read");
		CHECK(!memcmp(w, r, n), "read of %u bytes at %llu differs", n, (unsigned long long)off);
		off += n;
		free(w);
		free(r);
	}
	expect(cmd(l, ch, NBD_CMD_FLUSH, 0, 0, 0, NULL), 0, "flush");
	expect(cmd(l, ch, NBD_CMD_READ, 0, x.size, 512, (uint8_t[512]){ 0 }), NBD_EINVAL,
	       "read beyond the end");
	npt_chan_close(ch);
}

static void sc_invalid(struct npt_link *l, const char *name)
{
	struct nbdp_export x;
	struct npt_chan *ch = chan_connect(l, name, &x);
	uint8_t b[512];
	expect(cmd(l, ch, NBD_CMD_READ, 0, 0, sizeof(b), b), 0, "read before");
	expect(cmd(l, ch, 42, 0, 0, 0, NULL), NBD_EINVAL, "unknown command 42");
	expect(cmd(l, ch, NBD_CMD_FLUSH, 1u << 7, 0, 0, NULL), NBD_EINVAL, "unknown flag on flush");
	expect(cmd(l, ch, NBD_CMD_TRIM, 0, 0, 4096, NULL), NBD_EINVAL, "trim not advertised");
	expect(cmd(l, ch, NBD_CMD_READ, 0, 0, sizeof(b), b), 0, "read after, same channel");
	npt_chan_close(ch);
	/* a channel closed by the host is freed: a new one works */
	ch = chan_connect(l, name, &x);
	expect(cmd(l, ch, NBD_CMD_READ, 0, 0, sizeof(b), b), 0, "read on a new channel");
	npt_chan_close(ch);
}

static void sc_readonly(struct npt_link *l, const char *name)
{
	struct nbdp_export x;
	struct npt_chan *ch = chan_connect(l, name, &x);
	uint8_t b[4096] = { 1 };
	CHECK(x.tflags & NBD_FLAG_READ_ONLY, "READ_ONLY not advertised");
	expect(cmd(l, ch, NBD_CMD_WRITE, 0, 0, sizeof(b), b), NBD_EPERM, "write on read-only");
	expect(cmd(l, ch, NBD_CMD_WRITE_ZEROES, 0, 0, sizeof(b), NULL), NBD_EPERM,
	       "write-zeroes on read-only");
	expect(cmd(l, ch, NBD_CMD_READ, 0, 0, sizeof(b), b), 0, "read on read-only");
	npt_chan_close(ch);
}

int main(int argc, char **argv)
{
	struct npt_link *l;

	if (argc != 4) {
		fprintf(stderr, "usage: srv-link-probe LINK EXPORT SCENARIO\n");
		return 2;
	}
	l = link_open(argv[1]);
	if (!strcmp(argv[3], "rw"))
		sc_rw(l, argv[2]);
	else if (!strcmp(argv[3], "invalid"))
		sc_invalid(l, argv[2]);
	else if (!strcmp(argv[3], "readonly"))
		sc_readonly(l, argv[2]);
	else
		fail("unknown scenario %s", argv[3]);
	npt_link_close(l);
	return 0;
}

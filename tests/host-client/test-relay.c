/* The relay between a downstream socket and the link, with an in-memory EP
 * behind the upstream ops (a RAM disk that answers requests, with a bounded
 * payload area and ring, reordering, error and link-loss injection). The
 * test thread is the NBD client on the other end of a socketpair. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <common/endian.h>

#include "internal.h"

#define DISK (64u << 20)

#include "fake-ep.h"

/* Reads the fake EP's state under its lock (the relay thread writes it). */
#define LOCKED(h, expr) ({ pthread_mutex_lock(&(h)->f.mu); __typeof__(expr) v_ = (expr); pthread_mutex_unlock(&(h)->f.mu); v_; })

/* ---------------------------------------------------- relay in a thread */

struct harness {
	struct fake f;
	struct npc_relay_conf conf;
	struct npc_relay_stats stats;
	pthread_t th;
	int ret;
	char err[256];
	int sock;                     /* the client's end */
};

static void *relay_thread(void *arg)
{
	struct harness *h = arg;

	h->ret = npc_relay_run(&h->conf, &h->stats, h->err, sizeof(h->err));
	close(h->conf.fd);
	return NULL;
}

static struct harness *start(uint32_t max_xfer, uint32_t area, uint16_t tflags)
{
	struct harness *h = calloc(1, sizeof(*h));
	int sv[2];

	assert_non_null(h);
	h->f.disk = calloc(1, DISK);
	for (uint32_t i = 0; i < DISK; i += 4)
		put_be32(h->f.disk + i, i);  /* every 4 bytes hold their offset */
	h->f.area = area;
	h->f.ring = 128;
	h->f.err_off = UINT64_MAX;
	h->f.die_after = -1;
	h->f.bell_fd = -1;
	pthread_mutex_init(&h->f.mu, NULL);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	h->sock = sv[0];
	h->conf.fd = sv[1];
	h->conf.up = &fake_ep_ops;
	h->conf.up_ctx = &h->f;
	h->conf.limits.size = DISK;
	h->conf.limits.tflags = tflags | NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
				NBD_FLAG_SEND_FUA;
	h->conf.limits.max_payload = 32u << 20;
	h->conf.max_xfer = max_xfer;
	return h;
}

/* The EP with a doorbell (fake_ep_bell_ops), as links with doorbells are. */
static void use_bell(struct harness *h)
{
	h->f.bell_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(h->f.bell_fd >= 0);
	h->conf.up = &fake_ep_bell_ops;
}

static void run(struct harness *h)
{
	assert_int_equal(pthread_create(&h->th, NULL, relay_thread, h), 0);
}

static int finish(struct harness *h)
{
	int ret;

	close(h->sock);
	pthread_join(h->th, NULL);
	ret = h->ret;
	assert_int_equal(h->f.area_used, 0);  /* every payload buffer went back */
	if (h->f.bell_fd >= 0)
		close(h->f.bell_fd);
	free(h->f.disk);
	free(h);
	return ret;
}

static void send_all(int fd, const void *buf, size_t len, bool bytewise)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, bytewise ? 1 : len, MSG_NOSIGNAL);
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static void recv_all(int fd, void *buf, size_t len, bool bytewise)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, bytewise ? 1 : len, 0);
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static void send_req(struct harness *h, uint16_t type, uint16_t flags, uint64_t cookie,
		     uint64_t off, uint32_t len, const void *payload, bool bytewise)
{
	struct nbd_request q = { .flags = flags, .type = type, .cookie = cookie, .offset = off,
				 .length = len };
	uint8_t hdr[28];

	nbd_request_encode(hdr, &q);
	send_all(h->sock, hdr, 28, bytewise);
	if (payload)
		send_all(h->sock, payload, len, bytewise);
}

static struct nbd_simple_reply recv_reply(struct harness *h, bool bytewise)
{
	uint8_t raw[16];
	struct nbd_simple_reply rep;

	recv_all(h->sock, raw, 16, bytewise);
	assert_int_equal(nbd_reply_decode(raw, &rep), 0);
	return rep;
}

static void expect_pattern(const uint8_t *buf, uint64_t off, uint32_t len)
{
	for (uint32_t i = 0; i < len; i += 4)
		if (get_be32(buf + i) != (uint32_t)(off + i))
			fail_msg("byte %u of read at %llu: got 0x%08x", i, (unsigned long long)off,
				 get_be32(buf + i));
}

static void disc(struct harness *h)
{
	send_req(h, NBD_CMD_DISC, 0, 99, 0, 0, NULL, false);
}

/* ----------------------------------------------------------------- tests */

static void read_returns_export_data(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);
	uint8_t *buf = malloc(65536);

	run(h);
	send_req(h, NBD_CMD_READ, 0, 7, 4096, 65536, NULL, false);
	struct nbd_simple_reply rep = recv_reply(h, false);
	assert_int_equal(rep.cookie, 7);
	assert_int_equal(rep.error, 0);
	recv_all(h->sock, buf, 65536, false);
	expect_pattern(buf, 4096, 65536);
	disc(h);
	assert_int_equal(finish(h), 0);
	free(buf);
}

static void write_reaches_export_then_reads_back(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);
	uint8_t data[8192], back[8192];

	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	run(h);
	send_req(h, NBD_CMD_WRITE, 0, 1, 1 << 20, sizeof(data), data, false);
	assert_int_equal(recv_reply(h, false).error, 0);
	assert_int_equal(LOCKED(h, memcmp(h->f.disk + (1 << 20), data, sizeof(data))), 0);
	send_req(h, NBD_CMD_READ, 0, 2, 1 << 20, sizeof(back), NULL, false);
	assert_int_equal(recv_reply(h, false).cookie, 2);
	recv_all(h->sock, back, sizeof(back), false);
	assert_memory_equal(back, data, sizeof(data));
	disc(h);
	assert_int_equal(finish(h), 0);
}

static void request_of_32mib_is_chunked_and_merged(void **s)
{
	/* 1 MiB link requests, 4 MiB payload area: 32 chunks that cannot all be
	 * staged at once, so both directions must stream. */
	struct harness *h = start(1u << 20, 4u << 20, 0);
	uint32_t len = 32u << 20;
	uint8_t *data = malloc(len), *back = malloc(len);

	for (uint32_t i = 0; i < len; i += 4)
		put_be32(data + i, ~i);
	run(h);
	send_req(h, NBD_CMD_WRITE, 0, 11, 0, len, data, false);
	struct nbd_simple_reply rep = recv_reply(h, false);
	assert_int_equal(rep.cookie, 11);
	assert_int_equal(rep.error, 0);
	assert_int_equal(LOCKED(h, h->f.submits), 32);
	assert_int_equal(LOCKED(h, h->f.max_len_seen), 1u << 20);
	assert_int_equal(LOCKED(h, memcmp(h->f.disk, data, len)), 0);
	send_req(h, NBD_CMD_READ, 0, 12, 0, len, NULL, false);
	rep = recv_reply(h, false);
	assert_int_equal(rep.cookie, 12);
	assert_int_equal(rep.error, 0);
	recv_all(h->sock, back, len, false);
	assert_memory_equal(back, data, len);
	disc(h);
	assert_int_equal(finish(h), 0);
	free(data);
	free(back);
}

static void one_byte_at_a_time_both_ways(void **s)
{
	struct harness *h = start(4096, 1u << 20, 0);
	uint8_t data[10000], back[10000];

	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i ^ 0x5a);
	run(h);
	send_req(h, NBD_CMD_WRITE, 0, 21, 12345, sizeof(data), data, true);
	assert_int_equal(recv_reply(h, true).cookie, 21);
	send_req(h, NBD_CMD_READ, 0, 22, 12345, sizeof(back), NULL, true);
	struct nbd_simple_reply rep = recv_reply(h, true);
	assert_int_equal(rep.cookie, 22);
	assert_int_equal(rep.error, 0);
	recv_all(h->sock, back, sizeof(back), true);
	assert_memory_equal(back, data, sizeof(data));
	disc(h);
	assert_int_equal(finish(h), 0);
}

static void short_socket_writes_keep_stream_intact(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);
	int small = 4096;
	uint8_t *buf = malloc(3u << 20);

	/* A tiny send buffer makes every sendmsg partial. */
	setsockopt(h->conf.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	run(h);
	for (uint64_t k = 0; k < 3; k++)
		send_req(h, NBD_CMD_READ, 0, 100 + k, k << 20, 1u << 20, NULL, false);
	for (uint64_t k = 0; k < 3; k++) {
		struct nbd_simple_reply rep = recv_reply(h, false);
		assert_int_equal(rep.error, 0);
		assert_true(rep.cookie >= 100 && rep.cookie < 103);
		recv_all(h->sock, buf, 1u << 20, false);
		expect_pattern(buf, (rep.cookie - 100) << 20, 1u << 20);
	}
	disc(h);
	assert_int_equal(finish(h), 0);
	free(buf);
}

static void out_of_order_completions_match_cookies(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);
	uint8_t buf[4096];
	bool seen[16] = { false };

	h->f.reverse = true;
	run(h);
	for (uint64_t k = 0; k < 16; k++)
		send_req(h, NBD_CMD_READ, 0, 1000 + k, k * 4096, 4096, NULL, false);
	for (int k = 0; k < 16; k++) {
		struct nbd_simple_reply rep = recv_reply(h, false);
		assert_true(rep.cookie >= 1000 && rep.cookie < 1016);
		assert_false(seen[rep.cookie - 1000]);
		seen[rep.cookie - 1000] = true;
		recv_all(h->sock, buf, sizeof(buf), false);
		expect_pattern(buf, (rep.cookie - 1000) * 4096, 4096);
	}
	disc(h);
	assert_int_equal(finish(h), 0);
}

static void bad_magic_closes_connection(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);
	uint8_t junk[28] = { 0x12, 0x34, 0x56, 0x78 };
	uint8_t b;

	run(h);
	send_all(h->sock, junk, sizeof(junk), false);
	assert_int_equal(recv(h->sock, &b, 1, 0), 0);   /* EOF: relay closed */
	assert_int_equal(finish(h), -EPROTO);
}

static void read_beyond_end_gets_einval_and_connection_lives(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);
	uint8_t buf[512];

	run(h);
	send_req(h, NBD_CMD_READ, 0, 5, DISK - 512, 1024, NULL, false);
	struct nbd_simple_reply rep = recv_reply(h, false);
	assert_int_equal(rep.cookie, 5);
	assert_int_equal(rep.error, NBD_EINVAL);
	assert_int_equal(LOCKED(h, h->f.submits), 0);   /* never reached the link */
	send_req(h, NBD_CMD_READ, 0, 6, DISK - 512, 512, NULL, false);
	rep = recv_reply(h, false);
	assert_int_equal(rep.error, 0);
	recv_all(h->sock, buf, sizeof(buf), false);
	expect_pattern(buf, DISK - 512, 512);
	disc(h);
	assert_int_equal(finish(h), 0);
}

static void write_to_readonly_gets_eperm_and_payload_is_skipped(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, NBD_FLAG_READ_ONLY);
	uint8_t data[4096];
	uint8_t buf[16];

	memset(data, 0xee, sizeof(data));
	/* The payload's first bytes look like a request: skipping must not parse them. */
	memcpy(data, "\x25\x60\x95\x13", 4);
	run(h);
	send_req(h, NBD_CMD_WRITE, 0, 8, 0, sizeof(data), data, false);
	assert_int_equal(recv_reply(h, false).error, NBD_EPERM);
	send_req(h, NBD_CMD_READ, 0, 9, 0, 16, NULL, false);
	struct nbd_simple_reply rep = recv_reply(h, false);
	assert_int_equal(rep.cookie, 9);
	assert_int_equal(rep.error, 0);
	recv_all(h->sock, buf, sizeof(buf), false);
	expect_pattern(buf, 0, 16);
	assert_int_equal(LOCKED(h, get_be32(h->f.disk)), 0);   /* export unchanged */
	disc(h);
	assert_int_equal(finish(h), 0);
}

static void oversized_write_gets_error_reply_then_close(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);
	struct nbd_request q = { .type = NBD_CMD_WRITE, .cookie = 81, .length = 100u << 20 };
	uint8_t hdr[28], b;

	run(h);
	nbd_request_encode(hdr, &q);
	send_all(h->sock, hdr, sizeof(hdr), false);   /* 100 MiB announced, none sent */
	struct nbd_simple_reply rep = recv_reply(h, false);
	assert_int_equal(rep.cookie, 81);
	assert_int_equal(rep.error, NBD_EINVAL);
	assert_int_equal(recv(h->sock, &b, 1, 0), 0);   /* then the relay closes */
	assert_int_equal(finish(h), -EPROTO);
}

static void unknown_command_gets_einval(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);

	run(h);
	send_req(h, 42, 0, 77, 0, 0, NULL, false);
	struct nbd_simple_reply rep = recv_reply(h, false);
	assert_int_equal(rep.cookie, 77);
	assert_int_equal(rep.error, NBD_EINVAL);
	disc(h);
	assert_int_equal(finish(h), 0);
}

static void link_error_reaches_client_as_eio(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);

	h->f.err_off = 8192;
	run(h);
	send_req(h, NBD_CMD_READ, 0, 31, 8192, 4096, NULL, false);
	struct nbd_simple_reply rep = recv_reply(h, false);
	assert_int_equal(rep.cookie, 31);
	assert_int_equal(rep.error, NBD_EIO);   /* no payload follows an error */
	send_req(h, NBD_CMD_FLUSH, 0, 32, 0, 0, NULL, false);
	rep = recv_reply(h, false);
	assert_int_equal(rep.cookie, 32);
	assert_int_equal(rep.error, 0);
	disc(h);
	assert_int_equal(finish(h), 0);
}

static void chunked_write_error_in_one_chunk_fails_whole_request(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);
	uint32_t len = 4u << 20;
	uint8_t *data = calloc(1, len);

	h->f.err_off = 3u << 20;    /* the fourth chunk */
	run(h);
	send_req(h, NBD_CMD_WRITE, 0, 41, 0, len, data, false);
	struct nbd_simple_reply rep = recv_reply(h, false);
	assert_int_equal(rep.cookie, 41);
	assert_int_equal(rep.error, NBD_EIO);
	disc(h);
	assert_int_equal(finish(h), 0);
	free(data);
}

static void link_loss_mid_request_ends_relay_with_reason(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);
	uint32_t len = 4u << 20;
	uint8_t *data = calloc(1, len);
	uint8_t b;

	struct nbd_request q = { .type = NBD_CMD_WRITE, .cookie = 51, .length = len };
	uint8_t hdr[28];
	size_t sent = 0;

	h->f.die_after = 2;          /* dies in the middle of a 4-chunk write */
	run(h);
	nbd_request_encode(hdr, &q);
	send_all(h->sock, hdr, 28, false);
	/* The relay may close before it has read the whole payload. */
	while (sent < len) {
		ssize_t n = send(h->sock, data + sent, len - sent, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	/* No reply: the connection closes (reset, as the payload was unread). */
	ssize_t got = recv(h->sock, &b, 1, 0);
	assert_true(got == 0 || (got < 0 && errno == ECONNRESET));
	pthread_join(h->th, NULL);
	assert_int_equal(h->ret, -ECONNRESET);
	assert_non_null(strstr(h->err, "peer reset"));
	close(h->sock);
	assert_int_equal(h->f.area_used, 0);
	free(h->f.disk);
	free(h);
	free(data);
}

static void bogus_cookie_from_link_is_protocol_error(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);
	uint8_t b;

	h->f.bogus_cookie = true;
	run(h);
	send_req(h, NBD_CMD_FLUSH, 0, 61, 0, 0, NULL, false);
	assert_int_equal(recv(h->sock, &b, 1, 0), 0);
	assert_int_equal(finish(h), -EPROTO);
}

static void disc_waits_for_in_flight_replies(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);
	uint8_t *buf = malloc(1u << 20);

	run(h);
	send_req(h, NBD_CMD_READ, 0, 71, 0, 1u << 20, NULL, false);
	disc(h);
	struct nbd_simple_reply rep = recv_reply(h, false);
	assert_int_equal(rep.cookie, 71);
	recv_all(h->sock, buf, 1u << 20, false);
	expect_pattern(buf, 0, 1u << 20);
	pthread_join(h->th, NULL);
	assert_int_equal(h->ret, 0);
	assert_int_equal(h->stats.requests, 1);
	assert_true(h->stats.saw_disc);
	assert_int_equal(h->stats.bytes_read, 1u << 20);
	close(h->sock);
	free(h->f.disk);
	free(h);
	free(buf);
}

static void eof_mid_payload_ends_cleanly(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);
	struct nbd_request q = { .type = NBD_CMD_WRITE, .cookie = 1, .length = 65536 };
	uint8_t hdr[28], part[100] = { 0 };

	run(h);
	nbd_request_encode(hdr, &q);
	send_all(h->sock, hdr, 28, false);
	send_all(h->sock, part, sizeof(part), false);
	shutdown(h->sock, SHUT_WR);
	pthread_join(h->th, NULL);
	assert_int_equal(h->ret, 0);
	assert_int_equal(h->f.submits, 0);        /* the truncated write went nowhere */
	close(h->sock);
	assert_int_equal(h->f.area_used, 0);
	free(h->f.disk);
	free(h);
}

static void chunk_larger_than_payload_area_fails_with_reason(void **s)
{
	/* A link whose payload area cannot hold one chunk: waiting would hang. */
	struct harness *h = start(1u << 20, 64u << 10, 0);
	uint8_t b;

	run(h);
	send_req(h, NBD_CMD_READ, 0, 91, 0, 1u << 20, NULL, false);
	assert_int_equal(recv(h->sock, &b, 1, 0), 0);
	pthread_join(h->th, NULL);
	assert_int_equal(h->ret, -ENOBUFS);
	assert_non_null(strstr(h->err, "chunk of 1048576 bytes"));
	close(h->sock);
	free(h->f.disk);
	free(h);
}

static void small_ring_applies_backpressure(void **s)
{
	struct harness *h = start(4096, 64u << 10, 0);
	uint8_t buf[4096];

	h->f.ring = 2;
	run(h);
	for (uint64_t k = 0; k < 200; k++)
		send_req(h, NBD_CMD_READ, 0, k, k * 4096, 4096, NULL, false);
	for (int k = 0; k < 200; k++) {
		struct nbd_simple_reply rep = recv_reply(h, false);
		assert_int_equal(rep.error, 0);
		recv_all(h->sock, buf, sizeof(buf), false);
		expect_pattern(buf, rep.cookie * 4096, 4096);
	}
	disc(h);
	assert_int_equal(finish(h), 0);
}

/* Writes of mixed sizes, one after the other in the stream: long ones are
 * received straight into the link's buffers (and the header after each
 * alone), short ones through the receive buffer; then read back. With
 * `pause`, each waits for its reply and the client stays silent for 5 ms,
 * long enough for the relay to stop polling and sleep. */
static void mixed_writes(struct harness *h, bool pause)
{
	static const uint32_t lens[] = { 1u << 20, 4096, 512u << 10, 100, 3u << 20, 65536,
					 65535, 28, 1u << 20, 1 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	uint64_t off[N], end = 0;
	uint8_t *data, *back;
	bool seen[N] = { false };

	for (unsigned k = 0; k < N; k++) {
		off[k] = end;
		end += lens[k] + 4096;   /* gaps the writes must not touch */
	}
	data = malloc(end);
	back = malloc(end);
	assert_non_null(data);
	assert_non_null(back);
	memcpy(data, h->f.disk, end);
	for (unsigned k = 0; k < N; k++)
		for (uint32_t i = 0; i < lens[k]; i++)
			data[off[k] + i] = (uint8_t)(i * 13 + k * 71 + 1);
	run(h);
	for (unsigned k = 0; k < N; k++) {
		send_req(h, NBD_CMD_WRITE, 0, k, off[k], lens[k], data + off[k], false);
		if (pause) {
			struct nbd_simple_reply rep = recv_reply(h, false);
			assert_int_equal(rep.cookie, k);
			assert_int_equal(rep.error, 0);
			nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
		}
	}
	for (unsigned k = 0; !pause && k < N; k++) {
		struct nbd_simple_reply rep = recv_reply(h, false);
		assert_true(rep.cookie < N);
		assert_false(seen[rep.cookie]);
		seen[rep.cookie] = true;
		assert_int_equal(rep.error, 0);
	}
	assert_int_equal(LOCKED(h, memcmp(h->f.disk, data, end)), 0);
	send_req(h, NBD_CMD_READ, 0, 100, 0, (uint32_t)end, NULL, false);
	struct nbd_simple_reply rep = recv_reply(h, false);
	assert_int_equal(rep.cookie, 100);
	assert_int_equal(rep.error, 0);
	recv_all(h->sock, back, end, false);
	assert_memory_equal(back, data, end);
	disc(h);
	free(data);
	free(back);
}

static void mixed_writes_in_one_stream(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);

	mixed_writes(h, false);
	assert_int_equal(finish(h), 0);
}

static void mixed_writes_in_one_stream_with_doorbell(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);

	use_bell(h);
	mixed_writes(h, false);
	assert_int_equal(finish(h), 0);
}

static void relay_with_doorbell_sleeps_between_requests_and_wakes_on_socket(void **s)
{
	struct harness *h = start(1u << 20, 8u << 20, 0);

	use_bell(h);
	mixed_writes(h, true);
	/* it slept at least once per pause, each ended by the next request */
	assert_true(LOCKED(h, h->f.sleeps) >= 9);
	assert_int_equal(finish(h), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(read_returns_export_data),
		cmocka_unit_test(write_reaches_export_then_reads_back),
		cmocka_unit_test(request_of_32mib_is_chunked_and_merged),
		cmocka_unit_test(one_byte_at_a_time_both_ways),
		cmocka_unit_test(short_socket_writes_keep_stream_intact),
		cmocka_unit_test(out_of_order_completions_match_cookies),
		cmocka_unit_test(bad_magic_closes_connection),
		cmocka_unit_test(read_beyond_end_gets_einval_and_connection_lives),
		cmocka_unit_test(write_to_readonly_gets_eperm_and_payload_is_skipped),
		cmocka_unit_test(unknown_command_gets_einval),
		cmocka_unit_test(oversized_write_gets_error_reply_then_close),
		cmocka_unit_test(link_error_reaches_client_as_eio),
		cmocka_unit_test(chunked_write_error_in_one_chunk_fails_whole_request),
		cmocka_unit_test(link_loss_mid_request_ends_relay_with_reason),
		cmocka_unit_test(bogus_cookie_from_link_is_protocol_error),
		cmocka_unit_test(disc_waits_for_in_flight_replies),
		cmocka_unit_test(eof_mid_payload_ends_cleanly),
		cmocka_unit_test(small_ring_applies_backpressure),
		cmocka_unit_test(chunk_larger_than_payload_area_fails_with_reason),
		cmocka_unit_test(mixed_writes_in_one_stream),
		cmocka_unit_test(mixed_writes_in_one_stream_with_doorbell),
		cmocka_unit_test(relay_with_doorbell_sleeps_between_requests_and_wakes_on_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

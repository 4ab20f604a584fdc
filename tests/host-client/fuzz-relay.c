/* libFuzzer target: the relay's parser of the downstream stream (what the
 * kernel or a local NBD client sends), with the in-memory EP behind it.
 * Input: one mode byte (EP behaviour: ring size, reordering, errors, link
 * loss, read-only export, write chunking) then the byte stream, delivered in
 * pieces by a writer thread that also drains the replies. Every payload
 * buffer must be back when the relay returns. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "fake-ep.h"

/* A small export keeps each run fast; max_xfer below the largest request
 * makes multi-chunk requests common. */
#define FUZZ_DISK (1u << 20)
#define FUZZ_XFER (64u << 10)

struct writer {
	int fd;
	const uint8_t *data;
	size_t size, piece;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t sink[65536];

	for (size_t off = 0; off < w->size;) {
		size_t n = w->size - off < w->piece ? w->size - off : w->piece;
		ssize_t k = send(w->fd, w->data + off, n, MSG_NOSIGNAL);
		if (k <= 0)
			break;
		off += (size_t)k;
	}
	shutdown(w->fd, SHUT_WR);
	while (recv(w->fd, sink, sizeof(sink), 0) > 0)
		;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *disk;
	struct fake *f;
	struct npc_relay_conf conf = { 0 };
	struct npc_relay_stats st = { 0 };
	struct writer w;
	pthread_t th;
	char err[256];
	int sv[2];
	uint8_t mode;

	if (size < 1 || size > 65536)
		return 0;
	npc_log_set_level(LOG_CRIT);
	if (!disk && !(disk = calloc(1, FUZZ_DISK)))
		abort();
	mode = data[0];
	f = calloc(1, sizeof(*f));
	if (!f)
		abort();
	f->disk = disk;
	pthread_mutex_init(&f->mu, NULL);
	f->area = 256u << 10;
	f->ring = 2u + (mode & 7u);
	f->reverse = mode & 8;
	f->err_off = (mode & 16) ? 4096 : UINT64_MAX;
	f->die_after = (mode & 32) ? (int)(mode >> 6) : -1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		abort();
	w = (struct writer){ .fd = sv[0], .data = data + 1, .size = size - 1,
			     .piece = (mode & 64) ? 61 : 4096 };
	conf.fd = sv[1];
	conf.up = &fake_ep_ops;
	conf.up_ctx = f;
	conf.limits.size = FUZZ_DISK;
	conf.limits.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
			     NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
			     ((mode & 128) ? NBD_FLAG_READ_ONLY : 0);
	conf.limits.max_payload = 256u << 10;
	conf.max_xfer = FUZZ_XFER;
	if (pthread_create(&th, NULL, writer_main, &w))
		abort();
	npc_relay_run(&conf, &st, err, sizeof(err));
	close(sv[1]);
	pthread_join(th, NULL);
	close(sv[0]);
	if (f->area_used != 0)
		abort();   /* a payload buffer leaked */
	pthread_mutex_destroy(&f->mu);
	free(f);
	return 0;
}

/* Helpers shared by the transport tests: NBD frames and an in-process link
 * pair over unique /dev/shm files. */
#ifndef TESTS_TRANSPORT_HELPERS_H
#define TESTS_TRANSPORT_HELPERS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <common/endian.h>
#include <nbdpcie/transport.h>

#define T_NBD_REQUEST_MAGIC 0x25609513u
#define T_NBD_REPLY_MAGIC   0x67446698u
#define T_NBD_CMD_READ  0
#define T_NBD_CMD_WRITE 1
#define T_NBD_CMD_FLUSH 3

static inline void t_make_req(uint8_t req[28], uint16_t type, uint64_t cookie, uint64_t off, uint32_t len)
{
	put_be32(req, T_NBD_REQUEST_MAGIC);
	put_be16(req + 4, 0);
	put_be16(req + 6, type);
	put_be64(req + 8, cookie);
	put_be64(req + 16, off);
	put_be32(req + 24, len);
}

static inline void t_make_reply(uint8_t rep[16], const uint8_t req[28], uint32_t error)
{
	put_be32(rep, T_NBD_REPLY_MAGIC);
	put_be32(rep + 4, error);
	memcpy(rep + 8, req + 8, 8);
}

/* Unique /dev/shm name for this process and purpose. */
static inline void t_shm_path(char *buf, size_t len, const char *what)
{
	static unsigned seq;

	snprintf(buf, len, "/dev/shm/npt-test-%s-%d-%u", what, (int)getpid(), seq++);
}

static inline void t_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static inline uint64_t t_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* xorshift64*: reproducible payload bytes and random choices */
static inline uint64_t t_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

static inline void t_fill(void *buf, uint32_t len, uint64_t seed)
{
	uint8_t *p = buf;
	uint64_t s = seed | 1, v = 0;

	for (uint32_t i = 0; i < len; i++) {
		if (i % 8 == 0)
			v = t_rand(&s);
		p[i] = (uint8_t)(v >> (8 * (i % 8)));
	}
}

/* FNV-1a: end-to-end checksum of payloads */
static inline uint64_t t_sum(const void *buf, uint32_t len)
{
	const uint8_t *p = buf;
	uint64_t h = 0xcbf29ce484222325ull;

	for (uint32_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

#endif

/* nbdpcie-vmtool: seeded pseudo-random data that can be written and checked
 * at any byte range of a file or block device, on either side of the link.
 * Byte o of the pattern for seed s is byte (o % 8) (little-endian) of
 * mix64(s, o / 8), so the guest can write through /dev/nbd0 and the host can
 * check the EP's backing file at the same offsets without sharing a file. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* One read or write moves at most this much: large enough that the kernel
 * splits it into several NBD requests, small enough for a 1 GiB guest. */
#define CHUNK (1024 * 1024)

/* O_DIRECT buffers are aligned to this: the largest logical block size the
 * kernel nbd driver accepts (its blksize limit is the page size). */
#define DIRECT_ALIGN 4096

/* writeloop prints an ACK line every this many blocks: often enough for the
 * host to kill the server mid-loop, rarely enough not to flood the serial. */
#define ACK_EVERY 16

static uint64_t mix64(uint64_t seed, uint64_t word)
{
	/* splitmix64's finaliser over seed and word index. */
	uint64_t z = seed + (word + 1) * 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill(uint8_t *buf, uint64_t off, size_t len, int zero, uint64_t seed)
{
	size_t i = 0;

	if (zero) {
		memset(buf, 0, len);
		return;
	}
	/* Byte by byte up to a word boundary of the offset and for the tail,
	 * a whole word at a time in between (TCG guests are slow). */
	for (; i < len && (off + i) % 8; i++)
		buf[i] = (uint8_t)(mix64(seed, (off + i) / 8) >> (8 * ((off + i) % 8)));
	for (; len - i >= 8; i += 8) {
		uint64_t w = mix64(seed, (off + i) / 8);
		int b;

		for (b = 0; b < 8; b++)
			buf[i + b] = (uint8_t)(w >> (8 * b));
	}
	for (; i < len; i++)
		buf[i] = (uint8_t)(mix64(seed, (off + i) / 8) >> (8 * ((off + i) % 8)));
}

static int parse_seed(const char *s, int *zero, uint64_t *seed)
{
	*zero = !strcmp(s, "zero");
	*seed = 0;
	return *zero ? 0 : vmtool_parse_u64("seed", s, seed);
}

static int full_pwrite(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENOSPC;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int full_pread(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int vmtool_cmd_pattern(int argc, char **argv)
{
	uint64_t off, len, seed, done, bad = 0, first_bad = 0;
	uint8_t first_got = 0, first_want = 0;
	int write_mode, zero, direct = 0, sync = 0, fd, err, i, rc = 1;
	uint8_t *buf = NULL, *want = NULL;

	if (argc < 5 || (strcmp(argv[0], "write") && strcmp(argv[0], "verify"))) {
		fprintf(stderr, "vmtool: pattern write|verify PATH OFFSET LENGTH SEED|zero [direct] [sync]\n");
		return 2;
	}
	write_mode = !strcmp(argv[0], "write");
	if (vmtool_parse_u64("offset", argv[2], &off) ||
	    vmtool_parse_u64("length", argv[3], &len) || parse_seed(argv[4], &zero, &seed))
		return 2;
	for (i = 5; i < argc; i++) {
		if (!strcmp(argv[i], "direct"))
			direct = 1;
		else if (!strcmp(argv[i], "sync"))
			sync = 1;
		else {
			fprintf(stderr, "vmtool: pattern: unknown flag '%s'\n", argv[i]);
			return 2;
		}
	}
	fd = open(argv[1], (write_mode ? O_WRONLY | O_CREAT : O_RDONLY) | (direct ? O_DIRECT : 0), 0644);
	if (fd < 0) {
		fprintf(stderr, "vmtool: pattern %s: open %s: %s\n", argv[0], argv[1], strerror(errno));
		return 1;
	}
	if (posix_memalign((void **)&buf, DIRECT_ALIGN, CHUNK) ||
	    posix_memalign((void **)&want, DIRECT_ALIGN, CHUNK)) {
		fprintf(stderr, "vmtool: pattern: out of memory\n");
		goto out;
	}
	for (done = 0; done < len;) {
		size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
		size_t j;

		fill(want, off + done, n, zero, seed);
		if (write_mode) {
			err = full_pwrite(fd, want, n, off + done);
		} else {
			err = full_pread(fd, buf, n, off + done);
			for (j = 0; !err && j < n; j++) {
				if (buf[j] == want[j] || bad++)
					continue;
				first_bad = off + done + j;
				first_got = buf[j];
				first_want = want[j];
			}
		}
		if (err == -ENODATA) {
			fprintf(stderr, "vmtool: pattern %s %s: offset %" PRIu64 " + length %zu beyond the end of the file\n",
				argv[0], argv[1], off + done, n);
			goto out;
		}
		if (err) {
			fprintf(stderr, "vmtool: pattern %s %s: offset %" PRIu64 " length %zu: %s\n",
				argv[0], argv[1], off + done, n, strerror(-err));
			goto out;
		}
		done += n;
	}
	if (write_mode && sync && fsync(fd)) {
		fprintf(stderr, "vmtool: pattern write %s: fsync: %s\n", argv[1], strerror(errno));
		goto out;
	}
	if (bad) {
		fprintf(stderr, "vmtool: pattern verify %s: %" PRIu64 " of %" PRIu64
			" bytes from offset %" PRIu64 " differ from seed %s, first at offset %" PRIu64
			" (expected 0x%02x, read 0x%02x)\n",
			argv[1], bad, len, off, argv[4], first_bad, first_want, first_got);
		goto out;
	}
	printf("pattern %s %s offset %" PRIu64 " length %" PRIu64 " seed %s: ok\n", argv[0],
	       argv[1], off, len, argv[4]);
	rc = 0;
out:
	free(buf);
	free(want);
	close(fd);
	return rc;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* writeloop PATH BLOCK COUNT SEED [SECONDS]: writes blocks 0..COUNT-1 with
 * O_DIRECT|O_DSYNC, and starts over at block 0 until at least SECONDS have
 * passed, so that the loop is still running whenever the host strikes, on a
 * fast machine too. Rewriting a block writes the same bytes (the pattern
 * depends only on the offset), so "acknowledged" stays well defined: the
 * blocks [0, n) of the final VMTOOL-ACKED line hold the pattern. */
int vmtool_cmd_writeloop(int argc, char **argv)
{
	uint64_t bs, count, seed, secs = 0, writes = 0, acked;
	uint8_t *buf = NULL;
	int zero, fd, err = 0;
	double t0;

	if ((argc != 4 && argc != 5) || vmtool_parse_u64("block", argv[1], &bs) ||
	    vmtool_parse_u64("count", argv[2], &count) || parse_seed(argv[3], &zero, &seed) ||
	    (argc == 5 && vmtool_parse_u64("seconds", argv[4], &secs))) {
		fprintf(stderr, "vmtool: writeloop PATH BLOCK COUNT SEED [SECONDS]\n");
		return 2;
	}
	if (!bs || bs > CHUNK || bs % DIRECT_ALIGN || !count) {
		fprintf(stderr, "vmtool: writeloop: block %" PRIu64 " not a multiple of %d up to %d, or no blocks\n",
			bs, DIRECT_ALIGN, CHUNK);
		return 2;
	}
	fd = open(argv[0], O_WRONLY | O_DIRECT | O_DSYNC);
	if (fd < 0) {
		fprintf(stderr, "vmtool: writeloop: open %s: %s\n", argv[0], strerror(errno));
		return 1;
	}
	if (posix_memalign((void **)&buf, DIRECT_ALIGN, bs)) {
		fprintf(stderr, "vmtool: writeloop: out of memory\n");
		close(fd);
		return 1;
	}
	t0 = now_s();
	while (writes < count || now_s() - t0 < (double)secs) {
		uint64_t i = writes % count;

		fill(buf, i * bs, bs, zero, seed);
		err = full_pwrite(fd, buf, bs, i * bs);
		if (err) {
			fprintf(stderr, "vmtool: writeloop %s: block %" PRIu64 " (offset %" PRIu64 "), write %" PRIu64 ": %s\n",
				argv[0], i, i * bs, writes, strerror(-err));
			break;
		}
		writes++;
		if (writes % ACK_EVERY == 0)
			printf("VMTOOL-ACK %" PRIu64 " t=%.2f\n", writes, now_s() - t0);
	}
	/* O_DSYNC: each completed write was acknowledged as durable. */
	acked = writes < count ? writes : count;
	printf("VMTOOL-ACKED %" PRIu64 " blocks of %" PRIu64 " bytes (%" PRIu64 " writes in %.2f s)\n",
	       acked, bs, writes, now_s() - t0);
	free(buf);
	close(fd);
	return err ? 1 : 0;
}

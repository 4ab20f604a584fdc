/* Copy-on-write, as nbd-server does it: the base file is never modified;
 * each connection writes to its own diff (a sparse, already-unlinked file in
 * cowdir or next to the base file) that is discarded at disconnect. A bitmap
 * says which blocks live in the diff. I/O here is synchronous on the worker
 * thread (see docs/nbd-pcie-server.md: copy-on-write trades speed for
 * simplicity). */
#define _GNU_SOURCE   /* mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Granule of the diff: the page size, so partial-block copies stay small. */
#define COW_BLOCK 4096u

struct srv_cow {
	const struct srv_export *e;
	int fd;
	uint8_t *map;           /* one bit per COW_BLOCK: in the diff */
};

int srv_cow_open(const struct srv_export *e, unsigned long conn_id, struct srv_cow **out,
                 char *err, size_t errlen)
{
	struct srv_cow *c = calloc(1, sizeof(*c));
	char path[4096], base[1024], dir[3072];
	uint64_t nblocks = (e->size + COW_BLOCK - 1) / COW_BLOCK;

	if (!c)
		return -ENOMEM;
	c->e = e;
	c->map = calloc((size_t)((nblocks + 7) / 8), 1);
	if (!c->map) {
		free(c);
		return -ENOMEM;
	}
	snprintf(base, sizeof(base), "%s", e->cfg->path);
	if (e->cfg->cowdir) {
		snprintf(dir, sizeof(dir), "%s", e->cfg->cowdir);
	} else {
		char tmp[3072];
		snprintf(tmp, sizeof(tmp), "%s", e->cfg->path);
		snprintf(dir, sizeof(dir), "%s", dirname(tmp));
	}
	snprintf(path, sizeof(path), "%s/%s-%d-%lu.diff-XXXXXX", dir, basename(base),
	         (int)getpid(), conn_id);
	c->fd = mkostemp(path, O_CLOEXEC);
	if (c->fd < 0) {
		int rc = -errno;
		snprintf(err, errlen, "export %s: copy-on-write diff %s: %s", e->cfg->name, path,
		         strerror(errno));
		free(c->map);
		free(c);
		return rc;
	}
	unlink(path);   /* discarded when the connection closes the fd */
	*out = c;
	return 0;
}

void srv_cow_close(struct srv_cow *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c->map);
	free(c);
}

static bool in_diff(const struct srv_cow *c, uint64_t blk)
{
	return c->map[blk / 8] & (1u << (blk % 8));
}

static void mark(struct srv_cow *c, uint64_t blk)
{
	c->map[blk / 8] |= (uint8_t)(1u << (blk % 8));
}

static int full_pread(int fd, void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;   /* short read: the backing store shrank */
		buf = (char *)buf + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf = (const char *)buf + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int srv_cow_read(struct srv_cow *c, void *buf, uint32_t len, uint64_t off)
{
	while (len) {
		uint64_t blk = off / COW_BLOCK;
		bool diff = in_diff(c, blk);
		uint64_t end = off;
		/* the longest run of blocks in the same place */
		while (end < off + len && in_diff(c, end / COW_BLOCK) == diff)
			end = (end / COW_BLOCK + 1) * COW_BLOCK;
		if (end > off + len)
			end = off + len;
		int rc = full_pread(diff ? c->fd : c->e->fd, buf, (size_t)(end - off), off);
		if (rc)
			return rc;
		buf = (char *)buf + (end - off);
		len -= (uint32_t)(end - off);
		off = end;
	}
	return 0;
}

/* Writes within one block that the write does not cover entirely. */
static int write_partial(struct srv_cow *c, const void *buf, uint32_t len, uint64_t off)
{
	uint64_t blk = off / COW_BLOCK;
	uint64_t bstart = blk * COW_BLOCK;
	uint32_t blen = (uint32_t)(c->e->size - bstart < COW_BLOCK ? c->e->size - bstart : COW_BLOCK);
	uint8_t tmp[COW_BLOCK];
	int rc;

	if (in_diff(c, blk))
		return full_pwrite(c->fd, buf, len, off);
	rc = full_pread(c->e->fd, tmp, blen, bstart);
	if (rc)
		return rc;
	memcpy(tmp + (off - bstart), buf, len);
	rc = full_pwrite(c->fd, tmp, blen, bstart);
	if (!rc)
		mark(c, blk);
	return rc;
}

int srv_cow_write(struct srv_cow *c, const void *buf, uint32_t len, uint64_t off)
{
	while (len) {
		uint64_t blk = off / COW_BLOCK;
		uint64_t bstart = blk * COW_BLOCK;
		uint64_t bend = bstart + COW_BLOCK < c->e->size ? bstart + COW_BLOCK : c->e->size;
		int rc;
		if (off == bstart && off + len >= bend) {
			/* whole blocks: one write for the run */
			uint64_t run = off + len;
			if (run < c->e->size)
				run = run / COW_BLOCK * COW_BLOCK;
			rc = full_pwrite(c->fd, buf, (size_t)(run - off), off);
			if (rc)
				return rc;
			for (uint64_t b = blk; b * COW_BLOCK < run; b++)
				mark(c, b);
			buf = (const char *)buf + (run - off);
			len -= (uint32_t)(run - off);
			off = run;
		} else {
			uint32_t n = (uint32_t)(bend - off < len ? bend - off : len);
			rc = write_partial(c, buf, n, off);
			if (rc)
				return rc;
			buf = (const char *)buf + n;
			len -= n;
			off += n;
		}
	}
	return 0;
}

int srv_cow_zero(struct srv_cow *c, uint32_t len, uint64_t off)
{
	/* Zeroes written through the same path, in pieces of this size. */
	static const uint8_t zero[64 * 1024];

	while (len) {
		uint32_t n = len < sizeof(zero) ? len : (uint32_t)sizeof(zero);
		int rc = srv_cow_write(c, zero, n, off);
		if (rc)
			return rc;
		len -= n;
		off += n;
	}
	return 0;
}

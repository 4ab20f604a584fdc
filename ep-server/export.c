/* Backing stores: regular files and block devices, opened once at start.
 * Read-only and copy-on-write exports are never opened for writing. */
#define _GNU_SOURCE   /* preadv2, RWF_NOWAIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <unistd.h>

#include "internal.h"

/* Whether the block device says it is rotational (sysfs queue/rotational;
 * partitions keep it in their parent's queue). */
static bool blk_rotational(dev_t rdev)
{
	const char *fmt[] = { "/sys/dev/block/%u:%u/queue/rotational",
	                      "/sys/dev/block/%u:%u/../queue/rotational" };
	for (size_t i = 0; i < 2; i++) {
		char path[128];
		int c = EOF;
		FILE *f;
		snprintf(path, sizeof(path), fmt[i], major(rdev), minor(rdev));
		f = fopen(path, "re");
		if (!f)
			continue;
		c = fgetc(f);
		fclose(f);
		return c == '1';
	}
	return false;
}

/* Whether READ and WRITE should run as plain pread/pwrite on the worker: a
 * regular file in memory (tmpfs, ramfs) that the kernel cannot read with
 * RWF_NOWAIT. io_uring then hands every READ and WRITE to one of its io-wq
 * threads (it cannot try them inline without blocking), a context switch
 * there and back per request that costs more than the copy itself (perf:
 * 4 KiB random reads at QD32 spent a third of the server's CPU switching
 * to and from iou-wrk); a copy from memory never waits for a device, so
 * doing it on the worker blocks nothing. Where the kernel can do NOWAIT,
 * io_uring already completes page-cache hits inline. */
static bool inline_rw_pays(int fd)
{
	uint8_t b;
	struct iovec iov = { &b, 1 };

	return preadv2(fd, &iov, 1, 0, RWF_NOWAIT) < 0 && errno == EOPNOTSUPP;
}

/* A regular file whose pages are memory, never a device's (tmpfs, ramfs). */
static bool in_memory(int fd)
{
	struct statfs sf;

	return fstatfs(fd, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
}

int srv_export_open(struct srv_export *e, const struct srv_export_cfg *cfg,
                    char *err, size_t errlen)
{
	bool writable = !cfg->readonly && !cfg->copyonwrite;
	int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	uint64_t backing;
	struct stat st;

	memset(e, 0, sizeof(*e));
	e->fd = -1;
	e->cfg = cfg;
	if (writable && cfg->sync)
		flags |= O_DSYNC;   /* sync = true: every write durable before its reply */
	e->fd = open(cfg->path, flags);
	if (e->fd < 0) {
		int rc = -errno;
		snprintf(err, errlen, "export %s: open %s (%s): %s", cfg->name, cfg->path,
		         writable ? "read-write" : "read-only", strerror(errno));
		return rc;
	}
	if (fstat(e->fd, &st) < 0)
		goto fail_errno;
	if (S_ISBLK(st.st_mode)) {
		int lbs = 512;
		e->is_blk = true;
		if (ioctl(e->fd, BLKGETSIZE64, &backing) < 0)
			goto fail_errno;
		if (ioctl(e->fd, BLKSSZGET, &lbs) < 0 || lbs < 512)
			lbs = 512;   /* the smallest sector any block device has */
		e->min_block = (uint32_t)lbs;
		e->rotational = blk_rotational(st.st_rdev);
	} else if (S_ISREG(st.st_mode)) {
		backing = (uint64_t)st.st_size;
		e->min_block = 1;
		e->in_memory = in_memory(e->fd);
		e->inline_rw = e->in_memory && inline_rw_pays(e->fd);
	} else {
		snprintf(err, errlen, "export %s: %s is not a regular file or block device",
		         cfg->name, cfg->path);
		close(e->fd);
		e->fd = -1;
		return -EINVAL;
	}
	if (cfg->filesize && cfg->filesize > backing) {
		snprintf(err, errlen, "export %s: filesize %llu exceeds the size %llu of %s",
		         cfg->name, (unsigned long long)cfg->filesize,
		         (unsigned long long)backing, cfg->path);
		close(e->fd);
		e->fd = -1;
		return -EINVAL;
	}
	e->size = cfg->filesize ? cfg->filesize : backing;
	if (e->size == 0) {
		snprintf(err, errlen, "export %s: %s is empty (size 0); give it a size first",
		         cfg->name, cfg->path);
		close(e->fd);
		e->fd = -1;
		return -EINVAL;
	}
	e->pref_block = e->min_block > SRV_PREF_BLOCK ? e->min_block : SRV_PREF_BLOCK;
	e->max_block = SRV_MAX_REQUEST;
	e->tflags = NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_CACHE;
	if (cfg->readonly)
		e->tflags |= NBD_FLAG_READ_ONLY;
	if (cfg->flush)
		e->tflags |= NBD_FLAG_SEND_FLUSH;
	if (cfg->fua)
		e->tflags |= NBD_FLAG_SEND_FUA;
	if (cfg->rotational || e->rotational)   /* configured, or the device says so */
		e->tflags |= NBD_FLAG_ROTATIONAL;
	if (cfg->trim)
		e->tflags |= NBD_FLAG_SEND_TRIM;
	/* Every connection shares one fd and one page cache, so a FLUSH on one
	 * covers writes acknowledged on all; copy-on-write diffs are private. */
	if (!cfg->copyonwrite)
		e->tflags |= NBD_FLAG_CAN_MULTI_CONN;
	if (e->inline_rw)
		srv_log(LOG_INFO, "export %s: %s is in memory and has no non-blocking reads: "
		        "reads and writes run on the worker threads, not through io_uring",
		        cfg->name, cfg->path);
	srv_export_map(e);
	atomic_init(&e->nconn, 0);
	return 0;

fail_errno: {
		int rc = -errno;
		snprintf(err, errlen, "export %s: %s: %s", cfg->name, cfg->path, strerror(errno));
		close(e->fd);
		e->fd = -1;
		return rc;
	}
}

void srv_export_close(struct srv_export *e)
{
	srv_export_unmap(e);
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
}

/* One authfile line "ADDR" or "ADDR/PREFIX" against a client address. */
static bool match_line(const char *line, const struct sockaddr *sa)
{
	char addr[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(line, '/');
	size_t alen = slash ? (size_t)(slash - line) : strlen(line);
	unsigned char want[16], have[16];
	int family, bits, nbytes;

	if (alen >= sizeof(addr))
		return false;
	memcpy(addr, line, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, want) == 1) {
		family = AF_INET;
		nbytes = 4;
	} else if (inet_pton(AF_INET6, addr, want) == 1) {
		family = AF_INET6;
		nbytes = 16;
	} else {
		return false;
	}
	bits = nbytes * 8;
	if (slash) {
		char *end;
		long b = strtol(slash + 1, &end, 10);
		if (*end || b < 0 || b > bits)
			return false;
		bits = (int)b;
	}
	if (sa->sa_family == AF_INET && family == AF_INET) {
		memcpy(have, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (family == AF_INET6) {
			memcpy(have, a6, 16);
		} else if (IN6_IS_ADDR_V4MAPPED(a6)) {
			memcpy(have, (const uint8_t *)a6 + 12, 4);
		} else {
			return false;
		}
	} else {
		return false;
	}
	for (int i = 0; i < nbytes && bits > 0; i++, bits -= 8) {
		unsigned char mask = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
		if ((want[i] & mask) != (have[i] & mask))
			return false;
	}
	return true;
}

bool srv_export_allows(const struct srv_export *e, const struct sockaddr *sa)
{
	char line[256];
	bool ok = false;
	FILE *f;

	if (!e->cfg->authfile)
		return true;
	f = fopen(e->cfg->authfile, "re");
	if (!f) {
		srv_log(LOG_ERR, "export %s: authfile %s: %s; refusing TCP clients", e->cfg->name,
		        e->cfg->authfile, strerror(errno));
		return false;
	}
	while (!ok && fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t");
		p[strcspn(p, " \t\r\n#")] = '\0';
		if (*p)
			ok = match_line(p, sa);
	}
	fclose(f);
	return ok;
}

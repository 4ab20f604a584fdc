/* Direct reads: a READ of a memory-backed export (tmpfs, ramfs), answered on
 * a PCIe channel whose DMA engine can read any EP memory
 * (npt_ep_push_any_src), is pushed to the host straight from the file's
 * pages through a read-only mapping, instead of being copied into the
 * channel's staging memory first (one copy of every byte less; see
 * docs/performance.md, "What profiling found", item 13).
 *
 * Only READs longer than the worker copies itself (INLINE_MAX, engine.c),
 * and only when every page of the range is in memory (srv_map_covers): a
 * mapping's read fault on a hole of a sparse file would allocate the page
 * (tmpfs), where a read() returns zeroes without; such READs, and short
 * ones (for which the checks would cost about what they save), go the
 * usual way.
 *
 * The file can shrink under the server (another process truncates it). The
 * size is checked before each read; a truncation that races the copy makes
 * the copy fault (SIGBUS) instead of returning a short count, and the guard
 * below turns that fault into -EIO for the request. The transport reads the
 * source before it changes any state of the channel (transport.h,
 * npt_ep_complete_from), so jumping out of the copy leaves the request to
 * be answered again, with the error. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "internal.h"

/* The guarded read running on this thread, for the SIGBUS handler. */
static __thread sigjmp_buf *guard_jmp;
static __thread const uint8_t *guard_lo, *guard_hi;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	const uint8_t *a = si->si_addr;

	(void)uc;
	if (guard_jmp && a >= guard_lo && a < guard_hi)
		siglongjmp(*guard_jmp, 1);
	/* Not a guarded read's fault: the default action (terminate, core),
	 * also for a SIGBUS sent by kill (raised again once we return). */
	signal(sig, SIG_DFL);
	raise(sig);
}

int srv_map_guard_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	/* SA_NODEFER: jumping out of the handler leaves SIGBUS unblocked
	 * without a sigprocmask call per read (sigsetjmp without the mask). */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL) ? -errno : 0;
}

void srv_export_map(struct srv_export *e)
{
	void *m;
	int rc;

	if (e->is_blk || !e->in_memory || e->cfg->copyonwrite)
		return;
	rc = srv_map_guard_install();
	if (rc) {
		srv_log(LOG_WARNING, "export %s: no direct reads: SIGBUS handler: %s",
		        e->cfg->name, strerror(-rc));
		return;
	}
#if SIZE_MAX < UINT64_MAX
	if (e->size > SIZE_MAX) {   /* 32-bit EP: more than its address space */
		srv_log(LOG_INFO, "export %s: no direct reads: %llu bytes do not fit in the "
		        "address space", e->cfg->name, (unsigned long long)e->size);
		return;
	}
#endif
	m = mmap(NULL, (size_t)e->size, PROT_READ, MAP_SHARED, e->fd, 0);
	if (m == MAP_FAILED) {
		srv_log(LOG_WARNING, "export %s: no direct reads: mmap of %llu bytes of %s: %s",
		        e->cfg->name, (unsigned long long)e->size, e->cfg->path, strerror(errno));
		return;
	}
	e->map = m;
	srv_log(LOG_INFO, "export %s: %s is in memory: READs on PCIe channels whose DMA engine "
	        "reads any EP memory go straight from its pages (direct reads)",
	        e->cfg->name, e->cfg->path);
}

void srv_export_unmap(struct srv_export *e)
{
	if (e->map)
		munmap((void *)(uintptr_t)e->map, (size_t)e->size);
	e->map = NULL;
}

bool srv_map_covers(const struct srv_export *e, uint64_t off, uint32_t len)
{
	const uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	unsigned char vec[256];
	struct stat st;
	uint64_t a, end;

	if (!e->map || off > e->size || len > e->size - off)
		return false;
	if (fstat(e->fd, &st) < 0 || (uint64_t)st.st_size < off + len)
		return false;
	/* mincore reports the file's pages in memory whether or not this
	 * mapping has touched them yet, and touches nothing itself. */
	for (a = off & ~(pg - 1), end = off + len; a < end;) {
		uint64_t n = (end - a + pg - 1) / pg;

		if (n > sizeof(vec))
			n = sizeof(vec);
		if (mincore((void *)(uintptr_t)(e->map + a), n * pg, vec) < 0)
			return false;
		for (uint64_t i = 0; i < n; i++)
			if (!(vec[i] & 1))
				return false;
		a += n * pg;
	}
	return true;
}

int srv_map_read(const struct srv_export *e, uint64_t off, uint32_t len, srv_map_fn fn,
                 void *arg)
{
	sigjmp_buf jb;
	struct stat st;
	int rc;

	if (!e->map || off > e->size || len > e->size - off)
		return -EINVAL;
	/* srv_map_covers checked the size when the READ was taken; its reply
	 * may have waited since (a full ring): check again, right before the
	 * copy (one fstat, under a microsecond against a copy of over 64 KiB). */
	if (fstat(e->fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < off + len)
		return -EIO;   /* shrunk since the export was opened */
	if (sigsetjmp(jb, 0)) {
		guard_jmp = NULL;
		return -EIO;   /* shrunk while we read */
	}
	guard_lo = e->map + off;
	guard_hi = guard_lo + len;
	/* The guard is set before fn reads the mapping; a signal handler on
	 * this thread is all that reads it: a compiler fence orders it. */
	atomic_signal_fence(memory_order_seq_cst);
	guard_jmp = &jb;
	atomic_signal_fence(memory_order_seq_cst);
	rc = fn(arg, e->map + off);
	atomic_signal_fence(memory_order_seq_cst);
	guard_jmp = NULL;
	return rc;
}

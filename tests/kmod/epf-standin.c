/* The pci-epf-nbd stand-in (epf-standin.h): interposed libc calls on
 * /dev/nbd-pcie-ep<N>. Built as an LD_PRELOAD library (libnpk-epf-standin.so)
 * and linked straight into unit tests (an executable's definitions interpose
 * libc the same way, which also keeps the sanitizer runtimes first). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "epf-standin.h"

#define MAX_FDS 4096
#define DEV_PREFIX "/dev/nbd-pcie-ep"

struct sfile {
	struct npks_state *st;
	unsigned n;              /* function number */
	uint64_t seen;           /* events at the last read; ~0 = never read */
};

static struct sfile *files[MAX_FDS];

/* The next definition of each call: a sanitizer's interceptor when one is
 * linked into the program (clang links the ASan/TSan runtimes statically;
 * our definitions then take the place of their weak aliases, and calling
 * __interceptor_X keeps them in the chain), else libc's via RTLD_NEXT. */
#define REAL(name) real_##name
#define RESOLVE(name) do { if (!REAL(name)) REAL(name) = __interceptor_##name ? __interceptor_##name \
		: (__typeof__(REAL(name)))dlsym(RTLD_NEXT, #name); } while (0)

extern int __interceptor_open(const char *, int, ...) __attribute__((weak));
extern int __interceptor_open64(const char *, int, ...) __attribute__((weak));
extern int __interceptor_openat(int, const char *, int, ...) __attribute__((weak));
extern int __interceptor_close(int) __attribute__((weak));
extern int __interceptor_ioctl(int, unsigned long, ...) __attribute__((weak));
extern void *__interceptor_mmap(void *, size_t, int, int, int, off_t) __attribute__((weak));
extern void *__interceptor_mmap64(void *, size_t, int, int, int, off64_t) __attribute__((weak));
extern ssize_t __interceptor_read(int, void *, size_t) __attribute__((weak));
extern int __interceptor_poll(struct pollfd *, nfds_t, int) __attribute__((weak));

static int (*REAL(open))(const char *, int, ...);
static int (*REAL(open64))(const char *, int, ...);
static int (*REAL(openat))(int, const char *, int, ...);
static int (*REAL(close))(int);
static int (*REAL(ioctl))(int, unsigned long, ...);
static void *(*REAL(mmap))(void *, size_t, int, int, int, off_t);
static void *(*REAL(mmap64))(void *, size_t, int, int, int, off64_t);
static ssize_t (*REAL(read))(int, void *, size_t);
static int (*REAL(poll))(struct pollfd *, nfds_t, int);

static struct sfile *ours(int fd)
{
	return fd >= 0 && fd < MAX_FDS ? __atomic_load_n(&files[fd], __ATOMIC_ACQUIRE) : NULL;
}

static void refused(struct npks_state *st, const char *msg)
{
	snprintf(st->last_refusal, sizeof(st->last_refusal), "%s", msg);
}

static void count(uint64_t *c, uint64_t v)
{
	__atomic_add_fetch(c, v, __ATOMIC_RELAXED);
}

/* A path of ours: /dev/nbd-pcie-ep<N> with $NPK_STANDIN_DIR set. */
static bool is_dev(const char *path, unsigned *n)
{
	char *end;
	unsigned long v;

	if (!getenv("NPK_STANDIN_DIR") || strncmp(path, DEV_PREFIX, strlen(DEV_PREFIX)))
		return false;
	path += strlen(DEV_PREFIX);
	if (*path < '0' || *path > '9')
		return false;
	v = strtoul(path, &end, 10);
	if (*end || v > 255)
		return false;
	*n = (unsigned)v;
	return true;
}

static void file_path(char *buf, size_t len, unsigned n, const char *what)
{
	snprintf(buf, len, "%s/ep%u.%s", getenv("NPK_STANDIN_DIR"), n, what);
}

static int dev_open(unsigned n, int flags)
{
	char path[PATH_MAX];
	struct sfile *f;
	void *p;
	int fd;

	RESOLVE(open);
	RESOLVE(close);
	RESOLVE(mmap);
	file_path(path, sizeof(path), n, "ctl");
	fd = REAL(open)(path, O_RDWR | (flags & (O_NONBLOCK | O_CLOEXEC)));
	if (fd < 0)
		return -1;           /* ENOENT: no such function, as without the device */
	p = REAL(mmap)(NULL, sizeof(struct npks_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	f = calloc(1, sizeof(*f));
	if (p == MAP_FAILED || !f || fd >= MAX_FDS ||
	    ((struct npks_state *)p)->magic != NPKS_MAGIC || ((struct npks_state *)p)->dead) {
		bool dead = p != MAP_FAILED && ((struct npks_state *)p)->dead;

		if (p != MAP_FAILED)
			munmap(p, sizeof(struct npks_state));
		free(f);
		REAL(close)(fd);
		errno = dead ? ENODEV : EIO;
		return -1;
	}
	f->st = p;
	f->n = n;
	f->seen = ~0ull;
	__atomic_store_n(&files[fd], f, __ATOMIC_RELEASE);
	return fd;
}

static int open_common(const char *path, int flags)
{
	unsigned n;

	if (is_dev(path, &n))
		return dev_open(n, flags);
	return -2;
}

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;
	int r = open_common(path, flags);

	if (r != -2)
		return r;
	if (flags & (O_CREAT | __O_TMPFILE)) {
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	RESOLVE(open);
	return REAL(open)(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;
	int r = open_common(path, flags);

	if (r != -2)
		return r;
	if (flags & (O_CREAT | __O_TMPFILE)) {
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	RESOLVE(open64);
	return REAL(open64)(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;
	int r = path[0] == '/' ? open_common(path, flags) : -2;

	if (r != -2)
		return r;
	if (flags & (O_CREAT | __O_TMPFILE)) {
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	RESOLVE(openat);
	return REAL(openat)(dirfd, path, flags, mode);
}

int close(int fd)
{
	struct sfile *f = ours(fd);

	RESOLVE(close);
	if (f) {
		__atomic_store_n(&files[fd], NULL, __ATOMIC_RELEASE);
		munmap(f->st, sizeof(*f->st));
		free(f);
	}
	return REAL(close)(fd);
}

static void limits(const struct npks_state *st, struct npk_ep_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	if (st->bound) {
		lim->region_size[NPK_EP_REGION_BAR] = st->region_size[NPK_EP_REGION_BAR];
		lim->region_size[NPK_EP_REGION_STAGE] = st->region_size[NPK_EP_REGION_STAGE];
	}
	lim->dma_align = 4;                 /* NPE_DMA_ALIGN */
	lim->max_xfer = 4u << 20;           /* NPE_MAX_XFER */
	lim->msi_vectors = st->info.msi_vectors;
	lim->msix_vectors = st->info.msix_vectors;
	lim->window.bus_addr = __atomic_load_n(&st->win_bus, __ATOMIC_ACQUIRE);
	lim->window.size = __atomic_load_n(&st->win_size, __ATOMIC_ACQUIRE);
}

static int fail(int e)
{
	errno = e;
	return -1;
}

/* pread/pwrite until done: the stand-in's "DMA engine". */
static int copy_files(int dst, off_t doff, int src, off_t soff, size_t len)
{
	char buf[65536];

	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		ssize_t r = pread(src, buf, n, soff);

		if (r <= 0 || pwrite(dst, buf, (size_t)r, doff) != r)
			return -1;
		len -= (size_t)r;
		soff += r;
		doff += r;
	}
	return 0;
}

static int do_dma(struct sfile *f, const struct npk_ep_dma *d)
{
	struct npks_state *st = f->st;
	struct npk_ep_limits lim;
	char msg[NPKS_MSGLEN], path[PATH_MAX];
	int r, rfd, wfd;

	if (!st->bound)
		return fail(ENOTCONN);
	if (st->info.dma == NPK_EP_DMA_NONE)
		return fail(EOPNOTSUPP);
	limits(st, &lim);
	r = npk_check_ep_dma(d, &lim, msg, sizeof(msg));
	if (r) {
		refused(st, msg);
		count(&st->dma_refused, 1);
		return fail(-r);
	}
	file_path(path, sizeof(path), f->n, d->region == NPK_EP_REGION_BAR ? "bar" : "stage");
	rfd = REAL(open)(path, O_RDWR | O_CLOEXEC);
	file_path(path, sizeof(path), f->n, "win");
	wfd = REAL(open)(path, O_RDWR | O_CLOEXEC);
	if (rfd < 0 || wfd < 0) {
		/* a window outside any host memory: the engine's transfer fails */
		r = EIO;
	} else if (d->dir == NPK_EP_DMA_TO_HOST) {
		r = copy_files(wfd, (off_t)(d->host_addr - st->win_base), rfd, (off_t)d->offset, d->len) ? EIO : 0;
	} else {
		r = copy_files(rfd, (off_t)d->offset, wfd, (off_t)(d->host_addr - st->win_base), d->len) ? EIO : 0;
	}
	if (rfd >= 0)
		REAL(close)(rfd);
	if (wfd >= 0)
		REAL(close)(wfd);
	if (r)
		return fail(r);
	{
		uint64_t i = __atomic_fetch_add(&st->nlog, 1, __ATOMIC_ACQ_REL) % NPKS_LOG;

		st->log[i] = (struct npks_xfer){ .dir = d->dir, .len = d->len, .offset = d->offset,
						 .host_addr = d->host_addr };
	}
	count(d->dir == NPK_EP_DMA_TO_HOST ? &st->dma_to_host : &st->dma_from_host, 1);
	count(&st->dma_bytes, d->len);
	return 0;
}

/* The interrupt reaches the host: a host on this machine using the BAR
 * file with the shm backend sleeps on that backend's doorbell sockets
 * (docs/transport.md 6.4), so the stand-in wakes every host channel the
 * vector serves, as the host module wakes the files whose vector mask
 * includes it. No listener (the host polls) is fine, like an interrupt
 * nobody waits for. */
static void deliver_irq(struct sfile *f, unsigned nvec, unsigned vector)
{
	char path[PATH_MAX];
	struct stat sb;
	int s;

	RESOLVE(close);
	file_path(path, sizeof(path), f->n, "bar");
	if (!nvec || stat(path, &sb))
		return;
	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	for (unsigned chan = vector - 1; chan < 64; chan += nvec) {
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		int n = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1,
				 "nbd-pcie-bell/%" PRIx64 ":%" PRIx64 "/h/%u",
				 (uint64_t)sb.st_dev, (uint64_t)sb.st_ino, chan);

		(void)sendto(s, "", 1, 0, (struct sockaddr *)&a,
			     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n));
	}
	REAL(close)(s);
}

static int do_irq(struct sfile *f, const struct npk_ep_irq *irq)
{
	struct npks_state *st = f->st;
	struct npk_ep_limits lim;
	char msg[NPKS_MSGLEN];
	int r;

	if (!st->bound || !(__atomic_load_n(&st->linkev, __ATOMIC_ACQUIRE) & NPK_EP_LINK_INIT))
		return fail(ENOTCONN);
	limits(st, &lim);
	r = npk_check_ep_irq(irq, &lim, msg, sizeof(msg));
	if (r) {
		refused(st, msg);
		count(&st->irq_refused, 1);
		return fail(-r);
	}
	if (irq->type == NPK_EP_IRQ_MSI)
		count(&st->irq_msi[irq->vector], 1);
	else if (irq->vector <= NPKS_MSIX_COUNTED)
		count(&st->irq_msix[irq->vector], 1);
	count(&st->irq_total, 1);
	deliver_irq(f, irq->type == NPK_EP_IRQ_MSI ? st->info.msi_vectors : st->info.msix_vectors,
		    irq->vector);
	return 0;
}

static int do_window(struct sfile *f, const struct npk_ep_window *w)
{
	struct npks_state *st = f->st;
	char msg[NPKS_MSGLEN];
	int r;

	if (!st->bound)
		return fail(ENOTCONN);
	r = npk_check_ep_window(w, msg, sizeof(msg));
	if (r) {
		refused(st, msg);
		return fail(-r);
	}
	__atomic_store_n(&st->win_size, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&st->win_bus, w->bus_addr, __ATOMIC_RELEASE);
	__atomic_store_n(&st->win_size, w->size, __ATOMIC_RELEASE);
	count(&st->set_window, 1);
	return 0;
}

static int do_info(struct sfile *f, struct npk_ep_info *out)
{
	struct npks_state *st = f->st;
	uint64_t le = __atomic_load_n(&st->linkev, __ATOMIC_ACQUIRE);

	*out = st->info;
	out->link = (uint32_t)le;
	out->window.bus_addr = __atomic_load_n(&st->win_bus, __ATOMIC_ACQUIRE);
	out->window.size = __atomic_load_n(&st->win_size, __ATOMIC_ACQUIRE);
	if (!st->bound) {
		out->region[NPK_EP_REGION_BAR].size = 0;
		out->region[NPK_EP_REGION_STAGE].size = 0;
		out->dma = NPK_EP_DMA_NONE;
	}
	return 0;
}

int ioctl(int fd, unsigned long req, ...)
{
	struct sfile *f = ours(fd);
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	RESOLVE(ioctl);
	if (!f)
		return REAL(ioctl)(fd, req, arg);
	if (f->st->dead)
		return fail(ENODEV);
	if (!arg)
		return fail(EFAULT);
	switch (req) {
	case NPK_EP_IOC_INFO:
		return do_info(f, arg);
	case NPK_EP_IOC_DMA:
		return do_dma(f, arg);
	case NPK_EP_IOC_RAISE_IRQ:
		return do_irq(f, arg);
	case NPK_EP_IOC_SET_WINDOW:
		return do_window(f, arg);
	default:
		return fail(ENOTTY);
	}
}

static void *dev_mmap(struct sfile *f, void *addr, size_t len, int prot, int flags, uint64_t off)
{
	struct npks_state *st = f->st;
	struct npk_ep_limits lim;
	char msg[NPKS_MSGLEN], path[PATH_MAX];
	unsigned region;
	__u64 roff;
	void *p;
	int r, fd;

	if (!(flags & MAP_SHARED)) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	if (st->dead || !st->bound) {
		errno = st->dead ? ENODEV : ENOTCONN;
		return MAP_FAILED;
	}
	limits(st, &lim);
	r = npk_check_mmap(off, len, lim.region_size, NPK_EP_NREGIONS, (uint64_t)sysconf(_SC_PAGESIZE),
			   &region, &roff, msg, sizeof(msg));
	if (r) {
		refused(st, msg);
		count(&st->mmap_refused, 1);
		errno = -r;
		return MAP_FAILED;
	}
	file_path(path, sizeof(path), f->n, region == NPK_EP_REGION_BAR ? "bar" : "stage");
	fd = REAL(open)(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return MAP_FAILED;
	p = REAL(mmap)(addr, len, prot, flags, fd, (off_t)roff);
	REAL(close)(fd);
	if (p != MAP_FAILED)
		count(&st->mmaps, 1);
	return p;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct sfile *f = ours(fd);

	RESOLVE(mmap);
	if (f)
		return dev_mmap(f, addr, len, prot, flags, (uint64_t)off);
	return REAL(mmap)(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	struct sfile *f = ours(fd);

	RESOLVE(mmap);
	RESOLVE(mmap64);
	if (f)
		return dev_mmap(f, addr, len, prot, flags, (uint64_t)off);
	return REAL(mmap64)(addr, len, prot, flags, fd, off);
}

static bool changed(struct sfile *f, struct npk_ep_event *ev)
{
	uint64_t le = __atomic_load_n(&f->st->linkev, __ATOMIC_ACQUIRE);

	memset(ev, 0, sizeof(*ev));
	ev->link = (uint32_t)le;
	ev->events = (uint32_t)(le >> 32);
	return f->seen != ev->events;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

ssize_t read(int fd, void *buf, size_t len)
{
	struct sfile *f = ours(fd);
	struct npk_ep_event ev;

	RESOLVE(read);
	if (!f)
		return REAL(read)(fd, buf, len);
	if (len < sizeof(ev))
		return fail(EINVAL);
	for (;;) {
		if (f->st->dead)
			return fail(ENODEV);
		if (changed(f, &ev))
			break;
		if (fcntl(fd, F_GETFL) & O_NONBLOCK)
			return fail(EAGAIN);
		sleep_ms(1);
	}
	memcpy(buf, &ev, sizeof(ev));
	f->seen = ev.events;
	return (ssize_t)sizeof(ev);
}

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	struct npk_ep_event ev;
	bool any = false;
	int waited = 0;

	RESOLVE(poll);
	for (nfds_t i = 0; i < n; i++)
		any |= ours(fds[i].fd) != NULL;
	if (!any)
		return REAL(poll)(fds, n, timeout);
	for (;;) {
		int ready = 0;

		for (nfds_t i = 0; i < n; i++) {
			struct sfile *f = ours(fds[i].fd);

			if (!f) {
				struct pollfd one = fds[i];

				fds[i].revents = REAL(poll)(&one, 1, 0) > 0 ? one.revents : 0;
			} else if (f->st->dead) {
				fds[i].revents = POLLERR | POLLHUP;
			} else {
				fds[i].revents = changed(f, &ev) ? (fds[i].events & (POLLIN | POLLRDNORM)) : 0;
			}
			ready += fds[i].revents != 0;
		}
		if (ready || (timeout >= 0 && waited >= timeout))
			return ready;
		sleep_ms(1);
		waited++;
	}
}

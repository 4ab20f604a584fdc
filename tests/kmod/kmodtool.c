/* nbdpcie-kmodtool: drives /dev/nbd-pcie-host<N> (kmod/host) in the kmod-host
 * guest scenario, the way the transport's host backend will:
 *
 *   info DEV                        INFO ioctl, one line of key=value
 *   bar-write DEV BAR OFFSET TEXT   mmap the BAR, store TEXT and a NUL
 *   bar-read DEV BAR OFFSET LEN     mmap the BAR, print the text there
 *   win-write DEV OFFSET TEXT       same in the host DMA window
 *   win-read DEV OFFSET LEN
 *   irq-lockstep DEV ROUNDS SECS    per round: print "VMTOOL-IRQ-WAIT k", poll()
 *                                   and read() one interrupt, print
 *                                   "VMTOOL-IRQ-GOT k n"; then the per-vector
 *                                   counts ("VMTOOL-IRQ-COUNTS c0 c1 ...")
 *   irq-only DEV VEC SECS           count only vector VEC (SET_VECTORS), print
 *                                   "VMTOOL-IRQ-ONLY-READY"; the host rings the
 *                                   other vector, then VEC: read() must report 1,
 *                                   the other vector's count must have grown,
 *                                   and nothing more must be pending
 *                                   ("VMTOOL-IRQ-ONLY-OK")
 *   hold DEV GOFILE                 open and map BAR and window, print
 *                                   "VMTOOL-HELD", wait for GOFILE to exist,
 *                                   then check that every operation reports
 *                                   the device gone ("VMTOOL-GONE-OK")
 * Exit 0 on success, 1 with a message naming what differed. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uapi/nbd-pcie-link.h>

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("kmodtool: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static int open_dev(const char *path, int flags)
{
	int fd = open(path, flags);

	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	return fd;
}

static void get_info(int fd, struct npk_host_info *info)
{
	if (ioctl(fd, NPK_HOST_IOC_INFO, info))
		die("NPK_HOST_IOC_INFO: %s", strerror(errno));
	if (info->api_version != NPK_API_VERSION)
		die("api_version %u, expected %u", info->api_version, NPK_API_VERSION);
}

/* Maps the whole region; returns its address and size. */
static volatile char *map_region(int fd, unsigned int region, uint64_t *size)
{
	struct npk_host_info info;
	void *p;

	get_info(fd, &info);
	*size = info.region[region].size;
	if (!*size)
		die("region %u is absent", region);
	p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)NPK_MMAP_OFFSET(region));
	if (p == MAP_FAILED)
		die("mmap region %u (%" PRIu64 " bytes): %s", region, *size, strerror(errno));
	return p;
}

static void store_text(volatile char *base, uint64_t size, uint64_t off, const char *text)
{
	size_t n = strlen(text) + 1, i;

	if (off > size || n > size - off)
		die("offset %" PRIu64 " + %zu beyond region size %" PRIu64, off, n, size);
	for (i = 0; i < n; i++)
		base[off + i] = text[i];
}

static void print_text(volatile char *base, uint64_t size, uint64_t off, uint64_t len)
{
	uint64_t i;

	if (off > size || len > size - off)
		die("offset %" PRIu64 " + %" PRIu64 " beyond region size %" PRIu64, off, len, size);
	for (i = 0; i < len && base[off + i]; i++)
		putchar(base[off + i]);
	putchar('\n');
}

static int cmd_info(const char *dev)
{
	struct npk_host_info info;
	int fd = open_dev(dev, O_RDWR), i;

	get_info(fd, &info);
	printf("vendor=%04x device=%04x shm_bar=%u nvectors=%u", info.vendor, info.device,
	       info.shm_bar, info.nvectors);
	for (i = 0; i < 6; i++)
		if (info.region[i].size)
			printf(" bar%d=%" PRIu64, i, (uint64_t)info.region[i].size);
	printf(" win_size=%" PRIu64 " win_bus=0x%" PRIx64 "\n",
	       (uint64_t)info.region[NPK_HOST_REGION_WIN].size,
	       (uint64_t)info.region[NPK_HOST_REGION_WIN].bus_addr);
	return 0;
}

static int cmd_rw(const char *dev, unsigned int region, const char *off, const char *arg,
		  int write)
{
	uint64_t size;
	int fd = open_dev(dev, O_RDWR);
	volatile char *p = map_region(fd, region, &size);

	if (write)
		store_text(p, size, strtoull(off, NULL, 0), arg);
	else
		print_text(p, size, strtoull(off, NULL, 0), strtoull(arg, NULL, 0));
	return 0;
}

static void irq_counts(int fd, unsigned int nvec)
{
	struct npk_host_irq_counts c;
	unsigned int i;

	if (ioctl(fd, NPK_HOST_IOC_IRQ_COUNTS, &c))
		die("NPK_HOST_IOC_IRQ_COUNTS: %s", strerror(errno));
	printf("VMTOOL-IRQ-COUNTS");
	for (i = 0; i < nvec; i++)
		printf(" %" PRIu64, (uint64_t)c.count[i]);
	printf("\n");
}

static int cmd_irq_lockstep(const char *dev, int rounds, int secs)
{
	struct npk_host_info info;
	int fd = open_dev(dev, O_RDWR | O_NONBLOCK), k;
	uint64_t n;

	get_info(fd, &info);
	if (!info.nvectors)
		die("the device has no interrupt vectors");
	/* Nothing was signalled since open: a non-blocking read must say so. */
	if (read(fd, &n, sizeof(n)) != -1 || errno != EAGAIN)
		die("read before any interrupt: expected EAGAIN, got %s", strerror(errno));
	for (k = 1; k <= rounds; k++) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r;

		printf("VMTOOL-IRQ-WAIT %d\n", k);
		fflush(stdout);
		r = poll(&pfd, 1, secs * 1000);
		if (r < 0)
			die("poll: %s", strerror(errno));
		if (r == 0)
			die("round %d: no interrupt within %d s", k, secs);
		if (pfd.revents != POLLIN)
			die("round %d: poll revents 0x%x, expected POLLIN only", k, pfd.revents);
		if (read(fd, &n, sizeof(n)) != sizeof(n))
			die("round %d: read: %s", k, strerror(errno));
		printf("VMTOOL-IRQ-GOT %d %" PRIu64 "\n", k, n);
		fflush(stdout);
		if (n != 1)
			die("round %d: read reported %" PRIu64 " interrupts, the host rang once", k, n);
	}
	/* The last read consumed everything: again EAGAIN. */
	if (read(fd, &n, sizeof(n)) != -1 || errno != EAGAIN)
		die("read after the last round: expected EAGAIN, got %s", strerror(errno));
	irq_counts(fd, info.nvectors);
	return 0;
}

static uint64_t vector_count(int fd, unsigned int v)
{
	struct npk_host_irq_counts c;

	if (ioctl(fd, NPK_HOST_IOC_IRQ_COUNTS, &c))
		die("NPK_HOST_IOC_IRQ_COUNTS: %s", strerror(errno));
	return c.count[v];
}

static int cmd_irq_only(const char *dev, unsigned int vec, int secs)
{
	struct npk_host_info info;
	struct pollfd pfd;
	int fd = open_dev(dev, O_RDWR | O_NONBLOCK), i;
	unsigned int other;
	uint32_t mask = 1u << vec, bad = 0;
	uint64_t n, other0;

	get_info(fd, &info);
	if (info.nvectors != 2 || vec > 1)
		die("irq-only needs a 2-vector device and VEC 0 or 1 (device has %u)", info.nvectors);
	other = 1 - vec;
	if (ioctl(fd, NPK_HOST_IOC_SET_VECTORS, &bad) != -1 || errno != EINVAL)
		die("SET_VECTORS with an empty mask: expected EINVAL, got %s", strerror(errno));
	bad = 1u << info.nvectors;
	if (ioctl(fd, NPK_HOST_IOC_SET_VECTORS, &bad) != -1 || errno != EINVAL)
		die("SET_VECTORS 0x%x on %u vectors: expected EINVAL, got %s", bad,
		    info.nvectors, strerror(errno));
	if (ioctl(fd, NPK_HOST_IOC_SET_VECTORS, &mask))
		die("SET_VECTORS 0x%x: %s", mask, strerror(errno));
	other0 = vector_count(fd, other);
	printf("VMTOOL-IRQ-ONLY-READY\n");
	fflush(stdout);
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, secs * 1000) != 1 || pfd.revents != POLLIN)
		die("no interrupt of vector %u within %d s (revents 0x%x)", vec, secs, pfd.revents);
	if (read(fd, &n, sizeof(n)) != sizeof(n))
		die("read: %s", strerror(errno));
	if (n != 1)
		die("read reported %" PRIu64 " interrupts; the host rang vector %u once "
		    "(and vector %u, which this file does not count)", n, vec, other);
	/* The other vector's ring was delivered too, just not to this file. */
	for (i = 0; vector_count(fd, other) == other0; i++) {
		if (i > secs * 10)
			die("vector %u's count stayed %" PRIu64 " for %d s after the host rang it",
			    other, other0, secs);
		usleep(100000);
	}
	if (read(fd, &n, sizeof(n)) != -1 || errno != EAGAIN)
		die("vector %u's interrupt reached a file counting only vector %u", other, vec);
	printf("VMTOOL-IRQ-ONLY-OK\n");
	return 0;
}

static sigjmp_buf fault_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(fault_jmp, 1);
}

/* 1 if touching p raises SIGBUS. */
static int touch_faults(volatile char *p)
{
	struct sigaction sa = { .sa_handler = on_sigbus };
	int faulted;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	if (sigsetjmp(fault_jmp, 1) == 0) {
		p[0] = 1;
		faulted = 0;
	} else {
		faulted = 1;
	}
	signal(SIGBUS, SIG_DFL);
	signal(SIGSEGV, SIG_DFL);
	return faulted;
}

static int cmd_hold(const char *dev, const char *gofile)
{
	struct npk_host_info info;
	struct pollfd pfd;
	struct stat st;
	uint64_t wsize, bsize, n;
	volatile char *win, *bar;
	int fd = open_dev(dev, O_RDWR);

	get_info(fd, &info);
	win = map_region(fd, NPK_HOST_REGION_WIN, &wsize);
	bar = map_region(fd, info.shm_bar, &bsize);
	win[0] = 'w';
	bar[0] = 'b';
	printf("VMTOOL-HELD\n");
	fflush(stdout);
	while (stat(gofile, &st) != 0)
		usleep(50000);

	if (ioctl(fd, NPK_HOST_IOC_INFO, &info) != -1 || errno != ENODEV)
		die("INFO after removal: expected ENODEV, got %s", strerror(errno));
	if (read(fd, &n, sizeof(n)) != -1 || errno != ENODEV)
		die("read after removal: expected ENODEV, got %s", strerror(errno));
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 1000) != 1 || !(pfd.revents & POLLHUP) || !(pfd.revents & POLLERR))
		die("poll after removal: revents 0x%x, expected POLLERR|POLLHUP", pfd.revents);
	if (mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) != MAP_FAILED)
		die("mmap after removal succeeded");
	if (errno != ENODEV)
		die("mmap after removal: expected ENODEV, got %s", strerror(errno));
	if (!touch_faults(win))
		die("the window mapping is still backed after removal");
	if (!touch_faults(bar))
		die("the BAR mapping is still backed after removal");
	printf("VMTOOL-GONE-OK\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "info"))
		return cmd_info(argv[2]);
	if (argc == 6 && !strcmp(argv[1], "bar-write"))
		return cmd_rw(argv[2], atoi(argv[3]), argv[4], argv[5], 1);
	if (argc == 6 && !strcmp(argv[1], "bar-read"))
		return cmd_rw(argv[2], atoi(argv[3]), argv[4], argv[5], 0);
	if (argc == 5 && !strcmp(argv[1], "win-write"))
		return cmd_rw(argv[2], NPK_HOST_REGION_WIN, argv[3], argv[4], 1);
	if (argc == 5 && !strcmp(argv[1], "win-read"))
		return cmd_rw(argv[2], NPK_HOST_REGION_WIN, argv[3], argv[4], 0);
	if (argc == 5 && !strcmp(argv[1], "irq-lockstep"))
		return cmd_irq_lockstep(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "irq-only"))
		return cmd_irq_only(argv[2], (unsigned int)atoi(argv[3]), atoi(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "hold"))
		return cmd_hold(argv[2], argv[3]);
	fprintf(stderr, "usage: %s info|bar-write|bar-read|win-write|win-read|irq-lockstep|irq-only|hold ...\n"
		"(see the comment at the top of tests/kmod/kmodtool.c)\n", argv[0]);
	return 2;
}

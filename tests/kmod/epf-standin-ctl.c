/* epf-standin-ctl: sets up and drives the pci-epf-nbd stand-in
 * (epf-standin.h) for tests.
 *
 *   epf-standin-ctl DIR N create [bar_size=B] [channels=C] [msi=M] [msix=X]
 *                               [stage_size=S] [win_size=W] [win_base=A] [link=none|init|up]
 *                               [dma=engine|cpu|none]
 *       function N as configfs would bind it: the layout is computed by
 *       npk_epf_compute_layout() (MSI-X table at the end of the BAR)
 *   epf-standin-ctl DIR N link down|up|init|deinit|bounce
 *       a controller event, counted like the module's npe_event()
 *   epf-standin-ctl DIR N set api_version=V|bar_region=B|nchannels=C|bound=0/1|dead=0/1
 *       what INFO reports (bar_region, nchannels, api_version) or the binding
 *   epf-standin-ctl DIR N counts     counters, one "name value" per line
 *   epf-standin-ctl DIR N remove     delete the function's files
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "epf-standin.h"

static const char *dir;
static unsigned fn;

static void path_of(char *buf, size_t len, const char *what)
{
	snprintf(buf, len, "%s/ep%u.%s", dir, fn, what);
}

static int die(const char *fmt, const char *a)
{
	fprintf(stderr, "epf-standin-ctl: ");
	fprintf(stderr, fmt, a);
	fputc('\n', stderr);
	return 1;
}

static uint64_t num(const char *v)
{
	char *end;
	uint64_t u = strtoull(v, &end, 0);

	if (*end == 'K' || *end == 'k')
		u <<= 10, end++;
	else if (*end == 'M' || *end == 'm')
		u <<= 20, end++;
	if (*end) {
		fprintf(stderr, "epf-standin-ctl: \"%s\" is not a number\n", v);
		exit(2);
	}
	return u;
}

static int make_file(const char *what, uint64_t size)
{
	char p[PATH_MAX];
	int fd;

	path_of(p, sizeof(p), what);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size)) {
		perror(p);
		return -1;
	}
	close(fd);
	return 0;
}

static struct npks_state *map_state(void)
{
	char p[PATH_MAX];
	void *m;
	int fd;

	path_of(p, sizeof(p), "ctl");
	fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		perror(p);
		exit(1);
	}
	m = mmap(NULL, sizeof(struct npks_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return m;
}

static int create(int argc, char **argv)
{
	struct npk_epf_config cfg = {
		.vendor = 0x1234, .device = 0x4e42, .bar = 0, .bar_size = 16u << 20,
		.nchannels = 4, .msi = 0, .msix = 8, .stage_size = 4u << 20,
	};
	struct npk_epc_caps caps = { .msi_capable = true, .msix_capable = true };
	struct npk_epf_layout lay;
	struct npks_state st;
	uint32_t link = NPK_EP_LINK_INIT | NPK_EP_LINK_UP;
	uint64_t win_size = 0, win_base = 0;
	uint32_t dma = NPK_EP_DMA_ENGINE;
	char msg[256], p[PATH_MAX];
	int fd;

	for (int i = 0; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq)
			return die("create: \"%s\" is not key=value", argv[i]);
		*eq++ = '\0';
		if (!strcmp(argv[i], "bar_size")) cfg.bar_size = num(eq);
		else if (!strcmp(argv[i], "channels")) cfg.nchannels = (uint32_t)num(eq);
		else if (!strcmp(argv[i], "msi")) cfg.msi = (uint32_t)num(eq);
		else if (!strcmp(argv[i], "msix")) cfg.msix = (uint32_t)num(eq);
		else if (!strcmp(argv[i], "stage_size")) cfg.stage_size = num(eq);
		else if (!strcmp(argv[i], "win_size")) win_size = num(eq);
		else if (!strcmp(argv[i], "win_base")) win_base = num(eq);
		else if (!strcmp(argv[i], "dma"))
			dma = !strcmp(eq, "engine") ? NPK_EP_DMA_ENGINE :
			      !strcmp(eq, "cpu") ? NPK_EP_DMA_CPU : NPK_EP_DMA_NONE;
		else if (!strcmp(argv[i], "link"))
			link = !strcmp(eq, "up") ? NPK_EP_LINK_INIT | NPK_EP_LINK_UP :
			       !strcmp(eq, "init") ? NPK_EP_LINK_INIT : 0;
		else
			return die("create: unknown key \"%s\"", argv[i]);
	}
	if (npk_epf_compute_layout(&cfg, &caps, &lay, msg, sizeof(msg)))
		return die("create: bind refused: %s", msg);
	memset(&st, 0, sizeof(st));
	st.magic = NPKS_MAGIC;
	st.version = NPKS_VERSION;
	st.info.api_version = NPK_API_VERSION;
	st.info.vendor = cfg.vendor;
	st.info.device = cfg.device;
	st.info.bar = cfg.bar;
	st.info.nchannels = cfg.nchannels;
	st.info.msi_vectors = cfg.msi;
	st.info.msix_vectors = cfg.msix;
	st.info.dma = dma;
	st.info.dma_align = 4;
	st.info.max_xfer = 4u << 20;
	st.info.region[NPK_EP_REGION_BAR].size = lay.shm_size;
	st.info.region[NPK_EP_REGION_STAGE].size = cfg.stage_size;
	st.region_size[NPK_EP_REGION_BAR] = lay.shm_size;
	st.region_size[NPK_EP_REGION_STAGE] = cfg.stage_size;
	st.bar_size = lay.bar_size;
	st.bound = 1;
	st.win_base = win_base;
	/* every set bit arrived as one event, as the module counts them */
	st.linkev = (uint64_t)__builtin_popcount(link) << 32 | link;
	if (make_file("bar", lay.bar_size) || make_file("stage", cfg.stage_size ? cfg.stage_size : 1))
		return 1;
	if (win_size && make_file("win", win_size))
		return 1;
	path_of(p, sizeof(p), "ctl");
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, &st, sizeof(st)) != (ssize_t)sizeof(st)) {
		perror(p);
		return 1;
	}
	close(fd);
	printf("bar %" PRIu64 " link_part %" PRIu64 " msix_table %" PRIu64 "\n",
	       (uint64_t)lay.bar_size, (uint64_t)lay.shm_size, (uint64_t)lay.msix_table_off);
	return 0;
}

/* Like npe_event(): set/clear bits, one event per change of the word. */
static void event(struct npks_state *st, uint32_t set, uint32_t clear)
{
	uint64_t old = __atomic_load_n(&st->linkev, __ATOMIC_ACQUIRE), nw;

	do {
		uint32_t link = ((uint32_t)old & ~clear) | set;
		uint32_t ev = (uint32_t)(old >> 32) + (link != (uint32_t)old);

		nw = (uint64_t)ev << 32 | link;
	} while (!__atomic_compare_exchange_n(&st->linkev, &old, nw, false, __ATOMIC_ACQ_REL,
					      __ATOMIC_ACQUIRE));
}

static int link_cmd(const char *what)
{
	struct npks_state *st = map_state();

	if (!strcmp(what, "down"))
		event(st, 0, NPK_EP_LINK_UP | NPK_EP_LINK_BME);
	else if (!strcmp(what, "up"))
		event(st, NPK_EP_LINK_UP, 0);
	else if (!strcmp(what, "init"))
		event(st, NPK_EP_LINK_INIT, 0);
	else if (!strcmp(what, "deinit"))
		event(st, 0, NPK_EP_LINK_INIT | NPK_EP_LINK_UP | NPK_EP_LINK_BME);
	else if (!strcmp(what, "bounce")) {
		event(st, 0, NPK_EP_LINK_UP | NPK_EP_LINK_BME);
		event(st, NPK_EP_LINK_UP, 0);
	} else
		return die("link: \"%s\" is none of down, up, init, deinit, bounce", what);
	return 0;
}

static int set_cmd(int argc, char **argv)
{
	struct npks_state *st = map_state();

	for (int i = 0; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq)
			return die("set: \"%s\" is not key=value", argv[i]);
		*eq++ = '\0';
		if (!strcmp(argv[i], "api_version")) st->info.api_version = (uint32_t)num(eq);
		else if (!strcmp(argv[i], "bar_region")) st->info.region[NPK_EP_REGION_BAR].size = num(eq);
		else if (!strcmp(argv[i], "nchannels")) st->info.nchannels = (uint32_t)num(eq);
		else if (!strcmp(argv[i], "bound")) st->bound = (uint32_t)num(eq);
		else if (!strcmp(argv[i], "dead")) st->dead = (uint32_t)num(eq);
		else
			return die("set: unknown key \"%s\"", argv[i]);
	}
	return 0;
}

static int counts(void)
{
	struct npks_state *st = map_state();
	uint64_t le = __atomic_load_n(&st->linkev, __ATOMIC_ACQUIRE);

	printf("link %u\nevents %u\n", (unsigned)(uint32_t)le, (unsigned)(le >> 32));
	printf("irq_total %" PRIu64 "\nirq_refused %" PRIu64 "\n", st->irq_total, st->irq_refused);
	for (unsigned v = 1; v <= NPK_EPF_MAX_MSI; v++)
		if (st->irq_msi[v])
			printf("irq_msi_%u %" PRIu64 "\n", v, st->irq_msi[v]);
	for (unsigned v = 1; v <= NPKS_MSIX_COUNTED; v++)
		if (st->irq_msix[v])
			printf("irq_msix_%u %" PRIu64 "\n", v, st->irq_msix[v]);
	printf("dma_to_host %" PRIu64 "\ndma_from_host %" PRIu64 "\ndma_bytes %" PRIu64
	       "\ndma_refused %" PRIu64 "\n", st->dma_to_host, st->dma_from_host, st->dma_bytes,
	       st->dma_refused);
	printf("set_window %" PRIu64 "\nmmaps %" PRIu64 "\nmmap_refused %" PRIu64 "\n",
	       st->set_window, st->mmaps, st->mmap_refused);
	printf("last_refusal %s\n", st->last_refusal[0] ? st->last_refusal : "-");
	return 0;
}

static int remove_cmd(void)
{
	static const char *const what[] = { "ctl", "bar", "stage", "win" };
	char p[PATH_MAX];

	for (unsigned i = 0; i < sizeof(what) / sizeof(what[0]); i++) {
		path_of(p, sizeof(p), what[i]);
		if (unlink(p) && errno != ENOENT)
			perror(p);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s DIR N create|link|set|counts|remove [args]\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	fn = (unsigned)num(argv[2]);
	if (!strcmp(argv[3], "create"))
		return create(argc - 4, argv + 4);
	if (!strcmp(argv[3], "link") && argc == 5)
		return link_cmd(argv[4]);
	if (!strcmp(argv[3], "set"))
		return set_cmd(argc - 4, argv + 4);
	if (!strcmp(argv[3], "counts"))
		return counts();
	if (!strcmp(argv[3], "remove"))
		return remove_cmd();
	fprintf(stderr, "epf-standin-ctl: unknown command \"%s\"\n", argv[3]);
	return 2;
}

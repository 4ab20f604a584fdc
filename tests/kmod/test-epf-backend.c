/* The transport's epf: backend (transport/src/backend-epf.c): its checks of
 * the device's INFO, the channel -> vector mapping, and whole links against
 * the pci-epf-nbd stand-in (epf-standin.c, linked into this program so that
 * its open/ioctl/mmap/read interpose libc) with a shm host on the BAR file. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "epf-standin.h"
#include "internal.h"

static char dir[64];

/* Links a test opened: closed by the per-test teardown if a failed assertion
 * left them open, so that one failure does not spill into the next test. */
static struct npt_link *opened[8];

static struct npt_link *track(struct npt_link *l)
{
	for (unsigned i = 0; i < 8; i++)
		if (!opened[i]) {
			opened[i] = l;
			break;
		}
	return l;
}

static void link_close(struct npt_link *l)
{
	for (unsigned i = 0; i < 8; i++)
		if (opened[i] == l)
			opened[i] = NULL;
	npt_link_close(l);
}

static int close_leftovers(void **st)
{
	for (unsigned i = 0; i < 8; i++)
		if (opened[i]) {
			npt_link_close(opened[i]);
			opened[i] = NULL;
		}
	return 0;
}

static void ctl(const char *fmt, ...)
{
	char args[512], cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s %s 0 %s >/dev/null", getenv("EPF_STANDIN_CTL"), dir, args);
	assert_int_equal(system(cmd), 0);
}

static struct npks_state *state(void)
{
	char p[128];
	void *m;
	int fd;

	snprintf(p, sizeof(p), "%s/ep0.ctl", dir);
	fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	m = mmap(NULL, sizeof(struct npks_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	assert_true(m != MAP_FAILED);
	return m;
}

static int setup(void **st)
{
	if (!getenv("EPF_STANDIN_CTL")) {
		fprintf(stderr, "EPF_STANDIN_CTL must name epf-standin-ctl (CTest sets it)\n");
		return -1;
	}
	snprintf(dir, sizeof(dir), "/dev/shm/npk-epf-test-%d", (int)getpid());
	if (mkdir(dir, 0700))
		return -1;
	setenv("NPK_STANDIN_DIR", dir, 1);
	return 0;
}

static int teardown(void **st)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) ? -1 : 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* The EP's generation (written by its heartbeat thread). */
static uint32_t ep_gen(struct npt_link *l)
{
	uint32_t g;

	pthread_mutex_lock(&l->lock);
	g = l->gen;
	pthread_mutex_unlock(&l->lock);
	return g;
}

/* Polls npt_link_check(l) until it returns want, for up to 3 s. */
static int wait_state(struct npt_link *l, int want)
{
	int r = 1;

	for (int i = 0; i < 300 && (r = npt_link_check(l)) != want; i++)
		sleep_ms(10);
	return r;
}

static struct npk_ep_info good_info(void)
{
	struct npk_ep_info in = {
		.api_version = NPK_API_VERSION, .nchannels = 4, .msix_vectors = 8,
		.dma = NPK_EP_DMA_ENGINE, .dma_align = 4, .max_xfer = 4u << 20,
	};

	in.region[NPK_EP_REGION_BAR].size = 16u << 20;
	return in;
}

static void info_good_accepted(void **st)
{
	struct npk_ep_info in = good_info();
	char err[256] = "";

	assert_int_equal(npt_epf_check_info(&in, err, sizeof(err)), 0);
}

static void info_api_version_names_both(void **st)
{
	struct npk_ep_info in = good_info();
	char err[256];

	in.api_version = 7;
	assert_int_equal(npt_epf_check_info(&in, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "API version 7"));
	assert_non_null(strstr(err, "speaks 1"));
}

static void info_unbound_says_configfs(void **st)
{
	struct npk_ep_info in = good_info();
	char err[256];

	in.region[NPK_EP_REGION_BAR].size = 0;
	assert_int_equal(npt_epf_check_info(&in, err, sizeof(err)), -ENOTCONN);
	assert_non_null(strstr(err, "not bound"));
}

static void info_bar_region_limits(void **st)
{
	static const uint64_t bad[] = { 4096, 12288 + 1, 2ull << 30 };
	struct npk_ep_info in = good_info();
	char err[256], want[64];

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		in.region[NPK_EP_REGION_BAR].size = bad[i];
		assert_int_equal(npt_epf_check_info(&in, err, sizeof(err)), -EPROTO);
		snprintf(want, sizeof(want), "size %llu", (unsigned long long)bad[i]);
		assert_non_null(strstr(err, want));
		assert_non_null(strstr(err, "8192..1073741824"));
	}
}

static void info_channels_and_vectors_limits(void **st)
{
	struct npk_ep_info in = good_info();
	char err[256];

	in.nchannels = 0;
	assert_int_equal(npt_epf_check_info(&in, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "channel count 0 outside 1..64"));
	in.nchannels = 65;
	assert_int_equal(npt_epf_check_info(&in, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "channel count 65"));
	in = good_info();
	in.msix_vectors = 2049;
	assert_int_equal(npt_epf_check_info(&in, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "MSI-X vectors 2049"));
	in = good_info();
	in.msi_vectors = 33;
	assert_int_equal(npt_epf_check_info(&in, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "MSI vectors 33"));
}

static void vector_msix_preferred_and_wraps(void **st)
{
	struct npk_ep_info in = good_info();
	struct npk_ep_irq irq;

	in.msi_vectors = 4;
	assert_int_equal(npt_epf_vector(&in, 0, &irq), 0);
	assert_int_equal(irq.type, NPK_EP_IRQ_MSIX);
	assert_int_equal(irq.vector, 1);
	assert_int_equal(npt_epf_vector(&in, 9, &irq), 0);
	assert_int_equal(irq.vector, 2);
	in.msix_vectors = 0;
	assert_int_equal(npt_epf_vector(&in, 5, &irq), 0);
	assert_int_equal(irq.type, NPK_EP_IRQ_MSI);
	assert_int_equal(irq.vector, 2);
	in.msi_vectors = 0;
	assert_int_equal(npt_epf_vector(&in, 0, &irq), -EOPNOTSUPP);
}

#define INIT NPK_EP_LINK_INIT
#define UP   NPK_EP_LINK_UP
#define BME  NPK_EP_LINK_BME

/* Feeds (link, events) to the follower; returns up, and the reset flag in *reset. */
static int step(struct npt_epf_linkstate *ls, uint32_t link, uint32_t events, bool *reset)
{
	struct npk_ep_event ev = { .link = link, .events = events };

	return npt_epf_link_step(ls, &ev, reset);
}

static void link_events_rising_edges_are_not_losses(void **st)
{
	struct npt_epf_linkstate ls = { .last = { .link = 0, .events = 0 } };
	bool reset;

	/* bound before the controller came up: INIT, UP, BME arrive one by one */
	assert_int_equal(step(&ls, INIT, 1, &reset), 1);
	assert_false(reset);
	assert_int_equal(step(&ls, INIT | UP, 2, &reset), 1);
	assert_false(reset);
	assert_int_equal(step(&ls, INIT | UP | BME, 3, &reset), 1);
	assert_false(reset);
}

static void link_events_loss_until_init_and_up(void **st)
{
	struct npt_epf_linkstate ls = { .last = { .link = INIT | UP | BME, .events = 3 } };
	bool reset;

	assert_int_equal(step(&ls, INIT, 4, &reset), 0);            /* link down (6.5+) */
	assert_false(reset);
	assert_int_equal(step(&ls, 0, 5, &reset), 0);               /* PERST# (6.11+) */
	assert_int_equal(step(&ls, INIT, 6, &reset), 0);            /* init again, not up yet */
	assert_false(reset);
	assert_int_equal(step(&ls, INIT | UP, 7, &reset), 1);       /* back: lay out anew */
	assert_true(reset);
	assert_int_equal(step(&ls, INIT | UP | BME, 8, &reset), 1); /* bus master: no reset */
	assert_false(reset);
}

static void link_events_bounce_between_reads(void **st)
{
	struct npt_epf_linkstate ls = { .last = { .link = INIT | UP, .events = 2 } };
	bool reset;

	/* down and up again before the next read: same bits, two more events */
	assert_int_equal(step(&ls, INIT | UP, 4, &reset), 1);
	assert_true(reset);
	/* BME set and an UP bounce: more events than the one changed bit */
	assert_int_equal(step(&ls, INIT | UP | BME, 7, &reset), 1);
	assert_true(reset);
	/* a plain BME change is one event for one bit */
	ls.last = (struct npk_ep_event){ .link = INIT | UP, .events = 10 };
	assert_int_equal(step(&ls, INIT | UP | BME, 11, &reset), 1);
	assert_false(reset);
}

static void link_events_counter_wraps(void **st)
{
	struct npt_epf_linkstate ls = { .last = { .link = INIT | UP, .events = 0xffffffffu } };
	bool reset;

	assert_int_equal(step(&ls, INIT | UP | BME, 0, &reset), 1);  /* +1 across the wrap */
	assert_false(reset);
	assert_int_equal(step(&ls, INIT | UP | BME, 3, &reset), 1);  /* +3, no bit changed */
	assert_true(reset);
}

static struct npt_link *open_ep(const struct npt_link_params *p)
{
	struct npt_link *l = NULL;
	char err[512] = "";
	int r = npt_link_open("epf:/dev/nbd-pcie-ep0", NPT_ROLE_EP, p, &l, err, sizeof(err));

	if (r)
		print_error("EP open: %s\n", err);
	assert_int_equal(r, 0);
	return track(l);
}

/* The host on the stand-in's BAR file; with a window: the file ep0.win,
 * bus address = file offset (the stand-in's DMA targets the same file). */
static struct npt_link *open_host_base(bool window, unsigned long base)
{
	struct npt_link_params p = { .connect_timeout_ms = 3000 };
	struct npt_link *l = NULL;
	char spec[256], err[512] = "";
	int r;

	if (window)
		snprintf(spec, sizeof(spec), "shm:bar=%s/ep0.bar,win=%s/ep0.win,win_base=0x%lx", dir, dir, base);
	else
		snprintf(spec, sizeof(spec), "shm:bar=%s/ep0.bar", dir);
	r = npt_link_open(spec, NPT_ROLE_HOST, &p, &l, err, sizeof(err));
	if (r)
		print_error("host open: %s\n", err);
	assert_int_equal(r, 0);
	return track(l);
}

static struct npt_link *open_host_spec(bool window)
{
	return open_host_base(window, 0x200000);
}

static struct npt_link *open_host(void)
{
	return open_host_spec(false);
}

/* A channel opened by the host, accepted by the EP, bytes both ways. */
static void exchange(struct npt_link *ep, struct npt_link *host)
{
	struct npt_chan *hc, *ec = NULL;
	char buf[16] = "";
	ssize_t n = -EAGAIN;

	assert_int_equal(npt_chan_open(host, -1, &hc), 0);
	for (int i = 0; i < 300 && npt_chan_accept(ep, &ec); i++)
		sleep_ms(10);
	assert_non_null(ec);
	assert_int_equal(npt_chan_send(hc, "ping", 5), 5);
	for (int i = 0; i < 300 && (n = npt_chan_recv(ec, buf, sizeof(buf))) == -EAGAIN; i++)
		sleep_ms(1);
	assert_int_equal(n, 5);
	assert_string_equal(buf, "ping");
	assert_int_equal(npt_chan_send(ec, "pong", 5), 5);
	for (int i = 0; i < 300 && (n = npt_chan_recv(hc, buf, sizeof(buf))) == -EAGAIN; i++)
		sleep_ms(1);
	assert_int_equal(n, 5);
	assert_string_equal(buf, "pong");
	npt_chan_close(hc);
	npt_chan_close(ec);
}

static void bar_only_link_with_shm_host(void **st)
{
	struct npt_link *ep, *host;
	struct npks_state *s;

	ctl("create bar_size=16M channels=3 msix=8 dma=none");
	ep = open_ep(NULL);
	/* the device's channel count is the default; the layout fits the BAR's link part */
	assert_int_equal(npt_link_nchannels(ep), 3);
	assert_non_null(strstr(npt_link_describe(ep), "BAR-only"));
	assert_non_null(strstr(npt_link_describe(ep), "MSI-X 8 vectors"));
	assert_true(ep->lay.bar_size <= ep->bar_size);
	assert_int_equal(ep->bar_size, (16u << 20) - 4096);   /* MSI-X table page excluded */
	assert_int_equal(ep->lay.features & NPL_F_HOST_WINDOW, 0);
	host = open_host();
	assert_int_equal(wait_state(ep, 0), 0);
	exchange(ep, host);
	s = state();
	assert_int_equal(s->mmaps, 1);
	assert_int_equal(s->mmap_refused, 0);
	munmap(s, sizeof(*s));
	link_close(host);
	link_close(ep);
}

/* A DMA-capable function offers the host window; everything the EP writes
 * for the host goes through NPK_EP_IOC_DMA into the window file. */
static void window_mode_through_dma(void **st)
{
	struct npt_link *ep, *host;
	struct npks_state *s;
	uint64_t before;

	ctl("create bar_size=4M channels=2");
	ep = open_ep(NULL);
	assert_non_null(strstr(npt_link_describe(ep), "host window by DMA offered"));
	assert_int_equal(ep->lay.features & NPL_F_HOST_WINDOW, NPL_F_HOST_WINDOW);
	host = open_host_spec(true);
	assert_true(host->window);
	assert_int_equal(wait_state(ep, 0), 0);
	s = state();
	assert_int_equal(s->set_window, 1);
	assert_int_equal(s->win_bus, 0x200000);
	assert_int_equal(s->win_size, 2 * (uint64_t)ep->lay.hp_size);
	before = s->dma_to_host;
	exchange(ep, host);
	/* accept (4 writes), "pong" bytes + index, the ping consumer index, close */
	assert_true(s->dma_to_host >= before + 8);
	assert_int_equal(s->dma_refused, 0);
	/* the EP's shadow in the BAR and the host's window agree on the stream */
	assert_memory_equal(ep->bar + ep->lay.chan_base + ep->lay.hp_offset + NPL_CHAN_CQ_OFFSET +
			    (size_t)ep->lay.ring_entries * sizeof(struct npl_cqe),
			    host->win->base + NPL_CHAN_CQ_OFFSET +
			    (size_t)ep->lay.ring_entries * sizeof(struct npl_cqe), 5);
	munmap(s, sizeof(*s));
	link_close(host);
	link_close(ep);
}

/* An NBD request header: type at 6, cookie at 8, offset 0, length at 24. */
static void nbd_req(uint8_t req[28], uint16_t type, uint8_t cookie, uint32_t len)
{
	memset(req, 0, 28);
	put_be32(req, 0x25609513);
	req[7] = (uint8_t)type;
	req[15] = cookie;
	put_be32(req + 24, len);
}

static const struct npks_xfer *xfer_back(const struct npks_state *s, unsigned back)
{
	return &s->log[(s->nlog - back) % NPKS_LOG];
}

/* Window mode frames: a READ's payload reaches the window before the
 * completion body, and the body before its seq (section 1's order through
 * the DMA ioctl); a WRITE's payload is fetched by DMA from the window.
 * Lengths that are not multiples of 4 are rounded out to the alignment. */
static void window_frames_in_order(void **st)
{
	struct npt_link *ep, *host;
	struct npt_chan *hc, *ec = NULL;
	struct npt_hbuf b;
	struct npt_ereq rq;
	struct npt_hcomp comp;
	struct npks_state *s;
	uint8_t req[28], rep[16] = { 0x67, 0x44, 0x66, 0x98 };
	uint32_t tag;
	uint64_t hp;
	int n = 0;

	ctl("create bar_size=4M channels=1");
	ep = open_ep(NULL);
	host = open_host_spec(true);
	assert_int_equal(wait_state(ep, 0), 0);
	assert_int_equal(npt_chan_open(host, 0, &hc), 0);
	for (int i = 0; i < 300 && npt_chan_accept(ep, &ec); i++)
		sleep_ms(10);
	assert_non_null(ec);
	assert_int_equal(npt_chan_begin_frames(hc), 0);
	assert_int_equal(npt_chan_begin_frames(ec), 0);
	s = state();
	hp = s->win_bus;            /* channel 0's host-polled area */

	/* READ of 1001 bytes */
	assert_int_equal(npt_host_buf_alloc(hc, 1001, &b), 0);
	nbd_req(req, 0, 1, 1001);
	assert_int_equal(npt_host_submit(hc, req, &b), 0);
	for (int i = 0; i < 300 && (n = npt_ep_take(ec, &rq, 1)) == 0; i++)
		sleep_ms(1);
	assert_int_equal(n, 1);
	memset(rq.local, 0x5a, rq.len);
	memcpy(rep + 8, req + 8, 8);
	assert_int_equal(npt_ep_complete(ec, &rq, rep, 1001), 0);
	assert_true(s->nlog >= 3);
	assert_int_equal(xfer_back(s, 3)->dir, NPK_EP_DMA_TO_HOST);
	assert_int_equal(xfer_back(s, 3)->host_addr, hp + ep->lay.payload_offset + b.off);
	assert_int_equal(xfer_back(s, 3)->len, 1004);
	assert_int_equal(xfer_back(s, 2)->host_addr, hp + NPL_CHAN_CQ_OFFSET);
	assert_int_equal(xfer_back(s, 2)->len, offsetof(struct npl_cqe, seq));
	assert_int_equal(xfer_back(s, 1)->host_addr, hp + NPL_CHAN_CQ_OFFSET + offsetof(struct npl_cqe, seq));
	assert_int_equal(xfer_back(s, 1)->len, 4);
	for (int i = 0; i < 300 && (n = npt_host_reap(hc, &comp, 1)) == 0; i++)
		sleep_ms(1);
	assert_int_equal(n, 1);
	for (unsigned i = 0; i < 1001; i++)
		assert_int_equal(((uint8_t *)comp.buf.ptr)[i], 0x5a);
	npt_host_buf_free(hc, &comp.buf);

	/* WRITE of 4096 bytes: fetched from the window into the shadow */
	assert_int_equal(npt_host_buf_alloc(hc, 4096, &b), 0);
	memset(b.ptr, 0xc3, 4096);
	nbd_req(req, 1, 2, 4096);
	assert_int_equal(npt_host_submit(hc, req, &b), 0);
	for (int i = 0; i < 300 && (n = npt_ep_take(ec, &rq, 1)) == 0; i++)
		sleep_ms(1);
	assert_int_equal(n, 1);
	assert_int_equal(npt_ep_fetch(ec, &rq), 0);
	for (int i = 0; i < 300 && (n = npt_ep_fetched(ec, &tag, 1)) == 0; i++)
		sleep_ms(1);
	assert_int_equal(n, 1);
	assert_int_equal(xfer_back(s, 1)->dir, NPK_EP_DMA_FROM_HOST);
	assert_int_equal(xfer_back(s, 1)->host_addr, hp + ep->lay.payload_offset + b.off);
	for (unsigned i = 0; i < 4096; i++)
		assert_int_equal(((uint8_t *)rq.local)[i], 0xc3);
	memcpy(rep + 8, req + 8, 8);
	assert_int_equal(npt_ep_complete(ec, &rq, rep, 0), 0);
	for (int i = 0; i < 300 && (n = npt_host_reap(hc, &comp, 1)) == 0; i++)
		sleep_ms(1);
	assert_int_equal(n, 1);
	npt_host_buf_free(hc, &comp.buf);
	assert_int_equal(s->dma_refused, 0);
	munmap(s, sizeof(*s));
	npt_chan_close(hc);
	npt_chan_close(ec);
	link_close(host);
	link_close(ep);
}

/* A host detaches while the EP still holds one of its channels; the next
 * host attaches with another window. Closing the old channel drops the old
 * window mapping, which must not clear the new window in the device. */
static void newer_host_window_survives_old_channel(void **st)
{
	struct npt_link *ep, *host;
	struct npt_chan *hc, *old = NULL;
	struct npks_state *s;

	ctl("create bar_size=4M channels=2");
	ep = open_ep(NULL);
	host = open_host_base(true, 0x200000);
	assert_int_equal(wait_state(ep, 0), 0);
	assert_int_equal(npt_chan_open(host, 0, &hc), 0);
	for (int i = 0; i < 300 && npt_chan_accept(ep, &old); i++)
		sleep_ms(10);
	assert_non_null(old);
	npt_chan_close(hc);
	link_close(host);
	host = open_host_base(true, 0x800000);
	assert_int_equal(wait_state(ep, 0), 0);
	s = state();
	assert_int_equal(s->win_bus, 0x800000);
	/* the last user of the first window; its closing store aims at the old
	 * window, which the device refuses: the new window is all it allows */
	npt_chan_close(old);
	assert_int_equal(s->dma_refused, 1);
	assert_non_null(strstr(s->last_refusal, "outside the host window 0x800000"));
	assert_int_equal(s->win_bus, 0x800000);
	assert_int_equal(s->win_size, 2 * (uint64_t)ep->lay.hp_size);
	exchange(ep, host);
	assert_int_equal(s->dma_refused, 1);
	munmap(s, sizeof(*s));
	link_close(host);
	link_close(ep);
}

/* bar_only in the link string keeps a DMA-capable function BAR-only; a
 * window-asking host then runs BAR-only too. */
static void bar_only_option(void **st)
{
	struct npt_link *ep, *host;
	struct npks_state *s;

	ctl("create bar_size=4M channels=2");
	{
		struct npt_link *l = NULL;
		char err[512] = "";

		assert_int_equal(npt_link_open("epf:/dev/nbd-pcie-ep0,bar_only", NPT_ROLE_EP, NULL, &l,
					       err, sizeof(err)), 0);
		ep = track(l);
	}
	assert_non_null(strstr(npt_link_describe(ep), "BAR-only"));
	host = open_host_spec(true);
	assert_false(host->window);
	assert_int_equal(wait_state(ep, 0), 0);
	exchange(ep, host);
	s = state();
	assert_int_equal(s->dma_to_host, 0);
	assert_int_equal(s->set_window, 0);
	munmap(s, sizeof(*s));
	link_close(host);
	link_close(ep);
}

static void notify_raises_the_channel_vector(void **st)
{
	struct npt_link *ep;
	struct npks_state *s;

	ctl("create msix=8");
	ep = open_ep(NULL);
	assert_int_equal(ep->ops->notify(ep, 0), 0);
	assert_int_equal(ep->ops->notify(ep, 9), 0);
	assert_int_equal(ep->ops->notify(ep, 9), 0);
	s = state();
	assert_int_equal(s->irq_total, 3);
	assert_int_equal(s->irq_msix[1], 1);
	assert_int_equal(s->irq_msix[2], 2);
	assert_int_equal(s->irq_refused, 0);
	munmap(s, sizeof(*s));
	/* before the controller is initialised the module refuses: ENOTCONN */
	ctl("link deinit");
	assert_int_equal(ep->ops->notify(ep, 0), -ENOTCONN);
	link_close(ep);
}

static void notify_msi_only_and_none(void **st)
{
	struct npt_link *ep;
	struct npks_state *s;

	ctl("create msix=0 msi=4");
	ep = open_ep(NULL);
	assert_int_equal(ep->ops->notify(ep, 6), 0);
	s = state();
	assert_int_equal(s->irq_msi[3], 1);
	munmap(s, sizeof(*s));
	link_close(ep);
	ctl("create msix=0 msi=0");
	ep = open_ep(NULL);
	assert_int_equal(ep->ops->notify(ep, 0), -EOPNOTSUPP);
	link_close(ep);
}

static void link_down_and_up_resets_like_a_peer(void **st)
{
	struct npt_link *ep, *host;
	uint32_t gen;

	ctl("create bar_size=4M channels=2 msix=4");
	ep = open_ep(NULL);
	host = open_host();
	assert_int_equal(wait_state(ep, 0), 0);
	gen = ep_gen(ep);
	ctl("link down");
	assert_int_equal(wait_state(ep, -ENOLINK), -ENOLINK);
	assert_non_null(strstr(npt_link_error(ep), "PCIe link down"));
	/* the host sees the EP close the link */
	assert_int_equal(wait_state(host, -ECONNRESET), -ECONNRESET);
	assert_non_null(strstr(npt_link_error(host), "EP closed the link"));
	link_close(host);
	ctl("link up");
	assert_int_equal(wait_state(ep, -EAGAIN), -EAGAIN);
	assert_non_null(strstr(npt_link_error(ep), "link back up"));
	assert_int_equal(ep_gen(ep), gen + 1);
	host = open_host();
	assert_int_equal(wait_state(ep, 0), 0);
	exchange(ep, host);
	link_close(host);
	link_close(ep);
}

static void link_bounce_between_reads_is_a_reset(void **st)
{
	struct npt_link *ep, *host;
	uint32_t gen;

	ctl("create bar_size=4M channels=2");
	ep = open_ep(NULL);
	host = open_host();
	assert_int_equal(wait_state(ep, 0), 0);
	gen = ep_gen(ep);
	/* down and up again within one heartbeat period: the host lost the BAR */
	ctl("link bounce");
	assert_int_equal(wait_state(host, -ECONNRESET), -ECONNRESET);
	/* a generation change, or the INIT state of the new layout if seen first */
	assert_true(strstr(npt_link_error(host), "EP restarted") ||
		    strstr(npt_link_error(host), "EP closed the link (state 1)"));
	assert_int_equal(ep_gen(ep), gen + 1);
	link_close(host);
	host = open_host();
	assert_int_equal(wait_state(ep, 0), 0);
	link_close(host);
	link_close(ep);
}

static void open_refuses_bad_info(void **st)
{
	struct npt_link *l = (void *)1;
	char err[512];

	ctl("create");
	ctl("set api_version=9");
	assert_int_equal(npt_link_open("epf:/dev/nbd-pcie-ep0", NPT_ROLE_EP, NULL, &l, err, sizeof(err)),
			 -EPROTO);
	assert_null(l);
	assert_non_null(strstr(err, "/dev/nbd-pcie-ep0"));
	assert_non_null(strstr(err, "API version 9"));
	ctl("create");
	ctl("set bar_region=4096");
	assert_int_equal(npt_link_open("epf:/dev/nbd-pcie-ep0", NPT_ROLE_EP, NULL, &l, err, sizeof(err)),
			 -EPROTO);
	assert_non_null(strstr(err, "BAR region size 4096"));
	ctl("create");
	ctl("set bound=0");
	assert_int_equal(npt_link_open("epf:/dev/nbd-pcie-ep0", NPT_ROLE_EP, NULL, &l, err, sizeof(err)),
			 -ENOTCONN);
	assert_non_null(strstr(err, "not bound"));
}

static void small_bar_fits_or_names_sizes(void **st)
{
	struct npt_link_params p = { .data_per_chan = 8u << 20 };
	struct npt_link *l = (void *)1;
	char err[512];

	/* a 256 KiB BAR cannot hold 4 channels of 64 KiB payload + rings */
	ctl("create bar_size=256K msix=0");
	assert_int_equal(npt_link_open("epf:/dev/nbd-pcie-ep0", NPT_ROLE_EP, NULL, &l, err, sizeof(err)),
			 -ENOSPC);
	assert_non_null(strstr(err, "BAR of 262144 bytes too small"));
	/* an explicit payload size is never shrunk: the sizes are named */
	ctl("create bar_size=16M");
	assert_int_equal(npt_link_open("epf:/dev/nbd-pcie-ep0", NPT_ROLE_EP, &p, &l, err, sizeof(err)),
			 -ENOSPC);
	assert_non_null(strstr(err, "link part is 16773120 bytes"));
}

/* The stand-in itself follows docs/kmod.md: what a caller sees on the
 * device is what the module would do (the backend tests rely on it). */
static void standin_follows_the_documented_semantics(void **st)
{
	struct npk_ep_info info;
	struct npk_ep_event ev;
	struct npk_ep_irq irq = { .type = NPK_EP_IRQ_MSIX, .vector = 9 };
	struct npk_ep_dma d = { .dir = NPK_EP_DMA_TO_HOST, .region = NPK_EP_REGION_BAR,
				.host_addr = 0x100000, .len = 64 };
	struct npks_state *s;
	struct pollfd pfd;
	int fd;

	ctl("create msix=8");
	s = state();
	fd = open("/dev/nbd-pcie-ep0", O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(ioctl(fd, NPK_EP_IOC_INFO, &info), 0);
	assert_int_equal(info.link, NPK_EP_LINK_INIT | NPK_EP_LINK_UP);
	/* MAP_PRIVATE refused; a region that does not exist named */
	assert_true(mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED);
	assert_int_equal(errno, EINVAL);
	assert_true(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, (off_t)NPK_MMAP_OFFSET(2)) == MAP_FAILED);
	assert_non_null(strstr(s->last_refusal, "region 2"));
	/* the first read returns at once, then nothing until a change */
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 0), 1);
	assert_int_equal(read(fd, &ev, sizeof(ev)), (ssize_t)sizeof(ev));
	assert_int_equal(poll(&pfd, 1, 0), 0);
	ctl("link down");
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	assert_true(pfd.revents & POLLIN);
	assert_int_equal(read(fd, &ev, sizeof(ev)), (ssize_t)sizeof(ev));
	assert_int_equal(ev.link, NPK_EP_LINK_INIT);
	/* no window set: every transfer refused; vectors beyond the count refused */
	assert_int_equal(ioctl(fd, NPK_EP_IOC_DMA, &d), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(s->last_refusal, "no host window set"));
	assert_int_equal(ioctl(fd, NPK_EP_IOC_RAISE_IRQ, &irq), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(s->last_refusal, "MSI-X vector 9 outside 1..8"));
	/* function removed: ENODEV, POLLERR|POLLHUP */
	ctl("set dead=1");
	assert_int_equal(ioctl(fd, NPK_EP_IOC_INFO, &info), -1);
	assert_int_equal(errno, ENODEV);
	assert_int_equal(poll(&pfd, 1, 0), 1);
	assert_int_equal(pfd.revents, POLLERR | POLLHUP);
	close(fd);
	munmap(s, sizeof(*s));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(info_good_accepted),
		cmocka_unit_test(info_api_version_names_both),
		cmocka_unit_test(info_unbound_says_configfs),
		cmocka_unit_test(info_bar_region_limits),
		cmocka_unit_test(info_channels_and_vectors_limits),
		cmocka_unit_test(vector_msix_preferred_and_wraps),
		cmocka_unit_test(link_events_rising_edges_are_not_losses),
		cmocka_unit_test(link_events_loss_until_init_and_up),
		cmocka_unit_test(link_events_bounce_between_reads),
		cmocka_unit_test(link_events_counter_wraps),
		cmocka_unit_test_teardown(bar_only_link_with_shm_host, close_leftovers),
		cmocka_unit_test_teardown(window_mode_through_dma, close_leftovers),
		cmocka_unit_test_teardown(window_frames_in_order, close_leftovers),
		cmocka_unit_test_teardown(newer_host_window_survives_old_channel, close_leftovers),
		cmocka_unit_test_teardown(bar_only_option, close_leftovers),
		cmocka_unit_test_teardown(notify_raises_the_channel_vector, close_leftovers),
		cmocka_unit_test_teardown(notify_msi_only_and_none, close_leftovers),
		cmocka_unit_test_teardown(link_down_and_up_resets_like_a_peer, close_leftovers),
		cmocka_unit_test_teardown(link_bounce_between_reads_is_a_reset, close_leftovers),
		cmocka_unit_test(open_refuses_bad_info),
		cmocka_unit_test(small_bar_fits_or_names_sizes),
		cmocka_unit_test(standin_follows_the_documented_semantics),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

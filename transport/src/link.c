/* Link lifecycle: bring-up, host attach, heartbeats, generation checks and
 * teardown (docs/transport.md "Link lifecycle"). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* The heartbeat thread wakes this often: twice per NPT_HEARTBEAT_MS, so a
 * beat is never later than the spec allows even when a wake-up is late. */
#define HB_PERIOD_MS (NPT_HEARTBEAT_MS / 2)
/* Polling period while waiting for the peer during open. */
#define OPEN_POLL_US 1000

static void link_set_err(struct npt_link *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void link_set_err(struct npt_link *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->errmsg, sizeof(l->errmsg), fmt, ap);
	va_end(ap);
}

static void set_down(struct npt_link *l, int down)
{
	__atomic_store_n(&l->down, down, __ATOMIC_RELEASE);
}

int npt_link_state(struct npt_link *l, unsigned *epoch)
{
	if (epoch)
		*epoch = __atomic_load_n(&l->epoch, __ATOMIC_ACQUIRE);
	return __atomic_load_n(&l->down, __ATOMIC_ACQUIRE);
}

static void bump_epoch(struct npt_link *l)
{
	__atomic_add_fetch(&l->epoch, 1, __ATOMIC_ACQ_REL);
}

struct npt_winmap *npt_link_win_get(struct npt_link *l)
{
	struct npt_winmap *w;

	pthread_mutex_lock(&l->lock);
	w = l->window ? l->win : NULL;
	if (w)
		w->refs++;
	pthread_mutex_unlock(&l->lock);
	return w;
}

static void win_put_locked(struct npt_link *l, struct npt_winmap *w)
{
	if (w && --w->refs == 0)
		l->ops->unmap_window(l, w);
}

void npt_link_win_put(struct npt_link *l, struct npt_winmap *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&l->lock);
	win_put_locked(l, w);
	pthread_mutex_unlock(&l->lock);
}

static void link_free(struct npt_link *l);
static bool any_chan_locked(const struct npt_link *l);
static void ep_bringup(struct npt_link *l, uint32_t prev);

void npt_link_release_chan(struct npt_link *l, unsigned idx)
{
	bool last;

	pthread_mutex_lock(&l->lock);
	l->chan_busy[idx] = false;
	last = l->closing && !any_chan_locked(l);
	pthread_mutex_unlock(&l->lock);
	if (last)
		link_free(l);
}

/* ---- EP side: a host attaches ------------------------------------------- */

static const char *err_name(uint32_t code)
{
	static const char *const names[] = {
		[NPL_ERR_NONE] = "no error",
		[NPL_ERR_STREAM] = "stream index out of range",
		[NPL_ERR_TAG] = "tag beyond the ring",
		[NPL_ERR_TAG_REUSED] = "tag already in flight",
		[NPL_ERR_LEN] = "bad payload length",
		[NPL_ERR_RANGE] = "payload beyond the payload area",
		[NPL_ERR_OVERLAP] = "payload overlaps an in-flight payload",
		[NPL_ERR_MAGIC] = "bad NBD request magic",
		[NPL_ERR_DIR] = "direction does not match the NBD command",
		[NPL_ERR_WINDOW] = "host window parameters invalid",
		[NPL_ERR_WINMAP] = "EP cannot map the host window",
	};
	return code < ARRAY_SIZE(names) && names[code] ? names[code] : "unknown error";
}
const char *npt_err_name(uint32_t code)
{
	return err_name(code);
}

/* Called with the lock held. */
static void ep_attach(struct npt_link *l, uint32_t gen)
{
	struct npl_bar_header *h = l->hdr;
	uint32_t feat = npt_rd32(&h->host_features);
	uint32_t status = NPL_ERR_NONE;
	char why[NPT_ERRLEN] = "";

	if (l->window) {          /* drop the previous host's window */
		l->window = false;
		win_put_locked(l, l->win);
		l->win = NULL;
	}
	if (feat & NPL_F_HOST_WINDOW) {
		uint64_t bus = npt_rd64(&h->win_bus_addr);
		uint64_t size = npt_rd64(&h->win_size);
		uint64_t stride = npt_rd64(&h->win_chan_stride);
		uint32_t data = npt_rd32(&h->win_data_per_chan);
		struct npt_winmap *w = NULL;

		if (!(l->lay.features & NPL_F_HOST_WINDOW) || !l->ops->map_window) {
			snprintf(why, sizeof(why), "window: host asked for a window, this EP offers none");
			status = NPL_ERR_WINDOW;
		} else if (npt_window_check(&l->lay, bus, size, stride, data, why, sizeof(why))) {
			status = NPL_ERR_WINDOW;
		} else if (l->ops->map_window(l, &bus, size, &w, why, sizeof(why))) {
			status = NPL_ERR_WINMAP;
		} else {
			w->stride = stride;
			l->win = w;
			l->win_stride = stride;
			l->win_data = data ? data : l->lay.data_per_chan;
			l->window = true;
		}
	}
	npt_wr32(&h->ep_win_status, status);
	/* The host rings us only if it says so, and only for a bit we offered. */
	l->peer_rings = (feat & NPL_F_DOORBELL) && (l->lay.features & NPL_F_DOORBELL);
	l->host_gen = gen;
	bump_epoch(l);
	if (status) {
		link_set_err(l, "host generation %" PRIu32 " refused: %s", gen, why);
		set_down(l, -EAGAIN);
	} else {
		l->peer_hb = npt_rd64(&h->host_heartbeat);
		l->peer_hb_ns = npt_now_ns();
		l->peer_idle = 0;
		if (l->window && l->win_data < l->lay.data_per_chan)
			link_set_err(l, "host generation %" PRIu32 " attached (host window, payload areas "
				     "shrunk to %" PRIu32 " bytes)", gen, l->win_data);
		else
			link_set_err(l, "host generation %" PRIu32 " attached (%s)", gen,
				     l->window ? "host window" : "BAR-only");
		set_down(l, 0);
	}
	npt_store_release32(&h->ep_host_gen, gen);
}

/* The host can write anywhere in the BAR. The EP never re-reads its own
 * layout (it keeps l->lay), but a host needs a valid header to attach: put
 * back whatever a faulty host overwrote in the EP-owned lines. */
static void ep_repair_header(struct npt_link *l)
{
	struct npl_bar_header *h = l->hdr;
	struct npt_layout cur;
	char why[NPT_ERRLEN];

	if (npt_layout_read(h, l->bar_size, &cur, why, sizeof(why)) == 0 &&
	    !memcmp(&cur, &l->lay, sizeof(cur)) && npt_rd32(&h->ep_generation) == l->gen &&
	    npt_rd32(&h->ep_state) == NPL_EP_READY && npt_rd32(&h->ep_host_gen) == l->host_gen)
		return;
	npt_layout_write(h, &l->lay);
	npt_wr32(&h->ep_generation, l->gen);
	npt_wr32(&h->ep_host_gen, l->host_gen);
	npt_store_release32(&h->ep_state, NPL_EP_READY);
}

/* Checks in a row that must see no beat, besides NPT_PEER_DEAD_MS of time,
 * before the peer is declared dead: if this side was not running (a VM
 * descheduled, a stopped process), the time passed but the checks did
 * not, and the peer gets a fair window to beat again. */
#define DEAD_CHECKS (NPT_PEER_DEAD_MS / HB_PERIOD_MS)

static bool peer_silent(struct npt_link *l, uint64_t now)
{
	l->peer_idle++;
	return now - l->peer_hb_ns >= (uint64_t)NPT_PEER_DEAD_MS * 1000000 &&
	       l->peer_idle >= DEAD_CHECKS;
}

/* The physical link (backends that know it, e.g. epf): a loss takes the
 * link down like a host reset (channels fail, the window is dropped,
 * ep_state DOWN); its return lays the BAR out again under a new generation
 * (the host re-enumerated and lost everything). Returns true while down:
 * the EP then neither beats nor watches the host. Lock held. */
static bool ep_follow_phys(struct npt_link *l)
{
	char why[NPT_ERRLEN] = "";
	bool reset = false;
	int up = l->ops->link_watch(l, &reset, why, sizeof(why));

	if (up <= 0) {
		if (!l->phys_down) {
			l->phys_down = true;
			if (l->window) {
				l->window = false;
				win_put_locked(l, l->win);
				l->win = NULL;
			}
			npt_store_release32(&l->hdr->ep_state, NPL_EP_DOWN);
			link_set_err(l, "%s", why[0] ? why : "PCIe link down");
			set_down(l, -ENOLINK);
			bump_epoch(l);
		}
		return true;
	}
	if (l->phys_down || reset) {
		l->phys_down = false;
		ep_bringup(l, l->gen);
		link_set_err(l, "waiting for a host (%s, generation %" PRIu32 ")",
			     why[0] ? why : "PCIe link back up", l->gen);
		bump_epoch(l);
	}
	return false;
}

static void ep_monitor(struct npt_link *l)
{
	struct npl_bar_header *h = l->hdr;
	uint32_t st = npt_load_acquire32(&h->host_state);
	uint32_t gen = npt_rd32(&h->host_generation);
	uint64_t hb = npt_rd64(&h->host_heartbeat), now = npt_now_ns();

	ep_repair_header(l);
	if (st == NPL_HOST_ATTACHED && gen != l->host_gen) {
		ep_attach(l, gen);
		return;
	}
	if (l->down)
		return;
	if (st != NPL_HOST_ATTACHED) {
		link_set_err(l, "host generation %" PRIu32 " detached", l->host_gen);
		set_down(l, -EAGAIN);
		bump_epoch(l);
	} else if (hb != l->peer_hb) {
		l->peer_hb = hb;
		l->peer_hb_ns = now;
		l->peer_idle = 0;
	} else if (!peer_silent(l, now)) {
		return;
	} else {
		link_set_err(l, "host generation %" PRIu32 " dead: no heartbeat for %" PRIu64
			     " ms (limit %d ms)", l->host_gen, (now - l->peer_hb_ns) / 1000000,
			     NPT_PEER_DEAD_MS);
		set_down(l, -EAGAIN);
		bump_epoch(l);
	}
}

/* ---- host side: watch the EP ---------------------------------------------- */

static void host_monitor(struct npt_link *l)
{
	struct npl_bar_header *h = l->hdr;
	struct npt_layout cur;
	char why[NPT_ERRLEN] = "";
	uint32_t st, gen, hgen;
	uint64_t hb, now = npt_now_ns();

	if (l->down)
		return;      /* terminal for a host link: the caller reopens it */
	st = npt_load_acquire32(&h->ep_state);
	gen = npt_rd32(&h->ep_generation);
	hgen = npt_rd32(&h->ep_host_gen);
	hb = npt_rd64(&h->ep_heartbeat);
	if (gen != l->peer_gen) {
		link_set_err(l, "link down: EP restarted (generation %" PRIu32 " -> %" PRIu32 ")",
			     l->peer_gen, gen);
	} else if (st != NPL_EP_READY) {
		link_set_err(l, "link down: EP closed the link (state %" PRIu32 ")", st);
	} else if (hgen != l->gen) {
		link_set_err(l, "link down: EP attached host generation %" PRIu32 ", ours is %" PRIu32,
			     hgen, l->gen);
	} else if (npt_layout_read(h, l->bar_size, &cur, why, sizeof(why)) ||
		   memcmp(&cur, &l->lay, sizeof(cur))) {
		link_set_err(l, "link down: BAR layout changed under us (%s)",
			     why[0] && cur.nchannels == 0 ? why : "fields differ from the layout at open");
		set_down(l, -EPROTO);
		return;
	} else if (hb != l->peer_hb) {
		l->peer_hb = hb;
		l->peer_hb_ns = now;
		l->peer_idle = 0;
		return;
	} else if (peer_silent(l, now)) {
		link_set_err(l, "link down: EP generation %" PRIu32 " dead: no heartbeat for %" PRIu64
			     " ms (limit %d ms)", gen, (now - l->peer_hb_ns) / 1000000, NPT_PEER_DEAD_MS);
	} else {
		return;
	}
	set_down(l, -ECONNRESET);
}

static uint64_t host_beat_value(struct npt_link *l)
{
	/* several host processes may beat: the pid keeps the values distinct */
	return (uint64_t)(uint32_t)getpid() << 32 | (l->hb & 0xffffffffu);
}

static void *hb_main(void *arg)
{
	struct npt_link *l = arg;
	struct timespec ts;

	pthread_mutex_lock(&l->lock);
	while (!l->stopping) {
		l->hb++;
		if (l->role == NPT_ROLE_HOST) {
			npt_wr64(&l->hdr->host_heartbeat, host_beat_value(l));
			host_monitor(l);
		} else if (!l->ops->link_watch || !ep_follow_phys(l)) {
			npt_wr64(&l->hdr->ep_heartbeat, l->hb);
			ep_monitor(l);
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += HB_PERIOD_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!l->stopping && pthread_cond_timedwait(&l->cond, &l->lock, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

static int start_hb(struct npt_link *l, char *err, size_t errlen)
{
	pthread_condattr_t ca;
	int r;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	r = pthread_create(&l->hb_thread, NULL, hb_main, l);
	if (r) {
		npt_seterr(err, errlen, "link: cannot start the heartbeat thread: %s", strerror(r));
		return -r;
	}
	l->hb_started = true;
	return 0;
}

/* ---- open ------------------------------------------------------------------ */

/* Channel areas the EP resets on bring-up: control lines and ring slots,
 * not the payload areas (they carry no state). */
static void ep_reset_channels(struct npt_link *l)
{
	for (uint32_t i = 0; i < l->lay.nchannels; i++) {
		uint8_t *base = l->bar + l->lay.chan_base + (uint64_t)i * l->lay.chan_stride;

		memset(base, 0, NPL_CHAN_SQ_OFFSET + (size_t)l->lay.ring_entries * sizeof(struct npl_sqe));
		memset(base + l->lay.hp_offset, 0,
		       NPL_CHAN_CQ_OFFSET + (size_t)l->lay.ring_entries * sizeof(struct npl_cqe));
	}
}

/* Steps 2-5 of EP bring-up (docs "EP bring-up"), at open and again when the
 * physical link comes back: a new generation, so that a host that knew the
 * previous one re-attaches. Lock held or link not shared yet. */
static void ep_bringup(struct npt_link *l, uint32_t prev)
{
	struct npl_bar_header *h = l->hdr;

	npt_store_release32(&h->ep_state, NPL_EP_INIT);
	ep_reset_channels(l);
	npt_layout_write(h, &l->lay);
	l->gen = prev + 1 ? prev + 1 : 1;
	/* A host that was attached to our predecessor must re-attach with a new
	 * generation: remember the current one as already seen. */
	l->host_gen = npt_rd32(&h->host_generation);
	npt_wr32(&h->ep_host_gen, l->host_gen);
	npt_wr32(&h->ep_win_status, 0);
	npt_wr32(&h->ep_generation, l->gen);
	npt_wr64(&h->ep_heartbeat, 0);
	npt_store_release32(&h->ep_state, NPL_EP_READY);
	set_down(l, -EAGAIN);
}

static int ep_open(struct npt_link *l, const struct npt_link_params *p, char *err, size_t errlen)
{
	struct npt_link_params q = p ? *p : (struct npt_link_params){ 0 };
	struct npl_bar_header *h;
	uint32_t features = l->spec.win_path[0] || l->win_shadow ? NPL_F_HOST_WINDOW : 0;
	uint32_t prev = 0;
	int r;

	/* a device configured for a channel count supplies the default */
	if (!q.nchannels && l->dev_channels)
		q.nchannels = l->dev_channels;
	p = &q;
	/* We ring the host for its sleeping words if the backend can. */
	if (l->ops->notify && !l->bell_off) {
		features |= NPL_F_DOORBELL;
		l->ring_peer = true;
	}
	r = npt_layout_compute(p, features, &l->lay, err, errlen);
	if (r)
		return r;
	/* Without an explicit payload size, a foreign BAR file (QEMU's ivshmem
	 * memory, fixed size) gets the largest layout that fits it. */
	l->bar_fit = !p->data_per_chan;
	r = l->ops->map_bar(l, l->lay.bar_size, err, errlen);
	if (r)
		return r;
	if (l->bar_size < l->lay.bar_size) {
		r = npt_layout_fit(p, features, l->bar_size, &l->lay, err, errlen);
		if (r)
			return r;
	}
	h = l->hdr = (struct npl_bar_header *)l->bar;
	if (npt_rd32(&h->magic) == NPL_MAGIC)
		prev = npt_rd32(&h->ep_generation);
	ep_bringup(l, prev);
	link_set_err(l, "waiting for a host");
	return start_hb(l, err, errlen);
}

static int sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };

	return nanosleep(&ts, NULL);
}

/* Attaches a new host generation (steps 2-3 of docs "Host attach"). */
static int host_attach_new(struct npt_link *l, const struct npt_link_params *p, uint64_t deadline,
			   int tmo, char *err, size_t errlen)
{
	struct npl_bar_header *h = l->hdr;
	uint32_t gen, bell = 0;
	int r;

	uint64_t max = l->ops->win_max ? l->ops->win_max(l) : 0;
	struct npt_winplan wp;
	char why[NPT_ERRLEN];

	/* Ring the EP for its sleeping words if it offers doorbells (it then
	 * rings us too) and our backend can. */
	l->peer_rings = l->lay.features & NPL_F_DOORBELL;
	if (l->peer_rings && l->ops->notify && !l->bell_off) {
		bell = NPL_F_DOORBELL;
		l->ring_peer = true;
	}

	l->max_xfer = l->lay.max_xfer;
	if (!(l->lay.features & NPL_F_HOST_WINDOW)) {
		snprintf(l->mode, sizeof(l->mode), "BAR-only: the EP offers no host window");
	} else if (p && p->bar_only) {
		snprintf(l->mode, sizeof(l->mode), "BAR-only: asked for");
	} else if (!max || !l->ops->map_window) {
		snprintf(l->mode, sizeof(l->mode), "BAR-only");
	} else if (npt_window_plan(&l->lay, max, &wp, why, sizeof(why))) {
		snprintf(l->mode, sizeof(l->mode), "BAR-only: %s", why);
	} else {
		r = l->ops->map_window(l, &l->win_bus, wp.size, &l->win, err, errlen);
		if (r)
			return r;
		l->window = true;
		l->win_stride = wp.stride;
		l->win_data = wp.data_eff;
		l->max_xfer = wp.max_xfer;
		if (wp.data)
			snprintf(l->mode, sizeof(l->mode), "host window of %" PRIu64 " bytes at bus 0x%" PRIx64
				 "; payload areas shrunk to fit: %" PRIu32 " of %" PRIu32 " bytes per channel, "
				 "max_xfer %" PRIu32, wp.size, l->win_bus, wp.data, l->lay.data_per_chan, wp.max_xfer);
		else
			snprintf(l->mode, sizeof(l->mode), "host window of %" PRIu64 " bytes at bus 0x%" PRIx64,
				 wp.size, l->win_bus);
		npt_wr64(&h->win_bus_addr, l->win_bus);
		npt_wr64(&h->win_size, wp.size);
		npt_wr64(&h->win_chan_stride, wp.stride);
		npt_wr32(&h->win_data_per_chan, wp.data);
	}
	npt_wr32(&h->host_features, (l->window ? NPL_F_HOST_WINDOW : 0) | bell);
	gen = npt_rd32(&h->host_generation) + 1;
	l->gen = gen ? gen : 1;
	npt_wc_fence(l->bar_wc);
	npt_wr32(&h->host_generation, l->gen);
	npt_wc_fence(l->bar_wc);
	npt_store_release32(&h->host_state, NPL_HOST_ATTACHED);
	npt_wc_fence(l->bar_wc);

	/* 3. wait for the EP's acknowledgement */
	while (npt_load_acquire32(&h->ep_host_gen) != l->gen) {
		if (npt_now_ns() >= deadline) {
			npt_seterr(err, errlen, "link: %s: EP did not acknowledge host generation %"
				   PRIu32 " within %d ms", l->spec.bar_path, l->gen, tmo);
			return -ETIMEDOUT;
		}
		l->hb++;
		npt_wr64(&h->host_heartbeat, host_beat_value(l));
		sleep_us(OPEN_POLL_US);
	}
	r = (int)npt_rd32(&h->ep_win_status);
	if (r) {
		npt_seterr(err, errlen, "link: %s: EP refused the host window: %s (code %d)",
			   l->spec.bar_path, npt_err_name((uint32_t)r), r);
		return -EPROTO;
	}
	return 0;
}

/* Uses the attachment (generation, window) of another live host process. */
static int host_join(struct npt_link *l, uint32_t gen, int32_t other, char *err, size_t errlen)
{
	struct npl_bar_header *h = l->hdr;
	uint32_t feat = npt_rd32(&h->host_features);
	int r;

	l->gen = gen;
	l->max_xfer = l->lay.max_xfer;
	/* The attaching process promised the EP doorbells for every channel. */
	l->peer_rings = l->lay.features & NPL_F_DOORBELL;
	if (feat & NPL_F_DOORBELL) {
		if (!l->ops->notify || l->bell_off) {
			npt_seterr(err, errlen, "link: %s: host process %d attached it with doorbells, "
				   "which this process cannot ring (NPT_DOORBELL=0 or another link string)",
				   l->spec.bar_path, (int)other);
			return -EBUSY;
		}
		l->ring_peer = true;
	}
	if (feat & NPL_F_HOST_WINDOW) {
		uint64_t bus = npt_rd64(&h->win_bus_addr), size = npt_rd64(&h->win_size);
		uint64_t stride = npt_rd64(&h->win_chan_stride);
		uint32_t data = npt_rd32(&h->win_data_per_chan);

		if (!l->ops->map_window || !l->ops->win_max || !l->ops->win_max(l)) {
			npt_seterr(err, errlen, "link: %s: host process %d attached it with a host window, "
				   "which this link string cannot map: use the same link string",
				   l->spec.bar_path, (int)other);
			return -EBUSY;
		}
		r = npt_window_check(&l->lay, bus, size, stride, data, err, errlen);
		if (r)
			return r;
		l->win_join = true;
		r = l->ops->map_window(l, &bus, size, &l->win, err, errlen);
		if (r)
			return r;
		l->window = true;
		l->win_bus = bus;
		l->win_stride = stride;
		l->win_data = data ? data : l->lay.data_per_chan;
		l->max_xfer = npt_window_xfer(&l->lay, data);
		snprintf(l->mode, sizeof(l->mode), "host window of %" PRIu64 " bytes at bus 0x%" PRIx64
			 " joined (host process %d attached it)", size, bus, (int)other);
	} else {
		snprintf(l->mode, sizeof(l->mode), "BAR-only, joined (host process %d attached it)", (int)other);
	}
	return 0;
}

static int host_attach_or_join(struct npt_link *l, const struct npt_link_params *p, uint64_t deadline,
			       int tmo, char *err, size_t errlen)
{
	struct npl_bar_header *h = l->hdr;
	struct npt_hosts_reg reg;
	int32_t other = 0;
	int r;

	l->ops->reg_path(l, l->reg_path, sizeof(l->reg_path));
	r = npt_hosts_open(l, err, errlen);
	if (r)
		return r;
	r = npt_hosts_lock(l);
	if (r) {
		npt_seterr(err, errlen, "link: locking host registry %s: %s", l->reg_path, strerror(-r));
		return r;
	}
	npt_hosts_read(l, &reg);
	if (reg.gen && reg.gen == npt_rd32(&h->host_generation) &&
	    npt_rd32(&h->host_state) == NPL_HOST_ATTACHED && npt_rd32(&h->ep_host_gen) == reg.gen &&
	    npt_rd32(&h->ep_win_status) == 0)
		other = npt_hosts_other(&reg);
	if (other) {
		r = host_join(l, reg.gen, other, err, errlen);
	} else {
		r = host_attach_new(l, p, deadline, tmo, err, errlen);
		if (!r) {
			memset(&reg, 0, sizeof(reg));
			reg.gen = l->gen;
		}
	}
	if (!r) {
		r = npt_hosts_user_add(&reg);
		if (r)
			npt_seterr(err, errlen, "link: %s: %u host processes use it already",
				   l->spec.bar_path, NPT_MAX_CHANNELS);
	}
	if (!r)
		r = npt_hosts_write(l, &reg);
	npt_hosts_unlock(l);
	return r;
}

static int host_open(struct npt_link *l, const struct npt_link_params *p, char *err, size_t errlen)
{
	int tmo = p && p->connect_timeout_ms ? p->connect_timeout_ms : NPT_DEFAULT_TIMEOUT_MS;
	uint64_t deadline = npt_now_ns() + (uint64_t)(tmo > 0 ? tmo : 0) * 1000000;
	struct npl_bar_header *h;
	char why[NPT_ERRLEN] = "BAR file not found";
	uint64_t hb0 = 0;
	bool seen_ready = false;
	int r;

	/* 1. a live EP: the BAR exists, its layout is valid and READY, and its
	 *    heartbeat advances (a dead EP leaves a READY header behind). */
	for (;;) {
		if (!l->bar) {
			r = l->ops->map_bar(l, 0, why, sizeof(why));
			if (r && r != -ENOENT && r != -EAGAIN)
				return npt_seterr(err, errlen, "%s", why), r;
			if (r == -ENOENT)
				npt_seterr(why, sizeof(why), "BAR file %s does not exist", l->spec.bar_path);
			else if (r == -EAGAIN)
				npt_seterr(why, sizeof(why), "BAR %s not laid out yet", l->spec.bar_path);
		}
		if (l->bar) {
			h = l->hdr = (struct npl_bar_header *)l->bar;
			if (npt_load_acquire32(&h->ep_state) != NPL_EP_READY) {
				snprintf(why, sizeof(why), "EP not ready (state %" PRIu32 ")",
					 npt_rd32(&h->ep_state));
				seen_ready = false;
			} else if ((r = npt_layout_read(h, l->bar_size, &l->lay, why, sizeof(why)))) {
				if (npt_rd32(&h->magic) == NPL_MAGIC && r == -EPROTO &&
				    npt_load_acquire32(&h->ep_state) == NPL_EP_READY)
					return npt_seterr(err, errlen, "link: %s: %s", l->spec.bar_path, why), r;
			} else if (!seen_ready || npt_rd32(&h->ep_generation) != l->peer_gen) {
				seen_ready = true;
				hb0 = npt_rd64(&h->ep_heartbeat);
				l->peer_gen = npt_rd32(&h->ep_generation);
				snprintf(why, sizeof(why), "EP heartbeat not advancing");
			} else if (npt_rd64(&h->ep_heartbeat) != hb0 &&
				   npt_rd32(&h->ep_generation) == l->peer_gen) {
				break;
			}
		}
		if (npt_now_ns() >= deadline) {
			npt_seterr(err, errlen, "link: %s: no live EP within %d ms: %s",
				   l->spec.bar_path, tmo, why);
			return -ETIMEDOUT;
		}
		sleep_us(OPEN_POLL_US);
	}

	/* 2. attach, or join the attachment of another live host process */
	r = host_attach_or_join(l, p, deadline, tmo, err, errlen);
	if (r)
		return r;
	l->peer_hb = npt_rd64(&h->ep_heartbeat);
	l->peer_hb_ns = npt_now_ns();
	l->peer_idle = 0;
	l->down = 0;
	link_set_err(l, "up");
	return start_hb(l, err, errlen);
}

int npt_link_open(const char *spec, enum npt_role role, const struct npt_link_params *p,
		  struct npt_link **out, char *err, size_t errlen)
{
	struct npt_link *l;
	const char *env;
	int r;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (role != NPT_ROLE_HOST && role != NPT_ROLE_EP) {
		npt_seterr(err, errlen, "link: role %d is neither host nor EP", (int)role);
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->role = role;
	l->bar_fd = l->win_fd = l->reg_fd = -1;
	pthread_mutex_init(&l->lock, NULL);
	r = npt_spec_parse(spec, &l->spec, err, errlen);
	if (r)
		goto fail;
	switch (l->spec.kind) {
	case NPT_KIND_SHM:
		l->ops = &npt_shm_ops;
		break;
	case NPT_KIND_PCI:
		l->ops = &npt_pci_ops;
		break;
	case NPT_KIND_EPF:
		l->ops = &npt_epf_ops;
		r = npt_epf_open(l, err, errlen);
		if (r)
			goto fail;
		break;
	}
	if (!l->dma_ops)
		l->dma_ops = &npt_dma_emul_ops;
	if (!l->spec.dma_gbps && (env = getenv("NPT_DMA_GBPS")))
		l->spec.dma_gbps = strtod(env, NULL);
	if (!l->spec.dma_lat_us && (env = getenv("NPT_DMA_LAT_US")))
		l->spec.dma_lat_us = strtod(env, NULL);
	/* Doorbells off: the side polls as in a peer without them (tests of
	 * that case; before/after measurements). */
	env = getenv("NPT_DOORBELL");
	l->bell_off = env && !strcmp(env, "0");
	r = role == NPT_ROLE_EP ? ep_open(l, p, err, errlen) : host_open(l, p, err, errlen);
	if (r)
		goto fail;
	if (l->ops->describe)
		l->ops->describe(l, l->desc, sizeof(l->desc));
	else if (l->spec.kind == NPT_KIND_SHM && role == NPT_ROLE_HOST && l->window &&
		 l->win_data < l->lay.data_per_chan)
		snprintf(l->desc, sizeof(l->desc), "shm:%s (host window, payload areas shrunk to %" PRIu32
			 " bytes, max_xfer %" PRIu32 ", %" PRIu32 " ch%s)", l->spec.bar_path, l->win_data,
			 npt_link_max_xfer(l), l->lay.nchannels,
			 l->ring_peer && l->peer_rings ? ", doorbells" : "");
	else if (l->spec.kind == NPT_KIND_SHM)
		snprintf(l->desc, sizeof(l->desc), "shm:%s (%s, %" PRIu32 " ch%s)", l->spec.bar_path,
			 role == NPT_ROLE_EP ? (l->lay.features & NPL_F_HOST_WINDOW ? "host window offered" : "BAR-only")
					     : (l->window ? "host window" : "BAR-only"),
			 l->lay.nchannels,
			 (role == NPT_ROLE_EP ? l->ring_peer : l->ring_peer && l->peer_rings) ? ", doorbells" : "");
	else
		snprintf(l->desc, sizeof(l->desc), "%s (%s%s%s, %" PRIu32 " ch, %s)", spec,
			 l->mode[0] ? l->mode : "BAR-only", l->bnote[0] ? "; " : "", l->bnote,
			 l->lay.nchannels,
			 l->peer_rings && l->ops->wait_fd && !l->bell_off ? "sleeps on the EP's interrupts"
									  : "polls");
	*out = l;
	return 0;
fail:
	if (err && errlen && !err[0])
		npt_seterr(err, errlen, "link: %s: %s", spec, strerror(-r));
	npt_link_close(l);
	return r;
}

/* Host close: the last host process of this generation detaches the link and
 * removes the shared files; the others leave them to the remaining ones. */
static void host_leave(struct npt_link *l)
{
	struct npt_hosts_reg reg;
	bool mine, last;

	if (l->reg_fd < 0 || npt_hosts_lock(l))
		return;
	npt_hosts_read(l, &reg);
	npt_hosts_user_del(&reg);
	for (unsigned i = 0; i < NPT_MAX_CHANNELS; i++)
		if (reg.pid[i] == (int32_t)getpid())
			reg.pid[i] = 0;     /* our channels fail from now on */
	mine = reg.gen == l->gen && npt_rd32(&l->hdr->host_generation) == l->gen;
	last = mine && !npt_hosts_other(&reg);
	if (last) {
		npt_store_release32(&l->hdr->host_state, NPL_HOST_DETACHED);
		npt_wc_fence(l->bar_wc);
		if (l->window && l->spec.win_default)
			unlink(l->spec.win_path);
		l->win_created = false;
		npt_hosts_remove(l);
	} else {
		/* another process still uses the window, or a newer attach
		 * replaced it (and PATH.win is that attach's file now) */
		l->win_created = false;
		if (mine)
			npt_hosts_write(l, &reg);
	}
	npt_hosts_unlock(l);
}

static void link_free(struct npt_link *l)
{
	if (l->win) {
		l->window = false;
		win_put_locked(l, l->win);
		l->win = NULL;
	}
	if (l->ops)
		l->ops->close(l);
	npt_hosts_close(l);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static bool any_chan_locked(const struct npt_link *l)
{
	for (unsigned i = 0; i < NPT_MAX_CHANNELS; i++)
		if (l->chan_busy[i])
			return true;
	return false;
}

void npt_link_close(struct npt_link *l)
{
	bool deferred;

	if (!l)
		return;
	if (l->hb_started) {
		pthread_mutex_lock(&l->lock);
		l->stopping = true;
		pthread_cond_signal(&l->cond);
		pthread_mutex_unlock(&l->lock);
		pthread_join(l->hb_thread, NULL);
		pthread_cond_destroy(&l->cond);
		l->hb_started = false;
	}
	__atomic_store_n(&l->closing, true, __ATOMIC_RELEASE);
	if (l->hdr && l->bar) {
		if (l->role == NPT_ROLE_HOST && l->gen) {
			host_leave(l);
		} else if (l->role == NPT_ROLE_EP && l->gen) {
			npt_store_release32(&l->hdr->ep_state, NPL_EP_DOWN);
		}
	}
	/* Channels still open keep the mappings alive; they fail from now on
	 * and the last npt_chan_close() frees the link. */
	pthread_mutex_lock(&l->lock);
	link_set_err(l, "link closed by this side");
	set_down(l, l->role == NPT_ROLE_HOST ? -ECONNRESET : -EAGAIN);
	bump_epoch(l);
	deferred = any_chan_locked(l);
	pthread_mutex_unlock(&l->lock);
	if (!deferred)
		link_free(l);
}

int npt_link_check(struct npt_link *l)
{
	return npt_link_state(l, NULL);
}

const char *npt_link_error(struct npt_link *l)
{
	/* One copy per calling thread: the link's message may be rewritten by
	 * another thread at any time, and two threads asking at once must not
	 * share (and overwrite) one buffer. Valid until this thread's next call. */
	static __thread char copy[NPT_ERRLEN];

	pthread_mutex_lock(&l->lock);
	memcpy(copy, l->errmsg, sizeof(copy));
	pthread_mutex_unlock(&l->lock);
	return copy;
}

unsigned npt_link_nchannels(const struct npt_link *l)
{
	return l->lay.nchannels;
}

uint32_t npt_link_max_xfer(const struct npt_link *l)
{
	return l->max_xfer ? l->max_xfer : l->lay.max_xfer;
}

const char *npt_link_describe(const struct npt_link *l)
{
	return l->desc;
}

uint8_t *npt_test_bar(struct npt_link *l)
{
	return l->bar;
}

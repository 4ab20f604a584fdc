/* transport/ private interfaces, sectioned by the .c file that defines them. */
#ifndef NPT_INTERNAL_H
#define NPT_INTERNAL_H

#include <endian.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <common/compiler.h>
#include <common/endian.h>
#include <nbdpcie/transport.h>
#include <uapi/nbd-pcie-link.h>

STATIC_ASSERT_SIZE(struct npl_bar_header, 256);
STATIC_ASSERT_SIZE(struct npl_chan_ep_ctl, 64);
STATIC_ASSERT_SIZE(struct npl_chan_host_ctl, 64);
STATIC_ASSERT_SIZE(struct npl_sqe, 64);
STATIC_ASSERT_SIZE(struct npl_cqe, 32);

/* ---- shared-memory accessors (this header) --------------------------------
 * Every word of the BAR and of the host window is read and written through
 * these: one aligned load or store each (READ_ONCE/WRITE_ONCE), converted
 * from/to little-endian. Ring entry bodies are copied with memcpy only after
 * the acquire below and only from/to slots the other side does not own. */
static inline uint32_t npt_rd32(const __le32 *p)
{
	return le32toh(__atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED));
}
static inline void npt_wr32(__le32 *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELAXED);
}
static inline uint64_t npt_rd64(const __le64 *p)
{
	return le64toh(__atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED));
}
static inline void npt_wr64(__le64 *p, uint64_t v)
{
	__atomic_store_n((uint64_t *)p, htole64(v), __ATOMIC_RELAXED);
}
/* Acquire load of a publishing word (an entry's seq, a stream producer or
 * consumer index, a state word): orders this load before every later read
 * of the data the word publishes (entry body, stream bytes, layout). */
static inline uint32_t npt_load_acquire32(const __le32 *p)
{
	return le32toh(__atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE));
}
/* Release store of a publishing word: orders every earlier store of the
 * data it publishes (entry body, stream bytes, zeroed ring) before it. */
static inline void npt_store_release32(__le32 *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELEASE);
}
/* Full fence of the need-wakeup handshake (docs/transport.md
 * "Notifications"): orders a store (a sleeper's sleeping word, a producer's
 * publishing word) before the load that follows (the sleeper's re-check of
 * its rings, the producer's read of the peer's sleeping word). Release and
 * acquire do not order a store before a later load; only a seq_cst fence
 * does (x86: mfence, which also drains write-combining buffers). */
static inline void npt_fence_full(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}
/* Write-combining barrier: on a host BAR mapped write-combined, x86 stores
 * may be merged and reordered in the WC buffer and a release store does not
 * order them; an sfence (full fence elsewhere) makes the entry body reach the
 * link before the seq store that publishes it. No-op for coherent memory. */
static inline void npt_wc_fence(bool wc)
{
	if (wc) {
#if defined(__x86_64__) || defined(__i386__)
		__asm__ __volatile__("sfence" ::: "memory");
#else
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
	}
}

/* Limits of the layout an EP may publish (docs/transport.md "Limits"). */
#define NPT_DEFAULT_CHANNELS   4
#define NPT_DEFAULT_RING       128        /* kernel nbd's default queue depth */
#define NPT_DEFAULT_DATA       (16u << 20) /* 4 x max_xfer: 4 full-size requests in flight */
#define NPT_DEFAULT_MAX_XFER   (4u << 20)  /* large enough for nbd's 32 MiB cap after chunking x8 */
#define NPT_MAX_DATA           (1u << 30)  /* keeps a channel stride within 32 bits */
#define NPT_MIN_RING           2          /* a ring needs two slots to tell full from stale */
#define NPT_STREAM_SIZE        8192       /* two pages: a whole NBD option reply fits */
#define NPT_DEFAULT_TIMEOUT_MS 5000
#define NPT_ERRLEN             256

/* ---- spec.c: link strings ------------------------------------------------ */
enum npt_kind { NPT_KIND_SHM, NPT_KIND_PCI, NPT_KIND_EPF };
struct npt_spec {
	enum npt_kind kind;
	char bar_path[PATH_MAX];     /* shm: BAR file */
	char win_path[PATH_MAX];     /* shm: window file ("" = BAR-only) */
	bool win_default;            /* shm:PATH form: window file is PATH.win, ours to create */
	uint64_t win_base;           /* shm: bus address of the window = file offset */
	uint64_t win_max;            /* shm host: most bytes of window to publish, 0 = any */
	bool pci_by_id;              /* pci: vendor:device instead of an address */
	unsigned domain, bus, dev, func, vendor, device;
	int bar;                     /* pci: BAR index, -1 = the largest memory BAR */
	double dma_gbps;             /* emulated DMA: bandwidth model, 0 = unlimited */
	double dma_lat_us;           /* emulated DMA: latency model, 0 = none */
	char epf_path[PATH_MAX];     /* epf: character device */
	char irq_sock[108];          /* shm EP: irq=ivshmem:SOCKET ("" = none) */
	int64_t irq_peer;            /* shm EP: irq_peer=ID, -1 = the lowest other peer */
	bool epf_bar_only;           /* epf: never offer a host window */
};
int npt_spec_parse(const char *s, struct npt_spec *out, char *err, size_t errlen);

/* ---- layout.c: BAR layout computation and validation --------------------- */
struct npt_layout {
	uint32_t features, nchannels, ring_entries, stream_size, max_xfer, data_per_chan;
	uint64_t bar_size, chan_base;
	uint32_t chan_stride, hp_offset, hp_size, payload_offset;
};
int  npt_layout_compute(const struct npt_link_params *p, uint32_t features,
			struct npt_layout *lay, char *err, size_t errlen);
void npt_layout_write(struct npl_bar_header *h, const struct npt_layout *lay);
int  npt_layout_read(const struct npl_bar_header *h, uint64_t mapped,
		     struct npt_layout *lay, char *err, size_t errlen);
/* EP: the largest layout with p's channels and ring that fits bar_size bytes
 * (data_per_chan shrunk; max_xfer derived unless p sets it). */
int  npt_layout_fit(const struct npt_link_params *p, uint32_t features, uint64_t bar_size,
		    struct npt_layout *lay, char *err, size_t errlen);
/* The host window's parameters (docs/transport.md "The host window"): data
 * is win_data_per_chan (0 = the layout's data_per_chan). */
int  npt_window_check(const struct npt_layout *lay, uint64_t bus, uint64_t size,
		      uint64_t stride, uint32_t data, char *err, size_t errlen);
/* Host: how to lay the window out in at most `max` bytes: every channel's
 * host-polled area, payload areas shrunk (and max_xfer with them) when the
 * layout's do not fit; -ENOSPC if even 64 KiB per channel does not. */
struct npt_winplan {
	uint64_t size, stride;       /* bytes to map and publish */
	uint32_t data;               /* win_data_per_chan to publish (0 = not shrunk) */
	uint32_t data_eff;           /* payload bytes per channel in use */
	uint32_t max_xfer;           /* largest payload per entry the host sends */
};
int  npt_window_plan(const struct npt_layout *lay, uint64_t max, struct npt_winplan *wp,
		     char *err, size_t errlen);
/* The max_xfer a host uses with a payload area of `data` bytes (0 = the
 * layout's): the layout's, or less for a shrunk area. */
uint32_t npt_window_xfer(const struct npt_layout *lay, uint32_t data);

/* ---- backend-*.c: where the BAR and the window come from -----------------
 * A backend maps memory; it knows nothing of rings. All callbacks may block
 * briefly (open/ftruncate/mmap) and are called with the link lock held or
 * before the link is shared. */
struct npt_winmap {              /* one mapping of a host window, refcounted */
	int refs;                    /* under link->lock */
	uint8_t *base;               /* first byte of the window */
	uint64_t size;
	void *map; size_t maplen;    /* what to munmap */
	uint64_t bus;                /* EP: bus address of the window */
	uint64_t stride;             /* EP: bytes between channels' areas in it (constant
	                                once published: readable by ref holders unlocked) */
};
struct npt_backend_ops {
	const char *name;
	/* Required. EP: create or reuse the BAR with at least `size` bytes and
	 * map it; host: map the existing BAR (size 0) and set l->bar_size. */
	int  (*map_bar)(struct npt_link *l, uint64_t size, char *err, size_t errlen);
	/* Optional (NULL: no host window). Host: create/map its window of
	 * `size` bytes and report its bus address in *bus. EP: map the window
	 * the host published at bus/size, or, with l->win_shadow (epf), only
	 * allow the DMA engine to reach it (base NULL: never touched by pointer). */
	int  (*map_window)(struct npt_link *l, uint64_t *bus, uint64_t size,
			   struct npt_winmap **out, char *err, size_t errlen);
	void (*unmap_window)(struct npt_link *l, struct npt_winmap *w);
	/* Optional (NULL: no window). Host: the most bytes map_window can
	 * give (0 = none now: BAR-only; UINT64_MAX = any size). The link
	 * shrinks the payload areas to fit (npt_window_plan). */
	uint64_t (*win_max)(struct npt_link *l);
	/* Required. Unmap the BAR, remove what this side created. Safe on a
	 * half-opened link. */
	void (*close)(struct npt_link *l);
	/* Required for hosts: where the host processes of this link keep their
	 * registry (a host-local file). */
	void (*reg_path)(struct npt_link *l, char *buf, size_t len);
	/* Notifications (docs/transport.md "Notifications"); all optional.
	 * notify: ring the peer for channel `chan` (EP: the host's interrupt
	 * vector for chan; host: a doorbell the EP can sleep on); never blocks;
	 * NULL: the peer only polls.
	 * wait_fd: an fd that turns readable (POLLIN) after the peer rang this
	 * side for `chan`, or -1; NULL: nothing rings this side, it polls.
	 * wait_ack: consume what made wait_fd readable (called before the
	 * caller re-checks its rings, so that no ring is missed). */
	int  (*notify)(struct npt_link *l, unsigned chan);
	int  (*wait_fd)(struct npt_link *l, unsigned chan);
	void (*wait_ack)(struct npt_link *l, unsigned chan);
	/* Optional: this side no longer waits on `chan` (its channel handle
	 * is gone): release what wait_fd set up, so that another process
	 * of this side can wait on the channel next. */
	void (*wait_put)(struct npt_link *l, unsigned chan);
	/* Optional (EP; NULL: the physical link is always up). The physical
	 * link as the hardware reports it, called by the heartbeat thread every
	 * period with the link lock held; never blocks. Returns 1 up, 0 down,
	 * or -errno (taken as down); why says what changed. *reset is set when
	 * the link came back after a loss (the host lost the BAR meanwhile):
	 * the EP lays the BAR out again under a new generation. */
	int  (*link_watch)(struct npt_link *l, bool *reset, char *why, size_t len);
	/* Optional: npt_link_describe() text (NULL: a generic one). */
	void (*describe)(struct npt_link *l, char *buf, size_t len);
};
extern const struct npt_backend_ops npt_shm_ops;
extern const struct npt_backend_ops npt_pci_ops;
extern const struct npt_backend_ops npt_epf_ops;
/* backend-epf.c: opens the device and checks its INFO before the layout
 * is computed (sets l->priv and l->dev_channels). */
int npt_epf_open(struct npt_link *l, char *err, size_t errlen);
/* The one check of the device's INFO (the device is untrusted input). */
int npt_epf_check_info(const struct npk_ep_info *info, char *err, size_t errlen);
/* Channel -> interrupt: MSI-X if the function has vectors, else MSI;
 * vector = chan mod count + 1 (1-based; the host's vector chan mod count).
 * -EOPNOTSUPP without vectors. */
int npt_epf_vector(const struct npk_ep_info *info, unsigned chan, struct npk_ep_irq *irq);
/* The device's link events as the EP follows them (docs/transport.md 8.1):
 * feed each struct npk_ep_event read; returns 1 up, 0 down; *reset when the
 * link came back after a loss (INIT or UP dropped, or a bit toggled between
 * two reads). last starts as the first event read. */
struct npt_epf_linkstate {
	struct npk_ep_event last;
	bool down;
};
int npt_epf_link_step(struct npt_epf_linkstate *s, const struct npk_ep_event *ev, bool *reset);

/* ---- irq-ivshmem.c: an ivshmem peer raising a QEMU guest's MSI-X ---------
 * open connects to the ivshmem server at path (QEMU's ivshmem protocol) and
 * learns the other peers' interrupt eventfds; ring writes vector
 * `vector mod (the peer's vectors)` of peer `peer` (-1: the lowest ID that is
 * not ours) and never blocks (-ENOTCONN: no such peer yet). Thread-safe. */
struct npt_ivsh;
int  npt_ivsh_open(const char *path, int64_t peer, struct npt_ivsh **out, char *err, size_t errlen);
/* The same over a connected socket (taken over, closed on failure); name
 * is for messages. The fuzz target feeds the server side. */
int  npt_ivsh_open_sock(int sock, const char *name, int64_t peer, struct npt_ivsh **out,
			char *err, size_t errlen);
int  npt_ivsh_ring(struct npt_ivsh *v, unsigned vector);
void npt_ivsh_close(struct npt_ivsh *v);   /* NULL-safe */
/* Our own eventfd for `vector` (what another peer rings), -1 if none: a
 * peer that plays the guest (tests). */
int  npt_ivsh_own_fd(struct npt_ivsh *v, unsigned vector);
int64_t npt_ivsh_id(const struct npt_ivsh *v);

/* ---- dma-emul.c, backend-epf.c: DMA engines -------------------------------
 * One engine queue per channel, driven by the channel's thread. A transfer
 * moves len bytes between EP-local memory (`local`) and the channel's
 * host-polled area in the host window at byte offset `win_off` (a payload:
 * payload_offset + its offset). The host side is named by window offset,
 * never by pointer: a real EP cannot map host memory, only DMA to it.
 * submit() does not wait for the peer (-EAGAIN when the queue is full);
 * poll() reports finished transfers in submission order by their cookie.
 * local stays owned by the caller and valid until the transfer is reported.
 * The emulated engine copies with memcpy into the mapped window; the epf
 * engine runs each transfer through NPK_EP_IOC_DMA inside submit() (the
 * ioctl returns when the data has arrived, so submit blocks that long). */
enum npt_dma_dir { NPT_DMA_TO_HOST, NPT_DMA_FROM_HOST };
struct npt_dma;
struct npt_dma_ops {
	const char *name;
	int  (*open)(struct npt_chan *c, struct npt_dma **out);
	int  (*submit)(struct npt_dma *d, enum npt_dma_dir dir, void *local, uint64_t win_off,
		       uint32_t len, uint32_t cookie);
	int  (*poll)(struct npt_dma *d, uint32_t *cookies, unsigned max);
	/* Required for engines of links with win_shadow: the window writer.
	 * Stores len bytes of the channel's EP-side shadow of its host-polled
	 * area (local) at the same offset win_off in the window, synchronously:
	 * on return they have arrived, so successive writes arrive in order. */
	int  (*write)(struct npt_dma *d, const void *local, uint64_t win_off, uint32_t len);
	void (*close)(struct npt_dma *d);
	/* Optional, engines that copy with this process's CPU (the emulated
	 * one): the CPU time its copies took, for npt_chan_get_stats. */
	uint64_t (*cpu_ns)(const struct npt_dma *d);
	/* Optional: true when a TO_HOST submit may take its source anywhere in
	 * this process's memory (not only the channel's staging area) and has
	 * read all of it by the time submit returns (npt_ep_complete_from). */
	bool (*any_src)(const struct npt_dma *d);
};
extern const struct npt_dma_ops npt_dma_emul_ops;
extern const struct npt_dma_ops npt_dma_epf_ops;

/* ---- link.c ---------------------------------------------------------------- */
struct npt_link {
	enum npt_role role;
	const struct npt_backend_ops *ops;
	const struct npt_dma_ops *dma_ops;
	struct npt_spec spec;
	uint8_t *bar;                /* mapping of the BAR */
	uint64_t bar_size;
	bool bar_wc;                 /* host: BAR mapped write-combined */
	int bar_fd, win_fd;          /* shm backend */
	struct npt_ivsh *ivsh;       /* shm EP: rings the host's MSI-X (irq=ivshmem:) */
	bool bar_created, win_created;
	bool bar_fit;                /* EP: fit the layout into a foreign BAR file */
	bool win_join;               /* host: map the window another host process published */
	struct npt_shm_bells *bells; /* shm backend: doorbell sockets (backend-shm.c) */
	int reg_fd;                  /* host: registry of the host processes (hosts.c) */
	char reg_path[PATH_MAX];
	void *pci_dev;               /* pci backend */
	void *priv;                  /* epf backend: its device state */
	unsigned dev_channels;       /* EP: channel count the device is configured for, 0 = none */
	bool phys_down;              /* EP: the physical link is down (link_watch) */
	bool win_shadow;             /* EP: the window is reached by DMA only (epf): channels
	                                keep their host-polled area in its BAR copy (the shadow)
	                                and push what they write there (npt_chan_push) */
	void *bar_map; size_t bar_maplen;
	struct npl_bar_header *hdr;
	struct npt_layout lay;       /* validated copy: never re-read from the BAR */
	bool window;                 /* host window in use */
	struct npt_winmap *win;      /* current window mapping (under lock) */
	uint64_t win_bus;            /* host: published bus address */
	uint64_t win_stride;         /* bytes between channels in the window */
	uint32_t win_data;           /* payload bytes per channel in the window (under lock) */
	uint32_t max_xfer;           /* host: largest payload per entry it sends */
	char mode[NPT_ERRLEN + 64];            /* host: window or BAR-only and why, for describe */
	char bnote[256];             /* host: the backend's note (what it maps through), for describe */
	bool bell_off;               /* NPT_DOORBELL=0: neither ring nor sleep */
	bool ring_peer;              /* we ring the peer for its sleeping words (NPL_F_DOORBELL
	                                in our features / host_features) */
	bool peer_rings;             /* host: the EP offered NPL_F_DOORBELL;
	                                EP: the attached host set it (under lock) */

	pthread_mutex_t lock;        /* link state below, window, channel slots */
	pthread_cond_t cond;
	pthread_t hb_thread;
	bool hb_started, stopping;
	bool closing;                /* npt_link_close() called; freed with the last channel */
	unsigned epoch;              /* EP: bumps on every host change (atomic reads) */
	int down;                    /* 0, -ECONNRESET, -EPROTO, -EAGAIN (EP: no host) */
	uint32_t gen;                /* our generation */
	uint32_t host_gen;           /* EP: attached host generation */
	uint32_t peer_gen;           /* host: the EP generation it attached to */
	uint64_t peer_hb;            /* last peer heartbeat seen */
	uint64_t peer_hb_ns;         /* when it last changed (local monotonic) */
	unsigned peer_idle;          /* checks in a row without a change */
	uint64_t hb;                 /* our heartbeat */
	bool chan_busy[NPT_MAX_CHANNELS];    /* a local handle exists */
	uint32_t chan_session[NPT_MAX_CHANNELS]; /* EP: last session accepted; host: last opened */
	char errmsg[NPT_ERRLEN];
	char desc[PATH_MAX + 640];
};
uint64_t npt_now_ns(void);
const char *npt_err_name(uint32_t code);  /* NPL_ERR_* as text */
int  npt_link_state(struct npt_link *l, unsigned *epoch);   /* lock-free read of down/epoch */
struct npt_winmap *npt_link_win_get(struct npt_link *l);   /* takes a ref, NULL if none */
void npt_link_win_put(struct npt_link *l, struct npt_winmap *w);
void npt_link_release_chan(struct npt_link *l, unsigned idx);

/* ---- chan.c ---------------------------------------------------------------- */
struct npt_htag {                /* host: one in-flight request */
	uint8_t cookie[8];
	uint16_t type;
	bool busy;
	struct npt_hbuf buf;
};
struct npt_etag {                /* EP: one in-flight request */
	bool busy, dma_busy, done_pending;
	uint32_t off, len, flags, data_len;
	unsigned active_pos;         /* position in active[] */
	uint8_t reply[16];
};
struct npt_chan {
	struct npt_link *link;
	enum npt_role role;
	unsigned idx;
	uint32_t session;
	unsigned epoch;
	uint32_t n, mask;            /* ring entries */
	uint32_t ssize;              /* stream size */
	struct npl_chan_ep_ctl *ectl;    /* BAR */
	struct npl_sqe *sq;              /* BAR */
	uint8_t *h2e;                    /* BAR */
	struct npl_chan_host_ctl *hctl;  /* host-polled area */
	struct npl_cqe *cq;
	uint8_t *e2h;
	uint8_t *payload;                /* payload area in the host-polled area */
	uint32_t data_size;              /* bytes of it in use (window: maybe shrunk) */
	struct npt_winmap *win;          /* EP: window ref held by this channel */
	bool shadow;                     /* EP: hctl/cq/e2h/payload are the BAR shadow of the
	                                    window's area; npt_chan_push() copies stores across */
	bool wc;
	uint32_t tx, rx;                 /* own stream indices (tx produced, rx consumed) */
	bool frames;
	bool accepted;                   /* host: the EP accepted our session */
	/* notifications (doorbell.c) */
	int wait_fd;                     /* backend's wait fd, -1: this side polls */
	bool can_sleep;                  /* wait_fd valid and the peer rings us */
	bool ring_peer;                  /* we ring the peer when its word is set */
	bool armed;                      /* our sleeping word is set */
	bool tx_blocked;                 /* last send found the stream full */
	__le32 *my_sleep, *peer_sleep;   /* our sleeping word (peer's memory) and the peer's */
	uint32_t sleep_seq;              /* value of our last sleep (never 0) */
	uint32_t rang_seq;               /* the peer's sleep we last rang, 0 = none */
	bool kick_held, kick_due;        /* npt_chan_hold_kicks: rings deferred, one owed */
	unsigned dma_pending;            /* EP: DMA transfers submitted, not yet reported */
	uint64_t sleeps, notifies;       /* statistics */
	uint64_t dma_xfers, dma_bytes;   /* EP: payload transfers given to the engine */
	int status;
	char err[NPT_ERRLEN];
	/* host frames */
	uint32_t sq_prod, cq_head, inflight, idle_polls;
	struct npt_htag *htags;
	uint16_t *free_tags;
	unsigned nfree;
	uint64_t *pages;                 /* payload area bitmap, one bit per NPT_HBUF_PAGE */
	uint32_t npages, page_hint;
	/* EP frames */
	uint32_t sq_head, cq_prod;
	struct npt_etag *etags;
	uint16_t *active;                /* tags with a payload in flight (overlap check) */
	unsigned nactive;
	uint8_t *staging;                /* window mode: EP copy of the payload area */
	size_t staging_len;
	uint16_t *fetched;               /* ring of tags whose fetch finished */
	uint32_t fetched_head, fetched_tail;
	struct npt_dma *dma;
};
int  npt_chan_fail(struct npt_chan *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int  npt_chan_alive(struct npt_chan *c);   /* 0 or the channel's -errno */
/* EP, after a store into the host-polled area: in shadow mode, carry the
 * bytes [p, p + len) to the window (through the engine's window writer; a
 * failure fails the channel); otherwise the store already is in the window.
 * Callers push data before the word that publishes it, as they store. */
void npt_chan_push_slow(struct npt_chan *c, const void *p, size_t len);
static inline void npt_chan_push(struct npt_chan *c, const void *p, size_t len)
{
	if (unlikely(c->shadow))
		npt_chan_push_slow(c, p, len);
}
/* Reads the peer's view of the channel (slow path: when a ring is empty). */
int  npt_chan_peer_check(struct npt_chan *c);

/* ---- doorbell.c: need-wakeup notifications --------------------------------
 * npt_chan_bell_init: after the channel is mapped (and, host, accepted
 * state reset): decides whether this side may sleep and ring the peer.
 * npt_chan_kick: after publishing a word the peer polls (an entry's seq, a
 * stream index, a state word): full fence, then ring the peer if its
 * sleeping word is set. npt_chan_bell_fini: clears our word, releases the
 * backend's wait state. */
void npt_chan_bell_init(struct npt_chan *c);
void npt_chan_kick(struct npt_chan *c);
void npt_chan_bell_fini(struct npt_chan *c);

/* ---- hosts.c: host processes sharing one link ---------------------------- */
struct npt_hosts_reg {           /* host-local registry file */
	uint32_t magic;
	uint32_t gen;                /* host generation the entries belong to */
	int32_t user[NPT_MAX_CHANNELS];  /* processes using the link (attached or joined), 0 = none */
	int32_t pid[NPT_MAX_CHANNELS];   /* owner of each channel, 0 = free */
};
/* Adds/removes this process to/from r->user; -EUSERS when full. */
int  npt_hosts_user_add(struct npt_hosts_reg *r);
void npt_hosts_user_del(struct npt_hosts_reg *r);
int  npt_hosts_open(struct npt_link *l, char *err, size_t errlen);
void npt_hosts_close(struct npt_link *l);
int  npt_hosts_lock(struct npt_link *l);
void npt_hosts_unlock(struct npt_link *l);
void npt_hosts_read(struct npt_link *l, struct npt_hosts_reg *r);
int  npt_hosts_write(struct npt_link *l, const struct npt_hosts_reg *r);
bool npt_hosts_pid_alive(int32_t pid);
int32_t npt_hosts_other(const struct npt_hosts_reg *r);   /* a live process other than us, or 0 */
void npt_hosts_remove(struct npt_link *l);

/* ---- hbuf.c: host payload-area allocator ---------------------------------- */
#define NPT_HBUF_PAGE 4096   /* allocation granule: page-aligned payloads DMA best */
int  npt_hbuf_init(struct npt_chan *c);
void npt_hbuf_fini(struct npt_chan *c);

/* ---- ep.c ------------------------------------------------------------------ */
int  npt_ep_chan_init(struct npt_chan *c);
void npt_ep_chan_fini(struct npt_chan *c);
/* The one place an EP checks a submission entry: e is a private copy. */
int  npt_ep_check_sqe(struct npt_chan *c, const struct npl_sqe *e, uint32_t pos);

/* ---- host.c ---------------------------------------------------------------- */
int  npt_host_chan_init(struct npt_chan *c);
void npt_host_chan_fini(struct npt_chan *c);

/* ---- util.c ---------------------------------------------------------------- */
void npt_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- test hooks (used by tests/transport and fuzz targets only) ---------- */
uint8_t *npt_test_bar(struct npt_link *l);
struct npl_chan_host_ctl *npt_test_hctl(struct npt_chan *c);
/* The backend's notify for chan: -ENOTSUP if it has none. */
int npt_test_notify(struct npt_link *l, unsigned chan);

#endif /* NPT_INTERNAL_H */

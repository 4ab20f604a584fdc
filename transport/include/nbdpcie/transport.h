/* nbd-pcie transport: channels that carry NBD connections over a PCIe
 * mailbox (a BAR on the endpoint, an optional host DMA window).
 *
 * The wire-level layout is specified in docs/transport.md and defined in
 * <uapi/nbd-pcie-link.h>; this header is the userspace library API
 * (library target `nbdtransport`, symbol prefix npt_).
 *
 * Conventions: functions return 0 (or a count) on success and -errno on
 * failure; handles are opaque; nothing here blocks except npt_link_open()
 * on the host (bounded by connect_timeout_ms) and, briefly, channel open and
 * close on the host (a flock shared with the other host processes).
 * Threads: a channel is driven by one thread at a time; different channels
 * of one link may be driven by different threads; npt_link_check(),
 * npt_link_error(), npt_chan_open() and npt_chan_accept() are safe from any
 * thread. Several host processes may open the same link: they share one
 * attachment and own separate channels (docs/transport.md 4.5).
 */
#ifndef NBDPCIE_TRANSPORT_H
#define NBDPCIE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct npt_link;   /* opaque: one mapped link (BAR + optional host window) */
struct npt_chan;   /* opaque: one channel = one NBD connection */

enum npt_role { NPT_ROLE_HOST, NPT_ROLE_EP };

/* Size of an NBD request header and of an NBD simple reply on the wire. */
#define NPT_NBD_REQ_SIZE   28
#define NPT_NBD_REPLY_SIZE 16

struct npt_link_params {          /* EP: the layout it publishes; host: what it wants; 0 = default */
	unsigned nchannels;           /* default 4, max NPT_MAX_CHANNELS */
	unsigned ring_entries;        /* power of two, default 128 (= kernel nbd queue depth),
	                                 max NPT_MAX_RING_ENTRIES */
	uint32_t data_per_chan;       /* bytes of payload area per channel, default 16 MiB (shm) */
	uint32_t max_xfer;            /* largest payload one ring entry carries, default 4 MiB;
	                                 larger NBD requests are chunked by the host side */
	int      connect_timeout_ms;  /* host: how long to wait for the EP's BAR, default 5000 */
	bool     bar_only;            /* host: do not publish a host window */
};

#define NPT_MAX_CHANNELS      64     /* channel bitmaps in the BAR header are 64-bit */
#define NPT_MAX_RING_ENTRIES  1024   /* tag space per channel; bounds EP staging memory */

/* ---- link ---------------------------------------------------------------
 * spec forms (see docs/transport.md "Link strings"):
 *   shm:PATH                          BAR file PATH, host window PATH.win
 *   shm:bar=PATH,win=PATH[,win_base=ADDR]  explicit files (guest RAM: bus address = offset)
 *   shm:bar=PATH                      BAR-only
 *   shm:...,irq=ivshmem:SOCK[,irq_peer=ID]  EP: ring a QEMU guest's MSI-X through an ivshmem server
 *   pci:DDDD:BB:DD.F[,bar=N]          host, by address: through kmod/nbd-pcie-host if bound
 *                                     (host window, interrupts), else libpciaccess BAR-only
 *   pci:VVVV:DDDD[,bar=N]             host, by vendor:device
 *   epf:/dev/nbd-pcie-epN[,bar_only]  EP: pci-epf-nbd's character device (host window by DMA
 *                                     when the function has DMA, unless bar_only)
 * Optional shm parameters: dma_gbps=X, dma_lat_us=Y (emulated DMA engine model;
 * also from env NPT_DMA_GBPS / NPT_DMA_LAT_US).
 * On failure err receives a one-line message naming the value and the limit. */
int  npt_link_open(const char *spec, enum npt_role role, const struct npt_link_params *p,
                   struct npt_link **out, char *err, size_t errlen);   /* 0 or -errno + message */
void npt_link_close(struct npt_link *l);                                /* NULL-safe; channels still open
                                          fail from then on and the last npt_chan_close() frees the link */
/* State of the link as watched by the link's heartbeat thread (which beats
 * every 50 ms and declares the peer dead after NPT_PEER_DEAD_MS without a
 * beat). Cheap: call it as often as you like.
 * Host: 0 up, -ECONNRESET EP reset/closed/dead, -EPROTO EP corrupted the
 * layout. Down is final for a host link: close it and open it again.
 * EP: 0 a host is attached and alive, -EAGAIN no host attached (yet, or any
 * more: the previous one detached or died; its channels fail with
 * -ECONNRESET and the next host is accepted automatically), -ENOLINK the
 * physical link is down (epf: backend; channels fail the same way, and when
 * the link returns the EP lays out a new generation and waits for a host).
 * npt_link_error() says why. */
int  npt_link_check(struct npt_link *l);
const char *npt_link_error(struct npt_link *l);   /* last error/why down, for logs; never NULL;
                                                     a per-thread copy, valid until the thread's next call */
unsigned npt_link_nchannels(const struct npt_link *l);
uint32_t npt_link_max_xfer(const struct npt_link *l);   /* host: may be below the layout's (shrunk window) */
const char *npt_link_describe(const struct npt_link *l); /* "shm:/dev/shm/x (host window, 4 ch)";
                                                           pci: the mode and why */

#define NPT_HEARTBEAT_MS     100   /* each side beats at least this often */
#define NPT_PEER_DEAD_MS     1000  /* no beat for this long = peer dead */

/* ---- channels: a channel is exactly one NBD connection ------------------ */
int  npt_chan_open(struct npt_link *l, int idx, struct npt_chan **out);   /* host: idx or -1 = first free; -EBUSY none free */
int  npt_chan_accept(struct npt_link *l, struct npt_chan **out);          /* EP: a channel the host opened; -EAGAIN none new */
void npt_chan_close(struct npt_chan *c);                                  /* either side; peer sees EOF/-ECONNRESET; NULL-safe */
unsigned npt_chan_index(const struct npt_chan *c);
ssize_t npt_chan_send(struct npt_chan *c, const void *buf, size_t len);   /* handshake bytes; non-blocking, -EAGAIN when full */
ssize_t npt_chan_recv(struct npt_chan *c, void *buf, size_t len);         /* -EAGAIN when empty, 0 when peer closed */
int  npt_chan_begin_frames(struct npt_chan *c);   /* each side calls it when its handshake is over
                                                     (bytes already in the stream are still delivered first) */
int  npt_chan_status(struct npt_chan *c);         /* 0, -ECONNRESET (peer closed/reset), -EPROTO (peer violation) */
const char *npt_chan_error(struct npt_chan *c);   /* why the channel is down, "" if it is up */

/* ---- host side, frames --------------------------------------------------
 * Payload buffers live in the host window (or in BAR slots in BAR-only
 * mode, where ptr points into the mapped BAR). off is the offset inside the
 * channel's payload area. A buffer stays owned by the caller from alloc to
 * free; a submitted buffer must not be freed before its completion is reaped. */
struct npt_hbuf { void *ptr; uint32_t len; uint32_t off; };   /* payload area the link carries */
int  npt_host_buf_alloc(struct npt_chan *c, uint32_t len, struct npt_hbuf *b); /* -EAGAIN area full, -E2BIG len > max_xfer */
void npt_host_buf_free(struct npt_chan *c, struct npt_hbuf *b);
/* req: the NBD request header in wire format. For NBD_CMD_WRITE b holds the
 * data; for NBD_CMD_READ b receives it. Other commands: b may be NULL.
 * -EAGAIN ring full, -EINVAL length field != b->len for READ/WRITE. */
int  npt_host_submit(struct npt_chan *c, const uint8_t req[28], const struct npt_hbuf *b /* NULL: no payload */);
/* reply: the NBD simple reply in wire format (cookie/handle as submitted);
 * buf: the buffer given to submit ({NULL,0,0} if none). */
struct npt_hcomp { uint8_t reply[16]; struct npt_hbuf buf; };
int  npt_host_reap(struct npt_chan *c, struct npt_hcomp *out, unsigned max);   /* >= 0 completions, or -errno */

/* ---- EP side, frames ---------------------------------------------------- */
struct npt_ereq { uint8_t hdr[28]; uint32_t tag; uint32_t len; void *local; };
	/* local: EP-local memory of len bytes for the payload (BAR slot in BAR-only mode, else an
	 * EP staging area mirroring the host buffer); len = descriptor length, validated.
	 * local is valid until npt_ep_complete() for this tag. */
int  npt_ep_take(struct npt_chan *c, struct npt_ereq *out, unsigned max);     /* >= 0 requests or -errno */
int  npt_ep_fetch(struct npt_chan *c, const struct npt_ereq *r);  /* start pulling a WRITE payload into r->local */
int  npt_ep_fetched(struct npt_chan *c, uint32_t *tags, unsigned max); /* tags whose fetch finished */
int  npt_ep_complete(struct npt_chan *c, const struct npt_ereq *r, const uint8_t reply[16], uint32_t data_len);
	/* push data_len bytes of r->local to the host (READ success) then post the completion */
/* Direct pushes: whether this channel's DMA engine can take a READ reply's
 * data from anywhere in this process's memory (e.g. a memory-backed export's
 * mapping: the engine reads the file's pages, no copy into staging first)
 * and reads it within npt_ep_complete_from. The emulated engine can (when it
 * models no bandwidth or latency: then it copies at submit); the epf engine
 * cannot (it moves only its own DMA-able staging memory). */
bool npt_ep_push_any_src(struct npt_chan *c);
/* npt_ep_complete with the data taken from src instead of r->local; -EINVAL
 * when the channel cannot (npt_ep_push_any_src false). src is read before the
 * channel changes: a fault while reading it (SIGBUS from a file mapping that
 * shrank, caught by the caller's handler) leaves the request the caller's,
 * to complete again (e.g. with an error and no data). */
int  npt_ep_complete_from(struct npt_chan *c, const struct npt_ereq *r, const uint8_t reply[16],
			  const void *src, uint32_t data_len);
int  npt_ep_progress(struct npt_chan *c);      /* drive DMA and deferred completions; >0 if it did work */

/* ---- notifications: sleeping instead of polling (docs/transport.md "Notifications")
 * A loop that found nothing to do on a channel may sleep on its wait fd
 * instead of backing off:
 *     if (!npt_chan_arm(c)) {           // published "sleeping", re-checked: nothing
 *             poll(wait fd, POLLIN, NPT_WAIT_MAX_MS);   // or io_uring poll
 *             npt_chan_disarm(c);
 *     }
 *     ... then poll the channel as usual (npt_host_reap, npt_ep_take, recv...)
 * The peer rings the fd after it publishes anything for this channel
 * (completions, entries, stream bytes or room, accept, close) while the
 * sleeping word is set; no wake-up is lost. Heartbeats and link checks do
 * not ring: bound each sleep by NPT_WAIT_MAX_MS and run the usual checks
 * (npt_chan_status) after it. */
#define NPT_WAIT_MAX_MS 100   /* longest sleep: a sleeping loop sees link/peer death at
                                 most this long after the heartbeat thread declared it */
/* The fd that turns readable (POLLIN) when the peer rings this channel, or
 * -1: this side cannot sleep on the channel (the backend has no doorbell,
 * or the peer does not ring; e.g. a BAR-only guest host): poll it with
 * npt_backoff. Valid until npt_chan_close(). */
int  npt_chan_wait_fd(struct npt_chan *c);
/* Publishes "sleeping" and re-checks the channel. false: armed, nothing is
 * pending, the caller may sleep on the wait fd (then calls
 * npt_chan_disarm). true: do not sleep (work pending, the channel is down,
 * or it has no wait fd); the channel is left disarmed. */
bool npt_chan_arm(struct npt_chan *c);
/* After sleeping (woken or timed out): clears "sleeping" and consumes the
 * doorbell, before the caller polls the channel. No-op when not armed. */
void npt_chan_disarm(struct npt_chan *c);
/* The same after a sleep the doorbell did not end (the caller saw that the
 * wait fd was not readable, e.g. its io_uring poll is still pending): skips
 * consuming the doorbell, a system call. A ring that arrives meanwhile
 * stays pending and ends the next sleep early. */
void npt_chan_disarm_unrung(struct npt_chan *c);
/* Batching: between hold and release, publishing on this channel does not
 * ring the peer; release rings once if anything was published. A loop turn
 * that posts many completions wakes the peer once, at its end, instead of
 * at the first one (the peer would take one entry and sleep again). Call
 * release before the caller sleeps or returns to code that may. */
void npt_chan_hold_kicks(struct npt_chan *c);
void npt_chan_release_kicks(struct npt_chan *c);
struct npt_chan_stats {
	uint64_t sleeps;      /* npt_chan_arm() calls that let the caller sleep */
	uint64_t notifies;    /* doorbells this side rang for the peer */
	uint64_t dma_xfers;   /* EP: payloads moved by the DMA engine (fetches and pushes) */
	uint64_t dma_bytes;   /* EP: their bytes */
	uint64_t dma_cpu_ns;  /* EP, emulated engine (shm links): CPU time of its copies of
	                         NPT_LONG_XFER or more, timed one by one (shorter copies are
	                         not timed); 0 where a hardware engine copies */
};
void npt_chan_get_stats(const struct npt_chan *c, struct npt_chan_stats *out);

/* ---- adaptive back-off for poll loops: spin, then yield, then sleep growing to a cap */
struct npt_backoff { unsigned idle; uint64_t spin_end_ns; };
void     npt_backoff_reset(struct npt_backoff *b);
unsigned npt_backoff_next_us(struct npt_backoff *b);  /* 0 = keep spinning; else sleep that long (caller's own way,
                                                          e.g. io_uring_wait_cqe_timeout) */
/* For loops that sleep on doorbells: true while they should keep polling
 * (for NPT_BELL_SPIN_US after the last work, 200 by default, yielding the
 * core on each call: see docs/performance.md "Yielding spin"), false once
 * it is time to arm and sleep. */
bool     npt_backoff_spin(struct npt_backoff *b);
/* A READ or WRITE at least this long keeps the other side busy for longer
 * than the poll above lasts (a 256 KiB copy takes ~50-100 µs, 1 MiB several
 * hundred): a loop whose work in flight is only such transfers arms and
 * sleeps at once, since its poll would end empty and only cost CPU (see
 * docs/performance.md "Yielding spin"). */
#define NPT_LONG_XFER (256u * 1024)

#ifdef __cplusplus
}
#endif

#endif /* NBDPCIE_TRANSPORT_H */

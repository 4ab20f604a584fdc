/* Server side of the NBD handshake as a feed/drain state machine.
 *
 * The machine does no I/O: the caller feeds it the bytes the client sent
 * (nbdp_server_feed), sends what it produces (nbdp_server_pending /
 * nbdp_server_consumed) and watches its state. It works the same over TCP,
 * a unix socket or a PCIe channel. Memory it allocates never depends on a
 * length the client chose: option data beyond NBDP_SERVER_OPT_MAX is
 * discarded as it arrives and answered with NBD_REP_ERR_TOO_BIG.
 *
 * Typical loop (blocking socket, error handling trimmed):
 *
 *	s = nbdp_server_new(&ops, my_server);
 *	while (nbdp_server_state(s) == NBDP_NEGOTIATING) {
 *		flush: while ((n = nbdp_server_pending(s, &out)) > 0)
 *			nbdp_server_consumed(s, write(fd, out, n));
 *		n = read(fd, buf, sizeof(buf));
 *		for (off = 0; off < n && state == NEGOTIATING; off += took) {
 *			took = nbdp_server_feed(s, buf + off, n - off);   // < 0: flush, close
 *			if (took == 0) flush;                 // output backlog: drain first
 *		}
 *	}
 *	flush; if TRANSMISSION: buf[off..n) are the first transmission bytes.
 */
#ifndef NBDPROTO_SERVER_H
#define NBDPROTO_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <nbdproto/nbd.h>
#include <nbdproto/validate.h>

/* Largest option data the machine buffers (bytes). The longest legal option
 * is INFO/GO: 4-byte name length + a 4096-byte name + 2-byte count + 2 bytes
 * per info request; 8 KiB leaves room for 2000 info requests. Larger options
 * are skipped without buffering and answered with NBD_REP_ERR_TOO_BIG. */
#define NBDP_SERVER_OPT_MAX 8192

/* Output the machine lets pile up before nbdp_server_feed stops taking input
 * (returns 0) until the caller drains it: bounds memory against a client that
 * sends options without reading the replies. 64 KiB holds a LIST of hundreds
 * of exports. */
#define NBDP_SERVER_OUT_HIGH 65536

struct nbdp_server_ops {
	/* Required. Find export `name` ("" = the default export) and fill *out
	 * (name and handle included). Return 0, -ENOENT (-> NBD_REP_ERR_UNKNOWN),
	 * -EACCES/-EPERM (-> NBD_REP_ERR_POLICY), -ESHUTDOWN
	 * (-> NBD_REP_ERR_SHUTDOWN), other -errno (-> NBD_REP_ERR_PLATFORM).
	 * Must not block long. `name` is valid only during the call. */
	int (*lookup)(void *opaque, const char *name, struct nbdp_export *out);
	/* Optional (NULL -> NBD_OPT_LIST answered with NBD_REP_ERR_POLICY, like
	 * nbd-server's allowlist = false). Call emit() once per export; desc may
	 * be NULL. Strings are copied during emit(). Return 0 or -errno
	 * (-EACCES/-EPERM -> ERR_POLICY, others -> ERR_PLATFORM). */
	int (*list)(void *opaque, void (*emit)(void *ctx, const char *name, const char *desc), void *ctx);
};

struct nbdp_server;

/* NULL on ENOMEM. The greeting is pending right away. */
struct nbdp_server *nbdp_server_new(const struct nbdp_server_ops *ops, void *opaque);
void    nbdp_server_free(struct nbdp_server *s);                       /* NULL-safe */

/* Consumes bytes from the client. Returns how many it took, or -errno
 * (-EPROTO: the client broke the protocol; the state is then NBDP_CLOSED and
 * the caller sends pending() and closes). It takes nothing more once the
 * handshake is over (the rest is transmission data) and returns 0 while
 * more than NBDP_SERVER_OUT_HIGH bytes of output wait to be sent. */
ssize_t nbdp_server_feed(struct nbdp_server *s, const void *buf, size_t len);
/* Bytes to send to the client: returns their count, *data points at them
 * (valid until the next call on s). */
size_t  nbdp_server_pending(struct nbdp_server *s, const void **data);
/* The first n of them were sent. */
void    nbdp_server_consumed(struct nbdp_server *s, size_t n);

enum nbdp_state {
	NBDP_NEGOTIATING,
	NBDP_TRANSMISSION,   /* GO or EXPORT_NAME succeeded (send pending() first) */
	NBDP_CLOSED,         /* ABORT, unknown client flags, refused EXPORT_NAME,
	                      * protocol error: send pending() then close */
};
enum nbdp_state nbdp_server_state(const struct nbdp_server *s);

/* The export chosen by GO/EXPORT_NAME; valid in NBDP_TRANSMISSION (NULL before). */
const struct nbdp_export *nbdp_server_export(const struct nbdp_server *s);

/* Whether the client agreed to the export's block sizes (it asked for
 * NBD_INFO_BLOCK_SIZE in its NBD_OPT_GO). Only then may the server reject
 * requests that are not aligned to min_block. */
bool nbdp_server_block_size_agreed(const struct nbdp_server *s);

/* The minimum block size the validator must enforce: the export's min_block
 * when agreed and > 1, else 1. */
uint32_t nbdp_server_min_block(const struct nbdp_server *s);

/* Fills *l for nbdp_validate_request() from the negotiated export: size,
 * transmission flags as sent (HAS_FLAGS included), nbdp_server_min_block(),
 * max_payload = the export's max_block if non-zero, else
 * NBDP_DEFAULT_MAX_PAYLOAD. Returns 0, or -EINVAL before TRANSMISSION. */
int nbdp_server_limits(const struct nbdp_server *s, struct nbdp_limits *l);

/* Why the machine is CLOSED or what the last refused option was, for logs
 * ("" when nothing happened). */
const char *nbdp_server_reason(const struct nbdp_server *s);

#endif /* NBDPROTO_SERVER_H */

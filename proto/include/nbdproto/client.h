/* Client side of the NBD handshake as a feed/drain state machine.
 *
 * Same shape as the server machine: feed it the server's bytes, send what
 * pending() returns, watch the state. It speaks fixed newstyle, asks for
 * NBD_FLAG_C_NO_ZEROES when offered, and:
 *   GOAL_GO:   NBD_OPT_GO (asking for INFO_NAME/DESCRIPTION/BLOCK_SIZE); falls
 *              back to NBD_OPT_EXPORT_NAME when the server answers ERR_UNSUP
 *              (or is not fixed newstyle); no_optgo sends EXPORT_NAME directly.
 *   GOAL_INFO: NBD_OPT_INFO, then NBD_OPT_ABORT (state DONE).
 *   GOAL_LIST: NBD_OPT_LIST (on_list() per export), then NBD_OPT_ABORT (DONE).
 * Memory it allocates is bounded (option replies longer than
 * NBDP_CLIENT_REPLY_MAX fail the handshake with -EPROTO). */
#ifndef NBDPROTO_CLIENT_H
#define NBDPROTO_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <nbdproto/nbd.h>

/* Largest option reply data the client accepts: a SERVER reply with a
 * 4096-byte name and a 4096-byte description, or an error text, fits. */
#define NBDP_CLIENT_REPLY_MAX (2 * NBDP_NAME_MAX + 64)

enum nbdp_client_goal { NBDP_GOAL_GO, NBDP_GOAL_INFO, NBDP_GOAL_LIST };

struct nbdp_client_opts {
	enum nbdp_client_goal goal;
	const char *export_name;          /* "" or NULL = the default export; at most NBDP_NAME_MAX bytes */
	bool no_optgo;                    /* nbd-client -g: EXPORT_NAME only */
	/* GOAL_LIST: called once per export (desc "" when the server sent none);
	 * the strings are valid during the call only. */
	void (*on_list)(void *ctx, const char *name, const char *desc);
	void *list_ctx;
};

struct nbdp_client;

/* NULL on ENOMEM or invalid opts (errno set: EINVAL, ENAMETOOLONG). */
struct nbdp_client *nbdp_client_new(const struct nbdp_client_opts *o);
void nbdp_client_free(struct nbdp_client *c);                    /* NULL-safe */

/* Consumes server bytes; returns how many it took (it stops at the end of
 * the handshake: what follows is transmission data), or -errno when the
 * server's bytes break the protocol (-EPROTO; -EPROTONOSUPPORT for an
 * oldstyle server): state FAILED, close without sending anything more.
 * A well-formed refusal (an NBD_REP_ERR_* reply) is not a -errno: the count
 * is returned, the state is FAILED and pending() holds an NBD_OPT_ABORT to
 * send before closing. */
ssize_t nbdp_client_feed(struct nbdp_client *c, const void *buf, size_t len);
size_t  nbdp_client_pending(struct nbdp_client *c, const void **data);
void    nbdp_client_consumed(struct nbdp_client *c, size_t n);

enum nbdp_client_state {
	NBDP_C_NEGOTIATING,
	NBDP_C_TRANSMISSION,   /* GO/EXPORT_NAME done: send pending() then start requests */
	NBDP_C_DONE,           /* INFO or LIST answered, ABORT queued in pending() */
	NBDP_C_FAILED,         /* see nbdp_client_error(); pending() may hold an ABORT */
};
enum nbdp_client_state nbdp_client_state(const struct nbdp_client *c);

/* Size, transmission flags, block sizes (0 = not advertised), name and
 * description (may be NULL). Valid in TRANSMISSION, and in DONE for INFO. */
const struct nbdp_export *nbdp_client_export(const struct nbdp_client *c);

/* Human message when FAILED, e.g. "server refused export 'foo': unknown
 * export (NBD_REP_ERR_UNKNOWN): <server text>". "" otherwise. */
const char *nbdp_client_error(const struct nbdp_client *c);
/* -ENOENT unknown export, -EACCES policy, -ESHUTDOWN, -ENOTSUP, -EINVAL,
 * -EPROTO broken server, ... ; 0 when not FAILED. */
int nbdp_client_error_code(const struct nbdp_client *c);

/* The server closed the connection (EOF on the stream). In NEGOTIATING the
 * machine becomes FAILED with a message saying what it was waiting for (a
 * server that refuses NBD_OPT_EXPORT_NAME can only close). Returns the
 * error code (0 when the handshake had already ended). */
int nbdp_client_eof(struct nbdp_client *c);

/* Whether the handshake ended with NBD_OPT_EXPORT_NAME (fallback or
 * no_optgo) rather than NBD_OPT_GO. */
bool nbdp_client_used_export_name(const struct nbdp_client *c);

#endif /* NBDPROTO_CLIENT_H */

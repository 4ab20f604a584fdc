/* The request engine: every connection (socket or PCIe channel) hands its
 * validated requests here; they run through the worker's io_uring, many at
 * once, and complete out of order through the connection's reply(). */
#define _GNU_SOURCE   /* preadv2, pwritev2 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include <liburing.h>
#include "nbdpcie/transport.h"

#include "internal.h"

/* WRITE_ZEROES falls back to writing zeroes in pieces of this size when the
 * store cannot zero a range itself (tmpfs has no FALLOC_FL_ZERO_RANGE). */
#define ZERO_CHUNK (1u << 20)
static const uint8_t zero_buf[ZERO_CHUNK];

/* inline_rw exports: transfers up to this size are copied on the worker;
 * larger ones still go to io_uring's io-wq threads, where the copy (150-300
 * us for 1 MiB from memory) runs on the other core while the worker sends
 * earlier replies: measured 1 MiB reads at QD8 at half the throughput of
 * nbd-server when copied inline, while the hand-off (~10 us) is what
 * dominates 4 KiB requests. */
#define INLINE_MAX (64u << 10)

/* Invalid requests logged per connection before going quiet: enough to
 * diagnose a client, too few to flood the log. */
#define BAD_LOG_MAX 8

enum stage {
	ST_IO,          /* the command's main operation */
	ST_ZERO_RANGE,  /* WRITE_ZEROES: punch failed, try ZERO_RANGE */
	ST_ZERO_WRITE,  /* WRITE_ZEROES: write zero pieces */
	ST_FUA_SYNC,    /* FUA on TRIM/WRITE_ZEROES: fdatasync after */
};

void srv_conn_init(struct srv_conn *c, const struct srv_conn_ops *ops, struct srv_server *srv)
{
	memset(c, 0, sizeof(*c));
	c->poll_ev.kind = SRV_EV_POLL;
	c->cancel_ev.kind = SRV_EV_CANCEL;
	c->ops = ops;
	c->srv = srv;
	c->id = atomic_fetch_add(&srv->next_id, 1) + 1;
	c->state = SRV_C_HANDSHAKE;
}

uint32_t srv_conn_validate(struct srv_conn *c, const struct nbd_request *r)
{
	char msg[256];
	uint32_t err = nbdp_validate_request(r, &c->limits, msg, sizeof(msg));

	if (err && c->bad_logged < BAD_LOG_MAX) {
		c->bad_logged++;
		srv_log(LOG_NOTICE, "%s: export %s: %s (%s)%s", c->desc, c->exp->cfg->name, msg,
		        nbd_err_name(err), c->bad_logged == BAD_LOG_MAX ?
		        "; not logging further invalid requests" : "");
	}
	return err;
}

/* A transfer that outlasts the worker's poll before sleeping (NPT_LONG_XFER). */
static bool req_is_long(const struct srv_req *q)
{
	return q->r.length >= NPT_LONG_XFER &&
	       (q->r.type == NBD_CMD_READ || q->r.type == NBD_CMD_WRITE);
}

static void finish(struct srv_req *q, int res)
{
	struct srv_conn *c = q->conn;

	if (res < 0) {
		q->err = nbd_errno_to_nbd(-res);
		srv_log(res == -ENOSPC ? LOG_WARNING : LOG_ERR,
		        "%s: export %s: %s offset %llu length %u: %s (%s)", c->desc,
		        c->exp->cfg->name, nbd_cmd_name(q->r.type), (unsigned long long)q->r.offset,
		        q->r.length, strerror(-res), nbd_err_name(q->err));
	} else {
		q->err = 0;
	}
	c->inflight--;
	if (req_is_long(q))
		c->inflight_long--;
	c->ops->reply(c, q);
}

static void prep(struct srv_req *q, struct io_uring_sqe *sqe)
{
	io_uring_sqe_set_data(sqe, &q->ev);
}

/* READ/WRITE of an inline_rw export (see export.c): the copy to or from
 * memory, done here; the result goes through srv_engine_cqe like a CQE's
 * (short transfers come back here for the rest). */
static void run_inline(struct srv_req *q)
{
	struct srv_export *e = q->conn->exp;
	uint64_t off = q->r.offset + q->done;
	uint32_t left = q->r.length - (uint32_t)q->done;
	struct iovec iov = { (char *)q->buf + q->done, left };
	ssize_t n;

	do {
		if (q->r.type == NBD_CMD_READ)
			n = preadv2(e->fd, &iov, 1, (off_t)off, 0);
		else
			n = pwritev2(e->fd, &iov, 1, (off_t)off,
			             (q->r.flags & NBD_CMD_FLAG_FUA) ? RWF_DSYNC : 0);
	} while (n < 0 && errno == EINTR);
	srv_engine_cqe(q, n < 0 ? -errno : (int)n);
}

static void issue(struct srv_req *q)
{
	struct srv_conn *c = q->conn;
	struct srv_export *e = c->exp;
	struct io_uring_sqe *sqe;
	uint64_t off = q->r.offset + q->done;
	uint32_t left = q->r.length - (uint32_t)q->done;

	if (q->stage == ST_FUA_SYNC) {
		sqe = srv_worker_sqe(c->w);
		io_uring_prep_fsync(sqe, e->fd, IORING_FSYNC_DATASYNC);
		prep(q, sqe);
		return;
	}
	if (e->inline_rw && left <= INLINE_MAX &&
	    (q->r.type == NBD_CMD_READ || q->r.type == NBD_CMD_WRITE)) {
		run_inline(q);
		return;
	}
	switch (q->r.type) {
	case NBD_CMD_READ:
		sqe = srv_worker_sqe(c->w);
		io_uring_prep_read(sqe, e->fd, (char *)q->buf + q->done, left, off);
		break;
	case NBD_CMD_WRITE:
		sqe = srv_worker_sqe(c->w);
		io_uring_prep_write(sqe, e->fd, (const char *)q->buf + q->done, left, off);
		if (q->r.flags & NBD_CMD_FLAG_FUA)
			sqe->rw_flags = RWF_DSYNC;   /* this write durable before its CQE */
		break;
	case NBD_CMD_FLUSH:
		sqe = srv_worker_sqe(c->w);
		io_uring_prep_fsync(sqe, e->fd, 0);
		break;
	case NBD_CMD_TRIM:
		sqe = srv_worker_sqe(c->w);
		io_uring_prep_fallocate(sqe, e->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		                        (off_t)q->r.offset, (off_t)q->r.length);
		break;
	case NBD_CMD_WRITE_ZEROES:
		sqe = srv_worker_sqe(c->w);
		if (q->stage == ST_ZERO_WRITE) {
			uint32_t n = left < ZERO_CHUNK ? left : ZERO_CHUNK;
			io_uring_prep_write(sqe, e->fd, zero_buf, n, off);
		} else if (q->stage == ST_ZERO_RANGE) {
			io_uring_prep_fallocate(sqe, e->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
			                        (off_t)q->r.offset, (off_t)q->r.length);
		} else {
			/* NO_HOLE: the range must stay allocated; else a hole reads as
			 * zeroes and frees the space. */
			int mode = (q->r.flags & NBD_CMD_FLAG_NO_HOLE) ?
			           FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE :
			           FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
			if (q->r.flags & NBD_CMD_FLAG_NO_HOLE)
				q->stage = ST_ZERO_RANGE;
			io_uring_prep_fallocate(sqe, e->fd, mode, (off_t)q->r.offset,
			                        (off_t)q->r.length);
		}
		break;
	case NBD_CMD_CACHE:
		sqe = srv_worker_sqe(c->w);
		io_uring_prep_fadvise(sqe, e->fd, q->r.offset, (off_t)q->r.length,
		                      POSIX_FADV_WILLNEED);
		break;
	default:
		finish(q, -EINVAL);   /* validation lets nothing else through */
		return;
	}
	prep(q, sqe);
}

/* Copy-on-write exports: synchronous on the worker (see cow.c). */
static void run_cow(struct srv_req *q)
{
	struct srv_cow *cow = q->conn->cow;
	int rc = 0;

	switch (q->r.type) {
	case NBD_CMD_READ:
		rc = srv_cow_read(cow, q->buf, q->r.length, q->r.offset);
		break;
	case NBD_CMD_WRITE:
		rc = srv_cow_write(cow, q->buf, q->r.length, q->r.offset);
		break;
	case NBD_CMD_WRITE_ZEROES:
		rc = srv_cow_zero(cow, q->r.length, q->r.offset);
		break;
	default:
		/* FLUSH: the diff dies with the connection, nothing to make
		 * durable; TRIM and CACHE are advisory. */
		break;
	}
	finish(q, rc);
}

/* Block devices: discard through the ioctl (synchronous, short). */
static int blk_discard(struct srv_export *e, uint64_t off, uint32_t len)
{
	uint64_t range[2] = { off, len };
	return ioctl(e->fd, BLKDISCARD, range) < 0 ? -errno : 0;
}

void srv_engine_submit(struct srv_conn *c, struct srv_req *q)
{
	q->ev.kind = SRV_EV_REQ;
	q->conn = c;
	q->stage = ST_IO;
	q->done = 0;
	q->err = 0;
	q->direct = false;
	c->inflight++;
	c->last_long = req_is_long(q);
	if (c->last_long)
		c->inflight_long++;
	if ((q->r.type == NBD_CMD_READ || q->r.type == NBD_CMD_WRITE) && q->r.length == 0) {
		finish(q, 0);   /* nothing to move; a 0-byte transfer would read as EOF */
		return;
	}
	if (c->cow) {
		run_cow(q);
		return;
	}
	q->direct = q->r.type == NBD_CMD_READ && q->r.length > INLINE_MAX && c->exp->map &&
	            c->ops->read_direct && c->ops->read_direct(c) &&
	            srv_map_covers(c->exp, q->r.offset, q->r.length);
	if (q->direct) {
		finish(q, 0);   /* the reply reads the data from the map (mapread.c) */
		return;
	}
	if (q->r.type == NBD_CMD_TRIM && c->exp->is_blk) {
		int rc = blk_discard(c->exp, q->r.offset, q->r.length);
		if (rc == -EOPNOTSUPP || rc == -EINVAL)
			rc = 0;   /* TRIM is advisory */
		if (rc == 0 && (q->r.flags & NBD_CMD_FLAG_FUA)) {
			q->stage = ST_FUA_SYNC;
			issue(q);
			return;
		}
		finish(q, rc);
		return;
	}
	issue(q);
}

static bool unsupported(int res)
{
	return res == -EOPNOTSUPP || res == -EINVAL || res == -ENOTTY;
}

void srv_engine_cqe(struct srv_req *q, int res)
{
	if (q->stage == ST_FUA_SYNC) {
		finish(q, res < 0 ? res : 0);
		return;
	}
	switch (q->r.type) {
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
		if (res == -EINTR || res == -EAGAIN) {
			issue(q);
			return;
		}
		if (res < 0) {
			finish(q, res);
			return;
		}
		if (res == 0) {
			srv_log(LOG_ERR, "%s: export %s: %s offset %llu: backing store ended early "
			        "(%llu of %u bytes)", q->conn->desc, q->conn->exp->cfg->name,
			        nbd_cmd_name(q->r.type), (unsigned long long)q->r.offset,
			        (unsigned long long)q->done, q->r.length);
			finish(q, -EIO);
			return;
		}
		q->done += (uint64_t)res;
		if (q->done < q->r.length)
			issue(q);
		else
			finish(q, 0);
		return;
	case NBD_CMD_TRIM:
		if (unsupported(res))
			res = 0;   /* TRIM is advisory */
		break;
	case NBD_CMD_WRITE_ZEROES:
		if (q->stage == ST_ZERO_WRITE) {
			if (res == 0)
				res = -EIO;
			if (res < 0) {
				finish(q, res);
				return;
			}
			q->done += (uint64_t)res;
			if (q->done < q->r.length) {
				issue(q);
				return;
			}
			res = 0;
		} else if (unsupported(res)) {
			q->stage = q->stage == ST_IO ? ST_ZERO_RANGE : ST_ZERO_WRITE;
			issue(q);
			return;
		}
		break;
	case NBD_CMD_CACHE:
		res = 0;   /* a hint: its failure changes nothing for the client */
		break;
	default:
		break;
	}
	if (res >= 0 && (q->r.flags & NBD_CMD_FLAG_FUA) &&
	    (q->r.type == NBD_CMD_TRIM || q->r.type == NBD_CMD_WRITE_ZEROES)) {
		q->stage = ST_FUA_SYNC;
		issue(q);
		return;
	}
	finish(q, res < 0 ? res : 0);
}

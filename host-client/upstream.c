/* The relay's upstream ops over a transport channel (host side frames). */
#include <nbdpcie/transport.h>

#include "internal.h"

static int chan_buf_alloc(void *ctx, uint32_t len, struct npt_hbuf *b)
{
	return npt_host_buf_alloc(ctx, len, b);
}

static void chan_buf_free(void *ctx, struct npt_hbuf *b)
{
	npt_host_buf_free(ctx, b);
}

static int chan_submit(void *ctx, const uint8_t req[NBD_REQUEST_SIZE], const struct npt_hbuf *b)
{
	return npt_host_submit(ctx, req, b);
}

static int chan_reap(void *ctx, struct npt_hcomp *out, unsigned max)
{
	return npt_host_reap(ctx, out, max);
}

static int chan_status(void *ctx)
{
	return npt_chan_status(ctx);
}

static const char *chan_error(void *ctx)
{
	return npt_chan_error(ctx);
}

static int chan_wait_fd(void *ctx)
{
	return npt_chan_wait_fd(ctx);
}

static bool chan_arm(void *ctx)
{
	return npt_chan_arm(ctx);
}

static void chan_disarm(void *ctx, bool rung)
{
	if (rung)
		npt_chan_disarm(ctx);
	else
		npt_chan_disarm_unrung(ctx);
}

static void chan_hold(void *ctx)
{
	npt_chan_hold_kicks(ctx);
}

static void chan_release(void *ctx)
{
	npt_chan_release_kicks(ctx);
}

const struct npc_upstream_ops npc_upstream_chan = {
	.buf_alloc = chan_buf_alloc,
	.buf_free = chan_buf_free,
	.submit = chan_submit,
	.reap = chan_reap,
	.status = chan_status,
	.error = chan_error,
	.wait_fd = chan_wait_fd,
	.arm = chan_arm,
	.disarm = chan_disarm,
	.hold = chan_hold,
	.release = chan_release,
};

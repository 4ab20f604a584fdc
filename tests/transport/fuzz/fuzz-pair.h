/* A link pair shared by the transport fuzz targets: opened once per fuzzer
 * process on a unique /dev/shm name, closed (files removed) at exit. Each
 * input gets a fresh channel pair in frame mode. */
#ifndef FUZZ_PAIR_H
#define FUZZ_PAIR_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

static struct npt_link *fz_ep, *fz_host;

static void fz_close(void)
{
	npt_link_close(fz_host);
	npt_link_close(fz_ep);
}

static void fz_init(void)
{
	static const struct npt_link_params p = {
		.nchannels = 1, .ring_entries = 8, .data_per_chan = 64 << 10, .max_xfer = 16 << 10,
		.connect_timeout_ms = 5000,
	};
	char spec[128], err[512];

	if (fz_ep)
		return;
	snprintf(spec, sizeof(spec), "shm:/dev/shm/npt-fuzz-%d", (int)getpid());
	if (npt_link_open(spec, NPT_ROLE_EP, &p, &fz_ep, err, sizeof(err)) ||
	    npt_link_open(spec, NPT_ROLE_HOST, &p, &fz_host, err, sizeof(err))) {
		fprintf(stderr, "fuzz: %s\n", err);
		exit(1);   /* setup failure of the harness itself, not of the code under test */
	}
	atexit(fz_close);
}

/* Opens a channel pair in frame mode; 0 or -errno. */
static int fz_chan_pair(struct npt_chan **hc, struct npt_chan **ec)
{
	int r;

	*hc = *ec = NULL;
	r = npt_chan_open(fz_host, 0, hc);
	if (r)
		return r;
	for (int i = 0; i < 1000 && (r = npt_chan_accept(fz_ep, ec)) == -EAGAIN; i++)
		usleep(100);
	if (r) {
		npt_chan_close(*hc);
		*hc = NULL;
		return r;
	}
	npt_chan_begin_frames(*hc);
	npt_chan_begin_frames(*ec);
	return 0;
}

/* Input cursor */
struct fz_in { const uint8_t *p; size_t n; };

static uint8_t fz_u8(struct fz_in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

static uint32_t fz_u32(struct fz_in *in)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v = v << 8 | fz_u8(in);
	return v;
}

static void fz_bytes(struct fz_in *in, void *dst, size_t n)
{
	uint8_t *d = dst;

	for (size_t i = 0; i < n; i++)
		d[i] = fz_u8(in);
}

/* The stream indices the peer writes, from input: c's peer's producer index
 * of the stream c reads (prod), then a read of up to 255 bytes from it, the
 * peer's consumer index of the stream c writes (cons), then a one-byte
 * send on it (c is in frame mode: the stream is open only for this). */
static void fz_stream_indices(struct fz_in *in, struct npt_chan *c, __le32 *prod, __le32 *cons)
{
	uint8_t buf[256];

	npt_wr32(prod, fz_u32(in));
	(void)npt_chan_recv(c, buf, fz_u8(in));
	npt_wr32(cons, fz_u32(in));
	c->frames = false;
	(void)npt_chan_send(c, "x", 1);
	c->frames = true;
}

#endif

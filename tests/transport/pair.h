/* An in-process link pair for the CMocka transport tests: the EP and host
 * links of one shm link on unique /dev/shm files, and one channel between
 * them. Include after <cmocka.h>. */
#ifndef TESTS_TRANSPORT_PAIR_H
#define TESTS_TRANSPORT_PAIR_H

#include <stdbool.h>
#include <sys/stat.h>

#include "helpers.h"

struct t_pair {
	char path[128];
	char spec[256];
	struct npt_link *ep, *host;
	struct npt_chan *ec, *hc;
};

/* Small rings and payload areas: tests wrap the rings within a few requests. */
static const struct npt_link_params t_pair_params = {
	.nchannels = 2, .ring_entries = 8, .data_per_chan = 1 << 20, .max_xfer = 256 << 10,
	.connect_timeout_ms = 3000,
};

/* Opens the EP, then the host side of shm:/dev/shm/npt-test-WHAT-...OPTS
 * with t_pair_params; ep_bell / host_bell false: that side opens with
 * NPT_DOORBELL=0. */
static inline void t_pair_open(struct t_pair *p, const char *what, const char *opts,
			       bool bar_only, bool ep_bell, bool host_bell)
{
	struct npt_link_params hp = t_pair_params;
	char err[512];

	t_shm_path(p->path, sizeof(p->path), what);
	snprintf(p->spec, sizeof(p->spec), "shm:%s%s", p->path, opts);
	if (!ep_bell)
		setenv("NPT_DOORBELL", "0", 1);
	if (npt_link_open(p->spec, NPT_ROLE_EP, &t_pair_params, &p->ep, err, sizeof(err)))
		fail_msg("EP open: %s", err);
	if (!ep_bell)
		unsetenv("NPT_DOORBELL");
	if (!host_bell)
		setenv("NPT_DOORBELL", "0", 1);
	hp.bar_only = bar_only;
	if (npt_link_open(p->spec, NPT_ROLE_HOST, &hp, &p->host, err, sizeof(err)))
		fail_msg("host open: %s", err);
	if (!host_bell)
		unsetenv("NPT_DOORBELL");
}

/* The EP accepts the channel the host opened, within 2 s. */
static inline void t_pair_accept(struct t_pair *p)
{
	uint64_t t0 = t_now_ms();
	int r;

	while ((r = npt_chan_accept(p->ep, &p->ec)) == -EAGAIN) {
		if (t_now_ms() - t0 > 2000)
			fail_msg("EP did not see the channel within 2 s");
		t_sleep_ms(1);
	}
	assert_int_equal(r, 0);
}

/* The host opens channel idx (-1: any), the EP accepts it; both see the
 * same index, and the host learns that it was accepted on its first look. */
static inline void t_pair_chan(struct t_pair *p, int idx)
{
	assert_int_equal(npt_chan_open(p->host, idx, &p->hc), 0);
	t_pair_accept(p);
	assert_int_equal(npt_chan_index(p->ec), npt_chan_index(p->hc));
	assert_int_equal(npt_chan_status(p->hc), 0);
}

static inline void t_pair_frames(struct t_pair *p)
{
	assert_int_equal(npt_chan_begin_frames(p->hc), 0);
	assert_int_equal(npt_chan_begin_frames(p->ec), 0);
}

/* A calloc'ed pair, opened (see t_pair_open) with one channel, switched to
 * frames when frames is set. */
static inline struct t_pair *t_pair_new(const char *what, bool bar_only, bool ep_bell,
					bool host_bell, bool frames)
{
	struct t_pair *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	t_pair_open(p, what, "", bar_only, ep_bell, host_bell);
	t_pair_chan(p, -1);
	if (frames)
		t_pair_frames(p);
	return p;
}

/* Closes both channels and links; a clean close removes the BAR file and
 * the window file. Does not free p. */
static inline void t_pair_close(struct t_pair *p)
{
	char f[160];
	struct stat sb;

	npt_chan_close(p->hc);
	npt_chan_close(p->ec);
	npt_link_close(p->host);
	npt_link_close(p->ep);
	assert_int_equal(stat(p->path, &sb), -1);
	snprintf(f, sizeof(f), "%s.win", p->path);
	assert_int_equal(stat(f, &sb), -1);
}

#endif

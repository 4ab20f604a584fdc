/* The BAR layout: computed by the EP from its parameters, published in the
 * header, and validated by the host before it trusts a single offset. */
#include <errno.h>
#include <inttypes.h>

#include "internal.h"

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static bool pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static uint64_t ep_area_need(uint32_t n, uint32_t s)
{
	return NPL_CHAN_SQ_OFFSET + (uint64_t)n * sizeof(struct npl_sqe) + s;
}

static uint64_t hp_head_need(uint32_t n, uint32_t s)
{
	return NPL_CHAN_CQ_OFFSET + (uint64_t)n * sizeof(struct npl_cqe) + s;
}

int npt_layout_compute(const struct npt_link_params *p, uint32_t features,
		       struct npt_layout *lay, char *err, size_t errlen)
{
	static const struct npt_link_params none;
	uint64_t ep_sz, stride;

	if (!p)
		p = &none;
	memset(lay, 0, sizeof(*lay));
	lay->features = features;
	lay->nchannels = p->nchannels ? p->nchannels : NPT_DEFAULT_CHANNELS;
	lay->ring_entries = p->ring_entries ? p->ring_entries : NPT_DEFAULT_RING;
	lay->max_xfer = p->max_xfer ? p->max_xfer : NPT_DEFAULT_MAX_XFER;
	lay->data_per_chan = p->data_per_chan ? p->data_per_chan : NPT_DEFAULT_DATA;
	lay->stream_size = NPT_STREAM_SIZE;
	if (lay->nchannels > NPT_MAX_CHANNELS) {
		npt_seterr(err, errlen, "link: nchannels %u beyond the maximum %u",
			   lay->nchannels, NPT_MAX_CHANNELS);
		return -EINVAL;
	}
	if (!pow2(lay->ring_entries) || lay->ring_entries < NPT_MIN_RING ||
	    lay->ring_entries > NPT_MAX_RING_ENTRIES) {
		npt_seterr(err, errlen, "link: ring_entries %u is not a power of two in %u..%u",
			   lay->ring_entries, NPT_MIN_RING, NPT_MAX_RING_ENTRIES);
		return -EINVAL;
	}
	if (lay->data_per_chan > NPT_MAX_DATA) {
		npt_seterr(err, errlen, "link: data_per_chan %" PRIu32 " beyond the maximum %u",
			   lay->data_per_chan, NPT_MAX_DATA);
		return -EINVAL;
	}
	lay->data_per_chan = (uint32_t)align_up(lay->data_per_chan, NPL_PAGE);
	if (lay->max_xfer > lay->data_per_chan) {
		npt_seterr(err, errlen, "link: max_xfer %" PRIu32 " beyond data_per_chan %" PRIu32,
			   lay->max_xfer, lay->data_per_chan);
		return -EINVAL;
	}
	ep_sz = align_up(ep_area_need(lay->ring_entries, lay->stream_size), NPL_PAGE);
	lay->payload_offset = (uint32_t)align_up(hp_head_need(lay->ring_entries, lay->stream_size), NPL_PAGE);
	lay->hp_size = lay->payload_offset + lay->data_per_chan;
	lay->hp_offset = (uint32_t)ep_sz;
	stride = ep_sz + lay->hp_size;
	lay->chan_stride = (uint32_t)stride;
	lay->chan_base = NPL_HEADER_AREA;
	lay->bar_size = lay->chan_base + (uint64_t)lay->nchannels * stride;
	return 0;
}

/* Smallest payload area worth fitting: one 64 KiB request at a time. */
#define FIT_MIN_DATA (64u << 10)

int npt_layout_fit(const struct npt_link_params *p, uint32_t features, uint64_t bar_size,
		   struct npt_layout *lay, char *err, size_t errlen)
{
	struct npt_link_params q = p ? *p : (struct npt_link_params){ 0 };
	uint32_t n = q.nchannels ? q.nchannels : NPT_DEFAULT_CHANNELS;
	uint32_t ring = q.ring_entries ? q.ring_entries : NPT_DEFAULT_RING;
	uint64_t per, head, data;
	uint32_t x;
	int r;

	/* validates nchannels and ring_entries with the usual messages */
	q.data_per_chan = FIT_MIN_DATA;
	q.max_xfer = q.max_xfer && q.max_xfer <= FIT_MIN_DATA ? q.max_xfer : FIT_MIN_DATA;
	r = npt_layout_compute(&q, features, lay, err, errlen);
	if (r)
		return r;
	per = bar_size > NPL_HEADER_AREA ? (bar_size - NPL_HEADER_AREA) / n / NPL_PAGE * NPL_PAGE : 0;
	head = lay->hp_offset + (uint64_t)lay->payload_offset;
	data = per > head ? (per - head) / NPL_PAGE * NPL_PAGE : 0;
	if (data > NPT_MAX_DATA)
		data = NPT_MAX_DATA;
	if (data < FIT_MIN_DATA) {
		npt_seterr(err, errlen, "link: BAR of %" PRIu64 " bytes too small for %" PRIu32
			   " channels x %" PRIu32 " entries (needs at least %" PRIu64 " bytes)",
			   bar_size, n, ring, NPL_HEADER_AREA + n * (head + FIT_MIN_DATA));
		return -ENOSPC;
	}
	q.data_per_chan = (uint32_t)data;
	if (p && p->max_xfer) {
		q.max_xfer = p->max_xfer;
	} else {
		/* two full-size requests in flight per channel, a power of two */
		for (x = 1; (uint64_t)x * 2 * 2 <= data && x < NPT_DEFAULT_MAX_XFER; x *= 2)
			;
		q.max_xfer = x;
	}
	(void)ring;
	return npt_layout_compute(&q, features, lay, err, errlen);
}

void npt_layout_write(struct npl_bar_header *h, const struct npt_layout *lay)
{
	npt_wr32(&h->magic, NPL_MAGIC);
	h->version = htole16(NPL_VERSION);
	h->header_size = htole16(sizeof(*h));
	npt_wr32(&h->features, lay->features);
	npt_wr32(&h->nchannels, lay->nchannels);
	npt_wr32(&h->ring_entries, lay->ring_entries);
	npt_wr32(&h->stream_size, lay->stream_size);
	npt_wr32(&h->max_xfer, lay->max_xfer);
	npt_wr32(&h->data_per_chan, lay->data_per_chan);
	npt_wr64(&h->bar_size, lay->bar_size);
	npt_wr64(&h->chan_base, lay->chan_base);
	npt_wr32(&h->chan_stride, lay->chan_stride);
	npt_wr32(&h->hp_offset, lay->hp_offset);
	npt_wr32(&h->hp_size, lay->hp_size);
	npt_wr32(&h->payload_offset, lay->payload_offset);
}

#define FAIL(...) do { npt_seterr(err, errlen, __VA_ARGS__); return -EPROTO; } while (0)

int npt_layout_read(const struct npl_bar_header *h, uint64_t mapped,
		    struct npt_layout *lay, char *err, size_t errlen)
{
	uint32_t magic = npt_rd32(&h->magic);
	uint16_t version, hsize;
	uint64_t end;

	memset(lay, 0, sizeof(*lay));
	if (magic != NPL_MAGIC)
		FAIL("layout: magic 0x%08" PRIx32 " is not 0x%08x", magic, NPL_MAGIC);
	version = le16toh(__atomic_load_n((const uint16_t *)&h->version, __ATOMIC_RELAXED));
	hsize = le16toh(__atomic_load_n((const uint16_t *)&h->header_size, __ATOMIC_RELAXED));
	if (version != NPL_VERSION)
		FAIL("layout: version %u, this side speaks %u", version, NPL_VERSION);
	if (hsize < sizeof(*h) || hsize > NPL_HEADER_AREA)
		FAIL("layout: header_size %u outside %zu..%u", hsize, sizeof(*h), NPL_HEADER_AREA);
	lay->features = npt_rd32(&h->features);
	lay->nchannels = npt_rd32(&h->nchannels);
	lay->ring_entries = npt_rd32(&h->ring_entries);
	lay->stream_size = npt_rd32(&h->stream_size);
	lay->max_xfer = npt_rd32(&h->max_xfer);
	lay->data_per_chan = npt_rd32(&h->data_per_chan);
	lay->bar_size = npt_rd64(&h->bar_size);
	lay->chan_base = npt_rd64(&h->chan_base);
	lay->chan_stride = npt_rd32(&h->chan_stride);
	lay->hp_offset = npt_rd32(&h->hp_offset);
	lay->hp_size = npt_rd32(&h->hp_size);
	lay->payload_offset = npt_rd32(&h->payload_offset);

	if (lay->nchannels < 1 || lay->nchannels > NPT_MAX_CHANNELS)
		FAIL("layout: nchannels %" PRIu32 " outside 1..%u", lay->nchannels, NPT_MAX_CHANNELS);
	if (!pow2(lay->ring_entries) || lay->ring_entries < NPT_MIN_RING ||
	    lay->ring_entries > NPT_MAX_RING_ENTRIES)
		FAIL("layout: ring_entries %" PRIu32 " is not a power of two in %u..%u",
		     lay->ring_entries, NPT_MIN_RING, NPT_MAX_RING_ENTRIES);
	if (!pow2(lay->stream_size) || lay->stream_size < NPL_CACHE_LINE || lay->stream_size > (1u << 20))
		FAIL("layout: stream_size %" PRIu32 " is not a power of two in %u..%u",
		     lay->stream_size, NPL_CACHE_LINE, 1u << 20);
	if (lay->data_per_chan > NPT_MAX_DATA || lay->data_per_chan % NPL_PAGE)
		FAIL("layout: data_per_chan %" PRIu32 " not a multiple of %u up to %u",
		     lay->data_per_chan, NPL_PAGE, NPT_MAX_DATA);
	if (lay->max_xfer > lay->data_per_chan)
		FAIL("layout: max_xfer %" PRIu32 " beyond data_per_chan %" PRIu32,
		     lay->max_xfer, lay->data_per_chan);
	if (lay->chan_base < NPL_HEADER_AREA || lay->chan_base % NPL_PAGE ||
	    lay->chan_stride % NPL_PAGE || lay->hp_offset % NPL_PAGE ||
	    lay->payload_offset % NPL_PAGE || lay->hp_size % NPL_PAGE)
		FAIL("layout: chan_base %" PRIu64 ", chan_stride %" PRIu32 ", hp_offset %" PRIu32
		     ", hp_size %" PRIu32 " or payload_offset %" PRIu32 " not a multiple of %u"
		     " (chan_base at least %u)", lay->chan_base, lay->chan_stride, lay->hp_offset,
		     lay->hp_size, lay->payload_offset, NPL_PAGE, NPL_HEADER_AREA);
	if (lay->hp_offset < ep_area_need(lay->ring_entries, lay->stream_size))
		FAIL("layout: hp_offset %" PRIu32 " overlaps the submission ring and stream (%" PRIu64 " bytes)",
		     lay->hp_offset, ep_area_need(lay->ring_entries, lay->stream_size));
	if (lay->payload_offset < hp_head_need(lay->ring_entries, lay->stream_size))
		FAIL("layout: payload_offset %" PRIu32 " overlaps the completion ring and stream (%" PRIu64 " bytes)",
		     lay->payload_offset, hp_head_need(lay->ring_entries, lay->stream_size));
	if ((uint64_t)lay->payload_offset + lay->data_per_chan > lay->hp_size)
		FAIL("layout: payload_offset %" PRIu32 " + data_per_chan %" PRIu32 " beyond hp_size %" PRIu32,
		     lay->payload_offset, lay->data_per_chan, lay->hp_size);
	if ((uint64_t)lay->hp_offset + lay->hp_size > lay->chan_stride)
		FAIL("layout: hp_offset %" PRIu32 " + hp_size %" PRIu32 " beyond chan_stride %" PRIu32,
		     lay->hp_offset, lay->hp_size, lay->chan_stride);
	end = lay->chan_base + (uint64_t)lay->nchannels * lay->chan_stride;
	if (end > lay->bar_size || lay->bar_size > mapped)
		FAIL("layout: channels end at %" PRIu64 ", bar_size %" PRIu64 ", BAR mapped %" PRIu64,
		     end, lay->bar_size, mapped);
	return 0;
}

int npt_window_check(const struct npt_layout *lay, uint64_t bus, uint64_t size,
		     uint64_t stride, uint32_t data, char *err, size_t errlen)
{
	uint64_t need;

	if (data % NPL_PAGE || data > lay->data_per_chan)
		FAIL("window: payload area %" PRIu32 " not a multiple of %u up to data_per_chan %" PRIu32,
		     data, NPL_PAGE, lay->data_per_chan);
	need = data ? (uint64_t)lay->payload_offset + data : lay->hp_size;
	if (bus % NPL_PAGE || stride % NPL_PAGE)
		FAIL("window: bus address 0x%" PRIx64 " or channel stride %" PRIu64
		     " not a multiple of %u", bus, stride, NPL_PAGE);
	if (stride < need || stride > (1ull << 32))
		FAIL("window: channel stride %" PRIu64 " outside %" PRIu64 "..%llu",
		     stride, need, 1ull << 32);
	if (size < stride * lay->nchannels || bus + size < bus)
		FAIL("window: size %" PRIu64 " below %" PRIu32 " channels x %" PRIu64 " bytes",
		     size, lay->nchannels, stride);
	return 0;
}

/* Smallest payload area a shrunk window leaves a channel: one 64 KiB
 * request at a time (as npt_layout_fit's floor). */
#define PLAN_MIN_DATA (64u << 10)

int npt_window_plan(const struct npt_layout *lay, uint64_t max, struct npt_winplan *wp,
		    char *err, size_t errlen)
{
	uint64_t per, data;

	memset(wp, 0, sizeof(*wp));
	if (max >= (uint64_t)lay->nchannels * lay->hp_size) {
		wp->stride = lay->hp_size;
		wp->size = (uint64_t)lay->nchannels * lay->hp_size;
		wp->data = 0;
		wp->data_eff = lay->data_per_chan;
		wp->max_xfer = lay->max_xfer;
		return 0;
	}
	per = max / lay->nchannels / NPL_PAGE * NPL_PAGE;
	data = per > lay->payload_offset ? per - lay->payload_offset : 0;
	if (data < PLAN_MIN_DATA) {
		npt_seterr(err, errlen, "window: %" PRIu64 " bytes too small for %" PRIu32
			   " channels (each needs %" PRIu32 " bytes of rings and streams and at least %u of payload)",
			   max, lay->nchannels, lay->payload_offset, PLAN_MIN_DATA);
		return -ENOSPC;
	}
	wp->stride = per;
	wp->size = per * lay->nchannels;
	wp->data = wp->data_eff = (uint32_t)data;
	wp->max_xfer = npt_window_xfer(lay, wp->data);
	return 0;
}

uint32_t npt_window_xfer(const struct npt_layout *lay, uint32_t data)
{
	uint32_t x;

	if (!data || data >= lay->data_per_chan)
		return lay->max_xfer;
	/* two full-size requests in flight per channel, a power of two (as
	 * npt_layout_fit), never above what the EP allows */
	for (x = NPL_PAGE; (uint64_t)x * 2 * 2 <= data && x < lay->max_xfer; x *= 2)
		;
	return x < lay->max_xfer ? x : lay->max_xfer;
}

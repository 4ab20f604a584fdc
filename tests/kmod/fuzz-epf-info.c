/* libFuzzer target for what the transport's epf: backend reads from the
 * device (transport/src/backend-epf.c): an arbitrary NPK_EP_IOC_INFO answer,
 * then arbitrary link events. Whatever npt_epf_check_info accepts must be
 * usable as the backend uses it: the layout fitted into the BAR's link part
 * lies inside it (or is refused), channel -> vector stays within the
 * configured vectors; the link follower reports down until INIT and UP are
 * back, and resets only on a state with both. A violation aborts. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "fuzz-input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_info(const struct npk_ep_info *in, const uint8_t **p, size_t *left)
{
	struct npt_link_params lp = { 0 };
	struct npt_layout lay;
	struct npk_ep_irq irq;
	uint64_t bar = in->region[NPK_EP_REGION_BAR].size;
	char err[256];
	uint16_t chan;

	if (npt_epf_check_info(in, err, sizeof(err)))
		return;
	check(in->api_version == NPK_API_VERSION);
	check(bar % NPL_PAGE == 0 && bar >= 2 * NPL_PAGE && bar <= (1ull << 30));
	check(in->nchannels >= 1 && in->nchannels <= NPT_MAX_CHANNELS);
	/* ep_open with the device's channel count and the default ring */
	lp.nchannels = in->nchannels;
	if (npt_layout_fit(&lp, 0, bar, &lay, err, sizeof(err)) == 0)
		check(lay.bar_size <= bar && lay.nchannels == in->nchannels &&
		      lay.max_xfer <= lay.data_per_chan);
	take(p, left, &chan, sizeof(chan));
	if (npt_epf_vector(in, chan, &irq) == 0) {
		uint32_t n = irq.type == NPK_EP_IRQ_MSIX ? in->msix_vectors : in->msi_vectors;

		check(irq.type == (in->msix_vectors ? NPK_EP_IRQ_MSIX : NPK_EP_IRQ_MSI));
		check(irq.vector >= 1 && irq.vector <= n);
	} else {
		check(!in->msix_vectors && !in->msi_vectors);
	}
}

static void fuzz_events(const struct npk_ep_info *in, const uint8_t **p, size_t *left)
{
	struct npt_epf_linkstate ls = { .last = { .link = in->link, .events = 0 } };

	while (*left) {
		struct npk_ep_event ev;
		uint32_t lost;
		bool was_down = ls.down, reset;
		int up;

		take(p, left, &ev, 8);
		lost = ls.last.link & ~ev.link & (NPK_EP_LINK_INIT | NPK_EP_LINK_UP);
		up = npt_epf_link_step(&ls, &ev, &reset);
		check(up == !ls.down);
		if (reset)
			check((ev.link & NPK_EP_LINK_INIT) && (ev.link & NPK_EP_LINK_UP) && up);
		if (lost || was_down)
			check(!up || reset);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct npk_ep_info in;

	take(&data, &size, &in, sizeof(in));
	fuzz_info(&in, &data, &size);
	fuzz_events(&in, &data, &size);
	return 0;
}

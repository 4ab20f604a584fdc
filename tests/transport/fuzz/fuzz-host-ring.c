/* libFuzzer target: the host's consumers of EP-written memory -- the
 * completion ring (entries and seq words), the EP->host stream indices and
 * the channel control words -- driven by fuzz input, with real requests in
 * flight so that completions can match them. */
#include "fuzz-pair.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct npt_chan *hc, *ec;
	struct npt_hcomp comp[8];
	struct npt_hbuf bufs[8];
	unsigned nbufs = 0;

	fz_init();
	if (fz_chan_pair(&hc, &ec))
		return 0;
	while (in.n) {
		switch (fz_u8(&in) % 6) {
		case 0: {   /* a real request, so that tags and cookies are in flight */
			uint8_t req[28] = { 0x25, 0x60, 0x95, 0x13 };
			uint32_t len = fz_u8(&in) * 64u;
			struct npt_hbuf b = { 0 };

			req[7] = fz_u8(&in) % 4;     /* READ, WRITE, DISC, FLUSH */
			fz_bytes(&in, req + 8, 8);
			if (req[7] > 1)
				len = 0;
			req[24] = (uint8_t)(len >> 24); req[25] = (uint8_t)(len >> 16);
			req[26] = (uint8_t)(len >> 8); req[27] = (uint8_t)len;
			if (req[7] <= 1 && npt_host_buf_alloc(hc, len, &b))
				break;
			if (npt_host_submit(hc, req, req[7] <= 1 ? &b : NULL) == 0 && b.len && nbufs < 8)
				bufs[nbufs++] = b;
			else if (b.len)
				npt_host_buf_free(hc, &b);
			break;
		}
		case 1: {   /* a raw completion at the next position, published */
			struct npl_cqe e;
			struct npl_cqe *slot = &ec->cq[ec->cq_prod & ec->mask];

			fz_bytes(&in, &e, offsetof(struct npl_cqe, seq));
			if (fz_u8(&in) & 1)      /* often a plausible tag */
				put_le32(&e.tag, fz_u8(&in) & ec->mask);
			memcpy(slot, &e, offsetof(struct npl_cqe, seq));
			npt_store_release32(&slot->seq, ec->cq_prod + 1);
			ec->cq_prod++;
			break;
		}
		case 2:     /* any seq word */
			npt_wr32(&ec->cq[fz_u8(&in) & ec->mask].seq, fz_u32(&in));
			break;
		case 3: {
			int n = npt_host_reap(hc, comp, 8);

			for (int i = 0; i < n; i++)
				if (comp[i].buf.len)
					memset(comp[i].buf.ptr, 0, comp[i].buf.len);   /* must be ours */
			break;
		}
		case 4:     /* stream indices */
			fz_stream_indices(&in, hc, &ec->hctl->e2h_prod, &ec->hctl->h2e_cons);
			break;
		case 5:     /* channel control words */
			npt_wr32(&ec->hctl->ep_state, fz_u8(&in) % 4);
			npt_wr32(&ec->hctl->error, fz_u8(&in));
			if (fz_u8(&in) & 1)
				npt_wr32(&ec->hctl->session, fz_u32(&in));
			(void)npt_chan_status(hc);
			break;
		}
	}
	npt_chan_close(ec);
	npt_chan_close(hc);
	return 0;
}

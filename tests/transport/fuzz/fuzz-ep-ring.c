/* libFuzzer target: the EP's consumers of host-written memory -- the
 * submission ring (entries and seq words), the host->EP stream indices and
 * the channel control words -- driven by fuzz input. */
#include "fuzz-pair.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct npt_chan *hc, *ec;
	struct npt_ereq reqs[8];
	uint32_t tags[8];

	fz_init();
	if (fz_chan_pair(&hc, &ec))
		return 0;
	while (in.n) {
		switch (fz_u8(&in) % 6) {
		case 0: {   /* a raw entry at the next position, published */
			struct npl_sqe e;
			struct npl_sqe *slot = &hc->sq[hc->sq_prod & hc->mask];

			fz_bytes(&in, &e, offsetof(struct npl_sqe, seq));
			memcpy(slot, &e, offsetof(struct npl_sqe, seq));
			npt_store_release32(&slot->seq, hc->sq_prod + 1);
			hc->sq_prod++;
			break;
		}
		case 1:     /* any seq word anywhere in the ring */
			npt_wr32(&hc->sq[fz_u8(&in) & hc->mask].seq, fz_u32(&in));
			break;
		case 2:     /* stream indices */
			fz_stream_indices(&in, ec, &hc->ectl->h2e_prod, &hc->ectl->e2h_cons);
			break;
		case 3: {   /* take, then fetch or complete what was taken */
			int n = npt_ep_take(ec, reqs, 8);

			for (int i = 0; i < n; i++) {
				uint8_t rep[16] = { 0x67, 0x44, 0x66, 0x98 };

				memcpy(rep + 8, reqs[i].hdr + 8, 8);
				if (reqs[i].len)
					memset(reqs[i].local, 0xa5, reqs[i].len);   /* local must be writable */
				if (fz_u8(&in) & 1)
					(void)npt_ep_fetch(ec, &reqs[i]);
				else
					(void)npt_ep_complete(ec, &reqs[i], rep, fz_u32(&in) % (reqs[i].len + 1));
			}
			break;
		}
		case 4:
			(void)npt_ep_progress(ec);
			(void)npt_ep_fetched(ec, tags, 8);
			break;
		case 5:     /* channel control words */
			npt_wr32(&hc->ectl->host_state, fz_u8(&in) % 3);
			if (fz_u8(&in) & 1)
				npt_wr32(&hc->ectl->session, fz_u32(&in));
			(void)npt_chan_status(ec);
			break;
		}
	}
	npt_chan_close(ec);
	npt_chan_close(hc);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * pci-epf-nbd transfers between EP memory (the BAR memory or the staging
 * buffer) and host bus addresses. With dw-edma the controller's embedded DMA
 * registers dmaengine slave channels on the controller's parent device: one
 * channel that writes to the host (MEM_TO_DEV) and one that reads from it
 * (DEV_TO_MEM). Without them the CPU copies through an outbound window.
 * The caller has validated the request (npk_check_ep_dma()).
 */
#include <linux/dma-mapping.h>
#include <linux/io.h>

#include "internal.h"

struct npe_filter {
	struct device *dev;
	enum dma_transfer_direction dir;
};

static bool npe_chan_filter(struct dma_chan *chan, void *param)
{
	struct npe_filter *flt = param;
	struct dma_slave_caps caps;

	if (chan->device->dev != flt->dev)
		return false;
	memset(&caps, 0, sizeof(caps));
	if (dma_get_slave_caps(chan, &caps))
		return false;
	return caps.directions & BIT(flt->dir);
}

void npe_dma_setup(struct npe_func *f)
{
	struct npe_filter flt = { .dev = f->dma_dev };
	dma_cap_mask_t mask;

	dma_cap_zero(mask);
	dma_cap_set(DMA_SLAVE, mask);
	flt.dir = DMA_MEM_TO_DEV;
	f->tx = dma_request_channel(mask, npe_chan_filter, &flt);
	flt.dir = DMA_DEV_TO_MEM;
	f->rx = dma_request_channel(mask, npe_chan_filter, &flt);
	if (f->tx && f->rx) {
		dev_info(&f->epf->dev, "dma: channels %s (to host) and %s (from host)\n",
			 dma_chan_name(f->tx), dma_chan_name(f->rx));
		return;
	}
	npe_dma_teardown(f);
	dev_info(&f->epf->dev, "dma: no dmaengine slave channels on %s; CPU copy through the "
		 "outbound window\n", dev_name(f->dma_dev));
}

void npe_dma_teardown(struct npe_func *f)
{
	if (f->tx)
		dma_release_channel(f->tx);
	if (f->rx)
		dma_release_channel(f->rx);
	f->tx = NULL;
	f->rx = NULL;
}

u32 npe_dma_mode(struct npe_func *f)
{
	if (f->tx && f->rx)
		return NPK_EP_DMA_ENGINE;
	return f->epf->epc && f->epf->epc->mem ? NPK_EP_DMA_CPU : NPK_EP_DMA_NONE;
}

/* One engine transfer's wait: on the caller's stack, so that several
 * callers (one per server channel) can have transfers queued at once. */
struct npe_dma_wait {
	struct completion done;
	enum dmaengine_tx_result result;
};

static void npe_dma_callback(void *param, const struct dmaengine_result *res)
{
	struct npe_dma_wait *w = param;

	w->result = res ? res->result : DMA_TRANS_NOERROR;
	complete(&w->done);
}

static int npe_dma_engine(struct npe_func *f, const struct npk_ep_dma *d, dma_addr_t local)
{
	struct dma_slave_config sc;
	struct dma_async_tx_descriptor *desc;
	enum dma_transfer_direction dir;
	struct npe_dma_wait w;
	struct dma_chan *chan;
	dma_cookie_t cookie;
	int r;

	memset(&sc, 0, sizeof(sc));
	if (d->dir == NPK_EP_DMA_TO_HOST) {
		chan = f->tx;
		dir = DMA_MEM_TO_DEV;
		sc.dst_addr = d->host_addr;
	} else {
		chan = f->rx;
		dir = DMA_DEV_TO_MEM;
		sc.src_addr = d->host_addr;
	}
	init_completion(&w.done);
	w.result = DMA_TRANS_NOERROR;
	/* The slave config belongs to the channel and is read at prep time:
	 * config, prep and submit of one caller must not interleave with
	 * another's. The wait happens outside the lock. */
	mutex_lock(&f->dma_lock);
	r = dmaengine_slave_config(chan, &sc);
	if (r) {
		mutex_unlock(&f->dma_lock);
		dev_err_ratelimited(&f->epf->dev, "dma: slave config for host 0x%llx failed: %d\n",
				    (unsigned long long)d->host_addr, r);
		return r;
	}
	desc = dmaengine_prep_slave_single(chan, local, d->len, dir,
					   DMA_CTRL_ACK | DMA_PREP_INTERRUPT);
	if (!desc) {
		mutex_unlock(&f->dma_lock);
		dev_err_ratelimited(&f->epf->dev, "dma: cannot prepare %u bytes for host 0x%llx\n",
				    d->len, (unsigned long long)d->host_addr);
		return -EIO;
	}
	desc->callback_result = npe_dma_callback;
	desc->callback_param = &w;
	cookie = dmaengine_submit(desc);
	r = dma_submit_error(cookie);
	if (!r)
		dma_async_issue_pending(chan);
	mutex_unlock(&f->dma_lock);
	if (r)
		return r;
	/* Not interruptible: the buffer must not be reused while the engine
	 * may still write it, and a transfer takes milliseconds. */
	if (!wait_for_completion_timeout(&w.done, msecs_to_jiffies(NPE_DMA_TIMEOUT_MS))) {
		/* Stuck engine or link: stop the channel (this also ends other
		 * callers' transfers on it, which then time out) and make sure
		 * the callback cannot run on this stack frame any more. */
		dmaengine_terminate_sync(chan);
		dev_err_ratelimited(&f->epf->dev, "dma: %u bytes for host 0x%llx not done after "
				    "%d ms\n", d->len, (unsigned long long)d->host_addr,
				    NPE_DMA_TIMEOUT_MS);
		return -ETIMEDOUT;
	}
	if (w.result != DMA_TRANS_NOERROR) {
		dev_err_ratelimited(&f->epf->dev, "dma: %u bytes for host 0x%llx failed (result %d)\n",
				    d->len, (unsigned long long)d->host_addr, w.result);
		return -EIO;
	}
	return 0;
}

static void npe_copy(const struct npk_ep_dma *d, void __iomem *io, void *local, size_t len)
{
	if (d->dir == NPK_EP_DMA_TO_HOST)
		memcpy_toio(io, local, len);
	else
		memcpy_fromio(local, io, len);
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
static int npe_dma_cpu(struct npe_func *f, const struct npk_ep_dma *d, void *local)
{
	struct pci_epf *epf = f->epf;
	struct pci_epc_map map;
	u64 addr = d->host_addr;
	size_t left = d->len;
	int r;

	while (left) {
		r = pci_epc_mem_map(epf->epc, epf->func_no, epf->vfunc_no, addr, left, &map);
		if (r)
			return r;
		npe_copy(d, map.virt_addr, local, map.pci_size);
		pci_epc_mem_unmap(epf->epc, epf->func_no, epf->vfunc_no, &map);
		local += map.pci_size;
		addr += map.pci_size;
		left -= map.pci_size;
	}
	return 0;
}
#else
static int npe_dma_cpu(struct npe_func *f, const struct npk_ep_dma *d, void *local)
{
	struct pci_epf *epf = f->epf;
	struct pci_epc *epc = epf->epc;
	size_t page = epc->mem->window.page_size;
	u64 base = round_down(d->host_addr, page);
	size_t off = d->host_addr - base;
	size_t size = round_up(off + d->len, page);
	void __iomem *va;
	phys_addr_t phys;
	int r;

	va = pci_epc_mem_alloc_addr(epc, &phys, size);
	if (!va) {
		dev_err_ratelimited(&epf->dev, "dma: no %zu bytes free in the outbound window "
				    "for host 0x%llx\n", size, (unsigned long long)d->host_addr);
		return -ENOMEM;
	}
	r = pci_epc_map_addr(epc, epf->func_no, epf->vfunc_no, phys, base, size);
	if (r) {
		dev_err_ratelimited(&epf->dev, "dma: mapping host 0x%llx (%zu bytes) failed: %d\n",
				    (unsigned long long)base, size, r);
		goto free;
	}
	npe_copy(d, va + off, local, d->len);
	pci_epc_unmap_addr(epc, epf->func_no, epf->vfunc_no, phys);
free:
	pci_epc_mem_free_addr(epc, phys, va, size);
	return r;
}
#endif

int npe_dma_xfer(struct npe_func *f, const struct npk_ep_dma *d)
{
	struct pci_epf *epf = f->epf;
	void *local;
	dma_addr_t local_dma;
	int r;

	if (d->region == NPK_EP_REGION_BAR) {
		local = (u8 *)f->bar_mem + d->offset;
		local_dma = epf->bar[f->cfg.bar].phys_addr + d->offset;
	} else {
		local = (u8 *)f->stage + d->offset;
		local_dma = f->stage_dma + d->offset;
	}
	switch (npe_dma_mode(f)) {
	case NPK_EP_DMA_ENGINE:
		return npe_dma_engine(f, d, local_dma);
	case NPK_EP_DMA_CPU:
		/* One outbound mapping at a time: controllers have few
		 * outbound translation regions. */
		mutex_lock(&f->dma_lock);
		r = npe_dma_cpu(f, d, local);
		mutex_unlock(&f->dma_lock);
		return r;
	default:
		return -EOPNOTSUPP;
	}
}

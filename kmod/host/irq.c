// SPDX-License-Identifier: GPL-2.0
/*
 * nbd-pcie-host interrupts: every MSI-X (or MSI) vector the function offers,
 * up to NPK_HOST_MAX_VECTORS, bumps a per-vector and a total counter and
 * wakes read()/poll() sleepers. Interrupts coalesce in hardware and in QEMU:
 * a count is "something happened", never a number of completions.
 */
#include <linux/interrupt.h>

#include "internal.h"

static irqreturn_t nph_irq(int irq, void *arg)
{
	struct nph_vec *v = arg;
	struct nph_dev *d = v->d;

	atomic64_inc(&d->irq_count[v->idx]);
	/* The total is what sleepers compare against: increment it after the
	 * per-vector count so a woken reader sees both. wake_up implies the
	 * barrier between the store and the waiter's condition check. */
	atomic64_inc(&d->irq_total);
	wake_up_interruptible(&d->wq);
	return IRQ_HANDLED;
}

int nph_irq_setup(struct nph_dev *d)
{
	struct pci_dev *pdev = d->pdev;
	int n, i, r;

	n = pci_alloc_irq_vectors(pdev, 1, NPK_HOST_MAX_VECTORS, PCI_IRQ_MSIX | PCI_IRQ_MSI);
	if (n < 0) {
		dev_info(&pdev->dev, "no MSI-X/MSI vectors (%d): read()/poll() will only report "
			 "removal; userspace must poll the rings\n", n);
		d->nvec = 0;
		return 0;
	}
	for (i = 0; i < n; i++) {
		d->vec[i].d = d;
		d->vec[i].idx = i;
		r = request_irq(pci_irq_vector(pdev, i), nph_irq, 0, NPH_NAME, &d->vec[i]);
		if (r) {
			dev_err(&pdev->dev, "irq: vector %d of %d: request_irq failed: %d\n",
				i, n, r);
			goto free_requested;
		}
	}
	d->nvec = n;
	return 0;

free_requested:
	while (--i >= 0)
		free_irq(pci_irq_vector(pdev, i), &d->vec[i]);
	pci_free_irq_vectors(pdev);
	return r;
}

void nph_irq_teardown(struct nph_dev *d)
{
	unsigned int i;

	if (!d->nvec)
		return;
	for (i = 0; i < d->nvec; i++)
		free_irq(pci_irq_vector(d->pdev, i), &d->vec[i]);
	pci_free_irq_vectors(d->pdev);
	d->nvec = 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * pci-epf-nbd character device /dev/nbd-pcie-ep<N>, one per function, from
 * probe to remove (uapi: transport/include/uapi/nbd-pcie-link.h):
 *   mmap    region NPK_EP_REGION_BAR (the link part of the BAR memory) and
 *           NPK_EP_REGION_STAGE (the staging buffer), while bound
 *   ioctl   NPK_EP_IOC_INFO, NPK_EP_IOC_SET_WINDOW, NPK_EP_IOC_DMA,
 *           NPK_EP_IOC_RAISE_IRQ
 *   read    struct npk_ep_event on every link state change; poll() POLLIN
 * Unbind zaps the mappings (a later touch gets SIGBUS) and makes DMA and
 * interrupts fail with ENOTCONN until the next bind; remove makes every
 * operation fail with ENODEV.
 */
#include <linux/device.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "internal.h"

struct npe_file {
	struct list_head node;
	struct npe_func *f;
	struct file *filp;
	u64 seen;                        /* f->events at the last read; ~0 = never read */
	struct mutex read_lock;          /* serialises readers of this file */
};

static dev_t npe_devt;
static struct class *npe_class;
static DEFINE_IDR(npe_idr);
static DEFINE_MUTEX(npe_idr_lock);   /* protects npe_idr and the open/remove race */

static int npe_open(struct inode *inode, struct file *filp)
{
	struct npe_file *nf;
	struct npe_func *f;

	nf = kzalloc(sizeof(*nf), GFP_KERNEL);
	if (!nf)
		return -ENOMEM;
	mutex_lock(&npe_idr_lock);
	f = idr_find(&npe_idr, iminor(inode));
	if (!f || READ_ONCE(f->dead)) {
		mutex_unlock(&npe_idr_lock);
		kfree(nf);
		return -ENODEV;
	}
	kref_get(&f->ref);
	mutex_unlock(&npe_idr_lock);

	nf->f = f;
	nf->filp = filp;
	nf->seen = ~0ull;
	mutex_init(&nf->read_lock);
	mutex_lock(&f->files_lock);
	list_add(&nf->node, &f->files);
	mutex_unlock(&f->files_lock);
	filp->private_data = nf;
	return nonseekable_open(inode, filp);
}

static int npe_release(struct inode *inode, struct file *filp)
{
	struct npe_file *nf = filp->private_data;
	struct npe_func *f = nf->f;

	mutex_lock(&f->files_lock);
	list_del(&nf->node);
	mutex_unlock(&f->files_lock);
	kfree(nf);
	npe_func_put(f);
	return 0;
}

static void npe_snapshot(struct npe_func *f, struct npk_ep_event *ev)
{
	unsigned long flags;

	memset(ev, 0, sizeof(*ev));
	spin_lock_irqsave(&f->ev_lock, flags);
	ev->link = f->link;
	ev->events = f->events;
	spin_unlock_irqrestore(&f->ev_lock, flags);
}

static bool npe_changed(struct npe_file *nf)
{
	struct npk_ep_event ev;

	npe_snapshot(nf->f, &ev);
	return nf->seen != ev.events;
}

static ssize_t npe_read(struct file *filp, char __user *buf, size_t count, loff_t *ppos)
{
	struct npe_file *nf = filp->private_data;
	struct npe_func *f = nf->f;
	struct npk_ep_event ev;
	int r;

	if (count < sizeof(ev))
		return -EINVAL;
	mutex_lock(&nf->read_lock);
	for (;;) {
		if (READ_ONCE(f->dead)) {
			r = -ENODEV;
			goto out;
		}
		npe_snapshot(f, &ev);
		if (ev.events != nf->seen)
			break;
		if (filp->f_flags & O_NONBLOCK) {
			r = -EAGAIN;
			goto out;
		}
		r = wait_event_interruptible(f->wq, npe_changed(nf) || READ_ONCE(f->dead));
		if (r)
			goto out;
	}
	if (copy_to_user(buf, &ev, sizeof(ev))) {
		r = -EFAULT;
		goto out;
	}
	nf->seen = ev.events;
	r = sizeof(ev);
out:
	mutex_unlock(&nf->read_lock);
	return r;
}

static __poll_t npe_poll(struct file *filp, poll_table *wait)
{
	struct npe_file *nf = filp->private_data;
	struct npe_func *f = nf->f;

	poll_wait(filp, &f->wq, wait);
	if (READ_ONCE(f->dead))
		return EPOLLERR | EPOLLHUP;
	return npe_changed(nf) ? EPOLLIN | EPOLLRDNORM : 0;
}

/* Limits of the ioctls; lock held for reading. */
static void npe_limits(struct npe_func *f, struct npk_ep_limits *lim)
{
	unsigned long flags;

	memset(lim, 0, sizeof(*lim));
	spin_lock_irqsave(&f->ev_lock, flags);
	lim->window = f->window;
	spin_unlock_irqrestore(&f->ev_lock, flags);
	if (f->bound) {
		lim->region_size[NPK_EP_REGION_BAR] = f->layout.shm_size;
		lim->region_size[NPK_EP_REGION_STAGE] = f->stage_size;
	}
	lim->dma_align = NPE_DMA_ALIGN;
	lim->max_xfer = NPE_MAX_XFER;
	lim->msi_vectors = f->cfg.msi;
	lim->msix_vectors = f->cfg.msix;
}

static long npe_ioctl_info(struct npe_func *f, void __user *uarg)
{
	struct npk_ep_info info;
	struct npk_ep_limits lim;
	struct npk_ep_event ev;
	int i;

	npe_limits(f, &lim);
	npe_snapshot(f, &ev);
	memset(&info, 0, sizeof(info));
	info.api_version = NPK_API_VERSION;
	info.vendor = f->header.vendorid;
	info.device = f->header.deviceid;
	info.bar = f->cfg.bar;
	info.nchannels = f->cfg.nchannels;
	info.msi_vectors = f->cfg.msi;
	info.msix_vectors = f->cfg.msix;
	info.link = ev.link;
	info.dma = f->bound ? npe_dma_mode(f) : NPK_EP_DMA_NONE;
	info.dma_align = lim.dma_align;
	info.max_xfer = lim.max_xfer;
	for (i = 0; i < NPK_EP_NREGIONS; i++)
		info.region[i].size = lim.region_size[i];
	info.window.bus_addr = lim.window.bus_addr;
	info.window.size = lim.window.size;
	return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
}

static long npe_ioctl_window(struct npe_func *f, void __user *uarg)
{
	struct npk_ep_window w;
	char msg[NPE_MSG_LEN];
	int r;

	if (copy_from_user(&w, uarg, sizeof(w)))
		return -EFAULT;
	if (!f->bound)
		return -ENOTCONN;
	r = npk_check_ep_window(&w, msg, sizeof(msg));
	if (r) {
		dev_dbg(&f->epf->dev, "%s\n", msg);
		return r;
	}
	spin_lock_irq(&f->ev_lock);
	f->window = w;
	spin_unlock_irq(&f->ev_lock);
	return 0;
}

static long npe_ioctl_dma(struct npe_func *f, void __user *uarg)
{
	struct npk_ep_dma d;
	struct npk_ep_limits lim;
	char msg[NPE_MSG_LEN];
	int r;

	if (copy_from_user(&d, uarg, sizeof(d)))
		return -EFAULT;
	if (!f->bound)
		return -ENOTCONN;
	npe_limits(f, &lim);
	r = npk_check_ep_dma(&d, &lim, msg, sizeof(msg));
	if (r) {
		dev_dbg(&f->epf->dev, "%s\n", msg);
		return r;
	}
	return npe_dma_xfer(f, &d);
}

static long npe_ioctl_irq(struct npe_func *f, void __user *uarg)
{
	struct pci_epf *epf = f->epf;
	struct npk_ep_irq irq;
	struct npk_ep_limits lim;
	char msg[NPE_MSG_LEN];
	int r;

	if (copy_from_user(&irq, uarg, sizeof(irq)))
		return -EFAULT;
	if (!f->bound || !(READ_ONCE(f->link) & NPK_EP_LINK_INIT))
		return -ENOTCONN;
	npe_limits(f, &lim);
	r = npk_check_ep_irq(&irq, &lim, msg, sizeof(msg));
	if (r) {
		dev_dbg(&epf->dev, "%s\n", msg);
		return r;
	}
	return pci_epc_raise_irq(epf->epc, epf->func_no, epf->vfunc_no,
				 irq.type == NPK_EP_IRQ_MSI ? NPE_IRQ_MSI : NPE_IRQ_MSIX,
				 irq.vector);
}

static long npe_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct npe_file *nf = filp->private_data;
	struct npe_func *f = nf->f;
	void __user *uarg = (void __user *)arg;
	long r;

	down_read(&f->lock);
	if (f->dead) {
		r = -ENODEV;
		goto out;
	}
	switch (cmd) {
	case NPK_EP_IOC_INFO:
		r = npe_ioctl_info(f, uarg);
		break;
	case NPK_EP_IOC_DMA:
		r = npe_ioctl_dma(f, uarg);
		break;
	case NPK_EP_IOC_RAISE_IRQ:
		r = npe_ioctl_irq(f, uarg);
		break;
	case NPK_EP_IOC_SET_WINDOW:
		r = npe_ioctl_window(f, uarg);
		break;
	default:
		r = -ENOTTY;
	}
out:
	up_read(&f->lock);
	return r;
}

static vm_fault_t npe_vm_fault(struct vm_fault *vmf)
{
	/* Only reached after unbind or remove zapped the mapping. */
	return VM_FAULT_SIGBUS;
}

static const struct vm_operations_struct npe_vm_ops = {
	.fault = npe_vm_fault,
};

static int npe_mmap(struct file *filp, struct vm_area_struct *vma)
{
	struct npe_file *nf = filp->private_data;
	struct npe_func *f = nf->f;
	struct npk_ep_limits lim;
	char msg[NPE_MSG_LEN];
	unsigned long len = vma->vm_end - vma->vm_start;
	unsigned int region;
	u64 roff;
	int r;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	down_read(&f->lock);
	if (f->dead) {
		r = -ENODEV;
		goto out;
	}
	if (!f->bound) {
		r = -ENOTCONN;
		goto out;
	}
	npe_limits(f, &lim);
	r = npk_check_mmap((u64)vma->vm_pgoff << PAGE_SHIFT, len, lim.region_size,
			   NPK_EP_NREGIONS, PAGE_SIZE, &region, &roff, msg, sizeof(msg));
	if (r) {
		dev_dbg(&f->epf->dev, "%s\n", msg);
		goto out;
	}
	vma->vm_ops = &npe_vm_ops;
	/* dma_mmap_coherent() takes vm_pgoff as the offset in the buffer. */
	vma->vm_pgoff = roff >> PAGE_SHIFT;
	if (region == NPK_EP_REGION_BAR) {
		struct pci_epf_bar *b = &f->epf->bar[f->cfg.bar];

		r = dma_mmap_coherent(f->dma_dev, vma, b->addr, b->phys_addr, b->size);
	} else {
		r = dma_mmap_coherent(f->dma_dev, vma, f->stage, f->stage_dma, f->stage_size);
	}
out:
	up_read(&f->lock);
	return r;
}

static const struct file_operations npe_fops = {
	.owner = THIS_MODULE,
	.open = npe_open,
	.release = npe_release,
	.read = npe_read,
	.poll = npe_poll,
	.unlocked_ioctl = npe_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = npe_mmap,
	.llseek = no_llseek,
};

void npe_cdev_zap_mappings(struct npe_func *f)
{
	struct npe_file *nf;

	mutex_lock(&f->files_lock);
	list_for_each_entry(nf, &f->files, node)
		unmap_mapping_range(nf->filp->f_mapping, 0, 0, 1);
	mutex_unlock(&f->files_lock);
}

int npe_cdev_add(struct npe_func *f)
{
	int minor, r;

	mutex_lock(&npe_idr_lock);
	minor = idr_alloc(&npe_idr, f, 0, NPE_MAX_DEVS, GFP_KERNEL);
	mutex_unlock(&npe_idr_lock);
	if (minor < 0) {
		dev_err(&f->epf->dev, "no free minor: %d functions exist already (limit %d)\n",
			NPE_MAX_DEVS, NPE_MAX_DEVS);
		return minor;
	}
	f->minor = minor;
	f->cdev = cdev_alloc();
	if (!f->cdev) {
		r = -ENOMEM;
		goto free_minor;
	}
	f->cdev->owner = THIS_MODULE;
	f->cdev->ops = &npe_fops;
	r = cdev_add(f->cdev, MKDEV(MAJOR(npe_devt), minor), 1);
	if (r)
		goto put_cdev;
	f->chardev = device_create(npe_class, &f->epf->dev, MKDEV(MAJOR(npe_devt), minor), f,
				   NPE_DEV_NAME "%d", minor);
	if (IS_ERR(f->chardev)) {
		r = PTR_ERR(f->chardev);
		f->chardev = NULL;
		goto del_cdev;
	}
	return 0;

del_cdev:
	cdev_del(f->cdev);
	f->cdev = NULL;
	goto free_minor;
put_cdev:
	kobject_put(&f->cdev->kobj);
	f->cdev = NULL;
free_minor:
	mutex_lock(&npe_idr_lock);
	idr_remove(&npe_idr, minor);
	mutex_unlock(&npe_idr_lock);
	return r;
}

void npe_cdev_del(struct npe_func *f)
{
	mutex_lock(&npe_idr_lock);
	idr_remove(&npe_idr, f->minor);
	mutex_unlock(&npe_idr_lock);
	if (f->chardev)
		device_destroy(npe_class, MKDEV(MAJOR(npe_devt), f->minor));
	if (f->cdev)
		cdev_del(f->cdev);
	f->chardev = NULL;
	f->cdev = NULL;
}

int npe_cdev_init(void)
{
	int r;

	r = alloc_chrdev_region(&npe_devt, 0, NPE_MAX_DEVS, NPE_DEV_NAME);
	if (r)
		return r;
	/* class_create() lost its owner argument in 6.4. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	npe_class = class_create(NPE_DEV_NAME);
#else
	npe_class = class_create(THIS_MODULE, NPE_DEV_NAME);
#endif
	if (IS_ERR(npe_class)) {
		unregister_chrdev_region(npe_devt, NPE_MAX_DEVS);
		return PTR_ERR(npe_class);
	}
	return 0;
}

void npe_cdev_exit(void)
{
	class_destroy(npe_class);
	unregister_chrdev_region(npe_devt, NPE_MAX_DEVS);
	idr_destroy(&npe_idr);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * nbd-pcie-host character device /dev/nbd-pcie-host<N>: mmap of the BARs
 * and of the host DMA window, interrupt counters through read()/poll(), and
 * the INFO/IRQ_COUNTS ioctls (uapi: transport/include/uapi/nbd-pcie-link.h).
 *
 * Removal: remove() marks the device dead under the write lock, then zaps
 * every userspace mapping of it. A later touch of such a mapping faults into
 * nph_vm_fault(), which answers SIGBUS: the process never reaches freed
 * window pages or a BAR that is gone. File operations answer -ENODEV.
 */
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#include "internal.h"
#include "../shared/npk-check.h"

/* Message buffer for validation failures; they are logged rate-limited. */
#define NPH_MSG_LEN 160

struct nph_file {
	struct list_head node;
	struct nph_dev *d;
	struct file *filp;
	u32 vectors;                     /* mask of the vectors this file counts */
	atomic64_t seen;                 /* their count at this file's last read */
};

static dev_t nph_devt;
static struct class *nph_class;
static DEFINE_IDR(nph_idr);
static DEFINE_MUTEX(nph_idr_lock);   /* protects nph_idr and the open/remove race */

/* Interrupts of the file's vectors so far. With all vectors selected (the
 * default) that is the device's total, one atomic read. */
static u64 nph_count(struct nph_file *f)
{
	u32 mask = READ_ONCE(f->vectors);
	u64 n = 0;
	unsigned int i;

	if (mask == ~0u)
		return atomic64_read(&f->d->irq_total);
	for (i = 0; i < NPK_HOST_MAX_VECTORS; i++)
		if (mask & (1u << i))
			n += atomic64_read(&f->d->irq_count[i]);
	return n;
}

static int nph_open(struct inode *inode, struct file *filp)
{
	struct nph_file *f;
	struct nph_dev *d;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	mutex_lock(&nph_idr_lock);
	d = idr_find(&nph_idr, iminor(inode));
	if (!d || READ_ONCE(d->dead)) {
		mutex_unlock(&nph_idr_lock);
		kfree(f);
		return -ENODEV;
	}
	kref_get(&d->ref);
	mutex_unlock(&nph_idr_lock);

	f->d = d;
	f->filp = filp;
	f->vectors = ~0u;
	atomic64_set(&f->seen, nph_count(f));
	mutex_lock(&d->files_lock);
	list_add(&f->node, &d->files);
	mutex_unlock(&d->files_lock);
	filp->private_data = f;
	return nonseekable_open(inode, filp);
}

static int nph_release(struct inode *inode, struct file *filp)
{
	struct nph_file *f = filp->private_data;
	struct nph_dev *d = f->d;

	mutex_lock(&d->files_lock);
	list_del(&f->node);
	mutex_unlock(&d->files_lock);
	kfree(f);
	nph_dev_put(d);
	return 0;
}

/* Takes the events not yet reported to this file; 0 if there are none. */
static u64 nph_take_events(struct nph_file *f)
{
	u64 total = nph_count(f);

	return total - atomic64_xchg(&f->seen, total);
}

static bool nph_has_events(struct nph_file *f)
{
	return nph_count(f) != atomic64_read(&f->seen);
}

static ssize_t nph_read(struct file *filp, char __user *buf, size_t count, loff_t *ppos)
{
	struct nph_file *f = filp->private_data;
	struct nph_dev *d = f->d;
	u64 n;
	int r;

	if (count < sizeof(u64))
		return -EINVAL;
	for (;;) {
		if (READ_ONCE(d->dead))
			return -ENODEV;
		n = nph_take_events(f);
		if (n)
			break;
		if (filp->f_flags & O_NONBLOCK)
			return -EAGAIN;
		r = wait_event_interruptible(d->wq, nph_has_events(f) || READ_ONCE(d->dead));
		if (r)
			return r;
	}
	if (copy_to_user(buf, &n, sizeof(n)))
		return -EFAULT;
	return sizeof(n);
}

static __poll_t nph_poll(struct file *filp, poll_table *wait)
{
	struct nph_file *f = filp->private_data;
	struct nph_dev *d = f->d;

	poll_wait(filp, &d->wq, wait);
	if (READ_ONCE(d->dead))
		return EPOLLERR | EPOLLHUP;
	return nph_has_events(f) ? EPOLLIN | EPOLLRDNORM : 0;
}

static long nph_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct nph_file *f = filp->private_data;
	struct nph_dev *d = f->d;
	void __user *uarg = (void __user *)arg;
	long r = 0;
	unsigned int i;

	down_read(&d->lock);
	if (d->dead) {
		r = -ENODEV;
		goto out;
	}
	switch (cmd) {
	case NPK_HOST_IOC_INFO: {
		struct npk_host_info info;

		memset(&info, 0, sizeof(info));
		info.api_version = NPK_API_VERSION;
		info.vendor = d->pdev->vendor;
		info.device = d->pdev->device;
		info.shm_bar = d->shm_bar;
		info.nvectors = d->nvec;
		for (i = 0; i < NPK_HOST_NREGIONS; i++)
			info.region[i].size = d->region_size[i];
		info.region[NPK_HOST_REGION_WIN].bus_addr = d->win ? d->win_bus : 0;
		if (copy_to_user(uarg, &info, sizeof(info)))
			r = -EFAULT;
		break;
	}
	case NPK_HOST_IOC_IRQ_COUNTS: {
		struct npk_host_irq_counts c;

		memset(&c, 0, sizeof(c));
		for (i = 0; i < NPK_HOST_MAX_VECTORS; i++)
			c.count[i] = atomic64_read(&d->irq_count[i]);
		if (copy_to_user(uarg, &c, sizeof(c)))
			r = -EFAULT;
		break;
	}
	case NPK_HOST_IOC_SET_VECTORS: {
		char msg[NPH_MSG_LEN];
		u32 mask;

		if (get_user(mask, (u32 __user *)uarg)) {
			r = -EFAULT;
			break;
		}
		r = npk_check_vector_mask(mask, d->nvec, msg, sizeof(msg));
		if (r) {
			dev_dbg(&d->pdev->dev, "%s\n", msg);
			break;
		}
		WRITE_ONCE(f->vectors, mask == (d->nvec >= 32 ? ~0u : (1u << d->nvec) - 1) ?
			   ~0u : mask);
		atomic64_set(&f->seen, nph_count(f));
		break;
	}
	default:
		r = -ENOTTY;
	}
out:
	up_read(&d->lock);
	return r;
}

static vm_fault_t nph_vm_fault(struct vm_fault *vmf)
{
	/* Only reached after remove() zapped the mapping (mmap populates the
	 * whole range up front): the device is gone. */
	return VM_FAULT_SIGBUS;
}

static const struct vm_operations_struct nph_vm_ops = {
	.fault = nph_vm_fault,
};

static int nph_mmap(struct file *filp, struct vm_area_struct *vma)
{
	struct nph_file *f = filp->private_data;
	struct nph_dev *d = f->d;
	char msg[NPH_MSG_LEN];
	unsigned long len = vma->vm_end - vma->vm_start;
	unsigned int region;
	u64 roff;
	int r;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;   /* a private copy of device memory makes no sense */
	down_read(&d->lock);
	if (d->dead) {
		r = -ENODEV;
		goto out;
	}
	r = npk_check_mmap((u64)vma->vm_pgoff << PAGE_SHIFT, len, d->region_size,
			   NPK_HOST_NREGIONS, PAGE_SIZE, &region, &roff, msg, sizeof(msg));
	if (r) {
		dev_dbg(&d->pdev->dev, "%s\n", msg);
		goto out;
	}
	vma->vm_ops = &nph_vm_ops;
	if (region == NPK_HOST_REGION_WIN) {
		/* dma_mmap_coherent() takes vm_pgoff as the offset in the buffer. */
		vma->vm_pgoff = roff >> PAGE_SHIFT;
		r = dma_mmap_coherent(&d->pdev->dev, vma, d->win, d->win_bus, d->win_size);
	} else {
		/* Write-combined for prefetchable BARs and for the link's BAR
		 * even when pci-epf-nbd must leave it non-prefetchable (its
		 * MSI-X table shares it): what is mappable of it is EP RAM,
		 * the MSI-X pages never are. Userspace orders its stores with
		 * a store fence before publishing (transport: npt_wc_fence()). */
		vma->vm_page_prot = d->bar_prefetch[region] || region == d->shm_bar ?
			pgprot_writecombine(vma->vm_page_prot) :
			pgprot_noncached(vma->vm_page_prot);
		r = io_remap_pfn_range(vma, vma->vm_start,
				       (d->bar_start[region] + roff) >> PAGE_SHIFT, len,
				       vma->vm_page_prot);
	}
out:
	up_read(&d->lock);
	return r;
}

static const struct file_operations nph_fops = {
	.owner = THIS_MODULE,
	.open = nph_open,
	.release = nph_release,
	.read = nph_read,
	.poll = nph_poll,
	.unlocked_ioctl = nph_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = nph_mmap,
	.llseek = no_llseek,
};

void nph_cdev_zap_mappings(struct nph_dev *d)
{
	struct nph_file *f;

	mutex_lock(&d->files_lock);
	list_for_each_entry(f, &d->files, node)
		unmap_mapping_range(f->filp->f_mapping, 0, 0, 1);
	mutex_unlock(&d->files_lock);
}

int nph_cdev_add(struct nph_dev *d)
{
	int minor, r;

	mutex_lock(&nph_idr_lock);
	minor = idr_alloc(&nph_idr, d, 0, NPH_MAX_DEVS, GFP_KERNEL);
	mutex_unlock(&nph_idr_lock);
	if (minor < 0) {
		dev_err(&d->pdev->dev, "no free minor: %d devices bound already (limit %d)\n",
			NPH_MAX_DEVS, NPH_MAX_DEVS);
		return minor;
	}
	d->minor = minor;
	d->cdev = cdev_alloc();
	if (!d->cdev) {
		r = -ENOMEM;
		goto free_minor;
	}
	d->cdev->owner = THIS_MODULE;
	d->cdev->ops = &nph_fops;
	r = cdev_add(d->cdev, MKDEV(MAJOR(nph_devt), minor), 1);
	if (r)
		goto put_cdev;
	d->chardev = device_create(nph_class, &d->pdev->dev, MKDEV(MAJOR(nph_devt), minor),
				   d, NPH_NAME "%d", minor);
	if (IS_ERR(d->chardev)) {
		r = PTR_ERR(d->chardev);
		d->chardev = NULL;
		goto del_cdev;
	}
	return 0;

del_cdev:
	cdev_del(d->cdev);
	d->cdev = NULL;
	goto free_minor;
put_cdev:
	kobject_put(&d->cdev->kobj);
	d->cdev = NULL;
free_minor:
	mutex_lock(&nph_idr_lock);
	idr_remove(&nph_idr, minor);
	mutex_unlock(&nph_idr_lock);
	return r;
}

/* Stops new opens; files already open keep their kref on d. */
void nph_cdev_del(struct nph_dev *d)
{
	mutex_lock(&nph_idr_lock);
	idr_remove(&nph_idr, d->minor);
	mutex_unlock(&nph_idr_lock);
	if (d->chardev)
		device_destroy(nph_class, MKDEV(MAJOR(nph_devt), d->minor));
	if (d->cdev)
		cdev_del(d->cdev);
	d->chardev = NULL;
	d->cdev = NULL;
}

int nph_cdev_init(void)
{
	int r;

	r = alloc_chrdev_region(&nph_devt, 0, NPH_MAX_DEVS, NPH_NAME);
	if (r)
		return r;
	/* class_create() lost its owner argument in 6.4. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	nph_class = class_create(NPH_NAME);
#else
	nph_class = class_create(THIS_MODULE, NPH_NAME);
#endif
	if (IS_ERR(nph_class)) {
		unregister_chrdev_region(nph_devt, NPH_MAX_DEVS);
		return PTR_ERR(nph_class);
	}
	return 0;
}

void nph_cdev_exit(void)
{
	class_destroy(nph_class);
	unregister_chrdev_region(nph_devt, NPH_MAX_DEVS);
	idr_destroy(&nph_idr);
}

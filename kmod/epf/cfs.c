// SPDX-License-Identifier: GPL-2.0
/*
 * pci-epf-nbd configfs group, next to the standard function attributes:
 *   /sys/kernel/config/pci_ep/functions/pci_epf_nbd/<func>/nbd/
 *     bar         BAR number 0..5                       (default 0)
 *     bar_size    BAR bytes, power of two                (default 16 MiB)
 *     channels    channels the server should offer 1..64 (default 4)
 *     stage_size  local DMA staging buffer bytes         (default 4 MiB)
 * Values are parsed here and validated as a whole at bind (npk-check.c),
 * where the controller's constraints are known. They cannot change while
 * the function is bound to a controller.
 */
#include <linux/kernel.h>

#include "internal.h"

static struct npe_func *npe_from_item(struct config_item *item)
{
	return container_of(to_config_group(item), struct npe_func, group);
}

/* Stores a parsed value unless the function is bound. */
static ssize_t npe_cfs_store_u64(struct config_item *item, const char *page, size_t len,
				 u64 max, void (*set)(struct npe_func *f, u64 v),
				 const char *name)
{
	struct npe_func *f = npe_from_item(item);
	u64 v;
	int r;

	r = kstrtou64(page, 0, &v);
	if (r)
		return r;
	if (v > max) {
		pr_err(NPE_NAME ": %s: %llu beyond the limit %llu\n", name, v, max);
		return -ERANGE;
	}
	down_write(&f->lock);
	if (f->bound) {
		up_write(&f->lock);
		pr_err(NPE_NAME ": %s: cannot change while bound to a controller\n", name);
		return -EBUSY;
	}
	set(f, v);
	up_write(&f->lock);
	return len;
}

static void npe_set_bar(struct npe_func *f, u64 v) { f->cfg.bar = (u32)v; }
static void npe_set_bar_size(struct npe_func *f, u64 v) { f->cfg.bar_size = v; }
static void npe_set_channels(struct npe_func *f, u64 v) { f->cfg.nchannels = (u32)v; }
static void npe_set_stage_size(struct npe_func *f, u64 v) { f->cfg.stage_size = v; }

#define NPE_CFS_ATTR(name, field, max)						\
static ssize_t npe_cfs_##name##_show(struct config_item *item, char *page)	\
{										\
	struct npe_func *f = npe_from_item(item);				\
	unsigned long long v;							\
										\
	down_read(&f->lock);							\
	v = f->cfg.field;							\
	up_read(&f->lock);							\
	return sysfs_emit(page, "%llu\n", v);					\
}										\
static ssize_t npe_cfs_##name##_store(struct config_item *item,		\
				      const char *page, size_t len)		\
{										\
	return npe_cfs_store_u64(item, page, len, max, npe_set_##name, #name);	\
}										\
CONFIGFS_ATTR(npe_cfs_, name)

/* The maxima here only keep the parse in range; bind checks the rest. */
NPE_CFS_ATTR(bar, bar, 5);
NPE_CFS_ATTR(bar_size, bar_size, NPK_EPF_MAX_BAR);
NPE_CFS_ATTR(channels, nchannels, NPK_EPF_MAX_CHANNELS);
NPE_CFS_ATTR(stage_size, stage_size, NPK_EPF_MAX_STAGE);

static struct configfs_attribute *npe_cfs_attrs[] = {
	&npe_cfs_attr_bar,
	&npe_cfs_attr_bar_size,
	&npe_cfs_attr_channels,
	&npe_cfs_attr_stage_size,
	NULL,
};

static const struct config_item_type npe_cfs_type = {
	.ct_attrs = npe_cfs_attrs,
	.ct_owner = THIS_MODULE,
};

struct config_group *npe_cfs_add(struct pci_epf *epf, struct config_group *group)
{
	struct npe_func *f = epf_get_drvdata(epf);

	if (!f)
		return ERR_PTR(-ENODEV);
	config_group_init_type_name(&f->group, "nbd", &npe_cfs_type);
	return &f->group;
}

/* The EP kernel-module backend (epf:/dev/...): the BAR is the EPF function's
 * memory mapped through the module's character device, DMA goes through the
 * module's dmaengine ioctls. The module does not exist yet; the prefix is
 * reserved so that configurations fail with a clear message. */
#include <errno.h>

#include "internal.h"

int npt_epf_open(const struct npt_spec *s, char *err, size_t errlen)
{
	npt_seterr(err, errlen, "epf: %s: the EP kernel-module backend is not available yet; "
		   "use shm:PATH (or shm:bar=PATH[,win=PATH]) for now", s->epf_path);
	return -ENOTSUP;
}

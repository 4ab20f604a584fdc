/* Setting up and tearing down io_uring rings.
 *
 * liburing maps and unmaps a ring's memory with raw system calls, which
 * ThreadSanitizer does not intercept: when one thread tears its ring down and
 * another thread's new ring is mapped at the same address, TSan takes the two
 * threads' accesses to that memory for a data race. Doing every setup and
 * teardown of a process under one mutex orders each teardown before the next
 * setup (a real happens-before edge; the cost is one uncontended lock per
 * ring lifetime). Every ring in the project goes through these two.
 *
 * NBDPCIE_URING_COOP: completions that arrive while the ring's thread runs
 * in user space (io-wq's file copies, a doorbell's poll) wait for its next
 * system call instead of interrupting it with an inter-processor interrupt,
 * which in a VM is a trip through the hypervisor; a thread waiting in
 * io_uring_enter is still woken at once. Measured: docs/performance.md
 * "What profiling found", item 12. Kernels before 5.19 refuse the flags:
 * the ring is then set up without them. */
#ifndef NBDPCIE_COMMON_URING_H
#define NBDPCIE_COMMON_URING_H

#include <errno.h>
#include <liburing.h>
#include <pthread.h>

#define NBDPCIE_URING_COOP (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG)

static pthread_mutex_t nbdpcie_uring_lock = PTHREAD_MUTEX_INITIALIZER;

static inline int nbdpcie_uring_init(unsigned entries, struct io_uring *ring, unsigned flags)
{
	int r;

	pthread_mutex_lock(&nbdpcie_uring_lock);
	r = io_uring_queue_init(entries, ring, flags);
	if (r == -EINVAL && (flags & NBDPCIE_URING_COOP))
		r = io_uring_queue_init(entries, ring, flags & ~(unsigned)NBDPCIE_URING_COOP);
	pthread_mutex_unlock(&nbdpcie_uring_lock);
	return r;
}

static inline void nbdpcie_uring_exit(struct io_uring *ring)
{
	pthread_mutex_lock(&nbdpcie_uring_lock);
	io_uring_queue_exit(ring);
	pthread_mutex_unlock(&nbdpcie_uring_lock);
}

#endif /* NBDPCIE_COMMON_URING_H */

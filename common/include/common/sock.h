/* Buffers and socket settings of the paths that move NBD data through the
 * kernel (the server's sockets, the relay's downstream socket). Both are
 * measured choices: docs/performance.md, "What profiling found", items 6-7. */
#ifndef NBDPCIE_COMMON_SOCK_H
#define NBDPCIE_COMMON_SOCK_H

#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>

/* Send buffer of a stream socket carrying NBD data: a 1 MiB READ reply or
 * WRITE request leaves in one send instead of about five partial ones, each
 * waking the reader (the default is 208 KiB). */
#define NBDPCIE_SOCK_SNDBUF (4 << 20)

/* Gives fd that send buffer: beyond net.core.wmem_max (212992 on a default
 * Debian) when the process may (CAP_NET_ADMIN), else up to that cap. Best
 * effort: without it data just leaves in more pieces. */
static inline void nbdpcie_sock_sndbuf(int fd)
{
	int size = NBDPCIE_SOCK_SNDBUF;

	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

/* A page-aligned buffer of at least len bytes (free() releases it), or NULL.
 * For buffers the kernel copies file or socket data into: its copy into
 * malloc's memory, 16 bytes past a page boundary, ran several times slower
 * on the development VM. */
static inline void *nbdpcie_page_alloc(size_t len)
{
	return aligned_alloc(4096, (len + 4095) & ~(size_t)4095);
}

#endif /* NBDPCIE_COMMON_SOCK_H */

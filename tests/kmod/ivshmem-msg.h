/* The sending side of an ivshmem server message (QEMU docs/specs/ivshmem-spec):
 * 8 bytes, the value as a little-endian int64, with at most one fd passed
 * as SCM_RIGHTS. Shared by nbdpcie-ivshmem-doorbell and the transport's
 * fuzz-ivshmem, which plays such a server from fuzz input. */
#ifndef TESTS_KMOD_IVSHMEM_MSG_H
#define TESTS_KMOD_IVSHMEM_MSG_H

#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Sends the 8 bytes at msg on sock, with fd attached when fd >= 0; returns
 * what sendmsg returned (8 when all went). */
static inline ssize_t ivsh_send_msg(int sock, const void *msg, int fd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = 8 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.buf;
		m.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &m, MSG_NOSIGNAL);
}

#endif

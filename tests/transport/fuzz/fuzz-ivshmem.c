/* libFuzzer target: the EP's ivshmem client (transport/src/irq-ivshmem.c)
 * reading an ivshmem server's messages, all from fuzz input: the greeting
 * (version, ID, memory fd) and any sequence of peer announcements and
 * departures, each message with or without an fd. Then it rings vectors and
 * asks for its own eventfds. Whatever the server says, the client must not
 * crash, leak or write to an fd it does not own (ASan, fd checks below).
 * Input: records of 9 bytes: an int64 (little-endian) and a flags byte
 * (bit 0: attach an fd). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "../../kmod/ivshmem-msg.h"

/* Records per input: bounded so that the socket buffer never fills. */
#define MAX_RECORDS 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct npt_ivsh *v = NULL;
	int sv[2], efd, nfd_before, nfd_after, n = 0;
	char err[256];
	size_t off;

	nfd_before = dup(0);
	close(nfd_before);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	/* one eventfd stands for every fd the "server" passes (the client
	 * gets its own duplicate each time and must close them all) */
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	for (off = 0; off + 9 <= size && n < MAX_RECORDS; off += 9, n++)
		(void)ivsh_send_msg(sv[0], data + off, (data[off + 8] & 1) ? efd : -1);
	close(sv[0]);      /* end of the server's messages: no waiting */
	if (npt_ivsh_open_sock(sv[1], "fuzz", -1, &v, err, sizeof(err)) == 0) {
		for (unsigned vec = 0; vec < 70; vec += 7)
			(void)npt_ivsh_ring(v, vec);
		(void)npt_ivsh_own_fd(v, 0);
		(void)npt_ivsh_id(v);
		npt_ivsh_close(v);
	} else if (!err[0]) {
		fprintf(stderr, "fuzz-ivshmem: open failed without a message\n");
		__builtin_trap();
	}
	close(efd);
	/* every fd the client received was closed: the next free fd is the
	 * one that was free before */
	nfd_after = dup(0);
	close(nfd_after);
	if (nfd_after != nfd_before) {
		fprintf(stderr, "fuzz-ivshmem: fd leak (next fd %d, was %d)\n", nfd_after, nfd_before);
		__builtin_trap();
	}
	return 0;
}

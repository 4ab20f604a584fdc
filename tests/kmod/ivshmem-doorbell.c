/* nbdpcie-ivshmem-doorbell: a minimal ivshmem-doorbell server for the
 * kmod-host guest scenario (Debian ships no ivshmem-server).
 *
 *   nbdpcie-ivshmem-doorbell SOCKET SHMFILE VECTORS
 *
 * Listens on the unix socket SOCKET for one QEMU (-chardev socket,path=SOCKET
 * -device ivshmem-doorbell,chardev=...,vectors=VECTORS), hands it SHMFILE as
 * the shared memory and one eventfd per vector as its interrupt sources, as
 * the ivshmem protocol (QEMU docs/specs/ivshmem-spec) describes: version 0,
 * the peer's ID, -1 with the memory fd, then the peer's ID once per vector
 * with that vector's eventfd. Commands on stdin, one per line:
 *   ring V     signal vector V (the guest sees MSI-X vector V); prints "RANG V"
 * Prints "LISTENING" once the socket accepts connections and "CONNECTED"
 * once QEMU has everything. Ends on EOF of stdin. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ivshmem-doorbell devices support up to 64 vectors here; QEMU's limit is
 * higher but the guest module requests at most 32. */
#define MAX_VECTORS 64
/* The ID QEMU gets: any non-negative value below 65536; 1 leaves 0 for a
 * server that is a peer itself (this one is not). */
#define PEER_ID 1

static int send_msg(int sock, int64_t value, int fd)
{
	struct msghdr msg = { 0 };
	struct iovec iov = { .iov_base = &value, .iov_len = sizeof(value) };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;

	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	if (sendmsg(sock, &msg, 0) != (ssize_t)sizeof(value))
		return -errno;
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int efd[MAX_VECTORS], nvec, lsock, csock, shm, i;
	char line[128];
	FILE *in = stdin;

	if (argc != 4) {
		fprintf(stderr, "usage: %s SOCKET SHMFILE VECTORS\n", argv[0]);
		return 2;
	}
	nvec = atoi(argv[3]);
	if (nvec < 1 || nvec > MAX_VECTORS) {
		fprintf(stderr, "doorbell: VECTORS %s outside 1..%d\n", argv[3], MAX_VECTORS);
		return 2;
	}
	if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "doorbell: socket path %s longer than %zu bytes\n", argv[1],
			sizeof(sa.sun_path) - 1);
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	shm = open(argv[2], O_RDWR);
	if (shm < 0) {
		fprintf(stderr, "doorbell: open %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	for (i = 0; i < nvec; i++) {
		efd[i] = eventfd(0, EFD_CLOEXEC);
		if (efd[i] < 0) {
			perror("doorbell: eventfd");
			return 1;
		}
	}
	lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lsock < 0 || bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsock, 1)) {
		fprintf(stderr, "doorbell: listen on %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	printf("LISTENING %s\n", argv[1]);
	fflush(stdout);
	csock = accept(lsock, NULL, NULL);
	if (csock < 0) {
		perror("doorbell: accept");
		return 1;
	}
	if (send_msg(csock, 0, -1) || send_msg(csock, PEER_ID, -1) || send_msg(csock, -1, shm)) {
		perror("doorbell: handshake");
		return 1;
	}
	for (i = 0; i < nvec; i++) {
		if (send_msg(csock, PEER_ID, efd[i])) {
			perror("doorbell: vector setup");
			return 1;
		}
	}
	printf("CONNECTED peer %d, %d vectors\n", PEER_ID, nvec);
	fflush(stdout);

	while (fgets(line, sizeof(line), in)) {
		uint64_t one = 1;
		int v;

		if (sscanf(line, "ring %d", &v) != 1) {
			fprintf(stderr, "doorbell: unknown command: %s", line);
			continue;
		}
		if (v < 0 || v >= nvec) {
			fprintf(stderr, "doorbell: ring: vector %d outside 0..%d\n", v, nvec - 1);
			continue;
		}
		if (write(efd[v], &one, sizeof(one)) != sizeof(one)) {
			perror("doorbell: eventfd write");
			return 1;
		}
		printf("RANG %d\n", v);
		fflush(stdout);
	}
	close(csock);
	close(lsock);
	unlink(argv[1]);
	return 0;
}

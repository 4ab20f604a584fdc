/* nbdpcie-ivshmem-doorbell: a minimal ivshmem server for the guest
 * scenarios vm-kmod-host and vm-hostwin and the transport's ivshmem test
 * (Debian ships no ivshmem-server).
 *
 *   nbdpcie-ivshmem-doorbell SOCKET SHMFILE VECTORS
 *
 * Listens on the unix socket SOCKET for peers: QEMU (-chardev
 * socket,path=SOCKET -device ivshmem-doorbell,chardev=...,vectors=VECTORS)
 * and other processes speaking the same protocol (the EP's irq=ivshmem:
 * link option). As the ivshmem protocol (QEMU docs/specs/ivshmem-spec)
 * describes, each peer gets: version 0, its ID (1, 2, ... in connection
 * order), -1 with the SHMFILE fd, then every other peer's ID once per vector
 * with that vector's eventfd, then its own ID once per vector with its own
 * eventfds; the peers already there are told about the newcomer's eventfds,
 * and every peer about one that leaves (its ID without an fd).
 * Commands on stdin, one per line:
 *   ring V     signal vector V of peer 1 (the first to connect: QEMU in the
 *              guest scenarios); prints "RANG V"
 * Prints "LISTENING SOCKET" once the socket accepts connections,
 * "CONNECTED peer 1, N vectors" once the first peer has everything and
 * "PEER id joined|left" for the others. Ends on EOF of stdin. */
#define _GNU_SOURCE   /* accept4 */
#include <endian.h>
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

#include "ivshmem-msg.h"

/* ivshmem-doorbell devices support up to 64 vectors here; QEMU's limit is
 * higher but the guest module requests at most 32. */
#define MAX_VECTORS 64
/* Peers at once: QEMU, the EP, a test peer or two. */
#define MAX_PEERS 8

struct peer {
	int sock;                    /* -1 = free */
	int64_t id;
	int efd[MAX_VECTORS];
};

static struct peer peers[MAX_PEERS];
static int nvec, shm;
static int64_t next_id = 1;

static int send_msg(int sock, int64_t value, int fd)
{
	int64_t le = (int64_t)htole64((uint64_t)value);

	if (ivsh_send_msg(sock, &le, fd) != (ssize_t)sizeof(le))
		return -errno;
	return 0;
}

static void drop(struct peer *p)
{
	int64_t id = p->id;

	close(p->sock);
	for (int i = 0; i < nvec; i++)
		close(p->efd[i]);
	p->sock = -1;
	for (int k = 0; k < MAX_PEERS; k++)
		if (peers[k].sock >= 0)
			send_msg(peers[k].sock, id, -1);
	printf("PEER %lld left\n", (long long)id);
	fflush(stdout);
}

static int add_peer(int sock)
{
	struct peer *p = NULL;
	int i, k;

	for (k = 0; k < MAX_PEERS && !p; k++)
		if (peers[k].sock < 0)
			p = &peers[k];
	if (!p) {
		fprintf(stderr, "doorbell: %d peers already, refusing another\n", MAX_PEERS);
		close(sock);
		return 0;
	}
	for (i = 0; i < nvec; i++) {
		p->efd[i] = eventfd(0, EFD_CLOEXEC);
		if (p->efd[i] < 0) {
			perror("doorbell: eventfd");
			return -1;
		}
	}
	p->sock = sock;
	p->id = next_id++;
	if (send_msg(sock, 0, -1) || send_msg(sock, p->id, -1) || send_msg(sock, -1, shm))
		goto lost;
	for (k = 0; k < MAX_PEERS; k++) {
		struct peer *o = &peers[k];

		if (o == p || o->sock < 0)
			continue;
		for (i = 0; i < nvec; i++)
			if (send_msg(sock, o->id, o->efd[i]))
				goto lost;
		for (i = 0; i < nvec; i++)
			send_msg(o->sock, p->id, p->efd[i]);   /* a dead one is dropped by its POLLHUP */
	}
	for (i = 0; i < nvec; i++)
		if (send_msg(sock, p->id, p->efd[i]))
			goto lost;
	if (p->id == 1)
		printf("CONNECTED peer 1, %d vectors\n", nvec);
	else
		printf("PEER %lld joined\n", (long long)p->id);
	fflush(stdout);
	return 0;
lost:
	perror("doorbell: handshake");
	drop(p);
	return 0;
}

static int ring(const char *line)
{
	uint64_t one = 1;
	int v, k;

	if (sscanf(line, "ring %d", &v) != 1) {
		fprintf(stderr, "doorbell: unknown command: %s", line);
		return 0;
	}
	if (v < 0 || v >= nvec) {
		fprintf(stderr, "doorbell: ring: vector %d outside 0..%d\n", v, nvec - 1);
		return 0;
	}
	for (k = 0; k < MAX_PEERS; k++)
		if (peers[k].sock >= 0 && peers[k].id == 1)
			break;
	if (k == MAX_PEERS) {
		fprintf(stderr, "doorbell: ring: peer 1 is not connected\n");
		return 0;
	}
	if (write(peers[k].efd[v], &one, sizeof(one)) != sizeof(one)) {
		perror("doorbell: eventfd write");
		return -1;
	}
	printf("RANG %d\n", v);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[128], buf[64];
	int lsock, k, rc = 0;
	size_t have = 0;

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
	for (k = 0; k < MAX_PEERS; k++)
		peers[k].sock = -1;
	lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lsock < 0 || bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsock, 4)) {
		fprintf(stderr, "doorbell: listen on %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	printf("LISTENING %s\n", argv[1]);
	fflush(stdout);

	for (;;) {
		struct pollfd pfd[MAX_PEERS + 2];
		int n = 0, map[MAX_PEERS + 2];

		pfd[n] = (struct pollfd){ .fd = 0, .events = POLLIN };
		map[n++] = -1;
		pfd[n] = (struct pollfd){ .fd = lsock, .events = POLLIN };
		map[n++] = -2;
		for (k = 0; k < MAX_PEERS; k++)
			if (peers[k].sock >= 0) {
				pfd[n] = (struct pollfd){ .fd = peers[k].sock, .events = POLLIN };
				map[n++] = k;
			}
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("doorbell: poll");
			rc = 1;
			break;
		}
		for (int i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			if (map[i] == -1) {
				ssize_t r = read(0, buf, sizeof(buf));
				char *nl;

				if (r <= 0)
					goto out;
				for (ssize_t j = 0; j < r; j++) {
					if (have < sizeof(line) - 1)
						line[have++] = buf[j];
					if (buf[j] != '\n')
						continue;
					line[have] = '\0';
					have = 0;
					nl = strchr(line, '\n');
					if (nl && ring(line)) {
						rc = 1;
						goto out;
					}
				}
			} else if (map[i] == -2) {
				int s = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);

				if (s >= 0 && add_peer(s)) {
					rc = 1;
					goto out;
				}
			} else {
				/* peers never send: readable means gone */
				if (read(peers[map[i]].sock, buf, sizeof(buf)) <= 0)
					drop(&peers[map[i]]);
			}
		}
	}
out:
	for (k = 0; k < MAX_PEERS; k++)
		if (peers[k].sock >= 0)
			close(peers[k].sock);
	close(lsock);
	unlink(argv[1]);
	return rc;
}

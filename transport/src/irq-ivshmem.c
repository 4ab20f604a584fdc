/* An ivshmem peer: how a process outside a QEMU guest raises the guest's
 * MSI-X vectors of an ivshmem-doorbell device (QEMU docs/specs/ivshmem-spec).
 *
 * The ivshmem server (QEMU's ivshmem-server, or tests/kmod's
 * nbdpcie-ivshmem-doorbell) hands every peer that connects to its unix
 * socket: the protocol version (0), the peer's own ID, -1 with the shared
 * memory fd, then for every other peer its ID once per vector with that
 * vector's eventfd, then its own ID once per vector with its own eventfds.
 * Later it announces each peer that connects (ID + eventfds) and each that
 * leaves (ID without an fd). Every message is a little-endian int64, an fd
 * travels as SCM_RIGHTS. Writing 1 to peer P's eventfd for vector V raises
 * MSI-X vector V in P (QEMU wires its own eventfds to the device's vectors).
 *
 * The server's messages are untrusted input: IDs outside 0..65535, more
 * vectors than IVSH_MAX_VECTORS or peers than IVSH_MAX_PEERS are dropped
 * (their fds closed), never stored. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

/* ivshmem-doorbell's vectors per peer: QEMU allows up to 1024 but the host
 * module uses at most NPK_HOST_MAX_VECTORS; the rest are never rung. */
#define IVSH_MAX_VECTORS 64
/* Peers remembered at once: the guest, this process, a few more. */
#define IVSH_MAX_PEERS 16
/* IDs are 16-bit (the Doorbell register's upper half). */
#define IVSH_MAX_ID 65535
/* How long open waits for the server's greeting and each message of its
 * initial burst (all are sent back to back right after accept). */
#define IVSH_OPEN_MS 2000
#define IVSH_BURST_MS 100
/* How often ring() looks for peers that came or went. */
#define IVSH_RESCAN_NS (100 * 1000000ull)

struct ivsh_peer {
	int64_t id;                   /* -1 = free slot */
	unsigned nvec;
	int fd[IVSH_MAX_VECTORS];
};

struct npt_ivsh {
	pthread_mutex_t lock;
	int sock;
	int64_t self;                 /* our ID */
	int64_t want;                 /* the peer to ring, -1 = the lowest other */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint64_t last_scan_ns;
	bool hup;                     /* the server went away: keep the peers we know */
	struct ivsh_peer peers[IVSH_MAX_PEERS];
};

static void peer_clear(struct ivsh_peer *p)
{
	for (unsigned i = 0; i < p->nvec; i++)
		close(p->fd[i]);
	p->nvec = 0;
	p->id = -1;
}

static struct ivsh_peer *peer_find(struct npt_ivsh *v, int64_t id, bool add)
{
	struct ivsh_peer *free_slot = NULL;

	for (unsigned i = 0; i < IVSH_MAX_PEERS; i++) {
		if (v->peers[i].id == id)
			return &v->peers[i];
		if (v->peers[i].id < 0 && !free_slot)
			free_slot = &v->peers[i];
	}
	if (add && free_slot) {
		free_slot->id = id;
		free_slot->nvec = 0;
	}
	return add ? free_slot : NULL;
}

/* One message: 1 read (value, *fd or -1), 0 nothing pending / EOF
 * (v->hup), -errno. */
static int recv_msg(struct npt_ivsh *v, int timeout_ms, int64_t *value, int *fd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	uint8_t b[8];
	struct iovec iov = { .iov_base = b, .iov_len = sizeof(b) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct pollfd pfd = { .fd = v->sock, .events = POLLIN };
	struct cmsghdr *c;
	ssize_t n;

	*fd = -1;
	if (v->hup)
		return 0;
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	n = recvmsg(v->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(int))) {
			int got;

			memcpy(&got, CMSG_DATA(c), sizeof(int));
			if (*fd < 0)
				*fd = got;
			else
				close(got);   /* one fd per message; more is a faulty server */
		}
	if (n == (ssize_t)sizeof(b)) {
		*value = (int64_t)get_le64(b);
		return 1;
	}
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	v->hup = true;     /* EOF, a torn message or an error: stop listening */
	return n < 0 ? -errno : 0;
}

/* Applies one peer message (after the greeting). */
static void apply_msg(struct npt_ivsh *v, int64_t id, int fd)
{
	struct ivsh_peer *p;

	if (id < 0 || id > IVSH_MAX_ID) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fd < 0) {                 /* peer id left */
		p = peer_find(v, id, false);
		if (p)
			peer_clear(p);
		return;
	}
	p = peer_find(v, id, true);
	if (!p || p->nvec >= IVSH_MAX_VECTORS) {
		close(fd);
		return;
	}
	p->fd[p->nvec++] = fd;
}

/* Reads what the server sent since; waits up to wait_ms for the first. */
static void drain(struct npt_ivsh *v, int wait_ms)
{
	int64_t id;
	int fd;

	while (recv_msg(v, wait_ms, &id, &fd) == 1)
		apply_msg(v, id, fd);
	v->last_scan_ns = npt_now_ns();
}

static int greet(struct npt_ivsh *v, char *err, size_t errlen)
{
	int64_t val[3];
	int fd[3], r;

	for (int i = 0; i < 3; i++) {
		r = recv_msg(v, IVSH_OPEN_MS, &val[i], &fd[i]);
		if (r != 1) {
			npt_seterr(err, errlen, "irq: ivshmem server %s: %s during the greeting (message %d of 3)",
				   v->path, r ? strerror(-r) : "no message within 2 s or connection closed", i + 1);
			for (int k = 0; k < i; k++)
				if (fd[k] >= 0)
					close(fd[k]);
			return r ? r : -ETIMEDOUT;
		}
	}
	for (int i = 0; i < 3; i++)
		if (fd[i] >= 0)
			close(fd[i]);       /* the shared memory: the link maps its own file */
	if (val[0] != 0) {
		npt_seterr(err, errlen, "irq: ivshmem server %s speaks protocol %" PRId64 ", this side 0",
			   v->path, val[0]);
		return -EPROTO;
	}
	if (val[1] < 0 || val[1] > IVSH_MAX_ID || val[2] != -1 || fd[2] < 0) {
		npt_seterr(err, errlen, "irq: ivshmem server %s: bad greeting (ID %" PRId64 " outside 0..%d, "
			   "or no shared memory fd)", v->path, val[1], IVSH_MAX_ID);
		return -EPROTO;
	}
	v->self = val[1];
	return 0;
}

int npt_ivsh_open_sock(int sock, const char *name, int64_t peer, struct npt_ivsh **out,
		       char *err, size_t errlen)
{
	struct npt_ivsh *v;
	int r;

	*out = NULL;
	v = calloc(1, sizeof(*v));
	if (!v) {
		close(sock);
		return -ENOMEM;
	}
	pthread_mutex_init(&v->lock, NULL);
	for (unsigned i = 0; i < IVSH_MAX_PEERS; i++)
		v->peers[i].id = -1;
	v->want = peer;
	v->sock = sock;
	snprintf(v->path, sizeof(v->path), "%s", name);
	r = greet(v, err, errlen);
	if (r) {
		npt_ivsh_close(v);
		return r;
	}
	drain(v, IVSH_BURST_MS);
	*out = v;
	return 0;
}

int npt_ivsh_open(const char *path, int64_t peer, struct npt_ivsh **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int sock, e;

	*out = NULL;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		npt_seterr(err, errlen, "irq: ivshmem socket path %s longer than %zu bytes",
			   path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa))) {
		e = errno;
		npt_seterr(err, errlen, "irq: cannot connect to the ivshmem server at %s: %s",
			   path, strerror(e));
		if (sock >= 0)
			close(sock);
		return -e;
	}
	return npt_ivsh_open_sock(sock, path, peer, out, err, errlen);
}

void npt_ivsh_close(struct npt_ivsh *v)
{
	if (!v)
		return;
	for (unsigned i = 0; i < IVSH_MAX_PEERS; i++)
		if (v->peers[i].id >= 0)
			peer_clear(&v->peers[i]);
	if (v->sock >= 0)
		close(v->sock);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

static struct ivsh_peer *target(struct npt_ivsh *v)
{
	struct ivsh_peer *best = NULL;

	for (unsigned i = 0; i < IVSH_MAX_PEERS; i++) {
		struct ivsh_peer *p = &v->peers[i];

		if (p->id < 0 || p->id == v->self || !p->nvec)
			continue;
		if (v->want >= 0 ? p->id == v->want : (!best || p->id < best->id))
			best = p;
	}
	return best;
}

int npt_ivsh_ring(struct npt_ivsh *v, unsigned vector)
{
	static const uint64_t one = 1;
	struct ivsh_peer *p;
	int r = 0;

	pthread_mutex_lock(&v->lock);
	p = target(v);
	if (!p || npt_now_ns() - v->last_scan_ns >= IVSH_RESCAN_NS) {
		drain(v, 0);
		p = target(v);
	}
	if (!p)
		r = -ENOTCONN;
	else if (write(p->fd[vector % p->nvec], &one, sizeof(one)) != (ssize_t)sizeof(one))
		r = errno == EAGAIN ? 0 : -errno;   /* EAGAIN: the counter is saturated, still rung */
	pthread_mutex_unlock(&v->lock);
	return r;
}

int npt_ivsh_own_fd(struct npt_ivsh *v, unsigned vector)
{
	struct ivsh_peer *p;
	int fd = -1;

	pthread_mutex_lock(&v->lock);
	p = peer_find(v, v->self, false);
	if (!p || !p->nvec)
		drain(v, IVSH_BURST_MS);
	p = peer_find(v, v->self, false);
	if (p && vector < p->nvec)
		fd = p->fd[vector];
	pthread_mutex_unlock(&v->lock);
	return fd;
}

int64_t npt_ivsh_id(const struct npt_ivsh *v)
{
	return v->self;
}

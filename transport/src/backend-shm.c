/* The shm backend: the BAR is a file (in /dev/shm for development, QEMU's
 * ivshmem file for the guest test) and the host window is a second file in
 * which a bus address is a file offset. Both processes map both files.
 *
 * Doorbells (docs/transport.md "Notifications", "shm doorbells"): one
 * abstract AF_UNIX datagram socket per (BAR file, side, channel), bound by
 * the process of that side that waits on the channel; ringing is a
 * non-blocking 1-byte sendto. The name is derived from the BAR file's
 * device and inode, which both sides see identically, so links never share
 * names and every process of one side finds the same socket. */
#define _GNU_SOURCE   /* recvmmsg */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

struct npt_shm_bells {
	int tx;                          /* unbound datagram socket that rings */
	int rx[NPT_MAX_CHANNELS];        /* bound per channel we wait on, -1 = none */
	uint64_t dev, ino;               /* of the BAR file: names the link */
	/* The peer side's address per channel, formatted once here: formatted
	 * at each ring it was ~0.5% of a busy relay's and server's samples. */
	struct sockaddr_un peer[NPT_MAX_CHANNELS];
	socklen_t peer_len[NPT_MAX_CHANNELS];
};

/* Abstract name "nbd-pcie-bell/DEV:INO/S/CHAN", S = 'h' (the host waits)
 * or 'e' (the EP waits). */
static socklen_t bell_addr(const struct npt_shm_bells *b, char side, unsigned chan,
			   struct sockaddr_un *a)
{
	int n;

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "nbd-pcie-bell/%" PRIx64 ":%" PRIx64
		     "/%c/%u", b->dev, b->ino, side, chan);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static void bells_free(struct npt_link *l)
{
	struct npt_shm_bells *b = l->bells;

	if (!b)
		return;
	for (unsigned i = 0; i < NPT_MAX_CHANNELS; i++)
		if (b->rx[i] >= 0)
			close(b->rx[i]);
	if (b->tx >= 0)
		close(b->tx);
	free(b);
	l->bells = NULL;
}

/* Doorbells are an optimisation: without them (no memory, no socket) the
 * link works by polling, so failures here are not errors. */
static void bells_init(struct npt_link *l, const struct stat *st)
{
	struct npt_shm_bells *b;

	if (l->bells)
		return;
	b = calloc(1, sizeof(*b));
	if (!b)
		return;
	for (unsigned i = 0; i < NPT_MAX_CHANNELS; i++)
		b->rx[i] = -1;
	b->dev = (uint64_t)st->st_dev;
	b->ino = (uint64_t)st->st_ino;
	for (unsigned i = 0; i < NPT_MAX_CHANNELS; i++)
		b->peer_len[i] = bell_addr(b, l->role == NPT_ROLE_HOST ? 'e' : 'h', i, &b->peer[i]);
	b->tx = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (b->tx < 0) {
		free(b);
		return;
	}
	l->bells = b;
}

/* Never blocks. A full socket (EAGAIN) already holds a wake-up; no socket
 * (ECONNREFUSED, ENOENT) means nobody of the other side waits on this
 * machine (a host inside a guest, a peer that polls): both are fine. */
static int shm_notify_ivshmem(struct npt_link *l, unsigned chan);

static int shm_notify(struct npt_link *l, unsigned chan)
{
	struct npt_shm_bells *b = l->bells;
	char one = 1;

	if (l->ivsh)
		return shm_notify_ivshmem(l, chan);
	if (!b || chan >= NPT_MAX_CHANNELS)
		return 0;
	if (sendto(b->tx, &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&b->peer[chan],
		   b->peer_len[chan]) < 0 &&
	    errno != EAGAIN && errno != ECONNREFUSED && errno != ENOENT)
		return -errno;
	return 0;
}

/* -1 when another process of our side still holds the channel's socket
 * (it is closing the channel): this handle then polls. */
static int shm_wait_fd(struct npt_link *l, unsigned chan)
{
	struct npt_shm_bells *b = l->bells;
	struct sockaddr_un a;
	socklen_t len;
	int fd;

	if (!b || chan >= NPT_MAX_CHANNELS)
		return -1;
	if (b->rx[chan] >= 0)
		return b->rx[chan];
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	len = bell_addr(b, l->role == NPT_ROLE_HOST ? 'h' : 'e', chan, &a);
	if (bind(fd, (struct sockaddr *)&a, len)) {
		close(fd);
		return -1;
	}
	b->rx[chan] = fd;
	return fd;
}

/* Datagrams drained per system call: more than the rings a sleeper
 * normally collects, so one call empties the socket. */
#define BELL_DRAIN 16

static void shm_wait_ack(struct npt_link *l, unsigned chan)
{
	struct mmsghdr m[BELL_DRAIN];
	struct iovec v[BELL_DRAIN];
	char buf[BELL_DRAIN];

	if (!l->bells || chan >= NPT_MAX_CHANNELS || l->bells->rx[chan] < 0)
		return;
	memset(m, 0, sizeof(m));
	for (unsigned i = 0; i < BELL_DRAIN; i++) {
		v[i] = (struct iovec){ .iov_base = &buf[i], .iov_len = 1 };
		m[i].msg_hdr.msg_iov = &v[i];
		m[i].msg_hdr.msg_iovlen = 1;
	}
	while (recvmmsg(l->bells->rx[chan], m, BELL_DRAIN, MSG_DONTWAIT, NULL) == BELL_DRAIN)
		;
}

static void shm_wait_put(struct npt_link *l, unsigned chan)
{
	if (!l->bells || chan >= NPT_MAX_CHANNELS || l->bells->rx[chan] < 0)
		return;
	close(l->bells->rx[chan]);
	l->bells->rx[chan] = -1;
}

static bool has_magic(int fd)
{
	uint8_t b[4];

	return pread(fd, b, 4, 0) == 4 && get_le32(b) == NPL_MAGIC;
}

/* irq=ivshmem:SOCKET: the EP rings the host (a QEMU guest) through an
 * ivshmem server (irq-ivshmem.c); a host has nothing to ring it with. */
static int shm_irq_open(struct npt_link *l, char *err, size_t errlen)
{
	if (!l->spec.irq_sock[0] || l->ivsh)
		return 0;
	if (l->role != NPT_ROLE_EP) {
		npt_seterr(err, errlen, "shm: irq=ivshmem:%s rings the host from the EP; "
			   "a host link string takes no irq=", l->spec.irq_sock);
		return -EINVAL;
	}
	return npt_ivsh_open(l->spec.irq_sock, l->spec.irq_peer, &l->ivsh, err, errlen);
}

/* EP: channel chan's completions ring the host's vector chan (mod the
 * guest's vectors), which its pci backend sleeps on (backend-pci.c). */
static int shm_notify_ivshmem(struct npt_link *l, unsigned chan)
{
	return l->ivsh ? npt_ivsh_ring(l->ivsh, chan) : 0;
}

static int shm_map_bar(struct npt_link *l, uint64_t size, char *err, size_t errlen)
{
	const char *path = l->spec.bar_path;
	struct stat st;
	void *p;
	int fd;

	if (l->role == NPT_ROLE_EP) {
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			l->bar_created = true;
		else if (errno == EEXIST)
			fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			goto fail_errno;
		l->bar_fd = fd;
		if (fstat(fd, &st))
			goto fail_errno;
		/* A file that is not ours (no link magic: e.g. QEMU's ivshmem
		 * memory) keeps its size when the caller lets the layout fit
		 * it; ours only ever grow: a host may still map the old size. */
		if ((uint64_t)st.st_size < size && l->bar_fit && !l->bar_created &&
		    st.st_size >= NPL_HEADER_AREA && !has_magic(fd)) {
			l->bar_size = (uint64_t)st.st_size;
			goto map;
		}
		if ((uint64_t)st.st_size < size && ftruncate(fd, (off_t)size))
			goto fail_errno;
		l->bar_size = (uint64_t)st.st_size > size ? (uint64_t)st.st_size : size;
	} else {
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return -errno;   /* the caller retries until its timeout */
		l->bar_fd = fd;
		if (fstat(fd, &st))
			goto fail_errno;
		if ((uint64_t)st.st_size < NPL_HEADER_AREA) {
			close(fd);
			l->bar_fd = -1;
			return -EAGAIN;  /* EP has not sized it yet */
		}
		l->bar_size = (uint64_t)st.st_size;
	}
map:
	p = mmap(NULL, l->bar_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		goto fail_errno;
	l->bar = p;
	l->bar_map = p;
	l->bar_maplen = l->bar_size;
	if (!fstat(fd, &st))
		bells_init(l, &st);
	return shm_irq_open(l, err, errlen);
fail_errno:
	npt_seterr(err, errlen, "shm: BAR file %s: %s", path, strerror(errno));
	return -errno;
}

static int shm_map_window(struct npt_link *l, uint64_t *bus, uint64_t size,
			  struct npt_winmap **out, char *err, size_t errlen)
{
	const char *path = l->spec.win_path;
	struct npt_winmap *w = calloc(1, sizeof(*w));
	uint64_t base;
	struct stat st;
	int fd = -1, r;
	void *p;

	if (!w)
		return -ENOMEM;
	if (l->role == NPT_ROLE_HOST && !l->win_join) {
		base = l->spec.win_base;
		if (l->spec.win_default) {
			/* A fresh inode each time: an EP still mapping the window
			 * of a dead host keeps its pages and never sees them shrink. */
			unlink(path);
			fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (fd >= 0)
				l->win_created = true;
		} else {
			fd = open(path, O_RDWR | O_CLOEXEC);
			if (fd < 0 && errno == ENOENT) {
				fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
				if (fd >= 0)
					l->win_created = true;
			}
		}
		if (fd < 0)
			goto fail_errno;
		if (fstat(fd, &st))
			goto fail_errno;
		if ((uint64_t)st.st_size < base + size && ftruncate(fd, (off_t)(base + size)))
			goto fail_errno;
		*bus = base;
	} else {
		/* the EP, or another host process than the one that published
		 * it: map what was published */
		base = *bus;
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			goto fail_errno;
		if (fstat(fd, &st))
			goto fail_errno;
		if ((uint64_t)st.st_size < base + size) {
			npt_seterr(err, errlen, "shm: window %s: bus address 0x%" PRIx64 " + size %" PRIu64
				   " beyond file size %jd", path, base, size, (intmax_t)st.st_size);
			r = -ERANGE;
			goto fail;
		}
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)base);
	if (p == MAP_FAILED)
		goto fail_errno;
	close(fd);
	w->refs = 1;
	w->base = p;
	w->size = size;
	w->map = p;
	w->maplen = size;
	*out = w;
	return 0;
fail_errno:
	r = -errno;
	npt_seterr(err, errlen, "shm: window file %s: %s", path, strerror(errno));
fail:
	if (fd >= 0)
		close(fd);
	free(w);
	return r;
}

static void shm_unmap_window(struct npt_link *l, struct npt_winmap *w)
{
	if (!w)
		return;
	if (w->map)
		munmap(w->map, w->maplen);
	free(w);
}

static void shm_close(struct npt_link *l)
{
	npt_ivsh_close(l->ivsh);
	l->ivsh = NULL;
	bells_free(l);
	if (l->bar_map) {
		munmap(l->bar_map, l->bar_maplen);
		l->bar_map = NULL;
		l->bar = NULL;
	}
	if (l->bar_fd >= 0) {
		close(l->bar_fd);
		l->bar_fd = -1;
	}
	if (l->bar_created) {
		unlink(l->spec.bar_path);
		l->bar_created = false;
	}
	if (l->win_created) {
		unlink(l->spec.win_path);
		l->win_created = false;
	}
}

/* Host: any size in the window file, if the link string names one, or at
 * most win_max= (a host window smaller than the layout, as a host kernel
 * gives: the link shrinks the payload areas). */
static uint64_t shm_win_max(struct npt_link *l)
{
	if (!l->spec.win_path[0])
		return 0;
	return l->spec.win_max ? l->spec.win_max : UINT64_MAX;
}

static void shm_reg_path(struct npt_link *l, char *buf, size_t len)
{
	snprintf(buf, len, "%s.hosts", l->spec.bar_path);
}

const struct npt_backend_ops npt_shm_ops = {
	.name = "shm",
	.map_bar = shm_map_bar,
	.map_window = shm_map_window,
	.unmap_window = shm_unmap_window,
	.win_max = shm_win_max,
	.close = shm_close,
	.reg_path = shm_reg_path,
	.notify = shm_notify,
	.wait_fd = shm_wait_fd,
	.wait_ack = shm_wait_ack,
	.wait_put = shm_wait_put,
};

/* Several host processes share one link: one attach (one host generation),
 * each process owning the channels it opened. They coordinate through a
 * small host-local registry file locked with flock(2): which process owns
 * which channel, for which host generation. Nothing of it crosses the link;
 * the EP sees a single host (docs/transport.md "Several host processes"). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define REG_MAGIC 0x53544f48u   /* "HOTS": a registry file of this layout */

static int reg_open_fd(struct npt_link *l)
{
	int fd = open(l->reg_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	return fd < 0 ? -errno : fd;
}

int npt_hosts_open(struct npt_link *l, char *err, size_t errlen)
{
	int fd = reg_open_fd(l);

	if (fd < 0) {
		npt_seterr(err, errlen, "link: host registry %s: %s", l->reg_path, strerror(-fd));
		return fd;
	}
	l->reg_fd = fd;
	return 0;
}

void npt_hosts_close(struct npt_link *l)
{
	if (l->reg_fd >= 0)
		close(l->reg_fd);
	l->reg_fd = -1;
}

/* Locks the registry; if the last user removed the file while we waited
 * for the lock, reopens it so that every process locks the same inode. */
int npt_hosts_lock(struct npt_link *l)
{
	for (int tries = 0; tries < 100; tries++) {
		struct stat a, b;
		int fd;

		if (flock(l->reg_fd, LOCK_EX))
			return -errno;
		if (fstat(l->reg_fd, &a) == 0 && stat(l->reg_path, &b) == 0 &&
		    a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			return 0;
		fd = reg_open_fd(l);
		if (fd < 0)
			return fd;
		close(l->reg_fd);
		l->reg_fd = fd;
	}
	return -EDEADLK;
}

void npt_hosts_unlock(struct npt_link *l)
{
	flock(l->reg_fd, LOCK_UN);
}

void npt_hosts_read(struct npt_link *l, struct npt_hosts_reg *r)
{
	if (pread(l->reg_fd, r, sizeof(*r), 0) != (ssize_t)sizeof(*r) || r->magic != REG_MAGIC)
		memset(r, 0, sizeof(*r));
}

int npt_hosts_write(struct npt_link *l, const struct npt_hosts_reg *r)
{
	struct npt_hosts_reg w = *r;

	w.magic = REG_MAGIC;
	return pwrite(l->reg_fd, &w, sizeof(w), 0) == (ssize_t)sizeof(w) ? 0 : -EIO;
}

bool npt_hosts_pid_alive(int32_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

int32_t npt_hosts_other(const struct npt_hosts_reg *r)
{
	int32_t self = (int32_t)getpid();

	for (unsigned i = 0; i < NPT_MAX_CHANNELS; i++) {
		if (r->user[i] != self && npt_hosts_pid_alive(r->user[i]))
			return r->user[i];
		if (r->pid[i] != self && npt_hosts_pid_alive(r->pid[i]))
			return r->pid[i];
	}
	return 0;
}

int npt_hosts_user_add(struct npt_hosts_reg *r)
{
	int32_t self = (int32_t)getpid();

	for (unsigned i = 0; i < NPT_MAX_CHANNELS; i++)
		if (r->user[i] == self)
			return 0;
	for (unsigned i = 0; i < NPT_MAX_CHANNELS; i++)
		if (!npt_hosts_pid_alive(r->user[i])) {
			r->user[i] = self;
			return 0;
		}
	return -EUSERS;
}

void npt_hosts_user_del(struct npt_hosts_reg *r)
{
	int32_t self = (int32_t)getpid();

	for (unsigned i = 0; i < NPT_MAX_CHANNELS; i++)
		if (r->user[i] == self)
			r->user[i] = 0;
}

void npt_hosts_remove(struct npt_link *l)
{
	unlink(l->reg_path);
}

/* One host process per link. The transport lets one host attach to a link
 * at a time: a second host attaching takes the link over and the EP drops
 * every channel of the first (docs/transport.md, host attach). So the
 * process that holds a link (a device relay or a -unix server) also listens
 * on an abstract unix socket named after the link, and every other
 * nbd-pcie-client asks there before touching the link:
 *   -l is answered by the owner over its own link;
 *   attach and -unix are refused with who holds the link.
 * Abstract names vanish with the process: nothing to clean up.
 *
 * Protocol: one request line, answer lines, then the owner closes.
 *   "WHO\n"  -> "PID <pid> <description>\n"
 *   "LIST\n" -> "E <name>\t<description>\n"... then "OK\n" or "ERR <message>\n"
 *   "ATTACH\n" then "<key> <value>\n" lines and "END\n" (a device holder
 *            attaches one more device over its link)
 *            -> "OK <message>\n" or "ERR <message>\n" */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <nbdproto/client.h>

#include "internal.h"

/* How long a client waits for the owner's answer: a LIST is one handshake
 * over the link, well within the handshake timeout. */
#define CTL_REPLY_TIMEOUT_MS (NPC_HANDSHAKE_TIMEOUT_MS + 2000)
/* An owner that closed a request unanswered is looked for again this many
 * times, this far apart (an exiting owner is gone within milliseconds). */
#define CTL_GONE_TRIES   50
#define CTL_GONE_WAIT_US 20000

static socklen_t ctl_addr(const char *link, struct sockaddr_un *a)
{
	int n;

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	/* sun_path[0] = 0: the abstract namespace. Longer link strings are
	 * cut; two links sharing the first ~90 bytes would share an owner. */
	n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "nbd-pcie-client:%s", link);
	if (n > (int)sizeof(a->sun_path) - 2)
		n = (int)sizeof(a->sun_path) - 2;
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

int npc_ctl_listen(const char *link, char *err, size_t errlen)
{
	struct sockaddr_un a;
	socklen_t len = ctl_addr(link, &a);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, len) || listen(fd, 8)) {
		int e = -errno;
		close(fd);
		if (e == -EADDRINUSE)
			snprintf(err, errlen, "-pcie %s: another nbd-pcie-client holds this link", link);
		else
			snprintf(err, errlen, "-pcie %s: control socket: %s", link, strerror(-e));
		return e;
	}
	return fd;
}

/* Connects to the owner of link; -ECONNREFUSED / -ENOENT when there is none. */
static int ctl_connect(const char *link)
{
	struct sockaddr_un a;
	socklen_t len = ctl_addr(link, &a);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, len)) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* Reads one line (without the newline) within the reply timeout. */
static int read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	while (n + 1 < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char c;

		if (poll(&p, 1, CTL_REPLY_TIMEOUT_MS) <= 0)
			return -ETIMEDOUT;
		ssize_t r = read(fd, &c, 1);
		if (r <= 0)
			return n ? (buf[n] = '\0', 0) : -ECONNRESET;
		if (c == '\n')
			break;
		buf[n++] = c;
	}
	buf[n] = '\0';
	return 0;
}

/* Sends a request; errors are left to the answer (or its absence). */
static void send_req(int fd, const char *req, size_t len)
{
	while (len) {
		ssize_t n = send(fd, req, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		req += n;
		len -= (size_t)n;
	}
}

/* Sends req to the owner and reads the first answer line into line; the
 * connection (fd >= 0) for the rest of the answer, or -ECONNREFUSED /
 * -ENOENT when there is no owner, or the read's error. An owner that is
 * exiting (its last device detached) may have taken the connection into
 * its listen backlog and closed it unanswered: then look again, briefly:
 * either the owner is gone (this process is the owner now) or a new one
 * answers. An owner that read the request died without acting on it. */
static int ask(const char *link, const char *req, size_t reqlen, char *line, size_t linelen)
{
	for (int tries = 0;; tries++) {
		int fd = ctl_connect(link), r;

		if (fd < 0)
			return fd;
		/* A refusal may come before the request is read: a failed send
		 * still leaves the answer to read (and must not raise SIGPIPE). */
		send_req(fd, req, reqlen);
		r = read_line(fd, line, linelen);
		if (!r)
			return fd;
		close(fd);
		if (r != -ECONNRESET || tries >= CTL_GONE_TRIES)
			return r;
		usleep(CTL_GONE_WAIT_US);
	}
}

int npc_ctl_who(const char *link, char *who, size_t wholen)
{
	int fd = ask(link, "WHO\n", 4, who, wholen);

	if (fd < 0)
		return fd;
	close(fd);
	if (strncmp(who, "PID ", 4) == 0)
		memmove(who, who + 4, strlen(who + 4) + 1);
	else {
		/* snprintf must not read the buffer it writes */
		char ans[128];

		snprintf(ans, sizeof(ans), "%s", who[0] ? who : "no answer");
		snprintf(who, wholen, "(unknown: %s)", ans);
	}
	return 0;
}

int npc_ctl_list(const char *link, void (*emit)(void *ctx, const char *name, const char *desc),
		 void *ctx, char *err, size_t errlen)
{
	char line[2 * NBDP_NAME_MAX + 64];
	int fd = ask(link, "LIST\n", 5, line, sizeof(line)), r;

	if (fd == -ECONNREFUSED || fd == -ENOENT)
		return fd;   /* no owner: the caller opens the link itself */
	if (fd < 0) {
		snprintf(err, errlen, "the nbd-pcie-client holding the link did not answer: %s",
			 strerror(-fd));
		return fd;
	}
	for (bool first = true;; first = false) {
		if (!first && (r = read_line(fd, line, sizeof(line)))) {
			snprintf(err, errlen, "the nbd-pcie-client holding the link did not answer: %s",
				 strerror(-r));
			break;
		}
		if (strncmp(line, "E ", 2) == 0) {
			char *tab = strchr(line + 2, '\t');
			if (tab)
				*tab++ = '\0';
			emit(ctx, line + 2, tab ? tab : "");
			continue;
		}
		if (strcmp(line, "OK") == 0) {
			r = 0;
			break;
		}
		snprintf(err, errlen, "%s", strncmp(line, "ERR ", 4) == 0 ? line + 4 : line);
		r = -EIO;
		break;
	}
	close(fd);
	return r;
}

/* ATTACH request: the options that describe a device. */
int npc_ctl_attach(const struct npc_opts *o, char *msg, size_t msglen)
{
	char req[NBDP_NAME_MAX + 1024], ans[1024];
	int fd, n;

	if (strpbrk(o->name, "\n") || (o->identifier && strchr(o->identifier, '\n'))) {
		snprintf(msg, msglen, "export name or identifier with a newline");
		return -EINVAL;
	}
	n = snprintf(req, sizeof(req),
		     "ATTACH\nname %s\nindex %d\nbs %u\nsize %llu\ntimeout %llu\ndead %llu\n"
		     "conns %u\npersist %d\nreadonly %d\nnooptgo %d\nswap %d\nident %s\nEND\n",
		     o->name, o->dev_index, o->block_size, (unsigned long long)o->size,
		     (unsigned long long)o->timeout, (unsigned long long)o->dead_timeout,
		     o->connections, o->persist, o->readonly, o->no_optgo, o->swap,
		     o->identifier ? o->identifier : "");
	if (n >= (int)sizeof(req)) {
		snprintf(msg, msglen, "attach request too long");
		return -EINVAL;
	}
	fd = ask(o->link, req, (size_t)n, ans, sizeof(ans));
	if (fd == -ECONNREFUSED || fd == -ENOENT)
		return fd;   /* no holder: this process attaches itself */
	if (fd < 0) {
		snprintf(msg, msglen, "the process holding the link did not answer: %s", strerror(-fd));
		return -EIO;
	}
	close(fd);
	if (strncmp(ans, "OK ", 3) == 0) {
		snprintf(msg, msglen, "%s", ans + 3);
		return 0;
	}
	snprintf(msg, msglen, "%s", strncmp(ans, "ERR ", 4) == 0 ? ans + 4 : ans);
	return -EIO;
}

/* Reads an ATTACH request body into *o; strings live in buf. */
static int read_attach(int fd, struct npc_opts *o, char *name, char *ident)
{
	char line[NBDP_NAME_MAX + 64];
	unsigned long long v;

	memset(o, 0, sizeof(*o));
	o->mode = NPC_MODE_ATTACH;
	o->name = name;
	name[0] = ident[0] = '\0';
	for (;;) {
		if (read_line(fd, line, sizeof(line)))
			return -EPROTO;
		if (strcmp(line, "END") == 0)
			break;
		char *val = strchr(line, ' ');
		if (!val)
			return -EPROTO;
		*val++ = '\0';
		if (!strcmp(line, "name"))
			snprintf(name, NBDP_NAME_MAX + 1, "%s", val);
		else if (!strcmp(line, "ident"))
			snprintf(ident, 256, "%s", val);
		else {
			v = strtoull(val, NULL, 10);
			if (!strcmp(line, "index")) o->dev_index = (int)v;
			else if (!strcmp(line, "bs")) o->block_size = (uint32_t)v;
			else if (!strcmp(line, "size")) o->size = v;
			else if (!strcmp(line, "timeout")) o->timeout = v;
			else if (!strcmp(line, "dead")) o->dead_timeout = v;
			else if (!strcmp(line, "conns")) o->connections = (unsigned)v;
			else if (!strcmp(line, "persist")) o->persist = v != 0;
			else if (!strcmp(line, "readonly")) o->readonly = v != 0;
			else if (!strcmp(line, "nooptgo")) o->no_optgo = v != 0;
			else if (!strcmp(line, "swap")) o->swap = v != 0;
			else return -EPROTO;
		}
	}
	if (ident[0])
		o->identifier = ident;
	if (o->connections < 1 || o->connections > NPC_CONNECTIONS_MAX || o->dev_index < 0)
		return -EPROTO;
	return 0;
}

/* ------------------------------------------------------------ the owner */

struct list_out {
	int fd;
};

static void write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

static void emit_line(void *ctx, const char *name, const char *desc)
{
	struct list_out *o = ctx;
	char line[2 * NBDP_NAME_MAX + 64];
	int n = snprintf(line, sizeof(line), "E %s\t%s\n", name, desc ? desc : "");

	/* Names with a newline or tab cannot travel in this line format. */
	if (strpbrk(name, "\n\t") || (desc && strchr(desc, '\n')))
		return;
	write_all(o->fd, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void npc_ctl_serve(int lfd, struct npc_link *k, const char *who,
		   int (*attach)(void *ctx, const struct npc_opts *o, char *msg, size_t msglen),
		   void *ctx)
{
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		char req[16];
		struct timeval tv = { .tv_sec = 1 };

		/* A peer that connects and says nothing must not stall the relay's
		 * owner: one second for the request line. */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		/* Abstract sockets have no file permissions: only root and the
		 * holder's own user may ask it anything (an ATTACH runs with the
		 * holder's privileges). */
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		int got = read_line(fd, req, sizeof(req));
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) ||
		    (cred.uid != 0 && cred.uid != geteuid())) {
			static const char deny[] = "ERR permission denied: the link is held by another user\n";
			write_all(fd, deny, sizeof(deny) - 1);
			close(fd);
			continue;
		}
		if (got == 0) {
			if (strcmp(req, "WHO") == 0) {
				char line[512];
				int n = snprintf(line, sizeof(line), "PID %ld %s\n", (long)getpid(), who);
				write_all(fd, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
			} else if (strcmp(req, "LIST") == 0) {
				struct list_out o = { fd };
				struct nbdp_client_opts co = { .goal = NBDP_GOAL_LIST, .export_name = "",
							       .on_list = emit_line, .list_ctx = &o };
				char err[512], line[600];
				int r = npc_remote_handshake(k, &co, NPC_HANDSHAKE_TIMEOUT_MS, NULL, NULL,
							     err, sizeof(err));
				int n = r ? snprintf(line, sizeof(line), "ERR %s\n", err)
					  : snprintf(line, sizeof(line), "OK\n");
				write_all(fd, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
			} else if (strcmp(req, "ATTACH") == 0) {
				static char name[NBDP_NAME_MAX + 1], ident[256];
				struct npc_opts o;
				char msg[1024], line[1100];
				int r = read_attach(fd, &o, name, ident);
				int n;

				if (r)
					snprintf(msg, sizeof(msg), "malformed attach request");
				else if (!attach)
					snprintf(msg, sizeof(msg), "the link is held by %s, which serves no devices: attach through its socket with nbd-client -u", who);
				else
					r = attach(ctx, &o, msg, sizeof(msg));
				if (!r && !attach)
					r = -EBUSY;
				n = snprintf(line, sizeof(line), "%s %s\n", r ? "ERR" : "OK", msg);
				write_all(fd, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
			}
		}
		close(fd);
	}
}

int npc_ctl_refuse_if_held(const char *link, const char *what)
{
	char who[512];

	if (npc_ctl_who(link, who, sizeof(who)))
		return 0;
	npc_log(LOG_ERR, "%s: -pcie %s is held by nbd-pcie-client pid %s; a link serves one host process at a time: detach that first (nbd-pcie-client -d), or serve everything from one -unix process",
		what, link, who);
	return -EBUSY;
}

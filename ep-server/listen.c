/* What the server accepts on: TCP and unix sockets (like nbd-server) and
 * PCIe links, whose channels the host opens. Runs on the main thread; each
 * accepted connection goes to a worker. */
#define _GNU_SOURCE   /* accept4 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "internal.h"
#include "nbdpcie/transport.h"

/* TCP listeners one listenaddr can resolve to (IPv4 + IPv6 and spares). */
#define MAX_TCP 8
/* How often the main loop looks for new channels on the links (ms): every
 * LINK_POLL_MS for LINK_BURST_MS after a channel came or a link changed
 * state (a host opening several connections, one after the other, waits at
 * most this long for each), else every LINK_CHECK_MS, the links' check
 * cadence, so that an idle server wakes 25 times a second, not 200 (a
 * host's first connect then waits up to 40 ms). */
#define LINK_POLL_MS 5
#define LINK_BURST_MS 2000
/* How often links are checked (heartbeats): well inside NPT_HEARTBEAT_MS. */
#define LINK_CHECK_MS 40
/* Pending connections the kernel queues per listening socket: a host
 * opening a multi-connection export at once (nbdcopy: 4, kernel nbd: one
 * per CPU) fits many times over. */
#define LISTEN_BACKLOG 64

struct link_ent {
	struct npt_link *link;
	char *spec;
	int up;                 /* last npt_link_check() result */
};

struct srv_listen {
	struct srv_server *srv;
	int tcp[MAX_TCP];
	unsigned ntcp;
	int unix_fd;
	struct link_ent *links;
	unsigned nlinks;
};

static int open_tcp(struct srv_listen *l, const struct srv_config *c, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	                          .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	int rc = getaddrinfo(c->listenaddr, c->port, &hints, &res);

	if (rc) {
		snprintf(err, errlen, "listen: address %s port %s: %s",
		         c->listenaddr ? c->listenaddr : "*", c->port, gai_strerror(rc));
		return -EINVAL;
	}
	for (ai = res; ai && l->ntcp < MAX_TCP; ai = ai->ai_next) {
		int one = 1;
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		char host[INET6_ADDRSTRLEN + 2];
		char serv[16];
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
			int e = errno;
			getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), serv,
			            sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV);
			close(fd);
			if (e == EADDRNOTAVAIL || e == EAFNOSUPPORT)
				continue;
			snprintf(err, errlen, "listen: tcp %s port %s: %s", host, serv, strerror(e));
			freeaddrinfo(res);
			return -e;
		}
		getsockname(fd, (struct sockaddr *)&ss, &sl);
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
		            NI_NUMERICHOST | NI_NUMERICSERV);
		srv_log(LOG_INFO, "listening on tcp %s port %s", host, serv);
		l->tcp[l->ntcp++] = fd;
	}
	freeaddrinfo(res);
	if (!l->ntcp) {
		snprintf(err, errlen, "listen: no usable address for %s port %s",
		         c->listenaddr ? c->listenaddr : "*", c->port);
		return -EADDRNOTAVAIL;
	}
	return 0;
}

static int open_unix(struct srv_listen *l, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "listen: unixsock %s: path of %zu bytes longer than the "
		         "limit %zu", path, strlen(path), sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* a stale socket of an earlier run, never any other kind of file */
	if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		int e = errno;
		snprintf(err, errlen, "listen: unixsock %s: %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	srv_log(LOG_INFO, "listening on unix socket %s", path);
	l->unix_fd = fd;
	return 0;
}

static int open_links(struct srv_listen *l, const struct srv_config *c, char *err, size_t errlen)
{
	struct npt_link_params p = {
		.nchannels = c->pcie_channels,
		.ring_entries = c->pcie_ring_entries,
		.data_per_chan = c->pcie_data_per_channel,
	};
	unsigned n = 0;

	while (c->pcie && c->pcie[n])
		n++;
	l->links = calloc(n ? n : 1, sizeof(*l->links));
	if (!l->links)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		char msg[256] = "";
		struct link_ent *le = &l->links[l->nlinks];
		int rc = npt_link_open(c->pcie[i], NPT_ROLE_EP, &p, &le->link, msg, sizeof(msg));
		if (rc) {
			snprintf(err, errlen, "pcie link %s: %s", c->pcie[i],
			         *msg ? msg : strerror(-rc));
			return rc;
		}
		le->spec = c->pcie[i];
		le->up = 1;   /* nothing known yet: the first check logs the state */
		l->nlinks++;
		srv_log(LOG_INFO, "serving pcie link %s", npt_link_describe(le->link));
	}
	return 0;
}

int srv_listen_open(struct srv_listen **out, struct srv_server *s, char *err, size_t errlen)
{
	struct srv_listen *l = calloc(1, sizeof(*l));
	int rc = 0;

	if (!l)
		return -ENOMEM;
	l->srv = s;
	l->unix_fd = -1;
	if (s->cfg->tcp)
		rc = open_tcp(l, s->cfg, err, errlen);
	if (!rc && s->cfg->unixsock)
		rc = open_unix(l, s->cfg->unixsock, err, errlen);
	if (!rc)
		rc = open_links(l, s->cfg, err, errlen);
	if (rc) {
		srv_listen_close(l);
		return rc;
	}
	*out = l;
	return 0;
}

static bool over_limit(struct srv_listen *l, const char *what)
{
	unsigned max = l->srv->cfg->maxconnections;
	if (max && atomic_load(&l->srv->nconns) >= max) {
		srv_log(LOG_NOTICE, "%s: refused, maxconnections %u reached", what, max);
		return true;
	}
	return false;
}

static void accept_sock(struct srv_listen *l, int lfd, bool tcp)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct srv_conn *c;

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			srv_log(LOG_ERR, "accept: %s", strerror(errno));
		return;
	}
	if (over_limit(l, tcp ? "tcp connection" : "unix connection")) {
		close(fd);
		return;
	}
	c = srv_sock_conn_new(l->srv, fd, tcp);
	if (!c) {
		srv_log(LOG_ERR, "accept: out of memory");
		close(fd);
		return;
	}
	srv_log(LOG_INFO, "%s: connected", c->desc);
	srv_server_add_conn(l->srv, c, -1);
}

/* Accepts the links' new channels (and checks the links when asked); the
 * number of channels accepted and link state changes seen. */
static unsigned poll_links(struct srv_listen *l, bool check)
{
	unsigned events = 0;

	for (unsigned i = 0; i < l->nlinks; i++) {
		struct link_ent *le = &l->links[i];
		struct npt_chan *ch;

		if (check) {
			int st = npt_link_check(le->link);
			if (st != le->up) {
				if (st == 0)
					srv_log(LOG_INFO, "pcie %s: host attached: %s", le->spec,
					        npt_link_error(le->link));
				else if (st != -EAGAIN)
					srv_log(LOG_NOTICE, "pcie %s: link down: %s", le->spec,
					        npt_link_error(le->link));
				le->up = st;
				events++;
			}
		}
		while (npt_chan_accept(le->link, &ch) == 0) {
			struct srv_conn *c;
			char what[200];

			events++;
			snprintf(what, sizeof(what), "pcie %s ch %u", le->spec, npt_chan_index(ch));
			if (over_limit(l, what)) {
				npt_chan_close(ch);
				continue;
			}
			c = srv_pcie_conn_new(l->srv, le->link, ch, le->spec);
			if (!c) {
				srv_log(LOG_ERR, "%s: out of memory", what);
				npt_chan_close(ch);
				continue;
			}
			srv_log(LOG_INFO, "%s: connected", c->desc);
			srv_server_add_conn(l->srv, c, (int)npt_chan_index(ch));
		}
	}
	return events;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int srv_listen_run(struct srv_listen *l, int stop_fd)
{
	struct pollfd pfd[MAX_TCP + 2];
	uint64_t last_check = 0, last_event = now_ms();

	for (;;) {
		unsigned n = 0;
		int timeout = !l->nlinks ? -1
		              : now_ms() - last_event < LINK_BURST_MS ? LINK_POLL_MS : LINK_CHECK_MS;

		pfd[n++] = (struct pollfd){ .fd = stop_fd, .events = POLLIN };
		for (unsigned i = 0; i < l->ntcp; i++)
			pfd[n++] = (struct pollfd){ .fd = l->tcp[i], .events = POLLIN };
		if (l->unix_fd >= 0)
			pfd[n++] = (struct pollfd){ .fd = l->unix_fd, .events = POLLIN };
		if (poll(pfd, n, timeout) < 0 && errno != EINTR)
			return -errno;
		if (pfd[0].revents) {
			struct signalfd_siginfo si;
			if (read(stop_fd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGHUP) {
				/* nbd-server re-reads its config on SIGHUP; say we do not */
				srv_log(LOG_WARNING, "SIGHUP: reloading the configuration is not "
				        "supported by nbd-pcie-server; ignored (restart to apply changes)");
				continue;
			}
			srv_log(LOG_INFO, "signal %u received", si.ssi_signo);
			return 0;
		}
		for (unsigned i = 1; i < n; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			accept_sock(l, pfd[i].fd, pfd[i].fd != l->unix_fd);
		}
		if (l->nlinks) {
			uint64_t t = now_ms();
			bool check = t - last_check >= LINK_CHECK_MS;
			if (check)
				last_check = t;
			if (poll_links(l, check))
				last_event = t;
		}
	}
}

void srv_listen_close(struct srv_listen *l)
{
	if (!l)
		return;
	for (unsigned i = 0; i < l->ntcp; i++)
		close(l->tcp[i]);
	if (l->unix_fd >= 0) {
		close(l->unix_fd);
		if (l->srv->cfg->unixsock)
			unlink(l->srv->cfg->unixsock);
	}
	for (unsigned i = 0; i < l->nlinks; i++)
		npt_link_close(l->links[i].link);
	free(l->links);
	free(l);
}

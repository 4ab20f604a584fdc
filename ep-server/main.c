/* nbd-pcie-server: main() only wires the modules together (see internal.h):
 * command line -> configuration -> exports -> listeners -> privileges ->
 * workers -> accept loop until SIGTERM/SIGINT -> drain, flush, exit 0. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <syslog.h>
#include <unistd.h>

#include "internal.h"

#ifndef NBDPCIE_VERSION
#define NBDPCIE_VERSION "unknown"
#endif

static int drop_privileges(const struct srv_config *c, char *err, size_t errlen)
{
	if (c->group) {
		struct group *g = getgrnam(c->group);
		if (!g) {
			snprintf(err, errlen, "config %s: [generic] group = '%s': no such group",
			         c->origin, c->group);
			return -ENOENT;
		}
		if (setgroups(0, NULL) < 0 || setgid(g->gr_gid) < 0) {
			snprintf(err, errlen, "group %s (gid %u): %s", c->group, (unsigned)g->gr_gid,
			         strerror(errno));
			return -errno;
		}
	}
	if (c->user) {
		struct passwd *p = getpwnam(c->user);
		if (!p) {
			snprintf(err, errlen, "config %s: [generic] user = '%s': no such user",
			         c->origin, c->user);
			return -ENOENT;
		}
		if (!c->group && (setgroups(0, NULL) < 0 || setgid(p->pw_gid) < 0)) {
			snprintf(err, errlen, "user %s: setgid %u: %s", c->user, (unsigned)p->pw_gid,
			         strerror(errno));
			return -errno;
		}
		if (setuid(p->pw_uid) < 0) {
			snprintf(err, errlen, "user %s (uid %u): %s", c->user, (unsigned)p->pw_uid,
			         strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int write_pidfile(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "we");
	if (!f) {
		snprintf(err, errlen, "pid file %s: %s", path, strerror(errno));
		return -errno;
	}
	fprintf(f, "%d\n", (int)getpid());
	if (fclose(f) != 0) {
		snprintf(err, errlen, "pid file %s: %s", path, strerror(errno));
		return -errno;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct srv_cli cli;
	struct srv_config cfg;
	struct srv_server srv;
	struct srv_listen *lis = NULL;
	char err[1024] = "";
	sigset_t sigs;
	int sfd = -1, rc;

	if (srv_cli_parse(argc, argv, &cli, err, sizeof(err))) {
		fprintf(stderr, "nbd-pcie-server: %s\n", err);
		srv_cli_free(&cli);
		return 1;
	}
	if (cli.help) {
		srv_cli_usage(stdout);
		srv_cli_free(&cli);
		return 0;
	}
	if (cli.version) {
		printf("nbd-pcie-server %s\n", NBDPCIE_VERSION);
		srv_cli_free(&cli);
		return 0;
	}
	if (srv_cli_to_config(&cli, &cfg, err, sizeof(err))) {
		fprintf(stderr, "nbd-pcie-server: %s\n", err);
		goto fail_cfg;
	}
	if (cli.syslog)
		srv_log_to_syslog(true);

	/* Signals go to the signalfd only: block them before any thread exists. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&srv, 0, sizeof(srv));
	rc = srv_server_open_exports(&srv, &cfg, err, sizeof(err));
	if (!rc)
		rc = srv_listen_open(&lis, &srv, err, sizeof(err));
	if (rc) {
		srv_log(LOG_ERR, "%s", err);
		goto fail;
	}
	if (!cli.foreground) {
		if (daemon(1, 0) < 0) {
			srv_log(LOG_ERR, "daemon: %s", strerror(errno));
			goto fail;
		}
		srv_log_to_syslog(true);
	}
	if (cli.pidfile && write_pidfile(cli.pidfile, err, sizeof(err))) {
		srv_log(LOG_ERR, "%s", err);
		goto fail;
	}
	if (drop_privileges(&cfg, err, sizeof(err))) {
		srv_log(LOG_ERR, "%s", err);
		goto fail;
	}
	if (srv_server_start_workers(&srv, err, sizeof(err))) {
		srv_log(LOG_ERR, "%s", err);
		goto fail;
	}
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		srv_log(LOG_ERR, "signalfd: %s", strerror(errno));
		goto fail;
	}
	srv_log(LOG_INFO, "ready: %zu export%s, %u worker%s", srv.nexports,
	        srv.nexports == 1 ? "" : "s", srv.nworkers, srv.nworkers == 1 ? "" : "s");
	rc = srv_listen_run(lis, sfd);
	if (rc)
		srv_log(LOG_ERR, "accept loop: %s", strerror(-rc));
	srv_log(LOG_INFO, "shutting down: draining requests in flight");
	srv_server_stop(&srv);
	srv_listen_close(lis);
	srv_server_free(&srv);
	close(sfd);
	if (cli.pidfile)
		unlink(cli.pidfile);
	srv_log(LOG_INFO, "stopped");
	srv_config_free(&cfg);
	srv_cli_free(&cli);
	return rc ? 1 : 0;

fail:
	srv_server_stop(&srv);
	srv_listen_close(lis);
	srv_server_free(&srv);
	if (sfd >= 0)
		close(sfd);
	if (cli.pidfile && !cli.foreground)
		unlink(cli.pidfile);
fail_cfg:
	srv_config_free(&cfg);
	srv_cli_free(&cli);
	return 1;
}

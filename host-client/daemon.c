/* Process plumbing: daemonizing with a readiness pipe (the starting process
 * exits only once the daemon is ready, with its status), the pidfile, and
 * the stop flag set by SIGTERM/SIGINT. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "internal.h"

int npc_stop_flag;

static void on_signal(int sig)
{
	npc_flag_raise(&npc_stop_flag, sig);
}

void npc_signals_init(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int daemon_fork(int *notify_fd, int *parent_exit)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(p[0]);
		close(p[1]);
		return e;
	}
	if (pid > 0) {
		int st = 0;
		close(p[1]);
		ssize_t n;
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		close(p[0]);
		if (n == 1) {
			*parent_exit = NPC_EXIT_OK;
			return 1;
		}
		/* The daemon failed before it was ready; it said why on stderr. */
		waitpid(pid, &st, 0);
		*parent_exit = WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : NPC_EXIT_FAIL;
		return 1;
	}
	close(p[0]);
	setsid();
	*notify_fd = p[1];
	return 0;
}

bool npc_daemon_start(bool nofork, int *notify_fd, int *parent_exit)
{
	int r;

	if (nofork)
		return false;
	r = daemon_fork(notify_fd, parent_exit);
	if (r < 0) {
		npc_log(LOG_ERR, "fork: %s", strerror(-r));
		*parent_exit = NPC_EXIT_FAIL;
		return true;
	}
	return r == 1;
}

void npc_daemon_ready(int notify_fd)
{
	int null;

	if (notify_fd < 0)
		return;
	npc_log_to_syslog();
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		close(null);
	}
	/* If the starter is gone there is nobody to tell: ignore the result. */
	ssize_t n = write(notify_fd, "R", 1);
	(void)n;
	close(notify_fd);
}

int npc_pidfile_write(const char *path, char *err, size_t errlen)
{
	char buf[32];
	int fd, n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = -errno;
		snprintf(err, errlen, "pidfile %s: %s", path, strerror(errno));
		return e;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		int e = -errno;
		snprintf(err, errlen, "pidfile %s: %s", path, strerror(errno));
		close(fd);
		return e;
	}
	close(fd);
	return 0;
}

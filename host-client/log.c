/* Logging: to stderr until the client daemonizes, then to syslog. */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "internal.h"

static bool use_syslog;
static int max_prio = LOG_INFO;

void npc_log_to_syslog(void)
{
	openlog("nbd-pcie-client", LOG_PID, LOG_DAEMON);
	use_syslog = true;
}

void npc_log_set_level(int prio)
{
	max_prio = prio;
}

void npc_vlog(int prio, const char *fmt, va_list ap)
{
	if (prio > max_prio)
		return;
	if (use_syslog) {
		vsyslog(prio, fmt, ap);
		return;
	}
	fputs("nbd-pcie-client: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void npc_log(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	npc_vlog(prio, fmt, ap);
	va_end(ap);
}

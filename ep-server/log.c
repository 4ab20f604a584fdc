/* Logging: one line per event, to stderr (foreground) or syslog (daemon).
 * Tests install a sink to capture messages. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <pthread.h>

#include "internal.h"

static bool use_syslog;
static int max_prio = LOG_INFO;
static srv_log_sink_fn sink;
static void *sink_ctx;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void srv_log_to_syslog(bool on)
{
	if (on && !use_syslog)
		openlog("nbd-pcie-server", LOG_PID, LOG_DAEMON);
	use_syslog = on;
}

void srv_log_set_level(int prio)
{
	max_prio = prio;
}

void srv_log_set_sink(srv_log_sink_fn fn, void *ctx)
{
	pthread_mutex_lock(&log_lock);
	sink = fn;
	sink_ctx = ctx;
	pthread_mutex_unlock(&log_lock);
}

static const char *prio_name(int prio)
{
	switch (prio) {
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_NOTICE: return "notice";
	case LOG_INFO: return "info";
	case LOG_DEBUG: return "debug";
	default: return "log";
	}
}

void srv_log(int prio, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (prio > max_prio)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&log_lock);
	if (sink)
		sink(prio, msg, sink_ctx);
	else if (use_syslog)
		syslog(prio, "%s", msg);
	else
		fprintf(stderr, "nbd-pcie-server: %s: %s\n", prio_name(prio), msg);
	pthread_mutex_unlock(&log_lock);
}

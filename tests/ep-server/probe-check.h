/* The check of srv-probe and srv-link-probe: a failed check prints
 * "FAIL: ..." and ends the probe with exit status 1 (it.sh reads both). */
#ifndef TESTS_EP_SERVER_PROBE_CHECK_H
#define TESTS_EP_SERVER_PROBE_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

#define CHECK(cond, ...) do { if (!(cond)) fail(__VA_ARGS__); } while (0)

#endif

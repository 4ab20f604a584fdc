/* Unit tests of ep-server/cli.c: nbd-server's command-line forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <glib.h>

#include "internal.h"

static int parse(struct srv_cli *cli, char *err, size_t errlen, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	const char *a;

	argv[argc++] = (char *)"nbd-pcie-server";
	va_start(ap, errlen);
	while ((a = va_arg(ap, const char *)))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	return srv_cli_parse(argc, argv, cli, err, errlen);
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("'%s' does not contain '%s'", hay, needle);
}

static void cli_config_form(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	assert_int_equal(parse(&cli, err, sizeof(err), "-C", "/etc/nbd.conf", "-d", "-p",
	                       "/run/x.pid", "-M", "5", "--pcie", "shm:/dev/shm/a", "--pcie",
	                       "shm:/dev/shm/b", NULL), 0);
	assert_string_equal(cli.config_file, "/etc/nbd.conf");
	assert_true(cli.foreground);
	assert_string_equal(cli.pidfile, "/run/x.pid");
	assert_int_equal(cli.max_conn, 5);
	assert_string_equal(cli.pcie[0], "shm:/dev/shm/a");
	assert_string_equal(cli.pcie[1], "shm:/dev/shm/b");
	assert_null(cli.pcie[2]);
	srv_cli_free(&cli);
}

static void cli_short_form_port_file_size_flags(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	struct srv_config c;
	assert_int_equal(parse(&cli, err, sizeof(err), "127.0.0.1@4000", "/tmp/f", "1M", "-r",
	                       NULL), 0);
	assert_string_equal(cli.addr, "127.0.0.1");
	assert_string_equal(cli.port, "4000");
	assert_string_equal(cli.file, "/tmp/f");
	assert_string_equal(cli.size, "1M");
	assert_true(cli.readonly);
	assert_int_equal(srv_cli_to_config(&cli, &c, err, sizeof(err)), 0);
	assert_true(c.tcp);
	assert_string_equal(c.port, "4000");
	assert_string_equal(c.listenaddr, "127.0.0.1");
	assert_int_equal(c.nexports, 1);
	assert_string_equal(c.exports[0].name, "default");
	assert_string_equal(c.exports[0].path, "/tmp/f");
	assert_true(c.exports[0].filesize == 1u << 20);
	assert_true(c.exports[0].readonly);
	assert_false(c.exports[0].copyonwrite);
	srv_config_free(&c);
	srv_cli_free(&cli);
}

static void cli_short_form_port_only_without_address(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	assert_int_equal(parse(&cli, err, sizeof(err), "-c", "4000", "/tmp/f", NULL), 0);
	assert_null(cli.addr);
	assert_string_equal(cli.port, "4000");
	assert_null(cli.size);
	assert_true(cli.cow);
	srv_cli_free(&cli);
}

static void cli_pcie_file_form_has_no_tcp(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	struct srv_config c;
	assert_int_equal(parse(&cli, err, sizeof(err), "-d", "--pcie", "shm:/dev/shm/x",
	                       "-N", "disk", "/tmp/f", NULL), 0);
	assert_null(cli.port);
	assert_string_equal(cli.file, "/tmp/f");
	assert_int_equal(srv_cli_to_config(&cli, &c, err, sizeof(err)), 0);
	assert_false(c.tcp);
	assert_string_equal(c.pcie[0], "shm:/dev/shm/x");
	assert_string_equal(c.exports[0].name, "disk");
	/* command-line exports advertise flush and FUA */
	assert_true(c.exports[0].flush && c.exports[0].fua);
	srv_config_free(&c);
	srv_cli_free(&cli);
}

static void cli_unixsock_file_size_form(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	struct srv_config c;
	assert_int_equal(parse(&cli, err, sizeof(err), "-u", "/tmp/s.sock", "/tmp/f", "4k",
	                       NULL), 0);
	assert_string_equal(cli.file, "/tmp/f");
	assert_string_equal(cli.size, "4k");
	assert_int_equal(srv_cli_to_config(&cli, &c, err, sizeof(err)), 0);
	assert_false(c.tcp);
	assert_string_equal(c.unixsock, "/tmp/s.sock");
	assert_true(c.exports[0].filesize == 4096);
	srv_config_free(&c);
	srv_cli_free(&cli);
}

static void cli_file_alone_needs_a_listener(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	assert_int_equal(parse(&cli, err, sizeof(err), "/tmp/f", NULL), -EINVAL);
	assert_contains(err, "'/tmp/f': a FILE without [IP@]PORT needs --pcie LINK or -u SOCKET");
	srv_cli_free(&cli);
}

static void cli_nothing_to_serve_is_error(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	assert_int_equal(parse(&cli, err, sizeof(err), "-d", NULL), -EINVAL);
	assert_contains(err, "nothing to serve");
	srv_cli_free(&cli);
}

static void cli_config_and_file_conflict(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	assert_int_equal(parse(&cli, err, sizeof(err), "-C", "/c", "4000", "/f", NULL), -EINVAL);
	assert_contains(err, "cannot be combined with -C /c");
	srv_cli_free(&cli);
}

static void cli_bad_port_is_error(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	assert_int_equal(parse(&cli, err, sizeof(err), "99999", "/f", "1M", NULL), -EINVAL);
	assert_contains(err, "'99999': not a [IP@]PORT (port 0 to 65535)");
	srv_cli_free(&cli);
}

static void cli_bad_size_is_error(void **state)
{
	struct srv_cli cli;
	struct srv_config c;
	char err[256] = "";
	assert_int_equal(parse(&cli, err, sizeof(err), "4000", "/f", "12X", NULL), 0);
	assert_int_equal(srv_cli_to_config(&cli, &c, err, sizeof(err)), -EINVAL);
	assert_contains(err, "SIZE '12X': not a size");
	srv_config_free(&c);
	srv_cli_free(&cli);
}

static void cli_bad_max_connections_is_error(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	assert_int_equal(parse(&cli, err, sizeof(err), "-M", "lots", "4000", "/f", NULL), -EINVAL);
	assert_contains(err, "-M 'lots': not a number of connections");
	srv_cli_free(&cli);
}

static void cli_unknown_option_is_error(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	assert_int_equal(parse(&cli, err, sizeof(err), "--frobnicate", "4000", "/f", NULL),
	                 -EINVAL);
	assert_contains(err, "unknown option '--frobnicate'");
	srv_cli_free(&cli);
}

static void cli_missing_option_value_is_error(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	assert_int_equal(parse(&cli, err, sizeof(err), "4000", "/f", "-C", NULL), -EINVAL);
	assert_contains(err, "option -C needs a value");
	srv_cli_free(&cli);
}

static void cli_too_many_arguments_is_error(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	assert_int_equal(parse(&cli, err, sizeof(err), "4000", "/f", "1M", "extra", NULL),
	                 -EINVAL);
	assert_contains(err, "too many arguments: 'extra'");
	srv_cli_free(&cli);
}

static void cli_help_and_version_need_nothing_else(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	assert_int_equal(parse(&cli, err, sizeof(err), "-h", NULL), 0);
	assert_true(cli.help);
	srv_cli_free(&cli);
	assert_int_equal(parse(&cli, err, sizeof(err), "-V", NULL), 0);
	assert_true(cli.version);
	srv_cli_free(&cli);
}

static void cli_threads_option_bounds(void **state)
{
	struct srv_cli cli;
	char err[256] = "";
	assert_int_equal(parse(&cli, err, sizeof(err), "--threads", "65", "4000", "/f", NULL),
	                 -EINVAL);
	assert_contains(err, "--threads '65': not a thread count (1 to 64)");
	srv_cli_free(&cli);
}

static void cli_max_connections_overrides_config(void **state)
{
	struct srv_cli cli;
	struct srv_config c;
	char err[256] = "", dir[64], path[128];
	snprintf(dir, sizeof(dir), "/tmp/test-srv-cli-%d-XXXXXX", (int)getpid());
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/c.conf", dir);
	assert_true(g_file_set_contents(path, "[generic]\nmaxconnections = 3\nport = 0\n"
	                                "[d]\nexportname = /x\n", -1, NULL));
	assert_int_equal(parse(&cli, err, sizeof(err), "-C", path, "-M", "9", NULL), 0);
	assert_int_equal(srv_cli_to_config(&cli, &c, err, sizeof(err)), 0);
	assert_int_equal(c.maxconnections, 9);
	assert_true(c.tcp);
	assert_string_equal(c.port, "0");
	srv_config_free(&c);
	srv_cli_free(&cli);
	unlink(path);
	rmdir(dir);
}

static void cli_usage_states_memory_bound(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	srv_cli_usage(m);
	fclose(m);
	assert_contains(buf, "--pcie LINK");
	assert_contains(buf, "Memory per socket connection: at most 64 MiB");
	assert_contains(buf, "Requests of up to 64 MiB");
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cli_config_form),
		cmocka_unit_test(cli_short_form_port_file_size_flags),
		cmocka_unit_test(cli_short_form_port_only_without_address),
		cmocka_unit_test(cli_pcie_file_form_has_no_tcp),
		cmocka_unit_test(cli_unixsock_file_size_form),
		cmocka_unit_test(cli_file_alone_needs_a_listener),
		cmocka_unit_test(cli_nothing_to_serve_is_error),
		cmocka_unit_test(cli_config_and_file_conflict),
		cmocka_unit_test(cli_bad_port_is_error),
		cmocka_unit_test(cli_bad_size_is_error),
		cmocka_unit_test(cli_bad_max_connections_is_error),
		cmocka_unit_test(cli_unknown_option_is_error),
		cmocka_unit_test(cli_missing_option_value_is_error),
		cmocka_unit_test(cli_too_many_arguments_is_error),
		cmocka_unit_test(cli_help_and_version_need_nothing_else),
		cmocka_unit_test(cli_threads_option_bounds),
		cmocka_unit_test(cli_max_connections_overrides_config),
		cmocka_unit_test(cli_usage_states_memory_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

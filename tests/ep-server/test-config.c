/* Unit tests of ep-server/config.c: nbd-server's config format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <cmocka.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "internal.h"

struct fx {
	char dir[128];
	char path[256];
	GString *log;
	struct srv_config cfg;
	char err[512];
};

static void sink(int prio, const char *msg, void *ctx)
{
	GString *s = ctx;
	g_string_append_printf(s, "%d:%s\n", prio, msg);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-srv-config-%d-XXXXXX", (int)getpid());
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/nbd.conf", f->dir);
	f->log = g_string_new(NULL);
	srv_log_set_sink(sink, f->log);
	srv_config_init(&f->cfg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[300];
	srv_log_set_sink(NULL, NULL);
	srv_config_free(&f->cfg);
	g_string_free(f->log, TRUE);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	assert_true(g_file_set_contents(path, text, -1, NULL));
}

static int load(struct fx *f, const char *text)
{
	write_file(f->path, text);
	return srv_config_load(&f->cfg, f->path, f->err, sizeof(f->err));
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("'%s' does not contain '%s'", hay, needle);
}

static void config_reads_every_implemented_key(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f,
		"[generic]\n"
		"listenaddr = 127.0.0.1\nport = 12345\nunixsock = /tmp/x.sock\nduallisten = true\n"
		"allowlist = true\nuser = nobody\ngroup = nogroup\nmax_threads = 3\n"
		"maxconnections = 7\npcie = shm:/dev/shm/a;shm:/dev/shm/b\npcie_channels = 8\n"
		"pcie_ring_entries = 64\npcie_data_per_channel = 8M\n"
		"[disk]\nexportname = /tmp/disk.img\nreadonly = false\nfilesize = 1G\nflush = true\n"
		"fua = true\ntrim = true\nrotational = true\nsync = true\ncopyonwrite = true\n"
		"sparse_cow = true\ncowdir = /tmp\nmaxconnections = 2\nauthfile = /tmp/auth\n"), 0);
	struct srv_config *c = &f->cfg;
	assert_string_equal(c->listenaddr, "127.0.0.1");
	assert_string_equal(c->port, "12345");
	assert_string_equal(c->unixsock, "/tmp/x.sock");
	assert_true(c->duallisten);
	assert_true(c->allowlist);
	assert_string_equal(c->user, "nobody");
	assert_string_equal(c->group, "nogroup");
	assert_int_equal(c->max_threads, 3);
	assert_int_equal(c->maxconnections, 7);
	assert_string_equal(c->pcie[0], "shm:/dev/shm/a");
	assert_string_equal(c->pcie[1], "shm:/dev/shm/b");
	assert_null(c->pcie[2]);
	assert_int_equal(c->pcie_channels, 8);
	assert_int_equal(c->pcie_ring_entries, 64);
	assert_int_equal(c->pcie_data_per_channel, 8u << 20);
	assert_int_equal(c->nexports, 1);
	struct srv_export_cfg *e = &c->exports[0];
	assert_string_equal(e->name, "disk");
	assert_string_equal(e->path, "/tmp/disk.img");
	assert_false(e->readonly);
	assert_true(e->filesize == (1ull << 30));
	assert_true(e->flush && e->fua && e->trim && e->rotational && e->sync);
	assert_true(e->copyonwrite && e->sparse_cow);
	assert_string_equal(e->cowdir, "/tmp");
	assert_int_equal(e->maxconnections, 2);
	assert_string_equal(e->authfile, "/tmp/auth");
	assert_string_equal(f->log->str, "");   /* no warnings for a clean file */
}

static void config_booleans_default_off_like_nbd_server(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\n[d]\nexportname = /tmp/d\n"), 0);
	struct srv_export_cfg *e = &f->cfg.exports[0];
	assert_false(e->readonly || e->flush || e->fua || e->trim || e->rotational || e->sync ||
	             e->copyonwrite);
	assert_int_equal(f->cfg.max_threads, SRV_DEFAULT_THREADS);
}

static void config_missing_exportname_is_error(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\n[disk]\nreadonly = true\n"), -EINVAL);
	assert_contains(f->err, f->path);
	assert_contains(f->err, "[disk] exportname: missing");
}

static void config_bad_boolean_names_file_group_key_value(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[disk]\nexportname = /x\nreadonly = maybe\n"), -EINVAL);
	assert_contains(f->err, f->path);
	assert_contains(f->err, "[disk] readonly = 'maybe': not a boolean");
}

static void config_bad_port_is_error(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\nport = 70000\n[d]\nexportname = /x\n"), -EINVAL);
	assert_contains(f->err, "[generic] port = '70000': not a TCP port (0 to 65535)");
}

static void config_max_threads_above_limit_is_error(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\nmax_threads = 65\n[d]\nexportname = /x\n"), -ERANGE);
	assert_contains(f->err, "[generic] max_threads = '65': above the limit 64");
}

static void config_max_threads_zero_is_error(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\nmax_threads = 0\n[d]\nexportname = /x\n"), -EINVAL);
	assert_contains(f->err, "max_threads = '0': must be 1 to 64");
}

static void config_bad_filesize_is_error(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[d]\nexportname = /x\nfilesize = 12Q\n"), -EINVAL);
	assert_contains(f->err, "[d] filesize = '12Q': not a size");
}

static void config_negative_maxconnections_is_error(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[d]\nexportname = /x\nmaxconnections = -1\n"), -EINVAL);
	assert_contains(f->err, "[d] maxconnections = '-1': not a non-negative integer");
}

static void config_ring_entries_must_be_power_of_two(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\npcie_ring_entries = 100\n[d]\nexportname = /x\n"),
	                 -EINVAL);
	assert_contains(f->err, "pcie_ring_entries = '100': not a power of two");
}

static void config_readonly_with_copyonwrite_conflicts(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[d]\nexportname = /x\nreadonly = true\ncopyonwrite = true\n"),
	                 -EINVAL);
	assert_contains(f->err, "[d] copyonwrite = true conflicts with readonly = true");
}

static void config_unimplemented_key_warns_with_file_group_key(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\ncertfile = /c.pem\n"
	                         "[d]\nexportname = /x\nmultifile = true\ntreefiles = false\n"
	                         "virtstyle = ipliteral\n"), 0);
	char line[512];
	snprintf(line, sizeof(line), "%d:config %s: [d] multifile: nbd-server option not "
	         "implemented by nbd-pcie-server, ignored", LOG_WARNING, f->path);
	assert_contains(f->log->str, line);
	snprintf(line, sizeof(line), "config %s: [d] virtstyle: nbd-server option", f->path);
	assert_contains(f->log->str, line);
	snprintf(line, sizeof(line), "config %s: [generic] certfile: nbd-server option", f->path);
	assert_contains(f->log->str, line);
	/* a disabled feature makes no difference: no warning */
	assert_null(strstr(f->log->str, "treefiles"));
}

static void config_unknown_key_warns(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[d]\nexportname = /x\nreadonyl = true\n"), 0);
	char line[512];
	snprintf(line, sizeof(line), "config %s: [d] readonyl: unknown key, ignored", f->path);
	assert_contains(f->log->str, line);
}

static void config_sparse_cow_without_copyonwrite_warns(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[d]\nexportname = /x\nsparse_cow = true\ncowdir = /tmp\n"), 0);
	assert_contains(f->log->str, "[d] sparse_cow: has no effect without copyonwrite = true");
	assert_contains(f->log->str, "[d] cowdir: has no effect without copyonwrite = true");
}

static void config_includedir_loads_conf_files_in_order(void **state)
{
	struct fx *f = *state;
	char inc[256], p[300];
	snprintf(inc, sizeof(inc), "%s/conf.d", f->dir);
	assert_int_equal(g_mkdir(inc, 0755), 0);
	snprintf(p, sizeof(p), "%s/b.conf", inc);
	write_file(p, "[second]\nexportname = /b\n");
	snprintf(p, sizeof(p), "%s/a.conf", inc);
	write_file(p, "[first]\nexportname = /a\nreadonly = true\n");
	snprintf(p, sizeof(p), "%s/c.txt", inc);
	write_file(p, "[ignored]\nexportname = /c\n");
	char text[400];
	snprintf(text, sizeof(text), "[generic]\nincludedir = %s\n[main]\nexportname = /m\n", inc);
	assert_int_equal(load(f, text), 0);
	assert_int_equal(f->cfg.nexports, 3);
	assert_string_equal(f->cfg.exports[0].name, "main");
	assert_string_equal(f->cfg.exports[1].name, "first");
	assert_true(f->cfg.exports[1].readonly);
	assert_string_equal(f->cfg.exports[2].name, "second");
	assert_string_equal(f->cfg.exports[2].path, "/b");
}

static void config_duplicate_export_across_files_is_error(void **state)
{
	struct fx *f = *state;
	char inc[256], p[300], text[400];
	snprintf(inc, sizeof(inc), "%s/conf.d", f->dir);
	assert_int_equal(g_mkdir(inc, 0755), 0);
	snprintf(p, sizeof(p), "%s/a.conf", inc);
	write_file(p, "[main]\nexportname = /b\n");
	snprintf(text, sizeof(text), "[generic]\nincludedir = %s\n[main]\nexportname = /m\n", inc);
	assert_int_equal(load(f, text), -EEXIST);
	assert_contains(f->err, p);
	assert_contains(f->err, "[main]: export already defined in");
}

static void config_generic_in_included_file_is_error(void **state)
{
	struct fx *f = *state;
	char inc[256], p[300], text[400];
	snprintf(inc, sizeof(inc), "%s/conf.d", f->dir);
	assert_int_equal(g_mkdir(inc, 0755), 0);
	snprintf(p, sizeof(p), "%s/a.conf", inc);
	write_file(p, "[generic]\nport = 1\n");
	snprintf(text, sizeof(text), "[generic]\nincludedir = %s\n[main]\nexportname = /m\n", inc);
	assert_int_equal(load(f, text), -EINVAL);
	assert_contains(f->err, "[generic]: only allowed in the main config file");
}

static void config_missing_includedir_is_error(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\nincludedir = /nonexistent-dir-xyz\n"), -ENOENT);
	assert_contains(f->err, "[generic] includedir = '/nonexistent-dir-xyz'");
}

static void config_syntax_error_names_file(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic\nport = 1\n"), -EINVAL);
	assert_contains(f->err, f->path);
}

static void config_missing_file_is_enoent(void **state)
{
	struct fx *f = *state;
	assert_int_equal(srv_config_load(&f->cfg, "/nonexistent/nbd.conf", f->err,
	                                 sizeof(f->err)), -ENOENT);
	assert_contains(f->err, "config /nonexistent/nbd.conf:");
}

static void config_default_listens_on_tcp_10809(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\n[d]\nexportname = /x\n"), 0);
	assert_int_equal(srv_config_finish(&f->cfg, f->err, sizeof(f->err)), 0);
	assert_true(f->cfg.tcp);
	assert_string_equal(f->cfg.port, "10809");
}

static void config_unixsock_replaces_tcp_without_duallisten(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\nunixsock = /tmp/s\n[d]\nexportname = /x\n"), 0);
	assert_int_equal(srv_config_finish(&f->cfg, f->err, sizeof(f->err)), 0);
	assert_false(f->cfg.tcp);
}

static void config_duallisten_keeps_tcp(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\nunixsock = /tmp/s\nduallisten = true\nport = 99\n"
	                         "[d]\nexportname = /x\n"), 0);
	assert_int_equal(srv_config_finish(&f->cfg, f->err, sizeof(f->err)), 0);
	assert_true(f->cfg.tcp);
	assert_string_equal(f->cfg.port, "99");
}

static void config_pcie_only_has_no_tcp_unless_port_given(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\npcie = shm:/dev/shm/x\n[d]\nexportname = /x\n"), 0);
	assert_int_equal(srv_config_finish(&f->cfg, f->err, sizeof(f->err)), 0);
	assert_false(f->cfg.tcp);
	srv_config_free(&f->cfg);
	srv_config_init(&f->cfg);
	assert_int_equal(load(f, "[generic]\npcie = shm:/dev/shm/x\nport = 4000\n"
	                         "[d]\nexportname = /x\n"), 0);
	assert_int_equal(srv_config_finish(&f->cfg, f->err, sizeof(f->err)), 0);
	assert_true(f->cfg.tcp);
}

static void config_duplicate_pcie_link_is_error(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\npcie = shm:/dev/shm/x;shm:/dev/shm/x\n"
	                         "[d]\nexportname = /x\n"), 0);
	assert_int_equal(srv_config_finish(&f->cfg, f->err, sizeof(f->err)), -EINVAL);
	assert_contains(f->err, "pcie link 'shm:/dev/shm/x' given twice");
}

static void config_without_exports_is_error(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load(f, "[generic]\nport = 4000\n"), 0);
	assert_int_equal(srv_config_finish(&f->cfg, f->err, sizeof(f->err)), -EINVAL);
	assert_contains(f->err, "no exports defined");
}

static void config_parse_size_suffixes(void **state)
{
	uint64_t v;
	assert_int_equal(srv_parse_size("512", &v), 0);
	assert_true(v == 512);
	assert_int_equal(srv_parse_size("4k", &v), 0);
	assert_true(v == 4096);
	assert_int_equal(srv_parse_size("3M", &v), 0);
	assert_true(v == 3u << 20);
	assert_int_equal(srv_parse_size("2T", &v), 0);
	assert_true(v == 2ull << 40);
	assert_int_equal(srv_parse_size("-1", &v), -EINVAL);
	assert_int_equal(srv_parse_size("1KB", &v), -EINVAL);
	assert_int_equal(srv_parse_size("", &v), -EINVAL);
	assert_int_equal(srv_parse_size("99999999999999T", &v), -ERANGE);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(config_reads_every_implemented_key),
		T(config_booleans_default_off_like_nbd_server),
		T(config_missing_exportname_is_error),
		T(config_bad_boolean_names_file_group_key_value),
		T(config_bad_port_is_error),
		T(config_max_threads_above_limit_is_error),
		T(config_max_threads_zero_is_error),
		T(config_bad_filesize_is_error),
		T(config_negative_maxconnections_is_error),
		T(config_ring_entries_must_be_power_of_two),
		T(config_readonly_with_copyonwrite_conflicts),
		T(config_unimplemented_key_warns_with_file_group_key),
		T(config_unknown_key_warns),
		T(config_sparse_cow_without_copyonwrite_warns),
		T(config_includedir_loads_conf_files_in_order),
		T(config_duplicate_export_across_files_is_error),
		T(config_generic_in_included_file_is_error),
		T(config_missing_includedir_is_error),
		T(config_syntax_error_names_file),
		T(config_missing_file_is_enoent),
		T(config_default_listens_on_tcp_10809),
		T(config_unixsock_replaces_tcp_without_duallisten),
		T(config_duallisten_keeps_tcp),
		T(config_pcie_only_has_no_tcp_unless_port_given),
		T(config_duplicate_pcie_link_is_error),
		T(config_without_exports_is_error),
		T(config_parse_size_suffixes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

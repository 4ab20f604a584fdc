/* nbd-pcie-client command line: nbd-client 3.24 forms, -pcie, and every
 * error message naming the value and what to do. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "internal.h"

static char err[512];
static struct npc_opts o;

/* Parses a NULL-terminated list of arguments after argv[0]. */
static int parse(const char *first, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;

	argv[argc++] = (char *)"nbd-pcie-client";
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	err[0] = '\0';
	return npc_cli_parse(argc, argv, &o, err, sizeof(err));
}

static void attach_with_long_options(void **s)
{
	assert_int_equal(parse("-pcie", "shm:/dev/shm/x", "-name", "disk1", "-block-size", "4096",
			       "-timeout", "30", "-connections", "4", "-persist", "-readonly",
			       "-nofork", "-dead-timeout", "60", "-identifier", "id7",
			       "/dev/nbd3", NULL), 0);
	assert_int_equal(o.mode, NPC_MODE_ATTACH);
	assert_string_equal(o.link, "shm:/dev/shm/x");
	assert_string_equal(o.name, "disk1");
	assert_int_equal(o.block_size, 4096);
	assert_int_equal(o.timeout, 30);
	assert_int_equal(o.connections, 4);
	assert_true(o.persist && o.readonly && o.nofork);
	assert_int_equal(o.dead_timeout, 60);
	assert_string_equal(o.identifier, "id7");
	assert_int_equal(o.dev_index, 3);
}

static void attach_with_short_options(void **s)
{
	assert_int_equal(parse("-N", "e", "-b", "512", "-t", "5", "-C", "2", "-p", "-R", "-n", "-g",
			       "-B", "1048576", "-pcie", "pci:0000:00:02.0", "nbd0", NULL), 0);
	assert_string_equal(o.name, "e");
	assert_int_equal(o.block_size, 512);
	assert_int_equal(o.size, 1048576);
	assert_int_equal(o.connections, 2);
	assert_true(o.persist && o.readonly && o.nofork && o.no_optgo);
	assert_string_equal(o.link, "pci:0000:00:02.0");
	assert_int_equal(o.dev_index, 0);
}

static void defaults_are_default_export_one_connection(void **s)
{
	assert_int_equal(parse("-pcie", "shm:/dev/shm/x", "/dev/nbd1", NULL), 0);
	assert_string_equal(o.name, "");
	assert_int_equal(o.connections, 1);
	assert_int_equal(o.block_size, 0);
	assert_int_equal(o.size, 0);
	assert_false(o.persist || o.readonly || o.nofork || o.no_optgo);
}

static void disconnect_takes_device(void **s)
{
	assert_int_equal(parse("-d", "/dev/nbd12", NULL), 0);
	assert_int_equal(o.mode, NPC_MODE_DISCONNECT);
	assert_int_equal(o.dev_index, 12);
	assert_int_equal(parse("-disconnect", "nbd2", NULL), 0);
	assert_int_equal(o.dev_index, 2);
}

static void check_takes_device(void **s)
{
	assert_int_equal(parse("-c", "/dev/nbd0", NULL), 0);
	assert_int_equal(o.mode, NPC_MODE_CHECK);
	assert_int_equal(o.dev_index, 0);
}

static void list_needs_link(void **s)
{
	assert_int_equal(parse("-l", NULL), -EINVAL);
	assert_non_null(strstr(err, "-l needs -pcie LINK"));
	assert_int_equal(parse("-l", "-pcie", "shm:/dev/shm/a", NULL), 0);
	assert_int_equal(o.mode, NPC_MODE_LIST);
}

static void unix_mode_takes_path(void **s)
{
	assert_int_equal(parse("-pcie", "shm:/dev/shm/a", "-unix", "/tmp/s.sock", "-C", "4", NULL), 0);
	assert_int_equal(o.mode, NPC_MODE_LOCAL);
	assert_string_equal(o.unix_path, "/tmp/s.sock");
	assert_int_equal(o.connections, 4);
}

static void unix_mode_refuses_persist(void **s)
{
	assert_int_equal(parse("-pcie", "shm:/dev/shm/a", "-unix", "/tmp/s", "-p", NULL), -EINVAL);
	assert_non_null(strstr(err, "-p: persist"));
}

static void unix_path_too_long_names_limit(void **s)
{
	char path[200];

	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(parse("-pcie", "shm:/x", "-unix", path, NULL), -EINVAL);
	assert_non_null(strstr(err, "1 to 107 bytes"));
}

static void help_and_version(void **s)
{
	assert_int_equal(parse("-h", NULL), 0);
	assert_int_equal(o.mode, NPC_MODE_HELP);
	assert_int_equal(parse("-version", NULL), 0);
	assert_int_equal(o.mode, NPC_MODE_VERSION);
}

static void bad_block_size_names_value_and_allowed(void **s)
{
	assert_int_equal(parse("-pcie", "x", "-b", "1000", "nbd0", NULL), -EINVAL);
	assert_string_equal(err, "-b 1000: block size must be 512, 1024, 2048 or 4096");
	assert_int_equal(parse("-pcie", "x", "-b", "8192", "nbd0", NULL), -EINVAL);
	assert_non_null(strstr(err, "-b 8192"));
	assert_int_equal(parse("-pcie", "x", "-b", "abc", "nbd0", NULL), -EINVAL);
	assert_non_null(strstr(err, "-b abc"));
}

static void size_not_multiple_of_block_size(void **s)
{
	assert_int_equal(parse("-pcie", "x", "-b", "4096", "-B", "5000", "nbd0", NULL), -EINVAL);
	assert_string_equal(err, "-B 5000: size must be a multiple of the block size 4096");
}

static void connections_out_of_range(void **s)
{
	assert_int_equal(parse("-pcie", "x", "-C", "0", "nbd0", NULL), -EINVAL);
	assert_string_equal(err, "-C 0: connections must be from 1 to 64");
	assert_int_equal(parse("-pcie", "x", "-C", "65", "nbd0", NULL), -EINVAL);
	assert_non_null(strstr(err, "-C 65"));
}

static void timeout_not_a_number(void **s)
{
	assert_int_equal(parse("-pcie", "x", "-t", "5s", "nbd0", NULL), -EINVAL);
	assert_non_null(strstr(err, "-t 5s: timeout must be a number of seconds"));
	assert_int_equal(parse("-pcie", "x", "-T", "-1", "nbd0", NULL), -EINVAL);
	assert_non_null(strstr(err, "-T -1: dead connection timeout"));
}

static void unknown_option_is_named(void **s)
{
	assert_int_equal(parse("-frobnicate", NULL), -EINVAL);
	assert_non_null(strstr(err, "unknown option"));
	assert_non_null(strstr(err, "see nbd-pcie-client -h"));
	assert_int_equal(parse("-pcie", "x", "--zzz", "nbd0", NULL), -EINVAL);
	assert_non_null(strstr(err, "'--zzz'"));
}

static void missing_argument_is_named(void **s)
{
	assert_int_equal(parse("-pcie", "x", "nbd0", "-N", NULL), -EINVAL);
	assert_string_equal(err, "-N: missing argument; see nbd-pcie-client -h");
	assert_int_equal(parse("-pcie", NULL), -EINVAL);
	assert_string_equal(err, "-pcie: missing argument; see nbd-pcie-client -h");
}

static void missing_device(void **s)
{
	assert_int_equal(parse("-pcie", "shm:/dev/shm/x", NULL), -EINVAL);
	assert_non_null(strstr(err, "missing device"));
}

static void missing_link(void **s)
{
	assert_int_equal(parse("-N", "x", "/dev/nbd0", NULL), -EINVAL);
	assert_non_null(strstr(err, "missing -pcie LINK for /dev/nbd0"));
}

static void not_an_nbd_device(void **s)
{
	assert_int_equal(parse("-pcie", "x", "/dev/sda", NULL), -EINVAL);
	assert_string_equal(err, "'/dev/sda' is not an nbd device: expected /dev/nbdN or nbdN");
	assert_int_equal(parse("-d", "nbdx", NULL), -EINVAL);
	assert_string_equal(err, "-d 'nbdx' is not an nbd device: expected /dev/nbdN or nbdN");
}

static void extra_argument_refused(void **s)
{
	assert_int_equal(parse("-pcie", "x", "nbd0", "nbd1", NULL), -EINVAL);
	assert_string_equal(err, "unexpected argument 'nbd1'; see nbd-pcie-client -h");
}

static void conflicting_modes_refused(void **s)
{
	assert_int_equal(parse("-d", "nbd0", "-c", "nbd0", NULL), -EINVAL);
	assert_non_null(strstr(err, "-c cannot be combined with -d"));
}

static void tls_options_refused_with_reason(void **s)
{
	assert_int_equal(parse("-pcie", "x", "-certfile", "a.pem", "nbd0", NULL), -EINVAL);
	assert_non_null(strstr(err, "TLS is not supported"));
	assert_int_equal(parse("-pcie", "x", "-x", "nbd0", NULL), -EINVAL);
	assert_non_null(strstr(err, "TLS is not supported"));
}

static void ioctl_mode_refused_with_reason(void **s)
{
	assert_int_equal(parse("-pcie", "x", "-L", "nbd0", NULL), -EINVAL);
	assert_non_null(strstr(err, "netlink only"));
}

static void bare_device_means_nbdtab(void **s)
{
	assert_int_equal(parse("nbd5", NULL), 0);
	assert_int_equal(o.mode, NPC_MODE_NBDTAB);
	assert_int_equal(o.dev_index, 5);
}

static void long_export_name_refused(void **s)
{
	char *name = malloc(5000);

	memset(name, 'n', 4999);
	name[4999] = '\0';
	assert_int_equal(parse("-pcie", "x", "-N", name, "nbd0", NULL), -EINVAL);
	assert_non_null(strstr(err, "4999 bytes is longer than the NBD limit of 4096"));
	free(name);
}

static void device_index_forms(void **s)
{
	assert_int_equal(npc_cli_device_index("/dev/nbd0"), 0);
	assert_int_equal(npc_cli_device_index("nbd15"), 15);
	assert_int_equal(npc_cli_device_index("/dev/nbd"), -EINVAL);
	assert_int_equal(npc_cli_device_index("/dev/nbd1p1"), -EINVAL);
	assert_int_equal(npc_cli_device_index("/dev/nbd99999999999"), -EINVAL);
}

/* nbdtab: a temp file with one line per case. */
static const char *write_tab(const char *content)
{
	static char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/npc-nbdtab-%d", (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	return path;
}

static void nbdtab_line_fills_options(void **s)
{
	const char *p = write_tab("# comment\nnbd1 pcie other pcie=shm:/dev/shm/z\n"
				  "nbd2 pcie disk pcie=pci:0000:01:00.0,bs=4096,conns=2,persist,timeout=9\n");

	assert_int_equal(parse("nbd2", NULL), 0);
	assert_int_equal(npc_nbdtab_apply(p, &o, err, sizeof(err)), 0);
	assert_string_equal(o.link, "pci:0000:01:00.0");
	assert_string_equal(o.name, "disk");
	assert_int_equal(o.block_size, 4096);
	assert_int_equal(o.connections, 2);
	assert_int_equal(o.timeout, 9);
	assert_true(o.persist);
	npc_opts_release(&o);
	npc_opts_release(&o);   /* safe twice */
	unlink(p);
}

static void nbdtab_missing_line_says_what_to_add(void **s)
{
	const char *p = write_tab("nbd1 pcie other pcie=shm:/dev/shm/z\n");

	assert_int_equal(parse("nbd3", NULL), 0);
	assert_int_equal(npc_nbdtab_apply(p, &o, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no line for nbd3"));
	unlink(p);
}

static void nbdtab_without_pcie_refused(void **s)
{
	const char *p = write_tab("nbd1 host exp bs=512\n");

	assert_int_equal(parse("nbd1", NULL), 0);
	assert_int_equal(npc_nbdtab_apply(p, &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":1: line for nbd1 has no pcie=LINK option"));
	npc_opts_release(&o);
	unlink(p);
}

static void nbdtab_bad_value_names_line(void **s)
{
	const char *p = write_tab("\nnbd1 pcie exp pcie=shm:/x,bs=3000\n");

	assert_int_equal(parse("nbd1", NULL), 0);
	assert_int_equal(npc_nbdtab_apply(p, &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":2: bs=3000"));
	npc_opts_release(&o);
	unlink(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(attach_with_long_options),
		cmocka_unit_test(attach_with_short_options),
		cmocka_unit_test(defaults_are_default_export_one_connection),
		cmocka_unit_test(disconnect_takes_device),
		cmocka_unit_test(check_takes_device),
		cmocka_unit_test(list_needs_link),
		cmocka_unit_test(unix_mode_takes_path),
		cmocka_unit_test(unix_mode_refuses_persist),
		cmocka_unit_test(unix_path_too_long_names_limit),
		cmocka_unit_test(help_and_version),
		cmocka_unit_test(bad_block_size_names_value_and_allowed),
		cmocka_unit_test(size_not_multiple_of_block_size),
		cmocka_unit_test(connections_out_of_range),
		cmocka_unit_test(timeout_not_a_number),
		cmocka_unit_test(unknown_option_is_named),
		cmocka_unit_test(missing_argument_is_named),
		cmocka_unit_test(missing_device),
		cmocka_unit_test(missing_link),
		cmocka_unit_test(not_an_nbd_device),
		cmocka_unit_test(extra_argument_refused),
		cmocka_unit_test(conflicting_modes_refused),
		cmocka_unit_test(tls_options_refused_with_reason),
		cmocka_unit_test(ioctl_mode_refused_with_reason),
		cmocka_unit_test(bare_device_means_nbdtab),
		cmocka_unit_test(long_export_name_refused),
		cmocka_unit_test(device_index_forms),
		cmocka_unit_test(nbdtab_line_fills_options),
		cmocka_unit_test(nbdtab_missing_line_says_what_to_add),
		cmocka_unit_test(nbdtab_without_pcie_refused),
		cmocka_unit_test(nbdtab_bad_value_names_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

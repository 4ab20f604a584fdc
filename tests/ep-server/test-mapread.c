/* Unit tests of ep-server/mapread.c: direct reads from a memory-backed
 * export's mapping, which ranges qualify, and the SIGBUS guard for a file
 * that shrinks. */
#define _GNU_SOURCE   /* fallocate */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <linux/magic.h>
#include <unistd.h>
#include <cmocka.h>

#include "internal.h"

#define SIZE (1u << 20)

struct fx {
	char path[128];
	struct srv_export_cfg cfg;
	struct srv_export e;
	uint8_t *data;
};

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 31 + seed + (i >> 12));
}

/* An export on /dev/shm (tmpfs): the case direct reads are for. */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct statfs sf;
	char err[256];
	int fd;

	if (!f || statfs("/dev/shm", &sf) || sf.f_type != TMPFS_MAGIC)
		return -1;
	f->data = malloc(SIZE);
	if (!f->data)
		return -1;
	fill(f->data, SIZE, 5);
	snprintf(f->path, sizeof(f->path), "/dev/shm/test-srv-mapread-%d", (int)getpid());
	fd = open(f->path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0 || write(fd, f->data, SIZE) != (ssize_t)SIZE)
		return -1;
	close(fd);
	f->cfg.name = (char *)"mem";
	f->cfg.path = f->path;
	if (srv_export_open(&f->e, &f->cfg, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	srv_export_close(&f->e);
	assert_null(f->e.map);
	unlink(f->path);
	free(f->data);
	free(f);
	return 0;
}

struct rd { uint8_t *dst; uint32_t len; int ret; const char *truncate_to; struct fx *f; };

/* The guarded function: copies like the DMA engine, optionally after
 * shrinking the file itself (a truncation racing the copy). */
static int copy_fn(void *arg, const void *src)
{
	struct rd *r = arg;

	if (r->truncate_to)
		assert_int_equal(truncate(r->f->path, strtoll(r->truncate_to, NULL, 0)), 0);
	memcpy(r->dst, src, r->len);
	return r->ret;
}

static void reads_come_from_the_file(void **state)
{
	struct fx *f = *state;
	uint8_t *b = malloc(SIZE);
	struct rd r = { b, SIZE, 0, NULL, f };

	assert_non_null(b);
	assert_true(f->e.in_memory);
	assert_non_null(f->e.map);
	assert_int_equal(srv_map_read(&f->e, 0, SIZE, copy_fn, &r), 0);
	assert_memory_equal(b, f->data, SIZE);
	r.len = 4096;
	r.ret = -EAGAIN;   /* fn's own result comes back */
	assert_int_equal(srv_map_read(&f->e, SIZE - 4096, 4096, copy_fn, &r), -EAGAIN);
	assert_memory_equal(b, f->data + SIZE - 4096, 4096);
	/* outside the export */
	assert_int_equal(srv_map_read(&f->e, SIZE - 4095, 4096, copy_fn, &r), -EINVAL);
	assert_int_equal(srv_map_read(&f->e, UINT64_MAX - 10, 4096, copy_fn, &r), -EINVAL);
	free(b);
}

/* A file shorter than the range before the read: -EIO without reading
 * (also inside the last page, where the mapping would read zeroes). */
static void shrunk_file_reads_eio(void **state)
{
	struct fx *f = *state;
	uint8_t b[8192];
	struct rd r = { b, 4096, 0, NULL, f };

	assert_int_equal(truncate(f->path, SIZE / 2 + 100), 0);
	assert_int_equal(srv_map_read(&f->e, SIZE - 4096, 4096, copy_fn, &r), -EIO);
	assert_int_equal(srv_map_read(&f->e, SIZE / 2, 4096, copy_fn, &r), -EIO);
	r.len = 100;
	assert_int_equal(srv_map_read(&f->e, SIZE / 2, 100, copy_fn, &r), 0);
	assert_memory_equal(b, f->data + SIZE / 2, 100);
}

/* A truncation while the copy runs: the fault is caught, -EIO; the guard
 * works again afterwards (SIGBUS not left blocked), and a read within the
 * file still works. */
static void fault_during_read_is_eio(void **state)
{
	struct fx *f = *state;
	uint8_t *b = malloc(SIZE);
	struct rd r = { b, SIZE / 2, 0, "4096", f };

	assert_non_null(b);
	assert_int_equal(srv_map_guard_install(), 0);   /* cmocka sets its own around each test */
	assert_int_equal(srv_map_read(&f->e, SIZE / 4, SIZE / 2, copy_fn, &r), -EIO);
	assert_int_equal(truncate(f->path, SIZE), 0);   /* back, now zeroes past 4096 */
	r.truncate_to = "8192";
	assert_int_equal(srv_map_read(&f->e, 65536, 65536, copy_fn, &r), -EIO);
	r.truncate_to = NULL;
	r.len = 4096;
	assert_int_equal(srv_map_read(&f->e, 0, 4096, copy_fn, &r), 0);
	assert_memory_equal(b, f->data, 4096);
	free(b);
}

/* srv_map_covers: the whole range in memory and in the file; a hole (a
 * sparse file's, or one punched by TRIM) is not, and asking allocates
 * nothing. */
static void covers_only_pages_in_memory(void **state)
{
	struct fx *f = *state;
	struct stat st0, st1;
	int fd = open(f->path, O_RDWR);

	assert_true(fd >= 0);
	assert_true(srv_map_covers(&f->e, 0, SIZE));
	assert_true(srv_map_covers(&f->e, 100, 5000));
	assert_false(srv_map_covers(&f->e, SIZE - 4096, 8192));     /* beyond the export */
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 65536, 8192), 0);
	assert_int_equal(fstat(fd, &st0), 0);
	assert_false(srv_map_covers(&f->e, 0, 128 << 10));
	assert_false(srv_map_covers(&f->e, 65536 + 4096, 1));
	assert_true(srv_map_covers(&f->e, 0, 65536));
	assert_true(srv_map_covers(&f->e, 65536 + 8192, 65536));
	assert_int_equal(fstat(fd, &st1), 0);
	assert_int_equal(st1.st_blocks, st0.st_blocks);
	assert_int_equal(ftruncate(fd, SIZE / 2), 0);
	assert_false(srv_map_covers(&f->e, SIZE / 2, 4096));
	assert_false(srv_map_covers(&f->e, SIZE / 2 - 100, 101));
	assert_true(srv_map_covers(&f->e, SIZE / 2 - 100, 100));
	close(fd);
}

/* A fault outside a guarded read keeps SIGBUS's default action. */
static void unguarded_fault_still_kills(void **state)
{
	struct fx *f = *state;
	int st;
	pid_t pid;

	assert_int_equal(truncate(f->path, 4096), 0);
	assert_int_equal(srv_map_guard_install(), 0);   /* cmocka sets its own around each test */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit none = { 0, 0 };
		setrlimit(RLIMIT_CORE, &none);   /* no core file from the child */
		volatile uint8_t x = f->e.map[SIZE - 1];
		(void)x;
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGBUS);
}

/* No map: copy-on-write exports (reads go through the diff) and files
 * that are not in memory. */
static void no_map_for_cow_or_disk_files(void **state)
{
	struct fx *f = *state;
	struct srv_export_cfg cfg = f->cfg;
	struct srv_export e;
	char err[256], path[128];
	int fd;

	cfg.copyonwrite = true;
	assert_int_equal(srv_export_open(&e, &cfg, err, sizeof(err)), 0);
	assert_null(e.map);
	srv_export_close(&e);

	snprintf(path, sizeof(path), "/tmp/test-srv-mapread-%d", (int)getpid());
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 65536), 0);
	close(fd);
	cfg = f->cfg;
	cfg.path = path;
	assert_int_equal(srv_export_open(&e, &cfg, err, sizeof(err)), 0);
	if (!e.in_memory)   /* /tmp on a disk file system, as on this machine */
		assert_null(e.map);
	srv_export_close(&e);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(reads_come_from_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(shrunk_file_reads_eio, setup, teardown),
		cmocka_unit_test_setup_teardown(fault_during_read_is_eio, setup, teardown),
		cmocka_unit_test_setup_teardown(covers_only_pages_in_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(unguarded_fault_still_kills, setup, teardown),
		cmocka_unit_test_setup_teardown(no_map_for_cow_or_disk_files, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

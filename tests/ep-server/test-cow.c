/* Unit tests of ep-server/cow.c: copy-on-write diffs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "internal.h"

/* Not a multiple of the 4 KiB diff granule: the last block is partial. */
#define BASE_SIZE (64 * 1024 + 1000)

struct fx {
	char dir[128], path[256];
	uint8_t base[BASE_SIZE];
	uint8_t model[BASE_SIZE];   /* what the connection must see */
	struct srv_export_cfg cfg;
	struct srv_export e;
	struct srv_cow *cow;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];
	int fd;

	snprintf(f->dir, sizeof(f->dir), "/tmp/test-srv-cow-%d-XXXXXX", (int)getpid());
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/base.img", f->dir);
	for (size_t i = 0; i < BASE_SIZE; i++)
		f->base[i] = (uint8_t)(i * 7 + 3);
	memcpy(f->model, f->base, BASE_SIZE);
	fd = open(f->path, O_CREAT | O_WRONLY, 0644);
	if (fd < 0 || write(fd, f->base, BASE_SIZE) != BASE_SIZE)
		return -1;
	close(fd);
	f->cfg.name = (char *)"cow";
	f->cfg.path = f->path;
	f->cfg.copyonwrite = true;
	f->cfg.cowdir = f->dir;
	if (srv_export_open(&f->e, &f->cfg, err, sizeof(err)) ||
	    srv_cow_open(&f->e, 1, &f->cow, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[300];
	srv_cow_close(f->cow);
	srv_export_close(&f->e);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void write_model(struct fx *f, uint64_t off, uint32_t len, uint8_t seed)
{
	uint8_t *b = malloc(len);
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(seed + i);
	assert_int_equal(srv_cow_write(f->cow, b, len, off), 0);
	memcpy(f->model + off, b, len);
	free(b);
}

static void assert_view(struct fx *f)
{
	uint8_t *b = malloc(BASE_SIZE);
	uint8_t disk[BASE_SIZE];
	int fd = open(f->path, O_RDONLY);

	assert_int_equal(srv_cow_read(f->cow, b, BASE_SIZE, 0), 0);
	assert_memory_equal(b, f->model, BASE_SIZE);
	/* and piecewise, across block edges */
	assert_int_equal(srv_cow_read(f->cow, b, 5000, 4000), 0);
	assert_memory_equal(b, f->model + 4000, 5000);
	free(b);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, disk, BASE_SIZE, 0), BASE_SIZE);
	close(fd);
	assert_memory_equal(disk, f->base, BASE_SIZE);   /* base never modified */
}

static void cow_unwritten_reads_base(void **state)
{
	assert_view(*state);
}

static void cow_partial_block_write_keeps_rest_of_block(void **state)
{
	struct fx *f = *state;
	write_model(f, 100, 10, 1);
	assert_view(f);
}

static void cow_write_across_blocks(void **state)
{
	struct fx *f = *state;
	write_model(f, 4000, 9000, 2);   /* partial, two whole blocks, partial */
	assert_view(f);
}

static void cow_overwrite_inside_diff(void **state)
{
	struct fx *f = *state;
	write_model(f, 8192, 4096, 3);
	write_model(f, 8200, 50, 4);
	assert_view(f);
}

static void cow_write_to_partial_last_block(void **state)
{
	struct fx *f = *state;
	write_model(f, BASE_SIZE - 10, 10, 5);
	write_model(f, BASE_SIZE - 1000 - 5, 7, 6);
	assert_view(f);
}

static void cow_whole_run_to_the_end(void **state)
{
	struct fx *f = *state;
	write_model(f, 61440, BASE_SIZE - 61440, 7);
	assert_view(f);
}

static void cow_zero_range(void **state)
{
	struct fx *f = *state;
	/* more than one 64 KiB piece of zeroes, ending in the partial block */
	assert_int_equal(srv_cow_zero(f->cow, BASE_SIZE - 1000, 1000), 0);
	memset(f->model + 1000, 0, BASE_SIZE - 1000);
	assert_view(f);
}

static void cow_diff_file_is_unlinked_in_cowdir(void **state)
{
	struct fx *f = *state;
	char cmd[300];
	/* the diff exists only as an open fd: cowdir holds just the base */
	snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", f->dir);
	assert_int_equal(system(cmd), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(cow_unwritten_reads_base),
		T(cow_partial_block_write_keeps_rest_of_block),
		T(cow_write_across_blocks),
		T(cow_overwrite_inside_diff),
		T(cow_write_to_partial_last_block),
		T(cow_whole_run_to_the_end),
		T(cow_zero_range),
		T(cow_diff_file_is_unlinked_in_cowdir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

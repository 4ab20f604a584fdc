/* The input cursor and the property check of the kmod fuzz targets
 * (fuzz-check.c, fuzz-epf-info.c). */
#ifndef TESTS_KMOD_FUZZ_INPUT_H
#define TESTS_KMOD_FUZZ_INPUT_H

#include <stdlib.h>
#include <string.h>

/* Takes the next n bytes of the input (zeros once it runs out). */
static void take(const uint8_t **p, size_t *left, void *out, size_t n)
{
	size_t k = n < *left ? n : *left;

	memset(out, 0, n);
	memcpy(out, *p, k);
	*p += k;
	*left -= k;
}

/* A violated property aborts: libFuzzer reports it with the input. */
static void check(int cond)
{
	if (!cond)
		abort();
}

#endif

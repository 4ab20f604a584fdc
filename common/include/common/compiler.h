/* Small compiler helpers shared by every layer. */
#ifndef COMMON_COMPILER_H
#define COMMON_COMPILER_H

#include <stddef.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Size of a cache line on every CPU we target (x86-64, Cortex-A). Shared
 * indices written by different sides live on separate lines of this size so
 * that a store by one side does not invalidate the other side's line. */
#define CACHE_LINE 64

/* Checks a struct's size at compile time: every struct that crosses a
 * process, the NBD wire or the PCIe link carries one. */
#define STATIC_ASSERT_SIZE(type, size) \
	_Static_assert(sizeof(type) == (size), #type " must be " #size " bytes")

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#endif /* COMMON_COMPILER_H */

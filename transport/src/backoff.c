/* Adaptive back-off for poll loops: spin while work is likely to arrive
 * within a round trip, then yield the core, then sleep with a growing
 * period. Reset it whenever the loop finds work. */
#include <sched.h>
#include <stdlib.h>

#include "internal.h"

/* Idle polls answered "spin": about 100 us of polling at ~50 ns per empty
 * poll, long enough to cover a request's round trip under load. */
#define SPIN_POLLS   2048
/* Then this many polls yield the core between polls (2 cores shared). */
#define YIELD_POLLS  256
/* Sleeps start here and double up to the cap: the cap bounds the latency an
 * idle channel adds to the next request and keeps an idle process below
 * ~1% of a core. */
#define SLEEP_MIN_US 8
#define SLEEP_MAX_US 1000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

void npt_backoff_reset(struct npt_backoff *b)
{
	b->idle = 0;
}

unsigned npt_backoff_next_us(struct npt_backoff *b)
{
	unsigned k;

	if (b->idle < SPIN_POLLS) {
		b->idle++;
		cpu_relax();
		return 0;
	}
	if (b->idle < SPIN_POLLS + YIELD_POLLS) {
		b->idle++;
		sched_yield();
		return 0;
	}
	k = b->idle - SPIN_POLLS - YIELD_POLLS;
	if (k < 16)
		b->idle++;
	k = SLEEP_MIN_US << (k < 7 ? k : 7);
	return k < SLEEP_MAX_US ? k : SLEEP_MAX_US;
}

/* How long a loop with doorbells polls before it arms and sleeps
 * (NPT_BELL_SPIN_US, docs/transport.md "Polling"). Measured end to end on
 * the 2-core development VM (docs/performance.md "Yielding spin"): waking a
 * process whose core went idle costs that VM tens of µs (the idle vCPU
 * halts), so a side that sleeps between the requests of a QD1 stream pays it
 * on every request; polling 200 µs, yielding the core on each poll, keeps
 * both sides awake across a round trip and idle cores asleep otherwise. */
#define BELL_SPIN_US_DEFAULT 200

static uint64_t bell_spin_ns(void)
{
	static long us = -1;   /* read once; a benign race rereads the same value */
	const char *e;
	long v;

	if (__atomic_load_n(&us, __ATOMIC_RELAXED) < 0) {
		e = getenv("NPT_BELL_SPIN_US");
		v = e ? strtol(e, NULL, 10) : BELL_SPIN_US_DEFAULT;
		v = v < 0 ? 0 : v > 1000000 ? 1000000 : v;   /* at most a second */
		__atomic_store_n(&us, v, __ATOMIC_RELAXED);
	}
	return (uint64_t)__atomic_load_n(&us, __ATOMIC_RELAXED) * 1000;
}

bool npt_backoff_spin(struct npt_backoff *b)
{
	uint64_t now = npt_now_ns();

	if (!b->idle) {
		b->idle = 1;
		b->spin_end_ns = now + bell_spin_ns();
	}
	if (now < b->spin_end_ns) {
		/* Yield, not pause: when fio, the relay and the server share two
		 * cores, a poll that keeps its core from a runnable process
		 * (usually the one that would produce the work) cost 3x
		 * throughput at QD32; with nothing else runnable sched_yield
		 * returns at once and the poll goes on. */
		sched_yield();
		return true;
	}
	return false;
}

/* alloc.c — every allocation of the core (and libcsv's) goes through here, so that a test can
 * make the Nth one fail and check that each failure ends in "out of memory", never a crash or
 * a partial answer. The only process-wide state of the core: the test switch, off by default. */
#include <stdlib.h>

#include "cpf.h"

/* A test switch's countdown (this file's and io.c's): the calls left before the one that fails,
 * 0 for none. Threads of a load count through it too, so it changes atomically where the
 * compiler can. */
int cpf_countdown_hits(long *countdown) {
  long left;
  if (*countdown <= 0) return 0;
#if defined(__GNUC__)
  left = __sync_sub_and_fetch(countdown, 1);
#else
  left = --*countdown;
#endif
  return left == 0;
}

void cpf_countdown_set(long *countdown, long n) {
#if defined(__GNUC__)
  __sync_lock_test_and_set(countdown, n > 0 ? n : 0);
#else
  *countdown = n > 0 ? n : 0;
#endif
}

/* Allocations left before the one that fails: 0 (the default) never fails. */
static long fail_countdown = 0;

static int should_fail(void) { return cpf_countdown_hits(&fail_countdown); }

void cpf_fail_allocation(long n) { cpf_countdown_set(&fail_countdown, n); }

long cpf_allocations_left(void) { return fail_countdown; }

void *cpf_malloc(size_t n) { return should_fail() ? NULL : malloc(n); }

void *cpf_calloc(size_t count, size_t size) { return should_fail() ? NULL : calloc(count, size); }

void *cpf_realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n); }

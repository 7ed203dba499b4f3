/* alloc.c — every allocation of the core (and libcsv's) goes through here, so that a test can
 * make the Nth one fail and check that each failure ends in "out of memory", never a crash or
 * a partial answer. The only process-wide state of the core: the test switch, off by default. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- a dataset's pool of result arrays ---- */

/* Each block starts with its size, so that it can be given back without it. */
typedef union {
  size_t bytes;
  long double align_float; /* C99 has no max_align_t: the widest types */
  void *align_pointer;
  int64_t align_integer;
} block_header;

#define POOL_BLOCKS 64

struct cpf_pool {
  int refs;
  int open;            /* its dataset is alive: given-back blocks are worth keeping */
  size_t kept, max;    /* bytes of the kept blocks, and their bound */
  size_t count;
  block_header *blocks[POOL_BLOCKS];
  size_t out;          /* bytes handed out and not given back: live results, and uncollected ones */
  size_t collect_at;   /* pool_wants_collection's threshold of `out` */
  size_t unhinted;     /* results' bytes not yet told to Lua's collector (pool_hint) */
};

/* What pool_hint gathers before it asks for a step: a step is a whole young collection in
 * generational mode, out of proportion to a small result. */
#define POOL_HINT_BYTES ((size_t)4 << 20)

/* What pool_wants_collection waits for at first, and at least. */
#define POOL_COLLECT_MIN ((size_t)16 << 20)

cpf_pool *pool_new(size_t max_bytes) {
  cpf_pool *pool = cpf_calloc(1, sizeof *pool);
  if (!pool) return NULL;
  pool->refs = 1;
  pool->open = 1;
  pool->max = max_bytes;
  pool->collect_at = POOL_COLLECT_MIN;
  return pool;
}

cpf_pool *pool_ref(cpf_pool *pool) {
  if (pool) pool->refs++;
  return pool;
}

static void pool_empty(cpf_pool *pool) {
  while (pool->count > 0) free(pool->blocks[--pool->count]);
  pool->kept = 0;
}

void pool_unref(cpf_pool *pool) {
  if (!pool) return;
  if (--pool->refs == 0) {
    pool_empty(pool);
    free(pool);
  }
}

void pool_close(cpf_pool *pool) {
  if (!pool) return;
  pool->open = 0;
  pool_empty(pool);
  pool_unref(pool);
}

/* A block of at least `bytes` (contents undefined): the smallest kept one that holds it without
 * wasting more than half, else a new one. */
void *pool_alloc(cpf_pool *pool, size_t bytes) {
  block_header *h = NULL;
  size_t i, best = POOL_BLOCKS;
  if (bytes == 0) bytes = 1;
  for (i = 0; pool && i < pool->count; i++) {
    size_t have = pool->blocks[i]->bytes;
    if (have >= bytes && have / 2 <= bytes && (best == POOL_BLOCKS || have < pool->blocks[best]->bytes)) best = i;
  }
  if (best < POOL_BLOCKS) {
    h = pool->blocks[best];
    pool->blocks[best] = pool->blocks[--pool->count];
    pool->kept -= h->bytes;
  } else {
    if (bytes > (size_t)-1 - sizeof *h || !(h = cpf_malloc(sizeof *h + bytes))) return NULL;
    h->bytes = bytes;
  }
  if (pool) pool->out += h->bytes;
  return h + 1;
}

void *pool_calloc(cpf_pool *pool, size_t bytes) {
  void *p = pool_alloc(pool, bytes);
  if (p) memset(p, 0, bytes ? bytes : 1);
  return p;
}

void pool_free(cpf_pool *pool, void *p) {
  block_header *h;
  if (!p) return;
  h = (block_header *)p - 1;
  if (pool) pool->out -= h->bytes < pool->out ? h->bytes : pool->out;
  if (pool && pool->open && pool->count < POOL_BLOCKS && pool->kept + h->bytes <= pool->max) {
    pool->blocks[pool->count++] = h;
    pool->kept += h->bytes;
    return;
  }
  free(h);
}

/* Lua's collector does not see the blocks: a result it has not collected yet holds them, and in
 * generational mode (lua5.4's own) a step never reaches the old results. So a full collection
 * when the blocks handed out have grown past twice what was live after the last one, plus the
 * Lua heap then (the work of a collection is the heap's size: this keeps it in proportion to
 * what the queries allocate). */
int pool_wants_collection(const cpf_pool *pool) {
  return pool && pool->out > pool->collect_at;
}

void pool_collected(cpf_pool *pool, size_t lua_heap_bytes) {
  size_t at;
  if (!pool) return;
  at = 2 * pool->out + lua_heap_bytes;
  pool->collect_at = at > POOL_COLLECT_MIN ? at : POOL_COLLECT_MIN;
}

size_t pool_hint(cpf_pool *pool, size_t bytes) {
  size_t due;
  if (!pool) return bytes;
  pool->unhinted += bytes;
  if (pool->unhinted < POOL_HINT_BYTES) return 0;
  due = pool->unhinted;
  pool->unhinted = 0;
  return due;
}

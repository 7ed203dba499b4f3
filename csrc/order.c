/* order.c — the order of a query's groups, decided in C: each key's codes ranked once (strings
 * in byte order, numbers by value, Lua-given ranks for families and buckets), then the groups
 * sorted by stable LSD radix passes over integer ranks or over the sortable bits of aggregate
 * values. No comparison call per pair of groups, and no Lua value is built to sort. */
#include <stdlib.h>
#include <string.h>

#include "cpf.h"

#define DIGIT_BITS 16
#define DIGITS (1u << DIGIT_BITS)

/* Stable sort of perm[0..n) by keys[0..n) (keys[i] goes with perm[i]; perm NULL: the keys
 * alone, sorted in place): 16-bit digits, least significant first, skipping the digits in
 * which every key agrees (a rank below 65 536 costs one pass). tmp_perm / tmp_keys hold n
 * entries each (tmp_perm unused without perm); counts DIGITS. */
static void radix_sort(uint32_t *perm, uint64_t *keys, size_t n, uint32_t *tmp_perm,
                       uint64_t *tmp_keys, size_t *counts) {
  uint64_t differ = 0;
  uint32_t *p = perm, *tp = tmp_perm;
  uint64_t *k = keys, *tk = tmp_keys;
  unsigned shift;
  size_t i;
  for (i = 1; i < n; i++) differ |= keys[i] ^ keys[0];
  for (shift = 0; shift < 64; shift += DIGIT_BITS) {
    size_t sum = 0;
    uint32_t *swap_p;
    uint64_t *swap_k;
    if (((differ >> shift) & (DIGITS - 1)) == 0) continue;
    memset(counts, 0, DIGITS * sizeof *counts);
    for (i = 0; i < n; i++) counts[(k[i] >> shift) & (DIGITS - 1)]++;
    for (i = 0; i < DIGITS; i++) {
      size_t c = counts[i];
      counts[i] = sum;
      sum += c;
    }
    if (p) {
      for (i = 0; i < n; i++) {
        size_t at = counts[(k[i] >> shift) & (DIGITS - 1)]++;
        tp[at] = p[i];
        tk[at] = k[i];
      }
      swap_p = p; p = tp; tp = swap_p;
    } else {
      for (i = 0; i < n; i++) tk[counts[(k[i] >> shift) & (DIGITS - 1)]++] = k[i];
    }
    swap_k = k; k = tk; tk = swap_k;
  }
  if (perm && p != perm) memcpy(perm, p, n * sizeof *perm);
  if (!perm && k != keys) memcpy(keys, k, n * sizeof *keys);
}

/* Insertion sort, stable, for the few groups where clearing the digit counters would cost more
 * than the sort. */
static void small_sort(uint32_t *perm, uint64_t *keys, size_t n) {
  size_t i, j;
  for (i = 1; i < n; i++) {
    uint64_t key = keys[i];
    uint32_t g = perm[i];
    for (j = i; j > 0 && keys[j - 1] > key; j--) {
      keys[j] = keys[j - 1];
      perm[j] = perm[j - 1];
    }
    keys[j] = key;
    perm[j] = g;
  }
}

int order_sort_keys(uint64_t *keys, size_t n, cpf_error *err) {
  uint64_t *tmp_keys;
  size_t *counts;
  if (n <= 64) {
    uint32_t unused[64] = {0};
    small_sort(unused, keys, n);
    return 0;
  }
  tmp_keys = cpf_malloc(n * sizeof *tmp_keys);
  counts = cpf_malloc(DIGITS * sizeof *counts);
  if (!tmp_keys || !counts) {
    free(tmp_keys);
    free(counts);
    cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
    return -1;
  }
  radix_sort(NULL, keys, n, NULL, tmp_keys, counts);
  free(tmp_keys);
  free(counts);
  return 0;
}

/* ---- ranks of a key's codes ---- */

typedef struct {
  const char *s;
  size_t len;
  uint32_t code;
} string_code;

static int compare_string_codes(const void *pa, const void *pb) {
  const string_code *a = pa, *b = pb;
  size_t n = a->len < b->len ? a->len : b->len;
  int c = memcmp(a->s, b->s, n);
  return c != 0 ? c : (a->len > b->len) - (a->len < b->len);
}

typedef struct {
  int64_t i;
  double d;
  uint32_t code;
} number_code;

static int compare_integer_codes(const void *pa, const void *pb) {
  const number_code *a = pa, *b = pb;
  return (a->i > b->i) - (a->i < b->i);
}

static int compare_double_codes(const void *pa, const void *pb) { /* NaN last, as compare_doubles */
  double x = ((const number_code *)pa)->d, y = ((const number_code *)pb)->d;
  if (x != x || y != y) return (x != x) - (y != y);
  return (x > y) - (x < y);
}

int order_rank_key(const cpf_dataset *ds, const query_key *key, const uint32_t *codes, size_t n,
                   const int32_t *given, uint32_t *rank, cpf_error *err) {
  const cpf_column *col = &ds->cols[key->column];
  uint32_t card = key->cardinality, c, m = 0;
  uint8_t *seen;
  size_t i;
  if (card == 0) return 0;
  if (given) { /* families, buckets, Lua key functions: the Lua side ranked their labels */
    for (c = 0; c + 1 < card; c++) rank[c] = (uint32_t)given[c];
    rank[card - 1] = UINT32_MAX;
    return 0;
  }
  if (key->kind != KEY_COLUMN || (col->type != CPF_TYPE_STRING && !key->by_value)) {
    for (c = 0; c < card; c++) rank[c] = c; /* years, months, dense integers: codes in order */
    rank[card - 1] = UINT32_MAX;
    return 0;
  }
  /* strings and values interned by value: sort the codes the groups use, not the dictionary */
  if (!(seen = cpf_calloc(card, 1))) goto oom;
  for (i = 0; i < n; i++) seen[codes[i]] = 1;
  for (c = 0; c + 1 < card; c++) m += seen[c];
  if (col->type == CPF_TYPE_STRING) {
    string_code *list = cpf_malloc((m ? m : 1) * sizeof *list);
    if (!list) { free(seen); goto oom; }
    for (c = 0, m = 0; c + 1 < card; c++) {
      if (!seen[c]) continue;
      list[m].s = dictionary_value(&col->dict, c, &list[m].len);
      list[m++].code = c;
    }
    qsort(list, m, sizeof *list, compare_string_codes);
    for (c = 0; c < m; c++) rank[list[c].code] = c;
    free(list);
  } else {
    number_code *list = cpf_malloc((m ? m : 1) * sizeof *list);
    if (!list) { free(seen); goto oom; }
    for (c = 0, m = 0; c + 1 < card; c++) {
      if (!seen[c]) continue;
      memcpy(&list[m].i, dictionary_value(&key->values, c, NULL), sizeof list[m].i);
      memcpy(&list[m].d, &list[m].i, sizeof list[m].d);
      list[m++].code = c;
    }
    qsort(list, m, sizeof *list,
          col->type == CPF_TYPE_NUMBER ? compare_double_codes : compare_integer_codes);
    for (c = 0; c < m; c++) rank[list[c].code] = c;
    free(list);
  }
  free(seen);
  rank[card - 1] = UINT32_MAX;
  return 0;
oom:
  cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
  return -1;
}

/* ---- sorting the groups ---- */

/* The key of group g for one spec; *missing set when the group has no value (it goes last,
 * whatever the direction, as Result:sorted puts nil last). */
static uint64_t spec_key(const order_spec *s, uint32_t g, int *missing) {
  uint64_t v;
  *missing = 0;
  switch (s->kind) {
  case ORDER_KEY:
    v = s->rank[s->codes[g]];
    if (v == UINT32_MAX) { *missing = 1; return 0; }
    break;
  case ORDER_INTEGER:
    if (!s->present[g]) { *missing = 1; return 0; }
    v = (uint64_t)s->integers[g] ^ ((uint64_t)1 << 63);
    break;
  default:
    if (!s->present[g] || s->numbers[g] != s->numbers[g]) { *missing = 1; return 0; } /* NaN too */
    v = order_double_key(s->numbers[g]);
    break;
  }
  return s->desc ? ~v : v;
}

int order_groups(cpf_pool *pool, uint32_t *perm, size_t n, const order_spec *specs, size_t nspecs,
                 cpf_error *err) {
  uint64_t *keys = pool_alloc(pool, n * sizeof *keys);
  uint64_t *tmp_keys = pool_alloc(pool, n * sizeof *tmp_keys);
  uint32_t *tmp_perm = pool_alloc(pool, n * sizeof *tmp_perm);
  size_t *counts = n > 64 ? cpf_malloc(DIGITS * sizeof *counts) : NULL;
  size_t s;
  if (!keys || !tmp_keys || !tmp_perm || (n > 64 && !counts)) {
    pool_free(pool, keys); pool_free(pool, tmp_keys); pool_free(pool, tmp_perm); free(counts);
    cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
    return -1;
  }
  /* least significant spec first; each pass stable, so earlier passes break the later ties */
  for (s = nspecs; s-- > 0;) {
    size_t i, present = 0, missing = 0;
    /* the groups with a value first (in their current order), the missing ones after */
    for (i = 0; i < n; i++) {
      int none;
      uint64_t k = spec_key(&specs[s], perm[i], &none);
      if (none) tmp_perm[missing++] = perm[i];
      else { keys[present] = k; perm[present++] = perm[i]; }
    }
    memcpy(perm + present, tmp_perm, missing * sizeof *perm);
    if (present <= 64) small_sort(perm, keys, present);
    else radix_sort(perm, keys, present, tmp_perm, tmp_keys, counts);
  }
  pool_free(pool, keys);
  pool_free(pool, tmp_keys);
  pool_free(pool, tmp_perm);
  free(counts);
  return 0;
}

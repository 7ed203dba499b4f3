/* query.c — runs a query plan over the column store: conditions to a row selection, grouping
 * keys to one group id per row, then one tight pass per aggregate. No Lua, no per-row malloc.
 * Memory-safe whatever bytes a column holds (a snapshot's may be hostile, or rewritten while it
 * is mapped): every code used as an index is clamped to its table, a stored value is only ever
 * subtracted or summed in unsigned arithmetic, and a table indexed by raw codes has an entry for
 * every value of the code's width. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpf.h"

#define DENSE_LIMIT (1u << 20) /* key combinations addressed directly; beyond, hashed */

static const double pow10_table[19] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
                                       1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18};

static int is_missing(const cpf_column *col, size_t i) {
  return col->missing_bits && ((col->missing_bits[i >> 3] >> (i & 7)) & 1);
}

static int is_integer_like(const cpf_column *col) {
  return col->type == CPF_TYPE_INTEGER || col->type == CPF_TYPE_DECIMAL ||
         col->type == CPF_TYPE_MONTH || col->type == CPF_TYPE_DATE;
}

/* A value in the column's units: euros for a decimal column, not cents. */
static double value_as_double(const cpf_column *col, size_t i) {
  if (col->type == CPF_TYPE_NUMBER) return column_number_at(col, i);
  if (col->type == CPF_TYPE_DECIMAL) return (double)column_integer_at(col, i) / pow10_table[col->scale];
  return (double)column_integer_at(col, i);
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Month index (year*12 + month-1) of a day count. */
static int64_t month_of_days(int64_t days) {
  int64_t y;
  int m, d;
  civil_from_days(days, &y, &m, &d);
  return y * 12 + m - 1;
}

static void *alloc_rows(size_t n, size_t size, cpf_error *err) {
  void *p = cpf_malloc((n ? n : 1) * size);
  if (!p) cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
  return p;
}

/* ---- the per-group work arrays, kept by the dataset between queries ---- */

/* Which of the dataset's kept arrays (cpf_dataset.scratch_slots) a use takes. */
enum { SCRATCH_SLOT_ROWS, SCRATCH_PART, SCRATCH_ISUM, SCRATCH_ISUM2, SCRATCH_IEXT, SCRATCH_COUNT, SCRATCH_DSUM,
       SCRATCH_DSUM2, SCRATCH_SEEN, SCRATCH_COUNT2 };
/* Kept up to this size (a dense key of 2^20 slots at 8 bytes); larger ones are freed after use. */
#define SCRATCH_KEEP_BYTES ((size_t)8 << 20)
/* What a dataset's pool keeps of its collected results' arrays (cpf_pool). */
#define RESULT_POOL_BYTES ((size_t)64 << 20)

/* A zeroed array of `bytes` for this query: the dataset's kept one when it is large enough
 * (zeroing resident pages costs a tenth of touching new ones), else a new one that the dataset
 * keeps in its place. A query runs alone on its dataset (no Lua runs inside query_run), and each
 * use below ends before the next of the same kind starts. */
static void *scratch_take(cpf_dataset *ds, int which, size_t bytes, cpf_error *err) {
  void *p;
  if (bytes == 0) bytes = 1;
  if (ds->scratch_slots[which] && bytes <= ds->scratch_slot_bytes[which]) {
    memset(ds->scratch_slots[which], 0, bytes);
    return ds->scratch_slots[which];
  }
  p = cpf_calloc(bytes, 1);
  if (!p) { cpf_error_set(err, CPF_ERR_MEMORY, "out of memory"); return NULL; }
  if (bytes <= SCRATCH_KEEP_BYTES) {
    free(ds->scratch_slots[which]);
    ds->scratch_slots[which] = p;
    ds->scratch_slot_bytes[which] = bytes;
  }
  return p;
}

/* Gives back what scratch_take gave: freed unless the dataset keeps it. */
static void scratch_give(cpf_dataset *ds, int which, void *p) {
  if (p != ds->scratch_slots[which]) free(p);
}

/* ---- keys ---- */

/* Give the rows without a value the "no value" code: a walk over the bitmap's set bytes only,
 * so the per-row loops above stay branch-free. The last byte's bits past the last row are
 * dropped: they would index past the array. */
static void mark_missing(const cpf_column *col, uint32_t *codes, uint32_t nil, size_t n) {
  size_t byte, bit;
  if (!col->missing_bits) return;
  for (byte = 0; byte * 8 < n; byte++) {
    unsigned b = col->missing_bits[byte];
    if (n - byte * 8 < 8) b &= (1u << (n - byte * 8)) - 1;
    for (bit = 0; b != 0; bit++, b >>= 1)
      if (b & 1) codes[byte * 8 + bit] = nil;
  }
}

/* c when it is a code below nil, else nil: one instruction (a min), no branch. The 32-bit
 * flavour keeps vectorized loops on 32-bit lanes. */
static uint32_t clamp_code(uint32_t c, uint32_t nil) {
  return c < nil ? c : nil;
}

static uint32_t clamp_code64(uint64_t c, uint32_t nil) {
  return c < nil ? (uint32_t)c : nil;
}

/* The per-row loops of the common keys, written for GCC's -O2 vectorizer, which only takes a
 * loop in a function of its own (not inlined), over restrict pointers, whose main loop leaves no
 * scalar remainder (it runs a multiple of 64 times): vectorized, the clamps cost nothing. */
#if defined(__GNUC__)
#define NOT_INLINED __attribute__((noinline))
#else
#define NOT_INLINED
#endif

/* 1-byte dictionary codes, clamped to nil */
NOT_INLINED static void codes_of_bytes(const uint8_t *restrict v, uint32_t *restrict codes, size_t n,
                                       uint32_t nil) {
  size_t i, main = n & ~(size_t)63;
  for (i = 0; i < main; i++) codes[i] = clamp_code(v[i], nil);
  for (; i < n; i++) codes[i] = clamp_code(v[i], nil);
}

/* year (month / 12) or month of 16-bit months, less lo, clamped to nil; lo >= 0, so a negative
 * value wraps to a large code and is clamped too */
NOT_INLINED static void codes_of_months(const int16_t *restrict v, uint32_t *restrict codes, size_t n,
                                        uint32_t lo, uint32_t nil, uint32_t months) {
  size_t i, main = n & ~(size_t)63;
  if (months == 12) { /* the year: a constant divisor the compiler turns into a multiply */
    for (i = 0; i < main; i++) codes[i] = clamp_code((uint32_t)v[i] / 12 - lo, nil);
    for (; i < n; i++) codes[i] = clamp_code((uint32_t)v[i] / 12 - lo, nil);
  } else if (months > 1) {
    for (i = 0; i < n; i++) codes[i] = clamp_code((uint32_t)v[i] / months - lo, nil);
  } else {
    for (i = 0; i < main; i++) codes[i] = clamp_code((uint32_t)v[i] - lo, nil);
    for (; i < n; i++) codes[i] = clamp_code((uint32_t)v[i] - lo, nil);
  }
}

/* the same, folded into the group ids: gid = gid * card + code */
NOT_INLINED static void fuse_months(const int16_t *restrict v, uint32_t *restrict gid, size_t n,
                                    uint32_t lo, uint32_t card, uint32_t months) {
  size_t i, main = n & ~(size_t)63;
  uint32_t nil = card - 1;
  if (months == 12) {
    for (i = 0; i < main; i++) gid[i] = gid[i] * card + clamp_code((uint32_t)v[i] / 12 - lo, nil);
    for (; i < n; i++) gid[i] = gid[i] * card + clamp_code((uint32_t)v[i] / 12 - lo, nil);
  } else {
    for (i = 0; i < main; i++) gid[i] = gid[i] * card + clamp_code((uint32_t)v[i] - lo, nil);
    for (; i < n; i++) gid[i] = gid[i] * card + clamp_code((uint32_t)v[i] - lo, nil);
  }
}

void key_free(query_key *key) {
  if (key->by_value) dictionary_free(&key->values);
  key->by_value = 0;
}

static int key_by_value(const cpf_dataset *ds, const cpf_column *col, query_key *key,
                        uint32_t *codes, cpf_error *err) {
  size_t i;
  if (dictionary_init(&key->values) != 0) { cpf_error_set(err, CPF_ERR_MEMORY, "out of memory"); return -1; }
  key->by_value = 1;
  for (i = 0; i < ds->rows; i++) {
    union { int64_t i; double d; } v;
    if (is_missing(col, i)) { codes[i] = UINT32_MAX; continue; }
    if (col->type == CPF_TYPE_NUMBER) {
      v.d = normalize_zero(column_number_at(col, i));
    } else {
      v.i = column_integer_at(col, i);
    }
    codes[i] = dictionary_intern(&key->values, (const char *)&v, sizeof v);
    if (codes[i] == UINT32_MAX) { cpf_error_set(err, CPF_ERR_MEMORY, "out of memory"); return -1; }
  }
  key->cardinality = key->values.count + 1;
  for (i = 0; i < ds->rows; i++)
    if (codes[i] == UINT32_MAX) codes[i] = key->values.count;
  return 0;
}

int key_compute(const cpf_dataset *ds, query_key *key, uint32_t *codes, cpf_error *err) {
  const cpf_column *col = &ds->cols[key->column];
  size_t i, n = ds->rows;
  if (snapshot_check_column(ds, (size_t)key->column, err) != 0) return -1;
  key->by_value = 0;
  switch (key->kind) {
  case KEY_COLUMN:
    if (col->type == CPF_TYPE_STRING) {
      /* a code past the dictionary (damaged data) reads as no value */
      uint32_t nil = col->dict.count;
      key->cardinality = nil + 1;
      if (col->width == 1) { /* the common case, kept a plain copy */
        codes_of_bytes(col->data, codes, n, nil);
        mark_missing(col, codes, nil, n);
      } else {
        for (i = 0; i < n; i++) codes[i] = is_missing(col, i) ? nil : clamp_code(column_code_at(col, i), nil);
      }
      return 0;
    }
    /* unsigned: max - min of any two int64 values, and min <= max is not assumed */
    if (is_integer_like(col) && col->min <= col->max &&
        (uint64_t)col->max - (uint64_t)col->min < (1 << 16) && !key->force_by_value) {
      uint32_t nil = (uint32_t)((uint64_t)col->max - (uint64_t)col->min) + 1;
      uint64_t min = (uint64_t)col->min;
      key->base = col->min;
      key->cardinality = nil + 1;
      for (i = 0; i < n; i++) /* a value outside [min, max] (damaged data) reads as no value */
        codes[i] = is_missing(col, i) ? nil : clamp_code64((uint64_t)column_integer_at(col, i) - min, nil);
      return 0;
    }
    return key_by_value(ds, col, key, codes, err);
  case KEY_YEAR:
  case KEY_SEMESTER:
  case KEY_QUARTER:
  case KEY_MONTH:
  case KEY_MONTH_OF_YEAR: {
    int64_t lo, hi;
    uint32_t nil;
    /* a period is `months` months long; the month of the year is the month modulo 12 */
    int of_year = key->kind == KEY_MONTH_OF_YEAR;
    uint32_t months = key->kind == KEY_YEAR ? 12 : key->kind == KEY_SEMESTER ? 6 : key->kind == KEY_QUARTER ? 3 : 1;
    const char *name = key->kind == KEY_YEAR ? "year" : key->kind == KEY_SEMESTER ? "semester"
                     : key->kind == KEY_QUARTER ? "quarter" : of_year ? "month_of_year" : "month";
    if (col->type != CPF_TYPE_MONTH && col->type != CPF_TYPE_DATE) {
      cpf_error_set(err, CPF_ERR_USAGE, "%s() needs a month or date column, '%s' is %s", name, col->name,
                    cpf_type_name(col->type));
      return -1;
    }
    lo = col->type == CPF_TYPE_DATE ? month_of_days(col->min) : col->min;
    hi = col->type == CPF_TYPE_DATE ? month_of_days(col->max) : col->max;
    if (of_year) { lo = 0; hi = 11; }
    else if (months > 1) { lo = floor_div(lo, months); hi = floor_div(hi, months); }
    if (lo > hi || (uint64_t)hi - (uint64_t)lo >= DENSE_LIMIT) {
      /* loaded or opened columns hold years 0000-9999: only a column built otherwise gets here */
      cpf_error_set(err, CPF_ERR_USAGE, "%s() on '%s': its values span too many periods", name, col->name);
      return -1;
    }
    key->base = of_year ? 1 : lo;
    nil = (uint32_t)(hi - lo) + 1;
    key->cardinality = nil + 1;
    /* codes are clamped: a value outside [min, max] (damaged data) reads as no value */
    if (!of_year && col->type == CPF_TYPE_MONTH && col->width == 2 && lo >= 0 && hi <= INT16_MAX) {
      /* months since year 0 fit 16 bits until year 2730 */
      codes_of_months(col->data, codes, n, (uint32_t)lo, nil, months);
      mark_missing(col, codes, nil, n);
      return 0;
    }
    for (i = 0; i < n; i++) {
      int64_t m;
      if (is_missing(col, i)) { codes[i] = nil; continue; }
      m = column_integer_at(col, i);
      if (m < col->min || m > col->max) { codes[i] = nil; continue; }
      if (col->type == CPF_TYPE_DATE) m = month_of_days(m);
      m = of_year ? m - floor_div(m, 12) * 12 : floor_div(m, months);
      codes[i] = clamp_code64((uint64_t)(m - lo), nil);
    }
    return 0;
  }
  case KEY_REMAP: {
    uint32_t nil = key->remap_outputs;
    key->cardinality = nil + 1;
    for (i = 0; i < n; i++) {
      int32_t c;
      uint32_t code = column_code_at(col, i);
      if (is_missing(col, i) || code >= col->dict.count) { codes[i] = nil; continue; }
      c = key->remap[code];
      codes[i] = c < 0 || (uint32_t)c >= nil ? nil : (uint32_t)c;
    }
    return 0;
  }
  case KEY_BUCKET: {
    uint32_t nil = (uint32_t)key->nbounds + 1;
    key->cardinality = nil + 1;
    for (i = 0; i < n; i++) {
      double v;
      size_t lo = 0, hi = key->nbounds;
      if (is_missing(col, i)) { codes[i] = nil; continue; }
      v = value_as_double(col, i);
      while (lo < hi) { /* number of bounds <= v */
        size_t mid = (lo + hi) / 2;
        if (key->bounds[mid] <= v) lo = mid + 1; else hi = mid;
      }
      codes[i] = (uint32_t)lo;
    }
    return 0;
  }
  }
  return -1;
}

/* Year or month of a 16-bit month column with no missing value: the key's codes can be folded
 * into the group ids in the same pass that computes them. Sets the cardinality and base. */
static int key_is_fusable(const cpf_dataset *ds, query_key *key) {
  const cpf_column *col = &ds->cols[key->column];
  int64_t lo, hi;
  if ((key->kind != KEY_YEAR && key->kind != KEY_MONTH) || col->type != CPF_TYPE_MONTH ||
      col->width != 2 || col->missing_bits || col->min < 0 || col->max > INT16_MAX ||
      col->min > col->max)
    return 0;
  lo = key->kind == KEY_YEAR ? col->min / 12 : col->min;
  hi = key->kind == KEY_YEAR ? col->max / 12 : col->max;
  key->by_value = 0;
  key->base = lo;
  key->cardinality = (uint32_t)(hi - lo + 2); /* the last code, "no value", stays unused */
  return 1;
}

/* A value outside [min, max] (damaged data) gets the unused last code: gid stays in range. */
static void key_fuse(const cpf_dataset *ds, const query_key *key, uint32_t *gid) {
  fuse_months(ds->cols[key->column].data, gid, ds->rows, (uint32_t)key->base, key->cardinality,
              key->kind == KEY_YEAR ? 12 : 1);
}

/* ---- conditions ---- */

/* Integer thresholds equivalent to a bound on value/p: exact, because v/p is the double nearest
 * the decimal value, which is also what the bound literal was rounded to. */
static int64_t lower_threshold(double lo, double p, int open) {
  double c;
  if (lo * p < -9e18) return INT64_MIN;
  if (lo * p > 9e18) return INT64_MAX;
  c = open ? floor(lo * p) + 1 : ceil(lo * p);
  while (open ? (c - 1) / p > lo : (c - 1) / p >= lo) c--;
  while (open ? c / p <= lo : c / p < lo) c++;
  return (int64_t)c;
}

static int64_t upper_threshold(double hi, double p, int open) {
  double c;
  if (hi * p > 9e18) return INT64_MAX;
  if (hi * p < -9e18) return INT64_MIN;
  c = open ? ceil(hi * p) - 1 : floor(hi * p);
  while (open ? (c + 1) / p < hi : (c + 1) / p <= hi) c++;
  while (open ? c / p >= hi : c / p > hi) c--;
  return (int64_t)c;
}

/* ---- conditions on the distinct values of a numeric column (COND_RUNS) ---- */

/* The exact order key of row i's value (see query_distinct_keys). */
static uint64_t exact_key(const cpf_column *col, size_t i) {
  if (col->type == CPF_TYPE_NUMBER) return order_double_key(column_number_at(col, i));
  return (uint64_t)column_integer_at(col, i) ^ ((uint64_t)1 << 63);
}

int64_t query_key_value(const cpf_column *col, uint64_t key) {
  uint64_t bits;
  int64_t v;
  if (col->type != CPF_TYPE_NUMBER) return (int64_t)(key ^ ((uint64_t)1 << 63));
  if (key == UINT64_MAX) { double nan = NAN; memcpy(&v, &nan, sizeof v); return v; }
  bits = (key >> 63) ? key & ~((uint64_t)1 << 63) : ~key;
  memcpy(&v, &bits, sizeof v);
  return v;
}

int query_distinct_keys(cpf_dataset *ds, int column, const uint64_t **out, size_t *count,
                        cpf_error *err) {
  const cpf_column *col = &ds->cols[column];
  size_t n = ds->rows, m = 0, i, u = 0;
  uint64_t *keys, *fit;
  *out = NULL;
  *count = 0;
  if (snapshot_check_column(ds, (size_t)column, err) != 0) return -1;
  if (!ds->distinct_keys) {
    ds->distinct_keys = cpf_calloc(ds->ncols ? ds->ncols : 1, sizeof *ds->distinct_keys);
    ds->distinct_count = cpf_calloc(ds->ncols ? ds->ncols : 1, sizeof *ds->distinct_count);
    if (!ds->distinct_keys || !ds->distinct_count) {
      free(ds->distinct_keys);
      free(ds->distinct_count);
      ds->distinct_keys = NULL;
      ds->distinct_count = NULL;
      cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
      return -1;
    }
  }
  if (!ds->distinct_keys[column]) {
    if (!(keys = alloc_rows(n + 1, sizeof *keys, err))) return -1;
    for (i = 0; i < n; i++)
      if (!is_missing(col, i)) keys[m++] = exact_key(col, i);
    if (order_sort_keys(keys, m, err) != 0) { free(keys); return -1; }
    for (i = 0; i < m; i++)
      if (u == 0 || keys[u - 1] != keys[i]) keys[u++] = keys[i];
    fit = cpf_realloc(keys, (u ? u : 1) * sizeof *keys); /* the row-sized array shrinks to the values */
    ds->distinct_keys[column] = fit ? fit : keys;
    ds->distinct_count[column] = u;
  }
  *out = ds->distinct_keys[column];
  *count = ds->distinct_count[column];
  return 0;
}

/* out[i] for the rows whose stored value lies in [lo, hi]: set to the test's answer, or with
 * `add` 1 added to what out holds (a union of ranges). One loop per storage width, which the
 * compiler vectorises; missing rows are tested on the 0 they hold (set_missing_rows). */
static void mark_value_range(const cpf_column *col, size_t n, int64_t lo, int64_t hi, int add,
                             uint8_t *out) {
  size_t i;
#define RANGE_LOOP(T)                                                                    \
  do {                                                                                   \
    const T *data = (const T *)col->data;                                                \
    if (add)                                                                             \
      for (i = 0; i < n; i++) out[i] |= (uint8_t)(data[i] >= lo && data[i] <= hi);       \
    else                                                                                 \
      for (i = 0; i < n; i++) out[i] = (uint8_t)(data[i] >= lo && data[i] <= hi);        \
  } while (0)
  switch (col->width) {
  case 1: RANGE_LOOP(int8_t); break;
  case 2: RANGE_LOOP(int16_t); break;
  case 4: RANGE_LOOP(int32_t); break;
  default: RANGE_LOOP(int64_t); break;
  }
#undef RANGE_LOOP
}

/* out[i] = value for the missing rows, which are rare: a byte of the bitmap at a time. */
static void set_missing_rows(const cpf_column *col, size_t n, uint8_t value, uint8_t *out) {
  size_t byte, i;
  if (!col->missing_bits) return;
  for (byte = 0; byte < (n + 7) / 8; byte++) {
    if (col->missing_bits[byte] == 0) continue;
    for (i = byte * 8; i < n && i < byte * 8 + 8; i++)
      if (is_missing(col, i)) out[i] = value;
  }
}

/* Beyond this many runs, a binary search per row costs less than a pass per run. */
#define RUNS_BY_PASSES 4

/* Keeps the rows whose value lies in one of the runs; missing rows get `negate` (the function's
 * answer on nil). On an integer-like column with few runs (a threshold function: one), a
 * vectorised pass per run; else a branch-free binary search over the runs' starts per row. */
static void runs_evaluate(const cpf_dataset *ds, const query_cond *cond, uint8_t *out) {
  const cpf_column *col = &ds->cols[cond->column];
  const uint64_t *lo = cond->run_lo, *hi = cond->run_hi;
  size_t i, n = ds->rows, nr = cond->nruns;
  if (col->type != CPF_TYPE_NUMBER && nr <= RUNS_BY_PASSES) {
    size_t r;
    memset(out, 0, n);
    for (r = 0; r < nr; r++) /* the keys of an integer-like column are its values, sign flipped */
      mark_value_range(col, n, (int64_t)(lo[r] ^ ((uint64_t)1 << 63)),
                       (int64_t)(hi[r] ^ ((uint64_t)1 << 63)), 1, out);
    set_missing_rows(col, n, (uint8_t)(cond->negate != 0), out); /* their 0 may lie in a run */
    return;
  }
  for (i = 0; i < n; i++) {
    uint64_t key;
    size_t base = 0, len = nr;
    if (is_missing(col, i)) { out[i] = (uint8_t)(cond->negate != 0); continue; }
    if (nr == 0) { out[i] = 0; continue; }
    key = exact_key(col, i);
    while (len > 1) {
      size_t half = len / 2;
      base = lo[base + half] <= key ? base + half : base;
      len -= half;
    }
    out[i] = (uint8_t)(lo[base] <= key && key <= hi[base]);
  }
}

static int range_evaluate(const cpf_dataset *ds, const query_cond *cond, uint8_t *out) {
  const cpf_column *col = &ds->cols[cond->column];
  size_t i, n = ds->rows;
  if (col->type == CPF_TYPE_NUMBER) {
    for (i = 0; i < n; i++) {
      double v = column_number_at(col, i);
      int keep = !is_missing(col, i);
      if (keep && cond->has_lo) keep = cond->lo_open ? v > cond->lo : v >= cond->lo;
      if (keep && cond->has_hi) keep = cond->hi_open ? v < cond->hi : v <= cond->hi;
      out[i] = (uint8_t)keep;
    }
  } else {
    double p = col->type == CPF_TYPE_DECIMAL ? pow10_table[col->scale] : 1;
    int64_t lo = cond->has_lo ? lower_threshold(cond->lo, p, cond->lo_open) : INT64_MIN;
    int64_t hi = cond->has_hi ? upper_threshold(cond->hi, p, cond->hi_open) : INT64_MAX;
    /* a vectorised pass (a year of months on a 2-byte column: annee = 2023), then the
     * missing rows cleared */
    mark_value_range(col, n, lo, hi, 0, out);
    set_missing_rows(col, n, 0, out);
  }
  return 0;
}

int cond_evaluate(const cpf_dataset *ds, query_cond *cond, uint8_t *out, cpf_error *err) {
  size_t i, k, n = ds->rows;
  switch (cond->kind) {
  case COND_MASK: {
    uint32_t *codes;
    int rc;
    const cpf_column *col = &ds->cols[cond->key.column];
    if (cond->key.kind == KEY_COLUMN && col->type == CPF_TYPE_STRING && col->width <= 2) {
      /* the usual case: read the dictionary codes straight into the mask, no code array. The
       * mask is copied into a table with an entry for every value of the code's width, codes
       * past the dictionary (damaged data) reading as no value: no code can index past it. */
      size_t byte, bit, entries = col->width == 1 ? 256 : 65536, known;
      uint8_t small[256], *table = small;
      uint32_t nil = col->dict.count;
      if (cond->mask_len <= nil) {
        cpf_error_set(err, CPF_ERR_USAGE, "condition mask has %zu entries for %u key values", cond->mask_len,
                      (unsigned)nil + 1);
        return -1;
      }
      if (entries > sizeof small && !(table = alloc_rows(entries, 1, err))) return -1;
      known = nil < entries ? nil : entries;
      memcpy(table, cond->mask, known);
      memset(table + known, cond->mask[nil], entries - known);
      if (col->width == 1) {
        const uint8_t *v = col->data;
        for (i = 0; i < n; i++) out[i] = table[v[i]];
      } else {
        const uint16_t *v = col->data;
        for (i = 0; i < n; i++) out[i] = table[v[i]];
      }
      if (table != small) free(table);
      if (col->missing_bits)
        for (byte = 0; byte * 8 < n; byte++)
          for (bit = 0; bit < 8 && byte * 8 + bit < n; bit++)
            if ((col->missing_bits[byte] >> bit) & 1) out[byte * 8 + bit] = cond->mask[nil];
      return 0;
    }
    if (!(codes = alloc_rows(n, sizeof *codes, err))) return -1;
    rc = key_compute(ds, &cond->key, codes, err);
    if (rc == 0 && cond->mask_len < cond->key.cardinality) {
      cpf_error_set(err, CPF_ERR_USAGE, "condition mask has %zu entries for %u key values", cond->mask_len,
                    (unsigned)cond->key.cardinality);
      rc = -1;
    }
    if (rc == 0)
      for (i = 0; i < n; i++) out[i] = cond->mask[codes[i]];
    key_free(&cond->key);
    free(codes);
    return rc;
  }
  case COND_RANGE: return range_evaluate(ds, cond, out);
  case COND_NULL: {
    const cpf_column *col = &ds->cols[cond->column];
    for (i = 0; i < n; i++) out[i] = (uint8_t)(is_missing(col, i) != cond->negate);
    return 0;
  }
  case COND_ROWS: memcpy(out, cond->rows, n); return 0;
  case COND_RUNS: runs_evaluate(ds, cond, out); return 0;
  case COND_NOT:
    if (cond_evaluate(ds, &cond->children[0], out, err) != 0) return -1;
    for (i = 0; i < n; i++) out[i] = !out[i];
    return 0;
  case COND_AND:
  case COND_OR: {
    uint8_t *tmp;
    memset(out, cond->kind == COND_AND, n);
    if (cond->nchildren == 0) return 0;
    if (cond_evaluate(ds, &cond->children[0], out, err) != 0) return -1;
    if (cond->nchildren == 1) return 0;
    if (!(tmp = alloc_rows(n, 1, err))) return -1;
    for (k = 1; k < cond->nchildren; k++) {
      if (cond_evaluate(ds, &cond->children[k], tmp, err) != 0) { free(tmp); return -1; }
      if (cond->kind == COND_AND) for (i = 0; i < n; i++) out[i] &= tmp[i];
      else for (i = 0; i < n; i++) out[i] |= tmp[i];
    }
    free(tmp);
    return 0;
  }
  }
  return -1;
}

/* ---- group ids: keys combined two at a time, directly while the product is small, through a
 * hash of (group so far, key code) pairs beyond. Each step keeps what is needed to decode. ---- */
typedef struct {
  int hashed;
  uint32_t radix;     /* direct: id = previous * radix + code */
  uint32_t *previous; /* hashed: per new id, the previous id and the key code */
  uint32_t *code;
  uint32_t count;     /* ids after this step */
} combine_step;

static int combine_hashed(uint32_t *gid, const uint32_t *codes, size_t n, combine_step *step,
                          cpf_error *err) {
  size_t cap = 1024, i;
  uint64_t *slots, mask;
  uint32_t count = 0;
  while (cap < 4 * (size_t)1024 && cap < 2 * n) cap *= 2;
  slots = cpf_calloc(cap, sizeof *slots);
  step->previous = cpf_malloc(64 * sizeof *step->previous);
  step->code = cpf_malloc(64 * sizeof *step->code);
  if (!slots || !step->previous || !step->code) goto oom;
  mask = cap - 1;
  for (i = 0; i < n; i++) {
    uint64_t pair, h, j;
    if (gid[i] == QUERY_NO_GROUP) continue;
    pair = ((uint64_t)gid[i] << 32) | codes[i];
    h = pair * 0x9E3779B97F4A7C15ull;
    for (j = (h >> 32) & mask;; j = (j + 1) & mask) {
      uint64_t s = slots[j];
      if (s == 0) { /* new pair: slot holds id + 1 in the low half, pair is re-read from arrays */
        if ((count & (count - 1)) == 0 && count >= 64) {
          uint32_t *p = cpf_realloc(step->previous, (size_t)count * 2 * sizeof *p);
          uint32_t *c = p ? cpf_realloc(step->code, (size_t)count * 2 * sizeof *c) : NULL;
          if (p) step->previous = p;
          if (!c) goto oom;
          step->code = c;
        }
        step->previous[count] = gid[i];
        step->code[count] = codes[i];
        slots[j] = ++count;
        if ((size_t)count * 2 > cap) { /* grow: rehash every id */
          size_t newcap = cap * 2, id;
          uint64_t *bigger = cpf_calloc(newcap, sizeof *bigger);
          if (!bigger) goto oom;
          for (id = 0; id < count; id++) {
            uint64_t pp = ((uint64_t)step->previous[id] << 32) | step->code[id], jj;
            for (jj = ((pp * 0x9E3779B97F4A7C15ull) >> 32) & (newcap - 1); bigger[jj];
                 jj = (jj + 1) & (newcap - 1)) {}
            bigger[jj] = id + 1;
          }
          free(slots);
          slots = bigger;
          cap = newcap;
          mask = cap - 1;
        }
        gid[i] = count - 1;
        break;
      }
      if (step->previous[s - 1] == gid[i] && step->code[s - 1] == codes[i]) {
        gid[i] = (uint32_t)(s - 1);
        break;
      }
    }
  }
  free(slots);
  step->hashed = 1;
  step->count = count;
  return 0;
oom:
  free(slots);
  cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
  return -1;
}

/* ---- aggregates ---- */
/* Σ of an integer-like column per slot, and the count of values summed. The loop is written
 * once per storage width so that the compiler sees a plain array walk. Every gid is a valid
 * slot here: unselected rows have their own slot (see query_run). Integer sums are uint64_t:
 * they wrap where an int64_t would overflow (undefined behaviour) on extreme stored values. */
#define SUM_LOOP(T)                                                                           \
  {                                                                                           \
    const T *v = (const T *)col->data;                                                        \
    if (!keep && !mb) { /* every row counts: the counts are the group sizes */              \
      for (i = 0; i < n; i++) sum[gid[i]] += SUM_TERM(v[i]);                                  \
      memcpy(count, slot_rows, nslots * sizeof *count);                                       \
    } else {                                                                                  \
      for (i = 0; i < n; i++) {                                                               \
        uint32_t g = gid[i];                                                                  \
        if ((keep && !keep[i]) || (mb && ((mb[i >> 3] >> (i & 7)) & 1)))                      \
          continue;                                                                           \
        sum[g] += SUM_TERM(v[i]);                                                             \
        count[g]++;                                                                           \
      }                                                                                       \
    }                                                                                         \
  }

/* Few slots, every row counted: four partial sums per slot, so that consecutive rows of one
 * slot (the rows a selection dropped, runs of one group in a sorted file) add to different
 * counters instead of each waiting for the previous add to the same one. Integers only: the
 * order of a double sum is kept as it is (its rounding depends on it). */
#define SUM4_LOOP(T)                                                                          \
  {                                                                                           \
    const T *v = (const T *)col->data;                                                        \
    for (i = 0; i + 4 <= n; i += 4) {                                                         \
      part[gid[i]] += (uint64_t)v[i];                                                         \
      part[nslots + gid[i + 1]] += (uint64_t)v[i + 1];                                        \
      part[2 * nslots + gid[i + 2]] += (uint64_t)v[i + 2];                                    \
      part[3 * nslots + gid[i + 3]] += (uint64_t)v[i + 3];                                    \
    }                                                                                         \
    for (; i < n; i++) part[gid[i]] += (uint64_t)v[i];                                        \
  }

#define SUM_TERM(x) (uint64_t)(x) /* modulo 2^64: two's complement sums */
static void sum_integers(const cpf_column *col, const uint32_t *gid, const uint8_t *keep,
                         uint64_t *sum, int64_t *count, size_t n, const int64_t *slot_rows,
                         size_t nslots) {
  const uint8_t *mb = col->missing_bits;
  size_t i;
  uint64_t *part = !keep && !mb && nslots <= 4096 ? cpf_calloc(4 * nslots, sizeof *part) : NULL;
  if (part) {
    size_t g;
    switch (col->width) {
    case 1: SUM4_LOOP(int8_t) break;
    case 2: SUM4_LOOP(int16_t) break;
    case 4: SUM4_LOOP(int32_t) break;
    default: SUM4_LOOP(int64_t) break;
    }
    for (g = 0; g < nslots; g++) sum[g] += part[g] + part[nslots + g] + part[2 * nslots + g] + part[3 * nslots + g];
    memcpy(count, slot_rows, nslots * sizeof *count);
    free(part);
    return;
  }
  switch (col->width) {
  case 1: SUM_LOOP(int8_t) break;
  case 2: SUM_LOOP(int16_t) break;
  case 4: SUM_LOOP(int32_t) break;
  default: SUM_LOOP(int64_t) break;
  }
}

/* Whether a sum of this integer-like column over n rows may leave the 64-bit integers: only
 * when its largest magnitude times the rows does (never for the CPF columns), and then the
 * sums are added with a check (sum_integers_checked). */
static int sum_may_overflow(const cpf_column *col, size_t n) {
  uint64_t lo = col->min < 0 ? (uint64_t)0 - (uint64_t)col->min : (uint64_t)col->min;
  uint64_t hi = col->max < 0 ? (uint64_t)0 - (uint64_t)col->max : (uint64_t)col->max;
  uint64_t big = lo > hi ? lo : hi;
  if (n == 0 || col->min > col->max) return n > 0; /* no extent known: check */
  return big > (uint64_t)INT64_MAX / n;
}

/* The same sums as sum_integers, each addition checked: a running total that would leave the
 * 64-bit integers is an error naming the column, never a wrapped sum. */
static int sum_integers_checked(const cpf_column *col, const uint32_t *gid, const uint8_t *keep,
                                uint64_t *sum, int64_t *count, size_t n, cpf_error *err) {
  size_t i;
  for (i = 0; i < n; i++) {
    uint32_t g = gid[i];
    int64_t s, v;
    if (g == QUERY_NO_GROUP || (keep && !keep[i]) || is_missing(col, i)) continue;
    s = (int64_t)sum[g];
    v = column_integer_at(col, i);
    if ((v > 0 && s > INT64_MAX - v) || (v < 0 && s < INT64_MIN - v)) {
      cpf_error_set(err, CPF_ERR_DATA, "the sum of '%s' leaves the 64-bit integers (its values are too large to "
                    "add up)", col->name);
      return -1;
    }
    sum[g] = (uint64_t)(s + v);
    count[g]++;
  }
  return 0;
}

#undef SUM_TERM
#define SUM_TERM(x) (x)
static void sum_numbers(const cpf_column *col, const uint32_t *gid, const uint8_t *keep,
                        double *sum, int64_t *count, size_t n, const int64_t *slot_rows,
                        size_t nslots) {
  const uint8_t *mb = col->missing_bits;
  size_t i;
  SUM_LOOP(double)
}

/* Rows kept by the aggregate's filter where every given column has a value; NULL when that
 * is all rows (no filter, nothing missing), so that the fast loops run. */
static uint8_t *rows_with_values(const cpf_dataset *ds, const uint8_t *keep, const cpf_column *a,
                                 const cpf_column *b, cpf_error *err) {
  size_t i, n = ds->rows;
  uint8_t *out;
  if (!(a && a->missing_bits) && !(b && b->missing_bits)) return NULL;
  if (!(out = alloc_rows(n, 1, err))) return NULL;
  for (i = 0; i < n; i++)
    out[i] = (uint8_t)((!keep || keep[i]) && !(a && is_missing(a, i)) && !(b && is_missing(b, i)));
  return out;
}

typedef struct {
  uint64_t *isum, *isum2; /* integer sums, modulo 2^64 */
  int64_t *count, *iext;  /* iext: integer min or max */
  double *dsum, *dsum2;
  uint8_t *seen;
} accumulators;

static int agg_prepare(cpf_dataset *ds, accumulators *acc, size_t nslots, cpf_error *err) {
  memset(acc, 0, sizeof *acc);
  if (!(acc->isum = scratch_take(ds, SCRATCH_ISUM, nslots * sizeof *acc->isum, err)) ||
      !(acc->isum2 = scratch_take(ds, SCRATCH_ISUM2, nslots * sizeof *acc->isum2, err)) ||
      !(acc->iext = scratch_take(ds, SCRATCH_IEXT, nslots * sizeof *acc->iext, err)) ||
      !(acc->count = scratch_take(ds, SCRATCH_COUNT, nslots * sizeof *acc->count, err)) ||
      !(acc->dsum = scratch_take(ds, SCRATCH_DSUM, nslots * sizeof *acc->dsum, err)) ||
      !(acc->dsum2 = scratch_take(ds, SCRATCH_DSUM2, nslots * sizeof *acc->dsum2, err)) ||
      !(acc->seen = scratch_take(ds, SCRATCH_SEEN, nslots, err)))
    return -1;
  return 0;
}

static void agg_release(cpf_dataset *ds, accumulators *acc) {
  scratch_give(ds, SCRATCH_ISUM, acc->isum);
  scratch_give(ds, SCRATCH_ISUM2, acc->isum2);
  scratch_give(ds, SCRATCH_IEXT, acc->iext);
  scratch_give(ds, SCRATCH_COUNT, acc->count);
  scratch_give(ds, SCRATCH_DSUM, acc->dsum);
  scratch_give(ds, SCRATCH_DSUM2, acc->dsum2);
  scratch_give(ds, SCRATCH_SEEN, acc->seen);
}

/* A total order, NaN last: qsort is undefined with a comparison that is not one, and a number
 * column can hold NaN bits. */
static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  if (x != x || y != y) return (x != x) - (y != y);
  return (x > y) - (x < y);
}

/* The total order of compare_doubles as a strict "less": NaN last. */
static int double_less(double x, double y) {
  return x == x && (y != y || x < y);
}

/* Puts the k-th smallest of v[0..m) at v[k], the smaller ones before it and the others after
 * (nth_element): quickselect with a median-of-three pivot and a three-way partition, so that
 * runs of equal values (prices, durations) cost one pass; after 2 log2(m) + 8 rounds without
 * converging (a pattern built against the pivot choice) the rest is sorted, so the worst case
 * stays O(m log m). A quantile needs this, not a sort of every group. */
static void select_kth(double *v, size_t m, size_t k) {
  size_t lo = 0, hi = m, rounds = 0, limit = 8;
  size_t t;
  for (t = m; t > 1; t >>= 1) limit += 2;
  while (hi - lo > 1) {
    double a, b, c, pivot;
    size_t lt, gt, i;
    if (++rounds > limit) { qsort(v + lo, hi - lo, sizeof *v, compare_doubles); return; }
    a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi - 1];
    /* the median of the three under the total order */
    if (double_less(a, b)) pivot = double_less(b, c) ? b : (double_less(a, c) ? c : a);
    else pivot = double_less(a, c) ? a : (double_less(b, c) ? c : b);
    /* [lo, lt): less than the pivot, [lt, i): equal, (gt, hi): greater */
    lt = lo, i = lo, gt = hi;
    while (i < gt) {
      double x = v[i];
      if (double_less(x, pivot)) { v[i] = v[lt]; v[lt] = x; lt++; i++; }
      else if (double_less(pivot, x)) { gt--; v[i] = v[gt]; v[gt] = x; }
      else i++;
    }
    if (k < lt) hi = lt;
    else if (k >= gt) lo = gt;
    else return; /* v[k] equals the pivot, in its place */
  }
}

/* The quantile of m values from the order statistic k = floor((m - 1) q), selected in v[0..c)
 * where it has rank r (the c values from rank k - r on: k's and k + 1's), R type 7 between them:
 * the statistic above k is the least of the values after it. */
static double quantile_from(double *v, size_t c, size_t r, size_t m, double q) {
  double h = (double)(m - 1) * q, lo = floor(h), below, above;
  size_t j;
  select_kth(v, c, r);
  below = above = v[r];
  if ((size_t)lo + 1 < m) {
    above = v[r + 1];
    for (j = r + 2; j < c; j++) if (double_less(v[j], above)) above = v[j];
  }
  return below + (h - lo) * (above - below);
}

#define KEY_BLOCK 2048

/* The order keys of rows [start, start + count) of a numeric column, count <= KEY_BLOCK: one
 * loop per storage width, so that the compiler sees a plain array walk. The quantiles' buckets
 * are equal ranges of these keys: their top bits grow with the logarithm of the value, so skewed
 * data (amounts: many small, a few huge) spreads over buckets of similar counts, where equal
 * ranges of the values would put most in the first. */
static void block_keys(const cpf_column *col, size_t start, size_t count, uint64_t *out) {
  size_t i;
  double unit = col->type == CPF_TYPE_DECIMAL ? 1 / pow10_table[col->scale] : 1;
  if (col->type == CPF_TYPE_NUMBER) {
    const double *v = (const double *)col->data + start;
    for (i = 0; i < count; i++) out[i] = order_double_key(v[i]);
    return;
  }
  /* order_double_key without its NaN and -0 cases, which an integer times unit never is:
   * branch-free, so that the compiler can vectorize the loop */
#define KEYS_OF(T)                                                               \
  {                                                                              \
    const T *v = (const T *)col->data + start;                                   \
    for (i = 0; i < count; i++) {                                                \
      double d = (double)v[i] * unit;                                            \
      uint64_t bits, negative;                                                   \
      memcpy(&bits, &d, sizeof bits);                                            \
      negative = 0 - (bits >> 63);                                               \
      out[i] = bits ^ (negative | (uint64_t)1 << 63);                           \
    }                                                                            \
  }
  switch (col->width) {
  case 1: KEYS_OF(int8_t) break;
  case 2: KEYS_OF(int16_t) break;
  case 4: KEYS_OF(int32_t) break;
  default: KEYS_OF(int64_t) break;
  }
#undef KEYS_OF
}

/* block_keys' key of one stored integer of a column with that unit. */
static uint64_t integer_order_key(int64_t v, double unit) {
  double d = (double)v * unit;
  uint64_t bits, negative;
  memcpy(&bits, &d, sizeof bits);
  negative = 0 - (bits >> 63);
  return bits ^ (negative | (uint64_t)1 << 63);
}

/* The stored integers of [min, max] whose keys fall in [klo, khi] (the keys grow with the
 * integers): *vlo..*vhi, found by bisection; 0 when there is none. */
static int integer_range_of_keys(int64_t min, int64_t max, double unit, uint64_t klo, uint64_t khi,
                                 int64_t *vlo, int64_t *vhi) {
  int64_t a = min, b = max;
  if (min > max || integer_order_key(max, unit) < klo || integer_order_key(min, unit) > khi) return 0;
  while (a < b) { /* the first integer with a key >= klo (the lower middle) */
    int64_t m = a + (int64_t)(((uint64_t)b - (uint64_t)a) / 2);
    if (integer_order_key(m, unit) >= klo) b = m; else a = m + 1;
  }
  *vlo = a;
  b = max;
  while (a < b) { /* the last integer with a key <= khi; the upper middle, without a + 1 that
                    * would overflow over the whole int64 range */
    int64_t m = b - (int64_t)(((uint64_t)b - (uint64_t)a) / 2);
    if (integer_order_key(m, unit) <= khi) a = m; else b = m - 1;
  }
  *vhi = a;
  return *vlo <= *vhi;
}

/* Whether row i takes part in a quantile of `slots` slots. */
#define QUANTILE_ROW(i) \
  ((!gid || gid[i] < slots) && (!keep || keep[i]) && (!mb || !((mb[(i) >> 3] >> ((i) & 7)) & 1)))
#define QUANTILE_SLOT(i) (gid ? (size_t)gid[i] : 0)

#define QUANTILE_MAX_SLOTS 1024

/* Quantiles of a few groups (at most QUANTILE_MAX_SLOTS) without copying their values: a
 * histogram of each group's values over B buckets of their order keys, then only the values of
 * the one or two buckets holding the order statistics k and k + 1 are copied and selected.
 * Three passes over the column; for most data the copy is a thousandth of the rows. */
static int quantile_by_buckets(const cpf_dataset *ds, const uint32_t *gid, const uint8_t *keep,
                               query_agg **list, size_t nq, size_t slots, cpf_error *err) {
  const cpf_column *col = &ds->cols[list[0]->column];
  const uint8_t *mb = col->missing_bits;
  size_t n = ds->rows, i, j, g, a, nb = 16384, total = 0, ns = nq * slots; /* (a, g) at a * slots + g */
  uint64_t lo = UINT64_MAX, hi = 0, keys[KEY_BLOCK];
  unsigned shift = 0;
  size_t *count = cpf_calloc(slots ? slots : 1, sizeof *count), *at = cpf_calloc(ns ? ns : 1, sizeof *at);
  size_t *below = cpf_calloc(ns ? ns : 1, sizeof *below), *cand = cpf_calloc(ns ? ns : 1, sizeof *cand);
  uint32_t *first = cpf_calloc(ns ? ns : 1, sizeof *first), *second = cpf_calloc(ns ? ns : 1, sizeof *second);
  uint32_t *hist = NULL;
  double *values = NULL;
  int rc = -1;
  while (nb > 256 && slots * nb > ((size_t)1 << 18)) nb /= 2; /* the histograms stay in 1 MB */
  if (!count || !at || !below || !cand || !first || !second) goto oom;
  if (col->type == CPF_TYPE_NUMBER) { /* the range of the keys; integer columns know theirs */
    for (i = 0; i < n; i += KEY_BLOCK) {
      size_t m = n - i < KEY_BLOCK ? n - i : KEY_BLOCK;
      block_keys(col, i, m, keys);
      for (j = 0; j < m; j++) {
        if (!QUANTILE_ROW(i + j)) continue;
        if (keys[j] < lo) lo = keys[j];
        if (keys[j] > hi) hi = keys[j];
      }
    }
  } else if (col->min <= col->max) {
    double unit = col->type == CPF_TYPE_DECIMAL ? 1 / pow10_table[col->scale] : 1;
    lo = order_double_key((double)col->min * unit);
    hi = order_double_key((double)col->max * unit);
  }
  if (lo > hi) { rc = 0; goto done; } /* no value in any group */
  while (((hi - lo) >> shift) >= nb) shift++;
  /* clamped: a stored range that a damaged snapshot got wrong costs a wrong answer, not memory */
#define BUCKET_OF(key) ((key) < lo ? 0 : (key) > hi ? nb - 1 : (size_t)(((key) - lo) >> shift))
  if (!(hist = pool_calloc(ds->pool, slots * nb * sizeof *hist))) goto oom;
  for (i = 0; i < n; i += KEY_BLOCK) { /* one histogram for every quantile of the column */
    size_t m = n - i < KEY_BLOCK ? n - i : KEY_BLOCK;
    block_keys(col, i, m, keys);
    if (!gid && !keep && !mb) /* every row, one group (a median of all rows): the plain loop */
      for (j = 0; j < m; j++) hist[BUCKET_OF(keys[j])]++;
    else
      for (j = 0; j < m; j++)
        if (QUANTILE_ROW(i + j)) hist[QUANTILE_SLOT(i + j) * nb + BUCKET_OF(keys[j])]++;
  }
  /* each quantile and group: the buckets of its statistics k and k + 1, the values before */
  for (g = 0; g < slots; g++) {
    const uint32_t *h = hist + g * nb;
    size_t m = 0, b;
    for (b = 0; b < nb; b++) m += h[b]; /* the group's number of values */
    count[g] = m;
    if (m == 0) continue;
    for (a = 0; a < nq; a++) {
      size_t k = (size_t)floor((double)(m - 1) * list[a]->q), before = 0, x = a * slots + g;
      for (b = 0; before + h[b] <= k; b++) before += h[b];
      first[x] = second[x] = (uint32_t)b;
      below[x] = before;
      if (k + 1 < m && before + h[b] == k + 1) { /* k + 1 opens a later bucket */
        size_t b2 = b + 1;
        while (h[b2] == 0) b2++;
        second[x] = (uint32_t)b2;
      }
      cand[x] = h[first[x]] + (second[x] != first[x] ? h[second[x]] : 0);
      at[x] = total;
      total += cand[x];
    }
  }
  if (!(values = pool_alloc(ds->pool, total * sizeof *values))) goto oom;
  if (!gid && !keep && !mb && col->type != CPF_TYPE_NUMBER && nq <= 4 && col->min <= col->max) {
    /* every row, one group, an integer-like column (a median of all rows): each quantile's
     * candidates are the integers of a range, compared as they are stored */
    int64_t vlo[4], vhi[4];
    double unit = col->type == CPF_TYPE_DECIMAL ? 1 / pow10_table[col->scale] : 1;
    int any[4], done;
    size_t cand_start[4];
    for (a = 0; a < nq; a++) cand_start[a] = at[a];
    for (a = 0; a < nq; a++) { /* buckets first..second; the end ones take what the clamp put in them */
      uint64_t klo = first[a] == 0 ? 0 : lo + ((uint64_t)first[a] << shift);
      uint64_t khi = second[a] >= nb - 1 ? UINT64_MAX : lo + ((uint64_t)(second[a] + 1) << shift) - 1;
      any[a] = integer_range_of_keys(col->min, col->max, unit, klo, khi, &vlo[a], &vhi[a]);
      if (any[a] && first[a] == 0) vlo[a] = INT64_MIN;
      if (any[a] && second[a] >= nb - 1) vhi[a] = INT64_MAX;
    }
    uint64_t span[4];
    for (a = 0; a < nq; a++) span[a] = any[a] ? (uint64_t)vhi[a] - (uint64_t)vlo[a] : 0;
    /* one unsigned comparison a value: rarely true, so predicted (v >= vlo alone is true for half
     * the rows of a median) */
#define CANDIDATES_OF(T)                                                                  \
    {                                                                                     \
      const T *v = (const T *)col->data;                                                  \
      for (a = 0; a < nq; a++) {                                                          \
        uint64_t from = (uint64_t)vlo[a], width = span[a];                                \
        double *out = values + at[a];                                                     \
        if (!any[a]) continue;                                                            \
        for (i = 0; i < n; i++)                                                           \
          if ((uint64_t)(int64_t)v[i] - from <= width) *out++ = value_as_double(col, i);  \
        at[a] = (size_t)(out - values);                                                   \
      }                                                                                   \
    }
    switch (col->width) {
    case 1: CANDIDATES_OF(int8_t) break;
    case 2: CANDIDATES_OF(int16_t) break;
    case 4: CANDIDATES_OF(int32_t) break;
    default: CANDIDATES_OF(int64_t) break;
    }
#undef CANDIDATES_OF
    /* each quantile must have found its histogram's count: values outside the stored range (a
     * snapshot changed under its checks) land in the end buckets, not in the range; then the
     * general pass below copies them as the histogram counted them */
    for (a = 0, done = 1; a < nq; a++) done &= at[a] - cand_start[a] == cand[a];
    if (done) n = 0; /* the general pass below has nothing left to do */
    else
      for (a = 0; a < nq; a++) at[a] = cand_start[a];
  }
  for (i = 0; i < n; i += KEY_BLOCK) { /* one pass copies the candidates of every quantile */
    size_t m = n - i < KEY_BLOCK ? n - i : KEY_BLOCK;
    block_keys(col, i, m, keys);
    for (j = 0; j < m; j++) {
      uint32_t b;
      size_t gg = QUANTILE_SLOT(i + j);
      if (!QUANTILE_ROW(i + j)) continue;
      b = (uint32_t)BUCKET_OF(keys[j]);
      for (a = 0; a < nq; a++) {
        size_t x = a * slots + gg;
        if (b == first[x] || b == second[x]) values[at[x]++] = value_as_double(col, i + j);
      }
    }
  }
  for (a = 0; a < nq; a++)
    for (g = 0; g < slots; g++) {
      size_t m = count[g], x = a * slots + g, k;
      if (m == 0) continue;
      k = (size_t)floor((double)(m - 1) * list[a]->q);
      list[a]->numbers[g] = quantile_from(values + (at[x] - cand[x]), cand[x], k - below[x], m, list[a]->q);
      list[a]->present[g] = 1;
    }
  rc = 0;
  goto done;
oom:
  cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
done:
  free(count); free(at); free(below); free(cand); free(first); free(second);
  pool_free(ds->pool, hist);
  pool_free(ds->pool, values);
  return rc;
}
#undef QUANTILE_ROW
#undef QUANTILE_SLOT
#undef BUCKET_OF

/* Quantile q of each slot's values, linear between order statistics (R type 7, numpy default).
 * The last slot holds the rows the selection dropped (query_run): never reported, not computed.
 * Few groups: by buckets; many: each group's values copied together, then selected. */
static int agg_quantile(const cpf_dataset *ds, const uint32_t *gid, const uint8_t *keep,
                        query_agg *agg, size_t nslots, cpf_error *err) {
  const cpf_column *col = &ds->cols[agg->column];
  size_t n = ds->rows, i, g;
  if (nslots > 0) nslots--; /* the dropped rows' slot */
  if (nslots <= QUANTILE_MAX_SLOTS) return quantile_by_buckets(ds, gid, keep, &agg, 1, nslots, err);
  size_t *start = pool_calloc(ds->pool, (nslots + 1) * sizeof *start), *fill;
  double *values;
  if (!start) { cpf_error_set(err, CPF_ERR_MEMORY, "out of memory"); return -1; }
  for (i = 0; i < n; i++)
    if (gid[i] < nslots && (!keep || keep[i]) && !is_missing(col, i)) start[gid[i] + 1]++;
  for (g = 0; g < nslots; g++) start[g + 1] += start[g];
  values = pool_alloc(ds->pool, start[nslots] * sizeof *values);
  fill = pool_alloc(ds->pool, nslots * sizeof *fill);
  if (!values || !fill) {
    pool_free(ds->pool, start);
    pool_free(ds->pool, values);
    pool_free(ds->pool, fill);
    cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
    return -1;
  }
  memcpy(fill, start, nslots * sizeof *fill);
  for (i = 0; i < n; i++)
    if (gid[i] < nslots && (!keep || keep[i]) && !is_missing(col, i))
      values[fill[gid[i]]++] = value_as_double(col, i);
  for (g = 0; g < nslots; g++) {
    size_t m = start[g + 1] - start[g];
    if (m == 0) continue;
    agg->numbers[g] = quantile_from(values + start[g], m, (size_t)floor((double)(m - 1) * agg->q), m, agg->q);
    agg->present[g] = 1;
  }
  pool_free(ds->pool, start);
  pool_free(ds->pool, values);
  pool_free(ds->pool, fill);
  return 0;
}

#define DISTINCT_BITMAP_BITS ((size_t)1 << 26) /* 8 MB */

/* Distinct codes (or integers in a small range) per slot: one bit per (slot, value), set once;
 * a new bit counts. For few groups and a dictionary of moderate size: no hashing at all. */
static void distinct_by_bitmap(const cpf_dataset *ds, const uint32_t *gid, const uint8_t *keep,
                               query_agg *agg, size_t slots, int64_t lo, size_t width,
                               uint8_t *bits) {
  const cpf_column *col = &ds->cols[agg->column];
  size_t i;
  for (i = 0; i < ds->rows; i++) {
    size_t at;
    uint32_t g = gid[i];
    if (g >= slots || (keep && !keep[i]) || is_missing(col, i)) continue;
    if (col->type == CPF_TYPE_STRING) {
      uint32_t code = column_code_at(col, i);
      if (code >= col->dict.count) continue; /* damaged data: no value, as elsewhere */
      at = (size_t)g * width + code;
    } else {
      at = (size_t)g * width + (size_t)(column_integer_at(col, i) - lo);
    }
    if (!((bits[at >> 3] >> (at & 7)) & 1)) {
      bits[at >> 3] |= (uint8_t)(1u << (at & 7));
      agg->integers[g]++;
      agg->present[g] = 1;
    }
  }
}

/* Distinct values per slot, the last slot (the rows the selection dropped) left out: by bitmap
 * where it is small (see above), else a hash set of (slot, value) pairs; each new pair counts. */
static int agg_distinct(const cpf_dataset *ds, const uint32_t *gid, const uint8_t *keep,
                        query_agg *agg, size_t nslots, cpf_error *err) {
  const cpf_column *col = &ds->cols[agg->column];
  size_t n = ds->rows, i, cap = 1024, used = 0, width = 0;
  uint64_t (*set)[2] = NULL;
  int64_t lo = 0;
  if (nslots > 0) nslots--; /* the dropped rows' slot */
  if (col->type == CPF_TYPE_STRING) {
    width = col->dict.count;
  } else if (is_integer_like(col)) { /* the range of the values, if it is small */
    int64_t hi = INT64_MIN;
    lo = INT64_MAX;
    for (i = 0; i < n; i++) {
      int64_t v;
      if (gid[i] >= nslots || is_missing(col, i)) continue;
      v = column_integer_at(col, i);
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    width = lo > hi ? 1 : (uint64_t)hi - (uint64_t)lo < DISTINCT_BITMAP_BITS ? (size_t)((uint64_t)hi - (uint64_t)lo) + 1 : 0;
  }
  if (width > 0 && nslots <= DISTINCT_BITMAP_BITS / width) {
    uint8_t *bits = pool_calloc(ds->pool, (nslots * width + 7) / 8 + 1);
    if (!bits) { cpf_error_set(err, CPF_ERR_MEMORY, "out of memory"); return -1; }
    distinct_by_bitmap(ds, gid, keep, agg, nslots, lo, width, bits);
    pool_free(ds->pool, bits);
    return 0;
  }
  for (i = 0; i < n; i++) if (gid[i] < nslots) used++;
  while (cap < used * 2) cap *= 2;
  set = pool_calloc(ds->pool, cap * sizeof *set);
  if (!set) { cpf_error_set(err, CPF_ERR_MEMORY, "out of memory"); return -1; }
  for (i = 0; i < n; i++) {
    uint64_t v, h, j;
    if (gid[i] >= nslots || (keep && !keep[i]) || is_missing(col, i)) continue;
    if (col->type == CPF_TYPE_STRING) v = column_code_at(col, i);
    else if (col->type == CPF_TYPE_NUMBER) {
      double d = normalize_zero(column_number_at(col, i));
      memcpy(&v, &d, sizeof v);
    } else v = (uint64_t)column_integer_at(col, i);
    h = (v * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)gid[i] * 0xc4ceb9fe1a85ec53ull);
    for (j = (h >> 20) & (cap - 1);; j = (j + 1) & (cap - 1)) {
      if (set[j][0] == 0) { /* slot + 1 in [0], so that 0 means free */
        set[j][0] = (uint64_t)gid[i] + 1;
        set[j][1] = v;
        agg->integers[gid[i]]++;
        agg->present[gid[i]] = 1;
        break;
      }
      if (set[j][0] == (uint64_t)gid[i] + 1 && set[j][1] == v) break;
    }
  }
  pool_free(ds->pool, set);
  return 0;
}

out_kind column_out_kind(const cpf_column *col) {
  switch (col->type) {
  case CPF_TYPE_NUMBER: return OUT_NUMBER;
  case CPF_TYPE_DECIMAL: return OUT_SCALED;
  case CPF_TYPE_MONTH: return OUT_MONTH;
  case CPF_TYPE_DATE: return OUT_DATE;
  default: return OUT_INTEGER;
  }
}

static int check_numeric(const cpf_column *col, const char *what, cpf_error *err) {
  if (col->type == CPF_TYPE_STRING) {
    cpf_error_set(err, CPF_ERR_USAGE, "%s needs a numeric column, '%s' is a string column", what, col->name);
    return -1;
  }
  return 0;
}

static const char *const agg_names[] = {"count", "count", "sum", "mean", "min", "max", "ratio",
                                        "wmean", "distinct", "quantile"};

/* all_rows: gid puts every row in slot 0 (a query without keys or condition), which the
 * quantiles read without gid. */
static int agg_run(cpf_dataset *ds, const uint32_t *gid, int all_rows, const int64_t *slot_rows,
                   query_agg *agg, size_t nslots,
                   cpf_error *err) {
  size_t n = ds->rows, i, g;
  const cpf_column *a = agg->column >= 0 ? &ds->cols[agg->column] : NULL;
  const cpf_column *b = agg->column2 >= 0 ? &ds->cols[agg->column2] : NULL;
  uint8_t *keep = NULL;
  accumulators acc;
  int rc = -1;
  agg->integers = pool_calloc(ds->pool, nslots * sizeof *agg->integers);
  agg->numbers = pool_calloc(ds->pool, nslots * sizeof *agg->numbers);
  agg->present = pool_calloc(ds->pool, nslots);
  if (!agg->integers || !agg->numbers || !agg->present) { cpf_error_set(err, CPF_ERR_MEMORY, "out of memory"); return -1; }
  if (agg->kind != AGG_COUNT && agg->kind != AGG_COUNT_VALUES && agg->kind != AGG_DISTINCT &&
      check_numeric(a, agg_names[agg->kind], err) != 0)
    return -1;
  if ((agg->kind == AGG_RATIO || agg->kind == AGG_WMEAN) && check_numeric(b, agg_names[agg->kind], err) != 0)
    return -1;
  if (agg->filter) {
    if (!(keep = alloc_rows(n, 1, err))) return -1;
    if (cond_evaluate(ds, agg->filter, keep, err) != 0) { free(keep); return -1; }
  }
  agg->out = OUT_INTEGER;
  agg->scale = 0;
  if (agg->kind == AGG_QUANTILE) {
    agg->out = OUT_NUMBER;
    rc = agg_quantile(ds, all_rows ? NULL : gid, keep, agg, nslots, err);
    free(keep);
    return rc;
  }
  if (agg->kind == AGG_DISTINCT) {
    rc = agg_distinct(ds, gid, keep, agg, nslots, err);
    for (g = 0; g < nslots; g++) agg->present[g] = 1; /* a group with no value has 0 distinct */
    free(keep);
    return rc;
  }
  if (agg_prepare(ds, &acc, nslots ? nslots : 1, err) != 0) goto done;
  switch (agg->kind) {
  case AGG_COUNT:
    for (i = 0; i < n; i++)
      if (gid[i] != QUERY_NO_GROUP && (!keep || keep[i])) acc.count[gid[i]]++;
    break;
  case AGG_COUNT_VALUES:
    for (i = 0; i < n; i++)
      if (gid[i] != QUERY_NO_GROUP && (!keep || keep[i]) && !is_missing(a, i)) acc.count[gid[i]]++;
    break;
  case AGG_SUM:
  case AGG_MEAN:
    if (a->type == CPF_TYPE_NUMBER) sum_numbers(a, gid, keep, acc.dsum, acc.count, n, slot_rows, nslots);
    else if (sum_may_overflow(a, n)) {
      if (sum_integers_checked(a, gid, keep, acc.isum, acc.count, n, err) != 0) goto done;
    } else sum_integers(a, gid, keep, acc.isum, acc.count, n, slot_rows, nslots);
    break;
  case AGG_RATIO: {
    /* both sums over the rows where both values exist */
    uint8_t *both = rows_with_values(ds, keep, a, b, err);
    const uint8_t *rows = both ? both : keep;
    if (err->code) goto done;
    if (a->type == CPF_TYPE_NUMBER) sum_numbers(a, gid, rows, acc.dsum, acc.count, n, slot_rows, nslots);
    else if (sum_may_overflow(a, n)) {
      if (sum_integers_checked(a, gid, rows, acc.isum, acc.count, n, err) != 0) { free(both); goto done; }
    } else sum_integers(a, gid, rows, acc.isum, acc.count, n, slot_rows, nslots);
    {
      int64_t *count2 = scratch_take(ds, SCRATCH_COUNT2, nslots * sizeof *count2, err);
      if (!count2) { free(both); goto done; }
      if (b->type == CPF_TYPE_NUMBER) sum_numbers(b, gid, rows, acc.dsum2, count2, n, slot_rows, nslots);
      else if (sum_may_overflow(b, n)) {
        if (sum_integers_checked(b, gid, rows, acc.isum2, count2, n, err) != 0) {
          scratch_give(ds, SCRATCH_COUNT2, count2);
          free(both);
          goto done;
        }
      } else sum_integers(b, gid, rows, acc.isum2, count2, n, slot_rows, nslots);
      scratch_give(ds, SCRATCH_COUNT2, count2);
    }
    free(both);
    break;
  }
  default:
    for (i = 0; i < n; i++) {
      uint32_t s = gid[i];
      if (s == QUERY_NO_GROUP || (keep && !keep[i])) continue;
      switch (agg->kind) {
      case AGG_MIN:
      case AGG_MAX: {
        int lower = agg->kind == AGG_MIN;
        if (is_missing(a, i)) break;
        if (a->type == CPF_TYPE_NUMBER) {
          double v = column_number_at(a, i);
          if (!acc.seen[s] || (lower ? v < acc.dsum[s] : v > acc.dsum[s])) acc.dsum[s] = v;
        } else {
          int64_t v = column_integer_at(a, i);
          if (!acc.seen[s] || (lower ? v < acc.iext[s] : v > acc.iext[s])) acc.iext[s] = v;
        }
        acc.seen[s] = 1;
        break;
      }
      case AGG_WMEAN: {
        double w;
        if (is_missing(a, i) || is_missing(b, i)) break;
        w = value_as_double(b, i);
        acc.dsum[s] += value_as_double(a, i) * w;
        acc.dsum2[s] += w;
        acc.count[s]++;
        break;
      }
      default: break;
      }
    }
    break;
  }
  for (g = 0; g < nslots; g++) {
    double pa = a && a->type == CPF_TYPE_DECIMAL ? pow10_table[a->scale] : 1;
    double pb = b && b->type == CPF_TYPE_DECIMAL ? pow10_table[b->scale] : 1;
    switch (agg->kind) {
    case AGG_COUNT:
    case AGG_COUNT_VALUES:
      agg->integers[g] = acc.count[g];
      agg->present[g] = 1;
      break;
    case AGG_SUM:
      agg->present[g] = acc.count[g] > 0;
      if (a->type == CPF_TYPE_NUMBER) { agg->out = OUT_NUMBER; agg->numbers[g] = acc.dsum[g]; }
      else {
        agg->out = a->type == CPF_TYPE_DECIMAL ? OUT_SCALED : OUT_INTEGER;
        agg->scale = a->type == CPF_TYPE_DECIMAL ? a->scale : 0;
        agg->integers[g] = (int64_t)acc.isum[g]; /* back to two's complement */
      }
      break;
    case AGG_MEAN:
      agg->out = OUT_NUMBER;
      agg->present[g] = acc.count[g] > 0;
      if (acc.count[g] > 0)
        agg->numbers[g] = (a->type == CPF_TYPE_NUMBER ? acc.dsum[g] : (double)(int64_t)acc.isum[g] / pa) / (double)acc.count[g];
      break;
    case AGG_MIN:
    case AGG_MAX:
      agg->out = column_out_kind(a);
      agg->scale = a->type == CPF_TYPE_DECIMAL ? a->scale : 0;
      agg->present[g] = acc.seen[g];
      agg->integers[g] = acc.iext[g];
      agg->numbers[g] = acc.dsum[g];
      break;
    case AGG_RATIO: {
      double num = a->type == CPF_TYPE_NUMBER ? acc.dsum[g] : (double)(int64_t)acc.isum[g] / pa;
      double den = b->type == CPF_TYPE_NUMBER ? acc.dsum2[g] : (double)(int64_t)acc.isum2[g] / pb;
      agg->out = OUT_NUMBER;
      agg->present[g] = acc.count[g] > 0 && den != 0; /* no inf, no NaN: nil */
      if (agg->present[g]) agg->numbers[g] = num / den;
      break;
    }
    case AGG_WMEAN:
      agg->out = OUT_NUMBER;
      agg->present[g] = acc.count[g] > 0 && acc.dsum2[g] != 0;
      if (agg->present[g]) agg->numbers[g] = acc.dsum[g] / acc.dsum2[g];
      break;
    default: break;
    }
    /* a sum of doubles that overflowed, a ratio or mean over infinities: no value, never a
     * NaN or an infinity in a result */
    if (agg->out == OUT_NUMBER && agg->present[g] && !isfinite(agg->numbers[g])) agg->present[g] = 0;
  }
  rc = 0;
done:
  agg_release(ds, &acc);
  free(keep);
  return rc;
}

/* Several unfiltered quantiles of one column (a median and a 90th percentile, the quartiles)
 * over few groups: one histogram and one pass for them all, computed here before the other
 * aggregates (agg_run then skips those whose arrays are set). `slots`: the query's, the
 * dropped rows' slot excluded. */
static int quantiles_together(const cpf_dataset *ds, const uint32_t *gid, query_agg *aggs,
                              size_t naggs, size_t slots, cpf_error *err) {
  size_t k, j, nq;
  query_agg **list;
  if (slots > QUANTILE_MAX_SLOTS || naggs < 2) return 0;
  if (!(list = cpf_malloc(naggs * sizeof *list))) { cpf_error_set(err, CPF_ERR_MEMORY, "out of memory"); return -1; }
  for (k = 0; k < naggs; k++) {
    if (aggs[k].kind != AGG_QUANTILE || aggs[k].filter || aggs[k].numbers) continue;
    if (ds->cols[aggs[k].column].type == CPF_TYPE_STRING) continue; /* agg_run says why */
    for (nq = 0, j = k; j < naggs; j++)
      if (aggs[j].kind == AGG_QUANTILE && !aggs[j].filter && !aggs[j].numbers &&
          aggs[j].column == aggs[k].column)
        list[nq++] = &aggs[j];
    if (nq < 2) continue;
    for (j = 0; j < nq; j++) { /* the arrays and output kind agg_run would give them */
      list[j]->integers = pool_calloc(ds->pool, (slots + 1) * sizeof *list[j]->integers);
      list[j]->numbers = pool_calloc(ds->pool, (slots + 1) * sizeof *list[j]->numbers);
      list[j]->present = pool_calloc(ds->pool, slots + 1);
      list[j]->out = OUT_NUMBER;
      list[j]->scale = 0;
      if (!list[j]->integers || !list[j]->numbers || !list[j]->present) {
        free(list);
        cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
        return -1;
      }
    }
    if (quantile_by_buckets(ds, gid, NULL, list, nq, slots, err) != 0) { free(list); return -1; }
  }
  free(list);
  return 0;
}

/* ---- the query ---- */

/* The deferred checks of a snapshot's columns (snapshot_check_column) that a condition reads. */
static int check_cond_columns(const cpf_dataset *ds, const query_cond *c, cpf_error *err) {
  size_t i;
  if (!c) return 0;
  switch (c->kind) {
  case COND_MASK: return snapshot_check_column(ds, (size_t)c->key.column, err);
  case COND_RANGE:
  case COND_RUNS:
  case COND_NULL: return snapshot_check_column(ds, (size_t)c->column, err);
  case COND_ROWS: return 0;
  default:
    for (i = 0; i < c->nchildren; i++)
      if (check_cond_columns(ds, &c->children[i], err) != 0) return -1;
    return 0;
  }
}

/* ... and those a whole query reads, before it reads any. */
static int check_query_columns(const cpf_dataset *ds, const query_cond *where, const query_key *keys,
                               size_t nkeys, const query_agg *aggs, size_t naggs, cpf_error *err) {
  size_t k;
  if (check_cond_columns(ds, where, err) != 0) return -1;
  for (k = 0; k < nkeys; k++)
    if (snapshot_check_column(ds, (size_t)keys[k].column, err) != 0) return -1;
  for (k = 0; k < naggs; k++) {
    if (aggs[k].column >= 0 && snapshot_check_column(ds, (size_t)aggs[k].column, err) != 0) return -1;
    if (aggs[k].column2 >= 0 && snapshot_check_column(ds, (size_t)aggs[k].column2, err) != 0) return -1;
    if (check_cond_columns(ds, aggs[k].filter, err) != 0) return -1;
  }
  return 0;
}

int query_run(cpf_dataset *ds, query_cond *where, query_key *keys, size_t nkeys,
              query_agg *aggs, size_t naggs, query_result *res, cpf_error *err) {
  size_t n = ds->rows, i, k, g, nslots = 1;
  uint32_t *gid = NULL, *codes = NULL;
  uint8_t *sel = NULL;
  combine_step *steps = NULL;
  int64_t *slot_rows = NULL;
  int rc = -1, applied = 0; /* applied: dropped rows already hold QUERY_NO_GROUP */
  memset(res, 0, sizeof *res);
  if (check_query_columns(ds, where, keys, nkeys, aggs, naggs, err) != 0) return -1;
  if (!ds->pool && !(ds->pool = pool_new(RESULT_POOL_BYTES))) {
    cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
    return -1;
  }
  res->pool = pool_ref(ds->pool);
  if (!ds->scratch_gid) ds->scratch_gid = alloc_rows(n, sizeof *gid, err);
  if (!(gid = ds->scratch_gid)) goto done;
  if (where) {
    if (!ds->scratch_selection) ds->scratch_selection = alloc_rows(n, 1, err);
    if (!(sel = ds->scratch_selection)) goto done;
    if (cond_evaluate(ds, where, sel, err) != 0) goto done;
  }
  /* Keys combine without looking at the selection (plain arithmetic, no branch); it is applied
   * once at the end, or just before a hashed step, which must not count dropped rows. */
  steps = cpf_calloc(nkeys ? nkeys : 1, sizeof *steps);
  if (nkeys > 1 && !ds->scratch_codes) ds->scratch_codes = alloc_rows(n, sizeof *codes, err);
  if (nkeys > 1 && !(codes = ds->scratch_codes)) goto done;
  if (!steps) { cpf_error_set(err, CPF_ERR_MEMORY, "out of memory"); goto done; }
  if (nkeys == 0 && !sel) { /* every row in slot 0: what the last such query left, unless another wrote gid */
    if (!ds->scratch_gid_zero) memset(gid, 0, n * sizeof *gid);
    ds->scratch_gid_zero = 1;
  } else {
    ds->scratch_gid_zero = 0;
    if (nkeys == 0) memset(gid, 0, n * sizeof *gid);
  }
  for (k = 0; k < nkeys; k++) {
    uint32_t card;
    if (k == 0) { /* the first key's codes are the group ids */
      if (key_compute(ds, &keys[0], gid, err) != 0) goto done;
      card = keys[0].cardinality;
      steps[0].radix = card;
      steps[0].count = card;
      nslots = card;
      if (nslots <= DENSE_LIMIT) continue;
      /* a first key beyond the dense limit: renumber its codes through the hashed step */
      if (!ds->scratch_codes) ds->scratch_codes = alloc_rows(n, sizeof *codes, err);
      if (!(codes = ds->scratch_codes)) goto done;
      memcpy(codes, gid, n * sizeof *gid);
      memset(gid, 0, n * sizeof *gid);
    } else if (!applied && key_is_fusable(ds, &keys[k]) &&
               (uint64_t)nslots * keys[k].cardinality <= DENSE_LIMIT) {
      card = keys[k].cardinality;
      key_fuse(ds, &keys[k], gid);
      steps[k].radix = card;
      nslots *= card;
      steps[k].count = (uint32_t)nslots;
      continue;
    } else {
      if (key_compute(ds, &keys[k], codes, err) != 0) goto done;
      card = keys[k].cardinality;
    }
    if (k > 0 && (uint64_t)nslots * card <= DENSE_LIMIT && !applied) {
      steps[k].radix = card;
      for (i = 0; i < n; i++) gid[i] = gid[i] * card + codes[i];
      nslots *= card;
      steps[k].count = (uint32_t)nslots;
    } else if (k > 0 && (uint64_t)nslots * card <= DENSE_LIMIT) {
      steps[k].radix = card;
      for (i = 0; i < n; i++) { /* a blend, not a branch: the selection is unpredictable */
        uint32_t drop = (uint32_t)(gid[i] == QUERY_NO_GROUP) * UINT32_MAX;
        gid[i] = ((gid[i] * card + codes[i]) & ~drop) | (QUERY_NO_GROUP & drop);
      }
      nslots *= card;
      steps[k].count = (uint32_t)nslots;
    } else {
      if (k == 0) steps[0].radix = 1; /* decoded through the hashed step only */
      if (sel && !applied) {
        for (i = 0; i < n; i++) {
          uint32_t drop = (uint32_t)(sel[i] == 0) * UINT32_MAX;
          gid[i] = (gid[i] & ~drop) | (QUERY_NO_GROUP & drop);
        }
        applied = 1;
      }
      if (combine_hashed(gid, codes, n, &steps[k], err) != 0) goto done;
      nslots = steps[k].count;
    }
  }
  /* Rows the selection dropped go to one more slot, never reported: the aggregate loops then
   * run without a branch on the selection. */
  if (applied) {
    for (i = 0; i < n; i++) {
      uint32_t drop = (uint32_t)(gid[i] == QUERY_NO_GROUP) * UINT32_MAX;
      gid[i] = (gid[i] & ~drop) | ((uint32_t)nslots & drop);
    }
  } else if (sel) {
    for (i = 0; i < n; i++) { /* a blend, not a branch: the selection is unpredictable */
      uint32_t drop = (uint32_t)(sel[i] == 0) * UINT32_MAX;
      gid[i] = (gid[i] & ~drop) | ((uint32_t)nslots & drop);
    }
  }
  if (!(slot_rows = scratch_take(ds, SCRATCH_SLOT_ROWS, (nslots + 1) * sizeof *slot_rows, err))) goto done;
  if (nkeys == 0 && !sel) {
    slot_rows[0] = (int64_t)n; /* one group: no count per row */
  } else if (nslots < 4096) { /* few slots: four counters a slot, so that runs of one slot */
    int64_t *part = scratch_take(ds, SCRATCH_PART, 4 * (nslots + 1) * sizeof *part, err); /* do not wait */
    if (!part) goto done;                                                                 /* on each other */
    for (i = 0; i + 4 <= n; i += 4) {
      part[gid[i]]++;
      part[nslots + 1 + gid[i + 1]]++;
      part[2 * (nslots + 1) + gid[i + 2]]++;
      part[3 * (nslots + 1) + gid[i + 3]]++;
    }
    for (; i < n; i++) part[gid[i]]++;
    for (g = 0; g <= nslots; g++)
      slot_rows[g] = part[g] + part[nslots + 1 + g] + part[2 * (nslots + 1) + g] + part[3 * (nslots + 1) + g];
    scratch_give(ds, SCRATCH_PART, part);
  } else {
    for (i = 0; i < n; i++) slot_rows[gid[i]]++;
  }
  if (quantiles_together(ds, nkeys == 0 && !sel ? NULL : gid, aggs, naggs, nslots, err) != 0) goto done;
  for (k = 0; k < naggs; k++)
    if (!aggs[k].numbers && agg_run(ds, gid, nkeys == 0 && !sel, slot_rows, &aggs[k], nslots + 1, err) != 0)
      goto done;
  /* keep the slots that have rows (a query without keys always has its one group) */
  for (g = 0; g < nslots; g++) res->ngroups += slot_rows[g] > 0 || nkeys == 0;
  res->rows = pool_calloc(ds->pool, res->ngroups * sizeof *res->rows);
  res->key_codes = cpf_calloc(nkeys ? nkeys : 1, sizeof *res->key_codes);
  if (!res->rows || !res->key_codes) { cpf_error_set(err, CPF_ERR_MEMORY, "out of memory"); goto done; }
  for (k = 0; k < nkeys; k++)
    if (!(res->key_codes[k] = pool_calloc(ds->pool, res->ngroups * sizeof(uint32_t)))) {
      cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
      goto done;
    }
  res->nslots = nslots;
  if (!(res->slot_group = pool_calloc(ds->pool, (nslots + 1) * sizeof *res->slot_group))) {
    cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
    goto done;
  }
  {
    size_t j = 0;
    for (g = 0; g < nslots; g++) {
      uint32_t id = (uint32_t)g;
      if (slot_rows[g] == 0 && nkeys > 0) continue;
      res->slot_group[g] = (uint32_t)j + 1;
      res->rows[j] = slot_rows[g];
      for (k = nkeys; k-- > 0;) { /* decode the key codes, last key first */
        if (steps[k].hashed) {
          res->key_codes[k][j] = steps[k].code[id];
          id = steps[k].previous[id];
        } else {
          res->key_codes[k][j] = id % steps[k].radix;
          id /= steps[k].radix;
        }
      }
      for (k = 0; k < naggs; k++) { /* compact the aggregates in place: j <= g */
        aggs[k].integers[j] = aggs[k].integers[g];
        aggs[k].numbers[j] = aggs[k].numbers[g];
        aggs[k].present[j] = aggs[k].present[g];
      }
      j++;
    }
  }
  res->row_slot = gid;
  rc = 0;
done:
  if (steps)
    for (k = 0; k < nkeys; k++) { free(steps[k].previous); free(steps[k].code); }
  free(steps);
  if (slot_rows) scratch_give(ds, SCRATCH_SLOT_ROWS, slot_rows);
  return rc;
}

void query_result_free(query_result *res, size_t nkeys, query_agg *aggs, size_t naggs) {
  size_t k;
  if (res->key_codes)
    for (k = 0; k < nkeys; k++) pool_free(res->pool, res->key_codes[k]);
  free(res->key_codes);
  pool_free(res->pool, res->rows);
  pool_free(res->pool, res->slot_group);
  for (k = 0; k < naggs; k++) {
    pool_free(res->pool, aggs[k].integers);
    pool_free(res->pool, aggs[k].numbers);
    pool_free(res->pool, aggs[k].present);
    aggs[k].integers = NULL;
    aggs[k].numbers = NULL;
    aggs[k].present = NULL;
  }
  pool_unref(res->pool);
  memset(res, 0, sizeof *res);
}

/* ---- distinct values of a column with their row counts ---- */

static int compare_values(const query_distinct_value *a, const query_distinct_value *b) {
  const cpf_column *col = a->column;
  if (a->missing || b->missing) return a->missing - b->missing; /* no value last */
  if (col->type == CPF_TYPE_STRING) {
    size_t la, lb, n;
    const char *sa = dictionary_value(&col->dict, (uint32_t)a->value, &la);
    const char *sb = dictionary_value(&col->dict, (uint32_t)b->value, &lb);
    int c;
    n = la < lb ? la : lb;
    c = memcmp(sa, sb, n);
    return c != 0 ? c : (la > lb) - (la < lb);
  }
  if (col->type == CPF_TYPE_NUMBER) { /* a total order, NaN last: qsort needs one */
    double x, y;
    memcpy(&x, &a->value, sizeof x);
    memcpy(&y, &b->value, sizeof y);
    return compare_doubles(&x, &y);
  }
  return (a->value > b->value) - (a->value < b->value);
}

static int compare_by_value(const void *pa, const void *pb) { return compare_values(pa, pb); }

static int compare_by_count(const void *pa, const void *pb) {
  const query_distinct_value *a = pa, *b = pb;
  if (a->count != b->count) return a->count < b->count ? 1 : -1;
  return compare_values(a, b);
}

int query_distinct(const cpf_dataset *ds, int column, query_distinct_value **out, size_t *count,
                   cpf_error *err) {
  const cpf_column *col = &ds->cols[column];
  query_distinct_value *values;
  size_t n = 0, i;
  *out = NULL;
  *count = 0;
  if (snapshot_check_column(ds, (size_t)column, err) != 0) return -1;
  if (col->type == CPF_TYPE_STRING) {
    /* one counter per code, and one for the rows without a value */
    size_t *counts = cpf_calloc((size_t)col->dict.count + 1, sizeof *counts);
    values = cpf_malloc(((size_t)col->dict.count + 1) * sizeof *values);
    if (!counts || !values) {
      free(counts);
      free(values);
      cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
      return -1;
    }
    for (i = 0; i < ds->rows; i++) { /* a code past the dictionary (damaged data): no value */
      uint32_t code = column_code_at(col, i);
      counts[column_is_valid(col, i) && code < col->dict.count ? code : col->dict.count]++;
    }
    for (i = 0; i <= col->dict.count; i++) {
      if (counts[i] == 0) continue;
      values[n].value = (int64_t)i;
      values[n].count = counts[i];
      values[n].missing = i == col->dict.count;
      values[n].column = col;
      n++;
    }
    free(counts);
  } else {
    /* sort a copy of the values and count the runs, in place */
    size_t m = 0;
    if (!(values = alloc_rows(ds->rows + 1, sizeof *values, err))) return -1;
    for (i = 0; i < ds->rows; i++) {
      values[m].count = 1;
      values[m].missing = !column_is_valid(col, i);
      values[m].column = col;
      if (values[m].missing) values[m].value = 0;
      else if (col->type == CPF_TYPE_NUMBER) {
        double d = normalize_zero(column_number_at(col, i));
        memcpy(&values[m].value, &d, sizeof d);
      } else values[m].value = column_integer_at(col, i);
      m++;
    }
    qsort(values, m, sizeof *values, compare_by_value);
    for (i = 0; i < m; i++) {
      if (n > 0 && values[n - 1].missing == values[i].missing && values[n - 1].value == values[i].value)
        values[n - 1].count++;
      else
        values[n++] = values[i];
    }
  }
  qsort(values, n, sizeof *values, compare_by_count);
  *out = values;
  *count = n;
  return 0;
}

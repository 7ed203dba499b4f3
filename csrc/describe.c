/* describe.c — a column summed up for ds:describe (cpf describe, :Cpf describe, /describe): its
 * distinct values, its range and its most frequent text values, in one pass over its rows (a
 * sort of their keys for numbers) and without a value per row reaching Lua. */
#include <stdlib.h>
#include <string.h>

#include "cpf.h"

typedef struct {
  uint32_t code;
  size_t count;
} code_count;

static const cpf_dictionary *sort_dict; /* qsort's comparison has no context argument */

/* more rows first, then the value's bytes (as ds:distinct orders them) */
static int by_count(const void *pa, const void *pb) {
  const code_count *a = pa, *b = pb;
  size_t la, lb, n;
  const char *sa, *sb;
  int c;
  if (a->count != b->count) return a->count < b->count ? 1 : -1;
  sa = dictionary_value(sort_dict, a->code, &la);
  sb = dictionary_value(sort_dict, b->code, &lb);
  n = la < lb ? la : lb;
  c = memcmp(sa, sb, n);
  return c != 0 ? c : (la > lb) - (la < lb);
}

static int describe_text(const cpf_column *col, size_t rows, size_t top, column_summary *out,
                         cpf_error *err) {
  size_t *counts = cpf_calloc((size_t)col->dict.count + 1, sizeof *counts), i, n = 0;
  code_count *values = NULL;
  if (!counts) goto oom;
  for (i = 0; i < rows; i++) { /* a code past the dictionary (damaged data): no value */
    uint32_t code = column_code_at(col, i);
    counts[column_is_valid(col, i) && code < col->dict.count ? code : col->dict.count]++;
  }
  for (i = 0; i < col->dict.count; i++) n += counts[i] != 0;
  out->distinct = n;
  if (top > 0 && n > 0) {
    size_t k = 0;
    if (!(values = cpf_malloc(n * sizeof *values))) goto oom;
    for (i = 0; i < col->dict.count; i++)
      if (counts[i]) { values[k].code = (uint32_t)i; values[k].count = counts[i]; k++; }
    sort_dict = &col->dict; /* the loading threads never describe: one caller at a time */
    qsort(values, n, sizeof *values, by_count);
    out->ntop = top < n ? top : n;
    if (!(out->top_codes = cpf_malloc(out->ntop * sizeof *out->top_codes)) ||
        !(out->top_counts = cpf_malloc(out->ntop * sizeof *out->top_counts)))
      goto oom;
    for (i = 0; i < out->ntop; i++) {
      out->top_codes[i] = values[i].code;
      out->top_counts[i] = values[i].count;
    }
  }
  free(values);
  free(counts);
  return 0;
oom:
  free(values);
  free(counts);
  cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
  return -1;
}

/* Integers, months and dates in a narrow range: a bitmap of the values seen; anything else
 * (doubles, wide ranges): the sorted keys of the values, counted by runs. */
static int describe_numbers(const cpf_column *col, size_t rows, column_summary *out, cpf_error *err) {
  size_t i, m = 0;
  if (col->type != CPF_TYPE_NUMBER && col->max >= col->min &&
      (uint64_t)col->max - (uint64_t)col->min < ((uint64_t)1 << 26)) {
    size_t span = (size_t)((uint64_t)col->max - (uint64_t)col->min) + 1, seen = 0;
    uint8_t *bits = cpf_calloc(span / 8 + 1, 1);
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    if (!bits) { cpf_error_set(err, CPF_ERR_MEMORY, "out of memory"); return -1; }
    for (i = 0; i < rows; i++) {
      int64_t v;
      size_t at;
      if (!column_is_valid(col, i)) continue;
      v = column_integer_at(col, i);
      if (v < col->min || v > col->max) continue; /* outside the recorded range: damaged, no value */
      at = (size_t)((uint64_t)v - (uint64_t)col->min);
      if (!((bits[at >> 3] >> (at & 7)) & 1)) { bits[at >> 3] |= (uint8_t)(1u << (at & 7)); seen++; }
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    free(bits);
    out->distinct = seen;
    out->has_range = seen > 0;
    out->min = lo;
    out->max = hi;
    return 0;
  }
  {
    uint64_t *keys = cpf_malloc((rows ? rows : 1) * sizeof *keys);
    size_t u = 0;
    if (!keys) { cpf_error_set(err, CPF_ERR_MEMORY, "out of memory"); return -1; }
    for (i = 0; i < rows; i++) {
      if (!column_is_valid(col, i)) continue;
      keys[m++] = col->type == CPF_TYPE_NUMBER ? order_double_key(normalize_zero(column_number_at(col, i)))
                                               : (uint64_t)column_integer_at(col, i) ^ ((uint64_t)1 << 63);
    }
    if (order_sort_keys(keys, m, err) != 0) { free(keys); return -1; }
    for (i = 0; i < m; i++) u += i == 0 || keys[i] != keys[i - 1];
    out->distinct = u;
    out->has_range = m > 0;
    if (m > 0) {
      out->min = query_key_value(col, keys[0]);
      out->max = query_key_value(col, keys[m - 1]);
    }
    free(keys);
  }
  return 0;
}

int describe_column(const cpf_dataset *ds, size_t j, size_t top, column_summary *out, cpf_error *err) {
  const cpf_column *col = &ds->cols[j];
  memset(out, 0, sizeof *out);
  if (snapshot_check_column(ds, j, err) != 0) return -1;
  if (col->type == CPF_TYPE_STRING) return describe_text(col, ds->rows, top, out, err);
  return describe_numbers(col, ds->rows, out, err);
}

void describe_free(column_summary *s) {
  free(s->top_codes);
  free(s->top_counts);
  memset(s, 0, sizeof *s);
}

/* describe.c — a column summed up for ds:describe (cpf describe, :Cpf describe, /describe): its
 * distinct values, its range and its most frequent text values (query_distinct's counts), in
 * one pass over its rows (a sort of their keys for numbers) and without a value per row
 * reaching Lua. */
#include <stdlib.h>
#include <string.h>

#include "cpf.h"

/* Text: query_distinct's counts (ds:distinct's order: most rows first, then by bytes), the
 * rows without a value left out. */
static int describe_text(const cpf_dataset *ds, size_t j, size_t top, column_summary *out, cpf_error *err) {
  query_distinct_value *values;
  size_t n, i, k = 0;
  if (query_distinct(ds, (int)j, &values, &n, err) != 0) return -1;
  for (i = 0; i < n; i++) out->distinct += !values[i].missing;
  out->ntop = top < out->distinct ? top : out->distinct;
  if (out->ntop > 0 && (!(out->top_codes = cpf_malloc(out->ntop * sizeof *out->top_codes)) ||
                        !(out->top_counts = cpf_malloc(out->ntop * sizeof *out->top_counts)))) {
    free(values);
    cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
    return -1;
  }
  for (i = 0; i < n && k < out->ntop; i++) {
    if (values[i].missing) continue;
    out->top_codes[k] = (uint32_t)values[i].value;
    out->top_counts[k++] = values[i].count;
  }
  free(values);
  return 0;
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
  if (col->type == CPF_TYPE_STRING) return describe_text(ds, j, top, out, err);
  return describe_numbers(col, ds->rows, out, err);
}

void describe_free(column_summary *s) {
  free(s->top_codes);
  free(s->top_counts);
  memset(s, 0, sizeof *s);
}

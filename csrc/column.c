/* column.c — one column of the store: append typed values while loading, then settle the
 * type (inference for unknown columns) and narrow the storage to the smallest width. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpf.h"

static const char *const type_names[] = {"string", "integer", "number", "decimal",
                                         "month",  "date",    "auto"};

const char *cpf_type_name(cpf_type type) { return type_names[type]; }

int cpf_type_from_name(const char *name, cpf_type *type) {
  int i;
  for (i = 0; i <= CPF_TYPE_AUTO; i++)
    if (strcmp(name, type_names[i]) == 0) { *type = (cpf_type)i; return 0; }
  return -1;
}

void cpf_error_set(cpf_error *err, const char *fmt, ...) {
  va_list ap;
  if (err->failed) return; /* the first error is the one worth reporting */
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  err->failed = 1;
}

static int builder_width(cpf_type type) {
  return type == CPF_TYPE_STRING || type == CPF_TYPE_AUTO ? 4 : 8;
}

static char *copy_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

int column_init(cpf_column *col, const char *name, const char *label, cpf_type type,
                char decimal_mark, size_t expected_rows) {
  memset(col, 0, sizeof *col);
  col->type = type;
  col->width = builder_width(type);
  col->scale = type == CPF_TYPE_DECIMAL ? 2 : 0;
  col->decimal_mark = decimal_mark;
  col->cap = expected_rows < 64 ? 64 : expected_rows;
  col->name = copy_string(name);
  col->label = copy_string(label);
  col->data = malloc(col->cap * (size_t)col->width);
  col->valid = calloc(col->cap / 8 + 1, 1);
  if (!col->name || !col->label || !col->data || !col->valid) goto fail;
  if ((type == CPF_TYPE_STRING || type == CPF_TYPE_AUTO) && dictionary_init(&col->dict) != 0)
    goto fail;
  return 0;
fail:
  column_free(col);
  return -1;
}

void column_free(cpf_column *col) {
  free(col->name);
  free(col->label);
  free(col->data);
  free(col->valid);
  if (col->dict.bytes) dictionary_free(&col->dict);
  memset(col, 0, sizeof *col);
}

static int column_grow(cpf_column *col) {
  size_t cap = col->cap * 2;
  void *data = realloc(col->data, cap * (size_t)col->width);
  uint8_t *valid;
  if (!data) return -1;
  col->data = data;
  valid = realloc(col->valid, cap / 8 + 1);
  if (!valid) return -1;
  memset(valid + col->cap / 8 + 1, 0, cap / 8 - col->cap / 8);
  col->valid = valid;
  col->cap = cap;
  return 0;
}

/* "got "value"" for messages, cut to a readable length */
static void bad_value(char *msg, size_t msgsize, const char *what, const char *s, size_t len) {
  int shown = len > 60 ? 60 : (int)len;
  snprintf(msg, msgsize, "expected %s, got \"%.*s%s\"", what, shown, s, len > 60 ? "..." : "");
}

/* A decimal value with more digits than the column keeps: raise the scale of the whole column
 * (exact) while it fits, else turn the column into doubles. Never round a value silently. */
static void decimal_rescale(cpf_column *col, int needed) {
  static const int64_t pow10[10] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                    100000000, 1000000000};
  int64_t *v = col->data;
  size_t i;
  if (needed <= 9) {
    int64_t factor = pow10[needed - col->scale];
    int64_t limit = INT64_MAX / factor;
    for (i = 0; i < col->rows; i++)
      if (v[i] > limit || v[i] < -limit) break;
    if (i == col->rows) {
      for (i = 0; i < col->rows; i++) v[i] *= factor;
      col->scale = needed;
      return;
    }
  }
  {
    double divisor = (double)pow10[col->scale];
    double *d = col->data;
    for (i = 0; i < col->rows; i++) d[i] = (double)v[i] / divisor;
    col->type = CPF_TYPE_NUMBER;
    col->scale = 0;
  }
}

int column_append(cpf_column *col, const char *s, size_t len, char *msg, size_t msgsize) {
  size_t row;
  num_status st;
  if (col->rows == col->cap && column_grow(col) != 0) {
    snprintf(msg, msgsize, "out of memory");
    return -1;
  }
  row = col->rows++;
  if (len == 0) { /* missing: valid bit stays clear, the slot holds zero */
    memset((char *)col->data + row * (size_t)col->width, 0, (size_t)col->width);
    col->missing++;
    return 0;
  }
  col->valid[row >> 3] |= (uint8_t)(1u << (row & 7));
  switch (col->type) {
  case CPF_TYPE_STRING:
  case CPF_TYPE_AUTO: {
    uint32_t code;
    size_t last_len;
    const char *last;
    if (col->has_last) { /* CPF files repeat the previous row's value very often */
      last = dictionary_value(&col->dict, col->last_code, &last_len);
      if (last_len == len && memcmp(last, s, len) == 0) {
        ((uint32_t *)col->data)[row] = col->last_code;
        return 0;
      }
    }
    code = dictionary_intern(&col->dict, s, len);
    if (code == UINT32_MAX) { snprintf(msg, msgsize, "out of memory"); return -1; }
    ((uint32_t *)col->data)[row] = code;
    col->last_code = code;
    col->has_last = 1;
    return 0;
  }
  case CPF_TYPE_INTEGER:
    st = parse_integer(s, len, col->decimal_mark, &((int64_t *)col->data)[row]);
    if (st == NUM_OK) return 0;
    bad_value(msg, msgsize, st == NUM_RANGE ? "an integer within 64 bits" : "an integer", s, len);
    return -1;
  case CPF_TYPE_DECIMAL: {
    int needed = 0;
    ((int64_t *)col->data)[row] = 0; /* a rescale below reads every row */
    st = parse_decimal(s, len, col->decimal_mark, col->scale, &((int64_t *)col->data)[row], &needed);
    if (st == NUM_FRACTION) {
      col->rows--; /* append again with the new representation */
      col->valid[row >> 3] &= (uint8_t)~(1u << (row & 7));
      decimal_rescale(col, needed);
      return column_append(col, s, len, msg, msgsize);
    }
    if (st == NUM_OK) return 0;
    {
      double d;
      if (st == NUM_BAD && parse_number(s, len, col->decimal_mark, &d) == NUM_OK) {
        decimal_rescale(col, 99); /* exponent notation: keep it as a double */
        ((double *)col->data)[row] = d;
        return 0;
      }
    }
    bad_value(msg, msgsize, "a number", s, len);
    return -1;
  }
  case CPF_TYPE_NUMBER:
    st = parse_number(s, len, col->decimal_mark, &((double *)col->data)[row]);
    if (st == NUM_OK) return 0;
    bad_value(msg, msgsize, "a number", s, len);
    return -1;
  case CPF_TYPE_MONTH:
    st = parse_month(s, len, &((int64_t *)col->data)[row]);
    if (st == NUM_OK) return 0;
    bad_value(msg, msgsize, "a month YYYY-MM or YYYY-MM-DD", s, len);
    return -1;
  case CPF_TYPE_DATE:
    st = parse_date(s, len, &((int64_t *)col->data)[row]);
    if (st == NUM_OK) return 0;
    bad_value(msg, msgsize, "a date YYYY-MM-DD", s, len);
    return -1;
  }
  return -1;
}

/* ---- finishing ---- */

static int looks_like_code(const char *s, size_t len) {
  /* "01", "007": leading zeros mean an identifier, which must stay text */
  if (len > 0 && (*s == '-' || *s == '+')) { s++; len--; }
  return len > 1 && s[0] == '0' && (unsigned)(s[1] - '0') <= 9;
}

static cpf_type infer_type(const cpf_column *col) {
  int all_integer = 1, all_number = 1, all_date = 1, all_month = 1;
  uint32_t code;
  if (col->dict.count == 0) return CPF_TYPE_STRING;
  for (code = 0; code < col->dict.count; code++) {
    size_t len;
    const char *s = dictionary_value(&col->dict, code, &len);
    int64_t i;
    double d;
    if (all_integer && (looks_like_code(s, len) || *s == '+' ||
                        parse_integer(s, len, 0, &i) != NUM_OK || memchr(s, '.', len) ||
                        memchr(s, ',', len)))
      all_integer = 0;
    if (all_number && (looks_like_code(s, len) || *s == '+' ||
                       parse_number(s, len, col->decimal_mark, &d) != NUM_OK))
      all_number = 0;
    if (all_date && parse_date(s, len, &i) != NUM_OK) all_date = 0;
    if (all_month && (len != 7 || parse_month(s, len, &i) != NUM_OK)) all_month = 0;
    if (!all_integer && !all_number && !all_date && !all_month) return CPF_TYPE_STRING;
  }
  if (all_integer) return CPF_TYPE_INTEGER;
  if (all_number) return CPF_TYPE_NUMBER;
  if (all_date) return CPF_TYPE_DATE;
  return CPF_TYPE_MONTH;
}

/* Re-encode an inferred column: each distinct value is parsed once, rows are remapped. */
static int convert_strings(cpf_column *col, cpf_type type) {
  size_t n = col->dict.count ? col->dict.count : 1, row;
  int64_t *by_code = malloc(n * sizeof *by_code);
  int64_t *values = malloc((col->rows ? col->rows : 1) * sizeof *values);
  const uint32_t *codes = col->data;
  uint32_t code;
  if (!by_code || !values) { free(by_code); free(values); return -1; }
  for (code = 0; code < col->dict.count; code++) {
    size_t len;
    const char *s = dictionary_value(&col->dict, code, &len);
    double d;
    switch (type) {
    case CPF_TYPE_INTEGER: parse_integer(s, len, 0, &by_code[code]); break;
    case CPF_TYPE_NUMBER:
      parse_number(s, len, col->decimal_mark, &d);
      memcpy(&by_code[code], &d, sizeof d);
      break;
    case CPF_TYPE_DATE: parse_date(s, len, &by_code[code]); break;
    default: parse_month(s, len, &by_code[code]); break;
    }
  }
  for (row = 0; row < col->rows; row++)
    values[row] = column_is_valid(col, row) ? by_code[codes[row]] : 0;
  free(by_code);
  free(col->data);
  dictionary_free(&col->dict);
  col->data = values;
  col->width = 8;
  col->cap = col->rows;
  col->type = type;
  return 0;
}

static int width_for_range(int64_t min, int64_t max) {
  if (min >= INT8_MIN && max <= INT8_MAX) return 1;
  if (min >= INT16_MIN && max <= INT16_MAX) return 2;
  if (min >= INT32_MIN && max <= INT32_MAX) return 4;
  return 8;
}

/* Narrow int64 values in place (each write lands before the value it replaces is read). */
static void narrow_integers(cpf_column *col, int width) {
  const int64_t *src = col->data;
  size_t i;
  switch (width) {
  case 1: for (i = 0; i < col->rows; i++) ((int8_t *)col->data)[i] = (int8_t)src[i]; break;
  case 2: for (i = 0; i < col->rows; i++) ((int16_t *)col->data)[i] = (int16_t)src[i]; break;
  case 4: for (i = 0; i < col->rows; i++) ((int32_t *)col->data)[i] = (int32_t)src[i]; break;
  default: break;
  }
  col->width = width;
}

static void narrow_codes(cpf_column *col) {
  const uint32_t *src = col->data;
  size_t i;
  if (col->dict.count <= 256) {
    for (i = 0; i < col->rows; i++) ((uint8_t *)col->data)[i] = (uint8_t)src[i];
    col->width = 1;
  } else if (col->dict.count <= 65536) {
    for (i = 0; i < col->rows; i++) ((uint16_t *)col->data)[i] = (uint16_t)src[i];
    col->width = 2;
  }
}

static void *shrink(void *p, size_t bytes) {
  void *q = realloc(p, bytes ? bytes : 1);
  return q ? q : p;
}

int column_finish(cpf_column *col, char *msg, size_t msgsize) {
  if (col->type == CPF_TYPE_AUTO) {
    cpf_type type = infer_type(col);
    if (type == CPF_TYPE_STRING) col->type = CPF_TYPE_STRING;
    else if (convert_strings(col, type) != 0) goto oom;
  }
  if (col->type == CPF_TYPE_STRING) {
    dictionary_freeze(&col->dict);
    narrow_codes(col);
  } else if (col->type != CPF_TYPE_NUMBER) {
    const int64_t *v = col->data;
    size_t i;
    int64_t min = INT64_MAX, max = INT64_MIN;
    for (i = 0; i < col->rows; i++) {
      if (!column_is_valid(col, i)) continue;
      if (v[i] < min) min = v[i];
      if (v[i] > max) max = v[i];
    }
    if (min > max) min = max = 0; /* no value at all */
    col->min = min;
    col->max = max;
    narrow_integers(col, width_for_range(min, max));
  }
  col->data = shrink(col->data, col->rows * (size_t)col->width);
  if (col->missing == 0) {
    free(col->valid);
    col->valid = NULL;
  } else {
    col->valid = shrink(col->valid, col->rows / 8 + 1);
  }
  col->cap = col->rows;
  return 0;
oom:
  snprintf(msg, msgsize, "out of memory");
  return -1;
}

size_t column_memory(const cpf_column *col) {
  size_t n = col->cap * (size_t)col->width;
  if (col->valid) n += col->cap / 8 + 1;
  if (col->type == CPF_TYPE_STRING) n += dictionary_memory(&col->dict);
  return n;
}

/* ---- dataset ---- */

void dataset_free(cpf_dataset *ds) {
  size_t i;
  if (!ds) return;
  for (i = 0; i < ds->ncols; i++) column_free(&ds->cols[i]);
  free(ds->cols);
  free(ds);
}

size_t dataset_memory(const cpf_dataset *ds) {
  size_t i, n = sizeof *ds + ds->ncols * sizeof *ds->cols;
  for (i = 0; i < ds->ncols; i++) n += column_memory(&ds->cols[i]);
  return n;
}

int dataset_find_column(const cpf_dataset *ds, const char *name) {
  size_t i;
  for (i = 0; i < ds->ncols; i++)
    if (strcmp(ds->cols[i].name, name) == 0) return (int)i;
  return -1;
}

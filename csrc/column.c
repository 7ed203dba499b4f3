/* column.c — one column of the store: append typed values while loading, then settle the
 * type (inference for unknown columns) and narrow the storage to the smallest width. */
#include <math.h>
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

/* Values are stored at the narrowest width from the first row and widened when a value does
 * not fit (at most three times per column): a quarter of the memory traffic of int64 builders. */
static int builder_width(cpf_type type) {
  return type == CPF_TYPE_NUMBER ? 8 : 1;
}

static char *copy_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = cpf_malloc(n);
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
  col->locale_point = '.'; /* the C locale's; the loader sets the current one */
  col->cap = expected_rows < 64 ? 64 : expected_rows;
  col->name = copy_string(name);
  col->label = copy_string(label);
  col->data = cpf_malloc(col->cap * (size_t)col->width);
  col->missing_bits = cpf_calloc(col->cap / 8 + 1, 1);
  if (!col->name || !col->label || !col->data || !col->missing_bits) goto fail;
  if ((type == CPF_TYPE_STRING || type == CPF_TYPE_AUTO) && dictionary_init(&col->dict) != 0)
    goto fail;
  return 0;
fail:
  column_free(col);
  return -1;
}

void column_free(cpf_column *col) {
  free(col->name); /* a mapped column's too: its names are copies (see snapshot.c) */
  free(col->label);
  if (col->mapped) { memset(col, 0, sizeof *col); return; }
  free(col->data);
  free(col->missing_bits);
  if (col->dict.bytes) dictionary_free(&col->dict);
  memset(col, 0, sizeof *col);
}

static int column_grow(cpf_column *col) {
  size_t cap = col->cap * 2;
  void *data = cpf_realloc(col->data, cap * (size_t)col->width);
  uint8_t *bits;
  if (!data) return -1;
  col->data = data;
  bits = cpf_realloc(col->missing_bits, cap / 8 + 1);
  if (!bits) return -1;
  memset(bits + col->cap / 8 + 1, 0, cap / 8 - col->cap / 8);
  col->missing_bits = bits;
  col->cap = cap;
  return 0;
}

/* Re-encode rows [0, rows) at a larger width, from the last row down so that nothing is
 * overwritten before it is read. Codes are unsigned, the other types signed. */
static int widen(cpf_column *col, int width) {
  int is_code = col->type == CPF_TYPE_STRING || col->type == CPF_TYPE_AUTO;
  void *data = cpf_realloc(col->data, col->cap * (size_t)width);
  size_t i;
  if (!data) return -1;
  col->data = data;
  for (i = col->rows; i-- > 0;) {
    int64_t v = is_code ? (int64_t)column_code_at(col, i) : column_integer_at(col, i);
    switch (width) {
    case 2: if (is_code) ((uint16_t *)data)[i] = (uint16_t)v; else ((int16_t *)data)[i] = (int16_t)v; break;
    case 4: if (is_code) ((uint32_t *)data)[i] = (uint32_t)v; else ((int32_t *)data)[i] = (int32_t)v; break;
    default: ((int64_t *)data)[i] = v; break;
    }
  }
  col->width = width;
  return 0;
}

static int width_for_range(int64_t min, int64_t max) {
  if (min >= INT8_MIN && max <= INT8_MAX) return 1;
  if (min >= INT16_MIN && max <= INT16_MAX) return 2;
  if (min >= INT32_MIN && max <= INT32_MAX) return 4;
  return 8;
}

static int store_integer(cpf_column *col, size_t row, int64_t v) {
  switch (col->width) {
  case 1: if (v >= INT8_MIN && v <= INT8_MAX) { ((int8_t *)col->data)[row] = (int8_t)v; return 0; } break;
  case 2: if (v >= INT16_MIN && v <= INT16_MAX) { ((int16_t *)col->data)[row] = (int16_t)v; return 0; } break;
  case 4: if (v >= INT32_MIN && v <= INT32_MAX) { ((int32_t *)col->data)[row] = (int32_t)v; return 0; } break;
  default: ((int64_t *)col->data)[row] = v; return 0;
  }
  if (widen(col, width_for_range(v, v) > col->width ? width_for_range(v, v) : col->width * 2) != 0)
    return -1;
  return store_integer(col, row, v);
}

static int store_code(cpf_column *col, size_t row, uint32_t code) {
  switch (col->width) {
  case 1: if (code <= UINT8_MAX) { ((uint8_t *)col->data)[row] = (uint8_t)code; return 0; } break;
  case 2: if (code <= UINT16_MAX) { ((uint16_t *)col->data)[row] = (uint16_t)code; return 0; } break;
  default: ((uint32_t *)col->data)[row] = code; return 0;
  }
  if (widen(col, col->width * 2) != 0) return -1;
  return store_code(col, row, code);
}

/* "got "value"" for messages, cut to a readable length */
/* The value is shown as it is, but for the bytes that would cut or garble the message: a NUL
 * (which ends a C string), control bytes and the quote are escaped. At most 60 bytes of it. */
static void bad_value(char *msg, size_t msgsize, const char *what, const char *s, size_t len) {
  char shown[60 * 4 + 1];
  size_t i, n = 0;
  for (i = 0; i < len && i < 60; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == 0) { shown[n++] = '\\'; shown[n++] = '0'; }
    else if (c == '"' || c == '\\') { shown[n++] = '\\'; shown[n++] = (char)c; }
    else if (c < 0x20 || c == 0x7f) n += (size_t)snprintf(shown + n, 5, "\\x%02X", c);
    else shown[n++] = (char)c;
  }
  shown[n] = '\0';
  snprintf(msg, msgsize, "expected %s, got \"%s%s\"", what, shown, len > 60 ? "..." : "");
}

/* A decimal value with more digits than the column keeps: raise the scale of the whole column
 * (exact) while it fits, else turn the column into doubles. Never round a value silently. */
static int decimal_rescale(cpf_column *col, int needed) {
  static const int64_t pow10[10] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                    100000000, 1000000000};
  int64_t *v;
  size_t i;
  if (col->width != 8 && widen(col, 8) != 0) return -1;
  v = col->data;
  if (needed <= 9) {
    int64_t factor = pow10[needed - col->scale];
    int64_t limit = INT64_MAX / factor;
    for (i = 0; i < col->rows; i++)
      if (v[i] > limit || v[i] < -limit) break;
    if (i == col->rows) {
      for (i = 0; i < col->rows; i++) v[i] *= factor;
      col->scale = needed;
      return 0;
    }
  }
  {
    double divisor = (double)pow10[col->scale];
    double *d = col->data;
    for (i = 0; i < col->rows; i++) d[i] = (double)v[i] / divisor;
    col->type = CPF_TYPE_NUMBER;
    col->scale = 0;
  }
  return 0;
}

/* Numbers, months and dates are read without the spaces and tabs around them (a field of
 * blanks only is then missing); text keeps them, byte for byte. */
static void trim_blanks(const char **s, size_t *len) {
  while (*len > 0 && (**s == ' ' || **s == '\t')) { (*s)++; (*len)--; }
  while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t')) (*len)--;
}

int column_append(cpf_column *col, const char *s, size_t len, char *msg, size_t msgsize) {
  size_t row;
  num_status st = NUM_OK;
  int64_t v = 0;
  if (col->rows == col->cap && column_grow(col) != 0) goto oom;
  row = col->rows++;
  if (col->type != CPF_TYPE_STRING && col->type != CPF_TYPE_AUTO) trim_blanks(&s, &len);
  if (len == 0) { /* missing: set its bit; the slot holds zero */
    col->missing_bits[row >> 3] |= (uint8_t)(1u << (row & 7));
    col->missing++;
    if (col->type == CPF_TYPE_NUMBER) ((double *)col->data)[row] = 0;
    else if (store_integer(col, row, 0) != 0) goto oom;
    return 0;
  }
  switch (col->type) {
  case CPF_TYPE_STRING:
  case CPF_TYPE_AUTO: {
    uint32_t code = dictionary_intern(&col->dict, s, len);
    if (code == UINT32_MAX || store_code(col, row, code) != 0) goto oom;
    return 0;
  }
  case CPF_TYPE_NUMBER:
    st = parse_number(s, len, col->decimal_mark, col->locale_point, &((double *)col->data)[row]);
    if (st == NUM_OK) return 0;
    bad_value(msg, msgsize, st == NUM_RANGE ? "a number within the range of a double" : "a number",
              s, len);
    return -1;
  case CPF_TYPE_INTEGER:
    if (len == 1 && (unsigned)(s[0] - '0') <= 9) { /* "0" and "1" fill most count columns */
      v = s[0] - '0';
      break;
    }
    st = parse_integer(s, len, col->decimal_mark, &v);
    if (st != NUM_OK) {
      bad_value(msg, msgsize, st == NUM_RANGE ? "an integer within 64 bits" : "an integer", s, len);
      return -1;
    }
    break;
  case CPF_TYPE_DECIMAL: {
    int needed = 0;
    double d;
    if (len == 1 && s[0] == '0') break; /* most funders' parts are "0" */
    st = parse_decimal(s, len, col->decimal_mark, col->scale, &v, &needed);
    if (st == NUM_OK) break;
    /* the rescale reads every row, this one included: make it a valid zero first */
    if (store_integer(col, row, 0) != 0) goto oom;
    if (st == NUM_FRACTION) {
      if (decimal_rescale(col, needed) != 0) goto oom;
      col->rows--; /* append again with the new representation */
      return column_append(col, s, len, msg, msgsize);
    }
    /* exponent notation, or more than 64 bits of cents: the column becomes doubles (README) */
    if ((st == NUM_BAD || st == NUM_RANGE) &&
        (st = parse_number(s, len, col->decimal_mark, col->locale_point, &d)) == NUM_OK) {
      if (decimal_rescale(col, 99) != 0) goto oom;
      ((double *)col->data)[row] = d;
      return 0;
    }
    bad_value(msg, msgsize, st == NUM_RANGE ? "a number within the range of a double" : "a number",
              s, len);
    return -1;
  }
  case CPF_TYPE_MONTH:
    st = parse_month(s, len, &v);
    if (st != NUM_OK) {
      bad_value(msg, msgsize, "a month YYYY-MM or YYYY-MM-DD", s, len);
      return -1;
    }
    break;
  case CPF_TYPE_DATE:
    st = parse_date(s, len, &v);
    if (st != NUM_OK) {
      bad_value(msg, msgsize, "a date YYYY-MM-DD", s, len);
      return -1;
    }
    break;
  }
  if (store_integer(col, row, v) != 0) goto oom;
  return 0;
oom: /* -2: no memory, not a bad value (the caller says so with the kind "memory") */
  snprintf(msg, msgsize, "out of memory");
  return -2;
}

void column_restore_decimal(cpf_column *col, int scale) {
  static const double pow10[10] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
  int64_t *v = col->data;
  size_t i;
  if (scale < 0 || scale > 9) return;
  if (col->type == CPF_TYPE_NUMBER) { /* made doubles: each value back to its cents, in place */
    double *d = col->data;
    for (i = 0; i < col->rows; i++) v[i] = column_is_valid(col, i) ? (int64_t)llround(d[i] * pow10[scale]) : 0;
    col->type = CPF_TYPE_DECIMAL;
  } else if (col->scale > scale) { /* raised: each value divided back, exactly */
    int64_t factor = (int64_t)pow10[col->scale - scale];
    for (i = 0; i < col->rows; i++) v[i] /= factor;
  }
  col->scale = scale;
}

void column_truncate(cpf_column *col, size_t rows, int drop_value) {
  size_t row;
  for (row = rows; row < col->rows; row++)
    if (col->missing_bits && (col->missing_bits[row >> 3] >> (row & 7)) & 1) {
      col->missing_bits[row >> 3] &= (uint8_t)~(1u << (row & 7));
      col->missing--;
    }
  if (col->rows > rows) col->rows = rows;
  if (drop_value && col->dict.count > 0) dictionary_drop_last(&col->dict);
}

/* ---- finishing ---- */

static int looks_like_code(const char *s, size_t len) {
  /* "01", "007": leading zeros mean an identifier, which must stay text */
  if (len > 0 && (*s == '-' || *s == '+')) { s++; len--; }
  return len > 1 && s[0] == '0' && (unsigned)(s[1] - '0') <= 9;
}

/* The length of a thousands separator at s; 0 for none. Inferred (thousands 0): a space,
 * U+00A0 (C2 A0), U+202F (E2 80 AF), or '.' when the decimal mark is ','. Given: that byte, and
 * for ' ' the two no-break spaces too. */
static size_t separator_at(const char *s, const char *end, char decimal_mark, char thousands) {
  if (thousands && thousands != ' ') return s < end && *s == thousands ? 1 : 0;
  if (s < end && (*s == ' ' || (!thousands && *s == '.' && decimal_mark == ','))) return 1;
  if (end - s >= 2 && (unsigned char)s[0] == 0xC2 && (unsigned char)s[1] == 0xA0) return 2;
  if (end - s >= 3 && (unsigned char)s[0] == 0xE2 && (unsigned char)s[1] == 0x80 && (unsigned char)s[2] == 0xAF)
    return 3;
  return 0;
}

/* A number written with thousands separators (8 235 923, 1 234,5 with U+00A0 or U+202F, 1.234,5
 * when the decimal mark is ','): its text without them, '.' as its mark, in out (cap bytes);
 * *grouped says a separator was there, *fraction a decimal part. Groups after the first hold
 * three digits. Returns the length written, 0 when the text is no such number. */
static size_t ungroup_number(const char *s, size_t len, char decimal_mark, char thousands, char *out, size_t cap,
                             int *grouped, int *fraction) {
  const char *end = s + len;
  size_t n = 0, group = 0, groups = 0;
  *grouped = *fraction = 0;
  if (s < end && *s == '-') { if (n + 1 >= cap) return 0; out[n++] = *s++; }
  while (s < end) {
    size_t sep = separator_at(s, end, decimal_mark, thousands);
    if ((unsigned)(*s - '0') <= 9) {
      if (n + 1 >= cap) return 0;
      out[n++] = *s++;
      group++;
    } else if (sep) {
      if (group == 0 || (groups > 0 && group != 3) || group > 3) return 0;
      groups++;
      group = 0;
      *grouped = 1;
      s += sep;
    } else {
      break;
    }
  }
  if (group == 0 || (groups > 0 && group != 3)) return 0;
  if (s < end && (*s == (decimal_mark ? decimal_mark : ',') || (!decimal_mark && *s == '.'))) {
    if (n + 1 >= cap) return 0;
    out[n++] = '.';
    s++;
    if (s == end) return 0;
    while (s < end && (unsigned)(*s - '0') <= 9) {
      if (n + 1 >= cap) return 0;
      out[n++] = *s++;
    }
    *fraction = 1;
  }
  if (s != end) return 0;
  out[n] = 0;
  return n;
}

static cpf_type infer_type(const cpf_column *col, int *grouped_type) {
  int all_integer = 1, all_number = 1, all_date = 1, all_month = 1;
  int all_grouped = col->thousands != 'n', any_grouped = 0, any_fraction = 0;
  uint32_t code, values = 0;
  for (code = 0; code < col->dict.count; code++) {
    size_t len;
    const char *s = dictionary_value(&col->dict, code, &len);
    int64_t i;
    double d;
    trim_blanks(&s, &len);
    if (len == 0) continue; /* blanks only: missing whatever the type */
    values++;
    if (all_integer && (looks_like_code(s, len) || *s == '+' ||
                        parse_integer(s, len, 0, &i) != NUM_OK || memchr(s, '.', len) ||
                        memchr(s, ',', len)))
      all_integer = 0;
    if (all_number && (looks_like_code(s, len) || *s == '+' ||
                       parse_number(s, len, col->decimal_mark, col->locale_point, &d) != NUM_OK))
      all_number = 0;
    if (all_date && parse_date(s, len, &i) != NUM_OK) all_date = 0;
    if (all_month && (len != 7 || parse_month(s, len, &i) != NUM_OK)) all_month = 0;
    if (all_grouped) {
      char buf[64];
      int grouped = 0, fraction = 0;
      if (looks_like_code(s, len) || ungroup_number(s, len, col->decimal_mark, col->thousands, buf, sizeof buf,
                                                    &grouped, &fraction) == 0)
        all_grouped = 0;
      any_grouped |= grouped;
      any_fraction |= fraction;
    }
    if (!all_integer && !all_number && !all_date && !all_month && !all_grouped) return CPF_TYPE_STRING;
  }
  *grouped_type = 0;
  if (values == 0) return CPF_TYPE_STRING; /* nothing but missing values and blanks: text */
  if (all_integer) return CPF_TYPE_INTEGER;
  if (all_number) return CPF_TYPE_NUMBER;
  if (all_grouped && any_grouped) { /* written with thousands separators throughout: numbers */
    *grouped_type = 1;
    return any_fraction ? CPF_TYPE_NUMBER : CPF_TYPE_INTEGER;
  }
  if (all_date) return CPF_TYPE_DATE;
  return CPF_TYPE_MONTH;
}

/* Re-encode an inferred column: each distinct value is parsed once, rows are remapped; a
 * value of blanks only becomes missing. */
static int convert_strings(cpf_column *col, cpf_type type, int grouped) {
  size_t n = col->dict.count ? col->dict.count : 1, row;
  int64_t *by_code = cpf_malloc(n * sizeof *by_code);
  int64_t *values = cpf_malloc((col->rows ? col->rows : 1) * sizeof *values);
  unsigned char *blank = cpf_calloc(n, 1);
  uint32_t code;
  if (!by_code || !values || !blank) { free(by_code); free(values); free(blank); return -1; }
  for (code = 0; code < col->dict.count; code++) {
    size_t len;
    const char *s = dictionary_value(&col->dict, code, &len);
    double d;
    trim_blanks(&s, &len);
    if (len == 0) { blank[code] = 1; by_code[code] = 0; continue; }
    if (grouped) { /* the text without its thousands separators, '.' as its mark */
      char buf[64];
      int g, f;
      len = ungroup_number(s, len, col->decimal_mark, col->thousands, buf, sizeof buf, &g, &f);
      if (type == CPF_TYPE_INTEGER) parse_integer(buf, len, '.', &by_code[code]);
      else {
        parse_number(buf, len, '.', col->locale_point, &d);
        memcpy(&by_code[code], &d, sizeof d);
      }
      continue;
    }
    switch (type) {
    case CPF_TYPE_INTEGER: parse_integer(s, len, 0, &by_code[code]); break;
    case CPF_TYPE_NUMBER:
      parse_number(s, len, col->decimal_mark, col->locale_point, &d);
      memcpy(&by_code[code], &d, sizeof d);
      break;
    case CPF_TYPE_DATE: parse_date(s, len, &by_code[code]); break;
    default: parse_month(s, len, &by_code[code]); break;
    }
  }
  for (row = 0; row < col->rows; row++) {
    if (!column_is_valid(col, row)) { values[row] = 0; continue; }
    code = column_code_at(col, row);
    values[row] = by_code[code];
    if (blank[code]) {
      col->missing_bits[row >> 3] |= (uint8_t)(1u << (row & 7));
      col->missing++;
    }
  }
  free(by_code);
  free(blank);
  free(col->data);
  dictionary_free(&col->dict);
  col->data = values;
  col->width = 8;
  col->cap = col->rows;
  col->type = type;
  return 0;
}

/* Narrow to a smaller width in place, from the first row up (each write lands at or before
 * the value it replaces). Only needed after a rescale or an inference widened to 8 bytes. */
static void narrow_integers(cpf_column *col, int width) {
  size_t i;
  if (width >= col->width) return;
  for (i = 0; i < col->rows; i++) {
    int64_t v = column_integer_at(col, i);
    switch (width) {
    case 1: ((int8_t *)col->data)[i] = (int8_t)v; break;
    case 2: ((int16_t *)col->data)[i] = (int16_t)v; break;
    default: ((int32_t *)col->data)[i] = (int32_t)v; break;
    }
  }
  col->width = width;
}

static void *shrink(void *p, size_t bytes) {
  void *q = cpf_realloc(p, bytes ? bytes : 1);
  return q ? q : p;
}

int column_finish(cpf_column *col, char *msg, size_t msgsize) {
  /* text of another encoding made UTF-8 before the type is inferred from it (a Windows-1252
   * U+00A0 between thousands is one byte until then) */
  if (col->encoding && (col->type == CPF_TYPE_STRING || col->type == CPF_TYPE_AUTO) && col->dict.offsets) {
    if (dictionary_to_utf8(&col->dict, (cpf_encoding)col->encoding) != 0) goto oom;
    col->encoding = 0;
  }
  if (col->type == CPF_TYPE_AUTO) {
    int grouped;
    cpf_type type = infer_type(col, &grouped);
    if (type == CPF_TYPE_STRING) col->type = CPF_TYPE_STRING;
    else if (convert_strings(col, type, grouped) != 0) goto oom;
  }
  if (col->type == CPF_TYPE_STRING) {
    dictionary_freeze(&col->dict);
  } else if (col->type != CPF_TYPE_NUMBER) {
    size_t i;
    int64_t min = INT64_MAX, max = INT64_MIN;
    for (i = 0; i < col->rows; i++) {
      int64_t v;
      if (!column_is_valid(col, i)) continue;
      v = column_integer_at(col, i);
      if (v < min) min = v;
      if (v > max) max = v;
    }
    if (min > max) min = max = 0; /* no value at all */
    col->min = min;
    col->max = max;
    narrow_integers(col, width_for_range(min, max));
  }
  col->data = shrink(col->data, col->rows * (size_t)col->width);
  if (col->missing == 0) {
    free(col->missing_bits);
    col->missing_bits = NULL;
  } else {
    col->missing_bits = shrink(col->missing_bits, col->rows / 8 + 1);
  }
  col->cap = col->rows;
  return 0;
oom:
  snprintf(msg, msgsize, "out of memory");
  return -2;
}

size_t column_memory(const cpf_column *col) {
  size_t n = col->cap * (size_t)col->width;
  if (col->missing_bits) n += col->cap / 8 + 1;
  if (col->type == CPF_TYPE_STRING) n += dictionary_memory(&col->dict);
  return n;
}

/* ---- appending the rows of another column (concatenated datasets, merged chunks) ---- */

/* -1: out of memory; -2: a decimal value that does not fit 64 bits at the output's scale. A
 * code past the input's dictionary (a damaged snapshot) is appended as a missing value. */
static int append_from(cpf_column *out, const cpf_column *in, size_t rows, const uint32_t *remap) {
  static const int64_t pow10[10] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                    100000000, 1000000000};
  const int64_t factor = in->type == CPF_TYPE_DECIMAL ? pow10[out->scale - in->scale] : 1;
  size_t i;
  for (i = 0; i < rows; i++) {
    size_t row;
    if (out->rows == out->cap && column_grow(out) != 0) return -1;
    row = out->rows++;
    if (!column_is_valid(in, i) ||
        (in->type == CPF_TYPE_STRING && column_code_at(in, i) >= in->dict.count)) {
      out->missing_bits[row >> 3] |= (uint8_t)(1u << (row & 7));
      out->missing++;
      if (out->type == CPF_TYPE_NUMBER) ((double *)out->data)[row] = 0;
      else if (out->type == CPF_TYPE_STRING || out->type == CPF_TYPE_AUTO) {
        if (store_code(out, row, 0) != 0) return -1;
      }
      else if (store_integer(out, row, 0) != 0) return -1;
      continue;
    }
    switch (out->type) {
    case CPF_TYPE_STRING:
    case CPF_TYPE_AUTO:
      if (store_code(out, row, remap[column_code_at(in, i)]) != 0) return -1;
      break;
    case CPF_TYPE_NUMBER: ((double *)out->data)[row] = column_number_at(in, i); break;
    default: {
      int64_t v = column_integer_at(in, i);
      if (v > INT64_MAX / factor || v < -(INT64_MAX / factor)) return -2; /* no overflow */
      if (store_integer(out, row, v * factor) != 0) return -1;
      break;
    }
    }
  }
  return 0;
}

int column_append_column(cpf_column *out, const cpf_column *in) {
  uint32_t *remap = NULL;
  int rc;
  if (in->type == CPF_TYPE_STRING && !(remap = dictionary_merge(&out->dict, &in->dict))) return -1;
  rc = append_from(out, in, in->rows, remap);
  free(remap);
  return rc;
}

int column_append_code(cpf_column *col, uint32_t code, size_t count) {
  size_t i;
  for (i = 0; i < count; i++) {
    if (col->rows == col->cap && column_grow(col) != 0) return -1;
    if (store_code(col, col->rows++, code) != 0) return -1;
  }
  return 0;
}

/* ---- merging the builders of a file's chunks (parallel load) ---- */

/* Appends the rows of `in`, the same column's builder for the next chunk of the file, then frees
 * it. Types reconcile the way one builder reading both chunks would have: the larger decimal
 * scale, doubles when either side needed them, one dictionary in first-appearance order. */
int column_absorb(cpf_column *out, cpf_column *in) {
  uint32_t *remap = NULL;
  int rc = -1;
  if (out->type == CPF_TYPE_DECIMAL && in->type == CPF_TYPE_DECIMAL && in->scale != out->scale &&
      decimal_rescale(in->scale > out->scale ? out : in, in->scale > out->scale ? in->scale : out->scale) != 0)
    goto done; /* a rescale that would overflow turns that side into doubles: reconciled below */
  if (out->type == CPF_TYPE_NUMBER && in->type == CPF_TYPE_DECIMAL && decimal_rescale(in, 99) != 0)
    goto done;
  if (out->type == CPF_TYPE_DECIMAL && in->type == CPF_TYPE_NUMBER && decimal_rescale(out, 99) != 0)
    goto done;
  if ((out->type == CPF_TYPE_STRING || out->type == CPF_TYPE_AUTO) &&
      !(remap = dictionary_merge(&out->dict, &in->dict)))
    goto done;
  while (out->cap < out->rows + in->rows)
    if (column_grow(out) != 0) goto done;
  if (!remap && out->type == in->type && out->scale == in->scale) {
    /* the common case: same representation, copy the values as they are */
    size_t i;
    if (in->width > out->width && widen(out, in->width) != 0) goto done;
    if (in->width == out->width) {
      memcpy((char *)out->data + out->rows * (size_t)out->width, in->data,
             in->rows * (size_t)in->width);
      if (in->missing)
        for (i = 0; i < in->rows; i++)
          if (!column_is_valid(in, i))
            out->missing_bits[(out->rows + i) >> 3] |= (uint8_t)(1u << ((out->rows + i) & 7));
      out->rows += in->rows;
      out->missing += in->missing;
      rc = 0;
      goto done;
    }
  }
  rc = append_from(out, in, in->rows, remap);
done:
  free(remap);
  column_free(in);
  return rc;
}

/* fuzz_queries.c — the fixed query set of the snapshot fuzzers: each column grouped, aggregated
 * and filtered, derived keys, several keys at once, every value read back, a save and reopen,
 * and the same queries again over arrays rewritten after the open. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpf.h"
#include "fuzz.h"
#include "snapshot_format.h"

static int is_numeric(const cpf_column *col) { return col->type != CPF_TYPE_STRING; }

/* What the bindings do with a group's key code: the value it stands for. */
static void read_key(const cpf_dataset *ds, const query_key *key, uint32_t code) {
  const cpf_column *col = &ds->cols[key->column];
  char buf[32];
  size_t len;
  if (code + 1 >= key->cardinality || key->kind == KEY_REMAP || key->kind == KEY_BUCKET) return;
  if (key->kind == KEY_YEAR) return;
  if (key->kind == KEY_MONTH) { format_month(key->base + code, buf); return; }
  if (col->type == CPF_TYPE_STRING) {
    const char *s = dictionary_value(&col->dict, code, &len);
    if (len > 0 && s[len] != 0) abort(); /* a value ends with its NUL */
  } else if (key->by_value) {
    int64_t v;
    memcpy(&v, dictionary_value(&key->values, code, NULL), sizeof v);
    if (col->type == CPF_TYPE_MONTH) format_month(v, buf);
    else if (col->type == CPF_TYPE_DATE) format_date(v, buf);
  } else if (col->type == CPF_TYPE_MONTH) {
    format_month(key->base + code, buf);
  } else if (col->type == CPF_TYPE_DATE) {
    format_date(key->base + code, buf);
  }
}

static void run(cpf_dataset *ds, query_cond *where, query_key *keys, size_t nkeys, query_agg *aggs,
                size_t naggs) {
  query_result res;
  cpf_error err;
  size_t k, g;
  memset(&err, 0, sizeof err);
  if (query_run(ds, where, keys, nkeys, aggs, naggs, &res, &err) == 0) {
    for (g = 0; g < ds->rows; g++) /* what row_groups reads: a group of the result, or 0 */
      if (query_row_group(&res, g) > res.ngroups) abort();
    for (g = 0; g < res.ngroups; g++)
      for (k = 0; k < nkeys; k++) {
        if (res.key_codes[k][g] >= keys[k].cardinality) abort(); /* codes stay in range */
        read_key(ds, &keys[k], res.key_codes[k][g]);
      }
    for (k = 0; k < naggs; k++)
      for (g = 0; g < res.ngroups; g++) {
        char buf[32];
        if (!aggs[k].present[g]) continue;
        if (aggs[k].out == OUT_MONTH) format_month(aggs[k].integers[g], buf);
        if (aggs[k].out == OUT_DATE) format_date(aggs[k].integers[g], buf);
      }
  } else if (err.message[0] == 0) {
    abort(); /* a failure says why */
  }
  query_result_free(&res, nkeys, aggs, naggs);
  for (k = 0; k < nkeys; k++) key_free(&keys[k]);
}

static query_key column_key(int column) {
  query_key key;
  memset(&key, 0, sizeof key);
  key.kind = KEY_COLUMN;
  key.column = column;
  return key;
}

static query_agg agg(agg_kind kind, int column, int column2, query_cond *filter) {
  query_agg a;
  memset(&a, 0, sizeof a);
  a.kind = kind;
  a.column = column;
  a.column2 = column2;
  a.q = 0.5;
  a.filter = filter;
  return a;
}

/* A condition that keeps about half the rows of a column, as the Lua side would build it: a
 * mask over the codes of a string column (after asking the key's cardinality), a range on the
 * others. `mask` must hold the cardinality's bytes, or it is NULL and a range is used. */
static int make_cond(cpf_dataset *ds, int column, query_cond *cond, uint8_t **mask) {
  const cpf_column *col = &ds->cols[column];
  memset(cond, 0, sizeof *cond);
  *mask = NULL;
  if (col->type == CPF_TYPE_STRING) {
    uint32_t *codes = malloc((ds->rows ? ds->rows : 1) * sizeof *codes), c;
    cpf_error err;
    memset(&err, 0, sizeof err);
    cond->kind = COND_MASK;
    cond->key = column_key(column);
    if (!codes || key_compute(ds, &cond->key, codes, &err) != 0) {
      free(codes);
      key_free(&cond->key);
      return -1;
    }
    free(codes);
    *mask = malloc(cond->key.cardinality);
    if (!*mask) { key_free(&cond->key); return -1; }
    for (c = 0; c < cond->key.cardinality; c++) (*mask)[c] = (uint8_t)(c % 2);
    cond->mask = *mask;
    cond->mask_len = cond->key.cardinality;
    key_free(&cond->key);
    return 0;
  }
  cond->kind = COND_RANGE;
  cond->column = column;
  cond->has_lo = cond->has_hi = 1;
  cond->lo = 1;
  cond->hi = 100;
  cond->hi_open = 1;
  return 0;
}

static void read_rows(const cpf_dataset *ds) {
  size_t i, j;
  for (j = 0; j < ds->ncols; j++) {
    const cpf_column *col = &ds->cols[j];
    for (i = 0; i < ds->rows; i++) {
      char buf[32];
      size_t len;
      if (!column_is_valid(col, i)) continue;
      switch (col->type) {
      case CPF_TYPE_STRING: {
        uint32_t code = column_code_at(col, i);
        if (code < col->dict.count) dictionary_value(&col->dict, code, &len);
        break;
      }
      case CPF_TYPE_MONTH: format_month(column_integer_at(col, i), buf); break;
      case CPF_TYPE_DATE: format_date(column_integer_at(col, i), buf); break;
      case CPF_TYPE_NUMBER: (void)column_number_at(col, i); break;
      default: (void)column_integer_at(col, i); break;
      }
    }
  }
}

static void run_queries(cpf_dataset *ds) {
  size_t j, nk;
  int n = (int)ds->ncols;
  query_key keys[8];
  query_agg aggs[10];
  query_cond cond, both[2], any;
  uint8_t *mask = NULL, *mask2 = NULL;
  read_rows(ds);
  for (j = 0; j < ds->ncols; j++) {
    int c = (int)j;
    const cpf_column *col = &ds->cols[j];
    int has_cond = make_cond(ds, c, &cond, &mask) == 0;
    /* grouped by the column, every aggregate of it, unfiltered and filtered */
    keys[0] = column_key(c);
    aggs[0] = agg(AGG_COUNT, -1, -1, NULL);
    aggs[1] = agg(AGG_COUNT_VALUES, c, -1, NULL);
    aggs[2] = agg(AGG_DISTINCT, c, -1, has_cond ? &cond : NULL);
    if (is_numeric(col)) {
      aggs[3] = agg(AGG_SUM, c, -1, NULL);
      aggs[4] = agg(AGG_MEAN, c, -1, NULL);
      aggs[5] = agg(AGG_MIN, c, -1, NULL);
      aggs[6] = agg(AGG_MAX, c, -1, has_cond ? &cond : NULL);
      aggs[7] = agg(AGG_QUANTILE, c, -1, NULL);
      aggs[8] = agg(AGG_RATIO, c, (c + 1) % n, NULL);
      aggs[9] = agg(AGG_WMEAN, c, c, NULL);
      run(ds, NULL, keys, 1, aggs, 10);
    } else {
      run(ds, NULL, keys, 1, aggs, 3);
    }
    /* the same aggregates over the whole dataset, under the condition */
    if (is_numeric(col)) {
      aggs[0] = agg(AGG_SUM, c, -1, NULL);
      aggs[1] = agg(AGG_MIN, c, -1, NULL);
      aggs[2] = agg(AGG_QUANTILE, c, -1, NULL);
      run(ds, has_cond ? &cond : NULL, NULL, 0, aggs, 3);
    }
    /* derived keys */
    if (col->type == CPF_TYPE_MONTH || col->type == CPF_TYPE_DATE) {
      memset(keys, 0, 2 * sizeof *keys);
      keys[0].kind = KEY_YEAR;
      keys[0].column = c;
      keys[1].kind = KEY_MONTH;
      keys[1].column = c;
      aggs[0] = agg(AGG_COUNT, -1, -1, NULL);
      run(ds, NULL, keys, 2, aggs, 1);
      keys[0].kind = KEY_MONTH; /* alone: the first key's codes are the group ids */
      run(ds, has_cond ? &cond : NULL, keys, 1, aggs, 1);
      keys[0] = column_key(0);
      keys[1].kind = KEY_YEAR; /* after another key: fused into the group ids */
      keys[1].column = c;
      run(ds, NULL, keys, 2, aggs, 1);
    }
    if (is_numeric(col)) {
      static const double bounds[3] = {0, 10, 1000};
      keys[0] = column_key(c);
      keys[0].kind = KEY_BUCKET;
      keys[0].bounds = bounds;
      keys[0].nbounds = 3;
      keys[1] = column_key(c);
      keys[1].force_by_value = 1;
      aggs[0] = agg(AGG_COUNT, -1, -1, NULL);
      run(ds, NULL, keys, 2, aggs, 1);
    }
    if (col->type == CPF_TYPE_STRING) {
      int32_t *remap = malloc(((size_t)col->dict.count + 1) * sizeof *remap);
      uint32_t k;
      if (remap) {
        for (k = 0; k < col->dict.count; k++) remap[k] = (int32_t)(k % 4) - 1; /* -1: no value */
        keys[0] = column_key(c);
        keys[0].kind = KEY_REMAP;
        keys[0].remap = remap;
        keys[0].remap_outputs = 3;
        aggs[0] = agg(AGG_COUNT, -1, -1, NULL);
        run(ds, NULL, keys, 1, aggs, 1);
        free(remap);
      }
    }
    /* conditions combined: not, and, or, null tests */
    if (has_cond) {
      query_cond not_cond;
      memset(&not_cond, 0, sizeof not_cond);
      not_cond.kind = COND_NOT;
      not_cond.children = &cond;
      not_cond.nchildren = 1;
      memset(both, 0, sizeof both);
      both[0] = not_cond;
      both[1].kind = COND_NULL;
      both[1].column = c;
      both[1].negate = 1;
      memset(&any, 0, sizeof any);
      any.kind = j % 2 ? COND_AND : COND_OR;
      any.children = both;
      any.nchildren = 2;
      keys[0] = column_key((c + 1) % n);
      aggs[0] = agg(AGG_COUNT, -1, -1, &any);
      run(ds, &any, keys, 1, aggs, 1);
    }
    free(mask);
    mask = NULL;
  }
  /* several keys: two at a time (direct), then every column (hashed when the product is big) */
  for (j = 0; j + 1 < ds->ncols; j++) {
    keys[0] = column_key((int)j);
    keys[1] = column_key((int)j + 1);
    aggs[0] = agg(AGG_COUNT, -1, -1, NULL);
    run(ds, NULL, keys, 2, aggs, 1);
  }
  nk = ds->ncols < 8 ? ds->ncols : 8;
  for (j = 0; j < nk; j++) keys[j] = column_key((int)j);
  if (nk > 0) {
    int has_cond = make_cond(ds, 0, &cond, &mask2) == 0;
    aggs[0] = agg(AGG_COUNT, -1, -1, NULL);
    run(ds, has_cond ? &cond : NULL, keys, nk, aggs, 1);
    free(mask2);
  }
}

/* A dataset that opened saves to a file that opens again, with the same shape. */
static void save_and_reopen(const cpf_dataset *ds) {
  char path[64];
  cpf_error err;
  cpf_dataset *again;
  snprintf(path, sizeof path, "/tmp/cpf-fuzz-%ld.cpfsnap", (long)getpid());
  memset(&err, 0, sizeof err);
  if (snapshot_save(ds, path, ds->tag, ds->tag_len, &err) != 0) {
    fprintf(stderr, "save failed: %s\n", err.message);
    abort();
  }
  again = snapshot_open(path, 1, &err);
  if (!again) {
    fprintf(stderr, "a saved snapshot does not reopen: %s\n", err.message);
    abort();
  }
  if (again->rows != ds->rows || again->ncols != ds->ncols) abort();
  dataset_free(again);
  unlink(path);
}

/* What a file rewritten in place under its mapping does: after the open's checks, each array of
 * each column (codes, values, bitmap, dictionary offsets and bytes) is left alone, filled with
 * ones, overwritten by other bytes of the file or has its high bits flipped, as the input's
 * checksum decides. The queries must stay memory-safe; their answers may be anything. */
static void rewrite_in_place(const cpf_dataset *ds, const uint8_t *bytes, size_t size) {
  uint64_t seed = snapshot_checksum(0, bytes, size);
  size_t j, k, a;
  for (j = 0; j < ds->ncols; j++) {
    const cpf_column *col = &ds->cols[j];
    uint8_t *arrays[4];
    size_t sizes[4];
    arrays[0] = col->data;
    sizes[0] = ds->rows * (size_t)col->width;
    arrays[1] = col->missing_bits;
    sizes[1] = col->missing_bits ? ds->rows / 8 + 1 : 0;
    arrays[2] = col->type == CPF_TYPE_STRING ? (uint8_t *)col->dict.offsets : NULL;
    sizes[2] = arrays[2] ? ((size_t)col->dict.count + 1) * 8 : 0;
    arrays[3] = col->type == CPF_TYPE_STRING ? (uint8_t *)col->dict.bytes : NULL;
    sizes[3] = arrays[3] ? col->dict.bytes_len : 0;
    for (a = 0; a < 4; a++) {
      unsigned mode = (unsigned)(seed % 4);
      seed = seed * 0x9E3779B97F4A7C15ull + j + a + 1;
      if (!arrays[a]) continue;
      for (k = 0; k < sizes[a]; k++)
        switch (mode) {
        case 1: arrays[a][k] = 0xff; break;
        case 2: arrays[a][k] = bytes[(seed + k * 7) % size]; break;
        case 3: arrays[a][k] ^= 0x80; break;
        default: break;
        }
    }
  }
}

void fuzz_snapshot(const uint8_t *data, size_t size) {
  /* a copy of exactly the input's size: any read past the end is a sanitizer report */
  uint8_t *bytes = malloc(size ? size : 1);
  cpf_error err;
  cpf_dataset *ds;
  if (!bytes) return;
  memcpy(bytes, data, size);
  memset(&err, 0, sizeof err);
  ds = snapshot_open_bytes(bytes, size, "fuzz", 1, &err); /* with the checksums, on first use */
  if (ds) run_queries(ds);
  dataset_free(ds);
  memset(&err, 0, sizeof err);
  ds = snapshot_open_bytes(bytes, size, "fuzz", 0, &err);
  if (!ds) {
    if (!err.code || strncmp(err.message, "fuzz: ", 6) != 0) abort(); /* a refusal says why */
    free(bytes);
    return;
  }
  run_queries(ds); /* the columns' checks run as the queries first use them */
  memset(&err, 0, sizeof err);
  if (snapshot_check_columns(ds, &err) == 0) save_and_reopen(ds); /* cpf refuses to save damage */
  else if (strncmp(err.message, "fuzz: column ", 13) != 0) abort(); /* a damage report says where */
  rewrite_in_place(ds, data, size); /* after the checks, as a file rewritten while in use */
  run_queries(ds);
  dataset_free(ds);
  free(bytes);
}

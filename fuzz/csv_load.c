/* fuzz/csv_load.c — libFuzzer harness for the CSV loader: arbitrary bytes are loaded with one
 * thread, with several threads on small chunks, and through libcsv only (some columns passed
 * over, the last ones now and then; now and then with on_error = "skip"); every way must give
 * the same dataset (values, types, missing values, the records set aside) or the same error
 * message, and a dictionary holds each value once and only values some row has (a rejected
 * record's values are taken back). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../csrc/cpf.h"

/* One load of `path` with the given options: the dataset, or NULL with the message in err. */
static cpf_dataset *load_with(const char *path, size_t threads, int libcsv_only, int skip_tail,
                              int skip_bad, cpf_error *err) {
  cpf_source src;
  cpf_dataset *ds = NULL;
  char **labels = NULL;
  size_t count = 0, i;
  char sep = 0;
  cpf_column_spec *specs;
  cpf_load_options opts;
  memset(err, 0, sizeof *err);
  if (source_open(&src, path, err) != 0) return NULL;
  if (loader_read_header(&src, 0, &labels, &count, &sep, err) != 0) { source_close(&src); return NULL; }
  specs = calloc(count ? count : 1, sizeof *specs);
  if (!specs) abort();
  for (i = 0; i < count; i++) {
    static char names[64][16];
    /* names of their own: duplicate or empty labels are the schema's business, not the loader's */
    if (i < 64) snprintf(names[i], sizeof names[i], "c%zu", i);
    specs[i].name = i < 64 ? names[i] : "c";
    specs[i].label = labels[i];
    /* every type the loader has: inference for most columns, the typed parsers for a few */
    specs[i].type = i % 7 == 1 ? CPF_TYPE_INTEGER : i % 7 == 2 ? CPF_TYPE_DECIMAL
                  : i % 7 == 3 ? CPF_TYPE_MONTH : CPF_TYPE_AUTO;
    /* passed over: a column in the middle, and now and then the last ones, which the fast path
     * then counts past */
    specs[i].skip = i % 11 == 5 || (skip_tail && i + 2 >= count && i > 0);
  }
  memset(&opts, 0, sizeof opts);
  opts.sep = sep;
  opts.threads = threads;
  opts.min_chunk = threads > 1 ? 16 : 0; /* a few lines a chunk: boundaries everywhere */
  opts.libcsv_only = libcsv_only;
  opts.skip_bad_records = skip_bad;
  opts.max_rejects = 50;
  if (source_inflate(&src, &opts, err) == 0) ds = loader_load(&src, &opts, specs, count, err);
  free(specs);
  loader_free_header(labels, count);
  source_close(&src);
  return ds;
}

static void same_column(const cpf_column *a, const cpf_column *b, size_t rows) {
  size_t r;
  if (a->type != b->type || strcmp(a->name, b->name) != 0 || a->missing != b->missing) abort();
  for (r = 0; r < rows; r++) {
    if (column_is_valid(a, r) != column_is_valid(b, r)) abort();
    if (!column_is_valid(a, r)) continue;
    if (a->type == CPF_TYPE_STRING) {
      size_t la, lb;
      const char *va = dictionary_value(&a->dict, column_code_at(a, r), &la);
      const char *vb = dictionary_value(&b->dict, column_code_at(b, r), &lb);
      if (la != lb || memcmp(va, vb, la) != 0) abort();
    } else if (a->type == CPF_TYPE_NUMBER) {
      double x = column_number_at(a, r), y = column_number_at(b, r);
      if (memcmp(&x, &y, sizeof x) != 0) abort();
    } else {
      if (a->scale != b->scale || column_integer_at(a, r) != column_integer_at(b, r)) abort();
    }
  }
}

/* Each value of a string column's dictionary once, and used by a row. */
static void sound_dictionary(const cpf_column *col, size_t rows) {
  uint32_t n = col->dict.count, c, d;
  unsigned char *used;
  size_t r;
  if (col->type != CPF_TYPE_STRING || n > 300) return;
  used = calloc(n ? n : 1, 1);
  if (!used) abort();
  for (r = 0; r < rows; r++)
    if (column_is_valid(col, r)) used[column_code_at(col, r)] = 1;
  for (c = 0; c < n; c++) {
    size_t lc, ld;
    const char *vc = dictionary_value(&col->dict, c, &lc);
    if (!used[c]) abort();
    for (d = c + 1; d < n; d++) {
      const char *vd = dictionary_value(&col->dict, d, &ld);
      if (lc == ld && memcmp(vc, vd, lc) == 0) abort();
    }
  }
  free(used);
}

static void same_outcome(cpf_dataset *a, const cpf_error *ea, cpf_dataset *b, const cpf_error *eb) {
  size_t j;
  if ((a == NULL) != (b == NULL)) abort();
  if (a == NULL) {
    if (strcmp(ea->message, eb->message) != 0) abort();
    return;
  }
  if (a->rows != b->rows || a->ncols != b->ncols) abort();
  if (a->rejects.count != b->rejects.count || a->rejects.size != b->rejects.size ||
      (a->rejects.size && memcmp(a->rejects.bytes, b->rejects.bytes, a->rejects.size) != 0))
    abort();
  for (j = 0; j < a->ncols; j++) {
    same_column(&a->cols[j], &b->cols[j], a->rows);
    sound_dictionary(&a->cols[j], a->rows);
    sound_dictionary(&b->cols[j], b->rows);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[] = "/tmp/cpf-fuzz-csv-XXXXXX";
  int fd = mkstemp(path);
  cpf_error e1, e2, e3;
  cpf_dataset *one, *several, *libcsv;
  int skip_tail, skip_bad;
  if (fd < 0) abort();
  if (size > 0 && write(fd, data, size) != (ssize_t)size) abort();
  close(fd);
  skip_tail = size > 0 && (data[size - 1] & 1);
  skip_bad = size > 0 && (data[size - 1] & 2);
  one = load_with(path, 1, 0, skip_tail, skip_bad, &e1);
  several = load_with(path, 4, 0, skip_tail, skip_bad, &e2);
  libcsv = load_with(path, 1, 1, skip_tail, skip_bad, &e3);
  same_outcome(one, &e1, several, &e2);
  same_outcome(one, &e1, libcsv, &e3);
  if (one) dataset_free(one);
  if (several) dataset_free(several);
  if (libcsv) dataset_free(libcsv);
  unlink(path);
  return 0;
}

/* snapshot.c — the dataset as one binary file: a header, the columns' arrays (64-byte aligned)
 * and a column table. Reopened by mmap and used in place: no copy, no parse. A snapshot may come
 * from anyone, and its checksums can be recomputed by anyone: every field of the table is checked
 * against the others and against the file before use (see DESIGN.md, the trust model). */
/* madvise and MADV_POPULATE_READ are not POSIX: glibc declares them under _DEFAULT_SOURCE */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cpf.h"
#include "snapshot_format.h"

/* Four independent multiply-xor lanes over 8-byte words: fast enough to check every byte of a
 * snapshot when it is opened. Only compared on machines of the same byte order. It can be fed
 * in pieces (checksum_start, checksum_words, checksum_end), so that a column's check reads its
 * data once (check_data). */
typedef struct {
  uint64_t a, b, c, d;
} checksum_lanes;

static void checksum_start(checksum_lanes *h, uint64_t seed, size_t n) {
  h->a = seed ^ 0x9E3779B97F4A7C15ull;
  h->b = seed + n;
  h->c = ~seed;
  h->d = seed * 31 + 7;
}

/* The whole 32-byte words of s[0..n); returns the bytes left over (n % 32), not read. */
static size_t checksum_words(checksum_lanes *h, const unsigned char *s, size_t n) {
  uint64_t a = h->a, b = h->b, c = h->c, d = h->d, w[4];
  const uint64_t k = 0xff51afd7ed558ccdull;
  while (n >= 32) {
    memcpy(w, s, 32);
    a = (a ^ w[0]) * k; b = (b ^ w[1]) * k; c = (c ^ w[2]) * k; d = (d ^ w[3]) * k;
    a ^= a >> 29; b ^= b >> 29; c ^= c >> 29; d ^= d >> 29;
    s += 32;
    n -= 32;
  }
  h->a = a; h->b = b; h->c = c; h->d = d;
  return n;
}

/* The last n (< 32) bytes, and the sum. */
static uint64_t checksum_end(checksum_lanes *h, const unsigned char *s, size_t n) {
  const uint64_t k = 0xff51afd7ed558ccdull;
  uint64_t a = h->a;
  while (n > 0) {
    a = (a ^ *s++) * k;
    a ^= a >> 29;
    n--;
  }
  a ^= (h->b * 3) ^ (h->c * 5) ^ (h->d * 7);
  a *= k;
  return a ^ (a >> 32);
}

uint64_t snapshot_checksum(uint64_t seed, const void *p, size_t n) {
  checksum_lanes h;
  size_t left;
  checksum_start(&h, seed, n);
  left = checksum_words(&h, p, n);
  return checksum_end(&h, (const unsigned char *)p + (n - left), left);
}

/* ---- saving ---- */

/* Written through an output file (output_file.c): a temporary created exclusively beside the
 * target, renamed over it once complete, so that a process with the old snapshot mapped is never
 * disturbed and nothing but a regular file is replaced. */
typedef struct {
  output_file out;
  uint64_t offset;
  int failed;      /* the first failure's message is in err */
  cpf_error *err;
} writer;

static uint64_t write_block(writer *w, const void *p, size_t n) {
  static const char zeros[SNAP_ALIGN] = {0};
  uint64_t at = w->offset;
  size_t pad = (SNAP_ALIGN - (size_t)(n % SNAP_ALIGN)) % SNAP_ALIGN;
  if (!w->failed && n > 0 && output_file_write(&w->out, p, n, w->err) != 0) w->failed = 1;
  if (!w->failed && pad > 0 && output_file_write(&w->out, zeros, pad, w->err) != 0) w->failed = 1;
  w->offset += n + pad;
  return at;
}

/* The header's checksum: over the column table, the tag and the rejects. */
static uint64_t header_checksum(const void *table, size_t table_size, const void *tag, size_t tag_size,
                                const void *rejects, size_t rejects_size) {
  uint64_t sum = snapshot_checksum(snapshot_checksum(0, table, table_size), tag, tag_size);
  return rejects_size ? snapshot_checksum(sum, rejects, rejects_size) : sum;
}

int snapshot_save(const cpf_dataset *ds, const char *path, const char *tag, size_t tag_len,
                  cpf_error *err) {
  snap_header h;
  snap_column *table;
  writer w;
  size_t j;
  memset(&w, 0, sizeof w);
  w.err = err;
  table = cpf_calloc(ds->ncols ? ds->ncols : 1, sizeof *table);
  if (!table) {
    cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path);
    return -1;
  }
  if (output_file_open(&w.out, path, err) != 0) {
    free(table);
    return -1;
  }
  memset(&h, 0, sizeof h);
  write_block(&w, &h, sizeof h); /* rewritten at the end */
  h.tag_offset = write_block(&w, tag, tag_len);
  h.tag_size = tag_len;
  for (j = 0; j < ds->ncols; j++) {
    const cpf_column *col = &ds->cols[j];
    snap_column *t = &table[j];
    uint64_t sum = 0;
    t->type = (uint32_t)col->type;
    t->width = (uint32_t)col->width;
    t->scale = col->scale;
    t->missing = col->missing;
    t->min = col->min;
    t->max = col->max;
    t->name_size = strlen(col->name) + 1;
    t->name_offset = write_block(&w, col->name, t->name_size);
    t->label_size = strlen(col->label) + 1;
    t->label_offset = write_block(&w, col->label, t->label_size);
    t->data_size = (uint64_t)ds->rows * (uint64_t)col->width;
    t->data_offset = write_block(&w, col->data, t->data_size);
    sum = snapshot_checksum(sum, col->name, t->name_size);
    sum = snapshot_checksum(sum, col->label, t->label_size);
    sum = snapshot_checksum(sum, col->data, t->data_size);
    if (col->missing_bits) {
      t->bits_size = ds->rows / 8 + 1;
      t->bits_offset = write_block(&w, col->missing_bits, t->bits_size);
      sum = snapshot_checksum(sum, col->missing_bits, t->bits_size);
    }
    if (col->type == CPF_TYPE_STRING) {
      t->dict_count = col->dict.count;
      t->dict_bytes_size = col->dict.bytes_len;
      t->dict_bytes_offset = write_block(&w, col->dict.bytes, t->dict_bytes_size);
      t->dict_offsets_size = ((uint64_t)col->dict.count + 1) * sizeof(uint64_t);
      t->dict_offsets_offset = write_block(&w, col->dict.offsets, t->dict_offsets_size);
      sum = snapshot_checksum(sum, col->dict.bytes, t->dict_bytes_size);
      sum = snapshot_checksum(sum, col->dict.offsets, t->dict_offsets_size);
    }
    t->checksum = sum;
  }
  h.rejects_size = ds->rejects.size;
  h.rejects_count = ds->rejects.count;
  h.rejects_offset = write_block(&w, ds->rejects.bytes, h.rejects_size);
  h.table_size = (uint64_t)ds->ncols * sizeof *table;
  h.table_offset = write_block(&w, table, h.table_size);
  memcpy(h.magic, SNAP_MAGIC, 8);
  h.version = SNAP_VERSION;
  h.endian = SNAP_ENDIAN;
  h.rows = ds->rows;
  h.ncols = ds->ncols;
  h.file_size = w.offset;
  h.checksum = header_checksum(table, h.table_size, tag, tag_len, ds->rejects.bytes, h.rejects_size);
  free(table);
  /* the header, now complete, over the placeholder at the start */
  if (!w.failed && pwrite(w.out.fd, &h, sizeof h, 0) != (ssize_t)sizeof h) {
    cpf_error_set(err, CPF_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    w.failed = 1;
  }
  if (w.failed) {
    output_file_abort(&w.out);
    return -1;
  }
  return output_file_commit(&w.out, err);
}

/* ---- opening: the table is checked field by field before anything is read through it ---- */

static int in_file(uint64_t offset, uint64_t size, uint64_t file_size) {
  return offset <= file_size && size <= file_size - offset;
}

static int valid_width(cpf_type type, uint32_t width) {
  switch (type) {
  case CPF_TYPE_STRING: return width == 1 || width == 2 || width == 4;
  case CPF_TYPE_NUMBER: return width == 8;
  default: return width == 1 || width == 2 || width == 4 || width == 8;
  }
}

/* A name or label: inside the file, ending with its only NUL. */
static int valid_text(const unsigned char *base, uint64_t file_size, uint64_t offset, uint64_t size) {
  return in_file(offset, size, file_size) && size > 0 && base[offset + size - 1] == 0 &&
         memchr(base + offset, 0, (size_t)size - 1) == NULL;
}

/* The range of the values an integer-like column can hold: its width's, and for months and dates
 * the years 0000 to 9999 that parsing produces (what keeps calendar arithmetic in range). */
static void value_limits(cpf_type type, uint32_t width, int64_t *lo, int64_t *hi) {
  switch (width) {
  case 1: *lo = INT8_MIN; *hi = INT8_MAX; break;
  case 2: *lo = INT16_MIN; *hi = INT16_MAX; break;
  case 4: *lo = INT32_MIN; *hi = INT32_MAX; break;
  default: *lo = INT64_MIN; *hi = INT64_MAX; break;
  }
  if (type == CPF_TYPE_MONTH) {
    if (*lo < 0) *lo = 0;
    if (*hi > 9999 * 12 + 11) *hi = 9999 * 12 + 11;
  } else if (type == CPF_TYPE_DATE) {
    if (*lo < days_from_civil(0, 1, 1)) *lo = days_from_civil(0, 1, 1);
    if (*hi > days_from_civil(9999, 12, 31)) *hi = days_from_civil(9999, 12, 31);
  }
}

/* What one table entry says, against itself and against the file; reads only the names and the
 * dictionary's offsets. NULL when consistent, else the reason. */
static const char *check_entry(const unsigned char *base, uint64_t file_size, uint64_t rows,
                               const snap_column *t) {
  int string = t->type == CPF_TYPE_STRING;
  uint64_t c;
  if (t->type > CPF_TYPE_DATE) return "unknown column type";
  if (!valid_width((cpf_type)t->type, t->width)) return "bad value width";
  if (t->type == CPF_TYPE_DECIMAL ? (t->scale < 0 || t->scale > 9) : t->scale != 0)
    return "bad decimal scale";
  if (t->reserved != 0) return "reserved field not zero";
  if (!valid_text(base, file_size, t->name_offset, t->name_size)) return "bad column name";
  if (!valid_text(base, file_size, t->label_offset, t->label_size)) return "bad column label";
  if (rows > UINT64_MAX / 8 || t->data_size != rows * t->width)
    return "data size does not match the rows and the value width";
  if (!in_file(t->data_offset, t->data_size, file_size)) return "column data out of the file";
  if (t->data_offset % 8 != 0) return "misaligned column data";
  /* a bitmap exactly when values are missing, of one bit per row (and a spare byte) */
  if (t->missing > rows || (t->missing == 0) != (t->bits_size == 0) ||
      (t->bits_size != 0 && (t->bits_size != rows / 8 + 1 || !in_file(t->bits_offset, t->bits_size, file_size))))
    return "bad missing-value bitmap";
  if (t->bits_size == 0 && t->bits_offset != 0) return "bad missing-value bitmap";
  if (string || t->type == CPF_TYPE_NUMBER) {
    if (t->min != 0 || t->max != 0) return "a value range on a column that keeps none";
  } else {
    int64_t lo, hi;
    value_limits((cpf_type)t->type, t->width, &lo, &hi);
    if (t->min > t->max || t->min < lo || t->max > hi) return "bad value range";
  }
  if (!string) {
    if (t->dict_count || t->dict_bytes_offset || t->dict_bytes_size || t->dict_offsets_offset ||
        t->dict_offsets_size)
      return "a dictionary on a column that is not a string column";
    return NULL;
  }
  /* codes of `width` bytes number at most 2^(8 width) values; the dictionary stops below 2^32 - 1 */
  if (t->dict_count > (t->width == 1 ? 256u : t->width == 2 ? 65536u : UINT32_MAX - 1u))
    return "more dictionary values than its codes can number";
  if (t->dict_offsets_size != (t->dict_count + 1) * 8) return "bad dictionary size";
  if (!in_file(t->dict_offsets_offset, t->dict_offsets_size, file_size) ||
      !in_file(t->dict_bytes_offset, t->dict_bytes_size, file_size))
    return "dictionary out of the file";
  if (t->dict_offsets_offset % 8 != 0) return "misaligned dictionary";
  {
    const uint64_t *offsets = (const uint64_t *)(base + t->dict_offsets_offset);
    if (offsets[0] != 0 || offsets[t->dict_count] != t->dict_bytes_size) return "bad dictionary";
    for (c = 0; c < t->dict_count; c++) /* each value is at least its NUL, and ends with it */
      if (offsets[c + 1] <= offsets[c] || offsets[c + 1] > t->dict_bytes_size ||
          base[t->dict_bytes_offset + offsets[c + 1] - 1] != 0)
        return "bad dictionary";
  }
  return NULL;
}

/* ---- the layout: no two ranges of the file overlap ---- */

typedef struct {
  uint64_t offset, size;
  size_t column; /* 1-based; 0 for the header, the tag and the table */
  const char *what;
  size_t order;  /* ties sort in the order the ranges were added: the same message every time */
} file_range;

static void add_range(file_range *r, size_t *n, uint64_t offset, uint64_t size, size_t column,
                      const char *what) {
  if (size == 0) return; /* an empty array lies nowhere */
  r[*n].offset = offset;
  r[*n].size = size;
  r[*n].column = column;
  r[*n].what = what;
  r[*n].order = *n;
  (*n)++;
}

static int compare_ranges(const void *pa, const void *pb) {
  const file_range *a = pa, *b = pb;
  if (a->offset != b->offset) return a->offset < b->offset ? -1 : 1;
  return (a->order > b->order) - (a->order < b->order);
}

static void name_range(const file_range *r, char *buf, size_t n) {
  if (r->column) snprintf(buf, n, "column %zu's %s", r->column, r->what);
  else snprintf(buf, n, "the %s", r->what);
}

/* Sorted by offset, each range ends before the next begins; else writes which two overlap. */
static int check_layout(file_range *r, size_t n, char *msg, size_t msgsize) {
  size_t i;
  qsort(r, n, sizeof *r, compare_ranges);
  for (i = 1; i < n; i++)
    if (r[i].offset - r[i - 1].offset < r[i - 1].size) {
      char a[64], b[64];
      name_range(&r[i], a, sizeof a);
      name_range(&r[i - 1], b, sizeof b);
      snprintf(msg, msgsize, "%s overlaps %s", a, b);
      return -1;
    }
  return 0;
}

/* ---- per-row facts, read once at open (queries stay memory-safe without them: they are what
 * turns a damaged file into a clear message instead of a wrong answer) ---- */

static uint64_t popcount64(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return (x * 0x0101010101010101ull) >> 56;
}

/* The bitmap has `missing` bits set among the rows' bits and none past the last row. */
static int bitmap_matches(const uint8_t *bits, size_t rows, uint64_t missing) {
  size_t full = rows / 8, i = 0;
  uint64_t count = 0;
  unsigned tail = (unsigned)(rows % 8);
  for (; i + 8 <= full; i += 8) {
    uint64_t w;
    memcpy(&w, bits + i, 8);
    count += popcount64(w);
  }
  for (; i < full; i++) count += popcount64(bits[i]);
  if (bits[full] >> tail) return 0; /* the spare bits of the last byte */
  count += popcount64(bits[full]);
  return count == missing;
}

/* Reductions over a whole array, one function per width, written for GCC's -O2 vectorizer
 * (the opens' cost is in these loops): it only takes a loop that leaves no scalar remainder (so
 * the main loop runs a multiple of 64 times) in a function of its own (not inlined). */
#if defined(__GNUC__)
#define NOT_INLINED __attribute__((noinline))
#else
#define NOT_INLINED
#endif

#define MAX_OF(T, NAME)                                                                          \
  NOT_INLINED static uint64_t max_##NAME(const T *v, size_t n) {                                \
    size_t i, main = n & ~(size_t)63;                                                            \
    T m = 0;                                                                                     \
    for (i = 0; i < main; i++) m = v[i] > m ? v[i] : m;                                          \
    for (; i < n; i++) m = v[i] > m ? v[i] : m;                                                  \
    return (uint64_t)m;                                                                          \
  }

#define RANGE_OF(T, NAME, TMIN, TMAX)                                                            \
  NOT_INLINED static void range_##NAME(const T *v, size_t n, int64_t *lo, int64_t *hi) {        \
    size_t i, main = n & ~(size_t)63;                                                            \
    T a = TMAX, b = TMIN;                                                                        \
    for (i = 0; i < main; i++) {                                                                 \
      a = v[i] < a ? v[i] : a;                                                                   \
      b = v[i] > b ? v[i] : b;                                                                   \
    }                                                                                            \
    for (; i < n; i++) {                                                                         \
      a = v[i] < a ? v[i] : a;                                                                   \
      b = v[i] > b ? v[i] : b;                                                                   \
    }                                                                                            \
    *lo = (int64_t)a;                                                                            \
    *hi = (int64_t)b;                                                                            \
  }

MAX_OF(uint8_t, u8)
MAX_OF(uint16_t, u16)
MAX_OF(uint32_t, u32)
RANGE_OF(int8_t, i8, INT8_MIN, INT8_MAX)
RANGE_OF(int16_t, i16, INT16_MIN, INT16_MAX)
RANGE_OF(int32_t, i32, INT32_MIN, INT32_MAX)
RANGE_OF(int64_t, i64, INT64_MIN, INT64_MAX)

/* The extent of rows [first, first + n): the largest code of a string column (lo = 0), the
 * smallest and largest value of an integer-like one. Missing rows hold 0 and count. */
static void block_extent(const cpf_column *col, size_t first, size_t n, int64_t *lo, int64_t *hi) {
  const unsigned char *v = (const unsigned char *)col->data + first * col->width;
  if (col->type == CPF_TYPE_STRING) {
    *lo = 0;
    switch (col->width) {
    case 1: *hi = (int64_t)max_u8((const uint8_t *)v, n); break;
    case 2: *hi = (int64_t)max_u16((const uint16_t *)(const void *)v, n); break;
    default: *hi = (int64_t)max_u32((const uint32_t *)(const void *)v, n); break;
    }
    return;
  }
  switch (col->width) {
  case 1: range_i8((const int8_t *)v, n, lo, hi); break;
  case 2: range_i16((const int16_t *)(const void *)v, n, lo, hi); break;
  case 4: range_i32((const int32_t *)(const void *)v, n, lo, hi); break;
  default: range_i64((const int64_t *)(const void *)v, n, lo, hi); break;
  }
}

/* Rows read a block at a time, checksum and extent together, while the block is in cache: the
 * data is read from memory once (a multiple of 64 rows, and of 32 bytes at every width). */
#define CHECK_BLOCK_ROWS 8192

/* One pass over a column's data: its checksum continued from *sum (verify), and the extent of
 * its values (a column of doubles has none to check). */
static void check_data(const cpf_column *col, size_t rows, int verify, uint64_t *sum, int64_t *lo,
                       int64_t *hi) {
  const unsigned char *data = col->data;
  size_t bytes = rows * col->width, r, left = 0;
  int ranged = col->type != CPF_TYPE_NUMBER;
  checksum_lanes h;
  *lo = INT64_MAX;
  *hi = INT64_MIN;
  if (verify) checksum_start(&h, *sum, bytes);
  for (r = 0; r < rows; r += CHECK_BLOCK_ROWS) {
    size_t m = rows - r < CHECK_BLOCK_ROWS ? rows - r : CHECK_BLOCK_ROWS;
    if (verify) left = checksum_words(&h, data + r * col->width, m * col->width);
    if (ranged) {
      int64_t a, b;
      block_extent(col, r, m, &a, &b);
      if (a < *lo) *lo = a;
      if (b > *hi) *hi = b;
    }
  }
  if (verify) *sum = checksum_end(&h, data + (bytes - left), left);
}

/* Every code of the rows that have a value names a dictionary entry: the largest code over all
 * rows first, the exact test row by row only when that is not enough. */
static int codes_in_range(const cpf_column *col, size_t rows, int64_t max) {
  size_t i;
  uint32_t count = col->dict.count;
  if (rows == 0 || max < (int64_t)count) return 1;
  for (i = 0; i < rows; i++)
    if (column_code_at(col, i) >= count && column_is_valid(col, i)) return 0;
  return 1;
}

/* Every value present lies in [min, max], which the table recorded: the extent over all rows
 * first, the exact test row by row only when that is not enough. */
static int values_in_range(const cpf_column *col, size_t rows, int64_t lo, int64_t hi) {
  size_t i;
  if (rows == 0 || (lo >= col->min && hi <= col->max)) return 1;
  for (i = 0; i < rows; i++) {
    int64_t v = column_integer_at(col, i);
    if ((v < col->min || v > col->max) && column_is_valid(col, i)) return 0;
  }
  return 1;
}

static const char *check_values(const unsigned char *base, const cpf_column *col,
                                const snap_column *t, size_t rows, int verify) {
  uint64_t sum = 0;
  int64_t lo, hi;
  if (verify) {
    /* the names as they lie in the file (the column holds copies, NUL-terminated there) */
    sum = snapshot_checksum(0, base + t->name_offset, t->name_size);
    sum = snapshot_checksum(sum, base + t->label_offset, t->label_size);
  }
  check_data(col, rows, verify, &sum, &lo, &hi);
  if (verify) { /* first: on a damaged file, the checksum is the message that says so */
    if (col->missing_bits) sum = snapshot_checksum(sum, col->missing_bits, t->bits_size);
    if (col->type == CPF_TYPE_STRING) {
      sum = snapshot_checksum(sum, col->dict.bytes, t->dict_bytes_size);
      sum = snapshot_checksum(sum, col->dict.offsets, t->dict_offsets_size);
    }
    if (sum != t->checksum) return "checksum mismatch: the data is damaged";
  }
  if (col->missing_bits && !bitmap_matches(col->missing_bits, rows, t->missing))
    return "bad missing-value bitmap";
  if (col->type == CPF_TYPE_STRING) {
    if (!codes_in_range(col, rows, hi)) return "a code beyond the dictionary";
  } else if (col->type != CPF_TYPE_NUMBER && !values_in_range(col, rows, lo, hi)) {
    return "a value outside the recorded range: the data is damaged";
  }
  return NULL;
}

/* Maps the pages of [p, p + n) in one call before a scan reads them all (a fault per page costs
 * more than the scan on these machines); advice only: nothing fails without it. */
static void prefault(const void *p, size_t n) {
#ifdef MADV_POPULATE_READ
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t start = (uintptr_t)p & ~(uintptr_t)(page - 1);
  if (n > 0) (void)madvise((void *)start, (uintptr_t)p + n - start, MADV_POPULATE_READ);
#else
  (void)p;
  (void)n;
#endif
}

int snapshot_check_column(const cpf_dataset *ds, size_t j, cpf_error *err) {
  if (!ds->column_state || j >= ds->ncols || ds->column_state[j] == 1) return 0;
  if (ds->column_state[j] == 0) {
    const unsigned char *base = ds->snapshot_base;
    snap_header h;
    const snap_column *t;
    const cpf_column *col = &ds->cols[j];
    memcpy(&h, base, sizeof h);
    t = (const snap_column *)(base + h.table_offset) + j;
    if (ds->mapping) {
      prefault(col->data, (size_t)t->data_size);
      if (col->missing_bits) prefault(col->missing_bits, (size_t)t->bits_size);
    }
    ds->column_damage[j] = check_values(base, col, t, ds->rows, ds->snapshot_verify);
    ds->column_state[j] = ds->column_damage[j] ? 2 : 1;
  }
  if (ds->column_state[j] == 2) {
    cpf_error_set(err, CPF_ERR_DATA, "%s: column %zu: %s", ds->snapshot_path, j + 1, ds->column_damage[j]);
    return -1;
  }
  return 0;
}

int snapshot_check_columns(const cpf_dataset *ds, cpf_error *err) {
  size_t j;
  for (j = 0; j < ds->ncols; j++)
    if (snapshot_check_column(ds, j, err) != 0) return -1;
  return 0;
}

static char *copy_text(const unsigned char *base, uint64_t offset, uint64_t size) {
  char *s = cpf_malloc((size_t)size);
  if (s) memcpy(s, base + offset, (size_t)size);
  return s;
}

/* The column over the file's bytes. Names are copied: the bytes of a mapping may change under
 * it, and a name must stay NUL-terminated. */
static int fill_column(const unsigned char *base, uint64_t rows, const snap_column *t,
                       cpf_column *col) {
  col->mapped = 1;
  col->name = copy_text(base, t->name_offset, t->name_size);
  col->label = copy_text(base, t->label_offset, t->label_size);
  if (!col->name || !col->label) return -1;
  col->type = (cpf_type)t->type;
  col->width = (int)t->width;
  col->scale = t->scale;
  col->rows = col->cap = (size_t)rows;
  col->data = (void *)(base + t->data_offset);
  col->missing_bits = t->bits_size ? (uint8_t *)(base + t->bits_offset) : NULL;
  col->missing = (size_t)t->missing;
  col->min = t->min;
  col->max = t->max;
  if (col->type == CPF_TYPE_STRING) {
    col->dict.bytes = (char *)(base + t->dict_bytes_offset);
    col->dict.bytes_len = col->dict.bytes_cap = (size_t)t->dict_bytes_size;
    col->dict.offsets = (uint64_t *)(base + t->dict_offsets_offset);
    col->dict.count = col->dict.cap = (uint32_t)t->dict_count;
  }
  return 0;
}

static const char *check_header(const snap_header *h, size_t size) {
  if (memcmp(h->magic, SNAP_MAGIC, 8) != 0) return "not a snapshot (no CPFSNAP header)";
  if (h->endian != SNAP_ENDIAN) return "written on a machine of the other byte order";
  if (h->version != SNAP_VERSION) return "snapshot format version not supported"; /* see snapshot_version */
  if (h->file_size != size) return h->file_size > size ? "truncated" : "trailing bytes after the end";
  if (h->ncols > SNAP_MAX_COLUMNS) return "bad header: too many columns";
  if (h->table_size != h->ncols * sizeof(snap_column))
    return "bad header: the column table's size does not match the column count";
  if (!in_file(h->table_offset, h->table_size, size)) return "bad header: column table out of the file";
  if (h->table_offset % 8 != 0) return "bad header: misaligned column table";
  if (!in_file(h->tag_offset, h->tag_size, size)) return "bad header: tag out of the file";
  if (!in_file(h->rejects_offset, h->rejects_size, size)) return "bad header: rejects out of the file";
  if (h->rejects_count > h->rejects_size / sizeof(snap_reject)) return "bad header: more rejects than their bytes hold";
  if (h->rows > size) return "bad header: more rows than the file has bytes";
  if (h->ncols == 0 && h->rows != 0) return "bad header: rows without columns";
  return NULL;
}

cpf_dataset *snapshot_open_bytes(const void *bytes, size_t size, const char *path, int verify,
                                 cpf_error *err) {
  const unsigned char *base = bytes;
  snap_header h;
  const snap_column *table;
  cpf_dataset *ds;
  file_range *ranges = NULL;
  const char *why;
  char layout[200];
  size_t j, nranges = 0;
  if (size >= 16 && memcmp(base, SNAP_MAGIC, 8) == 0) {
    /* another format's header may be shorter: its version first */
    uint32_t version;
    memcpy(&version, base + 8, sizeof version);
    if (version != SNAP_VERSION && version > 0 && version < SNAP_VERSION) {
      cpf_error_set(err, CPF_ERR_DATA, "%s: snapshot format %u: rebuild it with cpf convert", path,
                    (unsigned)version);
      return NULL;
    }
  }
  if (size < sizeof h) {
    cpf_error_set(err, CPF_ERR_DATA, "%s: not a snapshot: too short (%zu bytes)", path, size);
    return NULL;
  }
  if ((uintptr_t)base % 8 != 0) { /* the arrays are read in place, at their alignment */
    cpf_error_set(err, CPF_ERR_IO, "%s: snapshot bytes not 8-byte aligned in memory", path);
    return NULL;
  }
  memcpy(&h, base, sizeof h);
  why = check_header(&h, size);
  if (!why && h.checksum != header_checksum(base + h.table_offset, h.table_size, base + h.tag_offset,
                                            h.tag_size, base + h.rejects_offset, h.rejects_size))
    why = "checksum mismatch: the column table is damaged";
  if (!why) why = rejects_check(base + h.rejects_offset, (size_t)h.rejects_size, (size_t)h.rejects_count);
  if (why) {
    cpf_error_set(err, CPF_ERR_DATA, "%s: %s", path, why);
    return NULL;
  }
  ds = cpf_calloc(1, sizeof *ds);
  if (!ds || !(ds->cols = cpf_calloc(h.ncols ? h.ncols : 1, sizeof *ds->cols)) ||
      !(ranges = cpf_malloc((4 + 6 * h.ncols) * sizeof *ranges)))
    goto oom;
  ds->ncols = (size_t)h.ncols; /* zeroed columns free as nothing */
  ds->rows = (size_t)h.rows;
  ds->tag = (const char *)(base + h.tag_offset);
  ds->tag_len = (size_t)h.tag_size;
  ds->rejects.bytes = (unsigned char *)(base + h.rejects_offset);
  ds->rejects.size = ds->rejects.cap = (size_t)h.rejects_size;
  ds->rejects.count = (size_t)h.rejects_count;
  ds->rejects.mapped = 1;
  table = (const snap_column *)(base + h.table_offset);
  add_range(ranges, &nranges, 0, sizeof h, 0, "header");
  add_range(ranges, &nranges, h.tag_offset, h.tag_size, 0, "tag");
  add_range(ranges, &nranges, h.table_offset, h.table_size, 0, "column table");
  add_range(ranges, &nranges, h.rejects_offset, h.rejects_size, 0, "rejects");
  for (j = 0; j < h.ncols; j++) {
    const snap_column *t = &table[j];
    if ((why = check_entry(base, size, h.rows, t)) != NULL) {
      cpf_error_set(err, CPF_ERR_DATA, "%s: column %zu: %s", path, j + 1, why);
      goto fail;
    }
    if (fill_column(base, h.rows, t, &ds->cols[j]) != 0) goto oom;
    add_range(ranges, &nranges, t->name_offset, t->name_size, j + 1, "name");
    add_range(ranges, &nranges, t->label_offset, t->label_size, j + 1, "label");
    add_range(ranges, &nranges, t->data_offset, t->data_size, j + 1, "data");
    add_range(ranges, &nranges, t->bits_offset, t->bits_size, j + 1, "bitmap");
    add_range(ranges, &nranges, t->dict_bytes_offset, t->dict_bytes_size, j + 1, "dictionary");
    add_range(ranges, &nranges, t->dict_offsets_offset, t->dict_offsets_size, j + 1,
              "dictionary offsets");
  }
  if (check_layout(ranges, nranges, layout, sizeof layout) != 0) {
    cpf_error_set(err, CPF_ERR_DATA, "%s: %s", path, layout);
    goto fail;
  }
  /* the values and checksums: on each column's first use (snapshot_check_column) */
  ds->snapshot_base = base;
  ds->snapshot_verify = verify;
  if (!(ds->snapshot_path = cpf_malloc(strlen(path) + 1)) ||
      !(ds->column_state = cpf_calloc(h.ncols ? h.ncols : 1, 1)) ||
      !(ds->column_damage = cpf_calloc(h.ncols ? h.ncols : 1, sizeof *ds->column_damage)))
    goto oom;
  memcpy(ds->snapshot_path, path, strlen(path) + 1);
  free(ranges);
  return ds;
oom:
  cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path);
fail:
  free(ranges);
  dataset_free(ds);
  return NULL;
}

cpf_dataset *snapshot_open(const char *path, int verify, cpf_error *err) {
  struct stat st;
  /* non-blocking: opening a FIFO would otherwise wait for a writer before fstat can refuse it */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  void *map;
  cpf_dataset *ds;
  size_t size;
  if (fd < 0) { cpf_error_set(err, CPF_ERR_IO, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    cpf_error_set(err, CPF_ERR_IO, "%s: not a snapshot: not a regular file", path);
    close(fd);
    return NULL;
  }
  size = (size_t)st.st_size;
  if (size < sizeof(snap_header)) { /* nothing to map */
    cpf_error_set(err, CPF_ERR_DATA, "%s: not a snapshot: too short (%zu bytes)", path, size);
    close(fd);
    return NULL;
  }
  map = cpf_mmap_file(fd, size); /* shared: other processes share pages */
  close(fd);
  if (map == MAP_FAILED) { cpf_error_set(err, CPF_ERR_IO, "%s: cannot map: %s", path, strerror(errno)); return NULL; }
  ds = snapshot_open_bytes(map, size, path, verify, err);
  if (!ds) {
    munmap(map, size);
    return NULL;
  }
  ds->mapping = map;
  ds->mapping_size = size;
  return ds;
}

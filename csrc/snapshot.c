/* snapshot.c — the dataset as one binary file: a header, the columns' arrays (64-byte aligned)
 * and a column table. Reopened by mmap and used in place: no copy, no parse. Every offset and
 * length is checked before use; checksums catch what the checks cannot. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpf.h"

#define SNAP_MAGIC "CPFSNAP"   /* 8 bytes with its NUL */
#define SNAP_VERSION 1u
#define SNAP_ENDIAN 0x01020304u /* reads 0x04030201 on a machine of the other byte order */
#define SNAP_ALIGN 64u
#define SNAP_MAX_COLUMNS 100000u

typedef struct {
  char magic[8];
  uint32_t version, endian;
  uint64_t rows, ncols;
  uint64_t table_offset, table_size;
  uint64_t tag_offset, tag_size;
  uint64_t file_size;
  uint64_t checksum; /* of the column table and the tag */
} snap_header;

typedef struct {
  uint32_t type, width;
  int32_t scale;
  uint32_t reserved;
  uint64_t missing;
  int64_t min, max;
  uint64_t name_offset, name_size; /* sizes include the NUL */
  uint64_t label_offset, label_size;
  uint64_t data_offset, data_size;
  uint64_t bits_offset, bits_size;
  uint64_t dict_count;
  uint64_t dict_bytes_offset, dict_bytes_size;
  uint64_t dict_offsets_offset, dict_offsets_size;
  uint64_t checksum; /* of data, bits and dictionary */
} snap_column;

/* Four independent multiply-xor lanes over 8-byte words: fast enough to check every byte of a
 * snapshot when it is opened. Only compared on machines of the same byte order. */
static uint64_t checksum_bytes(uint64_t seed, const void *p, size_t n) {
  const unsigned char *s = p;
  uint64_t a = seed ^ 0x9E3779B97F4A7C15ull, b = seed + n, c = ~seed, d = seed * 31 + 7, w[4];
  const uint64_t k = 0xff51afd7ed558ccdull;
  while (n >= 32) {
    memcpy(w, s, 32);
    a = (a ^ w[0]) * k; b = (b ^ w[1]) * k; c = (c ^ w[2]) * k; d = (d ^ w[3]) * k;
    a ^= a >> 29; b ^= b >> 29; c ^= c >> 29; d ^= d >> 29;
    s += 32;
    n -= 32;
  }
  while (n > 0) {
    a = (a ^ *s++) * k;
    a ^= a >> 29;
    n--;
  }
  a ^= (b * 3) ^ (c * 5) ^ (d * 7);
  a *= k;
  return a ^ (a >> 32);
}

/* ---- saving ---- */

typedef struct {
  FILE *f;
  uint64_t offset;
  int failed;
} writer;

static uint64_t write_block(writer *w, const void *p, size_t n) {
  static const char zeros[SNAP_ALIGN] = {0};
  uint64_t at = w->offset;
  size_t pad = (SNAP_ALIGN - (size_t)(n % SNAP_ALIGN)) % SNAP_ALIGN;
  if (n > 0 && fwrite(p, 1, n, w->f) != n) w->failed = 1;
  if (pad > 0 && fwrite(zeros, 1, pad, w->f) != pad) w->failed = 1;
  w->offset += n + pad;
  return at;
}

int snapshot_save(const cpf_dataset *ds, const char *path, const char *tag, size_t tag_len,
                  cpf_error *err) {
  snap_header h;
  snap_column *table;
  writer w;
  size_t j, plen = strlen(path);
  char *tmp = malloc(plen + 32);
  if (!tmp) { cpf_error_set(err, "%s: out of memory", path); return -1; }
  snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
  table = calloc(ds->ncols ? ds->ncols : 1, sizeof *table);
  w.f = fopen(tmp, "wb");
  w.offset = 0;
  w.failed = 0;
  if (!table || !w.f) {
    cpf_error_set(err, "%s: cannot write: %s", path, table ? strerror(errno) : "out of memory");
    free(table);
    free(tmp);
    if (w.f) fclose(w.f);
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
    sum = checksum_bytes(sum, col->data, t->data_size);
    if (col->missing_bits) {
      t->bits_size = ds->rows / 8 + 1;
      t->bits_offset = write_block(&w, col->missing_bits, t->bits_size);
      sum = checksum_bytes(sum, col->missing_bits, t->bits_size);
    }
    if (col->type == CPF_TYPE_STRING) {
      t->dict_count = col->dict.count;
      t->dict_bytes_size = col->dict.bytes_len;
      t->dict_bytes_offset = write_block(&w, col->dict.bytes, t->dict_bytes_size);
      t->dict_offsets_size = ((uint64_t)col->dict.count + 1) * sizeof(uint64_t);
      t->dict_offsets_offset = write_block(&w, col->dict.offsets, t->dict_offsets_size);
      sum = checksum_bytes(sum, col->dict.bytes, t->dict_bytes_size);
      sum = checksum_bytes(sum, col->dict.offsets, t->dict_offsets_size);
    }
    t->checksum = sum;
  }
  h.table_size = (uint64_t)ds->ncols * sizeof *table;
  h.table_offset = write_block(&w, table, h.table_size);
  memcpy(h.magic, SNAP_MAGIC, 8);
  h.version = SNAP_VERSION;
  h.endian = SNAP_ENDIAN;
  h.rows = ds->rows;
  h.ncols = ds->ncols;
  h.file_size = w.offset;
  h.checksum = checksum_bytes(checksum_bytes(0, table, h.table_size), tag, tag_len);
  if (fseek(w.f, 0, SEEK_SET) != 0 || fwrite(&h, 1, sizeof h, w.f) != sizeof h) w.failed = 1;
  if (fclose(w.f) != 0) w.failed = 1;
  free(table);
  if (w.failed || rename(tmp, path) != 0) {
    cpf_error_set(err, "%s: cannot write: %s", path, strerror(errno ? errno : EIO));
    remove(tmp);
    free(tmp);
    return -1;
  }
  free(tmp);
  return 0;
}

/* ---- opening ---- */

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

/* Every code of the rows that have a value names an entry of the dictionary. */
static int codes_in_range(const cpf_column *col, size_t rows) {
  size_t i;
  uint32_t count = col->dict.count;
  for (i = 0; i < rows; i++)
    if (column_code_at(col, i) >= count && column_is_valid(col, i)) return 0;
  return 1;
}

static int open_column(const unsigned char *base, uint64_t file_size, uint64_t rows,
                       const snap_column *t, cpf_column *col, int verify, const char **why) {
  uint64_t c;
  memset(col, 0, sizeof *col);
  col->mapped = 1;
  if (t->type > CPF_TYPE_DATE) { *why = "unknown column type"; return -1; }
  if (!valid_width((cpf_type)t->type, t->width)) { *why = "bad value width"; return -1; }
  if (t->type == CPF_TYPE_DECIMAL ? (t->scale < 0 || t->scale > 9) : t->scale != 0) {
    *why = "bad decimal scale";
    return -1;
  }
  if (!in_file(t->name_offset, t->name_size, file_size) || t->name_size == 0 ||
      base[t->name_offset + t->name_size - 1] != 0 ||
      !in_file(t->label_offset, t->label_size, file_size) || t->label_size == 0 ||
      base[t->label_offset + t->label_size - 1] != 0) {
    *why = "bad column name";
    return -1;
  }
  if (rows > file_size || t->data_size != rows * t->width ||
      !in_file(t->data_offset, t->data_size, file_size) || t->data_offset % 8 != 0) {
    *why = "column data out of the file";
    return -1;
  }
  if ((t->bits_size != 0 && (t->bits_size != rows / 8 + 1 || !in_file(t->bits_offset, t->bits_size, file_size))) ||
      (t->bits_size == 0 && t->missing != 0) || t->missing > rows) {
    *why = "bad missing-value bitmap";
    return -1;
  }
  col->name = (char *)(base + t->name_offset);
  col->label = (char *)(base + t->label_offset);
  col->type = (cpf_type)t->type;
  col->width = (int)t->width;
  col->scale = t->scale;
  col->rows = (size_t)rows;
  col->cap = (size_t)rows;
  col->data = (void *)(base + t->data_offset);
  col->missing_bits = t->bits_size ? (uint8_t *)(base + t->bits_offset) : NULL;
  col->missing = (size_t)t->missing;
  col->min = t->min;
  col->max = t->max;
  if (col->type == CPF_TYPE_STRING) {
    const uint64_t *offsets;
    if (t->dict_count >= UINT32_MAX || t->dict_offsets_size != (t->dict_count + 1) * 8 ||
        !in_file(t->dict_offsets_offset, t->dict_offsets_size, file_size) ||
        t->dict_offsets_offset % 8 != 0 || !in_file(t->dict_bytes_offset, t->dict_bytes_size, file_size)) {
      *why = "dictionary out of the file";
      return -1;
    }
    offsets = (const uint64_t *)(base + t->dict_offsets_offset);
    if (offsets[0] != 0 || offsets[t->dict_count] != t->dict_bytes_size) {
      *why = "bad dictionary";
      return -1;
    }
    for (c = 0; c < t->dict_count; c++) /* each value is at least its NUL, and ends with it */
      if (offsets[c + 1] <= offsets[c] || offsets[c + 1] > t->dict_bytes_size ||
          base[t->dict_bytes_offset + offsets[c + 1] - 1] != 0) {
        *why = "bad dictionary";
        return -1;
      }
    col->dict.bytes = (char *)(base + t->dict_bytes_offset);
    col->dict.bytes_len = col->dict.bytes_cap = (size_t)t->dict_bytes_size;
    col->dict.offsets = (uint64_t *)(base + t->dict_offsets_offset);
    col->dict.count = col->dict.cap = (uint32_t)t->dict_count;
    if (!codes_in_range(col, (size_t)rows)) { *why = "a code beyond the dictionary"; return -1; }
  }
  if (!verify && col->type != CPF_TYPE_STRING && col->type != CPF_TYPE_NUMBER) {
    /* unchecked data: queries size their group tables from min and max, so every value must
     * lie between them */
    size_t i;
    for (i = 0; i < (size_t)rows; i++) {
      int64_t v = column_integer_at(col, i);
      if ((v < col->min || v > col->max) && column_is_valid(col, i)) {
        *why = "a value outside the recorded range: the data is damaged";
        return -1;
      }
    }
  }
  if (verify) {
    uint64_t sum = checksum_bytes(0, col->data, t->data_size);
    if (col->missing_bits) sum = checksum_bytes(sum, col->missing_bits, t->bits_size);
    if (col->type == CPF_TYPE_STRING) {
      sum = checksum_bytes(sum, col->dict.bytes, t->dict_bytes_size);
      sum = checksum_bytes(sum, col->dict.offsets, t->dict_offsets_size);
    }
    if (sum != t->checksum) { *why = "checksum mismatch: the data is damaged"; return -1; }
  }
  return 0;
}

cpf_dataset *snapshot_open(const char *path, int verify, cpf_error *err) {
  struct stat st;
  int fd = open(path, O_RDONLY);
  void *map;
  const unsigned char *base;
  snap_header h;
  const snap_column *table;
  cpf_dataset *ds;
  const char *why = NULL;
  size_t j, size;
  if (fd < 0) { cpf_error_set(err, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    cpf_error_set(err, "%s: not a snapshot: not a regular file", path);
    close(fd);
    return NULL;
  }
  size = (size_t)st.st_size;
  if (size < sizeof h) {
    cpf_error_set(err, "%s: not a snapshot: too short (%zu bytes)", path, size);
    close(fd);
    return NULL;
  }
  map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0); /* shared: other processes share pages */
  close(fd);
  if (map == MAP_FAILED) { cpf_error_set(err, "%s: cannot map: %s", path, strerror(errno)); return NULL; }
  base = map;
  memcpy(&h, base, sizeof h);
  if (memcmp(h.magic, SNAP_MAGIC, 8) != 0) why = "not a snapshot (no CPFSNAP header)";
  else if (h.endian != SNAP_ENDIAN) why = "written on a machine of the other byte order";
  else if (h.version != SNAP_VERSION) why = "snapshot format version not supported";
  else if (h.file_size != size) why = h.file_size > size ? "truncated" : "trailing bytes after the end";
  else if (h.ncols > SNAP_MAX_COLUMNS || h.table_size != h.ncols * sizeof(snap_column) ||
           !in_file(h.table_offset, h.table_size, size) || h.table_offset % 8 != 0 ||
           !in_file(h.tag_offset, h.tag_size, size) || h.rows > size)
    why = "bad header";
  else if (h.checksum != checksum_bytes(checksum_bytes(0, base + h.table_offset, h.table_size),
                                        base + h.tag_offset, h.tag_size))
    why = "checksum mismatch: the column table is damaged";
  if (why) {
    cpf_error_set(err, "%s: %s", path, why);
    munmap(map, size);
    return NULL;
  }
  ds = calloc(1, sizeof *ds);
  if (!ds || !(ds->cols = calloc(h.ncols ? h.ncols : 1, sizeof *ds->cols))) {
    free(ds);
    munmap(map, size);
    cpf_error_set(err, "%s: out of memory", path);
    return NULL;
  }
  ds->mapping = map;
  ds->mapping_size = size;
  ds->rows = (size_t)h.rows;
  ds->tag = (const char *)(base + h.tag_offset);
  ds->tag_len = (size_t)h.tag_size;
  table = (const snap_column *)(base + h.table_offset);
  for (j = 0; j < h.ncols; j++) {
    ds->ncols = j + 1;
    if (open_column(base, size, h.rows, &table[j], &ds->cols[j], verify, &why) != 0) {
      cpf_error_set(err, "%s: column %zu: %s", path, j + 1, why);
      dataset_free(ds);
      return NULL;
    }
  }
  return ds;
}

/* snapshot_mutate.c — libFuzzer harness with a structure-aware mutator, the attack of issue 8:
 * change a field of the header or of a column's table entry, or bytes of a column's data,
 * bitmap or dictionary, then recompute every checksum, so that inputs reach past them. */
#include <stddef.h>
#include <string.h>

#include "fuzz.h"
#include "snapshot_format.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
  size_t offset, size;
} field;

#define COLUMN_FIELD(name) {offsetof(snap_column, name), sizeof(((snap_column *)0)->name)}
#define HEADER_FIELD(name) {offsetof(snap_header, name), sizeof(((snap_header *)0)->name)}

static const field column_fields[] = {
  COLUMN_FIELD(type), COLUMN_FIELD(width), COLUMN_FIELD(scale), COLUMN_FIELD(reserved),
  COLUMN_FIELD(missing), COLUMN_FIELD(min), COLUMN_FIELD(max), COLUMN_FIELD(name_offset),
  COLUMN_FIELD(name_size), COLUMN_FIELD(label_offset), COLUMN_FIELD(label_size),
  COLUMN_FIELD(data_offset), COLUMN_FIELD(data_size), COLUMN_FIELD(bits_offset),
  COLUMN_FIELD(bits_size), COLUMN_FIELD(dict_count), COLUMN_FIELD(dict_bytes_offset),
  COLUMN_FIELD(dict_bytes_size), COLUMN_FIELD(dict_offsets_offset), COLUMN_FIELD(dict_offsets_size),
};

static const field header_fields[] = {
  HEADER_FIELD(version), HEADER_FIELD(endian), HEADER_FIELD(rows), HEADER_FIELD(ncols),
  HEADER_FIELD(table_offset), HEADER_FIELD(table_size), HEADER_FIELD(tag_offset),
  HEADER_FIELD(tag_size), HEADER_FIELD(file_size), HEADER_FIELD(rejects_offset),
  HEADER_FIELD(rejects_size), HEADER_FIELD(rejects_count),
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t next(uint64_t *state) { /* xorshift64: the mutator's choices, from libFuzzer's seed */
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *state = x;
}

/* Little-endian fields of 4 or 8 bytes, read and written whole. */
static uint64_t load(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  memcpy(&v, p, n);
  return v;
}

static void store(uint8_t *p, size_t n, uint64_t v) { memcpy(p, &v, n); }

static int in_file(uint64_t offset, uint64_t n, size_t size) {
  return offset <= size && n <= size - offset;
}

/* Values that break tables: 0, all ones, off by one or eight, another entry's value, the file's
 * size or rows, single bits, the signed extremes. */
static uint64_t pick_value(uint64_t *rng, uint64_t current, uint64_t other, size_t size, uint64_t rows) {
  switch (next(rng) % 15) {
  case 0: return 0;
  case 1: return 1;
  case 2: return UINT64_MAX;
  case 3: return current + 1;
  case 4: return current - 1;
  case 5: return current + 8;
  case 6: return current - 8;
  case 7: return other;
  case 8: return size;
  case 9: return size - current;
  case 10: return rows;
  case 11: return (uint64_t)1 << (next(rng) % 64);
  case 12: return (uint64_t)INT64_MAX;
  case 13: return current * 2;
  default: return next(rng);
  }
}

static size_t table_entries(const snap_header *h, size_t size) {
  size_t room;
  if (h->table_offset > size) return 0;
  room = (size - (size_t)h->table_offset) / sizeof(snap_column);
  return h->ncols < room ? (size_t)h->ncols : room;
}

/* Every checksum recomputed from the table as it now stands, as snapshot_open sums it. */
static void reseal(uint8_t *data, size_t size) {
  snap_header h;
  size_t j, n;
  if (size < sizeof h) return;
  memcpy(&h, data, sizeof h);
  n = table_entries(&h, size);
  for (j = 0; j < n; j++) {
    uint8_t *entry = data + h.table_offset + j * sizeof(snap_column);
    snap_column t;
    uint64_t sum;
    memcpy(&t, entry, sizeof t);
    if (!in_file(t.data_offset, t.data_size, size) || !in_file(t.name_offset, t.name_size, size) ||
        !in_file(t.label_offset, t.label_size, size))
      continue;
    sum = snapshot_checksum(0, data + t.name_offset, (size_t)t.name_size);
    sum = snapshot_checksum(sum, data + t.label_offset, (size_t)t.label_size);
    sum = snapshot_checksum(sum, data + t.data_offset, (size_t)t.data_size);
    if (t.bits_size != 0) {
      if (!in_file(t.bits_offset, t.bits_size, size)) continue;
      sum = snapshot_checksum(sum, data + t.bits_offset, (size_t)t.bits_size);
    }
    if (t.type == 0) { /* a string column: its dictionary too */
      if (!in_file(t.dict_bytes_offset, t.dict_bytes_size, size) ||
          !in_file(t.dict_offsets_offset, t.dict_offsets_size, size))
        continue;
      sum = snapshot_checksum(sum, data + t.dict_bytes_offset, (size_t)t.dict_bytes_size);
      sum = snapshot_checksum(sum, data + t.dict_offsets_offset, (size_t)t.dict_offsets_size);
    }
    t.checksum = sum;
    memcpy(entry, &t, sizeof t);
  }
  if (in_file(h.table_offset, h.table_size, size) && in_file(h.tag_offset, h.tag_size, size) &&
      in_file(h.rejects_offset, h.rejects_size, size)) {
    h.checksum = snapshot_checksum(snapshot_checksum(0, data + h.table_offset, (size_t)h.table_size),
                                   data + h.tag_offset, (size_t)h.tag_size);
    if (h.rejects_size)
      h.checksum = snapshot_checksum(h.checksum, data + h.rejects_offset, (size_t)h.rejects_size);
    memcpy(data, &h, sizeof h);
  }
}

/* One of a column's arrays, when it lies in the file. */
static int column_range(const snap_column *t, unsigned which, size_t size, uint64_t *offset, uint64_t *n) {
  switch (which % 4) {
  case 0: *offset = t->data_offset; *n = t->data_size; break;
  case 1: *offset = t->bits_offset; *n = t->bits_size; break;
  case 2: *offset = t->dict_bytes_offset; *n = t->dict_bytes_size; break;
  default: *offset = t->dict_offsets_offset; *n = t->dict_offsets_size; break;
  }
  return *n > 0 && in_file(*offset, *n, size);
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
  uint64_t rng = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;
  unsigned rounds, r;
  next(&rng);
  if (size < sizeof(snap_header) || next(&rng) % 16 == 0) { /* now and then, any bytes */
    size = LLVMFuzzerMutate(data, size, max_size);
    reseal(data, size);
    return size;
  }
  rounds = 1 + (unsigned)(next(&rng) % 3);
  for (r = 0; r < rounds; r++) {
    snap_header h;
    size_t ncols, action = (size_t)(next(&rng) % 10);
    memcpy(&h, data, sizeof h);
    ncols = table_entries(&h, size);
    if (action < 6 && ncols > 0) { /* a field of a column's table entry */
      size_t j = (size_t)(next(&rng) % ncols), other = (size_t)(next(&rng) % ncols);
      const field *f = &column_fields[next(&rng) % COUNT(column_fields)];
      uint8_t *entry = data + h.table_offset + j * sizeof(snap_column);
      uint8_t *other_entry = data + h.table_offset + other * sizeof(snap_column);
      uint64_t v = pick_value(&rng, load(entry + f->offset, f->size), load(other_entry + f->offset, f->size),
                              size, h.rows);
      store(entry + f->offset, f->size, v);
    } else if (action < 7 || ncols == 0) { /* a field of the header */
      const field *f = &header_fields[next(&rng) % COUNT(header_fields)];
      uint64_t v = pick_value(&rng, load(data + f->offset, f->size), h.rows, size, h.rows);
      store(data + f->offset, f->size, v);
    } else if (action < 9) { /* bytes of a column's data, bitmap or dictionary, same size */
      snap_column t;
      uint64_t offset, n;
      memcpy(&t, data + h.table_offset + (size_t)(next(&rng) % ncols) * sizeof(snap_column), sizeof t);
      if (column_range(&t, (unsigned)next(&rng), size, &offset, &n))
        LLVMFuzzerMutate(data + offset, (size_t)n, (size_t)n);
    } else {
      size = LLVMFuzzerMutate(data, size, max_size);
      if (size < sizeof(snap_header)) break;
    }
  }
  reseal(data, size);
  return size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_snapshot(data, size);
  return 0;
}

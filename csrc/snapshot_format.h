/* snapshot_format.h — the layout of a snapshot file, shared by snapshot.c and the fuzzers
 * (fuzz/), which rewrite table fields and recompute the checksums as an attacker would. */
#ifndef CPF_SNAPSHOT_FORMAT_H
#define CPF_SNAPSHOT_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden) /* module-internal: see cpf.h */
#endif

#define SNAP_MAGIC "CPFSNAP"   /* 8 bytes with its NUL */
#define SNAP_VERSION 3u /* 2: a column's checksum covers its name and label; 3: the rejects */
#define SNAP_ENDIAN 0x01020304u /* reads 0x04030201 on a machine of the other byte order */
#define SNAP_ALIGN 64u
#define SNAP_MAX_COLUMNS 100000u

/* At offset 0. Every offset is from the start of the file; every size is in bytes. */
typedef struct {
  char magic[8];
  uint32_t version, endian;
  uint64_t rows, ncols;
  uint64_t table_offset, table_size; /* ncols snap_column entries */
  uint64_t tag_offset, tag_size;
  uint64_t file_size;
  uint64_t rejects_offset, rejects_size, rejects_count; /* the records a load set aside */
  uint64_t checksum; /* of the column table, the tag and the rejects */
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
  uint64_t bits_offset, bits_size;   /* bits_size 0: no bitmap (nothing missing) */
  uint64_t dict_count;
  uint64_t dict_bytes_offset, dict_bytes_size;
  uint64_t dict_offsets_offset, dict_offsets_size;
  uint64_t checksum; /* of name, label, data, bits (when present), dictionary (string columns) */
} snap_column;

/* One record a load set aside (on_error = "skip"), followed by its column's name, its message,
 * its text and its file's name (no NUL), then zeros up to a multiple of 8 bytes. The same bytes in memory
 * (cpf_rejects) and in a snapshot. */
typedef struct {
  uint64_t line;    /* the physical line where the record starts, as an editor counts */
  uint64_t record;  /* the record's number, the header being record 1 */
  uint64_t column;  /* 1-based field where it went wrong; 0: the record as a whole */
  uint64_t length;  /* the record's bytes in the file, its line break left out */
  uint32_t kind;    /* cpf_reject_kind */
  uint32_t name_size, message_size, text_size; /* text: at most REJECT_TEXT_MAX bytes */
  uint32_t file_size; /* the file it comes from, in a dataset of several (cpf.load_many) */
  uint32_t reserved;
} snap_reject;

/* The checksum of snapshots; a column's covers its name and label (NULs included: a renamed
 * column would silently change what a query reads), then its data, its bitmap, its dictionary's
 * bytes and offsets, each sum seeded with the previous. */
uint64_t snapshot_checksum(uint64_t seed, const void *p, size_t n);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif

/* cpf.h — the engine's private API: column store, dictionaries, number parsing, loader, query,
 * snapshots. Plain C99, no Lua: only the bindings (core.c, lua_*.c) include Lua headers. */
#ifndef CPF_H
#define CPF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* Every name the module's files share stays inside the module however it is built (LuaRocks'
 * builtin build passes no -fvisibility=hidden): only luaopen_cpf_core (core.c) is exported, so
 * no engine name can clash with another module's in a host (nginx, Neovim). */
#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

typedef enum {
  CPF_TYPE_STRING,  /* dictionary-encoded text: one code per row */
  CPF_TYPE_INTEGER, /* int64, stored narrowed to the smallest width that holds the data */
  CPF_TYPE_NUMBER,  /* double */
  CPF_TYPE_DECIMAL, /* fixed point: value * 10^scale as int64, exact sums of money */
  CPF_TYPE_MONTH,   /* year*12 + month-1 */
  CPF_TYPE_DATE,    /* days since 1970-01-01 */
  CPF_TYPE_AUTO     /* loader only: infer from the values once the file is read */
} cpf_type;

const char *cpf_type_name(cpf_type type);
int cpf_type_from_name(const char *name, cpf_type *type); /* 0 when known */

/* ---- error.c ---- */
/* Errors travel as values: a code that says what failed (decisions are taken on it, never on
 * the message's text), the position in the file where there is one, and the message the
 * bindings return as nil, message, kind. */
typedef enum {
  CPF_OK = 0,
  CPF_ERR_DATA,      /* the bytes of a file: a bad value, a malformed record or snapshot */
  CPF_ERR_IO,        /* the file system: cannot open, read, write; a file changed while read */
  CPF_ERR_MEMORY,
  CPF_ERR_CANCELLED, /* the progress callback asked to stop, or another thread stopped the load */
  CPF_ERR_CALLBACK,  /* the progress callback raised an error */
  CPF_ERR_USAGE      /* a request the engine cannot run (a wrong key, a mask of the wrong size) */
} cpf_error_code;

typedef struct {
  cpf_error_code code; /* CPF_OK while nothing failed */
  size_t row, column;  /* 1-based, in the file (row 1: the header); 0 where there is none */
  char message[600];
} cpf_error;

/* Records the first error only: later ones are consequences. */
void cpf_error_set(cpf_error *err, cpf_error_code code, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 3, 4)))
#endif
  ;
/* The same, for an error at a place in the file. */
void cpf_error_at(cpf_error *err, cpf_error_code code, size_t row, size_t column,
                  const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 5, 6)))
#endif
  ;
/* "data", "io", "memory", "cancelled", "callback" or "usage": the kind the bindings return. */
const char *cpf_error_kind(cpf_error_code code);

/* ---- dictionary.c: distinct values of a string column ---- */
typedef struct {
  char *bytes;          /* all values, back to back (each followed by a NUL) */
  size_t bytes_len, bytes_cap;
  uint64_t *offsets;    /* start of value i in bytes; offsets[count] = bytes_len */
  uint32_t count, cap;
  uint64_t *slots;      /* open addressing: hash << 32 | code + 1, 0 = free; NULL once frozen */
  uint32_t slot_mask;
} cpf_dictionary;

int dictionary_init(cpf_dictionary *dict);
void dictionary_free(cpf_dictionary *dict);
/* Code of the value, added if new; UINT32_MAX when out of memory. */
uint32_t dictionary_intern(cpf_dictionary *dict, const char *s, size_t len);
/* Takes back the last value interned (while loading). */
void dictionary_drop_last(cpf_dictionary *dict);
/* Value of a code below count: always inside the bytes, "" when the offsets say otherwise. */
const char *dictionary_value(const cpf_dictionary *dict, uint32_t code, size_t *len);
/* Drop the hash table once no value will be added (it is only needed while loading). */
void dictionary_freeze(cpf_dictionary *dict);
size_t dictionary_memory(const cpf_dictionary *dict);
/* Interns every value of `from` into `into`: the malloc'd array of their codes in `into`, one per
 * code of `from` (never empty); NULL when out of memory. */
uint32_t *dictionary_merge(cpf_dictionary *into, const cpf_dictionary *from);

/* ---- alloc.c: every allocation of the core, and the test switch that fails one ---- */
void *cpf_malloc(size_t n);
void *cpf_calloc(size_t count, size_t size);
void *cpf_realloc(void *p, size_t n);
/* The countdown of a test switch (alloc.c's, io.c's): 1 when this call is the nth, set to n. */
int cpf_countdown_hits(long *countdown);
void cpf_countdown_set(long *countdown, long n);
/* Tests only: make the nth allocation from now fail (0: none); what is left of the count. */
void cpf_fail_allocation(long n);
long cpf_allocations_left(void);

/* A dataset's pool of result arrays: a query's aggregates and key codes are taken from it and
 * given back when the result is collected, so that the next query finds resident pages (a fresh
 * page costs about 1 ms per MB on first touch) instead of what the C library gave back to the
 * system. Shared by the dataset and its results (counted references; one thread: its Lua
 * state's); up to max_bytes kept; pool_close, by the dataset, frees what it keeps and keeps
 * nothing more. pool_calloc and pool_free take a NULL pool (nothing kept); a block from
 * pool_calloc is only ever given to pool_free. */
typedef struct cpf_pool cpf_pool;
cpf_pool *pool_new(size_t max_bytes);
cpf_pool *pool_ref(cpf_pool *pool);
void pool_unref(cpf_pool *pool);
void pool_close(cpf_pool *pool);
void *pool_alloc(cpf_pool *pool, size_t bytes); /* contents undefined */
void *pool_calloc(cpf_pool *pool, size_t bytes);
void pool_free(cpf_pool *pool, void *p);
/* Whether the results holding the pool's blocks should be collected now (a full collection of
 * the Lua state), and the figures after it: see alloc.c. */
int pool_wants_collection(const cpf_pool *pool);
/* The bytes to tell Lua's collector about now: `bytes` of a new result gathered with the
 * previous ones' until they make 4 MB, then all of them (0 meanwhile). */
size_t pool_hint(cpf_pool *pool, size_t bytes);
void pool_collected(cpf_pool *pool, size_t lua_heap_bytes);

/* ---- io.c: every read and write of a file, and the test switch that fails one ---- */
ssize_t cpf_read(int fd, void *buf, size_t n);
ssize_t cpf_pread(int fd, void *buf, size_t n, off_t off);
ssize_t cpf_write(int fd, const void *buf, size_t n);
int cpf_fsync(int fd);
void *cpf_mmap_file(int fd, size_t size); /* read-only, shared; MAP_FAILED on failure */
/* Tests only: the nth read, write, fsync or map from now fails with error_number (0: every
 * transfer from the nth on moves half of what was asked: short reads and writes); n = 0: off. */
void cpf_fail_io(long n, int error_number);
long cpf_io_left(void);

/* ---- numparse.c: exact, locale-independent parsing ---- */
typedef enum { NUM_OK = 0, NUM_BAD, NUM_RANGE, NUM_FRACTION } num_status;

/* decimal_mark: '.', ',' or 0 for either */
num_status parse_integer(const char *s, size_t len, char decimal_mark, int64_t *out);
/* *scale is the wanted scale; on NUM_FRACTION *needed is the scale the value needs. */
num_status parse_decimal(const char *s, size_t len, char decimal_mark, int scale, int64_t *out, int *needed);
/* locale_point: the C library's decimal point, from numparse_locale_point (strtod, used for
 * the rare literal the exact path cannot round, reads the mark of the current locale). */
num_status parse_number(const char *s, size_t len, char decimal_mark, char locale_point,
                        double *out);
/* The current locale's decimal point, or 0 when it is not one byte. localeconv is not
 * thread-safe: call it on the calling thread, never on a loading thread. */
char numparse_locale_point(void);
num_status parse_month(const char *s, size_t len, int64_t *out);
num_status parse_date(const char *s, size_t len, int64_t *out);
/* Numbers as text, the same on every Lua (LuaJIT's string.format rounds ties its own way)
 * and under every C locale ('.' as the decimal point): `decimals` fixed decimals, rounded as
 * the C library rounds the exact binary value; or a whole number up to 2^53 as an integer
 * (1000, never 1e+03), any other the fewest significant digits (1 to 17) that read back as the
 * same double. Buffers of at least 400 bytes (any double in "%.9f"); the
 * length written is returned. locale_point: numparse_locale_point(). */
size_t format_fixed(double v, int decimals, char *buf, size_t size);
size_t format_shortest(double v, char locale_point, char *buf, size_t size);
/* Formatting for display: buffers of at least 32 bytes (enough for any int64 value). */
void format_month(int64_t month, char *buf);
void format_date(int64_t days, char *buf);
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
void civil_from_days(int64_t days, int64_t *year, int *month, int *day);

/* ---- writer.c: the text of the machine formats, cell by cell ---- */
/* A growing buffer (cpf_realloc): each function below returns 0, or -1 out of memory. */
typedef struct {
  char *data;
  size_t len, cap;
} text_buffer;
int text_reserve(text_buffer *b, size_t extra);
int text_append(text_buffer *b, const char *s, size_t n);
void text_free(text_buffer *b);
#define NUMBER_TEXT_SIZE 400 /* any number's text below, with its terminating zero */
size_t integer_text(int64_t v, char *buf);
/* format_shortest's text; 0 (no text) for NaN and infinities */
size_t double_text(double v, char locale_point, char *buf);
/* a non-whole finite v with at most `decimals` (0 to 9) decimals, trailing zeros dropped, or
 * its double_text when that is no longer */
size_t rounded_text(double v, int decimals, char locale_point, char *buf);
typedef struct {
  char sep;
  int one_column; /* a lone empty cell is written "" (an empty line is no record) */
} csv_style;
/* A csv cell: quoted when it holds the separator, a quote or a line break or starts or ends
 * with a space; guard_mark puts the ' of the formula guard before it. */
int csv_cell(text_buffer *b, const char *s, size_t n, int guard_mark, const csv_style *st);
/* A tsv cell: backslash, tab, CR and LF written \\, \t, \r and \n; never quoted. */
int tsv_cell(text_buffer *b, const char *s, size_t n);
/* A JSON string, quoted, escaped, each byte that is not UTF-8 made U+FFFD. */
int json_string(text_buffer *b, const char *s, size_t n);

/* ---- column.c: one column of the store ---- */
typedef struct {
  char *name;           /* canonical name */
  char *label;          /* header as written in the file */
  cpf_type type;
  int width;            /* bytes per value in data: 1, 2, 4 or 8 */
  int scale;            /* decimal: digits after the point */
  size_t rows;
  void *data;           /* rows * width bytes; see column_integer_at / column_code_at */
  uint8_t *missing_bits; /* bit i set when row i has no value; NULL when none is missing.
                          * Missing values are rare: loading only writes a bit for them. */
  size_t missing;
  int64_t min, max;     /* integer-like types: range of the values present */
  cpf_dictionary dict;  /* string columns */
  /* while loading */
  size_t cap;
  char decimal_mark;
  char thousands;       /* 0: inferred (spaces, U+00A0, U+202F; '.' with a decimal comma); 'n': none;
                         * else that separator (' ' also takes U+00A0 and U+202F) */
  char locale_point;    /* strtod's decimal point, read once before the load (numparse.c) */
  int encoding;         /* cpf_encoding of the file's text: made UTF-8 by column_finish, first */
  int mapped;           /* arrays and names point into a snapshot's mapping: nothing to free */
  int skipped;          /* loading: a column not asked for, whose fields are passed over */
} cpf_column;

int column_init(cpf_column *col, const char *name, const char *label, cpf_type type,
                char decimal_mark, size_t expected_rows);
void column_free(cpf_column *col);
/* Append one field; on bad data writes "expected ..., got ..." into msg and returns -1. */
int column_append(cpf_column *col, const char *s, size_t len, char *msg, size_t msgsize);
/* Takes back rows [rows, col->rows) appended while loading (a rejected record's values); a
 * string column's last dictionary value too when drop_value says the record brought it. */
void column_truncate(cpf_column *col, size_t rows, int drop_value);
/* Undoes a rescale a rejected record caused: a decimal column whose scale was raised, or that
 * became doubles, back to int64 values at `scale` (the rows it holds, the record's taken back). */
void column_restore_decimal(cpf_column *col, int scale);
/* Finish loading: infer AUTO types, narrow widths, drop the builder's slack. */
int column_finish(cpf_column *col, char *msg, size_t msgsize);
size_t column_memory(const cpf_column *col);
/* Parallel load: append the next chunk's builder of the same column (freed), before finishing. */
int column_absorb(cpf_column *out, cpf_column *in);
/* Appends every row of `in`, a finished column of out's type: codes through out's dictionary,
 * decimals at out's scale (no smaller than in's). A code past in's dictionary (a damaged
 * snapshot) is appended as a missing value. -1: out of memory; -2: a decimal that does not fit
 * 64 bits at out's scale. */
int column_append_column(cpf_column *out, const cpf_column *in);
/* Appends `count` rows holding the code `code` of a string column's dictionary. */
int column_append_code(cpf_column *col, uint32_t code, size_t count);

static inline int column_is_valid(const cpf_column *col, size_t row) {
  return col->missing_bits == NULL || !((col->missing_bits[row >> 3] >> (row & 7)) & 1);
}
static inline int64_t column_integer_at(const cpf_column *col, size_t row) {
  switch (col->width) {
  case 1: return ((const int8_t *)col->data)[row];
  case 2: return ((const int16_t *)col->data)[row];
  case 4: return ((const int32_t *)col->data)[row];
  default: return ((const int64_t *)col->data)[row];
  }
}
static inline uint32_t column_code_at(const cpf_column *col, size_t row) {
  switch (col->width) {
  case 1: return ((const uint8_t *)col->data)[row];
  case 2: return ((const uint16_t *)col->data)[row];
  default: return ((const uint32_t *)col->data)[row];
  }
}
static inline double column_number_at(const cpf_column *col, size_t row) {
  return ((const double *)col->data)[row];
}
/* -0.0 as 0.0: where doubles are grouped, counted or compared by their bits, the two are one
 * value (as == says). */
static inline double normalize_zero(double d) { return d == 0 ? 0.0 : d; }

/* ---- encoding.c: UTF-8 checked, or Windows-1252 / Latin-1 made UTF-8 ---- */
typedef enum { CPF_ENCODING_UTF8 = 0, CPF_ENCODING_CP1252, CPF_ENCODING_LATIN1 } cpf_encoding;
/* Where s[0..n) stops being valid UTF-8: n when it is valid throughout. */
size_t utf8_invalid_at(const char *s, size_t n);
/* s[0..n) in that encoding as UTF-8 into out (3 * n bytes at most); the length written. */
size_t to_utf8(const char *s, size_t n, cpf_encoding encoding, char *out);
/* Every value of a frozen dictionary made UTF-8 (distinct values stay distinct); -1: no memory. */
int dictionary_to_utf8(cpf_dictionary *dict, cpf_encoding encoding);

/* ---- rejects.c: the records a load sets aside (on_error = "skip") ----
 * Held as the entries of snapshot_format.h back to back: a snapshot stores them as they are. */
typedef enum { CPF_REJECT_FIELDS = 1, CPF_REJECT_VALUE, CPF_REJECT_QUOTE } cpf_reject_kind;
#define REJECT_TEXT_MAX 1000 /* bytes of a rejected record's text kept */

typedef struct {
  unsigned char *bytes;
  size_t size, cap, count;
  int mapped;           /* points into a snapshot's mapping: nothing to free */
} cpf_rejects;

/* Appends one entry; -1 when out of memory. text is cut to REJECT_TEXT_MAX bytes; file is ""
 * for a dataset of one file. */
int rejects_add(cpf_rejects *r, uint64_t line, uint64_t record, uint64_t column, uint64_t length,
                cpf_reject_kind kind, const char *name, const char *message, const char *text,
                size_t text_len, const char *file);
/* The entry at byte `offset` of checked bytes (a snap_reject, its strings' lengths in it), its
 * strings, and the next entry's offset. */
size_t rejects_entry(const cpf_rejects *r, size_t offset, void *entry, const char **name,
                     const char **message, const char **text, const char **file);
/* Every entry of `from` added to `into`, as coming from `file` (concatenated datasets). */
int rejects_append(cpf_rejects *into, const cpf_rejects *from, const char *file);
/* NULL when bytes[0..size) hold exactly count well-formed entries, else what is wrong. */
const char *rejects_check(const unsigned char *bytes, size_t size, size_t count);
void rejects_free(cpf_rejects *r);
const char *cpf_reject_kind_name(cpf_reject_kind kind); /* "fields", "value", "quote" */

/* ---- dataset.c: columns of equal length ---- */
typedef struct {
  size_t rows;
  size_t ncols;
  cpf_column *cols;
  /* Row-sized work arrays of the last query, kept for the next one: fresh pages for every
   * query cost more page faults than the query's own work. */
  uint32_t *scratch_gid, *scratch_codes;
  uint8_t *scratch_selection;
  int scratch_gid_zero; /* scratch_gid holds 0 for every row (a query without keys or selection) */
  /* The per-group work arrays of a query (counts, sums: query.c's scratch_take), kept likewise
   * up to SCRATCH_KEEP_BYTES each; freed with the dataset. */
  void *scratch_slots[10];
  size_t scratch_slot_bytes[10];
  cpf_pool *pool; /* its results' arrays (made by the first query) */
  /* opened from a snapshot: the file's mapping, which the columns point into */
  void *mapping;
  size_t mapping_size;
  const char *tag;      /* the snapshot's tag (what it was made from), in the mapping */
  size_t tag_len;
  /* a snapshot's columns are checked on first use, not at open (snapshot_check_column): their
   * values against their ranges and dictionaries, and their checksums with `verify` */
  const void *snapshot_base;   /* the bytes the column table's offsets count from */
  char *snapshot_path;         /* for the messages */
  int snapshot_verify;
  uint8_t *column_state;       /* per column: 0 not checked yet, 1 sound, 2 damaged */
  uint64_t **distinct_keys;    /* per column, once asked: query_distinct_keys */
  size_t *distinct_count;
  const char **column_damage;  /* per damaged column: what is wrong */
  cpf_rejects rejects;         /* the records the load set aside (on_error = "skip") */
} cpf_dataset;

void dataset_free(cpf_dataset *ds);
size_t dataset_memory(const cpf_dataset *ds);
int dataset_find_column(const cpf_dataset *ds, const char *name); /* index or -1 */
/* One dataset with the rows of each part in order, plus a "source" column naming the part. */
cpf_dataset *dataset_concat(cpf_dataset *const *parts, size_t nparts, const char *const *sources,
                            cpf_error *err);

/* ---- describe.c: a column summed up (ds:describe) ---- */
typedef struct {
  size_t distinct;          /* values, missing not counted */
  int has_range;            /* min, max set: a number, month or date column with a value */
  int64_t min, max;         /* as stored: integers (decimals scaled), a double's bits */
  size_t ntop;              /* text: the most frequent codes, most rows first, then by bytes */
  uint32_t *top_codes;
  size_t *top_counts;
} column_summary;
int describe_column(const cpf_dataset *ds, size_t j, size_t top, column_summary *out, cpf_error *err);
void describe_free(column_summary *s);

/* ---- http.c: one HTTP GET with libcurl (cpf fetch) ---- */
typedef struct {
  const char *url;
  const char *path;           /* NULL: the body in memory (at most max_body bytes); else the file
                               * the body goes to, resumed from its end when if_range names it */
  size_t max_body;
  const char *if_range;       /* the ETag or Last-Modified of what path holds, or NULL */
  const char *validator_path; /* where the answer's ETag or Last-Modified is written, or NULL */
  const char *user_agent;
  int retries;                /* more attempts after a cut transfer, a 5xx, a 429 */
  double backoff;             /* seconds before the first retry, doubled each time */
  double max_wait;            /* the longest Retry-After waited out */
  long stall_seconds;         /* a transfer under 1 byte/s for this long is cut (60) */
  /* called during the transfer and between attempts; nonzero stops it ("cancelled") */
  int (*monitor)(void *ud, size_t done, size_t total, size_t attempt);
  void *monitor_ud;
} http_request;
typedef struct {
  long status;
  char *body;                 /* in memory: the body, NUL-terminated */
  size_t body_len;
  char etag[256], last_modified[128], content_type[128];
  uint64_t size;              /* to a file: its bytes at the end */
  size_t attempts, resumed, restarted;
} http_response;
int http_get(const http_request *req, http_response *res, cpf_error *err);
void http_response_free(http_response *res);

/* ---- file_kind.c: gzip, and the files that are no CSV ---- */
int is_gzip(const char *p, size_t n);
/* What the first bytes say the file is when it is a kind cpf does not read (a workbook, an
 * archive, a PDF, an HTML page...), with what to do; NULL for anything else. */
const char *foreign_file_kind(const char *p, size_t n);
/* The gzip stream: `already` (bytes of it read before), then fd read on, inflated into a
 * malloc'd buffer (several members one after another too), to its end, or until `limit` bytes
 * came out (*complete = 0 then: the header of a file is read before its load). */
typedef struct {
  int (*fn)(void *ud, size_t done, size_t total, size_t rows); /* nonzero: stop ("load cancelled") */
  void *ud;
  size_t total; /* the compressed file's bytes */
} inflate_monitor;
int inflate_file(int fd, const char *path, const char *already, size_t already_len, size_t limit,
                 const inflate_monitor *monitor, char **out, size_t *out_len, int *complete, cpf_error *err);

/* ---- loader.c ---- */
typedef struct {
  char sep;               /* 0: detect from the header */
  char decimal_mark;      /* '.', ',' or 0: either, unless sep is ',' */
  char thousands;         /* as cpf_column's: 0 inferred, 'n' none, or the separator */
  int libcsv_only;        /* every line through libcsv, none through the quote-free path */
  size_t threads;         /* 0: one per core */
  size_t min_chunk;       /* bytes a chunk holds at least; 0: 4 MB, or 64 kB with threads given.
                           * The fuzzers set a few bytes, so that small inputs cross chunks. */
  /* Called every few MB on the thread that called loader_load; a non-zero return stops the
   * load (message in err). */
  int (*progress)(void *ud, size_t bytes_done, size_t bytes_total, size_t rows, cpf_error *err);
  void *progress_ud;
  /* Called every few MB by every loading thread, so it must be thread-safe (load_async's job:
   * it publishes the figures under a lock and never calls Lua); a non-zero return cancels the
   * load ("load cancelled"). The rows are an estimate until the last call. */
  int (*monitor)(void *ud, size_t bytes_done, size_t bytes_total, size_t rows);
  void *monitor_ud;
  /* The C library's decimal point (numparse_locale_point) read by the Lua thread before a load
   * on another thread (localeconv is not thread-safe); 0: loader_load reads it itself. */
  char locale_point;
  /* on_error = "skip": a malformed record (a field count other than the header's, a value that
   * does not parse as its column's type, a quote left open or followed by text) is set aside
   * in the dataset's rejects and the load goes on; more than max_rejects stops it. */
  int skip_bad_records;
  size_t max_rejects;
  /* the file's text: UTF-8 (checked: a value that is not is an error naming its row, even with
   * on_error = "skip"), or Windows-1252 / Latin-1, made UTF-8 */
  cpf_encoding encoding;
} cpf_load_options;

typedef struct {
  const char *name;
  const char *label;
  cpf_type type;
  int skip;               /* not loaded (opts.columns): its fields are passed over */
} cpf_column_spec;

/* A file opened once, for its header then its load. A regular file is read with pread, never
 * mapped (a file truncated under a mapping raises SIGBUS in the host); only its first bytes,
 * where the header must be, are held. A pipe or device is read whole into memory. */
typedef struct {
  char *path;
  int fd;             /* a regular file; -1 for a source in memory */
  char *bytes;        /* a source in memory: the whole content; NULL for a regular file */
  size_t size;        /* at open */
  char *prefix;       /* the first bytes: the header record ends within them */
  size_t prefix_len;
  size_t start;       /* after the BOM */
  size_t data_start;  /* after the header record */
  size_t file_size;   /* the file's bytes at open (a gzip file's compressed size) */
  uint64_t inode;     /* with file_size and mtime: the file must be the same after the load */
  int64_t mtime_sec;
  long mtime_nsec;
  int is_open;
  int gzip_pending;   /* a gzip file whose prefix only is inflated: source_inflate does the rest */
} cpf_source;

int source_open(cpf_source *src, const char *path, cpf_error *err);
void source_close(cpf_source *src);
/* A gzip file inflated whole into memory, where source_open inflated its header only: on the
 * thread that loads it (load_async's), never on the host's. Nothing to do for another file. */
int source_inflate(cpf_source *src, const cpf_load_options *opts, cpf_error *err);

/* The header's fields (malloc'd array of malloc'd strings) and the separator found. */
int loader_read_header(const cpf_source *src, char sep, char ***labels, size_t *count,
                       char *sep_found, cpf_error *err);
void loader_free_header(char **labels, size_t count);
cpf_dataset *loader_load(const cpf_source *src, const cpf_load_options *opts,
                         const cpf_column_spec *specs, size_t ncols, cpf_error *err);
/* The threads a load uses when opts->threads is 0: one per core online, 1 to 64. */
size_t loader_default_threads(void);

/* ---- output_file.c: a file that replaces its target only once complete ---- */
typedef struct {
  char *path;  /* the target */
  char *tmp;   /* the temporary beside it, created exclusively; NULL once renamed or removed */
  int fd;
} output_file;

/* Refuses a target that exists and is not a regular file ("PATH: not a regular file: refusing
 * to replace it"). Commit renames the temporary over the target; abort (idempotent) removes it. */
int output_file_open(output_file *out, const char *path, cpf_error *err);
int output_file_write(output_file *out, const void *p, size_t n, cpf_error *err);
int output_file_commit(output_file *out, cpf_error *err);
void output_file_abort(output_file *out);

/* ---- snapshot.c: the dataset as a binary file, reopened by mmap ---- */
/* Writes the dataset to a temporary created exclusively beside `path`, then renamed over it: a
 * file that a process has mapped is never modified. Refuses to replace anything but a regular
 * file. `tag` is stored as given. */
int snapshot_save(const cpf_dataset *ds, const char *path, const char *tag, size_t tag_len,
                  cpf_error *err);
/* Maps a snapshot read-only; every field of its column table is checked against the others and
 * against the file at once; each column's codes and values against its dictionary and range,
 * and with `verify` its checksum, when the column is first used (snapshot_check_column): a
 * report that reads 4 columns of 37 touches the pages of those 4 only. */
cpf_dataset *snapshot_open(const char *path, int verify, cpf_error *err);
/* The deferred checks of column j of a dataset opened from a snapshot (a no-op for any other
 * column, and once a column was found sound): its values against its range or dictionary, its
 * checksum if opened with `verify`. Every path that reads a column's values calls it first: -1
 * and "path: column N: what is wrong" for a damaged column, each time it is asked for. */
int snapshot_check_column(const cpf_dataset *ds, size_t j, cpf_error *err);
int snapshot_check_columns(const cpf_dataset *ds, cpf_error *err); /* every column */
/* The same checks over bytes in memory (8-byte aligned, kept alive and unchanged by the caller
 * while the dataset lives; `path` only names them in messages): the fuzzers' entry point. */
cpf_dataset *snapshot_open_bytes(const void *bytes, size_t size, const char *path, int verify,
                                 cpf_error *err);

/* ---- query.c: selections, grouping keys and aggregates over a dataset ---- */
#define QUERY_NO_GROUP UINT32_MAX /* gid of a row the selection dropped */

/* The periods of a month or date column: year, semester, quarter, month (codes in time order
 * from `base`, in those units since year 0), and the month of the year (1-12, whatever the
 * year). */
typedef enum { KEY_COLUMN, KEY_YEAR, KEY_MONTH, KEY_REMAP, KEY_BUCKET, KEY_QUARTER, KEY_SEMESTER,
               KEY_MONTH_OF_YEAR } key_kind;

/* A grouping key: maps each row to a code in [0, cardinality); the last code is "no value". */
typedef struct {
  key_kind kind;
  int column;
  const int32_t *remap;    /* KEY_REMAP: output code per dictionary code, -1 = no value */
  uint32_t remap_outputs;  /* KEY_REMAP: number of distinct output codes */
  const double *bounds;    /* KEY_BUCKET: sorted bucket bounds */
  size_t nbounds;
  int force_by_value;      /* KEY_COLUMN: code the values present, never a dense range */
  const int32_t *rank;     /* KEY_REMAP / KEY_BUCKET: the Lua side's rank of each code, or NULL */
  /* set by key_compute */
  uint32_t cardinality;
  int64_t base;            /* periods / small integer columns: value of code 0 */
  int by_value;            /* KEY_COLUMN on a non-string column: values interned below */
  cpf_dictionary values;   /* ... as 8-byte strings (int64 or double bits) */
} query_key;

int key_compute(const cpf_dataset *ds, query_key *key, uint32_t *codes, cpf_error *err);
void key_free(query_key *key);

typedef enum { COND_MASK, COND_RANGE, COND_NULL, COND_ROWS, COND_RUNS, COND_NOT, COND_AND, COND_OR } cond_kind;

typedef struct query_cond {
  cond_kind kind;
  query_key key;              /* COND_MASK: keep rows whose key code has mask[code] != 0 */
  const uint8_t *mask;
  size_t mask_len;
  int column;                 /* COND_RANGE, COND_NULL */
  double lo, hi;              /* COND_RANGE bounds, in the column's units (euros, not cents) */
  int has_lo, has_hi, lo_open, hi_open;
  int negate;                 /* COND_NULL: 0 = is missing, 1 = has a value */
  const uint8_t *rows;        /* COND_ROWS: one byte per row */
  const uint64_t *run_lo, *run_hi; /* COND_RUNS: sorted, disjoint [lo, hi] of value_key order */
  size_t nruns;               /* keys (query_value_keys) on `column`; missing rows: negate */
  struct query_cond *children; /* COND_NOT (1), COND_AND, COND_OR */
  size_t nchildren;
} query_cond;

/* The distinct values of a numeric column (rows with a value), ascending, as exact order keys:
 * an integer-like column's stored integer with its sign bit flipped, a double's bits made
 * monotonic (-0 as 0, NaN last). Computed once per column and kept by the dataset (which never
 * changes): *out belongs to it. What a Lua function condition on a number is tested on, once
 * per value. */
int query_distinct_keys(cpf_dataset *ds, int column, const uint64_t **out, size_t *count,
                        cpf_error *err);
/* The stored value (an int64, or a double's bits) of an order key of that column. */
int64_t query_key_value(const cpf_column *col, uint64_t key);

/* out[i] = 1 for the rows the condition keeps. */
int cond_evaluate(const cpf_dataset *ds, query_cond *cond, uint8_t *out, cpf_error *err);

typedef enum {
  AGG_COUNT, AGG_COUNT_VALUES, AGG_SUM, AGG_MEAN, AGG_MIN, AGG_MAX, AGG_RATIO, AGG_WMEAN,
  AGG_DISTINCT, AGG_QUANTILE
} agg_kind;

typedef enum { OUT_INTEGER, OUT_NUMBER, OUT_SCALED, OUT_MONTH, OUT_DATE } out_kind;

/* How a column's stored values read back: the output kind of min, max and key values. */
out_kind column_out_kind(const cpf_column *col);

typedef struct {
  agg_kind kind;
  int column, column2;        /* column2: denominator of AGG_RATIO, weight of AGG_WMEAN */
  double q;                   /* AGG_QUANTILE */
  query_cond *filter;         /* only rows it keeps count for this aggregate; may be NULL */
  /* results, one per group */
  out_kind out;
  int scale;                  /* OUT_SCALED: value = integer / 10^scale */
  int64_t *integers;
  double *numbers;
  uint8_t *present;           /* 0: no value (nil) */
} query_agg;

typedef struct {
  size_t ngroups;
  uint32_t **key_codes;       /* per key, the code of each group */
  int64_t *rows;              /* rows selected in each group */
  const uint32_t *row_slot;   /* per row of the dataset, its slot: the dataset's work array,
                               * valid until the next query on the dataset */
  uint32_t *slot_group;       /* per slot: group number + 1, 0 = none */
  size_t nslots;
  cpf_pool *pool;             /* where key_codes and the aggregates' arrays come from */
} query_result;

int query_run(cpf_dataset *ds, query_cond *where, query_key *keys, size_t nkeys,
              query_agg *aggs, size_t naggs, query_result *res, cpf_error *err);
void query_result_free(query_result *res, size_t nkeys, query_agg *aggs, size_t naggs);
/* The group of a row after query_run, from 1; 0 for a row the selection dropped. */
static inline uint32_t query_row_group(const query_result *res, size_t row) {
  return res->slot_group[res->row_slot[row]];
}

/* ---- order.c: the order of a query's groups ---- */
/* rank[c] for the codes c of the key used in codes[0..n): the code's position in the key's order
 * (strings in byte order, values by value, years / months / dense integers in code order, or
 * `given` when the Lua side ranked the labels of a family, bucket or key function); the "no
 * value" code (cardinality - 1) gets UINT32_MAX. rank holds cardinality entries. */
int order_rank_key(const cpf_dataset *ds, const query_key *key, const uint32_t *codes, size_t n,
                   const int32_t *given, uint32_t *rank, cpf_error *err);

/* A double's place in the total order of compare_doubles (query.c) as an unsigned integer:
 * its bits with -0 as 0, negatives below positives, NaN after everything. The top bits grow
 * with the value's logarithm (what the quantiles' buckets rely on). */
static inline uint64_t order_double_key(double d) { /* inline: the quantiles call it for every row */
  uint64_t bits;
  if (d != d) return UINT64_MAX;
  if (d == 0) d = 0; /* -0.0 ties with 0.0, as Lua's == says */
  memcpy(&bits, &d, sizeof bits);
  return (bits >> 63) ? ~bits : bits | ((uint64_t)1 << 63);
}
/* Sorts keys[0..n) ascending in place (radix). */
int order_sort_keys(uint64_t *keys, size_t n, cpf_error *err);

typedef enum { ORDER_KEY, ORDER_INTEGER, ORDER_NUMBER } order_kind;

/* One "sort by" of the groups: a key's ranks, or an aggregate's values (int64 or double). */
typedef struct {
  order_kind kind;
  int desc;
  const uint32_t *codes, *rank; /* ORDER_KEY: code per group, rank per code */
  const int64_t *integers;      /* ORDER_INTEGER */
  const double *numbers;        /* ORDER_NUMBER */
  const uint8_t *present;       /* aggregates: 0 = no value */
} order_spec;

/* Sorts perm[0..n) (group numbers) by specs[0], then specs[1]... stably (equal groups keep
 * their order); groups without a value go after the others for that spec, in either
 * direction; NaN counts as no value. */
int order_groups(cpf_pool *pool, uint32_t *perm, size_t n, const order_spec *specs, size_t nspecs,
                 cpf_error *err);

/* A distinct value of a column and the number of rows that hold it. */
typedef struct {
  int64_t value;            /* a dictionary code, an integer-like value or a double's bits */
  size_t count;
  int missing;              /* the entry of the rows without a value (value unused) */
  const cpf_column *column; /* what the value belongs to: qsort has no context argument */
} query_distinct_value;

/* The distinct values of a column, most frequent first, ties in value order and the missing
 * entry last; -0.0 counts as 0.0. *out (malloc'd, *count entries) is the caller's to free. */
int query_distinct(const cpf_dataset *ds, int column, query_distinct_value **out, size_t *count,
                   cpf_error *err);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif

/* loader.c — reads a delimited file through libcsv straight into column builders.
 * libcsv calls back per field; the callbacks only append to C arrays and record the first
 * error (they cannot raise), and the parse stops at the next block boundary. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h> /* malloc_usable_size */
#endif
#include <sys/stat.h>
#include <unistd.h>

#include <csv.h>
/* the SSE2 scan counts bits with __builtin_ctz, a GNU C builtin (gcc, clang) */
#if defined(__SSE2__) && defined(__GNUC__)
#define CPF_SSE2 1
#include <emmintrin.h>
#endif

#include "cpf.h"
#include "snapshot_format.h"

#define PROGRESS_EVERY (16u << 20)

/* ---- the file: read, never mapped ----
 * A regular file is read with pread, by each chunk thread through its own bounded buffer: a
 * file truncated under a mapping raises SIGBUS, which would kill the host (Neovim, an nginx
 * worker), and the mapped pages would count on top of the dataset. A short read, or a size,
 * inode or mtime that differs after the load from the one seen at open, is an error. Pipes
 * and devices have no pread: they are read into memory, after the header has been found in
 * their first bytes (so /dev/zero is refused at once instead of filling the memory). */

/* The header record must end within the file's first HEADER_PREFIX bytes. */
#define HEADER_PREFIX ((size_t)1 << 20)

static int source_changed(const cpf_source *src, cpf_error *err) {
  cpf_error_set(err, CPF_ERR_IO, "%s: the file changed while it was read", src->path);
  return -1;
}

/* Reads [off, off + n) of a regular file; -1 with an error when the file is shorter now. */
static int read_at(const cpf_source *src, char *buf, size_t n, size_t off, cpf_error *err) {
  while (n > 0) {
    ssize_t got = cpf_pread(src->fd, buf, n, (off_t)off);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      cpf_error_set(err, CPF_ERR_IO, "%s: cannot read: %s", src->path, strerror(errno));
      return -1;
    }
    if (got == 0) return source_changed(src, err);
    buf += got;
    n -= (size_t)got;
    off += (size_t)got;
  }
  return 0;
}

/* Reads a stream until `limit` bytes are held or it ends; *ended tells which. */
static int read_stream(const cpf_source *src, char **buf, size_t *len, size_t *cap, size_t limit,
                       int *ended, cpf_error *err) {
  *ended = 0;
  while (*len < limit) {
    ssize_t n;
    if (*len == *cap) {
      size_t want = *cap ? *cap * 2 : (size_t)1 << 16;
      char *bigger = cpf_realloc(*buf, want);
      if (!bigger) { cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", src->path); return -1; }
      *buf = bigger;
      *cap = want;
    }
    n = cpf_read(src->fd, *buf + *len, (limit < *cap ? limit : *cap) - *len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      cpf_error_set(err, CPF_ERR_IO, "%s: cannot read: %s", src->path, strerror(errno));
      return -1;
    }
    if (n == 0) { *ended = 1; return 0; }
    *len += (size_t)n;
  }
  return 0;
}

static void source_identity(const struct stat *st, cpf_source *src) {
  src->size = src->file_size = (size_t)st->st_size;
  src->inode = (uint64_t)st->st_ino;
  src->mtime_sec = (int64_t)st->st_mtim.tv_sec;
  src->mtime_nsec = (long)st->st_mtim.tv_nsec;
}

/* After a load: the file must still be the one measured at open. */
static int source_unchanged(const cpf_source *src, cpf_error *err) {
  struct stat st;
  cpf_source now;
  if (src->fd < 0) return 0; /* read into memory at open: nothing more was read */
  if (fstat(src->fd, &st) != 0) {
    cpf_error_set(err, CPF_ERR_IO, "%s: cannot read: %s", src->path, strerror(errno));
    return -1;
  }
  source_identity(&st, &now);
  if (now.file_size != src->file_size || now.inode != src->inode || now.mtime_sec != src->mtime_sec ||
      now.mtime_nsec != src->mtime_nsec)
    return source_changed(src, err);
  return 0;
}

void source_close(cpf_source *src) {
  if (src->fd >= 0) close(src->fd);
  if (src->prefix != src->bytes) free(src->prefix);
  free(src->bytes);
  free(src->path);
  memset(src, 0, sizeof *src);
  src->fd = -1;
}

static size_t bom_length(const char *p, size_t n) {
  return n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

static int only_blank(const char *p, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (p[i] != '\r' && p[i] != '\n' && p[i] != ' ' && p[i] != '\t') return 0;
  return 1;
}

/* ---- parsing ---- */
/* A record set aside, as a chunk finds it: its number in the chunk and its bytes in the file
 * (the load makes them the file's record and line numbers, and reads its text, at the end). */
typedef struct {
  size_t record;     /* the chunk's data record, 1-based, rejected ones counted */
  size_t start, end; /* the record's bytes, its last line break left out */
  size_t column;     /* 1-based field; 0: the record as a whole */
  cpf_reject_kind kind;
  char message[400];
} pending_reject;

typedef struct {
  pending_reject *items;
  size_t count, cap;
} pending_rejects;

typedef struct {
  const char *path;
  cpf_column *cols;
  size_t ncols;
  size_t field;      /* index of the next field in the current record */
  size_t record;     /* records completed, the header included */
  char **header;     /* when only reading the header */
  size_t header_count, header_cap;
  cpf_error *err;
  /* on_error = "skip": a bad record's values are taken back and the record set aside */
  int skip;
  int rejecting;     /* the current record is bad: its other fields are passed over */
  int too_many;      /* more than max_rejects: the load stops */
  pending_reject reject;    /* the current record's first fault */
  size_t kept;       /* records kept: the rows the columns hold */
  size_t record_start, line_end; /* the current record's first byte; its current line's end */
  size_t *grown, ngrown; /* string columns whose dictionary took a new value in this record */
  size_t stopped_at;     /* parser_feed: the byte of its piece where libcsv stopped */
  struct { size_t column; int scale; } *rescaled; /* decimal columns this record rescaled */
  size_t nrescaled;
  pending_rejects *rejects;
  size_t max_rejects;
} parse_state;

/* Something wrong with the current record (what: its message without the position): the load's
 * error, or with on_error = "skip" the record's fault, its first one kept. */
static void bad_record(parse_state *st, cpf_reject_kind kind, size_t column, const char *what) {
  if (!st->skip) {
    if (column)
      cpf_error_at(st->err, CPF_ERR_DATA, st->record + 1, column, "%s:%zu:%zu: %s", st->path,
                   st->record + 1, column, what);
    else
      cpf_error_at(st->err, CPF_ERR_DATA, st->record + 1, 0, "%s:%zu: %s", st->path, st->record + 1, what);
    return;
  }
  if (st->rejecting) return;
  st->rejecting = 1;
  st->reject.kind = kind;
  st->reject.column = column;
  snprintf(st->reject.message, sizeof st->reject.message, "%s", what);
}

/* The end of a bad record: its values taken back from the columns (a dictionary value it
 * brought too, so that no value of a rejected record shows anywhere), the record listed. */
static void reject_record(parse_state *st) {
  size_t j, g;
  pending_rejects *l = st->rejects;
  for (j = 0; j < st->ncols; j++) {
    int grew = 0;
    if (st->cols[j].skipped || st->cols[j].rows <= st->kept) continue;
    for (g = 0; g < st->ngrown; g++) grew |= st->grown[g] == j;
    column_truncate(&st->cols[j], st->kept, grew);
  }
  for (g = st->nrescaled; g-- > 0;) /* the first change last: back to the scale before it */
    column_restore_decimal(&st->cols[st->rescaled[g].column], st->rescaled[g].scale);
  st->ngrown = 0;
  st->nrescaled = 0;
  st->rejecting = 0;
  if (l->count == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    pending_reject *items = cpf_realloc(l->items, cap * sizeof *items);
    if (!items) { cpf_error_set(st->err, CPF_ERR_MEMORY, "%s: out of memory", st->path); return; }
    l->items = items;
    l->cap = cap;
  }
  st->reject.record = st->record;
  st->reject.start = st->record_start;
  st->reject.end = st->line_end > st->record_start ? st->line_end : st->record_start;
  l->items[l->count++] = st->reject;
  if (l->count > st->max_rejects) {
    st->too_many = 1; /* loader_load says so, with the first reject's line */
    cpf_error_set(st->err, CPF_ERR_DATA, "%s: too many rejects", st->path);
  }
}

/* A record is complete: kept, or set aside. */
static void end_record(parse_state *st) {
  if (st->rejecting) reject_record(st);
  else if (st->record > 0) st->kept++;
  st->ngrown = 0;
  st->nrescaled = 0;
  st->record++;
  st->field = 0;
}

static void header_field(parse_state *st, const char *s, size_t len) {
  char *copy;
  if (st->header_count == st->header_cap) {
    size_t cap = st->header_cap ? st->header_cap * 2 : 64;
    char **h = cpf_realloc(st->header, cap * sizeof *h);
    if (!h) { cpf_error_set(st->err, CPF_ERR_MEMORY, "%s: out of memory", st->path); return; }
    st->header = h;
    st->header_cap = cap;
  }
  /* names travel as C strings (columns, snapshots, Lua specs): a NUL would silently cut one */
  if (memchr(s, '\0', len)) {
    cpf_error_at(st->err, CPF_ERR_DATA, 1, st->header_count + 1,
                 "%s:1:%zu: a NUL byte in the header (column %zu's name)", st->path,
                 st->header_count + 1, st->header_count + 1);
    return;
  }
  copy = cpf_malloc(len + 1);
  if (!copy) { cpf_error_set(st->err, CPF_ERR_MEMORY, "%s: out of memory", st->path); return; }
  memcpy(copy, s, len);
  copy[len] = '\0';
  st->header[st->header_count++] = copy;
}

static void on_field(void *s, size_t len, void *data) {
  parse_state *st = data;
  char msg[300], what[400];
  if (st->err->code) return;
  if (st->record == 0) {
    if (st->header) header_field(st, s, len);
  } else if (st->header) {
    return; /* reading the header only: the rest of the block is not ours */
  } else if (st->rejecting) {
    /* a bad record's other fields: passed over */
  } else if (st->field >= st->ncols) {
    snprintf(what, sizeof what, "too many fields (the header has %zu)", st->ncols);
    bad_record(st, CPF_REJECT_FIELDS, st->field + 1, what);
  } else if (st->cols[st->field].skipped) {
    /* not asked for: passed over */
  } else {
    cpf_column *col = &st->cols[st->field];
    uint32_t values = col->dict.count;
    int scale = col->scale;
    cpf_type type = col->type;
    int rc = column_append(col, s, len, msg, sizeof msg);
    /* a decimal value with more digits (or an exponent) changed the whole column: undone too
     * if the record is set aside (reject_record) */
    if (st->skip && (col->scale != scale || col->type != type)) {
      st->rescaled[st->nrescaled].column = st->field;
      st->rescaled[st->nrescaled].scale = scale;
      st->nrescaled++;
    }
    if (rc == -2) {
      cpf_error_set(st->err, CPF_ERR_MEMORY, "%s: out of memory", st->path);
    } else if (rc != 0) {
      snprintf(what, sizeof what, "%s: %s", col->name, msg);
      bad_record(st, CPF_REJECT_VALUE, st->field + 1, what);
    } else if (st->skip && col->dict.count > values) {
      st->grown[st->ngrown++] = st->field;
    }
  }
  st->field++;
}

static void on_record(int c, void *data) {
  parse_state *st = data;
  char what[100];
  (void)c;
  if (st->err->code || (st->header && st->record > 0)) return;
  if (st->record == 0 && st->header == NULL && st->field != st->ncols) {
    cpf_error_at(st->err, CPF_ERR_DATA, 1, 0, "%s:1: the header has %zu fields, %zu were expected",
                 st->path, st->field, st->ncols);
  } else if (st->record > 0 && st->field < st->ncols) {
    snprintf(what, sizeof what, "too few fields: %zu (the header has %zu)", st->field, st->ncols);
    bad_record(st, CPF_REJECT_FIELDS, 0, what);
  }
  end_record(st);
}

/* No byte is a space to libcsv: it would trim spaces and tabs around unquoted fields, and text
 * is kept byte for byte (numbers, months and dates are trimmed where they are parsed). */
static int never_blank(unsigned char c) {
  (void)c;
  return 0;
}

/* libcsv grows a field's buffer by a fixed block at a time: a field of megabytes would be
 * reallocated, and copied, at every block. Asked for more, this gives twice as much, and the
 * requests that follow fit in what was given: a few copies per field. */
static void *field_realloc(void *p, size_t n) {
#ifdef __GLIBC__
  if (p && malloc_usable_size(p) >= n) return p;
  if (n > ((size_t)1 << 20) && n < SIZE_MAX / 2) n *= 2;
#endif
  return cpf_realloc(p, n);
}

static int parser_start(struct csv_parser *p, char sep, const char *path, cpf_error *err) {
  /* strict: text after a closing quote is an error, not a guess (parser_feed reads a quote
   * inside an unquoted field as a character); STRICT_FINI: a quote left open at the end of the
   * file too. Fields are used with their length, so no NUL is appended. */
  if (csv_init(p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
    cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path);
    return -1;
  }
  csv_set_delim(p, (unsigned char)sep);
  csv_set_space_func(p, never_blank);
  csv_set_realloc_func(p, field_realloc); /* libcsv's field buffer counts with the core's */
  csv_set_free_func(p, free);
  /* libcsv grows a field's buffer by this many bytes at a time (128 by default): a field of
   * megabytes would be copied thousands of times by an allocator that cannot grow in place */
  csv_set_blk_size(p, (size_t)64 << 10);
  return 0;
}

static void parser_error(struct csv_parser *p, parse_state *st) {
  if (csv_error(p) == CSV_EPARSE)
    bad_record(st, CPF_REJECT_QUOTE, st->field + 1, "malformed quoted field: text after its closing quote");
  else
    cpf_error_set(st->err, csv_error(p) == CSV_ENOMEM ? CPF_ERR_MEMORY : CPF_ERR_DATA, "%s: %s",
                  st->path, csv_strerror(csv_error(p)));
}

static int is_blank_char(char c, char sep) {
  return (c == ' ' || c == '\t') && c != sep;
}

/* csv_parse over s[0..len), with the two readings strict libcsv refuses but DuckDB, Python's
 * csv and most exports agree on: a '"' inside a field that does not start with one is a
 * character (dekh"iykh'ya), and spaces or tabs between a closing quote and the separator or
 * the line break are passed over. Strict mode stops before the byte it refuses, its state kept:
 * a '"' can only be refused inside an unquoted field (no byte is a space), so it is handed over
 * as a plain character with the quote character switched off for that one byte; a blank after
 * a closing quote is skipped. Returns -1 when libcsv refuses anything else (text after a
 * closing quote, out of memory: parser_error says which), 0 otherwise. */
static int parser_feed(struct csv_parser *p, parse_state *st, char sep, const char *s, size_t len) {
  size_t pos = 0;
  for (;;) {
    pos += csv_parse(p, s + pos, len - pos, on_field, on_record, st);
    st->stopped_at = pos; /* where a refusal stopped it (on_error = "skip" resumes after it) */
    if (pos == len || st->err->code) return 0;
    if (csv_error(p) != CSV_EPARSE) return -1;
    if (s[pos] == '"') {
      csv_set_quote(p, sep == '\'' ? '`' : '\''); /* any byte but '"': it is not compared */
      if (csv_parse(p, "\"", 1, on_field, on_record, st) != 1) return -1;
      csv_set_quote(p, '"');
      pos++;
    } else if (is_blank_char(s[pos], sep)) {
      while (pos < len && is_blank_char(s[pos], sep)) pos++;
      st->stopped_at = pos;
      if (pos < len && s[pos] != sep && s[pos] != '\r' && s[pos] != '\n') return -1;
    } else {
      return -1;
    }
  }
}

static int parser_finish(struct csv_parser *p, parse_state *st) {
  if (!st->err->code && csv_fini(p, on_field, on_record, st) != 0 && !st->err->code) {
    if (csv_error(p) == CSV_EPARSE) {
      bad_record(st, CPF_REJECT_QUOTE, st->field + 1, "unterminated quoted field: the file ends inside quotes");
      if (st->skip) end_record(st); /* the record runs to the end of the file */
    } else {
      parser_error(p, st);
    }
  }
  csv_free(p);
  return st->err->code ? -1 : 0;
}


/* ---- the fast path ----
 * Most lines of the export hold no '"', and most of the rest only quote a field whole, as
 * `"plâtrerie ; isolation thermique"`. Such a line is split here, straight from the view, with
 * libcsv's field semantics: fields as they are, spaces included; a quoted field's text between
 * its quotes; an empty line is no record. Any other line goes to libcsv, the parser of record: a
 * quote inside a field, a doubled quote, a line break or CR inside quotes, text after a closing
 * quote, a stray CR, a field count other than the header's. So do the following lines while a
 * quoted field stays open (quote_scan). libcsv is only ever fed whole lines, so a record it
 * finishes ends where the fast path takes over again. */

/* One pass over a line: the positions of its first `want` separators (the others only counted,
 * fields past the last column asked for being passed over), and where its content ends. With
 * SSE2 (every x86-64) 16 bytes are compared at once with the separator, '"', CR and LF, and the
 * separators are read off a bit mask; elsewhere a byte loop does the same.
 * Returns the bytes the line takes (its line break included), or 0 when libcsv must read it. */
#define MAX_PLAIN_FIELDS 1024

/* A quote at p[i]: when it opens a field whose closing quote is followed by the separator or the
 * line's end, with neither a quote nor a line break between, the position after the closing
 * quote; else 0. */
static size_t quoted_field_end(const char *p, size_t i, size_t n, char sep) {
  size_t j;
  if (i > 0 && p[i - 1] != sep) return 0; /* a quote inside a field */
  for (j = i + 1; j < n; j++) {
    char c = p[j];
    if (c == '"') break;
    if (c == '\n' || c == '\r') return 0;
  }
  if (j == n) return 0; /* not closed in view */
  j++;
  if (j < n && p[j] != sep && p[j] != '\n' && p[j] != '\r') return 0; /* "" or text after it */
  return j;
}

#ifdef CPF_SSE2
/* The bits set in a 16-bit mask (__builtin_popcount is a libgcc call without -mpopcnt). */
static size_t bits16(unsigned x) {
  x = x - ((x >> 1) & 0x5555u);
  x = (x & 0x3333u) + ((x >> 2) & 0x3333u);
  x = (x + (x >> 4)) & 0x0F0Fu;
  return (x + (x >> 8)) & 0x1Fu;
}
#endif

static size_t scan_plain_line(const char *p, const char *end, char sep, size_t want,
                              uint32_t *seps, size_t *nseps, size_t *content) {
  size_t i = 0, n = (size_t)(end - p), k = 0;
  int capped = n > UINT32_MAX;
  if (capped) n = UINT32_MAX; /* positions are 32-bit; a longer line goes to libcsv */
#ifdef CPF_SSE2
  {
    const __m128i vs = _mm_set1_epi8(sep), vq = _mm_set1_epi8('"'), vcr = _mm_set1_epi8('\r'),
                  vlf = _mm_set1_epi8('\n');
    while (i + 16 <= n) {
      __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
      unsigned ms = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, vs));
      unsigned stop = (unsigned)_mm_movemask_epi8(_mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(x, vq), _mm_cmpeq_epi8(x, vcr)), _mm_cmpeq_epi8(x, vlf)));
      if (stop) ms &= (1u << __builtin_ctz(stop)) - 1; /* only the separators before the stop */
      while (ms && k < want) {
        seps[k++] = (uint32_t)(i + (size_t)__builtin_ctz(ms));
        ms &= ms - 1;
      }
      if (ms) k += bits16(ms);
      if (!stop) { i += 16; continue; }
      i += (size_t)__builtin_ctz(stop);
      if (p[i] != '"') goto stop_byte;
      if (!(i = quoted_field_end(p, i, n, sep))) return 0;
    }
  }
#endif
  for (; i < n; i++) {
    if (p[i] == sep) {
      if (k < want) seps[k] = (uint32_t)i;
      k++;
    } else if (p[i] == '"') {
      size_t after = quoted_field_end(p, i, n, sep);
      if (!after) return 0;
      i = after - 1;
    } else if (p[i] == '\r' || p[i] == '\n') {
      goto stop_byte;
    }
  }
  if (capped) return 0;
  *nseps = k; /* the last line, without a line break */
  *content = n;
  return n;
stop_byte:
  if (p[i] == '\n') {
    *nseps = k; *content = i;
    return i + 1;
  }
  if (p[i] == '\r' && (i + 1 == n || p[i + 1] == '\n')) {
    *nseps = k; *content = i; /* CRLF, or a CR ending the file: the record ends, as in libcsv */
    return i + 1 + (i + 1 < n);
  }
  return 0; /* a CR inside the line */
}

/* Hands the fields asked for (wanted[0..nwanted), ascending) of a scanned line with the header's
 * field count to on_field, a quoted one without its quotes. */
static void emit_plain_line(parse_state *st, const char *line, const uint32_t *seps, size_t nseps,
                            size_t content, const size_t *wanted, size_t nwanted) {
  size_t w;
  for (w = 0; w < nwanted && !st->err->code; w++) {
    size_t f = wanted[w];
    const char *fb = line + (f == 0 ? 0 : seps[f - 1] + 1);
    const char *fe = line + (f < nseps ? seps[f] : content);
    if (fb < fe && *fb == '"') { fb++; fe--; } /* in this path, only a quoted field starts so */
    st->field = f;
    on_field((void *)(uintptr_t)fb, (size_t)(fe - fb), st);
  }
  st->field = st->ncols;
  on_record('\n', st);
}

/* Where the quotes leave a parse, as parser_feed reads them: a field is quoted when its first
 * byte is '"' (a '"' further in is a character), "" inside it is one quote, and its closing
 * quote may be followed by blanks. quote_scan carries the state over s[0..len); a quoted field
 * is open while it is QUOTE_OPEN. A sep of 0 stands for any of the separators cpf detects (the
 * header is found before the separator is known). */
enum { QUOTE_FIELD_START, QUOTE_UNQUOTED, QUOTE_OPEN, QUOTE_MAYBE_CLOSED, QUOTE_CLOSED };

static int is_sep(char c, char sep) {
  return sep ? c == sep : (c == ';' || c == ',' || c == '\t' || c == '|');
}

static void quote_scan(const char *s, size_t len, char sep, int *state) {
  int q = *state;
  size_t i;
  for (i = 0; i < len; i++) {
    char c = s[i];
    if (q == QUOTE_OPEN) {
      const char *close = memchr(s + i, '"', len - i); /* the common case: long quoted text */
      if (!close) break;
      i = (size_t)(close - s);
      q = QUOTE_MAYBE_CLOSED;
    } else if (c == '\n' || c == '\r' || is_sep(c, sep)) {
      q = QUOTE_FIELD_START;
    } else if (q == QUOTE_FIELD_START) {
      q = c == '"' ? QUOTE_OPEN : QUOTE_UNQUOTED;
    } else if (q == QUOTE_MAYBE_CLOSED) {
      q = c == '"' ? QUOTE_OPEN : (c == ' ' || c == '\t') ? QUOTE_CLOSED : QUOTE_UNQUOTED;
    } else if (q == QUOTE_CLOSED && c != ' ' && c != '\t') {
      q = QUOTE_UNQUOTED; /* text after a closing quote: an error libcsv reports */
    }
  }
  *state = q;
}

/* Where the header record ends: after the CR, LF or CRLF that ends it outside quotes (empty
 * lines before it skipped, as libcsv does), the line break lying before `limit`; 0 when none
 * does. `n` bytes are readable, so a CRLF is seen whole. */
static size_t header_end(const char *b, size_t i, size_t limit, size_t n, char sep) {
  int q = QUOTE_FIELD_START;
  while (i < limit && (b[i] == '\r' || b[i] == '\n')) i++;
  for (; i < limit; i++) {
    if ((b[i] == '\n' || b[i] == '\r') && q != QUOTE_OPEN)
      return i + 1 + (b[i] == '\r' && i + 1 < n && b[i + 1] == '\n');
    quote_scan(b + i, 1, sep, &q);
  }
  return 0;
}

/* Where the header of src ends, read with separator sep (0: any candidate, before it is known):
 * header_end over the first HEADER_PREFIX bytes of the prefix. */
static size_t source_header_end(const cpf_source *src, char sep) {
  size_t limit = src->prefix_len < HEADER_PREFIX ? src->prefix_len : HEADER_PREFIX;
  return header_end(src->prefix, src->start, limit, src->prefix_len, sep);
}

/* The separator is the candidate seen most often in the header line, outside quotes. */
static char detect_separator(const char *p, size_t n) {
  static const char candidates[] = ";,\t|";
  size_t counts[4] = {0, 0, 0, 0}, i;
  int q = QUOTE_FIELD_START, k, best = -1;
  for (i = 0; i < n; i++) {
    char c = p[i];
    if (q != QUOTE_OPEN && (c == '\n' || c == '\r')) break;
    if (q != QUOTE_OPEN)
      for (k = 0; k < 4; k++)
        if (c == candidates[k]) counts[k]++;
    quote_scan(p + i, 1, 0, &q);
  }
  for (k = 0; k < 4; k++)
    if (counts[k] > 0 && (best < 0 || counts[k] > counts[best])) best = k;
  return best < 0 ? 0 : candidates[best];
}

static int source_fail(cpf_source *src) {
  source_close(src);
  return -1;
}

/* Opens the file and reads its first bytes only, where the header must be; a pipe or device
 * is then read whole (it cannot be read again). Skips the BOM, checks there is a header. */
int source_open(cpf_source *src, const char *path, cpf_error *err) {
  size_t n = strlen(path) + 1, cap = 0;
  struct stat st;
  int regular, whole; /* whole: the prefix is all of the file */
  memset(src, 0, sizeof *src);
  src->fd = -1;
  src->path = cpf_malloc(n);
  if (!src->path) { cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path); return -1; }
  memcpy(src->path, path, n);
  src->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (src->fd < 0) {
    cpf_error_set(err, CPF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return source_fail(src);
  }
  if (fstat(src->fd, &st) != 0) {
    cpf_error_set(err, CPF_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    return source_fail(src);
  }
  if (S_ISDIR(st.st_mode)) {
    cpf_error_set(err, CPF_ERR_IO, "%s: cannot read: is a directory", path);
    return source_fail(src);
  }
  /* one byte more than the limit: a CRLF ending the header at the limit is seen whole */
  regular = S_ISREG(st.st_mode);
  if (regular) {
    source_identity(&st, src);
    src->prefix_len = src->size < HEADER_PREFIX + 1 ? src->size : HEADER_PREFIX + 1;
    src->prefix = cpf_malloc(src->prefix_len ? src->prefix_len : 1);
    if (!src->prefix) { cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path); return source_fail(src); }
    if (read_at(src, src->prefix, src->prefix_len, 0, err) != 0) return source_fail(src);
    whole = src->prefix_len == src->size;
  } else {
    if (read_stream(src, &src->bytes, &src->size, &cap, HEADER_PREFIX + 1, &whole, err) != 0)
      return source_fail(src);
    src->prefix = src->bytes;
    src->prefix_len = src->size;
  }
  if (is_gzip(src->prefix, src->prefix_len)) {
    /* a regular file: its header's bytes inflated now, the rest by source_inflate on the thread
     * that loads it; a stream (read whole already): inflated whole now. Then it is a source in
     * memory. */
    char *bytes;
    size_t size;
    int complete;
    if (regular && lseek(src->fd, 0, SEEK_SET) != 0) {
      cpf_error_set(err, CPF_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
      return source_fail(src);
    }
    if (inflate_file(src->fd, path, regular ? NULL : src->bytes, regular ? 0 : src->size,
                     regular ? HEADER_PREFIX + 1 : SIZE_MAX, NULL, &bytes, &size, &complete, err) != 0)
      return source_fail(src);
    if (regular && complete && source_unchanged(src, err) != 0) { free(bytes); return source_fail(src); }
    if (src->prefix != src->bytes) free(src->prefix);
    free(src->bytes);
    src->bytes = src->prefix = bytes;
    src->size = src->prefix_len = size;
    src->gzip_pending = !complete;
    whole = complete;
    if (complete) regular = 0;
  } else {
    const char *foreign = foreign_file_kind(src->prefix, src->prefix_len);
    if (foreign) {
      cpf_error_set(err, CPF_ERR_DATA, "%s: %s", path, foreign);
      return source_fail(src);
    }
  }
  src->start = bom_length(src->prefix, src->prefix_len);
  if (whole && only_blank(src->prefix + src->start, src->prefix_len - src->start)) {
    cpf_error_set(err, CPF_ERR_DATA, "%s: empty file: no header line", path);
    return source_fail(src);
  }
  src->data_start = source_header_end(src, 0);
  if (src->data_start == 0) {
    if (!whole) {
      cpf_error_set(err, CPF_ERR_DATA, "%s:1: no header line in the first 1 MiB", path);
      return source_fail(src);
    }
    src->data_start = src->prefix_len; /* the whole file is a header without a line break */
  }
  if (!regular) {
    /* the header is there: now the rest of the stream, which cannot be read twice */
    if (!whole && read_stream(src, &src->bytes, &src->size, &cap, SIZE_MAX, &whole, err) != 0)
      return source_fail(src);
    src->prefix = src->bytes;
    src->prefix_len = src->size;
    close(src->fd);
    src->fd = -1;
  }
  src->is_open = 1;
  return 0;
}

int source_inflate(cpf_source *src, const cpf_load_options *opts, cpf_error *err) {
  char *bytes;
  size_t size;
  int complete;
  inflate_monitor monitor;
  if (!src->gzip_pending) return 0;
  monitor.fn = opts ? opts->monitor : NULL; /* load_async's: its job's figures and its cancel */
  monitor.ud = opts ? opts->monitor_ud : NULL;
  monitor.total = src->file_size;
  if (lseek(src->fd, 0, SEEK_SET) != 0) {
    cpf_error_set(err, CPF_ERR_IO, "%s: cannot read: %s", src->path, strerror(errno));
    return -1;
  }
  if (inflate_file(src->fd, src->path, NULL, 0, SIZE_MAX, &monitor, &bytes, &size, &complete, err) != 0) return -1;
  /* the change check is the compressed file's, at the end of this read */
  if (source_unchanged(src, err) != 0) { free(bytes); return -1; }
  free(src->bytes);
  src->bytes = src->prefix = bytes;
  src->size = src->prefix_len = size;
  src->gzip_pending = 0;
  close(src->fd);
  src->fd = -1;
  return 0;
}

static char source_separator(const cpf_source *src, char sep, cpf_error *err) {
  char found = sep ? sep : detect_separator(src->prefix + src->start, src->prefix_len - src->start);
  if (found == 0)
    cpf_error_set(err, CPF_ERR_DATA, "%s:1: cannot detect the separator: the header has no ';', ',', tab or '|' "
                  "(give one with opts.sep)", src->path);
  return found;
}

int loader_read_header(const cpf_source *src, char sep, char ***labels, size_t *count,
                       char *sep_found, cpf_error *err) {
  size_t pos, n = src->prefix_len;
  struct csv_parser p;
  parse_state st;
  if ((*sep_found = source_separator(src, sep, err)) == 0) return -1;
  memset(&st, 0, sizeof st);
  st.path = src->path;
  st.err = err;
  st.header = cpf_malloc(sizeof *st.header);
  st.header_cap = 1;
  if (!st.header) {
    cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", src->path);
    return -1;
  }
  if (parser_start(&p, *sep_found, src->path, err) != 0) {
    free(st.header);
    return -1;
  }
  for (pos = src->start; pos < n && st.record == 0 && !err->code; pos += 4096) {
    size_t len = n - pos < 4096 ? n - pos : 4096;
    /* errors past the header belong to the full load, which reports them with their row */
    if (parser_feed(&p, &st, *sep_found, src->prefix + pos, len) != 0 && st.record == 0)
      parser_error(&p, &st);
  }
  if (st.record == 0 && n < src->size) {
    /* libcsv saw the quotes differently from header_end: it is not over within the prefix */
    cpf_error_set(err, CPF_ERR_DATA, "%s:1: no header line in the first 1 MiB", src->path);
    csv_free(&p);
  } else if (st.record == 0) {
    parser_finish(&p, &st); /* a header without a line break */
  } else {
    csv_free(&p);
  }
  if (err->code) {
    loader_free_header(st.header, st.header_count);
    return -1;
  }
  *labels = st.header;
  *count = st.header_count;
  return 0;
}

void loader_free_header(char **labels, size_t count) {
  size_t i;
  if (!labels) return;
  for (i = 0; i < count; i++) free(labels[i]);
  free(labels);
}

/* Rows expected from the length of the first lines (p[0..sample) of the n bytes of data):
 * sizes the builders once, not by doubling. */
static size_t estimate_rows(const char *p, size_t sample, size_t n) {
  size_t lines = 0, i;
  if (sample > ((size_t)1 << 20)) sample = (size_t)1 << 20;
  for (i = 0; i < sample; i++) lines += p[i] == '\n';
  if (lines < 2) return 64;
  return (size_t)((double)n / ((double)sample / (double)lines) * 1.02) + 64;
}

/* ---- a chunk's view of the file ----
 * Bytes [off, off + len) of the file at `data`: the whole file for a source in memory, else a
 * buffer of WINDOW_BYTES refilled with pread. A line longer than the buffer does not grow it:
 * libcsv, which keeps its own state between calls, takes such a line piece by piece. */
#define WINDOW_BYTES ((size_t)4 << 20)
#define WINDOW_TAIL ((size_t)64 << 10) /* read past the chunk's end: enough for its last line */

typedef struct {
  const cpf_source *src;
  const char *data;
  size_t off, len;
  char *buf;
  size_t read_limit; /* where the chunk's last line is expected to end: reads stop near it */
} window;

static void window_init(window *w, const cpf_source *src, size_t read_limit) {
  memset(w, 0, sizeof *w);
  w->src = src;
  w->read_limit = read_limit;
  if (src->fd < 0) {
    w->data = src->bytes;
    w->len = src->size;
  }
}

/* Makes the view start at pos (< the file's size) and hold bytes beyond what it held, keeping
 * those it had from pos on; the caller never asks when the view is full from pos already. */
static int window_move(window *w, size_t pos, cpf_error *err) {
  const cpf_source *src = w->src;
  size_t keep = 0, end, want, stop;
  if (src->fd < 0) return 0; /* the whole file is in view */
  if (!w->buf && !(w->buf = cpf_malloc(WINDOW_BYTES))) {
    cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", src->path);
    return -1;
  }
  if (pos >= w->off && pos < w->off + w->len) {
    keep = w->off + w->len - pos;
    memmove(w->buf, w->buf + (pos - w->off), keep);
  }
  w->data = w->buf;
  w->off = pos;
  w->len = keep;
  end = pos + keep;
  want = WINDOW_BYTES - keep;
  stop = (end > w->read_limit ? end : w->read_limit) + WINDOW_TAIL;
  if (want > stop - end) want = stop - end;
  if (want > src->size - end) want = src->size - end;
  if (read_at(src, w->buf + keep, want, end, err) != 0) return -1;
  w->len += want;
  return 0;
}

/* ---- one chunk of whole records, parsed into its own column builders ---- */
typedef struct {
  pthread_mutex_t lock;
  size_t *done;      /* bytes parsed, per chunk */
  size_t nchunks;
  int stop;          /* set when a chunk fails or the load is cancelled */
} load_shared;

typedef struct {
  const cpf_source *src;
  const cpf_load_options *opts;
  size_t target, limit; /* where the chunk is meant to start and end (chunk 0: the data start) */
  size_t begin;      /* where it started: after the first '\n' at or after target */
  char sep;
  cpf_column *cols;
  size_t ncols;
  size_t records;    /* data records parsed */
  size_t index;
  int last;          /* the last chunk: it ends with the file */
  int open_quote;    /* a chunk other than the last ended inside a quoted field */
  int stopped;       /* stopped because another chunk failed: no error of its own */
  size_t kept;       /* records kept (records less the rejected ones) */
  pending_rejects rejects; /* on_error = "skip": the records set aside, in file order */
  int too_many;      /* more than max_rejects */
  load_shared *shared;
  cpf_error err;
} chunk_job;

/* Every PROGRESS_EVERY bytes: publish this chunk's position; every chunk reports the total to
 * the monitor, the first chunk, which runs on the calling thread, to the progress callback too.
 * Returns non-zero to stop. */
static int chunk_checkpoint(chunk_job *job, size_t pos, size_t records) {
  load_shared *sh = job->shared;
  size_t total = 0, k, rows;
  int stop;
  pthread_mutex_lock(&sh->lock);
  sh->done[job->index] = pos - job->begin;
  for (k = 0; k < sh->nchunks; k++) total += sh->done[k];
  stop = sh->stop;
  pthread_mutex_unlock(&sh->lock);
  if (stop) return 1;
  /* rows: this chunk's count scaled to the share of bytes read, the others' not being known */
  rows = pos > job->begin ? (size_t)((double)records * (double)total / (double)(pos - job->begin)) : 0;
  if (job->opts->monitor &&
      job->opts->monitor(job->opts->monitor_ud, job->src->start + total, job->src->size, rows)) {
    cpf_error_set(&job->err, CPF_ERR_CANCELLED, "%s: load cancelled", job->src->path);
    pthread_mutex_lock(&sh->lock);
    sh->stop = 1;
    pthread_mutex_unlock(&sh->lock);
    return 1;
  }
  if (job->index == 0 && job->opts->progress) {
    if (job->opts->progress(job->opts->progress_ud, job->src->start + total, job->src->size, rows,
                            &job->err)) {
      pthread_mutex_lock(&sh->lock);
      sh->stop = 1;
      pthread_mutex_unlock(&sh->lock);
      return 1;
    }
  }
  return 0;
}

/* A chunk other than the first starts after the first '\n' at or after its target, assumed to
 * lie outside quotes; loader_load checks the guess once every chunk is parsed. */
static int chunk_find_start(chunk_job *job, window *w) {
  size_t pos = job->target, size = job->src->size;
  while (pos < size) {
    const char *nl;
    if ((pos < w->off || pos >= w->off + w->len) && window_move(w, pos, &job->err) != 0) return -1;
    nl = memchr(w->data + (pos - w->off), '\n', w->off + w->len - pos);
    if (nl) {
      job->begin = w->off + (size_t)(nl - w->data) + 1;
      return 0;
    }
    pos = w->off + w->len;
  }
  job->begin = size;
  return 0;
}

/* Parses whole lines from job->begin until the line that holds byte job->limit has been read
 * (the last chunk: until the end of the file), so that chunk k ends exactly where chunk k + 1
 * starts: after the first '\n' at or after its target. */
static void chunk_parse(chunk_job *job) {
  const cpf_source *src = job->src;
  size_t pos, next_check, size = src->size;
  struct csv_parser p;
  parse_state st;
  window w;
  int quotes = QUOTE_FIELD_START; /* QUOTE_OPEN: libcsv holds an open quoted field */
  int mid_line = 0;  /* libcsv has been given the first part of a line longer than the view */
  int discard = 0;   /* the rest of a line longer than the view, after a rejected quote */
  int after_lf = 1;  /* pos follows a '\n' (or the chunk's start): where a chunk may end, since
                      * the next starts after a '\n' (a piece may end at a lone CR too) */
  int parser_live = 0;
  uint32_t seps[MAX_PLAIN_FIELDS];
  size_t *wanted = NULL, nwanted = 0, want = 0, f;
  int plain = !job->opts->libcsv_only;
  memset(&st, 0, sizeof st);
  st.path = src->path;
  st.cols = job->cols;
  st.ncols = job->ncols;
  st.err = &job->err;
  st.record = 1; /* the header is record 1 */
  st.skip = job->opts->skip_bad_records;
  st.max_rejects = job->opts->max_rejects;
  st.rejects = &job->rejects;
  window_init(&w, src, job->last ? size : job->limit);
  /* the fast path reads the separators up to the last column asked for */
  if (!(wanted = cpf_malloc((job->ncols ? job->ncols : 1) * sizeof *wanted)) ||
      (st.skip && !(st.grown = cpf_malloc((job->ncols ? job->ncols : 1) * sizeof *st.grown))) ||
      (st.skip && !(st.rescaled = cpf_malloc((job->ncols ? job->ncols : 1) * sizeof *st.rescaled)))) {
    cpf_error_set(&job->err, CPF_ERR_MEMORY, "%s: out of memory", src->path);
    goto fail;
  }
  for (f = 0; f < job->ncols; f++)
    if (!job->cols[f].skipped) wanted[nwanted++] = f;
  want = nwanted ? wanted[nwanted - 1] + 1 : 0;
  if (want > MAX_PLAIN_FIELDS) plain = 0;
  if (job->index == 0) job->begin = job->target;
  else if (chunk_find_start(job, &w) != 0) goto fail;
  if (parser_start(&p, job->sep, src->path, &job->err) != 0) goto fail;
  parser_live = 1;
  next_check = job->begin + PROGRESS_EVERY;
  for (pos = job->begin; pos < size && !job->err.code;) {
    const char *line;
    size_t len = 0, avail, nseps, content;
    int at_end;
    if (!mid_line && !discard && after_lf && !job->last && pos > job->limit) break;
    if ((pos < w.off || pos >= w.off + w.len) && window_move(&w, pos, &job->err) != 0) break;
    line = w.data + (pos - w.off);
    avail = w.off + w.len - pos;
    at_end = w.off + w.len == size;
    if (discard) {
      const char *nl = memchr(line, '\n', avail);
      pos += nl ? (size_t)(nl - line) + 1 : avail;
      after_lf = nl != NULL;
      discard = nl == NULL;
      continue;
    }
    if (!mid_line && quotes != QUOTE_OPEN && st.field == 0) st.record_start = pos;
    if (!mid_line && quotes != QUOTE_OPEN && plain) {
      len = scan_plain_line(line, line + avail, job->sep, want, seps, &nseps, &content);
      if (len == avail && !at_end && line[len - 1] != '\n') {
        /* the line goes on past the view: see more of it, or let libcsv take it in pieces */
        if (!(w.off == pos && w.len == WINDOW_BYTES)) {
          if (window_move(&w, pos, &job->err) != 0) break;
          continue;
        }
        len = 0;
      }
    }
    if (len > 0 && nseps == 0 && content == 0) {
      /* an empty line: no record */
    } else if (len > 0 && nseps + 1 == job->ncols) {
      st.line_end = pos + content;
      emit_plain_line(&st, line, seps, nseps, content, wanted, nwanted);
    } else { /* libcsv reads it, and tells what is wrong with a line of too few or many fields */
      /* up to the line's end: LF, CRLF, or a lone CR, which libcsv also takes for a record's
       * end (a piece per record there too: a reject's place is its own) */
      const char *nl = memchr(line, '\n', avail);
      const char *cr = memchr(line, '\r', nl ? (size_t)(nl - line) : avail);
      if (cr && cr + 1 != nl) nl = cr;
      len = nl ? (size_t)(nl - line) + 1 : avail;
      mid_line = nl == NULL && !at_end;
      st.line_end = pos + len - (nl != NULL) - (nl != NULL && *nl == '\n' && len > 1 && line[len - 2] == '\r');
      if (parser_feed(&p, &st, job->sep, line, len) != 0 && !job->err.code) {
        parser_error(&p, &st);
        if (st.skip && !job->err.code) {
          /* a quote libcsv refuses: the record ends at the next line break (CR, LF or CRLF,
           * as libcsv ends records), the records after it in this piece are read again, and
           * libcsv starts afresh */
          size_t resume = st.stopped_at;
          while (resume < len && line[resume] != '\n' && line[resume] != '\r') resume++;
          st.line_end = pos + resume; /* the record's text, its line break left out */
          if (resume < len) {
            resume += 1 + (line[resume] == '\r' && resume + 1 < len && line[resume + 1] == '\n');
            discard = 0;
          } else {
            discard = mid_line; /* the rest of a line longer than the view */
          }
          end_record(&st);
          csv_free(&p);
          parser_live = 0;
          if (parser_start(&p, job->sep, src->path, &job->err) != 0) break;
          parser_live = 1;
          quotes = QUOTE_FIELD_START;
          mid_line = 0;
          pos += resume;
          after_lf = resume > 0 && line[resume - 1] == '\n';
          continue;
        }
      }
      quote_scan(line, len, job->sep, &quotes);
    }
    pos += len;
    after_lf = len > 0 && line[len - 1] == '\n';
    if (pos >= next_check && !job->err.code) {
      next_check += PROGRESS_EVERY;
      if (chunk_checkpoint(job, pos, st.record - 1)) {
        job->stopped = !job->err.code; /* else the progress callback's own error */
        break;
      }
    }
  }
  free(w.buf);
  w.buf = NULL;
  if (!parser_live) {
    /* libcsv could not start afresh: the error says so */
  } else if (!job->err.code && !job->last && quotes == QUOTE_OPEN) {
    /* the next chunk started inside this quoted field: the guess was wrong */
    job->open_quote = 1;
    csv_free(&p);
  } else if (job->err.code || job->stopped) {
    csv_free(&p);
  } else {
    st.line_end = size;
    parser_finish(&p, &st);
  }
  job->records = st.record - 1;
  job->kept = st.kept;
  job->too_many = st.too_many;
fail:
  free(w.buf);
  free(wanted);
  free(st.grown);
  free(st.rescaled);
  if (job->err.code || job->open_quote) {
    pthread_mutex_lock(&job->shared->lock);
    job->shared->stop = 1;
    pthread_mutex_unlock(&job->shared->lock);
  }
}

static void *chunk_thread(void *arg) {
  chunk_parse(arg);
  return NULL;
}

/* Merging: one thread takes columns first, first + nchunks, ... */
typedef struct {
  cpf_column *cols;
  chunk_job *jobs;
  size_t nchunks, ncols, first;
  const char *path;
  cpf_error err;
} merge_job;

static void merge_columns(merge_job *m) {
  size_t j, k;
  for (j = m->first; j < m->ncols && !m->err.code; j += m->nchunks) {
    char msg[300];
    if (m->cols[j].skipped) continue;
    for (k = 1; k < m->nchunks; k++)
      if (column_absorb(&m->cols[j], &m->jobs[k].cols[j]) != 0) {
        cpf_error_set(&m->err, CPF_ERR_MEMORY, "%s: out of memory", m->path);
        break;
      }
    if (!m->err.code) {
      int rc = column_finish(&m->cols[j], msg, sizeof msg);
      if (rc != 0) cpf_error_set(&m->err, rc == -2 ? CPF_ERR_MEMORY : CPF_ERR_DATA, "%s: %s", m->path, msg);
    }
  }
}

static void *merge_thread(void *arg) {
  merge_columns(arg);
  return NULL;
}

size_t loader_default_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > 64 ? 64 : (size_t)n;
}

static void free_columns(cpf_column *cols, size_t ncols) {
  size_t j;
  if (!cols) return;
  for (j = 0; j < ncols; j++) column_free(&cols[j]);
  free(cols);
}

/* ---- the records set aside, as the dataset lists them ---- */

/* bytes [off, off + n) of the source */
static int source_bytes(const cpf_source *src, char *buf, size_t n, size_t off, cpf_error *err) {
  if (src->fd < 0) {
    memcpy(buf, src->bytes + off, n);
    return 0;
  }
  return read_at(src, buf, n, off, err);
}

/* Moves *line on by the line breaks in [*from, to), read a block at a time, as an editor counts
 * them: LF, CRLF and a lone CR each end a line (*cr: the last byte seen was a CR, across
 * blocks and calls); *from becomes to. */
static int count_lines(const cpf_source *src, char *buf, size_t *from, size_t to, size_t *line,
                       int *cr, cpf_error *err) {
  while (*from < to) {
    size_t n = to - *from < WINDOW_BYTES ? to - *from : WINDOW_BYTES, i;
    const char *p = src->fd < 0 ? src->bytes + *from : buf;
    if (src->fd >= 0 && read_at(src, buf, n, *from, err) != 0) return -1;
    for (i = 0; i < n; i++) {
      if (p[i] == '\n') { if (!*cr) (*line)++; *cr = 0; }
      else if (p[i] == '\r') { (*line)++; *cr = 1; }
      else *cr = 0;
    }
    *from += n;
  }
  return 0;
}

/* The chunks' rejects, in file order, into the dataset's: the record numbers of the whole file
 * (the header being record 1), the physical line each starts on (one pass over the file up to
 * the last of them: rejects are rare), its text (REJECT_TEXT_MAX bytes at most). */
static int collect_rejects(cpf_rejects *out, const cpf_source *src, const chunk_job *jobs,
                           size_t nchunks, const cpf_column_spec *specs, size_t ncols, cpf_error *err) {
  size_t k, i, records = 1, from = 0, line = 1;
  char *buf = NULL, text[REJECT_TEXT_MAX];
  int rc = 0, cr = 0;
  if (src->fd >= 0 && !(buf = cpf_malloc(WINDOW_BYTES))) goto oom;
  for (k = 0; k < nchunks && rc == 0; k++) {
    for (i = 0; i < jobs[k].rejects.count; i++) {
      const pending_reject *r = &jobs[k].rejects.items[i];
      size_t n = r->end - r->start < REJECT_TEXT_MAX ? r->end - r->start : REJECT_TEXT_MAX;
      const char *name = r->column >= 1 && r->column <= ncols ? specs[r->column - 1].name : "";
      if (count_lines(src, buf, &from, r->start, &line, &cr, err) != 0 ||
          source_bytes(src, text, n, r->start, err) != 0) { rc = -1; break; }
      if (rejects_add(out, line, records + r->record, r->column, r->end - r->start, r->kind, name,
                      r->message, text, n, "") != 0) goto oom;
    }
    records += jobs[k].records;
  }
  free(buf);
  return rc;
oom:
  free(buf);
  cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", src->path);
  return -1;
}

/* More rejects than max_rejects (one chunk read the file): the load's error, with the first. */
static void too_many_rejects(const cpf_source *src, const cpf_load_options *opts, const chunk_job *job,
                             cpf_error *err) {
  const pending_reject *first = &job->rejects.items[0];
  size_t from = 0, line = 1;
  int cr = 0;
  char *buf = src->fd >= 0 ? cpf_malloc(WINDOW_BYTES) : NULL;
  if (src->fd >= 0 && !buf) {
    cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", src->path);
    return;
  }
  if (count_lines(src, buf, &from, first->start, &line, &cr, err) == 0)
    cpf_error_at(err, CPF_ERR_DATA, line, first->column,
                 "%s: more than %zu malformed records (max_rejects), the first on line %zu: %s",
                 src->path, opts->max_rejects, line, first->message);
  free(buf);
}

/* ---- the text of the string columns ---- */

/* The record of row `row` (0-based, of the rows kept): the header and the records set aside
 * before it counted back in. */
static size_t record_of_row(const cpf_rejects *rejects, size_t row) {
  size_t record = row + 2, offset = 0, n;
  for (n = 0; n < rejects->count; n++) {
    snap_reject e;
    const char *name, *message, *text, *file;
    offset = rejects_entry(rejects, offset, &e, &name, &message, &text, &file);
    if (e.record <= record) record++;
  }
  return record;
}

/* The string columns' text, in a UTF-8 file, checked to be UTF-8 (another encoding was made
 * UTF-8 by column_finish, before the types were inferred). A
 * value that is not fails the load at its first row, with what to do: a file that is not UTF-8
 * is refused whole (never loaded as bytes no condition can match), on_error = "skip" or not. */
static int columns_text(cpf_dataset *ds, size_t ncols, const cpf_load_options *opts, const char *path,
                        cpf_error *err) {
  size_t j, first_row = SIZE_MAX, first_col = 0, len, i, k = 0;
  uint32_t bad_code = 0, c;
  char shown[60 * 4 + 1];
  const char *v;
  for (j = 0; j < ncols; j++) {
    cpf_column *col = &ds->cols[j];
    unsigned char *bad = NULL;
    size_t r;
    /* another encoding: made UTF-8 already, by column_finish */
    if (col->skipped || col->type != CPF_TYPE_STRING || opts->encoding != CPF_ENCODING_UTF8) continue;
    for (c = 0; c < col->dict.count; c++) {
      v = dictionary_value(&col->dict, c, &len);
      if (utf8_invalid_at(v, len) == len) continue;
      if (!bad && !(bad = cpf_calloc(col->dict.count, 1))) {
        cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path);
        return -1;
      }
      bad[c] = 1;
    }
    for (r = 0; bad && r < ds->rows && r < first_row; r++)
      if (column_is_valid(col, r) && bad[column_code_at(col, r)]) {
        first_row = r;
        first_col = j;
        bad_code = column_code_at(col, r);
      }
    free(bad);
  }
  if (first_row == SIZE_MAX) return 0;
  /* the value as it is, a byte that is not UTF-8 as \xHH */
  v = dictionary_value(&ds->cols[first_col].dict, bad_code, &len);
  for (i = 0; i < len && i < 60;) {
    size_t ok = utf8_invalid_at(v + i, len - i < 60 - i ? len - i : 60 - i);
    memcpy(shown + k, v + i, ok);
    k += ok;
    i += ok;
    if (i < len && i < 60) k += (size_t)snprintf(shown + k, 5, "\\x%02X", (unsigned char)v[i++]);
  }
  shown[k] = '\0';
  cpf_error_at(err, CPF_ERR_DATA, record_of_row(&ds->rejects, first_row), first_col + 1,
               "%s:%zu:%zu: %s: not UTF-8 text: \"%s%s\"; a French file that is not UTF-8 is most often "
               "Windows-1252: load it with --encoding cp1252 (encoding = \"cp1252\")", path,
               record_of_row(&ds->rejects, first_row), first_col + 1, ds->cols[first_col].name, shown,
               len > 60 ? "..." : "");
  return -1;
}

cpf_dataset *loader_load(const cpf_source *src, const cpf_load_options *opts,
                         const cpf_column_spec *specs, size_t ncols, cpf_error *err) {
  const char *path = src->path;
  size_t begin, nchunks, k, j, expected, rows = 0, rejected = 0;
  char sep, mark, point;
  chunk_job *jobs = NULL;
  pthread_t *threads = NULL;
  size_t *done = NULL, started = 0;
  load_shared shared;
  cpf_dataset *ds = NULL;
  int failed = 0, open_quote = 0;
  if ((sep = source_separator(src, opts->sep, err)) == 0) return NULL;
  /* a decimal comma is only possible when the comma is not the separator */
  mark = opts->decimal_mark ? opts->decimal_mark : (sep == ',' ? '.' : 0);
  /* a thousands separator given as '.' or ',' leaves the other mark for decimals */
  if (!mark && (opts->thousands == '.' || opts->thousands == ',')) mark = opts->thousands == '.' ? ',' : '.';
  /* on the calling thread, or read by it before (load_async): localeconv is not thread-safe */
  point = opts->locale_point ? opts->locale_point : numparse_locale_point();
  /* the header's end again, now that the separator tells where its fields start */
  begin = source_header_end(src, sep);
  if (begin == 0) begin = src->data_start;
  /* By default chunks of at least 4 MB: below that, threads cost more than they save. A thread
   * count given explicitly is honoured down to 64 kB chunks (the specs split small files). */
  {
    size_t min_chunk = opts->min_chunk ? opts->min_chunk : opts->threads ? (64u << 10) : (4u << 20);
    nchunks = opts->threads ? opts->threads : loader_default_threads();
    if (nchunks > 1 && (src->size - begin) / nchunks < min_chunk)
      nchunks = (src->size - begin) / min_chunk + 1;
  }
  expected = estimate_rows(src->prefix + begin, src->prefix_len - begin, src->size - begin) / nchunks
           + 64;
  jobs = cpf_calloc(nchunks, sizeof *jobs);
  threads = cpf_calloc(nchunks, sizeof *threads);
  done = cpf_calloc(nchunks, sizeof *done);
  if (!jobs || !threads || !done) { cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path); goto out; }
  memset(&shared, 0, sizeof shared);
  pthread_mutex_init(&shared.lock, NULL);
  shared.done = done;
  shared.nchunks = nchunks;
  /* Chunk boundaries are guessed, not found by counting quotes from the start (a serial pass
   * over the whole file): chunk k starts after the first '\n' at or after its target, as if
   * that '\n' were outside quotes. Each chunk then parses up to where the next one starts. */
  for (k = 0; k < nchunks; k++) {
    chunk_job *job = &jobs[k];
    job->src = src;
    job->opts = opts;
    job->sep = sep;
    job->ncols = ncols;
    job->index = k;
    job->shared = &shared;
    job->last = k + 1 == nchunks;
    job->target = begin + (src->size - begin) / nchunks * k;
    job->limit = job->last ? src->size : begin + (src->size - begin) / nchunks * (k + 1);
    job->cols = cpf_calloc(ncols ? ncols : 1, sizeof *job->cols);
    if (!job->cols) { cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path); goto out_threads; }
    for (j = 0; j < ncols; j++)
      if (specs[j].skip) {
        job->cols[j].skipped = 1;
      } else if (column_init(&job->cols[j], specs[j].name, specs[j].label, specs[j].type, mark, expected) != 0) {
        cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path);
        goto out_threads;
      } else {
        job->cols[j].locale_point = point;
        job->cols[j].thousands = opts->thousands;
        job->cols[j].encoding = (int)opts->encoding;
      }
  }
  for (k = 1; k < nchunks; k++, started++)
    if (pthread_create(&threads[k], NULL, chunk_thread, &jobs[k]) != 0) break;
  chunk_parse(&jobs[0]);
  for (k = 1; k <= started; k++) pthread_join(threads[k], NULL);
  for (k = started + 1; k < nchunks; k++) chunk_parse(&jobs[k]); /* no thread could start */
  for (k = 0; k < nchunks; k++) {
    rows += jobs[k].kept;
    rejected += jobs[k].rejects.count;
    open_quote |= jobs[k].open_quote;
    if (jobs[k].err.code || jobs[k].stopped) failed = 1;
    /* a data error is located again by a serial read (below); any other error (I/O, memory, a
     * changed file, the progress callback) is the load's answer as it is */
    if (jobs[k].err.code && jobs[k].err.code != CPF_ERR_DATA && !err->code) *err = jobs[k].err;
  }
  /* a file that changed is that, whatever its new bytes made the chunks say */
  if (!err->code) source_unchanged(src, err);
  if (!err->code && failed && nchunks == 1) {
    if (jobs[0].too_many) too_many_rejects(src, opts, &jobs[0], err);
    else *err = jobs[0].err;
  }
  /* each chunk kept under max_rejects, not all of them: the serial read finds the first ones */
  if (!err->code && opts->skip_bad_records && rejected > opts->max_rejects) failed = 1;
  if (!err->code && (failed || open_quote)) {
    /* Chunk 0 starts right after the header, outside quotes. A chunk that started outside
     * quotes and ended outside quotes proves the next one started outside quotes too; so if
     * every chunk but the last ended outside quotes, every guess was right. Otherwise (a
     * quoted field with line breaks across a boundary), or on a data error, whose row must be
     * counted from the start of the file: one parser reads the whole file again, and reports
     * what it finds. Both are rare; a second, serial read is acceptable. */
    cpf_load_options serial = *opts;
    serial.threads = 1;
    for (k = 0; k < nchunks; k++) free_columns(jobs[k].cols, ncols), jobs[k].cols = NULL;
    ds = loader_load(src, &serial, specs, ncols, err);
    goto out_threads;
  }
  if (err->code) goto out_threads;
  /* one dataset: chunk 0's builders take the other chunks' rows, in file order */
  ds = cpf_calloc(1, sizeof *ds);
  if (!ds) { cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path); goto out_threads; }
  ds->cols = jobs[0].cols;
  ds->ncols = ncols;
  jobs[0].cols = NULL;
  {
    /* columns are independent: merge and finish them on the same threads, column j on thread
     * j mod nchunks */
    merge_job *merges = cpf_calloc(nchunks, sizeof *merges);
    size_t merge_started = 0;
    if (!merges) { cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path); goto out_threads; }
    for (k = 0; k < nchunks; k++) {
      merges[k].cols = ds->cols;
      merges[k].jobs = jobs;
      merges[k].nchunks = nchunks;
      merges[k].ncols = ncols;
      merges[k].first = k;
      merges[k].path = path;
    }
    for (k = 1; k < nchunks && k < ncols; k++, merge_started++)
      if (pthread_create(&threads[k], NULL, merge_thread, &merges[k]) != 0) break;
    merge_columns(&merges[0]);
    for (k = 1; k <= merge_started; k++) pthread_join(threads[k], NULL);
    for (k = merge_started + 1; k < nchunks && k < ncols; k++) merge_columns(&merges[k]);
    for (k = 0; k < nchunks && !err->code; k++)
      if (merges[k].err.code) *err = merges[k].err;
    free(merges);
  }
  ds->rows = rows;
  if (!err->code && rejected > 0)
    collect_rejects(&ds->rejects, src, jobs, nchunks, specs, ncols, err);
  if (!err->code) columns_text(ds, ncols, opts, path, err);
  { /* keep the columns asked for, in file order */
    size_t kept = 0;
    for (j = 0; j < ncols; j++)
      if (!ds->cols[j].skipped) ds->cols[kept++] = ds->cols[j];
    ds->ncols = kept;
  }
  if (!err->code && opts->monitor && opts->monitor(opts->monitor_ud, src->size, src->size, ds->rows))
    cpf_error_set(err, CPF_ERR_CANCELLED, "%s: load cancelled", path);
  if (!err->code && opts->progress) /* a cancel here sets err too */
    opts->progress(opts->progress_ud, src->size, src->size, ds->rows, err);
out_threads:
  /* any failure, a merge table that could not be allocated included, returns no dataset: never
   * a partial one with the error set */
  if (err->code && ds) { dataset_free(ds); ds = NULL; }
  pthread_mutex_destroy(&shared.lock);
  for (k = 0; k < nchunks; k++) {
    free(jobs[k].rejects.items);
    if (!jobs[k].cols) continue;
    /* absorbed columns are already freed (zeroed): column_free is idempotent on them */
    free_columns(jobs[k].cols, ncols);
  }
out:
  free(jobs);
  free(threads);
  free(done);
  return ds;
}

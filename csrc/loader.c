/* loader.c — reads a delimited file through libcsv straight into column builders.
 * libcsv calls back per field; the callbacks only append to C arrays and record the first
 * error (they cannot raise), and the parse stops at the next block boundary. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csv.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "cpf.h"

#define PROGRESS_EVERY (16u << 20)

/* ---- the file's bytes: mapped when possible, read otherwise (pipes, /dev/stdin) ---- */
static int file_open_bytes(const char *path, cpf_source *fb, cpf_error *err) {
  struct stat st;
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    cpf_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    cpf_error_set(err, "%s: cannot read: is a directory", path);
    close(fd);
    return -1;
  }
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      fb->bytes = p;
      fb->size = (size_t)st.st_size;
      fb->mapped = 1;
      close(fd);
      return 0;
    }
  }
  { /* not mappable: read it all */
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
      ssize_t n;
      if (!buf) { cpf_error_set(err, "%s: out of memory", path); close(fd); return -1; }
      if (len == cap) {
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) { free(buf); buf = NULL; continue; }
        buf = bigger;
        cap *= 2;
      }
      n = read(fd, buf + len, cap - len);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        cpf_error_set(err, "%s: cannot read: %s", path, strerror(errno));
        free(buf);
        close(fd);
        return -1;
      }
      if (n == 0) break;
      len += (size_t)n;
    }
    close(fd);
    fb->bytes = buf;
    fb->size = len;
  }
  return 0;
}

void source_close(cpf_source *src) {
  if (src->bytes) {
    if (src->mapped) munmap((void *)src->bytes, src->size);
    else free((void *)src->bytes);
  }
  free(src->path);
  memset(src, 0, sizeof *src);
}

static size_t bom_length(const cpf_source *src) {
  return src->size >= 3 && memcmp(src->bytes, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

static int only_blank(const char *p, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (p[i] != '\r' && p[i] != '\n' && p[i] != ' ' && p[i] != '\t') return 0;
  return 1;
}

/* The separator is the candidate seen most often in the header line, outside quotes. */
static char detect_separator(const char *p, size_t n) {
  static const char candidates[] = ";,\t|";
  size_t counts[4] = {0, 0, 0, 0}, i;
  int quoted = 0, k, best = -1;
  for (i = 0; i < n; i++) {
    char c = p[i];
    if (c == '"') quoted = !quoted;
    else if (!quoted && (c == '\n' || c == '\r')) break;
    else if (!quoted)
      for (k = 0; k < 4; k++)
        if (c == candidates[k]) counts[k]++;
  }
  for (k = 0; k < 4; k++)
    if (counts[k] > 0 && (best < 0 || counts[k] > counts[best])) best = k;
  return best < 0 ? 0 : candidates[best];
}

/* ---- parsing ---- */
typedef struct {
  const char *path;
  cpf_column *cols;
  size_t ncols;
  size_t field;      /* index of the next field in the current record */
  size_t record;     /* records completed, the header included */
  char **header;     /* when only reading the header */
  size_t header_count, header_cap;
  cpf_error *err;
} parse_state;

static void header_field(parse_state *st, const char *s, size_t len) {
  char *copy;
  if (st->header_count == st->header_cap) {
    size_t cap = st->header_cap ? st->header_cap * 2 : 64;
    char **h = realloc(st->header, cap * sizeof *h);
    if (!h) { cpf_error_set(st->err, "%s: out of memory", st->path); return; }
    st->header = h;
    st->header_cap = cap;
  }
  copy = malloc(len + 1);
  if (!copy) { cpf_error_set(st->err, "%s: out of memory", st->path); return; }
  memcpy(copy, s, len);
  copy[len] = '\0';
  st->header[st->header_count++] = copy;
}

static void on_field(void *s, size_t len, void *data) {
  parse_state *st = data;
  char msg[300];
  if (st->err->failed) return;
  if (st->record == 0) {
    if (st->header) header_field(st, s, len);
  } else if (st->header) {
    return; /* reading the header only: the rest of the block is not ours */
  } else if (st->field >= st->ncols) {
    cpf_error_set(st->err, "%s:%zu:%zu: too many fields (the header has %zu)", st->path,
                  st->record + 1, st->field + 1, st->ncols);
  } else if (st->cols[st->field].skipped) {
    /* not asked for: passed over */
  } else if (column_append(&st->cols[st->field], s, len, msg, sizeof msg) != 0) {
    cpf_error_set(st->err, "%s:%zu:%zu: %s: %s", st->path, st->record + 1, st->field + 1,
                  st->cols[st->field].name, msg);
  }
  st->field++;
}

static void on_record(int c, void *data) {
  parse_state *st = data;
  (void)c;
  if (st->err->failed || (st->header && st->record > 0)) return;
  if (st->record == 0 && st->header == NULL && st->field != st->ncols) {
    cpf_error_set(st->err, "%s:1: the header has %zu fields, %zu were expected", st->path,
                  st->field, st->ncols);
  } else if (st->record > 0 && st->field < st->ncols) {
    cpf_error_set(st->err, "%s:%zu: too few fields: %zu (the header has %zu)", st->path,
                  st->record + 1, st->field, st->ncols);
  }
  st->record++;
  st->field = 0;
}

static int parser_start(struct csv_parser *p, char sep, const char *path, cpf_error *err) {
  /* strict: a stray quote is an error, not a guess; STRICT_FINI: an unclosed quote at the end
   * of the file too. Fields are used with their length, so no NUL is appended. */
  if (csv_init(p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
    cpf_error_set(err, "%s: out of memory", path);
    return -1;
  }
  csv_set_delim(p, (unsigned char)sep);
  return 0;
}

static void parser_error(struct csv_parser *p, parse_state *st) {
  if (csv_error(p) == CSV_EPARSE)
    cpf_error_set(st->err, "%s:%zu:%zu: malformed quoted field (a '\"' inside a field that is not "
                  "quoted, or text after a closing quote)", st->path, st->record + 1, st->field + 1);
  else
    cpf_error_set(st->err, "%s: %s", st->path, csv_strerror(csv_error(p)));
}

static int parser_finish(struct csv_parser *p, parse_state *st) {
  if (!st->err->failed && csv_fini(p, on_field, on_record, st) != 0 && !st->err->failed) {
    if (csv_error(p) == CSV_EPARSE)
      cpf_error_set(st->err, "%s:%zu:%zu: unterminated quoted field: the file ends inside quotes",
                    st->path, st->record + 1, st->field + 1);
    else
      parser_error(p, st);
  }
  csv_free(p);
  return st->err->failed ? -1 : 0;
}


/* ---- the quote-free fast path ----
 * Most lines of the export hold no '"'. Such a line is split here, straight from the mapping,
 * with libcsv's field semantics: spaces and tabs (unless the tab is the separator) are trimmed
 * around unquoted fields, a blank line is no record. A line with a quote or a stray CR goes to
 * libcsv, the parser of record, and so do the following lines while a quoted field stays open
 * (an odd number of quotes since the record began). libcsv is only ever fed whole lines, so a
 * record it finishes ends where the fast path takes over again. */

static int is_blank_char(char c, char sep) {
  return (c == ' ' || c == '\t') && c != sep;
}

/* One pass over a line: the positions of its separators, and where its content ends. With SSE2
 * (every x86-64) 16 bytes are compared at once with the separator, '"', CR and LF, and the
 * separators are read off a bit mask; elsewhere a byte loop does the same.
 * Returns the bytes the line takes (its line break included), or 0 when the line has a quote or
 * a CR that is not part of its ending, or too many fields: libcsv must read it. */
#define MAX_PLAIN_FIELDS 1024

static size_t scan_plain_line(const char *p, const char *end, char sep, uint32_t *seps,
                              size_t *nseps, size_t *content) {
  size_t i = 0, n = (size_t)(end - p), k = 0;
  if (n > UINT32_MAX) n = UINT32_MAX; /* positions are 32-bit; such a line goes to libcsv */
#ifdef __SSE2__
  {
    const __m128i vs = _mm_set1_epi8(sep), vq = _mm_set1_epi8('"'), vcr = _mm_set1_epi8('\r'),
                  vlf = _mm_set1_epi8('\n');
    for (; i + 16 <= n; i += 16) {
      __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
      unsigned ms = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, vs));
      unsigned stop = (unsigned)_mm_movemask_epi8(_mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(x, vq), _mm_cmpeq_epi8(x, vcr)), _mm_cmpeq_epi8(x, vlf)));
      if (stop) ms &= (1u << __builtin_ctz(stop)) - 1; /* only the separators before the stop */
      while (ms) {
        if (k == MAX_PLAIN_FIELDS) return 0;
        seps[k++] = (uint32_t)(i + (size_t)__builtin_ctz(ms));
        ms &= ms - 1;
      }
      if (stop) { i += (size_t)__builtin_ctz(stop); goto stop_byte; }
    }
  }
#endif
  for (; i < n; i++) {
    if (p[i] == sep) {
      if (k == MAX_PLAIN_FIELDS) return 0;
      seps[k++] = (uint32_t)i;
    } else if (p[i] == '"' || p[i] == '\r' || p[i] == '\n') {
      goto stop_byte;
    }
  }
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
  return 0; /* a quote, or a CR inside the line */
}

/* Hands the fields of a scanned line to on_field, trimmed of spaces and tabs like libcsv's
 * unquoted fields; a blank line is no record. */
static void emit_plain_line(parse_state *st, const char *line, const uint32_t *seps, size_t nseps,
                            size_t content, char sep) {
  size_t k;
  if (nseps == 0) {
    size_t i = 0;
    while (i < content && is_blank_char(line[i], sep)) i++;
    if (i == content) return;
  }
  for (k = 0; k <= nseps; k++) {
    const char *fb = line + (k == 0 ? 0 : seps[k - 1] + 1);
    const char *fe = line + (k < nseps ? seps[k] : content);
    if (st->field < st->ncols && st->cols[st->field].skipped && !st->err->failed) {
      st->field++; /* not asked for: no need to trim it */
      continue;
    }
    while (fb < fe && is_blank_char(*fb, sep)) fb++;
    while (fe > fb && is_blank_char(fe[-1], sep)) fe--;
    on_field((void *)(uintptr_t)fb, (size_t)(fe - fb), st);
  }
  on_record('\n', st);
}

static size_t count_quotes(const char *s, size_t len) {
  size_t n = 0;
  const char *q;
  while ((q = memchr(s, '"', len)) != NULL) {
    n++;
    len -= (size_t)(q - s) + 1;
    s = q + 1;
  }
  return n;
}

/* Reads or maps the file once, skips the BOM, checks it is not empty. */
int source_open(cpf_source *src, const char *path, cpf_error *err) {
  size_t n = strlen(path) + 1;
  memset(src, 0, sizeof *src);
  src->path = malloc(n);
  if (!src->path) { cpf_error_set(err, "%s: out of memory", path); return -1; }
  memcpy(src->path, path, n);
  if (file_open_bytes(path, src, err) != 0) { source_close(src); return -1; }
  src->start = bom_length(src);
  if (only_blank(src->bytes + src->start, src->size - src->start)) {
    cpf_error_set(err, "%s: empty file: no header line", path);
    source_close(src);
    return -1;
  }
  return 0;
}

static char source_separator(const cpf_source *src, char sep, cpf_error *err) {
  char found = sep ? sep : detect_separator(src->bytes + src->start, src->size - src->start);
  if (found == 0)
    cpf_error_set(err, "%s:1: cannot detect the separator: the header has no ';', ',', tab or '|' "
                  "(give one with opts.sep)", src->path);
  return found;
}

int loader_read_header(const cpf_source *src, char sep, char ***labels, size_t *count,
                       char *sep_found, cpf_error *err) {
  size_t pos;
  struct csv_parser p;
  parse_state st;
  if ((*sep_found = source_separator(src, sep, err)) == 0) return -1;
  memset(&st, 0, sizeof st);
  st.path = src->path;
  st.err = err;
  st.header = malloc(sizeof *st.header);
  st.header_cap = 1;
  if (!st.header || parser_start(&p, *sep_found, src->path, err) != 0) {
    free(st.header);
    return -1;
  }
  for (pos = src->start; pos < src->size && st.record == 0 && !err->failed; pos += 4096) {
    size_t n = src->size - pos < 4096 ? src->size - pos : 4096;
    /* errors past the header belong to the full load, which reports them with their row */
    if (csv_parse(&p, src->bytes + pos, n, on_field, on_record, &st) != n && st.record == 0)
      parser_error(&p, &st);
  }
  if (st.record == 0) parser_finish(&p, &st); /* a header without a line break */
  else csv_free(&p);
  if (err->failed) {
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

/* Rows expected from the length of the first lines: sizes the builders once, not by doubling. */
static size_t estimate_rows(const char *p, size_t n) {
  size_t sample = n < (1u << 20) ? n : (1u << 20), lines = 0, i;
  for (i = 0; i < sample; i++) lines += p[i] == '\n';
  if (lines < 2) return 64;
  return (size_t)((double)n / ((double)sample / (double)lines) * 1.02) + 64;
}

/* Where the data starts: after the header record (blank lines before it skipped, as libcsv
 * does; a CR, LF or CRLF outside quotes ends it). */
static size_t data_start(const cpf_source *src) {
  const char *b = src->bytes;
  size_t i = src->start, n = src->size;
  int quoted = 0;
  while (i < n && (b[i] == '\r' || b[i] == '\n' || b[i] == ' ' || b[i] == '\t')) i++;
  for (; i < n; i++) {
    if (b[i] == '"') quoted = !quoted;
    else if (!quoted && (b[i] == '\n' || b[i] == '\r'))
      return i + 1 + (b[i] == '\r' && i + 1 < n && b[i + 1] == '\n');
  }
  return n;
}

/* The first record boundary at or after `target`: just after a '\n' outside quotes, the parity
 * of quotes being counted from `from`, itself a record boundary. */
static size_t next_boundary(const cpf_source *src, size_t from, size_t target) {
  const char *b = src->bytes;
  size_t i = from, n = src->size;
  int quoted = (int)(count_quotes(b + from, target - from) & 1);
  for (i = target; i < n; i++) {
    if (b[i] == '"') quoted = !quoted;
    else if (b[i] == '\n' && !quoted) return i + 1;
  }
  return n;
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
  size_t begin, end;
  char sep;
  cpf_column *cols;
  size_t ncols;
  size_t records;    /* data records parsed */
  size_t index;
  load_shared *shared;
  cpf_error err;
} chunk_job;

/* Every PROGRESS_EVERY bytes: publish this chunk's position; the first chunk, which runs on the
 * calling thread, reports the total to the Lua callback. Returns non-zero to stop. */
static int chunk_checkpoint(chunk_job *job, size_t pos, size_t records) {
  load_shared *sh = job->shared;
  size_t total = 0, k;
  int stop;
  pthread_mutex_lock(&sh->lock);
  sh->done[job->index] = pos - job->begin;
  for (k = 0; k < sh->nchunks; k++) total += sh->done[k];
  stop = sh->stop;
  pthread_mutex_unlock(&sh->lock);
  if (stop) return 1;
  if (job->index == 0 && job->opts->progress) {
    /* rows: this chunk's count scaled to the share of bytes read, the others' not being known */
    size_t rows = pos > job->begin ? (size_t)((double)records * (double)total / (double)(pos - job->begin)) : 0;
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

static void chunk_parse(chunk_job *job) {
  const cpf_source *src = job->src;
  size_t pos, next_check = job->begin + PROGRESS_EVERY;
  struct csv_parser p;
  parse_state st;
  int in_quotes = 0; /* libcsv holds an open quoted field */
  uint32_t seps[MAX_PLAIN_FIELDS];
  memset(&st, 0, sizeof st);
  st.path = src->path;
  st.cols = job->cols;
  st.ncols = job->ncols;
  st.err = &job->err;
  st.record = 1; /* the header is record 1 */
  if (parser_start(&p, job->sep, src->path, &job->err) != 0) return;
  for (pos = job->begin; pos < job->end && !job->err.failed;) {
    const char *line = src->bytes + pos;
    size_t len = 0, nseps, content;
    if (!in_quotes && !job->opts->libcsv_only)
      len = scan_plain_line(line, src->bytes + job->end, job->sep, seps, &nseps, &content);
    if (len > 0) {
      emit_plain_line(&st, line, seps, nseps, content, job->sep);
    } else {
      const char *nl = memchr(line, '\n', job->end - pos);
      len = nl ? (size_t)(nl - line) + 1 : job->end - pos;
      if (csv_parse(&p, line, len, on_field, on_record, &st) != len && !job->err.failed)
        parser_error(&p, &st);
      in_quotes ^= (int)(count_quotes(line, len) & 1);
    }
    pos += len;
    if (pos >= next_check && !job->err.failed) {
      next_check += PROGRESS_EVERY;
      if (chunk_checkpoint(job, pos, st.record - 1)) {
        if (!job->err.failed) cpf_error_set(&job->err, "%s: load stopped", src->path);
        break;
      }
    }
  }
  if (job->err.failed) csv_free(&p);
  else parser_finish(&p, &st);
  job->records = st.record - 1;
  if (job->err.failed) {
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
  for (j = m->first; j < m->ncols && !m->err.failed; j += m->nchunks) {
    char msg[300];
    if (m->cols[j].skipped) continue;
    for (k = 1; k < m->nchunks; k++)
      if (column_absorb(&m->cols[j], &m->jobs[k].cols[j]) != 0) {
        cpf_error_set(&m->err, "%s: out of memory", m->path);
        break;
      }
    if (!m->err.failed && column_finish(&m->cols[j], msg, sizeof msg) != 0)
      cpf_error_set(&m->err, "%s: %s", m->path, msg);
  }
}

static void *merge_thread(void *arg) {
  merge_columns(arg);
  return NULL;
}

static size_t default_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > 64 ? 64 : (size_t)n;
}

static void free_columns(cpf_column *cols, size_t ncols) {
  size_t j;
  if (!cols) return;
  for (j = 0; j < ncols; j++) column_free(&cols[j]);
  free(cols);
}

cpf_dataset *loader_load(const cpf_source *src, const cpf_load_options *opts,
                         const cpf_column_spec *specs, size_t ncols, cpf_error *err) {
  const char *path = src->path;
  size_t begin, nchunks, k, j, expected, rows = 0;
  char sep, mark, point;
  chunk_job *jobs = NULL;
  pthread_t *threads = NULL;
  size_t *done = NULL, started = 0;
  load_shared shared;
  cpf_dataset *ds = NULL;
  int failed = 0;
  if ((sep = source_separator(src, opts->sep, err)) == 0) return NULL;
  /* a decimal comma is only possible when the comma is not the separator */
  mark = opts->decimal_mark ? opts->decimal_mark : (sep == ',' ? '.' : 0);
  point = numparse_locale_point(); /* here, on the calling thread: localeconv is not thread-safe */
  begin = data_start(src);
  /* By default chunks of at least 4 MB: below that, threads cost more than they save. A thread
   * count given explicitly is honoured down to 64 kB chunks (the specs split small files). */
  {
    size_t min_chunk = opts->threads ? (64u << 10) : (4u << 20);
    nchunks = opts->threads ? opts->threads : default_threads();
    if (nchunks > 1 && (src->size - begin) / nchunks < min_chunk)
      nchunks = (src->size - begin) / min_chunk + 1;
  }
  expected = estimate_rows(src->bytes + begin, src->size - begin) / nchunks + 64;
  jobs = calloc(nchunks, sizeof *jobs);
  threads = calloc(nchunks, sizeof *threads);
  done = calloc(nchunks, sizeof *done);
  if (!jobs || !threads || !done) { cpf_error_set(err, "%s: out of memory", path); goto out; }
  memset(&shared, 0, sizeof shared);
  pthread_mutex_init(&shared.lock, NULL);
  shared.done = done;
  shared.nchunks = nchunks;
  for (k = 0; k < nchunks; k++) {
    chunk_job *job = &jobs[k];
    job->src = src;
    job->opts = opts;
    job->sep = sep;
    job->ncols = ncols;
    job->index = k;
    job->shared = &shared;
    job->begin = k == 0 ? begin : jobs[k - 1].end;
    job->end = k + 1 == nchunks ? src->size
             : next_boundary(src, job->begin, begin + (src->size - begin) / nchunks * (k + 1));
    if (job->end < job->begin) job->end = job->begin;
    job->cols = calloc(ncols ? ncols : 1, sizeof *job->cols);
    if (!job->cols) { cpf_error_set(err, "%s: out of memory", path); goto out_threads; }
    for (j = 0; j < ncols; j++)
      if (specs[j].skip) {
        job->cols[j].skipped = 1;
      } else if (column_init(&job->cols[j], specs[j].name, specs[j].label, specs[j].type, mark, expected) != 0) {
        cpf_error_set(err, "%s: out of memory", path);
        goto out_threads;
      } else {
        job->cols[j].locale_point = point;
      }
  }
  for (k = 1; k < nchunks; k++, started++)
    if (pthread_create(&threads[k], NULL, chunk_thread, &jobs[k]) != 0) break;
  chunk_parse(&jobs[0]);
  for (k = 1; k <= started; k++) pthread_join(threads[k], NULL);
  for (k = started + 1; k < nchunks; k++) chunk_parse(&jobs[k]); /* no thread could start */
  for (k = 0; k < nchunks; k++) {
    rows += jobs[k].records;
    if (jobs[k].err.failed && !failed) {
      failed = 1;
      if (nchunks == 1 || strstr(jobs[k].err.message, "cancelled") ||
          strstr(jobs[k].err.message, "progress callback"))
        *err = jobs[k].err;
    }
  }
  if (failed && !err->failed) {
    /* Report what one parser reading the whole file reports: the first error, with its row
     * counted from the start. Error paths are rare; a second, serial read is acceptable. */
    cpf_load_options serial = *opts;
    serial.threads = 1;
    for (k = 0; k < nchunks; k++) free_columns(jobs[k].cols, ncols), jobs[k].cols = NULL;
    ds = loader_load(src, &serial, specs, ncols, err);
    goto out_threads;
  }
  if (failed) goto out_threads;
  /* one dataset: chunk 0's builders take the other chunks' rows, in file order */
  ds = calloc(1, sizeof *ds);
  if (!ds) { cpf_error_set(err, "%s: out of memory", path); goto out_threads; }
  ds->cols = jobs[0].cols;
  ds->ncols = ncols;
  jobs[0].cols = NULL;
  {
    /* columns are independent: merge and finish them on the same threads, column j on thread
     * j mod nchunks */
    merge_job *merges = calloc(nchunks, sizeof *merges);
    size_t merge_started = 0;
    if (!merges) { cpf_error_set(err, "%s: out of memory", path); goto out_threads; }
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
    for (k = 0; k < nchunks && !err->failed; k++)
      if (merges[k].err.failed) *err = merges[k].err;
    free(merges);
  }
  ds->rows = rows;
  { /* keep the columns asked for, in file order */
    size_t kept = 0;
    for (j = 0; j < ncols; j++)
      if (!ds->cols[j].skipped) ds->cols[kept++] = ds->cols[j];
    ds->ncols = kept;
  }
  if (!err->failed && opts->progress) /* a cancel here sets err too */
    opts->progress(opts->progress_ud, src->size, src->size, ds->rows, err);
  if (err->failed) { dataset_free(ds); ds = NULL; }
out_threads:
  pthread_mutex_destroy(&shared.lock);
  for (k = 0; k < nchunks; k++) {
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

/* loader.c — reads a delimited file through libcsv straight into column builders.
 * libcsv calls back per field; the callbacks only append to C arrays and record the first
 * error (they cannot raise), and the parse stops at the next block boundary. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csv.h>

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

/* A line without '"' and without CR (but the one of its CRLF ending), as the fast path needs. */
static int line_is_plain(const char *line, size_t len) {
  const char *cr;
  if (memchr(line, '"', len)) return 0;
  cr = memchr(line, '\r', len);
  /* the CR of a CRLF, or a last CR at the end of the file, ends the record as in libcsv */
  return cr == NULL || cr == line + len - 1 || (cr == line + len - 2 && line[len - 1] == '\n');
}

static void split_plain_line(parse_state *st, const char *line, size_t len, char sep) {
  const char *end = line + len, *f = line;
  while (end > line && (end[-1] == '\n' || end[-1] == '\r')) end--;
  {
    const char *c = line;
    while (c < end && is_blank_char(*c, sep)) c++;
    if (c == end) return; /* a blank line is no record, as in libcsv */
  }
  for (;;) {
    const char *d = memchr(f, sep, (size_t)(end - f));
    const char *fb = f, *fe = d ? d : end;
    while (fb < fe && is_blank_char(*fb, sep)) fb++;
    while (fe > fb && is_blank_char(fe[-1], sep)) fe--;
    on_field((void *)(uintptr_t)fb, (size_t)(fe - fb), st);
    if (!d) break;
    f = d + 1;
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

cpf_dataset *loader_load(const cpf_source *src, const cpf_load_options *opts,
                         const cpf_column_spec *specs, size_t ncols, cpf_error *err) {
  const char *path = src->path;
  size_t pos, next_progress, i, expected;
  char sep, mark;
  struct csv_parser p;
  parse_state st;
  cpf_dataset *ds = calloc(1, sizeof *ds);
  if (!ds || !(ds->cols = calloc(ncols ? ncols : 1, sizeof *ds->cols))) {
    free(ds);
    cpf_error_set(err, "%s: out of memory", path);
    return NULL;
  }
  if ((sep = source_separator(src, opts->sep, err)) == 0) {
    dataset_free(ds);
    return NULL;
  }
  /* a decimal comma is only possible when the comma is not the separator */
  mark = opts->decimal_mark ? opts->decimal_mark : (sep == ',' ? '.' : 0);
  expected = estimate_rows(src->bytes + src->start, src->size - src->start);
  for (i = 0; i < ncols; i++) {
    if (column_init(&ds->cols[i], specs[i].name, specs[i].label, specs[i].type, mark, expected) != 0) {
      cpf_error_set(err, "%s: out of memory", path);
      break;
    }
    ds->ncols = i + 1;
  }
  memset(&st, 0, sizeof st);
  st.path = path;
  st.cols = ds->cols;
  st.ncols = ncols;
  st.err = err;
  if (err->failed || parser_start(&p, sep, path, err) != 0) goto fail;
  next_progress = PROGRESS_EVERY;
  {
    int in_quotes = 0; /* libcsv holds an open quoted field */
    for (pos = src->start; pos < src->size && !err->failed;) {
      const char *line = src->bytes + pos;
      const char *nl = memchr(line, '\n', src->size - pos);
      size_t len = nl ? (size_t)(nl - line) + 1 : src->size - pos;
      if (!in_quotes && !opts->libcsv_only && line_is_plain(line, len)) {
        split_plain_line(&st, line, len, sep);
      } else {
        if (csv_parse(&p, line, len, on_field, on_record, &st) != len && !err->failed)
          parser_error(&p, &st);
        in_quotes ^= (int)(count_quotes(line, len) & 1);
      }
      pos += len;
      if (opts->progress && pos >= next_progress && !err->failed) {
        next_progress += PROGRESS_EVERY;
        if (opts->progress(opts->progress_ud, pos, src->size, st.record ? st.record - 1 : 0, err))
          break;
      }
    }
  }
  if (err->failed) {
    csv_free(&p);
    goto fail;
  }
  if (parser_finish(&p, &st) != 0) goto fail;
  if (st.record == 0) {
    cpf_error_set(err, "%s: empty file: no header line", path);
    goto fail;
  }
  ds->rows = st.record - 1;
  for (i = 0; i < ncols; i++) {
    char msg[300];
    if (column_finish(&ds->cols[i], msg, sizeof msg) != 0) {
      cpf_error_set(err, "%s: %s", path, msg);
      dataset_free(ds);
      return NULL;
    }
  }
  if (opts->progress && opts->progress(opts->progress_ud, src->size, src->size, ds->rows, err)) {
    dataset_free(ds);
    return NULL;
  }
  return ds;
fail:
  dataset_free(ds);
  return NULL;
}

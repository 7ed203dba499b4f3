/* file_kind.c — what a data file is before it is read as CSV: gzip (read through zlib, into
 * memory), or a kind cpf does not read (a workbook, an archive, a PDF, an HTML page...), said
 * with what to do, instead of "a NUL byte in the header". Recognised by the first bytes, whatever
 * the file's name (standard input too). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <zlib.h>

#include "cpf.h"

int is_gzip(const char *p, size_t n) {
  return n >= 2 && (unsigned char)p[0] == 0x1f && (unsigned char)p[1] == 0x8b;
}

static int starts(const char *p, size_t n, const char *magic, size_t len) {
  return n >= len && memcmp(p, magic, len) == 0;
}

/* the first bytes after blanks and a BOM, compared without case */
static int starts_text(const char *p, size_t n, const char *word) {
  size_t i = 0, len = strlen(word);
  if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) i = 3;
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
  return n - i >= len && strncasecmp(p + i, word, len) == 0;
}

const char *foreign_file_kind(const char *p, size_t n) {
  if (starts(p, n, "PK\x03\x04", 4)) {
    /* an Office Open XML workbook names its parts xl/... near the start */
    size_t i, limit = n < 4096 ? n : 4096;
    for (i = 0; i + 3 <= limit; i++)
      if (memcmp(p + i, "xl/", 3) == 0)
        return "an Excel workbook (.xlsx), not CSV text: save it as CSV (File > Save as > CSV, "
               "separator ';', UTF-8) and load that";
    return "a ZIP archive, not CSV text: unzip it and load the CSV file inside";
  }
  if (starts(p, n, "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8))
    return "an old Excel workbook (.xls), not CSV text: save it as CSV (File > Save as > CSV, "
           "separator ';', UTF-8) and load that";
  if (starts(p, n, "PAR1", 4))
    return "a Parquet file, not CSV text: cpf reads CSV (the portal gives the same data as CSV: "
           "exports/csv, or cpf fetch)";
  if (starts(p, n, "%PDF", 4)) return "a PDF document, not CSV text";
  if (starts(p, n, "BZh", 3)) return "a bzip2-compressed file: decompress it first (bunzip2 -k)";
  if (starts(p, n, "\xFD" "7zXZ", 5)) return "an xz-compressed file: decompress it first (unxz -k)";
  if (starts(p, n, "\x28\xB5\x2F\xFD", 4)) return "a zstd-compressed file: decompress it first (unzstd)";
  if (starts(p, n, "7z\xBC\xAF\x27\x1C", 6)) return "a 7-Zip archive, not CSV text: extract the CSV file first";
  if (starts_text(p, n, "<!doctype html") || starts_text(p, n, "<html"))
    return "an HTML page, not CSV text (a download that returned an error or a login page?)";
  if (starts_text(p, n, "<?xml")) return "an XML document, not CSV text";
  return NULL;
}

/* zlib's allocations go through the core's (alloc.c): they count, and fail, like the others */
static voidpf zlib_alloc(voidpf opaque, uInt items, uInt size) {
  (void)opaque;
  if (size != 0 && items > SIZE_MAX / size) return Z_NULL;
  return cpf_malloc((size_t)items * size);
}

static void zlib_free(voidpf opaque, voidpf p) {
  (void)opaque;
  free(p);
}

#define INFLATE_INPUT ((size_t)1 << 20)

int inflate_file(int fd, const char *path, const char *already, size_t already_len, size_t limit,
                 const inflate_monitor *monitor, char **out, size_t *out_len, int *complete, cpf_error *err) {
  z_stream z;
  char *in = NULL, *buf = NULL;
  size_t len = 0, cap = 0;
  int rc = Z_OK, ended = 0, fed_already = already_len == 0, member_done = 0;
  size_t read_so_far = 0;
  *complete = 1;
  memset(&z, 0, sizeof z);
  z.zalloc = zlib_alloc;
  z.zfree = zlib_free;
  if (inflateInit2(&z, 15 + 32) != Z_OK) { /* 32: a gzip header */
    cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path);
    return -1;
  }
  if (!(in = cpf_malloc(INFLATE_INPUT))) goto oom;
  for (;;) {
    if (z.avail_in == 0 && !ended) {
      if (!fed_already) {
        z.next_in = (Bytef *)(uintptr_t)already;
        z.avail_in = (uInt)already_len;
        fed_already = 1;
      } else {
        ssize_t n = cpf_read(fd, in, INFLATE_INPUT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          cpf_error_set(err, CPF_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
          goto fail;
        }
        if (n == 0) ended = 1;
        z.next_in = (Bytef *)in;
        z.avail_in = (uInt)n;
        read_so_far += (size_t)n;
        /* a block of the compressed file read: the figures, and a cancel is heard */
        if (monitor && monitor->fn && monitor->fn(monitor->ud, read_so_far, monitor->total, 0)) {
          cpf_error_set(err, CPF_ERR_CANCELLED, "%s: load cancelled", path);
          goto fail;
        }
      }
    }
    if (member_done) { /* another member may follow (files concatenated with cat) */
      /* zeros after the last member (padding some tools write) are no member: passed over,
       * as gzip -d does */
      while (z.avail_in > 0 && *z.next_in == 0) { z.next_in++; z.avail_in--; }
      if (z.avail_in == 0) {
        if (ended) break;
        continue;
      }
      if (inflateReset(&z) != Z_OK) goto damaged;
      member_done = 0;
    }
    if (len == cap) {
      size_t want = cap ? cap * 2 : (size_t)1 << 20;
      char *bigger = cpf_realloc(buf, want);
      if (!bigger) goto oom;
      buf = bigger;
      cap = want;
    }
    z.next_out = (Bytef *)(buf + len);
    z.avail_out = (uInt)((cap - len) > UINT32_MAX ? UINT32_MAX : cap - len);
    rc = inflate(&z, Z_NO_FLUSH);
    len = (size_t)((char *)z.next_out - buf);
    if (len >= limit && !(rc == Z_STREAM_END && ended && z.avail_in == 0)) { /* enough: the rest later */
      *complete = 0;
      break;
    }
    if (rc == Z_STREAM_END) member_done = 1;
    else if (rc == Z_MEM_ERROR) goto oom;
    else if (rc == Z_DATA_ERROR || rc == Z_STREAM_ERROR || rc == Z_NEED_DICT) goto damaged;
    else if (rc == Z_BUF_ERROR && ended && z.avail_in == 0 && len < cap) {
      cpf_error_set(err, CPF_ERR_DATA, "%s: truncated gzip file: it ends before its last block", path);
      goto fail;
    }
  }
  inflateEnd(&z);
  free(in);
  *out = buf;
  *out_len = len;
  return 0;
damaged:
  cpf_error_set(err, CPF_ERR_DATA, "%s: damaged gzip file: %s", path, z.msg ? z.msg : "bad data");
  goto fail;
oom:
  cpf_error_set(err, CPF_ERR_MEMORY, "%s: out of memory", path);
fail:
  inflateEnd(&z);
  free(in);
  free(buf);
  return -1;
}

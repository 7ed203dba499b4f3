/* writer.c — the text of the machine formats (csv, csv-fr, tsv, json, jsonl), cell by cell into
 * a growing buffer that lua_writer.c hands on in pieces: numbers (exact, rounded by kind on
 * demand, decimal comma), csv quoting, tsv escapes and JSON strings (always valid UTF-8). The
 * rules are the ones doc/formats.md states; no Lua here. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpf.h"

/* ---- the buffer ---- */

int text_reserve(text_buffer *b, size_t extra) {
  size_t want = b->len + extra, cap;
  char *p;
  if (want < b->len) return -1; /* size_t overflow */
  if (want <= b->cap && b->data) return 0;
  cap = b->cap ? b->cap : 4096;
  while (cap < want) cap = cap * 2 > cap ? cap * 2 : want;
  p = cpf_realloc(b->data, cap);
  if (!p) return -1;
  b->data = p;
  b->cap = cap;
  return 0;
}

int text_append(text_buffer *b, const char *s, size_t n) {
  if (text_reserve(b, n) != 0) return -1;
  memcpy(b->data + b->len, s, n);
  b->len += n;
  return 0;
}

void text_free(text_buffer *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

/* ---- numbers ---- */

size_t integer_text(int64_t v, char *buf) {
  return (size_t)sprintf(buf, "%lld", (long long)v);
}

size_t double_text(double v, char locale_point, char *buf) {
  if (v != v || v - v != 0) return 0;
  return format_shortest(v, locale_point, buf, NUMBER_TEXT_SIZE);
}

/* v with at most `decimals` decimals, trailing zeros dropped (3908.2289928057553 -> 3908.23),
 * or its exact text when that is no longer (123456789012.34 stays, never 123456789012.339996). */
size_t rounded_text(double v, int decimals, char locale_point, char *buf) {
  char exact[NUMBER_TEXT_SIZE];
  size_t n = format_fixed(v, decimals, buf, NUMBER_TEXT_SIZE), e;
  if (memchr(buf, '.', n)) {
    while (n > 0 && buf[n - 1] == '0') n--;
    if (n > 0 && buf[n - 1] == '.') n--;
  }
  if (n == 2 && buf[0] == '-' && buf[1] == '0') { buf[0] = '0'; n = 1; }
  e = format_shortest(v, locale_point, exact, sizeof exact);
  if (e <= n) {
    memcpy(buf, exact, e);
    n = e;
  }
  buf[n] = 0;
  return n;
}

/* ---- csv and tsv cells ---- */

int csv_cell(text_buffer *b, const char *s, size_t n, int guard_mark, const csv_style *st) {
  size_t i, quotes = 0;
  int quote;
  if (st->one_column && n == 0 && !guard_mark) return text_append(b, "\"\"", 2);
  /* quoted when it holds the separator, a quote or a line break, or would lose a space */
  quote = n > 0 && ((!guard_mark && isspace((unsigned char)s[0])) ||
                    (s[n - 1] >= 9 && s[n - 1] <= 13) || s[n - 1] == ' ');
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (c == '"') quotes++;
    if (c == st->sep || c == '"' || c == '\r' || c == '\n') quote = 1;
  }
  if (guard_mark && st->sep == '\'') quote = 1;
  if (text_reserve(b, n + quotes + 3) != 0) return -1;
  if (quote) b->data[b->len++] = '"';
  if (guard_mark) b->data[b->len++] = '\'';
  if (!quotes) {
    memcpy(b->data + b->len, s, n);
    b->len += n;
  } else {
    for (i = 0; i < n; i++) {
      if (s[i] == '"') b->data[b->len++] = '"';
      b->data[b->len++] = s[i];
    }
  }
  if (quote) b->data[b->len++] = '"';
  return 0;
}

int tsv_cell(text_buffer *b, const char *s, size_t n) {
  size_t i, extra = 0;
  for (i = 0; i < n; i++) extra += s[i] == '\\' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n';
  if (text_reserve(b, n + extra) != 0) return -1;
  if (!extra) {
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
  }
  for (i = 0; i < n; i++) {
    char c = s[i], e = c == '\\' ? '\\' : c == '\t' ? 't' : c == '\r' ? 'r' : c == '\n' ? 'n' : 0;
    if (e) {
      b->data[b->len++] = '\\';
      b->data[b->len++] = e;
    } else {
      b->data[b->len++] = c;
    }
  }
  return 0;
}

/* ---- JSON strings ---- */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when it is not one: a stray
 * continuation byte, an overlong form, a surrogate, above U+10FFFF or cut. */
static size_t utf8_length(const unsigned char *s, size_t n) {
  unsigned c = s[0], cp;
  size_t len, k;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c - 0xC0; }
  else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c - 0xE0; }
  else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c - 0xF0; }
  else return 0;
  if (n < len) return 0;
  for (k = 1; k < len; k++) {
    if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    cp = cp * 64 + (s[k] - 0x80);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return len;
}

/* RFC 8259: quote, backslash and control characters escaped (\u00xx in lowercase), U+2028 and
 * U+2029 too (so that the text pastes into JavaScript), each byte that is no UTF-8 as U+FFFD. */
int json_string(text_buffer *b, const char *text, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)text;
  size_t i = 0;
  /* at most 6 bytes out per byte in (\u00xx), plus the quotes */
  if (n > ((size_t)-1 - 2) / 6 || text_reserve(b, 6 * n + 2) != 0) return -1;
  b->data[b->len++] = '"';
  while (i < n) {
    unsigned c = s[i];
    char *out = b->data + b->len;
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      *out = (char)c;
      b->len++;
      i++;
    } else if (c < 0x80) {
      const char *named = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b" : c == '\f' ? "\\f"
                        : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
      if (named) {
        memcpy(out, named, 2);
        b->len += 2;
      } else {
        memcpy(out, "\\u00", 4);
        out[4] = hex[c >> 4];
        out[5] = hex[c & 15];
        b->len += 6;
      }
      i++;
    } else {
      size_t len = utf8_length(s + i, n - i);
      if (len == 0) {
        memcpy(out, "\xEF\xBF\xBD", 3); /* U+FFFD */
        b->len += 3;
        i++;
      } else if (len == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
        memcpy(out, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
        b->len += 6;
        i += 3;
      } else {
        memcpy(out, s + i, len);
        b->len += len;
        i += len;
      }
    }
  }
  b->data[b->len++] = '"';
  return 0;
}

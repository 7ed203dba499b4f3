/* encoding.c — the text of a file: UTF-8 checked, or Windows-1252 / Latin-1 turned into UTF-8.
 * Both work on a string column's dictionary, once the file is read: each distinct value once,
 * never each row (the bytes that are not ASCII are rare, and a value seen a million times is
 * one entry). Numbers, months and dates are ASCII whatever the encoding. */
#include <stdlib.h>
#include <string.h>

#include "cpf.h"

/* The length of a valid UTF-8 sequence at s[0..n), or 0 (overlong forms, surrogates and code
 * points past U+10FFFF are not valid). */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 ? 4 : 0;
  }
  return 0;
}

size_t utf8_invalid_at(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    size_t k;
    if (p[i] < 0x80) { i++; continue; }
    if ((k = utf8_sequence(p + i, n - i)) == 0) return i;
    i += k;
  }
  return n;
}

/* Windows-1252's 0x80..0x9F (five of them unassigned: kept as the C1 controls, as Latin-1
 * reads the whole range); 0xA0..0xFF are U+00A0..U+00FF in both. */
static const unsigned short CP1252_HIGH[32] = {
  0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
  0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
  0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

size_t to_utf8(const char *s, size_t n, cpf_encoding encoding, char *out) {
  size_t i, k = 0;
  for (i = 0; i < n; i++) {
    unsigned c = (unsigned char)s[i];
    if (c >= 0x80 && c <= 0x9F && encoding == CPF_ENCODING_CP1252) c = CP1252_HIGH[c - 0x80];
    if (c < 0x80) {
      out[k++] = (char)c;
    } else if (c < 0x800) {
      out[k++] = (char)(0xC0 | (c >> 6));
      out[k++] = (char)(0x80 | (c & 0x3F));
    } else {
      out[k++] = (char)(0xE0 | (c >> 12));
      out[k++] = (char)(0x80 | ((c >> 6) & 0x3F));
      out[k++] = (char)(0x80 | (c & 0x3F));
    }
  }
  return k;
}

int dictionary_to_utf8(cpf_dictionary *dict, cpf_encoding encoding) {
  size_t total = 0, at = 0;
  uint32_t c;
  char *bytes;
  uint64_t *offsets;
  for (c = 0; c < dict->count; c++) total += (size_t)(dict->offsets[c + 1] - dict->offsets[c]) * 3;
  bytes = cpf_malloc(total ? total : 1);
  offsets = cpf_malloc(((size_t)dict->count + 1) * sizeof *offsets);
  if (!bytes || !offsets) {
    free(bytes);
    free(offsets);
    return -1;
  }
  offsets[0] = 0;
  for (c = 0; c < dict->count; c++) {
    size_t len;
    const char *v = dictionary_value(dict, c, &len);
    at += to_utf8(v, len, encoding, bytes + at);
    bytes[at++] = '\0';
    offsets[c + 1] = at;
  }
  free(dict->bytes);
  free(dict->offsets);
  dict->bytes = bytes;
  dict->bytes_len = dict->bytes_cap = at;
  dict->offsets = offsets;
  dict->cap = dict->count;
  return 0;
}

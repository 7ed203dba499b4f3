/* dictionary.c — distinct values of a string column: an append-only byte arena plus an
 * open-addressing hash table from value to code, dropped once loading is done. */
#include <stdlib.h>
#include <string.h>

#include "cpf.h"

/* Multiply-xorshift over 8-byte words: CPF values are short, and most of the time is the
 * memory access, not the mixing. Only used in memory, so byte order does not matter. */
static uint32_t hash_bytes(const char *s, size_t len) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)len;
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
    s += 8;
    len -= 8;
  }
  if (len > 0) {
    uint64_t w = 0;
    memcpy(&w, s, len);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
  }
  h *= 0x9E3779B97F4A7C15ull;
  return (uint32_t)(h >> 32);
}

int dictionary_init(cpf_dictionary *dict) {
  memset(dict, 0, sizeof *dict);
  dict->cap = 64;
  dict->offsets = malloc((dict->cap + 1) * sizeof *dict->offsets);
  dict->hashes = malloc(dict->cap * sizeof *dict->hashes);
  dict->slot_mask = 127;
  dict->slots = calloc(dict->slot_mask + 1, sizeof *dict->slots);
  dict->bytes_cap = 1024;
  dict->bytes = malloc(dict->bytes_cap);
  if (!dict->offsets || !dict->hashes || !dict->slots || !dict->bytes) {
    dictionary_free(dict);
    return -1;
  }
  dict->offsets[0] = 0;
  return 0;
}

void dictionary_free(cpf_dictionary *dict) {
  free(dict->bytes);
  free(dict->offsets);
  free(dict->slots);
  free(dict->hashes);
  memset(dict, 0, sizeof *dict);
}

static int grow_slots(cpf_dictionary *dict) {
  uint32_t new_mask = dict->slot_mask * 2 + 1;
  uint32_t *slots = calloc((size_t)new_mask + 1, sizeof *slots);
  uint32_t code;
  if (!slots) return -1;
  for (code = 0; code < dict->count; code++) {
    uint32_t i = dict->hashes[code] & new_mask;
    while (slots[i] != 0) i = (i + 1) & new_mask;
    slots[i] = code + 1;
  }
  free(dict->slots);
  dict->slots = slots;
  dict->slot_mask = new_mask;
  return 0;
}

static uint32_t add_value(cpf_dictionary *dict, const char *s, size_t len, uint32_t h) {
  uint32_t code = dict->count;
  if (code == UINT32_MAX - 1) return UINT32_MAX;
  if (code == dict->cap) {
    uint32_t cap = dict->cap * 2;
    uint64_t *offsets = realloc(dict->offsets, ((size_t)cap + 1) * sizeof *offsets);
    uint32_t *hashes;
    if (!offsets) return UINT32_MAX;
    dict->offsets = offsets;
    hashes = realloc(dict->hashes, (size_t)cap * sizeof *hashes);
    if (!hashes) return UINT32_MAX;
    dict->hashes = hashes;
    dict->cap = cap;
  }
  if (dict->bytes_len + len + 1 > dict->bytes_cap) {
    size_t cap = dict->bytes_cap * 2;
    char *bytes;
    while (cap < dict->bytes_len + len + 1) cap *= 2;
    bytes = realloc(dict->bytes, cap);
    if (!bytes) return UINT32_MAX;
    dict->bytes = bytes;
    dict->bytes_cap = cap;
  }
  memcpy(dict->bytes + dict->bytes_len, s, len);
  dict->bytes[dict->bytes_len + len] = '\0';
  dict->bytes_len += len + 1;
  dict->hashes[code] = h;
  dict->count = code + 1;
  dict->offsets[code + 1] = dict->bytes_len;
  return code;
}

uint32_t dictionary_intern(cpf_dictionary *dict, const char *s, size_t len) {
  uint32_t h = hash_bytes(s, len);
  uint32_t i = h & dict->slot_mask;
  uint32_t code;
  for (;;) {
    uint32_t slot = dict->slots[i];
    if (slot == 0) break;
    code = slot - 1;
    if (dict->hashes[code] == h) {
      size_t vlen = (size_t)(dict->offsets[code + 1] - dict->offsets[code] - 1);
      if (vlen == len && memcmp(dict->bytes + dict->offsets[code], s, len) == 0) return code;
    }
    i = (i + 1) & dict->slot_mask;
  }
  code = add_value(dict, s, len, h);
  if (code == UINT32_MAX) return code;
  dict->slots[i] = code + 1;
  /* keep the table at most half full: probes stay short */
  if ((size_t)dict->count * 2 > (size_t)dict->slot_mask + 1 && grow_slots(dict) != 0)
    return UINT32_MAX;
  return code;
}

const char *dictionary_value(const cpf_dictionary *dict, uint32_t code, size_t *len) {
  if (len) *len = (size_t)(dict->offsets[code + 1] - dict->offsets[code] - 1);
  return dict->bytes + dict->offsets[code];
}

void dictionary_freeze(cpf_dictionary *dict) {
  free(dict->slots);
  free(dict->hashes);
  dict->slots = NULL;
  dict->hashes = NULL;
  if (dict->bytes_len > 0 && dict->bytes_cap > dict->bytes_len) {
    char *bytes = realloc(dict->bytes, dict->bytes_len);
    if (bytes) { dict->bytes = bytes; dict->bytes_cap = dict->bytes_len; }
  }
}

size_t dictionary_memory(const cpf_dictionary *dict) {
  size_t n = dict->bytes_cap + ((size_t)dict->cap + 1) * sizeof *dict->offsets;
  if (dict->slots) n += ((size_t)dict->slot_mask + 1) * sizeof *dict->slots;
  if (dict->hashes) n += (size_t)dict->cap * sizeof *dict->hashes;
  return n;
}

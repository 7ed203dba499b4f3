/* dictionary.c — distinct values of a string column: an append-only byte arena plus an
 * open-addressing hash table from value to code, dropped once loading is done. */
#include <stdlib.h>
#include <string.h>

#include "cpf.h"

/* Equal bytes; short values without a call to memcmp. */
static int same_bytes(const char *a, const char *b, size_t len) {
  if (len >= 8) {
    size_t i;
    for (i = 0; i + 8 <= len; i += 8)
      if (memcmp(a + i, b + i, 8) != 0) return 0; /* fixed size: compiled to one load */
    return memcmp(a + len - 8, b + len - 8, 8) == 0;
  }
  while (len-- > 0)
    if (*a++ != *b++) return 0;
  return 1;
}

static uint64_t load64(const char *s) {
  uint64_t w;
  memcpy(&w, s, 8);
  return w;
}

/* Hash of the length, the first 16 and the last 16 bytes: CPF values that share both ends and
 * the length are rare, and a collision only costs a comparison. Bounded work per field matters
 * more than mixing every byte of a 100-character title. Only used in memory: byte order is
 * irrelevant. */
static uint32_t hash_bytes(const char *s, size_t len) {
  uint64_t a, b, h;
  if (len >= 16) {
    a = load64(s) ^ (load64(s + 8) * 0x9E3779B97F4A7C15ull);
    b = load64(s + len - 8) ^ (load64(s + len - 16) * 0xc4ceb9fe1a85ec53ull);
  } else if (len >= 8) {
    a = load64(s);
    b = load64(s + len - 8);
  } else {
    size_t i;
    a = 0; /* a byte loop: memcpy with a variable length is a library call */
    for (i = 0; i < len; i++) a |= (uint64_t)(unsigned char)s[i] << (8 * i);
    b = a >> 7;
  }
  h = (a ^ (uint64_t)len * 0xff51afd7ed558ccdull) * 0x9E3779B97F4A7C15ull;
  h ^= (b + (h >> 29)) * 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 32;
  return (uint32_t)h;
}

int dictionary_init(cpf_dictionary *dict) {
  memset(dict, 0, sizeof *dict);
  dict->cap = 64;
  dict->offsets = cpf_malloc((dict->cap + 1) * sizeof *dict->offsets);
  dict->slot_mask = 127;
  dict->slots = cpf_calloc(dict->slot_mask + 1, sizeof *dict->slots);
  dict->bytes_cap = 1024;
  dict->bytes = cpf_malloc(dict->bytes_cap);
  if (!dict->offsets || !dict->slots || !dict->bytes) {
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
  memset(dict, 0, sizeof *dict);
}

/* A slot holds the value's hash in its high half and code + 1 in its low half (0 = free):
 * most probes are settled without touching the value's bytes. */
#define SLOT(hash, code) (((uint64_t)(hash) << 32) | ((uint64_t)(code) + 1))
#define SLOT_HASH(slot) ((uint32_t)((slot) >> 32))
#define SLOT_CODE(slot) ((uint32_t)(slot) - 1)

static int grow_slots(cpf_dictionary *dict) {
  uint32_t new_mask = dict->slot_mask * 2 + 1, i;
  uint64_t *slots = cpf_calloc((size_t)new_mask + 1, sizeof *slots);
  if (!slots) return -1;
  for (i = 0; i <= dict->slot_mask; i++) {
    uint64_t slot = dict->slots[i];
    uint32_t j;
    if (slot == 0) continue;
    j = SLOT_HASH(slot) & new_mask;
    while (slots[j] != 0) j = (j + 1) & new_mask;
    slots[j] = slot;
  }
  free(dict->slots);
  dict->slots = slots;
  dict->slot_mask = new_mask;
  return 0;
}

static uint32_t add_value(cpf_dictionary *dict, const char *s, size_t len) {
  uint32_t code = dict->count;
  if (code == UINT32_MAX - 1) return UINT32_MAX;
  if (code == dict->cap) {
    uint32_t cap = dict->cap * 2;
    uint64_t *offsets = cpf_realloc(dict->offsets, ((size_t)cap + 1) * sizeof *offsets);
    if (!offsets) return UINT32_MAX;
    dict->offsets = offsets;
    dict->cap = cap;
  }
  if (dict->bytes_len + len + 1 > dict->bytes_cap) {
    size_t cap = dict->bytes_cap * 2;
    char *bytes;
    while (cap < dict->bytes_len + len + 1) cap *= 2;
    bytes = cpf_realloc(dict->bytes, cap);
    if (!bytes) return UINT32_MAX;
    dict->bytes = bytes;
    dict->bytes_cap = cap;
  }
  memcpy(dict->bytes + dict->bytes_len, s, len);
  dict->bytes[dict->bytes_len + len] = '\0';
  dict->bytes_len += len + 1;
  dict->count = code + 1;
  dict->offsets[code + 1] = dict->bytes_len;
  return code;
}

uint32_t dictionary_intern(cpf_dictionary *dict, const char *s, size_t len) {
  uint32_t h = hash_bytes(s, len);
  uint32_t i = h & dict->slot_mask;
  uint32_t code;
  for (;;) {
    uint64_t slot = dict->slots[i];
    if (slot == 0) break;
    if (SLOT_HASH(slot) == h) {
      const char *v;
      code = SLOT_CODE(slot);
      v = dict->bytes + dict->offsets[code];
      if ((size_t)(dict->offsets[code + 1] - dict->offsets[code] - 1) == len && same_bytes(v, s, len))
        return code;
    }
    i = (i + 1) & dict->slot_mask;
  }
  code = add_value(dict, s, len);
  if (code == UINT32_MAX) return code;
  dict->slots[i] = SLOT(h, code);
  /* keep the table at most half full: probes stay short */
  if ((size_t)dict->count * 2 > (size_t)dict->slot_mask + 1 && grow_slots(dict) != 0)
    return UINT32_MAX;
  return code;
}

/* Takes back the last value added (a rejected record brought it): out of the table by moving
 * up the entries that probed past its slot (linear probing's deletion), out of the arena. */
void dictionary_drop_last(cpf_dictionary *dict) {
  uint32_t code = dict->count - 1, mask = dict->slot_mask, i, j;
  const char *v = dict->bytes + dict->offsets[code];
  size_t len = (size_t)(dict->offsets[code + 1] - dict->offsets[code] - 1);
  i = hash_bytes(v, len) & mask;
  while (dict->slots[i] != 0 && SLOT_CODE(dict->slots[i]) != code) i = (i + 1) & mask;
  if (dict->slots[i] == 0) return; /* not in the table: nothing was added */
  for (;;) {
    dict->slots[i] = 0;
    for (j = (i + 1) & mask;; j = (j + 1) & mask) {
      uint32_t home;
      if (dict->slots[j] == 0) goto dropped;
      home = SLOT_HASH(dict->slots[j]) & mask;
      /* an entry whose home lies cyclically in (i, j] is still reachable: it stays */
      if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) continue;
      dict->slots[i] = dict->slots[j];
      i = j;
      break;
    }
  }
dropped:
  dict->bytes_len = (size_t)dict->offsets[code];
  dict->count = code;
}

const char *dictionary_value(const cpf_dictionary *dict, uint32_t code, size_t *len) {
  /* A mapped snapshot's offsets were checked at open, but the file can be rewritten under the
   * mapping: each is read once and the value kept inside the bytes (else read as ""). */
  uint64_t start = dict->offsets[code], end = dict->offsets[code + 1];
  if (start >= end || end > dict->bytes_len) {
    if (len) *len = 0;
    return "";
  }
  if (len) *len = (size_t)(end - start - 1);
  return dict->bytes + start;
}

void dictionary_freeze(cpf_dictionary *dict) {
  free(dict->slots);
  dict->slots = NULL;
  if (dict->cap > dict->count) { /* no value will be added: no spare offsets either */
    uint64_t *offsets = cpf_realloc(dict->offsets, ((size_t)dict->count + 1) * sizeof *offsets);
    if (offsets) { dict->offsets = offsets; dict->cap = dict->count; }
  }
  if (dict->bytes_cap > dict->bytes_len) {
    char *bytes = cpf_realloc(dict->bytes, dict->bytes_len ? dict->bytes_len : 1);
    if (bytes) { dict->bytes = bytes; dict->bytes_cap = dict->bytes_len; }
  }
}

uint32_t *dictionary_merge(cpf_dictionary *into, const cpf_dictionary *from) {
  uint32_t *remap = cpf_malloc(((size_t)from->count + 1) * sizeof *remap), c;
  if (!remap) return NULL;
  for (c = 0; c < from->count; c++) {
    size_t len;
    const char *s = dictionary_value(from, c, &len);
    if ((remap[c] = dictionary_intern(into, s, len)) == UINT32_MAX) {
      free(remap);
      return NULL;
    }
  }
  return remap;
}

/* Frozen (loaded, or mapped from a snapshot): what the values take, the same either way. */
size_t dictionary_memory(const cpf_dictionary *dict) {
  if (!dict->slots) return dict->bytes_len + ((size_t)dict->count + 1) * sizeof *dict->offsets;
  size_t n = dict->bytes_cap + ((size_t)dict->cap + 1) * sizeof *dict->offsets;
  if (dict->slots) n += ((size_t)dict->slot_mask + 1) * sizeof *dict->slots;
  return n;
}

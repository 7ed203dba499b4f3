/* rejects.c — the records a load set aside (on_error = "skip"): where each one is in the file,
 * what was wrong and its text, kept as the entries of snapshot_format.h back to back, so that a
 * snapshot stores and maps them as they are. A snapshot's entries come from anyone: they are
 * checked whole (rejects_check) before any is read. */
#include <stdlib.h>
#include <string.h>

#include "cpf.h"
#include "snapshot_format.h"

static size_t padded(size_t n) { return (n + 7) & ~(size_t)7; }

int rejects_add(cpf_rejects *r, uint64_t line, uint64_t record, uint64_t column, uint64_t length,
                cpf_reject_kind kind, const char *name, const char *message, const char *text,
                size_t text_len, const char *file) {
  snap_reject e;
  size_t name_len = strlen(name), message_len = strlen(message), file_len = strlen(file), need;
  if (text_len > REJECT_TEXT_MAX) text_len = REJECT_TEXT_MAX;
  if (name_len > 4096) name_len = 4096;
  if (message_len > 4096) message_len = 4096;
  if (file_len > 4096) file_len = 4096;
  need = padded(sizeof e + name_len + message_len + text_len + file_len);
  if (r->size + need > r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 4096;
    unsigned char *bytes;
    while (cap < r->size + need) cap *= 2;
    if (!(bytes = cpf_realloc(r->bytes, cap))) return -1;
    r->bytes = bytes;
    r->cap = cap;
  }
  memset(&e, 0, sizeof e);
  e.line = line;
  e.record = record;
  e.column = column;
  e.length = length;
  e.kind = (uint32_t)kind;
  e.name_size = (uint32_t)name_len;
  e.message_size = (uint32_t)message_len;
  e.text_size = (uint32_t)text_len;
  e.file_size = (uint32_t)file_len;
  memset(r->bytes + r->size, 0, need);
  memcpy(r->bytes + r->size, &e, sizeof e);
  memcpy(r->bytes + r->size + sizeof e, name, name_len);
  memcpy(r->bytes + r->size + sizeof e + name_len, message, message_len);
  memcpy(r->bytes + r->size + sizeof e + name_len + message_len, text, text_len);
  memcpy(r->bytes + r->size + sizeof e + name_len + message_len + text_len, file, file_len);
  r->size += need;
  r->count++;
  return 0;
}

/* A size read from an entry, bounded by what the entry may hold and by the bytes left: a
 * snapshot rewritten in place after its check (as dictionary_value allows for) may say anything. */
static uint32_t bounded(uint32_t size, uint32_t max, size_t *room) {
  if (size > max) size = max;
  if (size > *room) size = (uint32_t)*room;
  *room -= size;
  return size;
}

size_t rejects_entry(const cpf_rejects *r, size_t offset, void *entry, const char **name,
                     const char **message, const char **text, const char **file) {
  snap_reject *e = entry;
  const char *s;
  size_t room;
  memset(e, 0, sizeof *e);
  if (offset > r->size || r->size - offset < sizeof *e) { /* nothing left: an empty entry */
    *name = *message = *text = *file = "";
    return r->size;
  }
  s = (const char *)r->bytes + offset + sizeof *e;
  memcpy(e, r->bytes + offset, sizeof *e);
  room = r->size - offset - sizeof *e;
  e->name_size = bounded(e->name_size, 4096, &room);
  e->message_size = bounded(e->message_size, 4096, &room);
  e->text_size = bounded(e->text_size, REJECT_TEXT_MAX, &room);
  e->file_size = bounded(e->file_size, 4096, &room);
  *name = s;
  *message = s + e->name_size;
  *text = s + e->name_size + e->message_size;
  *file = s + e->name_size + e->message_size + e->text_size;
  return offset + padded(sizeof *e + (size_t)e->name_size + e->message_size + e->text_size + e->file_size);
}

int rejects_append(cpf_rejects *into, const cpf_rejects *from, const char *file) {
  size_t offset = 0, n;
  for (n = 0; n < from->count; n++) {
    snap_reject e;
    const char *name, *message, *text, *own_file;
    char name_z[4097], message_z[4097];
    offset = rejects_entry(from, offset, &e, &name, &message, &text, &own_file);
    memcpy(name_z, name, e.name_size);
    name_z[e.name_size] = '\0';
    memcpy(message_z, message, e.message_size);
    message_z[e.message_size] = '\0';
    if (rejects_add(into, e.line, e.record, e.column, e.length, (cpf_reject_kind)e.kind, name_z,
                    message_z, text, e.text_size, file) != 0)
      return -1;
  }
  return 0;
}

const char *rejects_check(const unsigned char *bytes, size_t size, size_t count) {
  size_t offset = 0, n;
  for (n = 0; n < count; n++) {
    snap_reject e;
    size_t strings;
    if (size - offset < sizeof e) return "rejects: an entry runs past their end";
    memcpy(&e, bytes + offset, sizeof e);
    if (e.kind < CPF_REJECT_FIELDS || e.kind > CPF_REJECT_QUOTE) return "rejects: an unknown kind";
    if (e.text_size > REJECT_TEXT_MAX || e.name_size > 4096 || e.message_size > 4096 || e.file_size > 4096)
      return "rejects: a text longer than a reject holds";
    if (e.record < 2 || e.line < 1 || e.length < e.text_size) return "rejects: a position outside the data";
    strings = (size_t)e.name_size + e.message_size + e.text_size + e.file_size;
    if (size - offset - sizeof e < strings) return "rejects: an entry runs past their end";
    offset += padded(sizeof e + strings);
    if (offset > size) return "rejects: an entry runs past their end";
  }
  return offset == size ? NULL : "rejects: bytes after the last entry";
}

void rejects_free(cpf_rejects *r) {
  if (!r->mapped) free(r->bytes);
  memset(r, 0, sizeof *r);
}

const char *cpf_reject_kind_name(cpf_reject_kind kind) {
  switch (kind) {
  case CPF_REJECT_FIELDS: return "fields";
  case CPF_REJECT_VALUE: return "value";
  default: return "quote";
  }
}

/* lua_writer.c — core.row_writer: a result written in csv, tsv, json or jsonl by C, in pieces
 * of about 64 kB that Lua asks for one at a time (w:next()) and sends on (a file, an HTTP answer,
 * a string's parts): the sending runs in Lua, so a target that yields (cpf serve's ngx.flush)
 * can. Every
 * result takes this path: the rows a query's result store holds are read from its arrays (a
 * key's text made once per code), a row table Lua built or read (a result made in Lua, or a
 * row of a query's result already read, which its reader may have changed) from the table.
 * The spec (format.lua) carries what depends on the options: separator, titles, decimals,
 * value labels, the words of total and Autres rows. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "lua_bindings.h"

#define ROW_WRITER_META "cpf.row_writer"
#define PIECE_BYTES 65536

typedef enum { FORMAT_CSV, FORMAT_TSV, FORMAT_JSON, FORMAT_JSONL } row_format;

/* What a row writer keeps between pieces: its userdata (the decimals follow it), whose
 * uservalue holds the Lua side (UV_* below). */
typedef struct {
  row_format format;
  text_buffer out;
  char sep;
  char eol[2];
  size_t eol_len, ncols;
  int decimal_comma, guard, bom;
  size_t count, next; /* rows to write, the next one (from 1) */
  int stage;          /* 0: the header is next, 1: rows, 2: the end is written */
  int decimals[1];    /* per column (ncols of them): the decimals a rounded csv keeps, -1 for none */
} row_writer;

/* The uservalue of a row writer. */
enum { W_RES = 1, W_STORE, W_NAMES, W_TITLES, W_VALUE_LABELS, W_OVERRIDES, W_CACHES, W_KEYS, W_LABELS, W_VALUES,
       W_SLOTS = W_VALUES };

/* A row writer at work in one call of next(): its state, and the stack slots of its Lua side. */
typedef struct {
  lua_State *L;
  row_format format;
  text_buffer *out;
  csv_style csv;
  int decimal_comma, guard;
  char locale_point;
  const char *eol;
  size_t eol_len, ncols;
  const int *decimals;
  /* stack slots; 0 for what the writer does not have */
  int res, names, titles, value_labels, overrides, caches, keys, labels, values;
} writer;

static int writer_gc(lua_State *L) {
  row_writer *rw = luaL_checkudata(L, 1, ROW_WRITER_META);
  text_free(&rw->out);
  return 0;
}

static void check(writer *w, int status) {
  if (status != 0) luaL_error(w->L, "out of memory");
}

/* ---- cells ---- */

/* Whether Lua reads the text as a number (tonumber's own rule on each Lua version). */
static int reads_as_number(lua_State *L, const char *s, size_t n) {
  int yes;
  lua_pushlstring(L, s, n);
  yes = lua_isnumber(L, -1);
  lua_pop(L, 1);
  return yes;
}

/* A text a spreadsheet would run as a formula: it starts with = + - @, a tab or a CR and is no
 * number, with '.' or ',' as the decimal mark (-1, -12,5 and +3 stay as they are). */
static int formula_like(lua_State *L, const char *s, size_t n) {
  luaL_Buffer b;
  size_t i;
  int yes;
  if (n == 0 || !strchr("=+-@\t\r", s[0]) || s[0] == 0) return 0;
  if (reads_as_number(L, s, n)) return 0;
  if (!memchr(s, ',', n)) return 1;
  luaL_buffinit(L, &b);
  for (i = 0; i < n; i++) luaL_addchar(&b, s[i] == ',' ? '.' : s[i]);
  luaL_pushresult(&b);
  yes = !lua_isnumber(L, -1);
  lua_pop(L, 1);
  return yes;
}

/* A text cell; `is_string`: a Lua string (the formula guard looks at those only). */
static void put_text(writer *w, const char *s, size_t n, int is_string) {
  switch (w->format) {
  case FORMAT_CSV:
    check(w, csv_cell(w->out, s, n, w->guard && is_string && formula_like(w->L, s, n), &w->csv));
    return;
  case FORMAT_TSV: check(w, tsv_cell(w->out, s, n)); return;
  default: check(w, json_string(w->out, s, n)); return;
  }
}

/* A cell of number text (or a bare word): as it is in JSON, a cell in csv or tsv. */
static void put_bare(writer *w, const char *s, size_t n) {
  if (w->format == FORMAT_CSV) check(w, csv_cell(w->out, s, n, 0, &w->csv));
  else if (w->format == FORMAT_TSV) check(w, tsv_cell(w->out, s, n));
  else check(w, text_append(w->out, s, n));
}

static void put_nil(writer *w) {
  if (w->format == FORMAT_JSON || w->format == FORMAT_JSONL) check(w, text_append(w->out, "null", 4));
  else put_bare(w, "", 0);
}

/* A number's text with the decimal comma when asked (never in JSON). */
static void put_number_text(writer *w, char *s, size_t n) {
  if (w->decimal_comma && w->format != FORMAT_JSON && w->format != FORMAT_JSONL) {
    char *dot = memchr(s, '.', n);
    if (dot) *dot = ',';
  }
  put_bare(w, s, n);
}

static void put_double(writer *w, double v, size_t col) {
  char text[NUMBER_TEXT_SIZE];
  size_t n;
  if (v != v || v - v != 0) { put_nil(w); return; } /* NaN, +-inf: missing (null in JSON) */
  if (w->decimals[col] >= 0 && v != floor(v)) n = rounded_text(v, w->decimals[col], w->locale_point, text);
  else n = double_text(v, w->locale_point, text);
  put_number_text(w, text, n);
}

#if LUA_VERSION_NUM >= 503 /* integers are Lua numbers (doubles) on 5.1 and LuaJIT */
static void put_integer(writer *w, int64_t v) {
  char text[NUMBER_TEXT_SIZE];
  put_bare(w, text, integer_text(v, text));
}
#endif

static const int64_t pow10_integer[10] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
                                          1000000000};

/* A decimal held as v / 10^scale (amounts): written from the integer where that gives the
 * double's own shortest text (fewer than 16 digits and at least 1e-4: the decimal is then the
 * shortest text that reads back as the double), through the double otherwise. */
static void put_scaled(writer *w, int scale, int64_t v, size_t col) {
  char text[NUMBER_TEXT_SIZE], *p = text;
  uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v, whole, frac;
  int digits = scale;
  double d = scaled_value(scale, v);
  if (scale < 0 || scale > 9 || a >= 1000000000000000ull || (fabs(d) < 1e-4 && v != 0) ||
      (w->decimals[col] >= 0 && w->decimals[col] < scale && d != floor(d))) {
    put_double(w, d, col);
    return;
  }
  whole = a / (uint64_t)pow10_integer[scale];
  frac = a % (uint64_t)pow10_integer[scale];
  if (v < 0) *p++ = '-';
  p += sprintf(p, "%llu", (unsigned long long)whole);
  if (frac) {
    while (frac % 10 == 0) { frac /= 10; digits--; }
    p += sprintf(p, ".%0*llu", digits, (unsigned long long)frac);
  }
  put_number_text(w, text, (size_t)(p - text));
}

/* The value at idx, as today's Lua value of the cell: nil, number, boolean, string, or anything
 * else by tostring. */
static void put_value(writer *w, int idx, size_t col) {
  lua_State *L = w->L;
  size_t n;
  const char *s;
  int top = lua_gettop(L), t;
  idx = idx < 0 ? top + idx + 1 : idx;
  t = lua_type(L, idx);
  if (w->value_labels && t != LUA_TNIL) { /* csv labels=true: "validated" -> "Validés" */
    lua_rawgeti(L, w->value_labels, (int)col + 1);
    if (lua_istable(L, -1)) {
      lua_pushvalue(L, idx);
      lua_rawget(L, -2);
      if (lua_toboolean(L, -1)) {
        idx = lua_gettop(L);
        t = lua_type(L, idx);
      }
    }
  }
  switch (t) {
  case LUA_TNIL: put_nil(w); break;
  case LUA_TNUMBER:
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) { put_integer(w, (int64_t)lua_tointeger(L, idx)); break; }
#endif
    put_double(w, (double)lua_tonumber(L, idx), col);
    break;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx)) put_bare(w, "true", 4);
    else put_bare(w, "false", 5);
    break;
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &n);
    put_text(w, s, n, 1);
    break;
  default: /* tostring, as the Lua writers did */
#if LUA_VERSION_NUM >= 502
    s = luaL_tolstring(L, idx, &n);
#else
    lua_getglobal(L, "tostring");
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    s = lua_tolstring(L, -1, &n);
    if (!s) luaL_error(L, "'tostring' must return a string");
#endif
    put_text(w, s, n, 0);
  }
  lua_settop(L, top);
}

/* A key's cell from a store: its text made once per code, then copied. */
static void put_key(writer *w, size_t col, size_t key, uint32_t code) {
  lua_State *L = w->L;
  size_t n, before;
  const char *s;
  lua_rawgeti(L, w->caches, (int)col + 1);
  lua_rawgeti(L, -1, (int)code + 1);
  s = lua_tolstring(L, -1, &n);
  if (s) {
    check(w, text_append(w->out, s, n));
    lua_pop(L, 2);
    return;
  }
  lua_pop(L, 1);
  before = w->out->len;
  lua_rawgeti(L, w->labels, (int)key + 1);
  lua_rawgeti(L, -1, (int)code + 1);
  put_value(w, -1, col);
  lua_pop(L, 2);
  lua_pushlstring(L, w->out->data + before, w->out->len - before);
  lua_rawseti(L, -2, (int)code + 1);
  lua_pop(L, 1);
}

static void put_store_cell(writer *w, const result_store *st, size_t col, uint32_t g) {
  const store_column *c = &st->cols[col];
  if (c->source == SOURCE_KEY) {
    put_key(w, col, c->index, st->codes[c->index][g]);
  } else if (c->source == SOURCE_AGG) {
    const store_agg *a = &st->aggs[c->index];
    char text[32];
    if (!a->present[g]) { put_nil(w); return; }
    switch (a->out) {
    case OUT_NUMBER: put_double(w, a->numbers[g], col); return;
    case OUT_SCALED: put_scaled(w, a->scale, a->integers[g], col); return;
    case OUT_MONTH: format_month(a->integers[g], text); put_text(w, text, strlen(text), 1); return;
    case OUT_DATE: format_date(a->integers[g], text); put_text(w, text, strlen(text), 1); return;
    default:
#if LUA_VERSION_NUM >= 503
      put_integer(w, a->integers[g]);
#else
      put_double(w, (double)a->integers[g], col); /* a Lua number: 2^53 and above lose digits */
#endif
      return;
    }
  } else {
    lua_rawgeti(w->L, w->values, (int)col + 1);
    lua_rawgeti(w->L, -1, (int)g + 1);
    put_value(w, -1, col);
    lua_pop(w->L, 2);
  }
}

/* ---- rows ---- */

/* What comes before cell `col` of a row: the separator, or in JSON the comma and the key. */
static void put_separator(writer *w, size_t col) {
  if (w->format == FORMAT_CSV || w->format == FORMAT_TSV) {
    if (col > 0) check(w, text_append(w->out, &w->csv.sep, 1));
    return;
  }
  if (col > 0) check(w, text_append(w->out, ",", 1));
  lua_rawgeti(w->L, w->keys, (int)col + 1);
  {
    size_t n;
    const char *s = lua_tolstring(w->L, -1, &n);
    check(w, text_append(w->out, s, n));
  }
  lua_pop(w->L, 1);
}

static void end_row(writer *w) {
  if (w->format == FORMAT_JSON || w->format == FORMAT_JSONL) check(w, text_append(w->out, "}", 1));
  if (w->format == FORMAT_JSONL) check(w, text_append(w->out, "\n", 1));
  else if (w->format != FORMAT_JSON) check(w, text_append(w->out, w->eol, w->eol_len));
}

static void write_row(writer *w, const result_store *st, size_t i) {
  lua_State *L = w->L;
  size_t c;
  int row, override = 0;
  lua_rawgeti(L, w->res, (int)i);
  row = lua_gettop(L);
  if (w->overrides) {
    lua_rawgeti(L, w->overrides, (int)i);
    if (lua_istable(L, -1)) override = lua_gettop(L);
    else lua_pop(L, 1);
  }
  if (w->format == FORMAT_JSON || w->format == FORMAT_JSONL) check(w, text_append(w->out, "{", 1));
  for (c = 0; c < w->ncols; c++) {
    put_separator(w, c);
    if (override) { /* the first missing key of a total or Autres row says so */
      lua_rawgeti(L, override, (int)c + 1);
      if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        put_text(w, s, n, 0);
        lua_pop(L, 1);
        continue;
      }
      lua_pop(L, 1);
    }
    if (!lua_isnil(L, row)) {
      lua_rawgeti(L, w->names, (int)c + 1);
      lua_gettable(L, row);
      put_value(w, -1, c);
      lua_pop(L, 1);
    } else {
      put_store_cell(w, st, c, st->order[i - 1]);
    }
  }
  end_row(w);
  lua_settop(L, row - 1);
}

/* spec[name] into the uservalue at uv's slot k when it is a table, else false. */
static void keep_table(lua_State *L, int spec, const char *name, int uv, int k) {
  lua_getfield(L, spec, name);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 0);
  }
  lua_rawseti(L, uv, k);
}

/* core.row_writer(res, store | nil, spec) -> a writer whose w:next() gives the text in pieces of
 * about 64 kB, then nil. spec: format ("csv", "tsv", "json", "jsonl"), columns (names), and for
 * csv and tsv titles, sep, eol, bom, decimal_comma, formula_guard, decimals (by column),
 * value_labels (by column), overrides ({[row] = {[column] = text}}: total and Autres rows). */
static int row_writer_new(lua_State *L) {
  static const char *const formats[] = {"csv", "tsv", "json", "jsonl", NULL};
  row_writer *rw;
  result_store *st = NULL;
  size_t c, ncols, n;
  const char *s;
  int format, uv;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isnil(L, 2)) st = luaL_checkudata(L, 2, RESULT_STORE_META);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  lua_getfield(L, 3, "format");
  format = luaL_checkoption(L, -1, NULL, formats);
  lua_pop(L, 1);
  lua_getfield(L, 3, "columns");
  if (!lua_istable(L, -1)) luaL_error(L, "row_writer: spec.columns expected");
  ncols = compat_rawlen(L, -1);
  lua_pop(L, 1);
  if (st && st->ncols != ncols) luaL_error(L, "row_writer: the store has %d columns", (int)st->ncols);
  if (ncols > (size_t)INT_MAX / sizeof(int)) luaL_error(L, "row_writer: too many columns");
  rw = lua_newuserdata(L, sizeof *rw + (ncols ? ncols : 1) * sizeof(int)); /* 4 */
  memset(rw, 0, sizeof *rw);
  luaL_getmetatable(L, ROW_WRITER_META);
  lua_setmetatable(L, -2);
  rw->format = (row_format)format;
  rw->ncols = ncols;
  lua_getfield(L, 3, "sep");
  s = lua_tolstring(L, -1, &n);
  rw->sep = rw->format == FORMAT_TSV ? '\t' : s && n == 1 ? s[0] : ',';
  lua_pop(L, 1);
  lua_getfield(L, 3, "eol");
  s = lua_tolstring(L, -1, &n);
  if (s && n == 2) { memcpy(rw->eol, s, 2); rw->eol_len = 2; } else { rw->eol[0] = '\n'; rw->eol_len = 1; }
  lua_pop(L, 1);
  rw->decimal_comma = table_flag(L, 3, "decimal_comma");
  rw->guard = table_flag(L, 3, "formula_guard");
  rw->bom = table_flag(L, 3, "bom");
  lua_getfield(L, 3, "decimals");
  for (c = 0; c < ncols; c++) {
    rw->decimals[c] = -1;
    if (!lua_istable(L, -1)) continue;
    lua_rawgeti(L, -1, (int)c + 1);
    if (lua_type(L, -1) == LUA_TNUMBER) rw->decimals[c] = (int)lua_tointeger(L, -1);
    if (rw->decimals[c] > 9) rw->decimals[c] = 9;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  /* the Lua side, kept with the writer */
  lua_createtable(L, W_SLOTS, 0); /* 5 */
  uv = lua_gettop(L);
  lua_pushvalue(L, 1);
  lua_rawseti(L, uv, W_RES);
  if (st) lua_pushvalue(L, 2); else lua_pushboolean(L, 0);
  lua_rawseti(L, uv, W_STORE);
  lua_getfield(L, 3, "columns");
  lua_rawseti(L, uv, W_NAMES);
  keep_table(L, 3, "titles", uv, W_TITLES);
  keep_table(L, 3, "value_labels", uv, W_VALUE_LABELS);
  keep_table(L, 3, "overrides", uv, W_OVERRIDES);
  lua_createtable(L, (int)ncols, 0); /* a cache of each key column's cell texts, by code */
  for (c = 0; c < ncols; c++) {
    lua_newtable(L);
    lua_rawseti(L, -2, (int)c + 1);
  }
  lua_rawseti(L, uv, W_CACHES);
  lua_pushboolean(L, 0); /* the JSON keys, made with the header */
  lua_rawseti(L, uv, W_KEYS);
  if (st) {
    compat_getuservalue(L, 2);
    lua_rawgeti(L, -1, UV_LABELS);
    lua_rawseti(L, uv, W_LABELS);
    lua_rawgeti(L, -1, UV_VALUES);
    lua_rawseti(L, uv, W_VALUES);
    lua_pop(L, 1);
  }
  /* the rows: a store's, then (as ipairs) the row tables up to the first missing one — all of
   * a result made in Lua, those a script appended to a query's */
  for (rw->count = st ? st->count : 0;; rw->count++) {
    lua_rawgeti(L, 1, (int)rw->count + 1);
    if (lua_isnil(L, -1)) break;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  rw->next = 1;
  compat_setuservalue(L, 4);
  return 1;
}

/* The header: the BOM, csv and tsv titles, JSON's opening (and its keys, escaped once). */
static void write_header(writer *w, const row_writer *rw, int uv) {
  lua_State *L = w->L;
  size_t c, n;
  const char *s;
  if (rw->bom) check(w, text_append(w->out, "\xEF\xBB\xBF", 3));
  if (w->format == FORMAT_CSV || w->format == FORMAT_TSV) {
    int titles = w->titles ? w->titles : w->names;
    for (c = 0; c < w->ncols; c++) {
      put_separator(w, c);
      lua_rawgeti(L, titles, (int)c + 1);
      s = lua_tolstring(L, -1, &n);
      if (!s) luaL_error(L, "row_writer: column title %d is no string", (int)c + 1);
      put_text(w, s, n, 1);
      lua_pop(L, 1);
    }
    check(w, text_append(w->out, w->eol, w->eol_len));
    return;
  }
  lua_createtable(L, (int)w->ncols, 0);
  for (c = 0; c < w->ncols; c++) {
    size_t before = w->out->len;
    lua_rawgeti(L, w->names, (int)c + 1);
    s = lua_tolstring(L, -1, &n);
    if (!s) luaL_error(L, "row_writer: column name %d is no string", (int)c + 1);
    check(w, json_string(w->out, s, n));
    check(w, text_append(w->out, ":", 1));
    lua_pushlstring(L, w->out->data + before, w->out->len - before);
    lua_rawseti(L, -3, (int)c + 1);
    w->out->len = before;
    lua_pop(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_rawseti(L, uv, W_KEYS);
  w->keys = lua_gettop(L);
  if (w->format == FORMAT_JSON) check(w, text_append(w->out, rw->count ? "[\n" : "[]\n", rw->count ? 2 : 3));
}

/* A slot of the stack holding the uservalue's slot k when it is a table, else 0. */
static int slot_of(lua_State *L, int uv, int k) {
  lua_rawgeti(L, uv, k);
  if (lua_istable(L, -1)) return lua_gettop(L);
  lua_pop(L, 1);
  return 0;
}

/* w:next() -> the next piece of the text (about 64 kB, rows whole), or nil after the last. */
static int row_writer_next(lua_State *L) {
  row_writer *rw = luaL_checkudata(L, 1, ROW_WRITER_META);
  result_store *st = NULL;
  writer w;
  int uv;
  if (rw->stage == 2) return 0;
  lua_settop(L, 1);
  luaL_checkstack(L, 40, "row_writer");
  compat_getuservalue(L, 1);
  uv = lua_gettop(L);
  memset(&w, 0, sizeof w);
  w.L = L;
  w.format = rw->format;
  w.out = &rw->out;
  w.csv.sep = rw->sep;
  w.csv.one_column = rw->ncols == 1;
  w.decimal_comma = rw->decimal_comma;
  w.guard = rw->guard;
  w.locale_point = numparse_locale_point();
  w.eol = rw->eol;
  w.eol_len = rw->eol_len;
  w.ncols = rw->ncols;
  w.decimals = rw->decimals;
  w.res = slot_of(L, uv, W_RES);
  lua_rawgeti(L, uv, W_STORE);
  if (!lua_isboolean(L, -1)) st = luaL_checkudata(L, -1, RESULT_STORE_META);
  w.names = slot_of(L, uv, W_NAMES);
  w.titles = slot_of(L, uv, W_TITLES);
  w.value_labels = slot_of(L, uv, W_VALUE_LABELS);
  w.overrides = slot_of(L, uv, W_OVERRIDES);
  w.caches = slot_of(L, uv, W_CACHES);
  w.keys = slot_of(L, uv, W_KEYS);
  w.labels = slot_of(L, uv, W_LABELS);
  w.values = slot_of(L, uv, W_VALUES);
  rw->out.len = 0;
  if (rw->stage == 0) {
    write_header(&w, rw, uv);
    rw->stage = 1;
  }
  while (rw->next <= rw->count && rw->out.len < PIECE_BYTES) {
    if (w.format == FORMAT_JSON && rw->next > 1) check(&w, text_append(w.out, ",\n", 2));
    write_row(&w, st, rw->next);
    rw->next++;
  }
  if (rw->next > rw->count) {
    if (w.format == FORMAT_JSON && rw->count) check(&w, text_append(w.out, "\n]\n", 3));
    rw->stage = 2;
  }
  if (rw->out.len == 0) return 0;
  lua_pushlstring(L, rw->out.data, rw->out.len);
  rw->out.len = 0;
  return 1;
}

void register_writer_bindings(lua_State *L, int module) {
  static const luaL_Reg functions[] = {{"row_writer", row_writer_new}, {NULL, NULL}};
  static const luaL_Reg methods[] = {{"next", row_writer_next}, {NULL, NULL}};
  new_userdata_type(L, ROW_WRITER_META, writer_gc, methods);
  lua_pop(L, 1);
  set_functions(L, module, functions);
}

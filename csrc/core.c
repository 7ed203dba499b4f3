/* core.c — the Lua bindings of the engine: module cpf.core and the dataset userdata.
 * The only C file that includes Lua headers; arguments are checked here, errors from the
 * engine come back as values and leave as nil, message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "cpf.h"

#define DATASET_META "cpf.dataset"
#define SCRATCH_META "cpf.scratch"
#define SOURCE_META "cpf.source"
#define OUTPUT_META "cpf.output_file"

/* An engine error as Lua sees it: nil, message, kind ("data", "io", "memory", "cancelled",
 * "callback" or "usage"), so that a caller decides on the kind, never on the text. */
static int push_failure(lua_State *L, const cpf_error *err) {
  lua_pushnil(L);
  lua_pushstring(L, err->message[0] ? err->message : "failed");
  lua_pushstring(L, cpf_error_kind(err->code));
  return 3;
}

typedef struct {
  cpf_dataset *ds; /* NULL once closed */
} dataset_box;

/* ---- scratch memory owned by a userdata, so a Lua error cannot leak it ---- */
static int scratch_gc(lua_State *L) {
  void **box = luaL_checkudata(L, 1, SCRATCH_META);
  free(*box);
  *box = NULL;
  return 0;
}

/* A box on the stack whose pointer the collector frees: memory the engine returns is put there
 * before anything that can raise. */
static void **scratch_hold(lua_State *L) {
  void **box = lua_newuserdata(L, sizeof *box);
  *box = NULL;
  luaL_getmetatable(L, SCRATCH_META);
  lua_setmetatable(L, -2);
  return box;
}

static void *scratch_alloc(lua_State *L, size_t bytes) {
  void **box = scratch_hold(L);
  *box = malloc(bytes ? bytes : 1);
  if (*box == NULL) luaL_error(L, "out of memory");
  return *box;
}

/* ---- dataset userdata ---- */
static cpf_dataset *check_dataset(lua_State *L, int idx) {
  dataset_box *box = luaL_checkudata(L, idx, DATASET_META);
  if (box->ds == NULL) luaL_error(L, "dataset is closed");
  return box->ds;
}

static int dataset_close(lua_State *L) {
  dataset_box *box = luaL_checkudata(L, 1, DATASET_META);
  dataset_free(box->ds); /* idempotent: __gc, :close() and __close may all run */
  box->ds = NULL;
  return 0;
}

static int dataset_len(lua_State *L) {
  compat_pushint64(L, (int64_t)check_dataset(L, 1)->rows);
  return 1;
}

static int dataset_is_closed(lua_State *L) {
  dataset_box *box = luaL_checkudata(L, 1, DATASET_META);
  lua_pushboolean(L, box->ds == NULL);
  return 1;
}

static int dataset_memory_l(lua_State *L) {
  compat_pushint64(L, (int64_t)dataset_memory(check_dataset(L, 1)));
  return 1;
}

static int dataset_columns(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  size_t i;
  lua_createtable(L, (int)ds->ncols, 0);
  for (i = 0; i < ds->ncols; i++) {
    const cpf_column *col = &ds->cols[i];
    lua_createtable(L, 0, 6);
    lua_pushstring(L, col->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, col->label);
    lua_setfield(L, -2, "label");
    lua_pushstring(L, cpf_type_name(col->type));
    lua_setfield(L, -2, "type");
    compat_pushint64(L, (int64_t)col->missing);
    lua_setfield(L, -2, "missing");
    compat_pushint64(L, (int64_t)column_memory(col));
    lua_setfield(L, -2, "bytes");
    if (col->type == CPF_TYPE_DECIMAL) {
      lua_pushinteger(L, col->scale);
      lua_setfield(L, -2, "scale");
    }
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

static int column_arg(lua_State *L, const cpf_dataset *ds, int arg) {
  int idx;
  if (lua_type(L, arg) == LUA_TNUMBER) {
    int64_t n = compat_checkint64(L, arg);
    if (n < 1 || (size_t)n > ds->ncols)
      luaL_error(L, "column %d does not exist (the dataset has %d columns)", (int)n, (int)ds->ncols);
    return (int)n - 1;
  }
  idx = dataset_find_column(ds, luaL_checkstring(L, arg));
  if (idx < 0) luaL_error(L, "unknown column '%s'", lua_tostring(L, arg));
  return idx;
}

static size_t row_arg(lua_State *L, const cpf_dataset *ds, int arg) {
  int64_t i = compat_checkint64(L, arg);
  if (i < 1 || (uint64_t)i > ds->rows) {
    char msg[120]; /* lua_pushfstring knows no 64-bit formats */
    snprintf(msg, sizeof msg, "row %lld is out of range (the dataset has %lld rows)", (long long)i,
             (long long)ds->rows);
    luaL_error(L, "%s", msg);
  }
  return (size_t)(i - 1);
}

static const double pow10_double[10] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};

static void push_value(lua_State *L, const cpf_column *col, size_t row) {
  char buf[32];
  if (!column_is_valid(col, row)) {
    lua_pushnil(L);
    return;
  }
  switch (col->type) {
  case CPF_TYPE_STRING: {
    size_t len;
    uint32_t code = column_code_at(col, row);
    const char *s;
    if (code >= col->dict.count) { /* past the dictionary (a damaged snapshot): no value */
      lua_pushnil(L);
      break;
    }
    s = dictionary_value(&col->dict, code, &len);
    lua_pushlstring(L, s, len);
    break;
  }
  case CPF_TYPE_INTEGER: compat_pushint64(L, column_integer_at(col, row)); break;
  case CPF_TYPE_DECIMAL:
    /* both exact below 2^53, so the division gives the double nearest the decimal */
    lua_pushnumber(L, (lua_Number)column_integer_at(col, row) / pow10_double[col->scale]);
    break;
  case CPF_TYPE_NUMBER: lua_pushnumber(L, column_number_at(col, row)); break;
  case CPF_TYPE_MONTH:
    format_month(column_integer_at(col, row), buf);
    lua_pushstring(L, buf);
    break;
  case CPF_TYPE_DATE:
    format_date(column_integer_at(col, row), buf);
    lua_pushstring(L, buf);
    break;
  default: lua_pushnil(L); break;
  }
}

static int dataset_get(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  size_t row = row_arg(L, ds, 2);
  push_value(L, &ds->cols[column_arg(L, ds, 3)], row);
  return 1;
}

static void push_row(lua_State *L, const cpf_dataset *ds, size_t row) {
  size_t i;
  lua_createtable(L, 0, (int)ds->ncols);
  for (i = 0; i < ds->ncols; i++) {
    push_value(L, &ds->cols[i], row);
    lua_setfield(L, -2, ds->cols[i].name);
  }
}

static int dataset_row(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  push_row(L, ds, row_arg(L, ds, 2));
  return 1;
}

static int rows_step(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, lua_upvalueindex(1));
  int64_t i = (int64_t)lua_tonumber(L, lua_upvalueindex(2));
  if ((uint64_t)i >= ds->rows) return 0;
  lua_pushnumber(L, (lua_Number)(i + 1));
  lua_replace(L, lua_upvalueindex(2));
  compat_pushint64(L, i + 1);
  push_row(L, ds, (size_t)i);
  return 2;
}

static int dataset_rows(lua_State *L) {
  check_dataset(L, 1);
  lua_settop(L, 1);
  lua_pushnumber(L, 0);
  lua_pushcclosure(L, rows_step, 2);
  return 1;
}

/* ds:distinct(column) -> { {value =, count =}, ... }, most frequent first */
static int dataset_distinct(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  int column = column_arg(L, ds, 2);
  const cpf_column *col = &ds->cols[column];
  void **held = scratch_hold(L);
  query_distinct_value *values;
  size_t n, i;
  cpf_error err;
  memset(&err, 0, sizeof err);
  if (query_distinct(ds, column, &values, &n, &err) != 0) {
    lua_pushstring(L, err.message);
    return lua_error(L);
  }
  *held = values; /* freed by the collector, even if a push below raises */
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 2);
    if (values[i].missing) lua_pushnil(L);
    else if (col->type == CPF_TYPE_STRING) {
      size_t len;
      const char *s = dictionary_value(&col->dict, (uint32_t)values[i].value, &len);
      lua_pushlstring(L, s, len);
    } else if (col->type == CPF_TYPE_NUMBER) {
      double d;
      memcpy(&d, &values[i].value, sizeof d);
      lua_pushnumber(L, d);
    } else {
      /* reuse the value formatting of one row holding this value */
      cpf_column one = *col;
      int64_t v = values[i].value;
      one.missing_bits = NULL;
      one.data = &v;
      one.width = 8;
      push_value(L, &one, 0);
    }
    lua_setfield(L, -2, "value");
    compat_pushint64(L, (int64_t)values[i].count);
    lua_setfield(L, -2, "count");
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* ---- queries: plans are plain Lua tables, turned into C structs owned by userdata ---- */

static void *plan_alloc(lua_State *L, size_t bytes, int anchor) {
  void *p = lua_newuserdata(L, bytes ? bytes : 1);
  memset(p, 0, bytes ? bytes : 1);
  lua_rawseti(L, anchor, (int)compat_rawlen(L, anchor) + 1); /* kept alive until the call ends */
  return p;
}

static int plan_column(lua_State *L, int t, const char *field, const cpf_dataset *ds) {
  int64_t c;
  lua_getfield(L, t, field);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return -1; }
  c = (int64_t)lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (c < 1 || (size_t)c > ds->ncols) luaL_error(L, "query plan: bad column %d", (int)c);
  return (int)c - 1;
}

static double plan_number(lua_State *L, int t, const char *field, int *present) {
  double v;
  lua_getfield(L, t, field);
  *present = !lua_isnil(L, -1);
  v = *present ? luaL_checknumber(L, -1) : 0;
  lua_pop(L, 1);
  return v;
}

static int plan_flag(lua_State *L, int t, const char *field) {
  int v;
  lua_getfield(L, t, field);
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static void parse_key(lua_State *L, int t, const cpf_dataset *ds, query_key *key, int anchor) {
  const char *kind;
  t = t < 0 ? lua_gettop(L) + t + 1 : t;
  luaL_checktype(L, t, LUA_TTABLE);
  memset(key, 0, sizeof *key);
  lua_getfield(L, t, "kind");
  kind = luaL_checkstring(L, -1);
  if (strcmp(kind, "column") == 0) key->kind = KEY_COLUMN;
  else if (strcmp(kind, "year") == 0) key->kind = KEY_YEAR;
  else if (strcmp(kind, "month") == 0) key->kind = KEY_MONTH;
  else if (strcmp(kind, "remap") == 0) key->kind = KEY_REMAP;
  else if (strcmp(kind, "bucket") == 0) key->kind = KEY_BUCKET;
  else luaL_error(L, "query plan: unknown key kind '%s'", kind);
  lua_pop(L, 1);
  key->column = plan_column(L, t, "column", ds);
  if (key->column < 0) luaL_error(L, "query plan: key without a column");
  key->force_by_value = plan_flag(L, t, "by_value");
  if (key->kind == KEY_REMAP) {
    const cpf_column *col = &ds->cols[key->column];
    int32_t *remap;
    uint32_t i;
    int present;
    if (col->type != CPF_TYPE_STRING) luaL_error(L, "query plan: remap key on a non-string column");
    remap = plan_alloc(L, (size_t)col->dict.count * sizeof *remap, anchor);
    lua_getfield(L, t, "remap");
    luaL_checktype(L, -1, LUA_TTABLE);
    key->remap_outputs = (uint32_t)plan_number(L, t, "outputs", &present);
    for (i = 0; i < col->dict.count; i++) {
      lua_rawgeti(L, -1, (int)i + 1);
      remap[i] = (int32_t)luaL_checknumber(L, -1);
      if (remap[i] >= (int32_t)key->remap_outputs) luaL_error(L, "query plan: remap code out of range");
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    key->remap = remap;
  } else if (key->kind == KEY_BUCKET) {
    double *bounds;
    size_t i, nb;
    lua_getfield(L, t, "bounds");
    luaL_checktype(L, -1, LUA_TTABLE);
    nb = compat_rawlen(L, -1);
    bounds = plan_alloc(L, nb * sizeof *bounds, anchor);
    for (i = 0; i < nb; i++) {
      lua_rawgeti(L, -1, (int)i + 1);
      bounds[i] = luaL_checknumber(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    key->bounds = bounds;
    key->nbounds = nb;
  }
}

static void parse_cond(lua_State *L, int t, const cpf_dataset *ds, query_cond *cond, int anchor) {
  const char *op;
  t = t < 0 ? lua_gettop(L) + t + 1 : t;
  luaL_checktype(L, t, LUA_TTABLE);
  memset(cond, 0, sizeof *cond);
  lua_getfield(L, t, "op");
  op = luaL_checkstring(L, -1);
  lua_pop(L, 1);
  if (strcmp(op, "mask") == 0) {
    cond->kind = COND_MASK;
    lua_getfield(L, t, "key");
    parse_key(L, -1, ds, &cond->key, anchor);
    lua_pop(L, 1);
    lua_getfield(L, t, "mask");
    cond->mask = (const uint8_t *)luaL_checklstring(L, -1, &cond->mask_len);
    lua_pop(L, 1); /* the string stays referenced by the plan */
  } else if (strcmp(op, "range") == 0) {
    cond->kind = COND_RANGE;
    cond->column = plan_column(L, t, "column", ds);
    if (cond->column < 0 || ds->cols[cond->column].type == CPF_TYPE_STRING)
      luaL_error(L, "query plan: range on a string column");
    cond->lo = plan_number(L, t, "lo", &cond->has_lo);
    cond->hi = plan_number(L, t, "hi", &cond->has_hi);
    cond->lo_open = plan_flag(L, t, "lo_open");
    cond->hi_open = plan_flag(L, t, "hi_open");
  } else if (strcmp(op, "null") == 0) {
    cond->kind = COND_NULL;
    cond->column = plan_column(L, t, "column", ds);
    if (cond->column < 0) luaL_error(L, "query plan: null test without a column");
    cond->negate = plan_flag(L, t, "negate");
  } else if (strcmp(op, "rows") == 0) {
    size_t len;
    cond->kind = COND_ROWS;
    lua_getfield(L, t, "mask");
    cond->rows = (const uint8_t *)luaL_checklstring(L, -1, &len);
    if (len != ds->rows) luaL_error(L, "query plan: row mask of %d bytes for %d rows", (int)len, (int)ds->rows);
    lua_pop(L, 1);
  } else if (strcmp(op, "not") == 0 || strcmp(op, "and") == 0 || strcmp(op, "or") == 0) {
    size_t i, nc;
    cond->kind = op[0] == 'n' ? COND_NOT : op[0] == 'a' ? COND_AND : COND_OR;
    lua_getfield(L, t, "conds");
    luaL_checktype(L, -1, LUA_TTABLE);
    nc = compat_rawlen(L, -1);
    if (cond->kind == COND_NOT && nc != 1) luaL_error(L, "query plan: 'not' takes one condition");
    cond->children = plan_alloc(L, nc * sizeof *cond->children, anchor);
    cond->nchildren = nc;
    for (i = 0; i < nc; i++) {
      lua_rawgeti(L, -1, (int)i + 1);
      parse_cond(L, -1, ds, &cond->children[i], anchor);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  } else {
    luaL_error(L, "query plan: unknown condition '%s'", op);
  }
}

static const char *const agg_kind_names[] = {"count", "count_values", "sum", "mean", "min",
                                             "max", "ratio", "wmean", "distinct", "quantile", NULL};

static void parse_agg(lua_State *L, int t, const cpf_dataset *ds, query_agg *agg, int anchor) {
  int i, present;
  const char *kind;
  t = t < 0 ? lua_gettop(L) + t + 1 : t;
  luaL_checktype(L, t, LUA_TTABLE);
  memset(agg, 0, sizeof *agg);
  lua_getfield(L, t, "kind");
  kind = luaL_checkstring(L, -1);
  for (i = 0; agg_kind_names[i]; i++)
    if (strcmp(kind, agg_kind_names[i]) == 0) break;
  if (!agg_kind_names[i]) luaL_error(L, "query plan: unknown aggregate '%s'", kind);
  agg->kind = (agg_kind)i;
  lua_pop(L, 1);
  agg->column = plan_column(L, t, "column", ds);
  agg->column2 = plan_column(L, t, "column2", ds);
  if (agg->kind != AGG_COUNT && agg->column < 0) luaL_error(L, "query plan: %s without a column", kind);
  if ((agg->kind == AGG_RATIO || agg->kind == AGG_WMEAN) && agg->column2 < 0)
    luaL_error(L, "query plan: %s needs two columns", kind);
  agg->q = plan_number(L, t, "q", &present);
  lua_getfield(L, t, "filter");
  if (!lua_isnil(L, -1)) {
    agg->filter = plan_alloc(L, sizeof *agg->filter, anchor);
    parse_cond(L, -1, ds, agg->filter, anchor);
  }
  lua_pop(L, 1);
}

static void push_int_like(lua_State *L, out_kind out, int scale, int64_t v) {
  char buf[32];
  switch (out) {
  case OUT_SCALED: lua_pushnumber(L, (lua_Number)v / pow10_double[scale]); break;
  case OUT_MONTH: format_month(v, buf); lua_pushstring(L, buf); break;
  case OUT_DATE: format_date(v, buf); lua_pushstring(L, buf); break;
  default: compat_pushint64(L, v); break;
  }
}

/* The value a key code stands for; nil for the "no value" code and for remap/bucket keys,
 * whose labels the Lua side knows. */
static void push_key_value(lua_State *L, const cpf_dataset *ds, const query_key *key, uint32_t code) {
  const cpf_column *col = &ds->cols[key->column];
  char buf[32];
  if (code + 1 >= key->cardinality || key->kind == KEY_REMAP || key->kind == KEY_BUCKET) {
    if (key->kind == KEY_REMAP || key->kind == KEY_BUCKET) compat_pushint64(L, code);
    else lua_pushnil(L);
    return;
  }
  switch (key->kind) {
  case KEY_YEAR: compat_pushint64(L, key->base + code); return;
  case KEY_MONTH: format_month(key->base + code, buf); lua_pushstring(L, buf); return;
  default: break;
  }
  if (col->type == CPF_TYPE_STRING) {
    size_t len;
    const char *s = dictionary_value(&col->dict, code, &len);
    lua_pushlstring(L, s, len);
  } else if (key->by_value) {
    union { int64_t i; double d; } v;
    memcpy(&v, dictionary_value(&key->values, code, NULL), sizeof v);
    if (col->type == CPF_TYPE_NUMBER) lua_pushnumber(L, v.d);
    else push_int_like(L, column_out_kind(col), col->scale, v.i);
  } else {
    push_int_like(L, column_out_kind(col), col->scale, key->base + code);
  }
}

/* core.key_values(ds, key) -> values (one per code, the "no value" code excluded), count */
static int query_key_values(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  int anchor;
  query_key *key;
  uint32_t *codes, c;
  cpf_error err;
  lua_settop(L, 2);
  lua_newtable(L);
  anchor = 3;
  key = plan_alloc(L, sizeof *key, anchor);
  parse_key(L, 2, ds, key, anchor);
  codes = scratch_alloc(L, (ds->rows ? ds->rows : 1) * sizeof *codes);
  memset(&err, 0, sizeof err);
  if (key_compute(ds, key, codes, &err) != 0) {
    key_free(key);
    lua_pushstring(L, err.message);
    return lua_error(L);
  }
  lua_createtable(L, (int)key->cardinality, 0);
  for (c = 0; c + 1 < key->cardinality; c++) {
    push_key_value(L, ds, key, c);
    lua_rawseti(L, -2, (int)c + 1);
  }
  compat_pushint64(L, (int64_t)key->cardinality - 1);
  key_free(key);
  return 2;
}

typedef struct {
  query_result res;
  query_key *keys;
  size_t nkeys;
  query_agg *aggs;
  size_t naggs;
} query_state;

static int query_state_gc(lua_State *L) {
  query_state *qs = lua_touserdata(L, 1);
  size_t k;
  query_result_free(&qs->res, qs->nkeys, qs->aggs, qs->naggs);
  for (k = 0; k < qs->nkeys; k++) key_free(&qs->keys[k]);
  qs->nkeys = qs->naggs = 0;
  return 0;
}

/* core.query(ds, plan) -> {groups = n, rows = {...}, keys = {{...}, ...}, aggs = {{...}, ...}}
 * as columns; key and aggregate values are nil where a group has none. */
static int query_execute(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  int anchor;
  size_t k, j;
  query_cond *where = NULL;
  query_state *qs;
  cpf_error err;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_newtable(L);
  anchor = 3;
  qs = lua_newuserdata(L, sizeof *qs); /* index 4: frees the results even if a push raises */
  memset(qs, 0, sizeof *qs);
  lua_newtable(L);
  lua_pushcfunction(L, query_state_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushvalue(L, anchor); /* the plan's structs stay alive until the finalizer has run */
  lua_setfield(L, -2, "plan");
  lua_setmetatable(L, -2);
  lua_getfield(L, 2, "where");
  if (!lua_isnil(L, -1)) {
    where = plan_alloc(L, sizeof *where, anchor);
    parse_cond(L, -1, ds, where, anchor);
  }
  lua_pop(L, 1);
  lua_getfield(L, 2, "keys");
  if (!lua_isnil(L, -1)) {
    size_t nkeys = compat_rawlen(L, -1);
    qs->keys = plan_alloc(L, nkeys * sizeof *qs->keys, anchor);
    for (k = 0; k < nkeys; k++) {
      lua_rawgeti(L, -1, (int)k + 1);
      parse_key(L, -1, ds, &qs->keys[k], anchor);
      lua_pop(L, 1);
    }
    qs->nkeys = nkeys;
  }
  lua_pop(L, 1);
  lua_getfield(L, 2, "aggs");
  if (!lua_isnil(L, -1)) {
    size_t naggs = compat_rawlen(L, -1);
    qs->aggs = plan_alloc(L, naggs * sizeof *qs->aggs, anchor);
    for (k = 0; k < naggs; k++) {
      lua_rawgeti(L, -1, (int)k + 1);
      parse_agg(L, -1, ds, &qs->aggs[k], anchor);
      lua_pop(L, 1);
    }
    qs->naggs = naggs;
  }
  lua_pop(L, 1);
  memset(&err, 0, sizeof err);
  if (query_run(ds, where, qs->keys, qs->nkeys, qs->aggs, qs->naggs, &qs->res, &err) != 0) {
    lua_pushstring(L, err.message); /* no position: the message names the problem itself */
    return lua_error(L);
  }
  lua_createtable(L, 0, 4);
  compat_pushint64(L, (int64_t)qs->res.ngroups);
  lua_setfield(L, -2, "groups");
  lua_createtable(L, (int)qs->res.ngroups, 0);
  for (j = 0; j < qs->res.ngroups; j++) {
    compat_pushint64(L, qs->res.rows[j]);
    lua_rawseti(L, -2, (int)j + 1);
  }
  lua_setfield(L, -2, "rows");
  lua_createtable(L, (int)qs->nkeys, 0);
  for (k = 0; k < qs->nkeys; k++) {
    lua_createtable(L, (int)qs->res.ngroups, 0);
    for (j = 0; j < qs->res.ngroups; j++) {
      push_key_value(L, ds, &qs->keys[k], qs->res.key_codes[k][j]);
      lua_rawseti(L, -2, (int)j + 1);
    }
    lua_rawseti(L, -2, (int)k + 1);
  }
  lua_setfield(L, -2, "keys");
  lua_createtable(L, (int)qs->naggs, 0);
  for (k = 0; k < qs->naggs; k++) {
    const query_agg *agg = &qs->aggs[k];
    lua_createtable(L, (int)qs->res.ngroups, 0);
    for (j = 0; j < qs->res.ngroups; j++) {
      if (!agg->present[j]) continue;
      if (agg->out == OUT_NUMBER) lua_pushnumber(L, agg->numbers[j]);
      else push_int_like(L, agg->out, agg->scale, agg->integers[j]);
      lua_rawseti(L, -2, (int)j + 1);
    }
    lua_rawseti(L, -2, (int)k + 1);
  }
  lua_setfield(L, -2, "aggs");
  lua_getfield(L, 2, "row_groups");
  if (lua_toboolean(L, -1)) { /* for custom reducers: the group of every row, 0 = not selected */
    lua_createtable(L, (int)ds->rows, 0);
    for (j = 0; j < ds->rows; j++) {
      lua_pushinteger(L, (lua_Integer)query_row_group(&qs->res, j));
      lua_rawseti(L, -2, (int)j + 1);
    }
    lua_setfield(L, -3, "row_groups");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, query_state_gc); /* free the C results now, not at the next collection */
  lua_pushvalue(L, 4);
  lua_call(L, 1, 0);
  return 1;
}

/* ds:dictionary(column) -> the distinct values of a string column, in code order */
static int dataset_dictionary(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  const cpf_column *col = &ds->cols[column_arg(L, ds, 2)];
  uint32_t c;
  if (col->type != CPF_TYPE_STRING) return luaL_error(L, "column '%s' is not a string column", col->name);
  lua_createtable(L, (int)col->dict.count, 0);
  for (c = 0; c < col->dict.count; c++) {
    size_t len;
    const char *s = dictionary_value(&col->dict, c, &len);
    lua_pushlstring(L, s, len);
    lua_rawseti(L, -2, (int)c + 1);
  }
  return 1;
}

/* ---- snapshots ---- */

/* ds:save(path [, tag]) -> true | nil, message */
static int dataset_save(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  const char *path = luaL_checkstring(L, 2);
  size_t tag_len = 0;
  const char *tag = luaL_optlstring(L, 3, "", &tag_len);
  cpf_error err;
  memset(&err, 0, sizeof err);
  if (snapshot_save(ds, path, tag, tag_len, &err) != 0) {
    return push_failure(L, &err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ds:is_snapshot() -> true when the dataset is a mapped snapshot */
static int dataset_is_snapshot(lua_State *L) {
  lua_pushboolean(L, check_dataset(L, 1)->mapping != NULL);
  return 1;
}

/* core.open_snapshot(path, verify) -> dataset, tag | nil, message */
static int open_snapshot(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int verify = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
  dataset_box *box = lua_newuserdata(L, sizeof *box);
  cpf_error err;
  box->ds = NULL;
  luaL_getmetatable(L, DATASET_META);
  lua_setmetatable(L, -2);
  memset(&err, 0, sizeof err);
  box->ds = snapshot_open(path, verify, &err);
  if (!box->ds) {
    return push_failure(L, &err);
  }
  lua_pushlstring(L, box->ds->tag, box->ds->tag_len);
  return 2;
}

/* nil, "path: reason", "io" after a failed stat (errno set) */
static int push_stat_failure(lua_State *L, const char *path) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", path, strerror(errno));
  lua_pushliteral(L, "io");
  return 3;
}

/* core.file_signature(path) -> "size=...;mtime=...;..." | nil, message: what a cached snapshot
 * records of the CSV it was made from. Size and mtime can be put back by a user (`touch -r`);
 * the inode and the change time (ctime) cannot, so an edited file is always seen as changed. */
static int file_signature(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) return push_stat_failure(L, path);
  {
    char buf[192];
    snprintf(buf, sizeof buf, "size=%lld;mtime=%lld.%09ld;dev=%llu;ino=%llu;ctime=%lld.%09ld",
             (long long)st.st_size, (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec,
             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
             (long long)st.st_ctim.tv_sec, (long)st.st_ctim.tv_nsec);
    lua_pushstring(L, buf);
  }
  return 1;
}

/* core.same_file(a, b) -> true when both paths exist and name the same file (device and inode:
 * links and other spellings of a path included): an output must never overwrite an input. */
static int same_file(lua_State *L) {
  const char *a = luaL_checkstring(L, 1), *b = luaL_checkstring(L, 2);
  struct stat sa, sb;
  lua_pushboolean(L, stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
                     sa.st_ino == sb.st_ino);
  return 1;
}

/* core.file_kind(path) -> "regular" | "directory" | "fifo" | "device" | "other" | nil, message
 * (symlinks followed): whether a file can be read twice, e.g. its header before its rows. */
static int file_kind(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) return push_stat_failure(L, path);
  lua_pushstring(L, S_ISREG(st.st_mode) ? "regular" : S_ISDIR(st.st_mode) ? "directory"
                    : S_ISFIFO(st.st_mode) ? "fifo"
                    : (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) ? "device" : "other");
  return 1;
}

/* ---- output files: what res:write writes a path through ---- */

/* core.output_file(path) -> writer | nil, message: a temporary beside path, renamed over it by
 * writer:commit(); writer:abort() (or the collector) removes it. */
static int output_file_new(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  output_file *out = lua_newuserdata(L, sizeof *out);
  cpf_error err;
  memset(&err, 0, sizeof err);
  out->fd = -1;
  out->tmp = out->path = NULL;
  luaL_getmetatable(L, OUTPUT_META);
  lua_setmetatable(L, -2);
  if (output_file_open(out, path, &err) != 0) {
    return push_failure(L, &err);
  }
  return 1;
}

static int output_result(lua_State *L, int status, const cpf_error *err) {
  if (status == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return push_failure(L, err);
}

/* writer:write(s) -> writer | nil, message (file:write's convention) */
static int output_file_write_l(lua_State *L) {
  output_file *out = luaL_checkudata(L, 1, OUTPUT_META);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  cpf_error err;
  memset(&err, 0, sizeof err);
  if (output_file_write(out, s, len, &err) != 0) return output_result(L, -1, &err);
  lua_settop(L, 1);
  return 1;
}

static int output_file_commit_l(lua_State *L) {
  output_file *out = luaL_checkudata(L, 1, OUTPUT_META);
  cpf_error err;
  memset(&err, 0, sizeof err);
  return output_result(L, output_file_commit(out, &err), &err);
}

static int output_file_abort_l(lua_State *L) {
  output_file_abort(luaL_checkudata(L, 1, OUTPUT_META));
  return 0;
}

/* core.concat({ds, ...}, {source, ...}) -> dataset | nil, message */
static int concat_datasets(lua_State *L) {
  size_t n, i;
  cpf_dataset **parts;
  const char **sources;
  dataset_box *box;
  cpf_error err;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  n = compat_rawlen(L, 1);
  if (compat_rawlen(L, 2) != n) return luaL_error(L, "concat: one source name per dataset expected");
  parts = lua_newuserdata(L, (n ? n : 1) * sizeof *parts);
  sources = lua_newuserdata(L, (n ? n : 1) * sizeof *sources);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, 1, (int)i + 1);
    parts[i] = check_dataset(L, -1);
    lua_pop(L, 1);
    lua_rawgeti(L, 2, (int)i + 1);
    sources[i] = luaL_checkstring(L, -1);
    lua_pop(L, 1); /* still referenced by the table */
  }
  box = lua_newuserdata(L, sizeof *box);
  box->ds = NULL;
  luaL_getmetatable(L, DATASET_META);
  lua_setmetatable(L, -2);
  memset(&err, 0, sizeof err);
  box->ds = dataset_concat(parts, n, sources, &err);
  if (!box->ds) {
    return push_failure(L, &err);
  }
  return 1;
}

/* ---- loading ---- */
static char sep_option(lua_State *L, int opts, const char *field) {
  const char *s;
  size_t len;
  char c;
  lua_getfield(L, opts, field);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
  s = lua_tolstring(L, -1, &len);
  if (s == NULL || len != 1)
    luaL_error(L, "option '%s' must be a one-character string", field);
  c = s[0];
  lua_pop(L, 1);
  return c;
}

/* ---- sources: a file opened once, read by header() then load() ---- */
static cpf_source *check_source(lua_State *L, int idx) {
  cpf_source *src = luaL_checkudata(L, idx, SOURCE_META);
  if (!src->is_open) luaL_error(L, "source is closed");
  return src;
}

static int source_close_l(lua_State *L) {
  source_close(luaL_checkudata(L, 1, SOURCE_META));
  return 0;
}

/* core.open(path) -> source | nil, message */
static int open_source(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  cpf_source *src = lua_newuserdata(L, sizeof *src);
  cpf_error err;
  memset(src, 0, sizeof *src);
  src->fd = -1; /* __gc closes it */
  luaL_getmetatable(L, SOURCE_META);
  lua_setmetatable(L, -2);
  memset(&err, 0, sizeof err);
  if (source_open(src, path, &err) != 0) {
    return push_failure(L, &err);
  }
  return 1;
}

/* source:header([sep]) -> labels, separator | nil, message */
static int source_header(lua_State *L) {
  cpf_source *src = check_source(L, 1);
  const char *sep_arg = luaL_optstring(L, 2, "");
  char sep_found = 0;
  char **labels = NULL;
  size_t count = 0, i;
  cpf_error err;
  memset(&err, 0, sizeof err);
  if (loader_read_header(src, sep_arg[0], &labels, &count, &sep_found, &err) != 0) {
    return push_failure(L, &err);
  }
  /* copy into Lua, then free: a Lua allocation error would leak them, so make room first */
  if (!lua_checkstack(L, 4)) {
    loader_free_header(labels, count);
    return luaL_error(L, "stack overflow");
  }
  lua_createtable(L, (int)count, 0);
  for (i = 0; i < count; i++) {
    lua_pushstring(L, labels[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  loader_free_header(labels, count);
  lua_pushlstring(L, &sep_found, 1);
  return 2;
}

typedef struct {
  lua_State *L;
  int function; /* stack index of the progress function */
} progress_context;

static int call_progress(void *ud, size_t done, size_t total, size_t rows, cpf_error *err) {
  progress_context *ctx = ud;
  lua_State *L = ctx->L;
  int stop = 0;
  lua_pushvalue(L, ctx->function);
  lua_pushnumber(L, (lua_Number)done);
  lua_pushnumber(L, (lua_Number)total);
  lua_pushnumber(L, (lua_Number)rows);
  if (lua_pcall(L, 3, 1, 0) != 0) {
    const char *msg = lua_tostring(L, -1);
    cpf_error_set(err, CPF_ERR_CALLBACK, "progress callback failed: %s",
                  msg ? msg : "(error object is not a string)");
    stop = 1;
  } else if (lua_toboolean(L, -1) == 0 && !lua_isnil(L, -1)) {
    cpf_error_set(err, CPF_ERR_CANCELLED, "load cancelled by the progress callback");
    stop = 1;
  }
  lua_pop(L, 1);
  return stop;
}

/* source:load(columns, opts): columns = { {name=, label=, type=}, ... } in file order */
static int source_load(lua_State *L) {
  cpf_source *src = check_source(L, 1);
  size_t ncols, i;
  cpf_column_spec *specs;
  cpf_load_options opts;
  progress_context progress;
  dataset_box *box;
  cpf_error err;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  memset(&opts, 0, sizeof opts);
  opts.sep = sep_option(L, 3, "sep");
  opts.decimal_mark = sep_option(L, 3, "decimal");
  opts.libcsv_only = plan_flag(L, 3, "libcsv_only");
  lua_getfield(L, 3, "threads");
  if (!lua_isnil(L, -1)) {
    int64_t t = (int64_t)luaL_checknumber(L, -1);
    if (t < 1 || t > 64) return luaL_error(L, "option 'threads' must be a whole number from 1 to 64");
    opts.threads = (size_t)t;
  }
  lua_pop(L, 1);
  if (opts.decimal_mark && opts.decimal_mark != '.' && opts.decimal_mark != ',')
    return luaL_error(L, "option 'decimal' must be \".\" or \",\"");
  lua_getfield(L, 3, "progress"); /* stays at index 4 */
  if (!lua_isnil(L, 4)) {
    luaL_checktype(L, 4, LUA_TFUNCTION);
    progress.L = L;
    progress.function = 4;
    opts.progress = call_progress;
    opts.progress_ud = &progress;
  }
  ncols = compat_rawlen(L, 2);
  specs = lua_newuserdata(L, (ncols ? ncols : 1) * sizeof *specs); /* index 5 */
  for (i = 0; i < ncols; i++) {
    const char *type_name;
    lua_rawgeti(L, 2, (int)i + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "label");
    lua_getfield(L, -3, "type");
    specs[i].name = lua_tostring(L, -3);
    specs[i].label = lua_tostring(L, -2);
    type_name = lua_tostring(L, -1);
    specs[i].skip = plan_flag(L, -4, "skip");
    if (!specs[i].name || !specs[i].label || !type_name)
      return luaL_error(L, "column %d: name, label and type must be strings", (int)i + 1);
    if (cpf_type_from_name(type_name, &specs[i].type) != 0)
      return luaL_error(L, "column '%s': unknown type '%s'", specs[i].name, type_name);
    lua_pop(L, 4); /* the strings stay alive in the columns table */
  }
  box = lua_newuserdata(L, sizeof *box);
  box->ds = NULL;
  luaL_getmetatable(L, DATASET_META);
  lua_setmetatable(L, -2);
  memset(&err, 0, sizeof err);
  box->ds = loader_load(src, &opts, specs, ncols, &err);
  if (box->ds == NULL) {
    return push_failure(L, &err);
  }
  return 1;
}

static const luaL_Reg dataset_methods[] = {
  {"close", dataset_close},     {"is_closed", dataset_is_closed}, {"columns", dataset_columns},
  {"get", dataset_get},         {"row", dataset_row},             {"rows", dataset_rows},
  {"distinct", dataset_distinct}, {"memory", dataset_memory_l},   {"dictionary", dataset_dictionary},
  {"save", dataset_save}, {"is_snapshot", dataset_is_snapshot},
  {NULL, NULL}};

/* Monotonic wall-clock seconds, for progress and benchmarks (os.clock is CPU time). */
static int monotonic_clock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
  return 1;
}

static int stderr_is_tty(lua_State *L) {
  lua_pushboolean(L, isatty(2));
  return 1;
}

static const luaL_Reg output_file_methods[] = {
  {"write", output_file_write_l}, {"commit", output_file_commit_l}, {"abort", output_file_abort_l},
  {NULL, NULL}};

static const luaL_Reg source_methods[] = {
  {"header", source_header}, {"load", source_load}, {"close", source_close_l}, {NULL, NULL}};

static const luaL_Reg module_functions[] = {
  {"open", open_source}, {"stderr_is_tty", stderr_is_tty}, {"clock", monotonic_clock},
  {"query", query_execute}, {"key_values", query_key_values}, {"concat", concat_datasets},
  {"open_snapshot", open_snapshot}, {"file_signature", file_signature}, {"same_file", same_file}, {"file_kind", file_kind},
  {"output_file", output_file_new},
  {NULL, NULL}};

#if defined(__GNUC__)
#define CPF_EXPORT __attribute__((visibility("default")))
#else
#define CPF_EXPORT
#endif

CPF_EXPORT int luaopen_cpf_core(lua_State *L);

CPF_EXPORT int luaopen_cpf_core(lua_State *L) {
  luaL_newmetatable(L, SCRATCH_META);
  lua_pushcfunction(L, scratch_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);

  luaL_newmetatable(L, OUTPUT_META);
  lua_pushcfunction(L, output_file_abort_l); /* a writer never committed leaves no temporary */
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  compat_setfuncs(L, output_file_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  luaL_newmetatable(L, SOURCE_META);
  lua_pushcfunction(L, source_close_l);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  compat_setfuncs(L, source_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  luaL_newmetatable(L, DATASET_META);
  lua_pushcfunction(L, dataset_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, dataset_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, dataset_len);
  lua_setfield(L, -2, "__len");
  lua_newtable(L);
  compat_setfuncs(L, dataset_methods);
  lua_setfield(L, -2, "__index");

  lua_newtable(L);
  compat_setfuncs(L, module_functions);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "dataset_metatable"); /* the Lua layer adds its methods to __index */
  return 1;
}

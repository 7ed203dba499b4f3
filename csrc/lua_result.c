/* lua_result.c — a query's result kept columnar in C (a "result store"): the key codes and
 * aggregate arrays query_run computed, the groups' order (sorted here, see order.c), and the
 * Lua values of the key codes used. Lua rows are built only when read (store:fill): a block of
 * rows at a time for a lazy result on Lua 5.3+, all of them at once where a table cannot be lazy
 * (Lua 5.1 and LuaJIT ignore __len on tables). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lua_bindings.h"

static void free_owned(result_store *st) {
  size_t k;
  if (st->owner) {
    for (k = 0; k < st->nkeys; k++) {
      if (st->codes) pool_free(st->pool, st->codes[k]);
      if (st->rank) free(st->rank[k]);
    }
    /* an allocation that failed while the store was being filled leaves aggs NULL (naggs set) */
    for (k = 0; st->aggs && k < st->naggs; k++) {
      pool_free(st->pool, st->aggs[k].integers);
      pool_free(st->pool, st->aggs[k].numbers);
      pool_free(st->pool, st->aggs[k].present);
    }
    free(st->codes);
    free(st->rank);
    free(st->cardinality);
    free(st->aggs);
    free(st->cols);
    pool_free(st->pool, st->order);
    pool_unref(st->pool);
  } else {
    if (st->own_cols) free(st->cols);
    free(st->order);
  }
  memset(st, 0, sizeof *st);
}

static int store_gc(lua_State *L) {
  free_owned(luaL_checkudata(L, 1, RESULT_STORE_META));
  return 0;
}

static result_store *check_store(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, RESULT_STORE_META);
}

static void *store_alloc(lua_State *L, size_t bytes) {
  void *p = cpf_calloc(bytes ? bytes : 1, 1);
  if (!p) luaL_error(L, "out of memory");
  return p;
}

/* A new empty store and its uservalue table {names, labels, values}; both on the stack. */
static result_store *new_store(lua_State *L) {
  result_store *st = lua_newuserdata(L, sizeof *st);
  memset(st, 0, sizeof *st);
  luaL_getmetatable(L, RESULT_STORE_META);
  lua_setmetatable(L, -2);
  lua_createtable(L, 4, 0);
  lua_newtable(L);
  lua_rawseti(L, -2, UV_NAMES);
  lua_newtable(L);
  lua_rawseti(L, -2, UV_LABELS);
  lua_newtable(L);
  lua_rawseti(L, -2, UV_VALUES);
  lua_pushvalue(L, -1);
  compat_setuservalue(L, -3);
  return st;
}

/* Sorts the store's rows by `specs`, each {kind, index, desc} already resolved to arrays. */
static void sort_rows(lua_State *L, result_store *st, const order_spec *specs, size_t nspecs) {
  cpf_error err;
  memset(&err, 0, sizeof err);
  if (order_groups(st->pool, st->order, st->count, specs, nspecs, &err) != 0) raise_failure(L, &err);
}

void push_key_value(lua_State *L, const cpf_dataset *ds, const query_key *key, uint32_t code) {
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
  case KEY_MONTH_OF_YEAR: compat_pushint64(L, key->base + code); return;
  case KEY_QUARTER:
  case KEY_SEMESTER: { /* 2024-T1, 2024-S2: the French labels, as annee and mois are French */
    int64_t p = key->base + code;
    int per_year = key->kind == KEY_QUARTER ? 4 : 2;
    int64_t year = p >= 0 ? p / per_year : -((-p + per_year - 1) / per_year);
    int part = (int)(p - year * per_year) + 1; /* 1 to 4 */
    snprintf(buf, sizeof buf, "%04lld-%c%c", (long long)year, key->kind == KEY_QUARTER ? 'T' : 'S',
             (char)('0' + (part >= 1 && part <= 4 ? part : 0)));
    lua_pushstring(L, buf);
    return;
  }
  default: break;
  }
  if (col->type == CPF_TYPE_STRING) {
    size_t len;
    const char *s = dictionary_value(&col->dict, code, &len);
    lua_pushlstring(L, s, len);
  } else if (key->by_value) { /* the value's 8 bytes: a double's, or an integer */
    int64_t v;
    memcpy(&v, dictionary_value(&key->values, code, NULL), sizeof v);
    push_stored_value(L, col, v);
  } else {
    push_stored_integer(L, column_out_kind(col), col->scale, key->base + code);
  }
}

int push_result_store(lua_State *L, const cpf_dataset *ds, query_result *res, query_key *keys,
                      size_t nkeys, query_agg *aggs, size_t naggs, int plan_keys) {
  result_store *st = new_store(L);
  int uv = lua_gettop(L);
  size_t k, g;
  order_spec *specs;
  cpf_error err;
  memset(&err, 0, sizeof err);
  st->owner = 1;
  st->pool = pool_ref(res->pool); /* the arrays go back to it */
  st->ngroups = st->count = res->ngroups;
  st->nkeys = nkeys;
  st->naggs = naggs;
  if (!(st->order = pool_calloc(st->pool, res->ngroups * sizeof *st->order))) luaL_error(L, "out of memory");
  for (g = 0; g < res->ngroups; g++) st->order[g] = (uint32_t)g;
  st->codes = store_alloc(L, (nkeys ? nkeys : 1) * sizeof *st->codes);
  st->rank = store_alloc(L, (nkeys ? nkeys : 1) * sizeof *st->rank);
  st->cardinality = store_alloc(L, (nkeys ? nkeys : 1) * sizeof *st->cardinality);
  st->aggs = store_alloc(L, (naggs ? naggs : 1) * sizeof *st->aggs);
  for (k = 0; k < nkeys; k++) { /* the arrays move into the store: the run frees nothing of them */
    st->codes[k] = res->key_codes[k];
    res->key_codes[k] = NULL;
    st->cardinality[k] = keys[k].cardinality;
  }
  for (k = 0; k < naggs; k++) {
    st->aggs[k].out = aggs[k].out;
    st->aggs[k].scale = aggs[k].scale;
    st->aggs[k].integers = aggs[k].integers;
    st->aggs[k].numbers = aggs[k].numbers;
    st->aggs[k].present = aggs[k].present;
    aggs[k].integers = NULL;
    aggs[k].numbers = NULL;
    aggs[k].present = NULL;
  }
  /* each key: its codes ranked, and the Lua value of each code the groups use */
  lua_rawgeti(L, uv, UV_LABELS);
  for (k = 0; k < nkeys; k++) {
    query_key *key = &keys[k];
    uint8_t *seen;
    uint32_t c;
    st->rank[k] = store_alloc(L, (key->cardinality ? key->cardinality : 1) * sizeof(uint32_t));
    if (order_rank_key(ds, key, st->codes[k], st->ngroups, key->rank, st->rank[k], &err) != 0)
      return raise_failure(L, &err);
    if (key->kind == KEY_REMAP || key->kind == KEY_BUCKET) { /* labels the Lua side made */
      lua_rawgeti(L, plan_keys, (int)k + 1);
      lua_getfield(L, -1, "labels");
      if (!lua_istable(L, -1)) luaL_error(L, "query plan: key %d without labels", (int)k + 1);
      lua_remove(L, -2);
      lua_rawseti(L, -2, (int)k + 1);
      continue;
    }
    lua_newtable(L);
    seen = scratch_alloc(L, key->cardinality ? key->cardinality : 1);
    memset(seen, 0, key->cardinality ? key->cardinality : 1);
    for (g = 0; g < st->ngroups; g++) {
      c = st->codes[k][g];
      if (seen[c] || c + 1 >= key->cardinality) continue;
      seen[c] = 1;
      push_key_value(L, ds, key, c);
      lua_rawseti(L, -3, (int)c + 1);
    }
    lua_pop(L, 1); /* the scratch */
    lua_rawseti(L, -2, (int)k + 1);
  }
  lua_pop(L, 1);
  /* the default order: by the keys, the first one first, the missing value last */
  specs = scratch_alloc(L, (nkeys ? nkeys : 1) * sizeof *specs);
  for (k = 0; k < nkeys; k++) {
    memset(&specs[k], 0, sizeof specs[k]);
    specs[k].kind = ORDER_KEY;
    specs[k].codes = st->codes[k];
    specs[k].rank = st->rank[k];
  }
  sort_rows(L, st, specs, nkeys);
  lua_pop(L, 2); /* the scratch and the uservalue: the store on top */
  /* Lua's collector sees a small userdata: tell it what the store holds outside its heap, so
   * that the results a script drops are collected at the pace of their real size — not all at
   * once after gigabytes, each query meanwhile touching fresh pages */
  {
    size_t bytes = res->ngroups * sizeof *st->order + res->nslots * naggs * (2 * sizeof(int64_t) + 1);
    for (k = 0; k < nkeys; k++) bytes += res->ngroups * sizeof(uint32_t) + keys[k].cardinality * sizeof(uint32_t);
    int running = 1;
#ifdef LUA_GCISRUNNING
    running = lua_gc(L, LUA_GCISRUNNING, 0); /* a script that stopped the collector keeps it so */
#endif
    bytes = pool_hint(st->pool, bytes);
    if (running && bytes >= 1024) lua_gc(L, LUA_GCSTEP, (int)(bytes / 1024 < INT_MAX ? bytes / 1024 : INT_MAX));
    if (running && pool_wants_collection(st->pool)) { /* a step may not reach old results (generational) */
      int kb;
      lua_gc(L, LUA_GCCOLLECT, 0);
      kb = lua_gc(L, LUA_GCCOUNT, 0); /* -1 inside a finalizer, where no collection runs */
      pool_collected(st->pool, kb > 0 ? (size_t)kb * 1024 : 0);
    }
  }
  return 1;
}

/* store:set_columns{{name, key = k} | {name, agg = i} | {name, values = {by group}}, ...}:
 * what each result column reads (indices from 1). */
static int store_set_columns(lua_State *L) {
  result_store *st = check_store(L, 1);
  size_t i, n;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!st->owner || st->cols) luaL_error(L, "result store: columns already set");
  n = compat_rawlen(L, 2);
  st->cols = store_alloc(L, (n ? n : 1) * sizeof *st->cols);
  compat_getuservalue(L, 1);
  for (i = 0; i < n; i++) {
    int64_t index;
    lua_rawgeti(L, 2, (int)i + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_rawgeti(L, -1, 1);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "result store: column %d without a name", (int)i + 1);
    lua_rawgeti(L, 3, UV_NAMES);
    lua_insert(L, -2);
    lua_rawseti(L, -2, (int)i + 1);
    lua_pop(L, 1);
    lua_getfield(L, -1, "key");
    lua_getfield(L, -2, "agg");
    lua_getfield(L, -3, "values");
    if (!lua_isnil(L, -3)) {
      index = (int64_t)luaL_checknumber(L, -3);
      if (index < 1 || (size_t)index > st->nkeys) luaL_error(L, "result store: bad key %d", (int)index);
      st->cols[i].source = SOURCE_KEY;
      st->cols[i].index = (size_t)index - 1;
    } else if (!lua_isnil(L, -2)) {
      index = (int64_t)luaL_checknumber(L, -2);
      if (index < 1 || (size_t)index > st->naggs) luaL_error(L, "result store: bad aggregate %d", (int)index);
      st->cols[i].source = SOURCE_AGG;
      st->cols[i].index = (size_t)index - 1;
    } else {
      luaL_checktype(L, -1, LUA_TTABLE);
      lua_rawgeti(L, 3, UV_VALUES);
      lua_pushvalue(L, -2);
      lua_rawseti(L, -2, (int)i + 1);
      lua_pop(L, 1);
      st->cols[i].source = SOURCE_VALUES;
      st->cols[i].index = i;
    }
    lua_pop(L, 4);
  }
  st->ncols = n;
  return 0;
}

/* The stack slots a row build reads: the names, each key's labels, the Lua-computed values. */
typedef struct {
  int names, labels, values;
} row_context;

static void push_context(lua_State *L, int store, row_context *cx) {
  compat_getuservalue(L, store);
  lua_rawgeti(L, -1, UV_NAMES);
  cx->names = lua_gettop(L);
  lua_rawgeti(L, -2, UV_LABELS);
  cx->labels = lua_gettop(L);
  lua_rawgeti(L, -3, UV_VALUES);
  cx->values = lua_gettop(L);
}

/* Pushes the value of column c in group g (nil where it has none). */
static void push_cell(lua_State *L, const result_store *st, const row_context *cx, size_t c, uint32_t g) {
  const store_column *col = &st->cols[c];
  switch (col->source) {
  case SOURCE_KEY:
    lua_rawgeti(L, cx->labels, (int)col->index + 1);
    lua_rawgeti(L, -1, (int)st->codes[col->index][g] + 1);
    lua_remove(L, -2);
    return;
  case SOURCE_AGG: {
    const store_agg *a = &st->aggs[col->index];
    if (!a->present[g]) lua_pushnil(L);
    else if (a->out == OUT_NUMBER) lua_pushnumber(L, a->numbers[g]);
    else push_stored_integer(L, a->out, a->scale, a->integers[g]);
    return;
  }
  default:
    lua_rawgeti(L, cx->values, (int)c + 1);
    lua_rawgeti(L, -1, (int)g + 1);
    lua_remove(L, -2);
  }
}

/* The stack slots of a row build, per column: its name, and the table its cells come from (a
 * key's labels by code, a Lua-computed column's values by group; 0 for an aggregate). Pushed
 * once per fill, so that each cell costs one lookup. */
static int push_columns(lua_State *L, const result_store *st, const row_context *cx) {
  int base = lua_gettop(L) + 1;
  size_t c;
  luaL_checkstack(L, (int)(2 * st->ncols + 4), "result store: too many columns");
  for (c = 0; c < st->ncols; c++) {
    const store_column *col = &st->cols[c];
    lua_rawgeti(L, cx->names, (int)c + 1);
    if (col->source == SOURCE_KEY) lua_rawgeti(L, cx->labels, (int)col->index + 1);
    else if (col->source == SOURCE_VALUES) lua_rawgeti(L, cx->values, (int)c + 1);
    else lua_pushnil(L);
  }
  return base;
}

/* Pushes the row table of group g: the cells that have a value, under their column names. */
static void push_row(lua_State *L, const result_store *st, int columns, uint32_t g) {
  size_t c;
  lua_createtable(L, 0, (int)st->ncols);
  for (c = 0; c < st->ncols; c++) {
    const store_column *col = &st->cols[c];
    int name = columns + 2 * (int)c;
    if (col->source == SOURCE_AGG) {
      const store_agg *a = &st->aggs[col->index];
      if (!a->present[g]) continue;
      lua_pushvalue(L, name);
      if (a->out == OUT_NUMBER) lua_pushnumber(L, a->numbers[g]);
      else push_stored_integer(L, a->out, a->scale, a->integers[g]);
    } else {
      lua_pushvalue(L, name);
      lua_rawgeti(L, name + 1, col->source == SOURCE_KEY ? (int)st->codes[col->index][g] + 1 : (int)g + 1);
      if (lua_isnil(L, -1)) { lua_pop(L, 2); continue; }
    }
    lua_rawset(L, -3);
  }
}

/* store:fill(t [, from, to]) -> t, with t[i] = row i for every row (or rows from..to, those
 * t does not hold yet: a row already read keeps its table). A lazy result fills a block of
 * rows at its first read there: one call for many rows, as ipairs reads them in turn. */
static int store_fill(lua_State *L) {
  result_store *st = check_store(L, 1);
  row_context cx;
  size_t i, from = 1, to;
  int partial = !lua_isnoneornil(L, 3), columns;
  luaL_checktype(L, 2, LUA_TTABLE);
  to = st->count;
  if (partial) {
    int64_t a = compat_checkint64(L, 3), b = compat_checkint64(L, 4);
    from = a < 1 ? 1 : (size_t)a;
    if (b < (int64_t)to) to = b < 0 ? 0 : (size_t)b;
  }
  lua_settop(L, 2);
  push_context(L, 1, &cx);
  columns = push_columns(L, st, &cx);
  for (i = from; i <= to; i++) {
    if (partial) {
      lua_rawgeti(L, 2, (int)i);
      if (!lua_isnil(L, -1)) { lua_pop(L, 1); continue; }
      lua_pop(L, 1);
    }
    push_row(L, st, columns, st->order[i - 1]);
    lua_rawseti(L, 2, (int)i);
  }
  lua_settop(L, 2);
  return 1;
}

/* store:agg_values(i) -> aggregate i's value in each group (by group number, from 1), for
 * the measures computed in Lua from the aggregates. */
static int store_agg_values(lua_State *L) {
  result_store *st = check_store(L, 1);
  int64_t k = compat_checkint64(L, 2);
  const store_agg *a;
  size_t g;
  if (k < 1 || (size_t)k > st->naggs) luaL_argerror(L, 2, "no such aggregate");
  a = &st->aggs[k - 1];
  lua_createtable(L, (int)st->ngroups, 0);
  for (g = 0; g < st->ngroups; g++) {
    if (!a->present[g]) continue;
    if (a->out == OUT_NUMBER) lua_pushnumber(L, a->numbers[g]);
    else push_stored_integer(L, a->out, a->scale, a->integers[g]);
    lua_rawseti(L, -2, (int)g + 1);
  }
  return 1;
}

/* Reads specs {{column = c, desc = bool}, ...} at idx into order specs; a column computed in
 * Lua is copied into a double array (scratch on the stack). false when a Lua column holds
 * something else than numbers: the Lua side sorts then. */
static int read_specs(lua_State *L, result_store *st, int idx, order_spec **out, size_t *n) {
  size_t i, ns = compat_rawlen(L, idx);
  order_spec *specs = scratch_alloc(L, (ns ? ns : 1) * sizeof *specs);
  int top;
  compat_getuservalue(L, 1);
  lua_rawgeti(L, -1, UV_VALUES);
  lua_remove(L, -2);
  top = lua_gettop(L);
  for (i = 0; i < ns; i++) {
    int64_t c;
    const store_column *col;
    order_spec *s = &specs[i];
    memset(s, 0, sizeof *s);
    lua_rawgeti(L, idx, (int)i + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_getfield(L, -1, "column");
    c = (int64_t)luaL_checknumber(L, -1);
    if (c < 1 || (size_t)c > st->ncols) luaL_error(L, "result store: bad sort column %d", (int)c);
    s->desc = table_flag(L, -2, "desc");
    lua_pop(L, 2);
    col = &st->cols[c - 1];
    if (col->source == SOURCE_KEY) {
      s->kind = ORDER_KEY;
      s->codes = st->codes[col->index];
      s->rank = st->rank[col->index];
    } else if (col->source == SOURCE_AGG) {
      const store_agg *a = &st->aggs[col->index];
      s->kind = a->out == OUT_NUMBER ? ORDER_NUMBER : ORDER_INTEGER;
      s->integers = a->integers;
      s->numbers = a->numbers;
      s->present = a->present;
    } else {
      double *numbers;
      uint8_t *present;
      size_t g;
      numbers = scratch_alloc(L, (st->ngroups ? st->ngroups : 1) * sizeof *numbers);
      present = scratch_alloc(L, st->ngroups ? st->ngroups : 1);
      lua_rawgeti(L, top, (int)c);
      for (g = 0; g < st->ngroups; g++) {
        int t;
        lua_rawgeti(L, -1, (int)g + 1);
        t = lua_type(L, -1);
        if (t != LUA_TNUMBER && t != LUA_TNIL) { lua_settop(L, top - 1); return 0; }
        present[g] = t == LUA_TNUMBER;
        numbers[g] = present[g] ? lua_tonumber(L, -1) : 0;
        lua_pop(L, 1);
      }
      lua_pop(L, 1); /* the scratches stay on the stack until the call returns */
      s->kind = ORDER_NUMBER;
      s->numbers = numbers;
      s->present = present;
    }
  }
  *out = specs;
  *n = ns;
  return 1;
}

/* store:view([specs], [n]) -> a new store over the same arrays: this one's rows sorted by
 * specs ({{column = index, desc = bool}, ...}, stable) and cut to n; nil when a column computed
 * in Lua holds text, which the Lua side then sorts. */
/* A view of the store at idx pushed: the same arrays and Lua tables, its own copy of the rows'
 * order, the parent kept alive by the view's uservalue (left below the view: popped by the
 * caller with lua_remove, or used to set tables of the view's own). */
static result_store *new_view(lua_State *L, int idx) {
  result_store *st = check_store(L, idx), *view;
  view = new_store(L);
  *view = *st;
  view->owner = 0;
  view->own_cols = 0;
  view->pool = NULL; /* the parent's arrays, given back by the parent */
  view->order = NULL; /* until copied: the gc must not free the parent's */
  view->order = store_alloc(L, (st->count ? st->count : 1) * sizeof *view->order);
  memcpy(view->order, st->order, st->count * sizeof *view->order);
  compat_getuservalue(L, idx);
  lua_rawgeti(L, -1, UV_NAMES);
  lua_rawseti(L, -3, UV_NAMES);
  lua_rawgeti(L, -1, UV_LABELS);
  lua_rawseti(L, -3, UV_LABELS);
  lua_rawgeti(L, -1, UV_VALUES);
  lua_rawseti(L, -3, UV_VALUES);
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, UV_PARENT);
  lua_pop(L, 1); /* the view on top */
  return view;
}

static int store_view(lua_State *L) {
  result_store *st = check_store(L, 1), *view;
  order_spec *specs = NULL;
  size_t nspecs = 0;
  int has_specs = !lua_isnoneornil(L, 2);
  lua_settop(L, 3);
  if (has_specs) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!read_specs(L, st, 2, &specs, &nspecs)) return 0;
  }
  view = new_view(L, 1);
  if (has_specs) sort_rows(L, view, specs, nspecs);
  if (!lua_isnil(L, 3)) {
    int64_t n = compat_checkint64(L, 3);
    if (n < 0) luaL_argerror(L, 3, "negative limit");
    if ((uint64_t)n < view->count) view->count = (size_t)n;
  }
  return 1;
}

/* store:values(c) -> the values of column c (from 1) row by row, in the store's order (nil
 * where a row has none): what a condition on a result column tests, without row tables. */
static int store_values(lua_State *L) {
  result_store *st = check_store(L, 1);
  int64_t c = compat_checkint64(L, 2);
  row_context cx;
  size_t i;
  if (c < 1 || (size_t)c > st->ncols) luaL_argerror(L, 2, "no such column");
  lua_settop(L, 2);
  push_context(L, 1, &cx);
  lua_createtable(L, (int)st->count, 0);
  for (i = 0; i < st->count; i++) {
    push_cell(L, st, &cx, (size_t)c - 1, st->order[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* store:key_values(k) -> the value of key k (from 1) in each group, by group number (from 1):
 * what a measure computed in Lua per group reads of its group (a share within some keys). */
static int store_key_values(lua_State *L) {
  result_store *st = check_store(L, 1);
  int64_t k = compat_checkint64(L, 2);
  row_context cx;
  size_t g;
  if (k < 1 || (size_t)k > st->nkeys || !st->codes || !st->codes[k - 1]) luaL_argerror(L, 2, "no such key");
  lua_settop(L, 2);
  push_context(L, 1, &cx);
  lua_rawgeti(L, cx.labels, (int)k);
  lua_createtable(L, (int)st->ngroups, 0);
  for (g = 0; g < st->ngroups; g++) {
    lua_rawgeti(L, -2, (int)st->codes[k - 1][g] + 1);
    lua_rawseti(L, -2, (int)g + 1);
  }
  return 1;
}

/* store:select(mask) -> a view of the rows whose byte of mask (a string of count() bytes) is not
 * 0, in the same order. */
static int store_select(lua_State *L) {
  result_store *st = check_store(L, 1), *view;
  size_t len, i, n = 0;
  const char *mask = luaL_checklstring(L, 2, &len);
  if (len != st->count) luaL_argerror(L, 2, "one byte per row expected");
  lua_settop(L, 2);
  view = new_view(L, 1);
  for (i = 0; i < st->count; i++)
    if (mask[i]) view->order[n++] = st->order[i];
  view->count = n;
  return 1;
}

/* store:extend{{name, values = {by group}} or {name, rows = {by row}}, ...} -> a view with these
 * columns after the store's (values by group number, from 1, as set_columns takes them, or row
 * by row in the store's order). */
static int store_extend(lua_State *L) {
  result_store *st = check_store(L, 1), *view;
  size_t n, i;
  luaL_checktype(L, 2, LUA_TTABLE);
  n = compat_rawlen(L, 2);
  lua_settop(L, 2);
  view = new_view(L, 1); /* 3 */
  view->cols = NULL;
  view->cols = store_alloc(L, (st->ncols + n) * sizeof *view->cols);
  view->own_cols = 1;
  memcpy(view->cols, st->cols, st->ncols * sizeof *view->cols);
  /* names and values tables of its own: the parent's entries, then the new columns' */
  compat_getuservalue(L, 3); /* 4 */
  lua_createtable(L, (int)(st->ncols + n), 0); /* 5: names */
  lua_createtable(L, (int)(st->ncols + n), 0); /* 6: values */
  compat_getuservalue(L, 1); /* 7 */
  lua_rawgeti(L, 7, UV_NAMES); /* 8 */
  lua_rawgeti(L, 7, UV_VALUES); /* 9 */
  for (i = 1; i <= st->ncols; i++) {
    lua_rawgeti(L, 8, (int)i);
    lua_rawseti(L, 5, (int)i);
    lua_rawgeti(L, 9, (int)i);
    lua_rawseti(L, 6, (int)i);
  }
  lua_settop(L, 6);
  for (i = 0; i < n; i++) {
    size_t c = st->ncols + i;
    lua_rawgeti(L, 2, (int)i + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_rawgeti(L, -1, 1);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "result store: column %d without a name", (int)(c + 1));
    lua_rawseti(L, 5, (int)c + 1);
    lua_getfield(L, -1, "values");
    if (lua_isnil(L, -1)) { /* {name, rows = {by row}}: set by group here, in one presized array */
      size_t r;
      lua_pop(L, 1);
      lua_getfield(L, -1, "rows");
      luaL_checktype(L, -1, LUA_TTABLE);
      lua_createtable(L, (int)st->ngroups, 0);
      for (r = 0; r < st->count; r++) {
        lua_rawgeti(L, -2, (int)r + 1);
        lua_rawseti(L, -2, (int)st->order[r] + 1);
      }
      lua_remove(L, -2);
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_rawseti(L, 6, (int)c + 1);
    lua_pop(L, 1);
    view->cols[c].source = SOURCE_VALUES;
    view->cols[c].index = c;
  }
  view->ncols = st->ncols + n;
  lua_rawseti(L, 4, UV_VALUES);
  lua_rawseti(L, 4, UV_NAMES);
  lua_settop(L, 3);
  return 1;
}

/* store:join_key(c, lookup, refcols) -> values, mask, types for a key column c: each distinct
 * value of the key (its code's label) is looked up once in lookup {value -> reference row
 * number}; values[j] is refcols[j] (by reference row) set by group for the rows that match,
 * mask a string of one byte per row (1 = matched), types the set of the key values' Lua types.
 * nil when column c is not a key (the Lua side then reads the values row by row). */
static int store_join_key(lua_State *L) {
  result_store *st = check_store(L, 1);
  int64_t c = compat_checkint64(L, 2);
  size_t k, card, code, i, j, nref;
  int32_t *map;
  char *mask;
  int labels, outs, base;
  if (c < 1 || (size_t)c > st->ncols) luaL_argerror(L, 2, "no such column");
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 4);
  if (st->cols[c - 1].source != SOURCE_KEY) { lua_pushnil(L); return 1; }
  k = st->cols[c - 1].index;
  card = st->cardinality[k];
  nref = compat_rawlen(L, 4);
  map = scratch_alloc(L, (card ? card : 1) * sizeof *map); /* 5 */
  mask = scratch_alloc(L, st->count ? st->count : 1);      /* 6 */
  compat_getuservalue(L, 1);
  lua_rawgeti(L, -1, UV_LABELS);
  lua_rawgeti(L, -1, (int)k + 1);
  labels = lua_gettop(L);
  lua_newtable(L); /* the types */
  for (code = 0; code < card; code++) {
    map[code] = -1;
    lua_rawgeti(L, labels, (int)code + 1);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); continue; }
    lua_pushstring(L, luaL_typename(L, -1));
    lua_pushboolean(L, 1);
    lua_rawset(L, labels + 1);
    lua_rawget(L, 3);
    if (lua_type(L, -1) == LUA_TNUMBER) {
      lua_Number n = lua_tonumber(L, -1);
      if (n >= 1 && n <= (lua_Number)INT32_MAX) map[code] = (int32_t)n - 1;
    }
    lua_pop(L, 1);
  }
  /* the outputs, each beside its reference column on the stack */
  luaL_checkstack(L, (int)(2 * nref + 4), "join: too many columns");
  lua_createtable(L, (int)nref, 0);
  outs = lua_gettop(L);
  base = outs + 1;
  for (j = 0; j < nref; j++) {
    lua_rawgeti(L, 4, (int)j + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_createtable(L, (int)st->ngroups, 0);
    lua_pushvalue(L, -1);
    lua_rawseti(L, outs, (int)j + 1);
  }
  for (i = 0; i < st->count; i++) {
    uint32_t g = st->order[i];
    int32_t m = map[st->codes[k][g]];
    mask[i] = (char)(m >= 0);
    if (m < 0) continue;
    for (j = 0; j < nref; j++) {
      lua_rawgeti(L, base + 2 * (int)j, (int)m + 1);
      lua_rawseti(L, base + 2 * (int)j + 1, (int)g + 1);
    }
  }
  lua_pushvalue(L, outs);
  lua_pushlstring(L, mask, st->count);
  lua_pushvalue(L, labels + 1);
  return 3;
}

static int store_count(lua_State *L) {
  compat_pushint64(L, (int64_t)check_store(L, 1)->count);
  return 1;
}

static int store_groups(lua_State *L) {
  compat_pushint64(L, (int64_t)check_store(L, 1)->ngroups);
  return 1;
}

static const luaL_Reg store_methods[] = {
  {"set_columns", store_set_columns}, {"fill", store_fill}, {"agg_values", store_agg_values},
  {"view", store_view}, {"values", store_values}, {"key_values", store_key_values},
  {"select", store_select}, {"extend", store_extend}, {"join_key", store_join_key},
  {"count", store_count}, {"groups", store_groups},
  {NULL, NULL}};

void register_result_bindings(lua_State *L, int module) {
  (void)module;
  new_userdata_type(L, RESULT_STORE_META, store_gc, store_methods);
  lua_pop(L, 1);
}

/* lua_query.c — core.prepare, core.query and core.key_values: a query plan (plain Lua tables)
 * parsed once into the engine's structs, run by query_run as often as asked, its result handed
 * over as a result store (lua_result.c). */
#include <stdlib.h>
#include <string.h>

#include "lua_bindings.h"

/* ---- plans: plain Lua tables, turned into C structs owned by userdata ---- */

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
  else if (strcmp(kind, "quarter") == 0) key->kind = KEY_QUARTER;
  else if (strcmp(kind, "semester") == 0) key->kind = KEY_SEMESTER;
  else if (strcmp(kind, "month_of_year") == 0) key->kind = KEY_MONTH_OF_YEAR;
  else if (strcmp(kind, "remap") == 0) key->kind = KEY_REMAP;
  else if (strcmp(kind, "bucket") == 0) key->kind = KEY_BUCKET;
  else luaL_error(L, "query plan: unknown key kind '%s'", kind);
  lua_pop(L, 1);
  key->column = plan_column(L, t, "column", ds);
  if (key->column < 0) luaL_error(L, "query plan: key without a column");
  key->force_by_value = table_flag(L, t, "by_value");
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
  lua_getfield(L, t, "rank"); /* remap / bucket: the order of the labels, one rank per code */
  if (!lua_isnil(L, -1)) {
    size_t i, n = compat_rawlen(L, -1);
    int32_t *rank = plan_alloc(L, (n ? n : 1) * sizeof *rank, anchor);
    uint32_t outputs = key->kind == KEY_REMAP ? key->remap_outputs
                     : key->kind == KEY_BUCKET ? (uint32_t)key->nbounds + 1 : 0;
    if (n != outputs) luaL_error(L, "query plan: %d ranks for %d labels", (int)n, (int)outputs);
    for (i = 0; i < n; i++) {
      lua_rawgeti(L, -1, (int)i + 1);
      rank[i] = (int32_t)luaL_checknumber(L, -1);
      if (rank[i] < 0 || (size_t)rank[i] >= n) luaL_error(L, "query plan: rank out of range");
      lua_pop(L, 1);
    }
    key->rank = rank;
  }
  lua_pop(L, 1);
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
    cond->lo_open = table_flag(L, t, "lo_open");
    cond->hi_open = table_flag(L, t, "hi_open");
  } else if (strcmp(op, "null") == 0) {
    cond->kind = COND_NULL;
    cond->column = plan_column(L, t, "column", ds);
    if (cond->column < 0) luaL_error(L, "query plan: null test without a column");
    cond->negate = table_flag(L, t, "negate");
  } else if (strcmp(op, "rows") == 0) {
    size_t len;
    cond->kind = COND_ROWS;
    lua_getfield(L, t, "mask");
    cond->rows = (const uint8_t *)luaL_checklstring(L, -1, &len);
    if (len != ds->rows) luaL_error(L, "query plan: row mask of %d bytes for %d rows", (int)len, (int)ds->rows);
    lua_pop(L, 1);
  } else if (strcmp(op, "runs") == 0) {
    const value_runs *runs;
    cond->kind = COND_RUNS;
    cond->column = plan_column(L, t, "column", ds);
    if (cond->column < 0 || ds->cols[cond->column].type == CPF_TYPE_STRING)
      luaL_error(L, "query plan: runs on a string column");
    lua_getfield(L, t, "runs");
    runs = luaL_checkudata(L, -1, VALUE_RUNS_META);
    if (runs->column != cond->column || runs->rows != ds->rows)
      luaL_error(L, "query plan: runs made for another column");
    cond->run_lo = runs->lo;
    cond->run_hi = runs->hi;
    cond->nruns = runs->count;
    lua_pop(L, 1); /* the runs stay referenced by the plan */
    cond->negate = table_flag(L, t, "with_missing");
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

/* ---- results ---- */

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
    return raise_failure(L, &err);
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

/* ---- a Lua function condition on a numeric column: tested once per distinct value ---- */

/* The runs of consecutive distinct values (in value order) a function keeps, as [lo, hi] pairs
 * of order keys: a condition then costs a binary search over the runs per row ("> 1000" is one
 * run), where a dictionary of the column's values would cost a hash lookup per row. */
static int value_runs_gc(lua_State *L) {
  value_runs *r = luaL_checkudata(L, 1, VALUE_RUNS_META);
  free(r->lo);
  free(r->hi);
  r->lo = r->hi = NULL;
  return 0;
}

/* core.value_runs(ds, column, fn) -> runs, count of distinct values: fn(value) is called once
 * per distinct value present, ascending; a true answer keeps the value. fn's errors propagate. */
static int query_value_runs(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  int64_t column = compat_checkint64(L, 2);
  const cpf_column *col;
  value_runs *runs;
  const uint64_t *keys;
  size_t n, i, nr = 0;
  cpf_error err;
  luaL_checktype(L, 3, LUA_TFUNCTION);
  if (column < 1 || (size_t)column > ds->ncols) return luaL_error(L, "value_runs: bad column");
  col = &ds->cols[column - 1];
  if (col->type == CPF_TYPE_STRING) return luaL_error(L, "value_runs: a string column");
  lua_settop(L, 3);
  runs = lua_newuserdata(L, sizeof *runs); /* 4: freed by its __gc even if fn raises */
  memset(runs, 0, sizeof *runs);
  luaL_getmetatable(L, VALUE_RUNS_META);
  lua_setmetatable(L, -2);
  memset(&err, 0, sizeof err); /* the distinct keys: the dataset's, computed once */
  if (query_distinct_keys(ds, (int)column - 1, &keys, &n, &err) != 0) return raise_failure(L, &err);
  runs->lo = cpf_malloc((n ? n : 1) * sizeof *runs->lo);
  runs->hi = cpf_malloc((n ? n : 1) * sizeof *runs->hi);
  if (!runs->lo || !runs->hi) return luaL_error(L, "out of memory");
  runs->column = (int)column - 1;
  runs->rows = ds->rows;
  for (i = 0; i < n; i++) {
    int64_t v = query_key_value(col, keys[i]);
    int keep;
    lua_pushvalue(L, 3);
    push_stored_value(L, col, v);
    lua_call(L, 1, 1);
    keep = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!keep) continue;
    if (nr > 0 && i > 0 && runs->hi[nr - 1] == keys[i - 1]) runs->hi[nr - 1] = keys[i]; /* extends */
    else {
      runs->lo[nr] = runs->hi[nr] = keys[i];
      nr++;
    }
  }
  runs->count = nr;
  lua_settop(L, 4);
  compat_pushint64(L, (int64_t)n);
  return 2;
}

/* A parsed plan: the engine's structs, and the result of its last run (freed after each run,
 * so that the structs run again). Its metatable holds the Lua values the structs point into
 * (masks, remaps) and the dataset it was made for. */
typedef struct {
  query_result res;
  query_cond *where;
  query_key *keys;
  size_t nkeys;
  query_agg *aggs;
  size_t naggs;
  int row_groups;
  query_cond *row_masks; /* conditions of filtered custom reducers: each gives a row mask */
  size_t nmasks;
} query_state;

/* Frees what a run computed (results, by-value key dictionaries): the structs stay. */
static void query_state_reset(query_state *qs) {
  size_t k;
  query_result_free(&qs->res, qs->nkeys, qs->aggs, qs->naggs);
  for (k = 0; k < qs->nkeys; k++) key_free(&qs->keys[k]);
}

static int query_state_gc(lua_State *L) {
  query_state_reset(lua_touserdata(L, 1));
  return 0;
}

/* Pushes a new query state for the plan table at index `plan` (1-based stack index), its
 * structs parsed for ds; the anchor table and the dataset at index 1 are kept by its
 * metatable. */
static query_state *push_query_state(lua_State *L, int plan, cpf_dataset *ds) {
  size_t k;
  int anchor;
  query_state *qs;
  lua_newtable(L);
  anchor = lua_gettop(L);
  qs = lua_newuserdata(L, sizeof *qs); /* frees the results even if a push raises */
  memset(qs, 0, sizeof *qs);
  lua_newtable(L);
  lua_pushcfunction(L, query_state_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushvalue(L, anchor); /* the plan's structs stay alive as long as the state */
  lua_setfield(L, -2, "plan");
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "dataset");
  lua_pushvalue(L, plan); /* its keys' labels go into every result */
  lua_setfield(L, -2, "source");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "cpf_prepared_plan");
  lua_setmetatable(L, -2);
  lua_getfield(L, plan, "where");
  if (!lua_isnil(L, -1)) {
    qs->where = plan_alloc(L, sizeof *qs->where, anchor);
    parse_cond(L, -1, ds, qs->where, anchor);
  }
  lua_pop(L, 1);
  lua_getfield(L, plan, "keys");
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
  lua_getfield(L, plan, "aggs");
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
  lua_getfield(L, plan, "row_groups");
  qs->row_groups = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, plan, "row_masks");
  if (!lua_isnil(L, -1)) {
    size_t nmasks = compat_rawlen(L, -1);
    qs->row_masks = plan_alloc(L, (nmasks ? nmasks : 1) * sizeof *qs->row_masks, anchor);
    for (k = 0; k < nmasks; k++) {
      lua_rawgeti(L, -1, (int)k + 1);
      parse_cond(L, -1, ds, &qs->row_masks[k], anchor);
      lua_pop(L, 1);
    }
    qs->nmasks = nmasks;
  }
  lua_pop(L, 1);
  lua_remove(L, anchor); /* the state on top, its metatable keeping the anchor */
  return qs;
}

/* The prepared plan at idx, made for the dataset at index 1, or NULL when idx is no plan. */
static query_state *to_prepared(lua_State *L, int idx) {
  query_state *qs = NULL;
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return NULL;
  lua_getfield(L, -1, "cpf_prepared_plan");
  if (lua_toboolean(L, -1)) {
    lua_getfield(L, -2, "dataset");
    if (!lua_rawequal(L, -1, 1)) luaL_error(L, "core.query: the plan was prepared for another dataset");
    lua_pop(L, 1);
    qs = lua_touserdata(L, idx);
  }
  lua_pop(L, 2);
  return qs;
}

/* Sets field row_masks of the table on top: for each condition of a filtered custom reducer, a
 * string of one byte per row, 1 where the condition keeps the row. A string, not a table: 1 byte
 * a row, and the reducer that reads it already makes a Lua call per row. */
static int push_row_masks(lua_State *L, const cpf_dataset *ds, query_state *qs, cpf_error *err) {
  size_t k;
  uint8_t *keep;
  lua_createtable(L, (int)qs->nmasks, 0);
  keep = lua_newuserdata(L, ds->rows ? ds->rows : 1); /* collected even if a push raises */
  for (k = 0; k < qs->nmasks; k++) {
    if (cond_evaluate(ds, &qs->row_masks[k], keep, err) != 0) { lua_pop(L, 2); return -1; }
    lua_pushlstring(L, (const char *)keep, ds->rows);
    lua_rawseti(L, -3, (int)k + 1);
  }
  lua_pop(L, 1);
  lua_setfield(L, -2, "row_masks");
  return 0;
}

/* Runs the state (at stack index `state`) and pushes its result store, then a table of the
 * extras custom reducers need ({row_groups = ..., row_masks = ...}) or nil. */
static int run_and_push(lua_State *L, cpf_dataset *ds, query_state *qs, int state) {
  size_t j;
  int plan_keys;
  cpf_error err;
  memset(&err, 0, sizeof err);
  query_state_reset(qs); /* a previous run stopped by a raising push */
  if (query_run(ds, qs->where, qs->keys, qs->nkeys, qs->aggs, qs->naggs, &qs->res, &err) != 0) {
    query_state_reset(qs);
    return raise_failure(L, &err);
  }
  lua_getmetatable(L, state);
  lua_getfield(L, -1, "source");
  lua_getfield(L, -1, "keys");
  plan_keys = lua_gettop(L);
  push_result_store(L, ds, &qs->res, qs->keys, qs->nkeys, qs->aggs, qs->naggs, plan_keys);
  lua_replace(L, plan_keys - 2);
  lua_settop(L, plan_keys - 2); /* the store */
  if (!qs->row_groups && qs->nmasks == 0) {
    query_state_reset(qs);
    lua_pushnil(L);
    return 2;
  }
  lua_createtable(L, 0, 2);
  if (qs->row_groups) { /* for custom reducers: the group of every row, 0 = not selected */
    lua_createtable(L, (int)ds->rows, 0);
    for (j = 0; j < ds->rows; j++) {
      lua_pushinteger(L, (lua_Integer)query_row_group(&qs->res, j));
      lua_rawseti(L, -2, (int)j + 1);
    }
    lua_setfield(L, -2, "row_groups");
  }
  if (qs->nmasks > 0 && push_row_masks(L, ds, qs, &err) != 0) {
    query_state_reset(qs);
    return raise_failure(L, &err);
  }
  query_state_reset(qs); /* free the C results now, not at the next collection */
  return 2;
}

/* core.prepare(ds, plan) -> a prepared plan: the plan table parsed once into the engine's
 * structs, which core.query(ds, prepared) runs any number of times on that dataset. */
static int query_prepare(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  push_query_state(L, 2, ds);
  return 1;
}

/* core.query(ds, plan or prepared plan) -> result store, extras (run_and_push). */
static int query_execute(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  query_state *qs;
  lua_settop(L, 2);
  qs = to_prepared(L, 2);
  if (qs == NULL) {
    luaL_checktype(L, 2, LUA_TTABLE);
    qs = push_query_state(L, 2, ds);
  }
  return run_and_push(L, ds, qs, lua_gettop(L) == 3 ? 3 : 2);
}

static const luaL_Reg query_functions[] = {
  {"query", query_execute}, {"prepare", query_prepare}, {"key_values", query_key_values},
  {"value_runs", query_value_runs}, {NULL, NULL}};

void register_query_bindings(lua_State *L, int module) {
  static const luaL_Reg no_methods[] = {{NULL, NULL}};
  new_userdata_type(L, VALUE_RUNS_META, value_runs_gc, no_methods);
  lua_pop(L, 1);
  set_functions(L, module, query_functions);
}

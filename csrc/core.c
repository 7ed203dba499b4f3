/* core.c — the Lua bindings of the engine: module cpf.core and the dataset userdata.
 * The only C file that includes Lua headers; arguments are checked here, errors from the
 * engine come back as values and leave as nil, message. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "cpf.h"

#define DATASET_META "cpf.dataset"
#define SCRATCH_META "cpf.scratch"
#define SOURCE_META "cpf.source"

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

static void *scratch_alloc(lua_State *L, size_t bytes) {
  void **box = lua_newuserdata(L, sizeof *box);
  *box = NULL;
  luaL_getmetatable(L, SCRATCH_META);
  lua_setmetatable(L, -2);
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
  if (i < 1 || (uint64_t)i > ds->rows)
    luaL_error(L, "row %lld is out of range (the dataset has %lld rows)", (long long)i,
               (long long)ds->rows);
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
    const char *s = dictionary_value(&col->dict, column_code_at(col, row), &len);
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

/* ---- distinct values with their row counts ---- */
typedef struct {
  int64_t key;     /* dictionary code, integer value, or double bits */
  size_t count;
  int missing;
  const cpf_column *col; /* qsort has no context argument, and globals are not allowed */
} distinct_entry;

static int compare_keys(const distinct_entry *a, const distinct_entry *b) {
  const cpf_column *sort_column = a->col;
  if (a->missing != b->missing) return a->missing - b->missing; /* nil last */
  if (sort_column->type == CPF_TYPE_STRING) {
    size_t la, lb, n;
    const char *sa = dictionary_value(&sort_column->dict, (uint32_t)a->key, &la);
    const char *sb = dictionary_value(&sort_column->dict, (uint32_t)b->key, &lb);
    int c;
    n = la < lb ? la : lb;
    c = memcmp(sa, sb, n);
    return c != 0 ? c : (la > lb) - (la < lb);
  }
  if (sort_column->type == CPF_TYPE_NUMBER) {
    double x, y;
    memcpy(&x, &a->key, sizeof x);
    memcpy(&y, &b->key, sizeof y);
    return (x > y) - (x < y);
  }
  return (a->key > b->key) - (a->key < b->key);
}

static int compare_by_key(const void *pa, const void *pb) { return compare_keys(pa, pb); }

static int compare_by_count(const void *pa, const void *pb) {
  const distinct_entry *a = pa, *b = pb;
  if (a->count != b->count) return a->count < b->count ? 1 : -1;
  return compare_keys(a, b);
}

static int dataset_distinct(lua_State *L) {
  cpf_dataset *ds = check_dataset(L, 1);
  const cpf_column *col = &ds->cols[column_arg(L, ds, 2)];
  distinct_entry *entries;
  size_t n = 0, i;
  if (col->type == CPF_TYPE_STRING) {
    size_t *counts = scratch_alloc(L, ((size_t)col->dict.count + 1) * sizeof *counts);
    memset(counts, 0, ((size_t)col->dict.count + 1) * sizeof *counts);
    for (i = 0; i < ds->rows; i++)
      counts[column_is_valid(col, i) ? column_code_at(col, i) : col->dict.count]++;
    entries = scratch_alloc(L, ((size_t)col->dict.count + 1) * sizeof *entries);
    for (i = 0; i <= col->dict.count; i++) {
      if (counts[i] == 0) continue;
      entries[n].key = (int64_t)i;
      entries[n].count = counts[i];
      entries[n].missing = i == col->dict.count;
      entries[n].col = col;
      n++;
    }
  } else {
    /* sort a copy of the values and count the runs */
    distinct_entry *all = scratch_alloc(L, (ds->rows + 1) * sizeof *all);
    size_t m = 0;
    for (i = 0; i < ds->rows; i++) {
      all[m].count = 1;
      all[m].missing = !column_is_valid(col, i);
      all[m].col = col;
      if (all[m].missing) all[m].key = 0;
      else if (col->type == CPF_TYPE_NUMBER) {
        double d = column_number_at(col, i);
        if (d == 0) d = 0; /* -0.0 and 0.0 are one value */
        memcpy(&all[m].key, &d, sizeof d);
      } else all[m].key = column_integer_at(col, i);
      m++;
    }
    qsort(all, m, sizeof *all, compare_by_key);
    entries = all;
    for (i = 0; i < m; i++) {
      if (n > 0 && entries[n - 1].missing == all[i].missing && entries[n - 1].key == all[i].key) {
        entries[n - 1].count++;
      } else {
        entries[n++] = all[i];
      }
    }
  }
  qsort(entries, n, sizeof *entries, compare_by_count);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 2);
    if (entries[i].missing) lua_pushnil(L);
    else if (col->type == CPF_TYPE_STRING) {
      size_t len;
      const char *s = dictionary_value(&col->dict, (uint32_t)entries[i].key, &len);
      lua_pushlstring(L, s, len);
    } else if (col->type == CPF_TYPE_NUMBER) {
      double d;
      memcpy(&d, &entries[i].key, sizeof d);
      lua_pushnumber(L, d);
    } else {
      /* reuse the value formatting of one row holding this value */
      cpf_column one = *col;
      int64_t v = entries[i].key;
      one.missing_bits = NULL;
      one.data = &v;
      one.width = 8;
      push_value(L, &one, 0);
    }
    lua_setfield(L, -2, "value");
    compat_pushint64(L, (int64_t)entries[i].count);
    lua_setfield(L, -2, "count");
    lua_rawseti(L, -2, (int)i + 1);
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
  if (src->bytes == NULL) luaL_error(L, "source is closed");
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
  luaL_getmetatable(L, SOURCE_META);
  lua_setmetatable(L, -2);
  memset(&err, 0, sizeof err);
  if (source_open(src, path, &err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err.message);
    return 2;
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
    lua_pushnil(L);
    lua_pushstring(L, err.message);
    return 2;
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
    cpf_error_set(err, "progress callback failed: %s", lua_tostring(L, -1));
    stop = 1;
  } else if (lua_toboolean(L, -1) == 0 && !lua_isnil(L, -1)) {
    cpf_error_set(err, "load cancelled by the progress callback");
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
    lua_pushnil(L);
    lua_pushstring(L, err.message[0] ? err.message : "load failed");
    return 2;
  }
  return 1;
}

static const luaL_Reg dataset_methods[] = {
  {"close", dataset_close},     {"is_closed", dataset_is_closed}, {"columns", dataset_columns},
  {"get", dataset_get},         {"row", dataset_row},             {"rows", dataset_rows},
  {"distinct", dataset_distinct}, {"memory", dataset_memory_l},   {NULL, NULL}};

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

static const luaL_Reg source_methods[] = {
  {"header", source_header}, {"load", source_load}, {"close", source_close_l}, {NULL, NULL}};

static const luaL_Reg module_functions[] = {
  {"open", open_source}, {"stderr_is_tty", stderr_is_tty}, {"clock", monotonic_clock}, {NULL, NULL}};

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

/* lua_source.c — CSV sources: core.open(path) opens a file once, source:header() reads its
 * header record, source:load(columns, options) loads it into a dataset, calling the progress
 * callback between chunks. */
#include <string.h>

#include "lua_bindings.h"

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

/* The progress function of source:load, called between chunks on the thread that called load
 * (never on a loading thread): an error it raises, or a false return, stops the load. */
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

/* A one-character option of source:load (sep, decimal); 0 when absent. */
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
  opts.libcsv_only = table_flag(L, 3, "libcsv_only");
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
    specs[i].skip = table_flag(L, -4, "skip");
    if (!specs[i].name || !specs[i].label || !type_name)
      return luaL_error(L, "column %d: name, label and type must be strings", (int)i + 1);
    if (cpf_type_from_name(type_name, &specs[i].type) != 0)
      return luaL_error(L, "column '%s': unknown type '%s'", specs[i].name, type_name);
    lua_pop(L, 4); /* the strings stay alive in the columns table */
  }
  box = new_dataset_box(L);
  memset(&err, 0, sizeof err);
  box->ds = loader_load(src, &opts, specs, ncols, &err);
  if (box->ds == NULL) {
    return push_failure(L, &err);
  }
  return 1;
}

static const luaL_Reg source_methods[] = {
  {"header", source_header}, {"load", source_load}, {"close", source_close_l}, {NULL, NULL}};

static const luaL_Reg source_functions[] = {{"open", open_source}, {NULL, NULL}};

void register_source_bindings(lua_State *L, int module) {
  new_userdata_type(L, SOURCE_META, source_close_l, source_methods);
  lua_pop(L, 1);
  set_functions(L, module, source_functions);
}

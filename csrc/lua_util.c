/* lua_util.c — what the binding files (lua_*.c) share: engine errors as Lua values, scratch
 * memory a Lua error cannot leak, plan fields, stored values as Lua values, the dataset
 * userdata, registering functions and userdata types. A binding file calls another's functions
 * only through this one (and the query binding hands its run to the result store). */
#include <stdlib.h>

#include <string.h>

#include "lua_bindings.h"

/* ---- engine errors ---- */

int push_failure(lua_State *L, const cpf_error *err) {
  lua_pushnil(L);
  if (!err->code) { /* a failure no engine path named: only an allocation fails without a word */
    lua_pushstring(L, "out of memory");
    lua_pushstring(L, "memory");
    return 3;
  }
  lua_pushstring(L, err->message[0] ? err->message : "failed");
  lua_pushstring(L, cpf_error_kind(err->code));
  return 3;
}

/* the message as it is: it names the problem itself, a position would only point here */
int raise_failure(lua_State *L, const cpf_error *err) {
  lua_pushstring(L, err->message);
  return lua_error(L);
}

/* ---- scratch memory owned by a userdata, so a Lua error cannot leak it ---- */
static int scratch_gc(lua_State *L) {
  void **box = luaL_checkudata(L, 1, SCRATCH_META);
  free(*box);
  *box = NULL;
  return 0;
}

void **scratch_hold(lua_State *L) {
  void **box = lua_newuserdata(L, sizeof *box);
  *box = NULL;
  luaL_getmetatable(L, SCRATCH_META);
  lua_setmetatable(L, -2);
  return box;
}

void *scratch_alloc(lua_State *L, size_t bytes) {
  void **box = scratch_hold(L);
  *box = cpf_malloc(bytes ? bytes : 1);
  if (*box == NULL) luaL_error(L, "out of memory");
  return *box;
}

/* ---- reading Lua values ---- */

int table_flag(lua_State *L, int t, const char *field) {
  int v;
  lua_getfield(L, t, field);
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* ---- pushing stored values ---- */

static const double pow10_double[10] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};

double scaled_value(int scale, int64_t v) { return (double)v / pow10_double[scale]; }

void push_stored_integer(lua_State *L, out_kind out, int scale, int64_t v) {
  char buf[32];
  switch (out) {
  case OUT_SCALED: /* both exact below 2^53: the division gives the double nearest the decimal */
    lua_pushnumber(L, (lua_Number)scaled_value(scale, v));
    break;
  case OUT_MONTH: format_month(v, buf); lua_pushstring(L, buf); break;
  case OUT_DATE: format_date(v, buf); lua_pushstring(L, buf); break;
  default: compat_pushint64(L, v); break;
  }
}

void push_stored_value(lua_State *L, const cpf_column *col, int64_t v) {
  if (col->type == CPF_TYPE_NUMBER) {
    double d;
    memcpy(&d, &v, sizeof d);
    lua_pushnumber(L, d);
  } else {
    push_stored_integer(L, column_out_kind(col), col->scale, v);
  }
}

/* ---- registering ---- */

void set_functions(lua_State *L, int t, const luaL_Reg *functions) {
  lua_pushvalue(L, t);
  compat_setfuncs(L, functions);
  lua_pop(L, 1);
}

void new_userdata_type(lua_State *L, const char *name, lua_CFunction gc, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  compat_setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
}

/* ---- the dataset userdata (its methods: lua_dataset.c) ---- */

cpf_dataset *check_dataset(lua_State *L, int idx) {
  dataset_box *box = luaL_checkudata(L, idx, DATASET_META);
  if (box->ds == NULL) luaL_error(L, "dataset is closed");
  return box->ds;
}

/* An empty dataset userdata on the stack, its box filled by the caller: a dataset made after
 * this point is freed by the collector even if Lua raises before it is returned. */
dataset_box *new_dataset_box(lua_State *L) {
  dataset_box *box = lua_newuserdata(L, sizeof *box);
  box->ds = NULL;
  box->saving = 0;
  luaL_getmetatable(L, DATASET_META);
  lua_setmetatable(L, -2);
  return box;
}

void register_util_types(lua_State *L) {
  luaL_newmetatable(L, SCRATCH_META);
  lua_pushcfunction(L, scratch_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}

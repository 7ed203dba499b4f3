/* compat.h — the differences between Lua 5.1/LuaJIT, 5.3 and 5.4 that the bindings need.
 * Static shims with our own names: nothing here is exported or named lua_* / luaL_*. Inline,
 * so that a binding file that does not use one of them compiles without a warning. */
#ifndef CPF_COMPAT_H
#define CPF_COMPAT_H

#include <stdint.h>

#include "lauxlib.h"
#include "lua.h"

#if LUA_VERSION_NUM < 502
#define compat_rawlen(L, i) lua_objlen((L), (i))
static inline void compat_setfuncs(lua_State *L, const luaL_Reg *l) {
  for (; l->name != NULL; l++) {
    lua_pushcfunction(L, l->func);
    lua_setfield(L, -2, l->name);
  }
}
#else
#define compat_rawlen(L, i) lua_rawlen((L), (i))
#define compat_setfuncs(L, l) luaL_setfuncs((L), (l), 0)
#endif

/* The one Lua value a userdata carries (a table here): lua_setfenv on 5.1, a uservalue after. */
#if LUA_VERSION_NUM >= 504
#define compat_setuservalue(L, i) lua_setiuservalue((L), (i), 1)
#define compat_getuservalue(L, i) ((void)lua_getiuservalue((L), (i), 1))
#elif LUA_VERSION_NUM >= 502
#define compat_setuservalue(L, i) lua_setuservalue((L), (i))
#define compat_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#else
#define compat_setuservalue(L, i) ((void)lua_setfenv((L), (i)))
#define compat_getuservalue(L, i) lua_getfenv((L), (i))
#endif

/* Integers: exact on 5.3/5.4; on 5.1/LuaJIT a lua_Number (exact up to 2^53). */
static inline void compat_pushint64(lua_State *L, int64_t v) {
#if LUA_VERSION_NUM >= 503
  lua_pushinteger(L, (lua_Integer)v);
#else
  lua_pushnumber(L, (lua_Number)v);
#endif
}

/* A whole number argument, refusing 2.5 on every version. */
static inline int64_t compat_checkint64(lua_State *L, int arg) {
#if LUA_VERSION_NUM >= 503
  return (int64_t)luaL_checkinteger(L, arg);
#else
  lua_Number n = luaL_checknumber(L, arg);
  if (n != (lua_Number)(int64_t)n) luaL_argerror(L, arg, "number has no integer representation");
  return (int64_t)n;
#endif
}

#endif

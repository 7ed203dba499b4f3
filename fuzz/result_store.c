/* result_store.c — libFuzzer harness for the result store and its transforms, through the Lua
 * API analysts use (fuzz/result_store.lua reads the bytes as a query and a sequence of result
 * operations: values, select and extend under sorted, where, with, join, head per group, change,
 * cumsum, rank, share, rolling, pivot, formats). Lua 5.4 with cpf.core linked in; a Lua error
 * is a refusal, unless it is raised from inside cpf's own files (a misuse must fail at the call,
 * never later with a raw error) or breaks an invariant the script checks: those abort. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int luaopen_cpf_core(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static int run_ref = LUA_NOREF;

static void start(void) {
  L = luaL_newstate();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_cpf_core);
  lua_setfield(L, -2, "cpf.core");
  lua_pop(L, 1);
  if (luaL_dostring(L, "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path") != 0 ||
      luaL_dofile(L, "fuzz/result_store.lua") != 0 || !lua_isfunction(L, -1)) {
    fprintf(stderr, "result_store: cannot start: %s\n", lua_tostring(L, -1));
    abort();
  }
  run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) start();
  lua_rawgeti(L, LUA_REGISTRYINDEX, run_ref);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != 0) {
    fprintf(stderr, "result_store: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  return 0;
}

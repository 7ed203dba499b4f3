/* core.c — the module cpf.core: luaopen_cpf_core only registers, each binding file
 * (lua_*.c) its functions and userdata types; the helpers they share are in lua_util.c. */
#include "lua_bindings.h"

#if defined(__GNUC__)
#define CPF_EXPORT __attribute__((visibility("default")))
#else
#define CPF_EXPORT
#endif

CPF_EXPORT int luaopen_cpf_core(lua_State *L);

CPF_EXPORT int luaopen_cpf_core(lua_State *L) {
  int module;
  register_util_types(L);
  register_job_bindings(L);
  lua_newtable(L);
  module = lua_gettop(L);
  register_dataset_bindings(L, module);
  register_query_bindings(L, module);
  register_result_bindings(L, module);
  register_source_bindings(L, module);
  register_system_bindings(L, module);
  register_fetch_bindings(L, module);
  register_writer_bindings(L, module);
  return 1;
}

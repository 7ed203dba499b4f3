-- cpf-scm-1.rockspec — the development tree: builds the cpf module (Lua layer + the cpf.core C
-- module) with LuaRocks' builtin type; spec/08-rockspec_spec.lua checks that every lua/cpf/*.lua
-- and csrc/*.c is listed. `make dist VERSION=x.y.z` writes a release's rockspec from this one
-- (rockspec/cpf-x.y.z-1.rockspec, its source the release tarball).
rockspec_format = "3.0"
package = "cpf"
version = "scm-1"

source = {
  -- the checkout itself: `luarocks make rockspec/cpf-scm-1.rockspec`, run from it, builds it and
  -- fetches nothing (a release's rockspec names its tarball instead)
  url = ".",
}

description = {
  summary = "Fast analysis of the French CPF \"formations engagées\" open dataset",
  detailed = [[
A Lua module with a C core: loads the CPF CSV export (BOM, quoted line breaks, both header
spellings) into a compact, dictionary-encoded column store outside the Lua heap.
]],
  license = "MIT",
  labels = { "csv", "dataset", "opendata", "france" },
}

dependencies = {
  "lua >= 5.1",
}

external_dependencies = {
  CSV = {
    header = "csv.h",
    library = "csv",
  },
  ZLIB = {
    header = "zlib.h",
    library = "z",
  },
  -- cpf fetch: libcurl (Debian's libcurl4-openssl-dev). Its header is looked for by the
  -- compiler only: Debian puts it under /usr/include/<multiarch>/, where LuaRocks does not look
  CURL = {
    library = "curl",
  },
}

build = {
  type = "builtin",
  modules = {
    ["cpf"] = "lua/cpf/init.lua",
    ["cpf.schema"] = "lua/cpf/schema.lua",
    ["cpf.gen"] = "lua/cpf/gen.lua",
    ["cpf.gen.data"] = "lua/cpf/gen/data.lua",
    ["cpf.cli"] = "lua/cpf/cli.lua",
    ["cpf.serve_nginx"] = "lua/cpf/serve_nginx.lua",
    ["cpf.query"] = "lua/cpf/query.lua",
    ["cpf.query.build"] = "lua/cpf/query/build.lua",
    ["cpf.query.compile"] = "lua/cpf/query/compile.lua",
    ["cpf.query.run"] = "lua/cpf/query/run.lua",
    ["cpf.request"] = "lua/cpf/request.lua",
    ["cpf.request.grammar"] = "lua/cpf/request/grammar.lua",
    ["cpf.request.complete"] = "lua/cpf/request/complete.lua",
    ["cpf.request.words"] = "lua/cpf/request/words.lua",
    ["cpf.request.output"] = "lua/cpf/request/output.lua",
    ["cpf.suggest"] = "lua/cpf/suggest.lua",
    ["cpf.describe"] = "lua/cpf/describe.lua",
    ["cpf.fetch"] = "lua/cpf/fetch.lua",
    ["cpf.history"] = "lua/cpf/history.lua",
    ["cpf.changes"] = "lua/cpf/changes.lua",
    ["cpf.cli.history"] = "lua/cpf/cli/history.lua",
    ["cpf.cli.serve"] = "lua/cpf/cli/serve.lua",
    ["cpf.query.rollup"] = "lua/cpf/query/rollup.lua",
    ["cpf.errors"] = "lua/cpf/errors.lua",
    ["cpf.result"] = "lua/cpf/result.lua",
    ["cpf.transform"] = "lua/cpf/transform.lua",
    ["cpf.transform.base"] = "lua/cpf/transform/base.lua",
    ["cpf.transform.join"] = "lua/cpf/transform/join.lua",
    ["cpf.format"] = "lua/cpf/format.lua",
    ["cpf.format.common"] = "lua/cpf/format/common.lua",
    ["cpf.format.delimited"] = "lua/cpf/format/delimited.lua",
    ["cpf.format.json"] = "lua/cpf/format/json.lua",
    ["cpf.format.text"] = "lua/cpf/format/text.lua",
    ["cpf.format.html"] = "lua/cpf/format/html.lua",
    ["cpf.nvim"] = "lua/cpf/nvim.lua",
    ["cpf.health"] = "lua/cpf/health.lua",
    ["cpf.resty"] = "lua/cpf/resty.lua",
    ["cpf.report"] = "lua/cpf/report.lua",
    ["cpf.core"] = {
      sources = {
        "csrc/core.c",
        "csrc/lua_util.c",
        "csrc/lua_dataset.c",
        "csrc/lua_query.c",
        "csrc/lua_result.c",
        "csrc/lua_source.c",
        "csrc/lua_system.c",
        "csrc/lua_job.c",
        "csrc/lua_fetch.c",
        "csrc/lua_writer.c",
        "csrc/http.c",
        "csrc/alloc.c",
        "csrc/io.c",
        "csrc/loader.c",
        "csrc/dataset.c",
        "csrc/column.c",
        "csrc/dictionary.c",
        "csrc/numparse.c",
        "csrc/query.c",
        "csrc/order.c",
        "csrc/snapshot.c",
        "csrc/output_file.c",
        "csrc/rejects.c",
        "csrc/encoding.c",
        "csrc/file_kind.c",
        "csrc/describe.c",
        "csrc/writer.c",
        "csrc/error.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "$(CSV_INCDIR)", "$(ZLIB_INCDIR)" },
      libdirs = { "$(CSV_LIBDIR)", "$(ZLIB_LIBDIR)", "$(CURL_LIBDIR)" },
      libraries = { "csv", "z", "curl", "m", "pthread" },
    },
  },
  install = {
    bin = {
      cpf = "bin/cpf",
    },
  },
  -- into the rock's own directory, lib/luarocks/rocks-<lua>/cpf/<version>/ of the tree: the
  -- reference (`luarocks doc cpf` lists it), the example scripts and the editor annotations
  copy_directories = { "doc", "examples", "meta" },
}

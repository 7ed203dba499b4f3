-- The module builds for this Lua, exports one symbol and leaves the globals alone.
local h = require "spec.helpers"

-- The engine's files: every C source and header of csrc/ but the Lua bindings (core.c, lua_*.c,
-- their header lua_bindings.h and compat.h).
local function engine_files(pattern)
  local out, err, code = h.run("ls " .. pattern)
  assert(code == 0, err)
  local files = {}
  for path in out:gmatch("[^\n]+") do
    local name = path:match("[^/]+$")
    if name ~= "core.c" and name ~= "compat.h" and not name:match("^lua_") then files[#files + 1] = path end
  end
  return files
end

describe("cpf.core build", function()
  it("loads and reports its version", function()
    local cpf = require "cpf"
    assert.are.equal("0.1.0", cpf._VERSION)
    assert.are.equal("function", type(require("cpf.core").open))
  end)

  it("exports only luaopen_cpf_core from the shared object", function()
    assert.are.same({ "luaopen_cpf_core" }, h.exported_symbols("build/" .. h.lua_name .. "/cpf/core.so"))
  end)

  it("exports only luaopen_cpf_core built without -fvisibility=hidden, as by LuaRocks #no_asan", function()
    local dir = h.tmpname("-builtin")
    finally(function() os.execute("rm -rf " .. dir) end)
    local include = h.lua_name == "luajit" and "/usr/include/luajit-2.1" or "/usr/include/" .. h.lua_name
    local _, err, code = h.run(("mkdir -p %s && cc -O0 -fPIC -shared -D_POSIX_C_SOURCE=200809L -I%s "
      .. "-o %s/core.so csrc/*.c -lcsv -lm -lpthread"):format(dir, include, dir))
    assert.are.equal(0, code, err)
    assert.are.same({ "luaopen_cpf_core" }, h.exported_symbols(dir .. "/core.so"))
  end)

  it("does not link liblua into the module", function()
    local out = h.run("ldd build/" .. h.lua_name .. "/cpf/core.so")
    assert.is_nil(out:find("liblua"))
    assert.is_truthy(out:find("libcsv"))
  end)

  it("sets no global variable", function()
    local before = {}
    for k in pairs(_G) do before[k] = true end
    package.loaded["cpf"], package.loaded["cpf.core"], package.loaded["cpf.schema"] = nil, nil, nil
    require "cpf"
    for k in pairs(_G) do assert.is_true(before[k], "new global " .. tostring(k)) end
  end)

  -- a check of the sources, not of the interpreter: run once, under Lua 5.4
  if _VERSION == "Lua 5.4" and not jit then
    it("builds from the same sources against Lua 5.1, 5.3, 5.4 and LuaJIT headers #no_asan", function()
      for _, lua in ipairs { "lua5.1", "lua5.3", "lua5.4", "luajit" } do
        local dir = h.tmpname("-build")
        local _, err, code = h.run(("make -s LUA=%s BUILD_DIR=%s CFLAGS='-O0 -Werror'"):format(lua, dir))
        assert.are.equal(0, code, lua .. ": " .. err)
        os.execute("rm -rf " .. dir)
      end
    end)
  end

  it("compiles the engine files with a compiler that is not GNU C (-U__GNUC__)", function()
    -- cpf.h once left an #if defined(__GNUC__) open: without __GNUC__ the whole engine API
    -- vanished. gcc's own glibc headers need __GNUC__, so clang (which does not) checks this.
    local files = engine_files "csrc/*.c"
    assert.is_true(#files > 0)
    local _, err, code = h.run("env -u LD_PRELOAD clang -fsyntax-only -std=c99 -pedantic -Wall -Wextra -Werror "
      .. "-U__GNUC__ -D_POSIX_C_SOURCE=200809L " .. table.concat(files, " "))
    assert.are.equal(0, code, err)
  end)

  it("keeps the Lua headers out of the engine files", function()
    for _, path in ipairs(engine_files "csrc/*.c csrc/*.h") do
      local f = assert(io.open(path))
      local text = f:read "*a"
      f:close()
      for header in text:gmatch('#%s*include%s*[<"]([^>"]+)[>"]') do
        local name = header:match("[^/]+$")
        assert.is_falsy(name:match("^lua") or name:match("^lauxlib") or name == "compat.h",
          path .. " includes " .. header)
      end
    end
  end)
end)

describe("the C bindings", function()
  -- the functions a C file defines for the others (not static), by a line that starts a definition
  local function exported(text)
    local names = {}
    for line in text:gmatch("[^\n]+") do
      if not line:match("^static") and not line:match("^%s") and not line:match("^#") and line:match("%) {$") then
        local name = line:match("([%w_]+)%(")
        if name then names[#names + 1] = name end
      end
    end
    return names
  end

  it("keeps core.c to registering, and calls another binding file only through lua_util.c and lua_job.c",
    function()
    local files = {}
    for name in io.popen("ls csrc"):lines() do
      if name == "core.c" or name:match("^lua_.*%.c$") then files[#files + 1] = name end
    end
    local owner, texts = {}, {}
    for _, name in ipairs(files) do
      texts[name] = h.read_file("csrc/" .. name)
      for _, fn in ipairs(exported(texts[name])) do owner[fn] = name end
    end
    assert.are.same({ "luaopen_cpf_core" }, exported(texts["core.c"]))
    assert.are.equal("lua_result.c", owner.push_key_value, "push_key_value lives with the result store")
    for _, name in ipairs(files) do
      for fn in texts[name]:gmatch("([%w_]+)%(") do
        local from = owner[fn]
        -- lua_job.c: the threads every background job runs on (load_async, describe_async)
        if from and from ~= name and from ~= "lua_util.c" and from ~= "lua_job.c" then
          local allowed = (name == "core.c" and fn:match("^register_"))
            or (name == "lua_query.c" and from == "lua_result.c") -- a run handed to the result store
          assert.is_truthy(allowed, ("%s calls %s of %s"):format(name, fn, from))
        end
      end
    end
  end)
end)

describe("the C sources", function()
  it("each open with a comment saying their job", function()
    for name in io.popen("ls csrc"):lines() do
      if name:match("%.[ch]$") then
        assert.is_truthy(h.read_file("csrc/" .. name):match("^/%* %S"), name)
      end
    end
  end)
end)

-- The rockspec lists every module of the checkout, and `luarocks make` installs a cpf that
-- loads from its tree alone (run offline, from a copy, so no build output lands in the checkout).
local h = require "spec.helpers"

local ROCKSPEC = "rockspec/cpf-scm-1.rockspec"

local function read_rockspec()
  local env = {}
  local chunk
  if setfenv then
    chunk = assert(loadstring(h.read_file(ROCKSPEC), "=" .. ROCKSPEC))
    setfenv(chunk, env)
  else
    chunk = assert(load(h.read_file(ROCKSPEC), "=" .. ROCKSPEC, "t", env))
  end
  chunk()
  return env
end

local function lines_of(command)
  local out, err, code = h.run(command)
  assert(code == 0, command .. ": " .. err)
  local t = {}
  for line in out:gmatch("[^\n]+") do t[#t + 1] = line end
  table.sort(t)
  return t
end

-- lua/cpf/init.lua → cpf, lua/cpf/format/csv.lua → cpf.format.csv
local function module_name(path)
  local name = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  return name
end

describe("rockspec/cpf-scm-1.rockspec", function()
  local spec = read_rockspec()

  teardown(h.cleanup)

  it("is a builtin rockspec for cpf with libcsv, zlib and libcurl as external dependencies", function()
    assert.are.equal("3.0", spec.rockspec_format)
    assert.are.equal("cpf", spec.package)
    assert.are.equal("scm-1", spec.version)
    assert.are.equal("builtin", spec.build.type)
    assert.are.same({ "lua >= 5.1" }, spec.dependencies)
    assert.are.same({ header = "csv.h", library = "csv" }, spec.external_dependencies.CSV)
    assert.are.same({ header = "zlib.h", library = "z" }, spec.external_dependencies.ZLIB)
    assert.are.same({ library = "curl" }, spec.external_dependencies.CURL)
    assert.are.same({ cpf = "bin/cpf" }, spec.build.install.bin)
    assert.are.same({ "doc", "examples", "meta" }, spec.build.copy_directories)
    assert.are.equal("MIT", spec.description.license)
    local core = spec.build.modules["cpf.core"]
    assert.are.same({ "$(CSV_INCDIR)", "$(ZLIB_INCDIR)" }, core.incdirs)
    assert.are.same({ "$(CSV_LIBDIR)", "$(ZLIB_LIBDIR)", "$(CURL_LIBDIR)" }, core.libdirs)
    assert.are.equal("csv", core.libraries[1])
  end)

  it("links the libraries the Makefile links", function()
    local makefile = h.read_file("Makefile")
    local flags = assert(makefile:match("\nMODULE_LIBS%s*=%s*([^\n]*)"), "no MODULE_LIBS in the Makefile")
    local from_makefile = {}
    for lib in flags:gmatch("%-l(%S+)") do from_makefile[#from_makefile + 1] = lib end
    table.sort(from_makefile)
    local listed = {}
    for _, lib in ipairs(spec.build.modules["cpf.core"].libraries) do listed[#listed + 1] = lib end
    table.sort(listed)
    assert.are.same(from_makefile, listed)
  end)

  it("lists every Lua file under lua/cpf/ as a module, and no other", function()
    local listed = {}
    for name, source in pairs(spec.build.modules) do
      if type(source) == "string" then listed[#listed + 1] = name .. " = " .. source end
    end
    table.sort(listed)
    local expected = {}
    for _, path in ipairs(lines_of "find lua/cpf -name '*.lua'") do
      expected[#expected + 1] = module_name(path) .. " = " .. path
    end
    table.sort(expected)
    assert.are.same(expected, listed)
  end)

  it("builds cpf.core from every C file in csrc/", function()
    local sources = {}
    for _, s in ipairs(spec.build.modules["cpf.core"].sources) do sources[#sources + 1] = s end
    table.sort(sources)
    assert.are.same(lines_of "ls csrc/*.c", sources)
  end)

  if _VERSION == "Lua 5.4" and not jit then
    it("installs with luarocks make into a tree the module then loads from #no_asan", function()
      local tmp = h.tmpname("-rock")
      local src, tree = tmp .. "/src", tmp .. "/tree"
      local q = h.shell_quote
      finally(function() os.execute("rm -rf " .. q(tmp)) end)
      local _, err, code = h.run(("mkdir -p %s && cp -R rockspec lua csrc bin doc examples meta %s/")
        :format(q(src), q(src)))
      assert.are.equal(0, code, err)
      local out
      out, err, code = h.run(("cd %s && luarocks --lua-version=5.4 make %s --tree %s --deps-mode=none")
        :format(q(src), ROCKSPEC, q(tree)))
      assert.are.equal(0, code, out .. err)

      -- only the tree on the paths, run from elsewhere than the checkout
      local env = ("env -u LUA_PATH -u LUA_CPATH -u LUA_INIT -u LUA_INIT_5_4 LUA_PATH_5_4=%s LUA_CPATH_5_4=%s")
        :format(q(tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua"),
                q(tree .. "/lib/lua/5.4/?.so"))
      local fixture = h.root .. "/" .. h.fixture "labels_bom_lf.csv"
      local script = "local cpf = require 'cpf' "
        .. "local ds = assert(cpf.load(" .. ("%q"):format(fixture) .. ")) "
        .. "io.write(cpf._VERSION, ' ', #ds, ' ', ds:get(2, 'code_officiel_departement'), ' ', "
        .. "package.searchpath('cpf', package.path), ' ', package.searchpath('cpf.core', package.cpath))"
      out, err, code = h.run(("cd /tmp && %s lua5.4 -e %s"):format(env, q(script)))
      assert.are.equal(0, code, err)
      assert.are.equal(("0.1.0 3 2A %s/share/lua/5.4/cpf/init.lua %s/lib/lua/5.4/cpf/core.so")
        :format(tree, tree), out)

      out, err, code = h.run(("cd /tmp && %s %s --version"):format(env, q(tree .. "/bin/cpf")))
      assert.are.equal(0, code, err)
      assert.are.equal("cpf 0.1.0\n", out)

      for _, file in ipairs { "doc/api.md", "examples/funder_mix.lua", "meta/cpf.lua" } do
        local f = io.open(tree .. "/lib/luarocks/rocks-5.4/cpf/scm-1/" .. file, "rb")
        assert.is_truthy(f, file .. " is not installed with the rock")
        f:close()
      end
    end)
  else
    pending("luarocks make installs a working tree (run under Lua 5.4)")
  end
end)

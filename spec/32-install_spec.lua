-- The release installs offline into a fresh LuaRocks tree for each of Lua 5.1, 5.3, 5.4 and
-- LuaJIT (README's routes, LuaJIT through LuaRocks' 5.1 tree with the LuaJIT interpreter and
-- headers), and from a directory that is not the checkout the installed cpf command, the
-- examples of the rock and `require "cpf"` (only `luarocks path` set) work and agree with the
-- checkout. Run under Lua 5.4 (it drives the four itself); nothing touches the network or $HOME.
-- CI installs for Lua 5.4 and LuaJIT (the hosts' Lua); CPF_INSTALL_SWEEP=all (make check-all)
-- for all four.
local h = require "spec.helpers"
local cpf = require "cpf"

local q = h.shell_quote

-- interpreter, LuaRocks' --lua-version, and the luarocks config commands README gives (LuaJIT)
local FLAVOURS = {
  { name = "lua5.1", lua = "lua5.1", version = "5.1", label = "Lua 5.1" },
  { name = "lua5.3", lua = "lua5.3", version = "5.3", label = "Lua 5.3" },
  { name = "lua5.4", lua = "lua5.4", version = "5.4", label = "Lua 5.4" },
  { name = "luajit", lua = "luajit", version = "5.1", label = "LuaJIT", config = {
    "luarocks --lua-version=5.1 config lua_interpreter luajit",
    "luarocks --lua-version=5.1 config variables.LUA_INCDIR /usr/include/luajit-2.1",
  } },
}

local function sh(command)
  local out, err, code = h.run(command)
  assert(code == 0, command .. "\nexit " .. tostring(code) .. ":\n" .. out .. err)
  return out, err
end

if _VERSION == "Lua 5.4" and not jit then
  describe("the release cpf-" .. cpf._VERSION .. "-1.src.rock #no_asan", function()
    local tmp, rock, data, expected_query, expected_examples
    local version = cpf._VERSION

    lazy_setup(function()
      tmp = h.tmpname("-install")
      sh("mkdir -p " .. q(tmp .. "/dist") .. " " .. q(tmp .. "/work"))
      local out = sh(("make -s --no-print-directory dist VERSION=%s DIST_DIR=%s 2>/dev/null")
        :format(version, q(tmp .. "/dist")))
      rock = tmp .. "/dist/cpf-" .. version .. "-1.src.rock"
      assert.is_truthy(out:find(rock, 1, true), out)

      -- what the checkout answers, through the API and its own command
      data = tmp .. "/work/data.csv"
      sh(h.cpf_command(("gen 3000 %s --seed 5"):format(q(data))))
      local ds = assert(cpf.load(data))
      expected_query = ds:group_by("region_lieu_formation", "annee")
        :agg { "dossiers", "montant", "prix_moyen" }:order_by("-montant", "region_lieu_formation", "annee")
        :run():format("csv")
      ds:close()
      expected_examples = {}
      for _, name in ipairs { "region_year_crosstab", "top10_certifications" } do
        expected_examples[name] = sh(h.cpf_command(("run examples/%s.lua %s"):format(name, q(data))))
      end
    end)

    lazy_teardown(function()
      if tmp then os.execute("rm -rf " .. q(tmp)) end
      h.cleanup()
    end)

    it("is made by make dist: a tarball of the tracked files and two rockspecs luarocks lint accepts", function()
      local files = sh("tar tzf " .. q(tmp .. "/dist/cpf-" .. version .. ".tar.gz"))
      local tracked = sh("git ls-files")
      for path in tracked:gmatch("[^\n]+") do
        if io.open(path) then assert.is_truthy(files:find("cpf-" .. version .. "/" .. path .. "\n", 1, true), path) end
      end
      local rockspec = tmp .. "/dist/rockspec/cpf-" .. version .. "-1.rockspec"
      local text = h.read_file(rockspec)
      assert.is_truthy(text:find('version = "' .. version .. '-1"', 1, true))
      assert.is_truthy(text:find('url = "file://' .. tmp .. "/dist/cpf-" .. version .. '.tar.gz"', 1, true))
      assert.is_truthy(text:find('license = "MIT"', 1, true))
      sh("luarocks lint " .. q(rockspec))
      sh("luarocks lint rockspec/cpf-scm-1.rockspec")
    end)

    it("takes a git+https source at the tag and a homepage for the rockspec to publish (DIST_GIT)", function()
      local out = tmp .. "/git"
      sh(("make -s --no-print-directory dist VERSION=%s DIST_DIR=%s DIST_GIT=%s 2>/dev/null")
        :format(version, q(out), "git+https://example.org/cpf/cpf.git"))
      local text = h.read_file(out .. "/rockspec/cpf-" .. version .. "-1.rockspec")
      assert.is_truthy(text:find('source = {\n  url = "git+https://example.org/cpf/cpf.git",\n  tag = "v'
        .. version .. '",\n}', 1, true), text)
      assert.is_truthy(text:find('homepage = "https://example.org/cpf/cpf"', 1, true), text)
      sh("luarocks lint " .. q(out .. "/rockspec/cpf-" .. version .. "-1.rockspec"))
      assert.is_truthy(io.open(out .. "/cpf-" .. version .. "-1.src.rock"), "the offline rock, from the tarball")
      local _, err, code = h.run(("make -s --no-print-directory dist VERSION=%s DIST_DIR=%s DIST_GIT=http://x")
        :format(version, q(out)))
      assert.are_not.equal(0, code)
      assert.is_truthy(err:find("make dist: DIST_GIT=git+https://... expected, got 'http://x'", 1, true), err)
    end)

    it("refuses a version other than the module's, and one that is not x.y.z", function()
      local _, err, code = h.run("make -s --no-print-directory dist VERSION=9.9.9 DIST_DIR=" .. q(tmp .. "/bad"))
      assert.are_not.equal(0, code)
      assert.is_truthy(err:find('make dist: lua/cpf/init.lua says _VERSION = "' .. version
        .. '": a release of 9.9.9 needs the two equal', 1, true), err)
      _, err, code = h.run("make -s --no-print-directory dist VERSION=1.0 DIST_DIR=" .. q(tmp .. "/bad"))
      assert.are_not.equal(0, code)
      assert.is_truthy(err:find("make dist: VERSION=x.y.z expected, got '1.0'", 1, true), err)
    end)

    local all = os.getenv("CPF_INSTALL_SWEEP") == "all"
    for _, f in ipairs(FLAVOURS) do
      local install_it = (all or f.name == "lua5.4" or f.name == "luajit") and it or pending
      install_it("installs offline for " .. f.label .. " and runs from outside the checkout", function()
        local home, tree, work = tmp .. "/home-" .. f.name, tmp .. "/tree-" .. f.name, tmp .. "/work"
        -- a fresh HOME (LuaRocks' user config) and no Lua paths from the environment
        local suffix = f.version:gsub("%.", "_")
        local env = ("env -u LUA_PATH -u LUA_CPATH -u LUA_INIT -u LUAROCKS_CONFIG -u LUA_PATH_%s -u LUA_CPATH_%s "
          .. "HOME=%s "):format(suffix, suffix, q(home))
        sh("mkdir -p " .. q(home .. "/.luarocks"))
        for _, command in ipairs(f.config or {}) do sh(env .. command) end
        sh(("cd %s && %s luarocks --lua-version=%s install ./%s --tree %s --deps-mode=none")
          :format(q(tmp .. "/dist"), env, f.version, rock:match("[^/]+$"), q(tree)))
        local rock_dir = ("%s/lib/luarocks/rocks-%s/cpf/%s-1"):format(tree, f.version, version)
        local core = ("%s/lib/lua/%s/cpf/core.so"):format(tree, f.version)
        local cpf_bin = q(tree .. "/bin/cpf")
        local function run(command) return sh(("cd %s && %s%s"):format(q(work), env, command)) end

        -- the installed command, by its path alone, runs under this flavour's interpreter
        assert.are.equal("cpf " .. version .. "\n", run(cpf_bin .. " --version"))
        local wrapper = h.read_file(tree .. "/bin/cpf")
        assert.is_truthy(wrapper:find("/usr/bin/" .. f.lua .. "' ", 1, true), wrapper)
        h.write_bytes(work .. "/which_" .. f.name .. ".lua", "io.write(jit and 'LuaJIT' or _VERSION)")
        assert.are.equal(f.label, run(cpf_bin .. " run which_" .. f.name .. ".lua"))

        -- cpf gen and cpf query give the checkout's bytes
        run(cpf_bin .. " gen 3000 gen-" .. f.name .. ".csv --seed 5")
        assert.are.equal(h.read_file(data), h.read_file(work .. "/gen-" .. f.name .. ".csv"))
        assert.are.equal(expected_query, run(cpf_bin .. " query data.csv --by region_lieu_formation,annee "
          .. "--measure dossiers,montant,prix_moyen --sort=-montant,region_lieu_formation,annee --format csv"))

        -- two examples, from the rock's own copy (copy_directories), as from the checkout
        for name, expected in pairs(expected_examples) do
          local example = rock_dir .. "/examples/" .. name .. ".lua"
          assert.are.equal(expected, run(("%s run %s data.csv"):format(cpf_bin, q(example))))
        end
        assert.is_truthy(io.open(rock_dir .. "/meta/cpf.lua"), "meta/ is not installed with the rock")
        assert.is_truthy(io.open(rock_dir .. "/doc/api.md"), "doc/ is not installed with the rock")

        -- require "cpf" from the interpreter with only `luarocks path` set
        -- (package.searchpath is not in Lua 5.1: the script looks the way require does)
        local script = "local function find(name, path) for p in path:gmatch('[^;]+') do "
          .. "local file = p:gsub('%?', (name:gsub('%.', '/'))) local f = io.open(file) "
          .. "if f then f:close() return file end end end "
          .. "local cpf = require 'cpf' local ds = assert(cpf.load('data.csv')) "
          .. "io.write(cpf._VERSION, ' ', #ds, ' ', find('cpf', package.path), ' ', find('cpf.core', package.cpath))"
        assert.are.equal(("%s 3000 %s/share/lua/%s/cpf/init.lua %s"):format(version, tree, f.version, core),
          run("sh -c " .. q(("eval \"$(luarocks --lua-version=%s path --tree %s)\" && %s -e %s")
            :format(f.version, q(tree), f.lua, q(script)))))

        -- one exported function, whatever LuaRocks' build passed
        assert.are.same({ "luaopen_cpf_core" }, h.exported_symbols(core))
      end)
    end
  end)
else
  pending("the release installs for Lua 5.1, 5.3, 5.4 and LuaJIT (run under Lua 5.4)")
end

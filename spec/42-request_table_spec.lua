-- The one request table (cpf.request's fields): every front end derives its fields from it —
-- the command line its options and help, HTTP its parameters (spec/35), Neovim its completion
-- (spec/34) and :help list, Lua the request and load options — and the front ends never
-- require each other. One error protocol (cpf.errors) for the whole Lua layer.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"
local request = require "cpf.request"
local errors = require "cpf.errors"
local core = require "cpf.core"

local q = h.shell_quote

local function cpf_run(args) return h.run(h.cpf_command(args)) end

-- What a field's example needs beside it to be answered (--title needs a format that has one).
local COMPANIONS = {
  title = { "--format", "html" }, bar = { "--format", "table" }, per = { "--limit", "2" },
  locale = { "--format", "markdown" }, opt = { "--format", "markdown" }, others = { "--limit", "2" },
}

describe("the request table", function()
  local path, ref
  setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 3000, { seed = 4 }))
    ref = h.write_file("annee;habitants\n2021;10\n2022;20\n2023;30\n", ".csv")
  end)
  teardown(function() h.cleanup() end)

  it("gives every field a class, a shape, help, and a parser for each of its front ends", function()
    local classes = { request = true, load = true, cli = true, fetch = true, history = true }
    local shapes = { flag = true, one = true, list = true, ["repeat"] = true }
    local seen = {}
    for _, f in ipairs(request.fields) do
      assert.is_nil(seen[f.name], f.name)
      seen[f.name] = true
      assert.is_true(classes[f.class], f.name)
      assert.is_true(f.lua_only or shapes[f.shape], f.name)
      assert.is_string(f.help, f.name)
      if f.class == "request" then assert.is_function(f.parse, f.name) end
      if f.class == "load" and not f.lua_only then assert.is_function(f.parse_text, f.name) end
      if request.takes("nvim", f) and f.class == "request" and f.shape ~= "flag" and f.name ~= "title"
         and f.name ~= "limit" and f.name ~= "opt" then
        assert.is_string(f.complete, f.name .. " completes something")
      end
    end
    -- the classes' front ends
    assert.is_true(request.takes("http", "where"))
    assert.is_false(request.takes("http", "sep"))
    assert.is_false(request.takes("http", "output"))
    assert.is_false(request.takes("nvim", "threads"))
    assert.is_true(request.takes("cli", "threads"))
    assert.is_false(request.takes("cli", "columns"))
    assert.is_true(request.takes("lua", "columns"))
    assert.is_false(request.takes("cli", "opts"))
  end)

  it("is what cpf query accepts: every command-line field, with its example", function()
    local tested = {}
    for _, f in ipairs(request.fields_of("cli", "request")) do
      local value = f.name == "join" and ref .. ":annee" or f.example
      if f.name == "bar" then value = "dossiers" end
      if f.name == "title" then value = "Titre" end
      assert.is_string(value, f.name .. " has an example")
      local args = { "query", q(path), f.name ~= "by" and "--by annee" or "", "--" .. f.name:gsub("_", "-"),
                     f.shape ~= "flag" and q(value) or "" }
      for _, c in ipairs(COMPANIONS[f.name] or {}) do args[#args + 1] = q(c) end
      local out, err, code = cpf_run(table.concat(args, " "))
      assert.are.equal(0, code, f.name .. ": " .. err)
      assert.are_not.equal("", out, f.name)
      tested[f.name] = true
    end
    for _, name in ipairs { "where", "by", "measure", "sort", "limit", "per", "having", "join", "change", "cumsum",
                            "rolling", "share", "rank", "others", "totals", "format", "bar", "title", "locale",
                            "opt", "with" } do
      assert.is_true(tested[name], name)
    end
    -- the load fields and the command line's own
    local out_file = h.tmpname(".csv")
    local _, err, code = cpf_run(("query %s --by annee --sep ';' --decimal . --threads 2 --cache -q -o %s --format csv")
      :format(q(path), q(out_file)))
    assert.are.equal(0, code, err)
    assert.is_truthy(h.read_file(out_file):find("^annee,dossiers,montant\n"))
    os.remove(path .. ".cpfsnap")
    -- a Lua-only field is no option
    _, err, code = cpf_run(("query %s --columns annee"):format(q(path)))
    assert.are.equal(2, code)
    assert.are.equal("cpf: unknown option '--columns'\ntry 'cpf query --help'\n", err)
  end)

  it("is what request.parse takes in Lua: the request fields, nothing else", function()
    for _, f in ipairs(request.fields_of("lua", "request")) do
      if f.example then
        local fields = { [f.name] = f.example, by = f.name ~= "by" and "annee" or nil }
        if f.name == "per" or f.name == "others" then fields.limit = 2 end
        if f.name == "opt" or f.name == "locale" then fields.format = "markdown" end
        assert.is_truthy(request.parse(fields), f.name)
      end
    end
    assert.is_truthy(request.parse { opts = { decimals = 1 }, format = "markdown" })
    for _, name in ipairs { "sep", "threads", "cache", "output", "plugin", "quiet", "columns" } do
      assert.are.same({ nil, ("request: unknown field '%s'"):format(name), "usage" },
        { request.parse { [name] = "x" } })
    end
  end)

  it("derives cpf query --help and the data options' help from the table", function()
    local out, _, code = cpf_run("query --help")
    assert.are.equal(0, code)
    for _, f in ipairs(request.fields_of("cli")) do
      assert.is_truthy(out:find("--" .. f.name:gsub("_", "-"), 1, true), f.name)
      local first = f.help:match("^[^\n]*")
      assert.is_truthy(out:find(first, 1, true), f.name .. ": " .. first)
    end
    assert.is_truthy(out:find("\nexample:\n", 1, true))
    assert.is_truthy(out:find("\ndata options:\n" .. request.help(request.fields_of("cli", "load")), 1, true))
    for _, command in ipairs { "describe", "run", "convert" } do
      out = cpf_run(command .. " --help")
      assert.is_truthy(out:find(request.data_help(), 1, true), command)
    end
  end)

  it("lists Neovim's :Cpf query fields in doc/cpf.txt as the table has them", function()
    local doc = h.read_file("doc/cpf.txt")
    local list = request.field_list("nvim")
    assert.is_truthy(doc:find(list, 1, true), "doc/cpf.txt lists:\n" .. list)
    local names = request.option_names("nvim", "request")
    assert.are.same({ "--bar", "--by", "--change", "--cumsum", "--format", "--having", "--join", "--limit", "--locale",
                      "--measure", "--opt", "--others", "--per", "--rank", "--rolling", "--share", "--sort", "--title",
                      "--totals", "--where", "--with" }, names)
  end)

  it("completes every measure, aggregate form and virtual key the command line accepts", function()
    local measures = request.complete("measure", "")
    local set = {}
    for _, m in ipairs(measures) do set[m] = true end
    for name in pairs(cpf.measures) do assert.is_true(set[name], name) end
    for _, form in ipairs { "count", "count:", "sum:", "mean:", "min:", "max:", "median:", "distinct:", "quantile:",
                            "ratio:", "wmean:", "share:" } do
      assert.is_true(set[form], form)
    end
    -- every form completed is one the command line accepts
    local ds = assert(cpf.load(path))
    for _, form in ipairs(request.measure_forms()) do
      local spec = form
      if form == "quantile:" then spec = "quantile:montant_engage:0.5"
      elseif form == "ratio:" or form == "wmean:" then spec = form .. "montant_engage:nb_dossiers"
      elseif form == "share:" then spec = "share:dossiers"
      elseif form ~= "count" then spec = form .. "montant_engage" end
      local req = assert(request.parse { measure = spec })
      assert.is_truthy(req:run(ds), spec)
    end
    local keys = request.complete("by", "", ds:columns())
    for _, k in ipairs { "annee", "mois", "famille", "region_lieu_formation" } do
      local found = false
      for _, x in ipairs(keys) do found = found or x == k end
      assert.is_true(found, k)
    end
    assert.are.same({ "sum:montant_engage" }, request.complete("measure", "sum:montant_e", ds:columns()))
    assert.are.same({ "dossiers,prix_moyen" }, request.complete("measure", "dossiers,prix", ds:columns()))
    assert.are.same({ "dossiers:annee" }, request.complete("change", "dossiers:ann", ds:columns()))
    assert.are.same({ "montant:annee,famille" }, request.complete("rank", "montant:annee,fam", ds:columns()))
    assert.are.same({ "fr" }, request.complete("locale", "f"))
    assert.is_nil(request.complete("join", "x"), "the editor completes files")
    ds:close()
  end)

  it("keeps the front ends apart: each requires the facade, request, errors and formats, never another", function()
    local front_ends = { "cpf.cli", "cpf.nvim", "cpf.resty" }
    local below = { ["cpf.query"] = true, ["cpf.schema"] = true, ["cpf.transform"] = true, ["cpf.result"] = true }
    for _, name in ipairs(front_ends) do
      local text = h.read_file("lua/" .. name:gsub("%.", "/") .. ".lua")
      for required in text:gmatch("require%s*%(?%s*[\"']([%w%._]+)[\"']") do
        for _, other in ipairs(front_ends) do
          if other ~= name then assert.are_not.equal(other, required, name .. " requires " .. other) end
        end
        assert.is_nil(below[required], name .. " requires " .. required .. ", below the facade")
      end
    end
  end)

  it("tags a cached snapshot with every load field that changes the load: other options never reuse it", function()
    local csv = h.tmpname(".csv")
    assert(gen.write(csv, 500, { seed = 2 }))
    local snap = csv .. ".cpfsnap"
    local function tag_of(opts)
      opts.cache = true
      local ds = assert(cpf.load(csv, opts))
      ds:close()
      local s, tag = core.open_snapshot(snap, true)
      s:close()
      return tag
    end
    local VALUES = { sep = ";", decimal = ".", thousands = "none", types = { nb_dossiers = "number" },
                     parser = "libcsv", on_error = "skip", max_rejects = 5, encoding = "latin1",
                     columns = { "annee", "nb_dossiers" } }
    local fields = request.load_tag_fields()
    assert.are.same({ "sep", "decimal", "thousands", "encoding", "on_error", "max_rejects", "types", "parser",
                      "columns" }, fields)
    local plain = tag_of {}
    assert.are.equal(plain, tag_of { threads = 1 }, "threads change nothing loaded")
    for _, name in ipairs(fields) do
      local tag = tag_of { [name] = VALUES[name] }
      assert.are_not.equal(plain, tag, name)
      assert.is_truthy(tag:find(name .. "=", 1, true), name)
    end
    -- and the dataset read back from the cache is the one those options load
    local again = assert(cpf.load(csv, { cache = true, columns = { "annee", "nb_dossiers" } }))
    assert.are.equal(2, #again:columns()) -- annee loads date_validation
    again:close()
    os.remove(snap)
  end)
end)

describe("cpf.errors", function()
  it("carries a kind and a message, and strips only cpf's own positions", function()
    local e = errors.new("data", "x: nope", { status = 400 })
    assert.is_true(errors.is(e))
    assert.are.equal("data", e.kind)
    assert.are.equal(400, e.status)
    assert.are.equal("x: nope", tostring(e))
    assert.has_error(function() errors.new("oops", "x") end)
    assert.are.equal("boom", errors.strip("/usr/share/lua/5.4/cpf/query.lua:12: boom"))
    assert.are.equal("boom", errors.strip("...share/lua/5.1/cpf/format/html.lua:3: boom"))
    assert.are.equal("my.lua:3: boom", errors.strip("my.lua:3: boom"))
    assert.are.same({ nil, "x: nope", "data" }, { errors.protect(error, e) })
    assert.are.same({ nil, "plain", "data" }, { errors.protect(error, "lua/cpf/result.lua:9: plain", 0) })
    assert.are.equal("cpf: a\\x1B[31mb", errors.message("a\27[31mb"))
  end)

  it("is what a result operation raises and a request answers with", function()
    local res = cpf.result({ "a" }, { { a = 1 } })
    local ok, err = pcall(res.change, res, "nope", { over = "a" })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("change: 'nope' is not a column of the result", 1, true), err)
    local ok2, raised = pcall(require("cpf.transform").change, res, "nope", { over = "a" })
    assert.is_false(ok2)
    assert.is_true(errors.is(raised))
    assert.are.equal("data", raised.kind)
  end)
end)

describe("the Lua layer's files", function()
  local function lua_files()
    local files = {}
    for path in io.popen("find lua -name '*.lua' | sort"):lines() do files[#files + 1] = path end
    return files
  end

  it("are each under 800 lines and open with their job", function()
    for _, path in ipairs(lua_files()) do
      local text = h.read_file(path)
      local _, lines = text:gsub("\n", "")
      assert.is_true(lines <= 800, ("%s: %d lines"):format(path, lines))
      assert.is_truthy(text:match("^%-%- "), path .. " opens with a comment saying its job")
    end
  end)

  it("require at the top, but a module loaded on first use, which a comment says", function()
    for _, path in ipairs(lua_files()) do
      local lines = {}
      for line in (h.read_file(path) .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
      for i, line in ipairs(lines) do
        local code = line:gsub("\\.", ""):gsub('"[^"]*"', '""'):gsub("%-%-.*$", "")
        if code:match("^%s+") and (code:match("require%(") or code:match("[=,]%s*require%s*[%(\"]")) then
          local commented = line:find("--", 1, true)
          for j = math.max(1, i - 3), i - 1 do commented = commented or lines[j]:match("^%s*%-%-") end
          assert.is_truthy(commented, ("%s:%d: an inline require without a comment saying why"):format(path, i))
        end
      end
    end
  end)

  it("form no require cycle between query, result and transform", function()
    local function requires(name)
      local text = h.read_file("lua/" .. name:gsub("%.", "/") .. ".lua")
      local out = {}
      for line in text:gmatch("[^\n]+") do
        local m = line:match('^local [%w_]+ = require "([%w%.]+)"')
        if m then out[#out + 1] = m end
      end
      return out
    end
    local seen, stack = {}, {}
    local function visit(name)
      if stack[name] then error("require cycle through " .. name) end
      if seen[name] or not name:match("^cpf") or name == "cpf.core" then return end
      stack[name] = true
      for _, r in ipairs(requires(name == "cpf" and "cpf.init" or name)) do visit(r) end
      stack[name], seen[name] = nil, true
    end
    for _, m in ipairs { "cpf.query", "cpf.result", "cpf.transform", "cpf.request", "cpf.cli", "cpf.resty" } do
      visit(m)
    end
  end)
end)

describe("schema.lua", function()
  it("owns every CPF rule: no other module names the funders' exception, the source line's fields, "
     .. "the demo's sections or a measure's kind", function()
    local words = { "france_competences", "date_chargement", "nb_dossiers_finances_par_", ':kind("rate")',
                    "Dossiers par famille", "Caisse des Dépôts", "Mon Compte Formation" }
    for path in io.popen("find lua -name '*.lua' | sort"):lines() do
      if path ~= "lua/cpf/schema.lua" and not path:match("^lua/cpf/gen") then
        local text = h.read_file(path)
        for _, w in ipairs(words) do
          assert.is_nil(text:find(w, 1, true), path .. " names " .. w)
        end
      end
    end
    local schema = require "cpf.schema"
    assert.are.same({ "part_etat", "nb_dossiers_finances_par_etat" }, { schema.funder_columns("etat") })
    assert.are.same({ "part_france_competences" }, { schema.funder_columns("france_competences") })
    assert.are.equal("rate", require("cpf.query").value_kind(require("cpf").measures.taux_annulation))
  end)
end)

describe("cpf.resty as a library", function()
  it("follows the lua-resty conventions: _VERSION, new(opts) -> a server or nil, err", function()
    local resty = require "cpf.resty"
    assert.are.equal(cpf._VERSION, resty._VERSION)
    for _, case in ipairs {
      { nil, "cpf.resty.new: a table of settings expected" },
      { {}, "cpf.resty.new: setting 'snapshot' (a path) is required" },
      { { snapshot = "x", nope = 1 }, "cpf.resty.new: unknown setting 'nope'" },
      { { snapshot = "x", max_rows = 0 }, "cpf.resty.new: setting 'max_rows' must be a whole number from 1" },
      { { snapshot = "x", check_every = -1 }, "cpf.resty.new: setting 'check_every' must be a number above 0" },
      { { snapshot = "x", prefix = "cpf" }, "cpf.resty.new: setting 'prefix' must be \"\" or a path such as \"/cpf\"" },
    } do
      assert.are.same({ nil, case[2] }, { resty.new(case[1]) })
    end
    local server = assert(resty.new { snapshot = "/nonexistent.cpfsnap", prefix = "/cpf", max_rows = 5 })
    assert.are.equal(5, server.settings.max_rows)
    assert.are.equal(4096, server.settings.max_request)
    local ok, err = server:open()
    assert.is_nil(ok)
    assert.is_truthy(err:find("/nonexistent.cpfsnap", 1, true), err)
    local other = assert(resty.new { snapshot = "/other.cpfsnap" })
    assert.are_not.equal(server, other)
    assert.are.equal("", other.settings.prefix)
  end)
end)

describe("cpf query", function()
  it("opens its data file once, resolves its header once and checks the request once", function()
    local path = h.tmpname(".csv")
    assert(gen.write(path, 2000, { seed = 5 }))
    local schema = require "cpf.schema"
    local Request = getmetatable(assert(request.parse {})).__index
    local counts = { open = 0, resolve = 0, check = 0 }
    local real = { open = core.open, io_open = io.open, resolve = schema.resolve, check = Request.check }
    core.open = function(p, ...) if p == path then counts.open = counts.open + 1 end return real.open(p, ...) end
    -- luacheck: push ignore 122 (io.open counted, then put back)
    io.open = function(p, ...) if p == path then counts.open = counts.open + 1 end return real.io_open(p, ...) end
    schema.resolve = function(...) counts.resolve = counts.resolve + 1 return real.resolve(...) end
    Request.check = function(...) counts.check = counts.check + 1 return real.check(...) end
    local out = h.tmpname(".csv")
    local ok, code = pcall(require("cpf.cli").main,
      { "query", path, "--where", "annee=2023", "--by", "region_lieu_formation", "--format", "csv", "-o", out })
    core.open, io.open, schema.resolve, Request.check = real.open, real.io_open, real.resolve, real.check
    -- luacheck: pop
    assert.is_true(ok, tostring(code))
    assert.are.equal(0, code)
    assert.are.same({ open = 1, resolve = 1, check = 1 }, counts)
    -- the same answer as a load of the whole file
    local ds = assert(cpf.load(path))
    local req = assert(request.parse { where = "annee=2023", by = "region_lieu_formation", format = "csv" })
    assert.are.equal(assert(req:text(assert(req:run(ds)))), h.read_file(out))
    ds:close()
  end)

  it("cpf.source opens a file once for its columns and its load, a snapshot as cpf.open", function()
    local path = h.tmpname(".csv")
    assert(gen.write(path, 500, { seed = 6 }))
    local src = assert(cpf.source(path))
    assert.is_false(src.snapshot)
    assert.are.same(cpf.header(path), src:columns())
    local ds = assert(src:load { "annee", "nb_dossiers" })
    assert.are.same({ "date_validation", "nb_dossiers" }, { ds:columns()[1].name, ds:columns()[2].name })
    assert.has_error(function() src:load() end, "source: already loaded or closed")
    local snap = h.tmpname(".bin") -- a snapshot without the extension: seen by its first bytes
    assert(ds:save(snap))
    local s2 = assert(cpf.source(snap))
    assert.is_true(s2.snapshot)
    assert.are.same(ds:columns(), s2:columns())
    local d2 = assert(s2:load())
    assert.are.equal(#ds, #d2)
    d2:close()
    ds:close()
    assert.are.same({ nil, "/nonexistent.csv: cannot open: No such file or directory", "io" },
      { cpf.source("/nonexistent.csv") })
    assert.has_error(function() cpf.source(path, { cache = true }) end,
      "source: option 'cache' is not for source (cache: cpf.load; columns: src:load)")
  end)
end)

-- The Neovim plugin in the real program: Debian's nvim (LuaJIT) headless, the checkout on
-- 'runtimepath' and nothing else, the core built by make LUA=luajit. Each test runs a script in
-- a fresh nvim that writes what it saw as JSON; the spec compares it with the command line's
-- bytes (lua5.4 bin/cpf). Run under Lua 5.4 (nvim is its own LuaJIT).
local h = require "spec.helpers"
local gen = require "cpf.gen"

local q = h.shell_quote

-- h.json_decode's objects ({keys, object}) and nulls as plain Lua values
local function plain(v)
  if v == h.JSON_NULL then return nil end
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v.object or v) do t[k] = plain(x) end
  return t
end

-- Runs `script` (Lua) in headless nvim; returns what it gave to `report` (a table), the exit
-- code and stderr. The script ends with report(t), which writes t and quits.
local function nvim(script, out_file)
  local file = h.tmpname(".lua")
  h.write_bytes(file, ([[
local function report(t) vim.fn.writefile({ vim.fn.json_encode(t) }, %q) vim.cmd("qa!") end
local notes = {}
vim.notify = function(msg, level) notes[#notes + 1] = { msg = msg, level = level } end
local ok, err = pcall(function()
%s
end)
if not ok then report { lua_error = tostring(err) } end
]]):format(out_file, script))
  local out, err, code = h.run(("cd /tmp && env -u LD_PRELOAD timeout 120 nvim --headless --clean --cmd %s -c %s")
    :format(q("set rtp^=" .. h.root), q("luafile " .. file)))
  local f = io.open(out_file, "rb")
  local report = f and plain(h.json_decode(f:read("*a"))) or {}
  if f then f:close() end
  os.remove(out_file)
  return report, code, err, out
end

local function cli(args)
  local out, err, code = h.run("lua5.4 bin/cpf " .. args)
  return out, err, code
end

local function lines(text)
  local t = {}
  for line in (text:gsub("\n$", "") .. "\n"):gmatch("([^\n]*)\n") do t[#t + 1] = line end
  return t
end

if _VERSION == "Lua 5.4" and not jit then
  describe("the Neovim plugin #no_asan", function()
    local data, out_file

    lazy_setup(function()
      data = h.tmpname(".csv")
      assert(gen.write(data, 200000, { seed = 9 }))
      out_file = h.tmpname(".json")
      local _, err, code = h.run("make -s LUA=luajit")
      assert(code == 0, err)
    end)
    lazy_teardown(h.cleanup)

    it("loads a 200 000-row CSV in the background: a 10 ms timer ticks throughout the load", function()
      local r = nvim(([[
local ticks = {}
local timer = vim.loop.new_timer()
timer:start(0, 10, function() ticks[#ticks + 1] = vim.loop.hrtime() / 1e6 end)
local t0 = vim.loop.hrtime() / 1e6
vim.cmd("Cpf open %s")
local started = require("cpf.nvim").state.job ~= nil
vim.wait(60000, function() return require("cpf.nvim").state.job == nil end, 5)
local t1 = vim.loop.hrtime() / 1e6
timer:stop()
local gap, last, during = 0, t0, 0
for _, t in ipairs(ticks) do
  if t >= t0 and t <= t1 then
    during = during + 1
    gap = math.max(gap, t - last)
    last = t
  end
end
gap = math.max(gap, t1 - last)
report { started = started, rows = #require("cpf.nvim").state.dataset, ticks = during, gap = gap,
         took = t1 - t0, notes = notes }
]]):format(data), out_file)
      assert.is_nil(r.lua_error)
      assert.is_true(r.started, "the load runs in the background")
      assert.are.equal(200000, r.rows)
      -- relative to the load's own length (never an absolute duration): the timer kept ticking
      -- at about its rate, and no pause took a large part of the load
      assert.is_true(r.ticks >= r.took / 10 / 3, ("%d ticks in %.0f ms"):format(r.ticks, r.took))
      assert.is_true(r.gap <= r.took / 2, ("a pause of %.0f ms in a load of %.0f ms"):format(r.gap, r.took))
      assert.are.same({}, r.notes)
    end)

    it(":Cpf query shows the bytes cpf query prints, in a cpf:// scratch buffer", function()
      local queries = {
        "--by region_lieu_formation --measure dossiers,montant",
        "--where annee=2024 --where \"region_lieu_formation=Provence-Alpes-Côte d'Azur\" "
          .. "--by departement_lieu_formation,famille --measure dossiers,prix_moyen --sort=-dossiers --limit 5",
        "--by mois --measure lignes,taux_annulation --format markdown",
        -- the result reshaped: having, a change over years, top n per group, cumsum, rank, a join
        "--by region_lieu_formation,annee --measure montant --having 'montant>100000' --change montant:annee",
        "--by region_lieu_formation,code_rncp --sort region_lieu_formation,-montant --limit 2 "
          .. "--per region_lieu_formation",
        "--by mois --measure dossiers --cumsum dossiers:mois --rank dossiers",
        "--by region_lieu_formation --join "
          .. h.write_file("region_lieu_formation;habitants\nBretagne;3400000\nNormandie;3300000\n", ".csv")
          .. ":region_lieu_formation",
      }
      -- the first names the file, which is not open yet: it opens, then answers
      local script = { "local got = {}" }
      for i, qs in ipairs(queries) do
        script[#script + 1] = ("vim.cmd(%q)"):format("Cpf query " .. (i == 1 and data .. " " or "") .. qs)
        script[#script + 1] = "vim.wait(60000, function() return require('cpf.nvim').state.job == nil end, 5)"
        -- the first one's window opened without the cursor (the load ended in the background)
        script[#script + 1] = ("local b = require('cpf.nvim').state.buffers.query "
          .. "got[%d] = { name = vim.api.nvim_buf_get_name(b), lines = vim.api.nvim_buf_get_lines(b, 0, -1, false), "
          .. "buftype = vim.bo[b].buftype, wrap = vim.wo[vim.fn.bufwinid(b)].wrap, filetype = vim.bo[b].filetype, "
          .. "modifiable = vim.bo[b].modifiable, current = vim.api.nvim_get_current_buf() == b }"):format(i)
      end
      script[#script + 1] = "local warnings = {} for _, n in ipairs(notes) do "
        .. "if n.level >= vim.log.levels.WARN then warnings[#warnings + 1] = n end end"
      script[#script + 1] = "report { got = got, notes = warnings }"
      local r = nvim(table.concat(script, "\n"), out_file)
      assert.is_nil(r.lua_error)
      -- one warning: the --change query compares the extraction's partial year (as cpf query says)
      assert.are.equal(1, #r.notes)
      assert.are.equal(3, r.notes[1].level) -- vim.log.levels.WARN
      assert.is_truthy(r.notes[1].msg:find("^cpf: note: annee %d+ is partial: the extraction of "), r.notes[1].msg)
      for i, qs in ipairs(queries) do
        local format = qs:find("--format") and "" or " --format table"
        local expected, err, code = cli("query " .. q(data) .. " " .. qs .. format)
        assert.are.equal(0, code, err)
        local got = r.got[i]
        assert.are.same(lines(expected), got.lines, qs)
        assert.are.equal("cpf://query", got.name)
        assert.are.equal("nofile", got.buftype)
        assert.is_false(got.wrap)
        assert.is_false(got.modifiable)
        assert.are.equal(qs:find("markdown") and "markdown" or "", got.filetype)
        assert.are.equal(i > 1, got.current, "only a query answered at once takes the cursor")
      end
    end)

    it("never takes the cursor or the keys typed in insert mode when a load ends in the background", function()
      local r = nvim(([[
vim.cmd("enew")
local home_buf, home_win = vim.api.nvim_get_current_buf(), vim.api.nvim_get_current_win()
local st = require("cpf.nvim").state
vim.cmd("Cpf query %s --by annee --measure dossiers")
local started = st.job ~= nil
vim.api.nvim_feedkeys("i", "n", false)
local typed, after = 0, 0
local timer = vim.loop.new_timer()
timer:start(5, 5, vim.schedule_wrap(function()
  if st.job == nil and st.result then after = after + 1 end
  if after > 20 then -- keys typed well after the answer came too
    timer:stop()
    local qbuf = st.buffers.query
    report { started = started, typed = typed, lines = vim.api.nvim_buf_get_lines(home_buf, 0, -1, false),
             mode = vim.api.nvim_get_mode().mode, home_buf = vim.api.nvim_get_current_buf() == home_buf,
             home_win = vim.api.nvim_get_current_win() == home_win, shown = vim.fn.bufwinid(qbuf) ~= -1,
             query = vim.api.nvim_buf_get_lines(qbuf, 0, -1, false), notes = notes }
    return
  end
  vim.api.nvim_feedkeys("x", "n", false)
  typed = typed + 1
end))
]]):format(data), out_file)
      assert.is_nil(r.lua_error)
      assert.is_true(r.started, "the load runs in the background")
      assert.is_true(r.typed > 20)
      assert.are.same({ ("x"):rep(r.typed) }, r.lines, "every key landed in the buffer being edited")
      assert.are.equal("i", r.mode)
      assert.is_true(r.home_buf and r.home_win, "the cursor stayed where it was")
      assert.is_true(r.shown, "the answer is in a window")
      assert.are.same(lines((cli("query " .. q(data) .. " --by annee --measure dossiers --format table"))), r.query)
      local said = {}
      for _, n in ipairs(r.notes) do said[#said + 1] = n.msg end
      assert.are.same({ "cpf: query is in the window below (cpf://query)" }, said)
    end)

    it("says in one line that the C core is not built, and finds :help cpf with the tags make writes", function()
      local bare = h.tmpname("-bare")
      os.execute(("mkdir -p %s && cp -r plugin lua doc %s/"):format(q(bare), q(bare)))
      finally(function() os.execute("rm -rf " .. q(bare)) end)
      local r = nvim(([[
vim.opt.runtimepath:prepend(%q)
vim.g.loaded_cpf = nil
vim.cmd("runtime plugin/cpf.lua")
package.cpath = ""
vim.cmd("Cpf query --by annee")
vim.opt.runtimepath:remove(%q)
vim.opt.runtimepath:prepend(%q)
vim.cmd("help cpf")
report { notes = notes, help = vim.fn.expand("%%:p") }
]]):format(bare, bare, h.root), out_file)
      assert.is_nil(r.lua_error)
      assert.are.equal(1, #r.notes)
      assert.are.equal("cpf: the C core is not built: run make LUA=luajit in " .. bare, r.notes[1].msg)
      assert.are.equal(h.root .. "/doc/cpf.txt", r.help)
    end)

    it("cancels a describe running in the background with :Cpf cancel", function()
      local r = nvim(([[
vim.cmd("Cpf open %s")
vim.wait(60000, function() return require("cpf.nvim").state.job == nil end, 5)
vim.cmd("Cpf describe")
vim.cmd("Cpf cancel")
vim.wait(200, function() return false end, 5)
report { describing = require("cpf.nvim").state.describing ~= nil,
         buffer = require("cpf.nvim").state.buffers.describe ~= nil, notes = notes }
]]):format(data), out_file)
      assert.is_nil(r.lua_error)
      assert.is_false(r.describing)
      assert.is_false(r.buffer, "no describe shown")
      assert.are.equal("cpf: describe cancelled", r.notes[#r.notes].msg)
    end)

    it(":Cpf fetch downloads the current extraction in the background, then :Cpf open DIR opens it", function()
      local portal = h.tmpname("-portal")
      assert(require("cpf.core").make_dirs(portal))
      local small = h.tmpname(".csv")
      assert(gen.write(small, 2000, { seed = 35 }))
      assert(os.execute(("gzip -c %s > %s"):format(q(small), q(portal .. "/export.csv.gz"))))
      h.write_bytes(portal .. "/metadata.json",
        '{"metas": {"default": {"modified": "2026-05-05T06:00:00+00:00", "records_count": 2000}}}')
      local base, pid = h.start_portal(portal)
      local dir = h.tmpname("-history")
      local ok, r = pcall(nvim, ([[
vim.cmd("Cpf fetch %s --url %s")
local in_background = require("cpf.nvim").state.fetching ~= nil
vim.wait(60000, function() return require("cpf.nvim").state.fetching == nil end, 10)
vim.cmd("Cpf open %s")
vim.wait(60000, function() return require("cpf.nvim").state.job == nil end, 5)
report { in_background = in_background, rows = #require("cpf.nvim").state.dataset, notes = notes }
]]):format(dir, base, dir), out_file)
      os.execute("kill " .. pid)
      assert(ok, r)
      assert.is_nil(r.lua_error)
      assert.is_true(r.in_background)
      assert.are.equal(2000, r.rows)
      assert.are.equal(("cpf: wrote %s/cpf-2026-05-04.cpfsnap: the extraction of 2026-05-04, 2000 rows"):format(dir),
        r.notes[1].msg)
    end)

    it(":Cpf describe of a snapshot runs on a thread of its own, with the command line's bytes", function()
      local snap = h.tmpname(".cpfsnap")
      cli(("convert %s %s"):format(q(data), q(snap)))
      local r = nvim(([[
vim.cmd("Cpf open %s")
vim.cmd("Cpf describe")
local in_background = require("cpf.nvim").state.describing ~= nil
vim.wait(60000, function() return require("cpf.nvim").state.describing == nil end, 5)
report { describe = vim.api.nvim_buf_get_lines(require("cpf.nvim").state.buffers.describe, 0, -1, false),
         in_background = in_background, notes = notes }
]]):format(snap), out_file)
      assert.is_nil(r.lua_error)
      assert.are.same(lines((cli("describe " .. q(snap)))), r.describe)
      assert.is_true(r.in_background, ":Cpf describe runs in the background")
    end)

    it(":Cpf describe, :Cpf export and :Cpf run give the command line's bytes", function()
      local exported = h.tmpname(".csv")
      local r = nvim(([[
vim.cmd("Cpf open %s")
vim.wait(60000, function() return require("cpf.nvim").state.job == nil end, 5)
vim.cmd("Cpf describe")
local in_background = require("cpf.nvim").state.describing ~= nil
vim.wait(60000, function() return require("cpf.nvim").state.describing == nil end, 5)
local describe = vim.api.nvim_buf_get_lines(require("cpf.nvim").state.buffers.describe, 0, -1, false)
vim.cmd("Cpf query --by annee --measure dossiers,montant")
vim.cmd("Cpf export csv-fr %s")
vim.cmd("Cpf run %s/examples/region_year_crosstab.lua")
vim.wait(60000, function() return require("cpf.nvim").state.run_exit ~= nil end, 10)
local run_buf = require("cpf.nvim").state.buffers.run -- shown without the cursor: it ended in the background
report { describe = describe, in_background = in_background, run = vim.api.nvim_buf_get_lines(run_buf, 0, -1, false),
         run_name = vim.api.nvim_buf_get_name(run_buf), exit = require("cpf.nvim").state.run_exit,
         notes = vim.tbl_filter(function(n) return not n.msg:find("window below", 1, true) end, notes) }
]]):format(data, exported, h.root), out_file)
      assert.is_nil(r.lua_error)
      assert.are.same(lines((cli("describe " .. q(data)))), r.describe)
      assert.is_true(r.in_background, ":Cpf describe runs in the background")
      assert.are.equal(cli("query " .. q(data) .. " --by annee --measure dossiers,montant --format csv-fr"),
        h.read_file(exported))
      assert.are.equal(0, r.exit)
      assert.are.equal("cpf://run", r.run_name)
      assert.are.same(lines((cli("run examples/region_year_crosstab.lua " .. q(data)))), r.run)
      assert.are.equal(1, #r.notes) -- the export's confirmation
      assert.are.equal("cpf: wrote " .. exported .. " (csv-fr, " .. #lines(h.read_file(exported)) - 1 .. " rows)",
        r.notes[1].msg)
    end)

    it("reports errors as vim.notify messages with the command line's text, never a traceback", function()
      local bad = h.write_file("date_validation;nb_dossiers\n2024-01;1\n2024-02;\"x\"y\n")
      local r = nvim(([[
vim.cmd("Cpf open %s")
vim.wait(10000, function() return require("cpf.nvim").state.job == nil end, 5)
vim.cmd("Cpf open %s")
vim.wait(60000, function() return require("cpf.nvim").state.job == nil end, 5)
vim.cmd("Cpf query --by nope")
vim.cmd("Cpf query --limit x")
vim.cmd("Cpf frobnicate")
vim.cmd("Cpf open '/tmp/cpf-no-such-`touch /tmp/cpf-nvim-pwned`-%%.csv'")
vim.cmd("Cpf query --where 'a=1")
report { notes = notes }
]]):format(bad, data), out_file)
      assert.is_nil(r.lua_error)
      local _, bad_err = cli("describe " .. q(bad))
      local _, by_err = cli("query " .. q(data) .. " --by nope")
      local _, limit_err = cli("query " .. q(data) .. " --limit x")
      assert.are.same({
        lines(bad_err)[1],
        lines(by_err)[1],
        lines(limit_err)[1],
        "cpf: unknown subcommand 'frobnicate' (open, query, describe, run, export, fetch, cancel)",
        "cpf: /tmp/cpf-no-such-`touch /tmp/cpf-nvim-pwned`-%.csv: cannot open: No such file or directory",
        "cpf: unterminated ' in the command line",
      }, (function() local t = {} for i, n in ipairs(r.notes) do t[i] = n.msg end return t end)())
      assert.is_nil(io.open("/tmp/cpf-nvim-pwned"), "a path is never expanded by Vim (no `command`)")
      for _, n in ipairs(r.notes) do
        assert.is_nil(n.msg:find("traceback", 1, true))
        assert.are.equal(4, n.level) -- vim.log.levels.ERROR
      end
    end)

    it("completes subcommands, options, the open dataset's columns, virtual keys, measures and formats", function()
      local spaced_dir = h.tmpname("-dir")
      os.execute("mkdir -p " .. q(spaced_dir) .. " && touch " .. q(spaced_dir .. "/a b.csv"))
      finally(function() os.execute("rm -rf " .. q(spaced_dir)) end)
      local r = nvim(([[
vim.cmd("Cpf open %s")
vim.wait(60000, function() return require("cpf.nvim").state.job == nil end, 5)
local c = function(line) return vim.fn.getcompletion(line, "cmdline") end
report { subs = c("Cpf "), by = c("Cpf query --by "), by_list = c("Cpf query --by annee,reg"),
         measure = c("Cpf query --measure prix"), format = c("Cpf query --format csv"),
         option = c("Cpf query --li"), export = c("Cpf export j"), sort = c("Cpf query --sort -mont"),
         inline = c("Cpf query --by=annee,reg"), spaced = require("cpf.nvim").complete("%s/a", "Cpf open %s/a", 999) }
]]):format(data, spaced_dir, spaced_dir), out_file)
      assert.is_nil(r.lua_error)
      assert.are.same({ "open", "query", "describe", "run", "export", "fetch", "cancel" }, r.subs)
      local columns = assert(require("cpf").load(data)):columns()
      local expected = {}
      for _, col in ipairs(columns) do expected[#expected + 1] = col.name end
      for k in pairs(require("cpf.schema").virtual_keys) do expected[#expected + 1] = k end
      table.sort(expected)
      local by = r.by
      table.sort(by)
      assert.are.same(expected, by)
      assert.are.same({ "annee,region_lieu_formation" }, r.by_list)
      assert.are.same({ "prix_moyen" }, r.measure)
      assert.are.same({ "csv", "csv-fr" }, r.format)
      assert.are.same({ "--limit" }, r.option)
      assert.are.same({ "json", "jsonl" }, r.export)
      assert.are.same({ "-montant_engage", "-montant" }, r.sort) -- columns and virtual keys, then measures
      assert.are.same({ "--by=annee,region_lieu_formation" }, r.inline)
      assert.are.same({ spaced_dir .. "/a\\ b.csv" }, r.spaced) -- escaped as :Cpf reads it back
    end)

    it("completes every request field of the request table, every measure and aggregate form", function()
      local request = require "cpf.request"
      local r = nvim(([[
vim.cmd("Cpf open %s")
vim.wait(60000, function() return require("cpf.nvim").state.job == nil end, 5)
local c = function(line) return vim.fn.getcompletion(line, "cmdline") end
report { options = c("Cpf query --"), measure = c("Cpf query --measure "), by = c("Cpf query --by "),
         per = c("Cpf query --per "), change = c("Cpf query --change dossiers:"), locale = c("Cpf query --locale "),
         format = c("Cpf query --format "), rank = c("Cpf query --rank mon") }
]]):format(data), out_file)
      assert.is_nil(r.lua_error)
      assert.are.same(request.option_names("nvim", "request"), r.options)
      local columns = assert(require("cpf").load(data)):columns()
      assert.are.same(request.complete("measure", "", columns), r.measure)
      assert.are.same(request.complete("by", "", columns), r.by)
      assert.are.same(r.by, r.per)
      for _, k in ipairs { "annee", "mois", "famille" } do
        local found = false
        for _, x in ipairs(r.by) do found = found or x == k end
        assert.is_true(found, k)
      end
      local measures = {}
      for _, m in ipairs(r.measure) do measures[m] = true end
      for name in pairs(require("cpf").measures) do assert.is_true(measures[name], name) end
      for _, form in ipairs(request.measure_forms()) do assert.is_true(measures[form], form) end
      assert.is_true(#r.change > 0 and r.change[1]:sub(1, 9) == "dossiers:", r.change[1])
      assert.are.same({ "fr", "en", "C" }, r.locale)
      assert.are.same(require("cpf").formats.names(), r.format)
      assert.are.same({ "montant" }, r.rank)
    end)

    it(":checkhealth cpf reports OK, and :help cpf finds its tags", function()
      local docs = h.tmpname("-doc")
      os.execute(("mkdir -p %s/doc && cp doc/cpf.txt %s/doc/"):format(q(docs), q(docs)))
      local r = nvim(([[
vim.cmd("checkhealth cpf")
local health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
vim.v.errmsg = ""
vim.cmd("helptags %s/doc")
local tags_error = vim.v.errmsg
vim.opt.runtimepath:prepend(%q)
local helps = {}
for _, tag in ipairs { "cpf", ":Cpf", ":Cpf-open", ":Cpf-query", ":Cpf-describe", ":Cpf-run", ":Cpf-export",
                       ":Cpf-fetch", ":Cpf-cancel", "cpf.setup()", "cpf-results" } do
  vim.cmd("help " .. tag)
  helps[#helps + 1] = vim.fn.expand("%%:t") .. " " .. tostring(vim.fn.getline("."):find(tag, 1, true) ~= nil)
  vim.cmd("close")
end
report { health = health, tags_error = tags_error, helps = helps, notes = notes }
]]):format(docs, docs), out_file)
      os.execute("rm -rf " .. q(docs))
      assert.is_nil(r.lua_error)
      local text = table.concat(r.health, "\n")
      assert.is_truthy(text:find("OK cpf 0.1.0", 1, true) or text:find("- OK: cpf 0.1.0", 1, true), text)
      assert.is_truthy(text:find("C core loaded for LuaJIT", 1, true), text)
      assert.is_truthy(text:find("background loads use", 1, true), text)
      assert.is_nil(text:find("ERROR", 1, true), text)
      assert.are.equal("", r.tags_error)
      for i, line in ipairs(r.helps) do assert.are.equal("cpf.txt true", line, "help " .. i) end
    end)

    it("quits cleanly in the middle of a load", function()
      local r, code, err = nvim(([[
vim.cmd("Cpf open %s")
local running = require("cpf.nvim").state.job ~= nil
vim.fn.writefile({ vim.fn.json_encode { running = running } }, %q)
vim.cmd("qa!")
]]):format(data, out_file), out_file)
      assert.is_true(r.running)
      assert.are.equal(0, code, err)
      assert.is_nil(err:find("Error", 1, true), err)
    end)
  end)
else
  pending("the Neovim plugin (run under Lua 5.4)")
end

-- Reliability as SQLite tests it (issue 30), first step: no wrong number in a result (NaN, ±inf,
-- a wrapped integer sum), a key function that keeps nothing, text no XML reader refuses, and
-- misuse that fails at the call with a message naming the argument.
local h = require "spec.helpers"
local cpf = require "cpf"

describe("results hold no wrong number", function()
  it("a combine or reduce giving NaN or an infinity gives a missing value; so does a sum that overflows", function()
    local ds = assert(cpf.load(h.write_file("k;v;w\na;1e308;1\na;1e308;2\nb;1;0\n", ".csv")))
    local res = ds:group_by("k"):agg { { "inf", cpf.combine({ cpf.sum "w" }, function(x) return x / 0 end) },
                                      { "nan", cpf.combine({ cpf.sum "w" }, function() return 0 / 0 end) },
                                      { "s", cpf.sum "v" }, { "m", cpf.mean "v" }, { "n", cpf.count() } }:run()
    for _, r in ipairs(res) do
      assert.is_nil(r.inf)
      assert.is_nil(r.nan)
    end
    assert.is_nil(res[1].s) -- 2e308 is no double
    assert.is_nil(res[1].m)
    assert.are.equal(1, res[2].s)
    -- rank and head per group see no NaN
    assert.are.same({ nil, nil }, { res:rank("inf")[1].inf_rang, res:rank("inf")[2].inf_rang })
    assert.are.equal(2, #res:head(1, { per = "k" }))
    ds:close()
  end)

  it("an integer sum that would leave the 64-bit integers is an error naming the column, never wrapped", function()
    local ds = assert(cpf.load(h.write_file("k;v\na;9000000000000000000\na;9000000000000000000\nb;1\n", ".csv")))
    assert.are.equal("the sum of 'v' leaves the 64-bit integers (its values are too large to add up)",
      h.error_of(function() ds:group_by("k"):run { s = cpf.sum "v" } end))
    local file = h.write_file("k;v\na;9000000000000000000\na;9000000000000000000\n", ".csv")
    local out, err, code = h.run(h.cpf_command("query " .. h.shell_quote(file) .. " --by k --measure sum:v"))
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: the sum of 'v' leaves the 64-bit integers (its values are too large to add up)\n", err)
    -- large values that do fit add up exactly
    local fits = assert(cpf.load(h.write_file("k;v\na;4000000000000000000\na;-4000000000000000000\na;5\n", ".csv")))
    assert.are.equal(5, fits:run { s = cpf.sum "v" }[1].s)
    fits:close()
    ds:close()
  end)
end)

describe("keys and text", function()
  it("a key function that maps every value to nil gives one group with a missing key", function()
    local ds = assert(cpf.load(h.write_file("r;n\nx;1\ny;2\n", ".csv")))
    local res = ds:group_by(cpf.key("r", function() return nil end, "k")):run { n = cpf.sum "n" }
    assert.are.equal(1, #res)
    assert.is_nil(res[1].k)
    assert.are.equal(3, res[1].n)
    ds:close()
  end)

  it("svg and html replace U+FFFE and U+FFFF, which no XML reader takes", function()
    local res = cpf.result({ "a", "n" }, { { a = "x\239\191\190y\239\191\191", n = 1 } })
    for _, fmt in ipairs { "svg", "html" } do
      local text = res:format(fmt)
      assert.is_nil(text:find("\239\191[\190\191]"), fmt)
      assert.is_truthy(text:find("x\239\191\189y\239\191\189", 1, true), fmt) -- U+FFFD
    end
  end)
end)

describe("misuse", function()
  local ds, res
  setup(function()
    ds = assert(cpf.load(h.write_file("region_lieu_formation;nb_dossiers\nBretagne;1\nCorse;2\n", ".csv")))
    res = ds:group_by("region_lieu_formation"):run { n = cpf.sum "nb_dossiers" }
  end)
  teardown(function() ds:close() h.cleanup() end)

  it("fails at the call with a message naming the argument", function()
    for _, case in ipairs {
      { function() ds:where { region_lieu_formation = cpf.lt(5) }:run { n = cpf.count() } end,
        "where region_lieu_formation: cannot compare string values with number 5" },
      { function() res:sorted("nope") end, "sorted: unknown column 'nope'" },
      { function() res:head(math.huge) end, "bad argument #1 to 'head' (whole number expected)" },
      { function() res:head(0 / 0) end, "bad argument #1 to 'head' (whole number expected)" },
      { function() res:get(math.huge, "n") end, "bad argument #1 to 'get' (row number expected, got inf)" },
    } do
      assert.are.equal(case[2], h.error_of(case[1]))
    end
  end)
end)

describe("writers", function()
  local dir, ds
  setup(function()
    dir = h.tmpname("-writers")
    os.execute("mkdir -p " .. h.shell_quote(dir))
    ds = assert(cpf.load(h.write_file("a;b\n1;2\n3;4\n", ".csv")))
  end)
  teardown(function() ds:close() os.execute("rm -rf " .. h.shell_quote(dir)) end)

  local function temporaries(target)
    local out, _, _ = h.run("ls -A " .. h.shell_quote(dir))
    local t = {}
    for name in out:gmatch("[^\n]+") do
      if name:find(target:match("[^/]+$") .. ".tmp.", 1, true) == 1 then t[#t + 1] = name end
    end
    table.sort(t)
    return t
  end

  it("remove the temporaries killed writers left, never one still being written", function()
    local target = dir .. "/x.cpfsnap"
    local dead = target .. ".tmp.99999.00000000deadbeef"
    h.write_bytes(dead, ("x"):rep(1000)) -- a writer killed -9 left this, unlocked
    local alive = target .. ".tmp.1.00000000a11ba11b"
    h.write_bytes(alive, "being written")
    -- another process writes it and holds its lock (flock, as a writer does)
    local pid = (h.run(("sh -c 'exec 9>>\"$1\"; flock 9; exec sleep 30' sh %s >/dev/null 2>&1 & echo $!")
      :format(h.shell_quote(alive)))):match("%d+")
    os.execute("sleep 0.3")
    assert.is_true(ds:save(target))
    os.execute(("kill %s 2>/dev/null; sleep 0.2"):format(pid)) -- the writer holding the lock is gone
    assert.are.same({ (alive:match("[^/]+$")) }, temporaries(target))
    assert.is_true(ds:save(target)) -- its writer gone, the next write removes it
    assert.are.same({}, temporaries(target))
  end)

  -- Writers killed (-9) at random moments: the target is always the old file or the new one,
  -- whole, and the next write removes the temporaries they left. CI kills each writer 8 times;
  -- CPF_KILL_SWEEP=all (make check-all) 100 times.
  local KILLS = os.getenv("CPF_KILL_SWEEP") == "all" and 100 or 8
  local big = { "a;b;c" }
  for i = 1, 60000 do big[#big + 1] = ("%d;%d;r%d"):format(i, i * 7 % 1000, i % 97) end
  big = table.concat(big, "\n") .. "\n"
  local killed_writers = {
    snapshot = { suffix = ".cpfsnap", call = "assert(ds:save(target))" },
    csv = { suffix = ".csv", call = "assert(ds:group_by('a', 'c'):run():write(target, 'csv'))" },
  }
  for name, writer in pairs(killed_writers) do
    it(("killed at random moments leave the target old or new, whole (%s)"):format(name), function()
      local source = h.write_file(big, ".csv")
      local target = dir .. "/killed" .. writer.suffix
      local script = h.write_file(("package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path "
        .. "package.cpath = 'build/%s/?.so;' .. package.cpath local cpf = require 'cpf' "
        .. "local ds = assert(cpf.load(%q)) local target = %q while true do %s end")
        :format(h.lua_name, source, target, writer.call), ".lua")
      local function content(path)
        if writer.suffix == ".csv" then return h.read_file(path) end
        local opened = assert(cpf.open(path))
        assert(opened:verify())
        local n = #opened
        opened:close()
        return n
      end
      -- the old file: a small one; the new: what the writer writes
      local small = assert(cpf.load(h.write_file("a;b;c\n1;2;r1\n", ".csv")))
      local old_target, new_target = dir .. "/old" .. writer.suffix, dir .. "/new" .. writer.suffix
      local write_to = (loadstring or load)("local ds, target = ...; " .. writer.call) -- Lua 5.1: loadstring
      write_to(small, old_target)
      write_to(assert(cpf.load(source)), new_target)
      local old, new = content(old_target), content(new_target)
      write_to(small, target)
      local seen = {}
      for _ = 1, KILLS do
        -- killed within its first 0.6 s: while it loads, writes or renames
        local delay = ("0.%03d"):format(math.random(0, 600))
        os.execute(("%s %s & pid=$!; sleep %s; kill -9 $pid; wait $pid 2>/dev/null")
          :format(h.interpreter, h.shell_quote(script), delay))
        local now = content(target)
        assert.is_true(now == old or now == new, "killed after " .. delay .. " s: neither the old nor the new file")
        seen[now == old and "old" or "new"] = true
        write_to(small, target) -- the old file again; this write removes the killed ones' temporaries
        assert.are.same({}, temporaries(target))
      end
      assert.is_true(seen.old or seen.new)
    end)
  end

  it("sync the file before its rename and the folder after it", function()
    local strace = h.run("command -v strace")
    if strace == "" then pending("strace is not installed") return end
    local script = h.write_file(("package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path "
      .. "package.cpath = 'build/%s/?.so;' .. package.cpath local cpf = require 'cpf' "
      .. "local ds = assert(cpf.load(%q)) assert(ds:save(%q)) assert(ds:group_by('a'):run():write(%q, 'csv'))")
      :format(h.lua_name, h.write_file("a;b\n1;2\n", ".csv"), dir .. "/y.cpfsnap", dir .. "/y.csv"), ".lua")
    local _, err = h.run(("strace -f -e trace=fsync,rename,renameat,renameat2 %s %s"):format(h.interpreter,
      h.shell_quote(script)))
    local calls = {}
    for line in err:gmatch("[^\n]+") do
      local call = line:match("(fsync)%(") or line:match("(rename%w*)%(")
      if call then calls[#calls + 1] = call:match("^rename") and "rename" or call end
    end
    -- each writer: the file synced, renamed, the folder synced
    assert.are.same({ "fsync", "rename", "fsync", "fsync", "rename", "fsync" }, calls)
  end)
end)

-- Giant cells (issue 30, point 6): a value of megabytes is cut only by the terminal table (with
-- "…", at max_width); every other format writes it whole, and none writes rows × its width.
describe("giant cells", function()
  local giant = ("y"):rep(4 * 1024 * 1024 - 1) .. "é"
  local res
  setup(function()
    local ds = assert(cpf.load(h.write_file("a;b\nx;" .. giant .. "\nz;short\n", ".csv")))
    res = ds:group_by("a", "b"):run { n = cpf.count() }
  end)

  it("are cut by the terminal table at max_width with an ellipsis", function()
    local text = res:format("table")
    assert.is_truthy(text:find(("y"):rep(39) .. "…", 1, true))
    assert.is_true(#text < 400)
    assert.is_truthy(res:format("table", { max_width = 10 }):find(" yyyyyyyyy… ", 1, true))
  end)

  it("are written whole by csv, json and markdown, the file as long as its values", function()
    local csv = res:format("csv")
    assert.are.equal("a,b,n\nx," .. giant .. ",1\nz,short,1\n", csv)
    assert.is_truthy(res:format("json"):find(giant, 1, true))
    local md = res:format("markdown")
    assert.is_truthy(md:find("| x   | " .. giant .. " |   1 |", 1, true))
    assert.is_true(#md < #giant + 1000, "markdown is " .. #md .. " bytes")
  end)

  it("cut where a multi-byte or wide character would pass the width, never inside one", function()
    local common = require "cpf.format.common"
    assert.are.equal("éé…", common.truncate("ééééé", 3))
    assert.are.equal("ééé", common.truncate("ééé", 3))
    assert.are.equal("日…", common.truncate("日本語", 4))
    assert.are.equal("日本", common.truncate("日本", 4))
    assert.are.equal("a…", common.truncate("a\255\255", 2))
    assert.are.equal(4, common.display_width("日本"))
    assert.is_true(common.display_width(("é"):rep(1000), 10) > 10)
  end)
end)


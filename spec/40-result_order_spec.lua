-- Results sorted and kept in C (issue 17): a query's rows come in the keys' order (strings in
-- byte order, numbers by value, the missing key last), q:order_by and res:sorted sort stably
-- with nil last in both directions, and the rows are the same whether read lazily (Lua 5.3+),
-- all at once (Lua 5.1, LuaJIT) or after the dataset is closed. Every expected value below is
-- computed from the dataset's rows, independently of the query engine.
local h = require "spec.helpers"
local cpf = require "cpf"

-- byte order, shorter first on a common prefix: what cpf promises whatever the locale
local function bytes_less(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function value_less(a, b) -- nil last; numbers by value, strings by bytes
  if a == nil then return false end
  if b == nil then return true end
  if type(a) == "string" then return bytes_less(a, b) end
  return a < b
end

local WORDS = { "Île-de-France", "Occitanie", "occitanie", "Oc", "Zèbre", "A", "a", "É", "Ea",
                "Bretagne", "Bretagne ", "Côte", "Cote", "01", "1", "2A", "10" }

-- a file of `n` rows: k (text), n (integer, negatives), x (number), montant (money), w (integer)
local function random_dataset(n, seed)
  math.randomseed(seed)
  local lines = { "k;n;x;montant;w" }
  for _ = 1, n do
    local function maybe(v) return math.random() < 0.06 and "" or v end
    lines[#lines + 1] = table.concat({
      maybe(WORDS[math.random(#WORDS)]),
      maybe(tostring(math.random(-40, 40) * 1000003)), -- sparse: coded by value, not a range
      maybe(("%.2f"):format(math.random(-300, 300) / 8)),
      maybe(("%d.%02d"):format(math.random(0, 500), math.random(0, 99))),
      maybe(tostring(math.random(0, 5))),
    }, ";")
  end
  local ds = assert(cpf.load(h.write_file(table.concat(lines, "\n") .. "\n"),
    { types = { k = "string", n = "integer", x = "number", montant = "decimal", w = "integer" } }))
  return ds
end

-- groups by `keys` with the count and sum of montant per group, from ds:get
local function expected_groups(ds, keys)
  local by, list = {}, {}
  for i = 1, #ds do
    local parts, row = {}, {}
    for j, k in ipairs(keys) do
      local v = ds:get(i, k)
      row[k] = v
      parts[j] = v == nil and "\0nil" or type(v) .. ":" .. tostring(v)
    end
    local id = table.concat(parts, "\1")
    local g = by[id]
    if not g then
      g = row
      g.lignes = 0
      by[id] = g
      list[#list + 1] = g
    end
    g.lignes = g.lignes + 1
    local m = ds:get(i, "montant")
    if m ~= nil then g.cents = (g.cents or 0) + math.floor(m * 100 + 0.5) end
  end
  for _, g in ipairs(list) do g.montant = g.cents and g.cents / 100 g.cents = nil end
  return list
end

local function sort_by(list, specs) -- specs: { {name, desc}, ... }, stable on list's order
  for i, r in ipairs(list) do r._i = i end
  table.sort(list, function(a, b)
    for _, s in ipairs(specs) do
      local x, y = a[s[1]], b[s[1]]
      if x ~= y then
        if x == nil then return false end
        if y == nil then return true end
        if s[2] then return value_less(y, x) end
        return value_less(x, y)
      end
    end
    return a._i < b._i
  end)
  for _, r in ipairs(list) do r._i = nil end
  return list
end

local function same_rows(expected, res, columns, what)
  assert.are.equal(#expected, #res, what .. ": row count")
  for i, e in ipairs(expected) do
    for _, c in ipairs(columns) do
      local got = res[i][c]
      if type(e[c]) == "number" and type(got) == "number" and e[c] ~= math.floor(e[c]) then
        assert.is_true(math.abs(e[c] - got) < 1e-6, ("%s: row %d, %s: %s ~= %s"):format(what, i, c, e[c], got))
      else
        assert.are.equal(e[c], got, ("%s: row %d, column %s"):format(what, i, c))
      end
    end
  end
end

describe("query results", function()
  local ds
  lazy_setup(function() ds = random_dataset(3000, 40) end)
  lazy_teardown(function() ds:close() end)

  it("come in the keys' order: strings by bytes, numbers by value, the missing key last", function()
    for _, keys in ipairs { { "k" }, { "n" }, { "x" }, { "w" }, { "k", "w" }, { "w", "k" }, { "x", "n" },
                            { "k", "n", "w" }, { "w", "x", "k" } } do
      local res = ds:group_by((table.unpack or unpack)(keys))
        :agg { lignes = cpf.count(), montant = cpf.sum "montant" }:run()
      local expected = expected_groups(ds, keys)
      local specs = {}
      for i, k in ipairs(keys) do specs[i] = { k } end
      local columns = { "lignes", "montant" }
      for _, k in ipairs(keys) do columns[#columns + 1] = k end
      same_rows(sort_by(expected, specs), res, columns, table.concat(keys, ","))
    end
  end)

  it("sort by aggregates stably, nil last both ways, then cut to the limit", function()
    local base = ds:group_by("k", "w"):agg { lignes = cpf.count(), montant = cpf.sum "montant" }
    for _, order in ipairs { { "-montant" }, { "montant" }, { "-lignes" }, { "lignes", "-k" },
                             { "-w", "montant" }, { "k" }, { "-k", "-w" } } do
      local specs = {}
      for i, o in ipairs(order) do
        local desc = o:sub(1, 1) == "-"
        specs[i] = { desc and o:sub(2) or o, desc }
      end
      local key_order = sort_by(expected_groups(ds, { "k", "w" }), { { "k" }, { "w" } })
      local expected = sort_by(key_order, specs)
      local columns = { "k", "w", "lignes", "montant" }
      local what = table.concat(order, ",")
      same_rows(expected, base:order_by((table.unpack or unpack)(order)):run(), columns, what)
      local top = {}
      for i = 1, 7 do top[i] = expected[i] end
      same_rows(top, base:order_by((table.unpack or unpack)(order)):limit(7):run(), columns, what .. " limit 7")
      -- the same order on a result already made, and on a plain copy sorted in Lua
      local res = base:run()
      same_rows(expected, res:sorted((table.unpack or unpack)(order)), columns, what .. " res:sorted")
      local plain = {}
      for i, r in ipairs(res) do plain[i] = r end
      local copy = cpf.result(columns, plain, { "k", "w" })
      same_rows(expected, copy:sorted((table.unpack or unpack)(order)), columns, what .. " in Lua")
    end
  end)

  it("read the same rows lazily, all at once, by ipairs and pairs, and after the dataset closes", function()
    local d = random_dataset(500, 41)
    local q = d:group_by("k", "n"):agg { lignes = cpf.count(), montant = cpf.sum "montant" }
    local res, again = q:run(), q:run()
    local n = #res
    assert.is_true(n > 50)
    local last = again[n] -- read first, out of order: the same table afterwards, changes kept
    last.mine = true
    local seen = 0
    for i, r in ipairs(again) do
      seen = seen + 1
      if i < n then assert.are.same(res[i], r) end
    end
    assert.are.equal(n, seen)
    assert.are.equal(last, again[n])
    assert.is_true(again[n].mine)
    local by_pairs = 0
    for i, r in pairs(again) do
      by_pairs = by_pairs + 1
      assert.are.equal(again[i], r)
    end
    assert.are.equal(n, by_pairs)
    assert.is_nil(res[n + 1])
    assert.is_nil(res[0])
    assert.are.equal(res:get(3, "k"), res[3].k)
    local late = q:run()
    local head = late:head(5)
    d:close() -- the rows not read yet are still there: the result owns its values
    assert.are.equal(n, #late)
    for i = n, 1, -1 do assert.are.same(res[i], late[i]) end
    assert.are.equal(5, #head)
    for i = 1, 5 do assert.are.same(res[i], head[i]) end
    assert.are.equal(0, #late:head(0))
    assert.is_true(tostring(late):find("lignes", 1, true) ~= nil)
  end)

  it("put families, buckets and key functions in their own order, then by value", function()
    local res = ds:group_by(cpf.bucket("x", { -10, 0, 10 })):agg { lignes = cpf.count() }:run()
    local labels = {}
    for i, r in ipairs(res) do labels[i] = r.bucket == nil and "nil" or r.bucket end
    local want = {}
    for _, l in ipairs { "< -10", "[-10, 0)", "[0, 10)", ">= 10", "nil" } do
      for _, got in ipairs(labels) do if got == l then want[#want + 1] = l end end
    end
    assert.are.same(want, labels)
    -- a key function mixing numbers and strings: numbers first (by value), then strings
    res = ds:group_by(cpf.key("k", function(v)
      if v:match "^%d+$" then return tonumber(v) end
      return v:lower()
    end, "cle")):agg { lignes = cpf.count() }:run()
    local previous
    for i, r in ipairs(res) do
      if i < #res or r.cle ~= nil then
        if previous ~= nil then
          local ta, tb = type(previous), type(r.cle)
          assert.is_true(ta < tb or (ta == tb and value_less(previous, r.cle)), ("row %d"):format(i))
        end
        previous = r.cle
      end
    end
  end)

  it("sort by a measure computed in Lua, and fall back to Lua for one that gives text", function()
    local q = ds:group_by("k"):agg { lignes = cpf.count(), montant = cpf.sum "montant",
      part = cpf.share(cpf.sum "montant"),
      label = cpf.combine({ cpf.count() }, function(c) return c % 2 == 0 and "pair" or "impair" end) }
    local res = q:order_by("-part"):run()
    local expected = sort_by(sort_by(expected_groups(ds, { "k" }), { { "k" } }), { { "montant", true } })
    same_rows(expected, res, { "k", "lignes", "montant" }, "-part")
    res = q:order_by("label", "-lignes"):run()
    for i = 2, #res do
      local a, b = res[i - 1], res[i]
      assert.is_true(a.label < b.label or (a.label == b.label and a.lignes >= b.lignes), ("row %d"):format(i))
    end
  end)

  it("count distinct values by bitmap and by hash alike, with a where and a filter", function()
    -- k: strings (bitmap of codes); w: integers 0..5 (bitmap of the range); n: integers 40 M
    -- apart (hash); x: numbers (hash); 1 and 600 groups
    local d = random_dataset(4000, 42)
    for _, keys in ipairs { {}, { "w" }, { "k", "x" } } do
      local q = d:where { w = cpf.ge(1) }:group_by((table.unpack or unpack)(keys))
      local res = q:agg { dk = cpf.distinct "k", dw = cpf.distinct "w", dn = cpf.distinct "n",
                          dx = cpf.distinct "x", fk = cpf.filtered(cpf.distinct "k", { x = cpf.gt(0) }) }:run()
      local want, order = {}, {}
      for i = 1, #d do
        local w = d:get(i, "w")
        if w ~= nil and w >= 1 then
          local parts = {}
          for j, k in ipairs(keys) do parts[j] = tostring(d:get(i, k)) end
          local id = table.concat(parts, "|")
          local g = want[id]
          if not g then
            g = { dk = {}, dw = {}, dn = {}, dx = {}, fk = {} }
            want[id] = g
            order[#order + 1] = id
          end
          for _, c in ipairs { "k", "w", "n", "x" } do
            local v = d:get(i, c)
            if v ~= nil then g["d" .. c][v] = true end
          end
          local x = d:get(i, "x")
          if x ~= nil and x > 0 and d:get(i, "k") ~= nil then g.fk[d:get(i, "k")] = true end
        end
      end
      assert.are.equal(#order, #res)
      for _, r in ipairs(res) do
        local parts = {}
        for j, k in ipairs(keys) do parts[j] = tostring(r[k]) end
        local g = want[table.concat(parts, "|")]
        for _, c in ipairs { "dk", "dw", "dn", "dx", "fk" } do
          local count = 0
          for _ in pairs(g[c]) do count = count + 1 end
          assert.are.equal(count, r[c], c .. " " .. table.concat(parts, "|")) -- 0 when none
        end
      end
    end
    d:close()
  end)

  it("test a Lua function on a numeric column once per distinct value, ascending", function()
    local lines = { "n;x;montant;t;big" }
    math.randomseed(43)
    for i = 1, 2500 do
      local x = ({ "-0.0", "0", "0.5", "-7.25", "1e300", "-1e-300", "" })[i % 7 + 1]
      if i % 11 == 0 then x = ("%.3f"):format(math.random() * 100 - 50) end
      lines[#lines + 1] = ("%s;%s;%s;%s;%s"):format(i % 13 == 0 and "" or tostring((i * 7919) % 401 - 200),
        x, i % 17 == 0 and "" or ("%d.%02d"):format(i % 300, i % 100),
        i % 19 == 0 and "" or tostring(i % 100 - 50), i % 23 == 0 and "" or ("%.0f"):format(i * 1e12))
    end
    local d = assert(cpf.load(h.write_file(table.concat(lines, "\n") .. "\n"),
      { types = { n = "integer", x = "number", montant = "decimal", t = "integer", big = "integer" } }))
    for _, case in ipairs {
      { "n", function(v) return v % 3 == 0 end }, { "n", function(v) return v > 0 end },
      -- 1 to 4 runs of values on 1-, 2- and 8-byte columns (a pass per run), 5 (a search per row)
      { "n", function(v) return v < -100 or v > 100 end },
      { "t", function(v) return v == -50 or (v > 10 and v < 20) or v == 49 or v == 0 end },
      { "t", function(v) return v == -50 or v == -40 or v == -30 or v == -20 or v == 0 end },
      { "t", function(v) return v >= -50 end }, { "t", function(v) return v < 0 end },
      { "big", function(v) return v < 5e14 or v > 2e15 end },
      { "x", function(v) return v >= 0 end }, { "x", function(v) return v ~= 0.5 end },
      { "montant", function(v) return v > 100.5 and v < 200 end }, { "montant", function() return false end },
      { "montant", function(v) return v end }, -- any value is true: every row with a value
    } do
      local name, fn = case[1], case[2]
      local calls, previous, seen = 0, nil, {}
      local counted = d:where { [name] = function(v)
        calls = calls + 1
        assert.is_nil(seen[v], "called twice with " .. tostring(v))
        seen[v] = true
        if previous ~= nil then assert.is_true(previous < v, "not ascending") end
        previous = v
        return fn(v)
      end }:run { n = cpf.count() }
      local expected, distinct = 0, {}
      for i = 1, #d do
        local v = d:get(i, name)
        if v ~= nil then
          if v == 0 then v = 0.0 end -- -0.0 and 0.0: one value
          distinct[v] = true
          if fn(v) then expected = expected + 1 end
        end
      end
      local ndistinct = 0
      for _ in pairs(distinct) do ndistinct = ndistinct + 1 end
      assert.are.equal(expected, counted[1].n, name)
      assert.are.equal(ndistinct, calls, name .. ": one call per distinct value")
      -- the negation keeps the rows without a value too, as for every condition
      local negated = d:where { [name] = cpf.not_(fn) }:run { n = cpf.count() }[1].n
      assert.are.equal(#d - expected, negated, name .. " negated")
    end
    assert.are.equal("boom", h.error_of(function()
      return d:where { n = function() error("boom", 0) end }:run { n = cpf.count() }
    end))
    d:close()
  end)

  it("name an unknown order_by column", function()
    assert.are.equal("order_by: unknown column 'nope'",
      h.error_of(function() return ds:group_by("k"):agg { n = cpf.count() }:order_by("nope"):run() end))
  end)
end)

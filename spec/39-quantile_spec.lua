-- Quantiles by selection (issue 17: a selection where a full sort was done): every quantile of
-- every group equals the R type 7 value computed from the sorted values, on groups of every size
-- with many equal values, missing values, sorted and reversed runs and one adversarial order.
local h = require "spec.helpers"
local cpf = require "cpf"

local function r7(sorted, p)
  local m = #sorted
  if m == 0 then return nil end
  local x = (m - 1) * p
  local lo = math.floor(x)
  local below, above = sorted[lo + 1], sorted[math.min(lo + 2, m)]
  return below + (x - lo) * (above - below)
end

describe("quantiles", function()
  it("equal the sorted values' R type 7 quantile in every group", function()
    math.randomseed(17)
    local lines, values = { "groupe;valeur" }, {}
    for g = 1, 60 do
      local size = g <= 10 and g - 1 or math.random(0, 400)
      local mode = g % 5
      values[g] = {}
      for i = 1, size do
        local v
        if mode == 0 then v = math.random(1, 4) * 10            -- few distinct values
        elseif mode == 1 then v = i                              -- already sorted
        elseif mode == 2 then v = size - i                       -- reversed
        elseif mode == 3 then v = (i % 2 == 0) and i or size - i -- organ pipe
        else v = math.random() * 1000 - 500 end
        if math.random() < 0.05 then
          lines[#lines + 1] = ("g%02d;"):format(g) -- a missing value
        else
          lines[#lines + 1] = ("g%02d;%.17g"):format(g, v)
          values[g][#values[g] + 1] = tonumber(("%.17g"):format(v))
        end
      end
    end
    local ds = assert(cpf.load(h.write_file(table.concat(lines, "\n") .. "\n"), { types = { valeur = "number" } }))
    local ps = { 0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1 }
    local spec = {}
    for i, p in ipairs(ps) do spec[i] = { "q" .. i, cpf.quantile("valeur", p) } end
    local res = ds:group_by("groupe"):agg(spec):run()
    local by_group = {}
    for _, r in ipairs(res) do by_group[r.groupe] = r end
    for g = 1, 60 do
      local sorted = values[g]
      table.sort(sorted)
      local r = by_group[("g%02d"):format(g)]
      for i, p in ipairs(ps) do
        local expected = r7(sorted, p)
        if expected == nil then
          assert.is_true(r == nil or r["q" .. i] == nil, ("group %d, p %g"):format(g, p))
        else
          assert.are.equal(expected, r["q" .. i], ("group %d (%d values), p %g"):format(g, #sorted, p))
        end
      end
    end
  end)

  -- all rows of a column without a missing value, no key: the candidates of each quantile read
  -- as a range of stored integers (decimals and integers of every width), one quantile or several
  it("equal the sorted values' quantiles over all the rows of an integer or decimal column", function()
    for _, case in ipairs {
      { "decimal", function() return math.random(0, 100000) / 100 end },
      { "decimal", function() return math.random() < 0.6 and 500 or math.random(0, 100000) / 100 end },
      { "decimal", function() return -math.random(0, 100000) / 100 end },
      { "decimal", function() return (math.random() < 0.5 and -1 or 1) * math.random(0, 10 ^ 9) / 100 end },
      { "integer", function() return math.random(-100, 100) end },
      { "integer", function() return math.random(-30000, 30000) end },
      { "integer", function() return math.random(0, 3) == 0 and 7 or math.random(-2 ^ 40, 2 ^ 40) end },
    } do
      math.randomseed(39)
      local lines, values = { "valeur" }, {}
      for i = 1, 30001 do
        local v = case[2]()
        lines[#lines + 1] = case[1] == "decimal" and ("%.2f"):format(v) or ("%d"):format(v)
        values[i] = tonumber(lines[#lines])
      end
      table.sort(values)
      local ds = assert(cpf.load(h.write_file(table.concat(lines, "\n") .. "\n"),
        { sep = ";", types = { valeur = case[1] } }))
      local one = ds:query():agg { m = cpf.median "valeur" }:run()[1]
      local several = ds:query():agg { a = cpf.quantile("valeur", 0), b = cpf.quantile("valeur", 0.37),
                                       c = cpf.quantile("valeur", 0.9), d = cpf.quantile("valeur", 1) }:run()[1]
      assert.are.equal(r7(values, 0.5), one.m, case[1])
      assert.are.same({ r7(values, 0), r7(values, 0.37), r7(values, 0.9), r7(values, 1) },
        { several.a, several.b, several.c, several.d }, case[1])
      ds:close()
    end
  end)

  -- the fast path's range of stored integers: found over the whole int64 range (its bisection
  -- once looped for ever there), and a snapshot's values changed in place outside the range its
  -- header records (wrong answers are allowed then, a crash is not: values written before the
  -- candidates' array once)
  it("answer over the whole int64 range, and stay memory-safe on values outside a snapshot's range", function()
    local ds = assert(cpf.load(h.write_file("valeur\n-9223372036854775808\n-9223372036854775808\n"
      .. "-9223372036854775808\n9223372036854775807\n"), { sep = ";", types = { valeur = "integer" } }))
    assert.are.equal(-2 ^ 63, ds:query():agg { m = cpf.median "valeur" }:run()[1].m)
    assert.are.equal(-2 ^ 63, ds:query():agg { a = cpf.quantile("valeur", 0.5), b = cpf.quantile("valeur", 0.6) }
      :run()[1].b)
    ds:close()
    if not string.pack then return end -- the snapshot is rewritten with string.pack (Lua 5.3+)
    local craft = require "spec.snapshot_craft"
    local lines = { "v" }
    for i = 1, 1000 do lines[#lines + 1] = tostring(i) end
    local small = assert(cpf.load(h.write_file(table.concat(lines, "\n") .. "\n"),
      { sep = ";", types = { v = "integer" } }))
    local file = h.tmpname(".cpfsnap")
    assert(small:save(file))
    small:close()
    local column = craft.parse(h.read_file(file)).columns[1]
    local snap = assert(cpf.open(file))
    assert(snap:verify())
    assert.are.equal(500.5, snap:run { m = cpf.median "v" }[1].m)
    local f = assert(io.open(file, "r+b")) -- another program rewrites the values in place
    f:seek("set", column.data_offset)
    f:write(string.pack("<i" .. column.width, 30000):rep(math.floor(column.data_size / column.width)))
    f:close()
    for _ = 1, 3 do assert.are.equal("number", type(snap:run { m = cpf.median "v" }[1].m)) end
    snap:close()
  end)

  -- few groups, counted by buckets: every 4th row 0 and the others spread, most values equal
  -- (one bucket holds the statistics), a heavy tie near the top, negative values
  it("equal the sorted values' quantiles on skewed, tied and negative values", function()
    for _, pattern in ipairs { "lying", "ties", "ties_high", "negative" } do
      math.randomseed(#pattern)
      local lines, values = { "groupe;valeur" }, { a = {}, b = {} }
      for i = 0, 49999 do
        local g = i % 7 == 0 and "b" or "a"
        local v
        if pattern == "lying" then v = (i % 4 == 0) and 0 or math.random(1, 100000) / 100
        elseif pattern == "ties" then v = math.random() < 0.6 and 500 or math.random(0, 100000) / 100
        elseif pattern == "ties_high" then v = math.random() < 0.15 and 999.99 or math.random(0, 99999) / 100
        else v = -math.random(0, 100000) / 100 end
        if i % 101 == 0 then lines[#lines + 1] = g .. ";"
        else
          lines[#lines + 1] = ("%s;%.2f"):format(g, v)
          table.insert(values[g], tonumber(("%.2f"):format(v)))
        end
      end
      local ds = assert(cpf.load(h.write_file(table.concat(lines, "\n") .. "\n"), { types = { valeur = "decimal" } }))
      local ps = { 0, 0.1, 0.5, 0.85, 0.9, 1 }
      local spec = {}
      for i, p in ipairs(ps) do spec[i] = { "q" .. i, cpf.quantile("valeur", p) } end
      local res = ds:group_by("groupe"):agg(spec):run()
      local all = ds:query():agg(spec):run()[1]
      local both = {}
      for _, g in ipairs { "a", "b" } do
        table.sort(values[g])
        for _, v in ipairs(values[g]) do both[#both + 1] = v end
      end
      table.sort(both)
      for _, r in ipairs(res) do
        for i, p in ipairs(ps) do
          assert.are.equal(r7(values[r.groupe], p), r["q" .. i], ("%s %s p %g"):format(pattern, r.groupe, p))
          assert.are.equal(r7(both, p), all["q" .. i], ("%s all p %g"):format(pattern, p))
        end
      end
      ds:close()
    end
  end)

  -- beyond 1024 groups the values are copied per group then selected; below, counted in
  -- buckets first: both ways, with a selection and a filtered quantile, against the sorted values
  for _, ngroups in ipairs { 3, 1500 } do
    it(("equal the sorted values' quantiles over %d groups, with a where and a filter"):format(ngroups), function()
      math.randomseed(ngroups)
      local lines, kept = { "groupe;valeur;statut" }, {}
      for _ = 1, ngroups * (ngroups > 100 and 6 or 900) do
        local g = math.random(1, ngroups)
        local v = math.random() < 0.3 and math.random(1, 5) * 100 or math.random(-1e6, 1e6) / 100
        local statut = math.random() < 0.5 and "ok" or "non"
        if math.random() < 0.05 then lines[#lines + 1] = ("g%04d;;%s"):format(g, statut)
        else
          lines[#lines + 1] = ("g%04d;%.2f;%s"):format(g, v, statut)
          if statut == "ok" then
            local name = ("g%04d"):format(g)
            kept[name] = kept[name] or {}
            table.insert(kept[name], tonumber(("%.2f"):format(v)))
          end
        end
      end
      local ds = assert(cpf.load(h.write_file(table.concat(lines, "\n") .. "\n"),
        { types = { valeur = "decimal" } }))
      local by_where = ds:where { statut = "ok" }:group_by("groupe")
        :agg { m = cpf.median "valeur", p = cpf.quantile("valeur", 0.9) }:run()
      local by_filter = ds:group_by("groupe")
        :agg { m = cpf.filtered(cpf.median "valeur", { statut = "ok" }) }:run()
      local filtered = {}
      for _, r in ipairs(by_filter) do filtered[r.groupe] = r.m end
      local seen = 0
      for _, r in ipairs(by_where) do
        local sorted = kept[r.groupe] or {}
        table.sort(sorted)
        assert.are.equal(r7(sorted, 0.5), r.m, r.groupe)
        assert.are.equal(r7(sorted, 0.9), r.p, r.groupe)
        assert.are.equal(r7(sorted, 0.5), filtered[r.groupe], r.groupe)
        seen = seen + 1
      end
      assert.is_true(seen > 0)
    end)
  end
end)

-- Aggregates compose as one tree (issue 16, items 1-3): measure, combine, reduce, share and
-- filtered nest in one another at any depth, each computed under the AND of the conditions of
-- the filtered nodes above it. Every value is checked against a direct computation over
-- ds:rows() on a file with missing values in every column.
local h = require "spec.helpers"
local cpf = require "cpf"
local schema = require "cpf.schema"

-- A file with holes: statuses, counts, amounts and regions each missing now and then.
local function holes_file()
  local statuses = { "Validé", "Entrée en formation", "Rejeté", "Dossier annulé gestionnaire",
                     "Clos - Réalisation Totale", "" }
  local regions = { "Bretagne", "Normandie", "Occitanie", "" }
  local seed = 7
  local function pick(n) -- Park-Miller, its high bits: exact in doubles, the same file under every Lua
    seed = seed * 16807 % 2147483647
    return math.floor(seed / 65536) % n + 1
  end
  local lines = { "statut_dossier;nb_dossiers;montant_engage;region_lieu_formation" }
  for i = 2, 801 do
    local nb = pick(5) == 1 and "" or tostring(pick(4) - 1)
    local amount = pick(6) == 1 and "" or ("%d,%02d"):format(pick(3000), pick(100) - 1)
    lines[i] = table.concat({ statuses[pick(#statuses)], nb, amount, regions[pick(#regions)] }, ";")
  end
  return h.write_file(table.concat(lines, "\n") .. "\n")
end

local ds, rows

-- ---------------------------------------------------------------- the reference

local function family(row) return row.statut_dossier and schema.families[row.statut_dossier] end

local function keep(list, pred)
  local out = {}
  for _, r in ipairs(list) do if pred(r) then out[#out + 1] = r end end
  return out
end

local function sum_of(list, col)
  local s
  for _, r in ipairs(list) do if r[col] ~= nil then s = (s or 0) + r[col] end end
  return s
end

-- Conditions, as cpf takes them and as a predicate on a row.
local CONDS = {
  cancelled = { { famille = "cancelled" }, function(r) return family(r) == "cancelled" end },
  bretagne = { { region_lieu_formation = "Bretagne" }, function(r) return r.region_lieu_formation == "Bretagne" end },
  large = { { montant_engage = cpf.gt(1000) }, function(r) return (r.montant_engage or 0) > 1000 end },
  several = { function(row) return (row.nb_dossiers or 0) >= 2 end, function(r) return (r.nb_dossiers or 0) >= 2 end },
}

-- Each kind of node: its cpf aggregate and its value in group g of `groups` (lists of rows).
local function leaf(agg, value) return { agg = agg, value = function(groups, g) return value(groups[g]) end } end

local LEAVES = {
  count = function() return leaf(cpf.count(), function(l) return #l end) end,
  sum = function() return leaf(cpf.sum "nb_dossiers", function(l) return sum_of(l, "nb_dossiers") end) end,
  mean = function()
    return leaf(cpf.mean "montant_engage", function(l)
      local s, n = 0, 0
      for _, r in ipairs(l) do if r.montant_engage then s, n = s + r.montant_engage, n + 1 end end
      if n > 0 then return s / n end
    end)
  end,
  measure = function()
    return leaf(cpf.measures.taux_annulation, function(l)
      local all = sum_of(l, "nb_dossiers")
      if all and all ~= 0 then
        return (sum_of(keep(l, function(r) return family(r) == "cancelled" end), "nb_dossiers") or 0) / all
      end
    end)
  end,
  reduce = function()
    return leaf(cpf.reduce { column = "montant_engage", init = 0, step = function(a, v) return a + v end },
      function(l) return sum_of(l, "montant_engage") or 0 end)
  end,
}

local function filtered(inner, cond_name)
  local c = CONDS[cond_name]
  return {
    agg = cpf.filtered(inner.agg, c[1]),
    value = function(groups, g)
      local kept = {}
      for i, l in ipairs(groups) do kept[i] = keep(l, c[2]) end
      return inner.value(kept, g)
    end,
  }
end

local function share(inner)
  -- a share of what does not add up across groups (a mean, a ratio...) is refused: the node
  -- stays what it is
  local ok, agg = pcall(cpf.share, inner.agg)
  if not ok then
    assert(tostring(agg):find("does not add up across groups", 1, true), agg)
    return inner
  end
  return {
    agg = agg,
    value = function(groups, g)
      local total = 0
      for i = 1, #groups do total = total + (inner.value(groups, i) or 0) end
      local v = inner.value(groups, g)
      if v ~= nil and total ~= 0 then return v / total end
    end,
  }
end

-- combine of the node and the group's line count: both values seen, nil included
local function per_line(x, n) if x == nil then return -1 - n end return x * 1000 + n end
local function combine(inner)
  return {
    agg = cpf.combine({ inner.agg, cpf.count() }, per_line),
    value = function(groups, g) return per_line(inner.value(groups, g), #groups[g]) end,
  }
end

local INNERS = {
  count = LEAVES.count, sum = LEAVES.sum, mean = LEAVES.mean, measure = LEAVES.measure, reduce = LEAVES.reduce,
  ["filtered(sum)"] = function() return filtered(LEAVES.sum(), "bretagne") end,
  ["filtered(function)"] = function() return filtered(LEAVES.count(), "several") end,
  ["share(count)"] = function() return share(LEAVES.count()) end,
  ["combine(sum)"] = function() return combine(LEAVES.sum()) end,
}
local OUTERS = {
  ["filtered(family)"] = function(inner) return filtered(inner, "cancelled") end,
  ["filtered(range)"] = function(inner) return filtered(inner, "large") end,
  ["filtered(function)"] = function(inner) return filtered(inner, "several") end,
  share = share,
  combine = combine,
}

-- The row groups of a result grouped by `key`, in its row order.
local KEY_OF = {
  region_lieu_formation = function(r) return r.region_lieu_formation end,
  famille = family,
}
local function groups_of(res, key, selected)
  local groups = {}
  for g, row in ipairs(res) do
    groups[g] = keep(selected, function(r) return KEY_OF[key](r) == row[key] end)
  end
  return groups
end

local function same(expected, got, what)
  if expected == nil or got == nil or expected == 0 then
    assert(expected == got, ("%s: expected %s, got %s"):format(what, tostring(expected), tostring(got)))
  else
    assert(math.abs(got - expected) <= 1e-9 * math.abs(expected),
      ("%s: expected %.17g, got %.17g"):format(what, expected, got))
  end
end

local function names_of(t)
  local names = {}
  for k in pairs(t) do names[#names + 1] = k end
  table.sort(names)
  return names
end

-- Runs every node of `nodes` (name -> node) grouped by `key`, and checks each group's value.
local function check_nodes(nodes, key, where)
  local spec, selected = {}, rows
  for name, node in pairs(nodes) do spec[name] = node.agg end
  local query = ds:group_by(key)
  if where then query = query:where(where[1]); selected = keep(rows, where[2]) end
  local res = query:agg(spec):run()
  local groups = groups_of(res, key, selected)
  local covered = 0
  for _, l in ipairs(groups) do covered = covered + #l end
  assert.are.equal(#selected, covered) -- every selected row is in one group
  for _, name in ipairs(names_of(nodes)) do
    for g, row in ipairs(res) do
      same(nodes[name].value(groups, g), row[name], ("%s, %s = %s"):format(name, key, tostring(row[key])))
    end
  end
end

describe("composed aggregates", function()
  setup(function()
    ds = cpf.load(holes_file())
    rows = {}
    for i, row in ds:rows() do rows[i] = row end
  end)
  teardown(function() ds:close() h.cleanup() end)

  it("has missing values in every column of the file they are checked on", function()
    for _, c in ipairs(ds:columns()) do assert.is_true(c.missing > 0, c.name) end
  end)

  for _, key in ipairs { "region_lieu_formation", "famille" } do
    for _, where in ipairs { false, true } do
      it(("nests every aggregate kind in every other, by %s%s"):format(key, where and ", under a where" or ""),
        function()
          local nodes = {}
          for outer_name, outer in pairs(OUTERS) do
            for inner_name, inner in pairs(INNERS) do
              nodes[("%s(%s)"):format(outer_name, inner_name)] = outer(inner())
            end
          end
          for name, leaf_of in pairs(LEAVES) do nodes[name] = leaf_of() end
          check_nodes(nodes, key, where and CONDS.bretagne or nil)
        end)
    end
  end

  it("nests three levels deep", function()
    check_nodes({
      a = filtered(filtered(share(LEAVES.count()), "cancelled"), "large"),
      b = share(filtered(combine(filtered(LEAVES.sum(), "several")), "bretagne")),
      c = combine(share(filtered(LEAVES.reduce(), "cancelled"))),
      d = filtered(combine(LEAVES.measure()), "bretagne"),
    }, "region_lieu_formation")
  end)

  -- The reproductions of issue 16, with the values computed from the rows.
  it("keeps the condition of filtered around a measure: no cancelled file among the validated", function()
    local res = ds:group_by("region_lieu_formation")
      :agg { t = cpf.filtered(cpf.measures.taux_annulation, { famille = "validated" }) }:run()
    for _, row in ipairs(res) do assert.are.equal(0, row.t) end
  end)

  it("keeps both conditions of nested filtered aggregates", function()
    local res = ds:query():agg { n = cpf.filtered(cpf.filtered(cpf.count(), { famille = "cancelled" }),
                                                  { region_lieu_formation = "Bretagne" }) }:run()
    local expected = #keep(rows, function(r)
      return family(r) == "cancelled" and r.region_lieu_formation == "Bretagne"
    end)
    assert.is_true(expected > 0)
    assert.are.equal(expected, res[1].n)
  end)

  it("filters a share: the shares of the rows the condition keeps, which sum to 1", function()
    local res = ds:group_by("famille")
      :agg { s = cpf.filtered(cpf.share(cpf.count()), { region_lieu_formation = "Bretagne" }) }:run()
    local bzh = keep(rows, function(r) return r.region_lieu_formation == "Bretagne" end)
    local total = 0
    for _, row in ipairs(res) do
      same(#keep(bzh, function(r) return family(r) == row.famille end) / #bzh, row.s, tostring(row.famille))
      total = total + row.s
    end
    same(1, total, "sum of shares")
  end)

  it("gives a reduce or a share inside another aggregate its value", function()
    local red = cpf.reduce { column = "montant_engage", init = 0, step = function(a, v) return a + v end }
    local seen = {}
    local res = ds:group_by("region_lieu_formation"):agg {
      c = cpf.combine({ red, cpf.share(cpf.count()) }, function(r, s) seen[#seen + 1] = { r, s } return r end),
      s = cpf.share(red),
      m = cpf.share "montant_engage",
    }:run()
    assert.are.equal(#res, #seen)
    for i, row in ipairs(res) do
      assert.is_number(seen[i][1])
      assert.is_number(seen[i][2])
      same(row.m, row.s, "share of a reduce")
    end
  end)

  it("takes measure names inside combine and filtered, as agg does", function()
    local res = ds:group_by("region_lieu_formation"):agg {
      c = cpf.combine({ "dossiers", "lignes" }, function(d, n) return d / n end),
      f = cpf.filtered("dossiers", { famille = "cancelled" }),
      d = "dossiers", n = "lignes",
      fd = cpf.filtered(cpf.sum "nb_dossiers", { famille = "cancelled" }),
    }:run()
    for _, row in ipairs(res) do
      same(row.d / row.n, row.c, "combine of measure names")
      same(row.fd, row.f, "filtered measure name")
    end
  end)

  it("refuses what is no aggregate at the call, with a message", function()
    -- a name that is no measure is a column (its sum): an unknown one is said when the query runs
    local q = ds:agg { x = cpf.combine({ "dossier" }, print) }
    assert.are.equal("aggregate x: unknown column 'dossier'", h.error_of(function() return q:run() end))
    assert.are.equal("combine: part 2 is no aggregate, measure or column name (got number)",
      h.error_of(function() return cpf.combine({ cpf.count(), 3 }, print) end))
    assert.are.equal("combine: part 1 is no aggregate, measure or column name ("
      .. schema.not_additive.nb_titulaires .. ")",
      h.error_of(function() return cpf.combine({ "titulaires" }, print) end))
    assert.are.equal("bad argument #1 to 'combine' (list of aggregates or measure names expected)",
      h.error_of(function() return cpf.combine({}, print) end))
    assert.are.equal("bad argument #2 to 'combine' (function expected, got nil)",
      h.error_of(function() return cpf.combine({ cpf.count() }) end))
    assert.are.equal("bad argument #1 to 'filtered' (aggregate, measure or column name expected, got number)",
      h.error_of(function() return cpf.filtered(1, {}) end))
    -- share, filtered and combine read a name the same way: a measure, else a column's sum
    local path = h.tmpname(".csv")
    assert(require("cpf.gen").write(path, 1000, { seed = 8 }))
    local g = assert(cpf.load(path))
    local one = g:run { a = cpf.share "montant", b = cpf.filtered("montant", { annee = 2023 }),
                        c = cpf.combine({ "montant" }, function(x) return x end), d = cpf.share "nb_dossiers" }[1]
    local all = g:run { m = "montant", m23 = cpf.filtered(cpf.sum "montant_engage", { annee = 2023 }) }[1]
    assert.are.same({ 1, all.m23, all.m, 1 }, { one.a, one.b, one.c, one.d })
    g:close()
    assert.are.equal("bad argument #2 to 'filtered' ({column = condition} or function expected, got string)",
      h.error_of(function() return cpf.filtered(cpf.count(), "annee = 2024") end))
  end)

  it("groups by the booleans a key function returns: false, true, then no key", function()
    local res = ds:group_by(cpf.key("region_lieu_formation", function(v) return v == "Bretagne" end, "bzh"))
      :agg { n = "lignes" }:run()
    local bzh = #keep(rows, function(r) return r.region_lieu_formation == "Bretagne" end)
    local none = #keep(rows, function(r) return r.region_lieu_formation == nil end)
    assert.are.same({ { bzh = false, n = #rows - bzh - none }, { bzh = true, n = bzh }, { n = none } },
      { res[1], res[2], res[3] })
    assert.are.equal(3, #res)
    assert.are.equal("bzh,n\nfalse," .. (#rows - bzh - none) .. "\ntrue," .. bzh .. "\n," .. none .. "\n",
      res:format("csv"))
  end)

  it("says which value a key function returned that is no key", function()
    local function run(bad)
      local function fn(v) if v == "Bretagne" then return bad end end
      return ds:group_by(cpf.key("region_lieu_formation", fn, "k")):agg { n = "lignes" }:run()
    end
    assert.are.equal('cpf.key \'k\': the function returned a table for "Bretagne"; a key is a string, '
      .. "a number or a boolean (nil for no key)", h.error_of(function() return run({}) end))
    assert.are.equal('cpf.key \'k\': the function returned NaN for "Bretagne"; a key is a string, '
      .. "a number or a boolean (nil for no key)", h.error_of(function() return run(0 / 0) end))
  end)
end)

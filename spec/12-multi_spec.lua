-- Several extractions: cpf.load{a, b} against the separate loads, row by row; pivot and
-- cpf.compare against sums computed here with ds:get loops (no query engine involved).
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

local FAMILY = {
  ["Validé"] = "validated", ["Entrée en formation"] = "in_training",
  ["Sortie de formation"] = "left_training", ["Clos - Réalisation Totale"] = "completed",
  ["Clos - Réalisation Partielle"] = "completed", ["Clos - Non Réalisé annulé titulaire"] = "cancelled",
  ["Clos - Non Réalisé annulé OF"] = "cancelled", ["Dossier annulé gestionnaire"] = "cancelled",
  ["Rejeté"] = "cancelled",
}

local function cents(v)
  if v == nil then return nil end
  return math.floor(v * 100 + 0.5)
end

local function is_integer(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v == math.floor(v)
end

local function count_keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- Σ nb_dossiers and Σ montant_engage (cents) per key(ds, i), read with ds:get.
local function sums_by(ds, key)
  local out = {}
  for i = 1, #ds do
    local k = key(ds, i)
    if k == nil then k = "\0nil" end
    local s = out[k]
    if not s then s = { d = 0, m = 0, n = 0 }; out[k] = s end
    s.d = s.d + ds:get(i, "nb_dossiers")
    s.m = s.m + cents(ds:get(i, "montant_engage"))
    s.n = s.n + 1
  end
  return out
end

-- The message of an error raised at the caller (level 2 from this file) or without position.
local function error_of(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "no error raised")
  return (tostring(err):gsub("^spec/12%-multi_spec%.lua:%d+: ", ""))
end

local path_a, path_b = h.tmpname(".csv"), h.tmpname(".csv")
assert(gen.write(path_a, 2000, { seed = 21 }))
assert(gen.write(path_b, 3000, { seed = 22 }))
local A = assert(cpf.load(path_a))
local B = assert(cpf.load(path_b))
local M = assert(cpf.load { path_a, path_b })

describe("cpf.load of several files", function()
  teardown(h.cleanup)

  it("has every row of both files and a source column", function()
    assert.are.equal(2000, #A)
    assert.are.equal(3000, #B)
    assert.are.equal(5000, #M)
    local ca, cm = A:columns(), M:columns()
    assert.are.equal(#ca + 1, #cm)
    for j, c in ipairs(ca) do
      assert.are.equal(c.name, cm[j].name)
      assert.are.equal(c.type, cm[j].type)
      assert.are.equal(c.label, cm[j].label)
    end
    local source = cm[#cm]
    assert.are.equal("source", source.name)
    assert.are.equal("string", source.type)
    assert.are.equal(0, source.missing)
    for i = 1, #M do
      local want = i <= 2000 and path_a or path_b
      if M:get(i, "source") ~= want then
        error(("row %d: source %q, expected %q"):format(i, tostring(M:get(i, "source")), want))
      end
    end
    local counts = {}
    for _, e in ipairs(M:distinct("source")) do counts[e.value] = e.count end
    assert.are.same({ [path_a] = 2000, [path_b] = 3000 }, counts)
  end)

  it("holds the same values as the separate loads, row by row", function()
    local ncols = #A:columns()
    for i = 1, #M do
      local part, row = A, i
      if i > 2000 then part, row = B, i - 2000 end
      for j = 1, ncols do
        local a, b = part:get(row, j), M:get(i, j)
        if a ~= b then
          error(("row %d, column %d: %s in the file, %s in the concatenation"):format(i, j, tostring(a), tostring(b)))
        end
      end
    end
    -- missing values stay missing
    for _, c in ipairs(A:columns()) do
      assert.are.equal(c.missing + B:column(c.name).missing, M:column(c.name).missing, c.name)
    end
    assert.is_true(M:column("duree_moyenne").missing > 0)
  end)

  it("merges the string dictionaries", function()
    local checked = 0
    for _, c in ipairs(A:columns()) do
      if c.type == "string" then
        local union = {}
        for _, v in ipairs(A:dictionary(c.name)) do union[v] = true end
        for _, v in ipairs(B:dictionary(c.name)) do union[v] = true end
        local merged, seen = M:dictionary(c.name), {}
        for _, v in ipairs(merged) do
          assert.is_nil(seen[v], c.name .. ": twice in the dictionary: " .. v)
          seen[v] = true
          assert.is_true(union[v], c.name .. ": not in either file: " .. v)
        end
        assert.are.equal(count_keys(union), #merged, c.name)
        checked = checked + 1
      end
    end
    assert.is_true(checked > 10)
    -- distinct values seen through a query, against ds:get over both files
    for _, name in ipairs { "code_rncp", "departement_lieu_formation", "libelle_formacode_principal" } do
      local set = {}
      for _, ds in ipairs { A, B } do
        for i = 1, #ds do
          local v = ds:get(i, name)
          if v ~= nil then set[v] = true end
        end
      end
      assert.are.equal(count_keys(set), M:run { d = cpf.distinct(name) }[1].d, name)
    end
  end)

  it("answers queries as the two files together", function()
    local res = M:group_by("source"):agg { "dossiers", "montant", "lignes" }:run()
    assert.are.equal(2, #res)
    local expected = {
      [path_a] = sums_by(A, function() return "all" end).all,
      [path_b] = sums_by(B, function() return "all" end).all,
    }
    for _, row in res:rows() do
      local e = expected[row.source]
      assert.is_table(e, row.source)
      assert.are.equal(e.d, row.dossiers)
      assert.are.equal(e.m, cents(row.montant))
      assert.are.equal(e.n, row.lignes)
    end
    local one = M:run { "dossiers", "montant" }
    assert.are.equal(expected[path_a].d + expected[path_b].d, one[1].dossiers)
    assert.are.equal(expected[path_a].m + expected[path_b].m, cents(one[1].montant))
    assert.are.equal(2000, M:where { source = path_a }:run { n = cpf.count() }[1].n)
  end)

  it("loads a list of one file with its source column", function()
    local one = assert(cpf.load { path_a })
    assert.are.equal(2000, #one)
    assert.are.equal(path_a, one:get(1, "source"))
    assert.are.equal(path_a, one:get(2000, "source"))
    one:close()
  end)

  it("keeps amounts exact when the files have different decimal places", function()
    local ds = assert(cpf.load { h.fixture "q_scale_1.csv", h.fixture "q_scale_2.csv" })
    assert.are.equal(4, #ds)
    local want = { 1050, 300, 25, 100001 }
    for i, c in ipairs(want) do assert.are.equal(c, cents(ds:get(i, "montant_engage")), "row " .. i) end
    assert.are.equal(1.125, ds:get(3, "prix_moyen"))
    assert.are.equal(1050 + 300 + 25 + 100001, cents(ds:run { m = cpf.sum "montant_engage" }[1].m))
    assert.are.equal(1, ds:where { montant_engage = 0.25 }:run { n = cpf.count() }[1].n)
    assert.are.equal(3, ds:where { montant_engage = cpf.between(3, 1000.01) }:run { n = cpf.count() }[1].n)
    -- prix_moyen has 2 decimals in one file, 3 in the other
    assert.are.same({ 1, 2, 1.125, 0.5 }, { ds:get(1, "prix_moyen"), ds:get(2, "prix_moyen"), ds:get(3, "prix_moyen"),
                                          ds:get(4, "prix_moyen") })
    assert.are.equal(4.625, ds:run { p = cpf.sum "prix_moyen" }[1].p)
    assert.are.equal(1, ds:where { prix_moyen = 1.125 }:run { n = cpf.count() }[1].n)
    assert.are.equal(3, ds:where { prix_moyen = cpf.ge(1) }:run { n = cpf.count() }[1].n)
    ds:close()
  end)

  it("refuses an amount that would not fit 64 bits at the other file's decimal places", function()
    -- the largest amount in cents, which at 9 decimals overflowed (undefined behaviour) silently
    local big = h.write_file("nb_dossiers;montant_engage\n1;92233720368547758.07\n", ".csv")
    local fine = h.write_file("nb_dossiers;montant_engage\n1;0.123456789\n", ".csv")
    local ds, err = cpf.load { big, fine }
    assert.is_nil(ds)
    assert.are.equal("column 'montant_engage': a value of " .. big .. " does not fit 64 bits at 9 decimals", err)
    ds = assert(cpf.load { fine, fine })
    assert.are.equal(0.123456789, ds:get(2, "montant_engage"))
  end)

  it("refuses files whose columns differ, naming both", function()
    local ds, err = cpf.load { path_a, h.fixture "q_small.csv" }
    assert.is_nil(ds)
    assert.are.equal(path_a .. " has 37 columns, spec/fixtures/q_small.csv has 7", err)
    ds, err = cpf.load { h.fixture "q_small.csv", h.fixture "q_swapped.csv" }
    assert.is_nil(ds)
    assert.are.equal("column 1 is 'statut_dossier' in spec/fixtures/q_small.csv but 'region_lieu_formation' "
      .. "in spec/fixtures/q_swapped.csv", err)
    ds, err = cpf.load { h.fixture "q_extra_int.csv", h.fixture "q_extra_text.csv" }
    assert.is_nil(ds)
    assert.are.equal("column 'extra' is integer in spec/fixtures/q_extra_int.csv but string in "
      .. "spec/fixtures/q_extra_text.csv", err)
    ds, err = cpf.load { h.fixture "q_extra_int.csv", h.fixture "q_source_column.csv" }
    assert.is_nil(ds)
    assert.are.equal("spec/fixtures/q_source_column.csv:1: has a column named 'source', which cpf.load adds "
      .. "for several files", err)
    ds, err = cpf.load { path_a, "spec/fixtures/q_no_such_file.csv" }
    assert.is_nil(ds)
    assert.are.equal("spec/fixtures/q_no_such_file.csv: cannot open: No such file or directory", err)
  end)
end)

describe("res:pivot", function()
  it("makes a crosstab region × year equal to the long result", function()
    local long = M:group_by("region_lieu_formation", "annee"):agg { "montant" }:run()
    local wide = long:pivot("region_lieu_formation", "annee", "montant")
    local years = {}
    for i = 1, #M do years[tonumber(M:get(i, "date_validation"):sub(1, 4))] = true end
    local columns = { "region_lieu_formation" }
    for y = 2020, 2026 do
      if years[y] then columns[#columns + 1] = tostring(y) end
    end
    assert.are.same(columns, wide:columns())
    local expected = sums_by(M, function(ds, i)
      return tostring(ds:get(i, "region_lieu_formation")) .. "|" .. ds:get(i, "date_validation"):sub(1, 4)
    end)
    local regions = {}
    for i = 1, #M do
      local r = M:get(i, "region_lieu_formation")
      regions[r == nil and "\0nil" or r] = true
    end
    assert.are.equal(count_keys(regions), #wide)
    assert.is_nil(wide[#wide].region_lieu_formation) -- the missing place, last
    local cells = 0
    for _, row in wide:rows() do
      for y = 2020, 2026 do
        local e = expected[tostring(row.region_lieu_formation) .. "|" .. y]
        assert.are.equal(e and e.m or nil, cents(row[tostring(y)]), tostring(row.region_lieu_formation) .. " " .. y)
        if e then cells = cells + 1 end
      end
    end
    assert.are.equal(#long, cells)
  end)

  it("leaves nil the cells without rows", function()
    local long = M:group_by("departement_lieu_formation", "annee"):agg { "dossiers" }:run()
    local wide = long:pivot("departement_lieu_formation", "annee", "dossiers")
    local expected = sums_by(M, function(ds, i)
      return tostring(ds:get(i, "departement_lieu_formation")) .. "|" .. ds:get(i, "date_validation"):sub(1, 4)
    end)
    local empty, full = 0, 0
    for _, row in wide:rows() do
      for y = 2020, 2026 do
        local e = expected[tostring(row.departement_lieu_formation) .. "|" .. y]
        local v = row[tostring(y)]
        if e then
          full = full + 1
          assert.are.equal(e.d, v)
          assert.is_true(is_integer(v))
        else
          empty = empty + 1
          assert.is_nil(v)
        end
      end
    end
    assert.is_true(empty > 0, "no empty cell to test")
    assert.are.equal(#long, full)
  end)

  it("keeps the query's key order: families and buckets in their own, the missing key last", function()
    local ds = assert(cpf.load(h.write_file(table.concat({
      "date_validation;statut_dossier;montant_engage;nb_dossiers",
      "2023-01;Validé;50;1", "2023-01;Rejeté;5000;2", "2024-01;Entrée en formation;500;3",
      "2024-01;Clos - Réalisation Totale;50;4", "2023-05;Validé;;5", "2024-07;;600;6",
    }, "\n") .. "\n")))
    local long = ds:group_by("famille", cpf.bucket("montant_engage", { 100, 1000 })):agg { "dossiers" }:run()
    local function cells(res)
      local t = {}
      for i, row in res:rows() do
        t[i] = {}
        for j, c in ipairs(res:columns()) do t[i][j] = row[c] == nil and "-" or row[c] end
      end
      return t
    end
    -- the families as columns in their order (not alphabetical), the missing family last
    local by_bucket = long:pivot("montant_engage_tranche", "famille", "dossiers")
    assert.are.same({ "montant_engage_tranche", "validated", "in_training", "completed", "cancelled", "(missing)" },
      by_bucket:columns())
    assert.are.same({ { "< 100", 1, "-", 4, "-", "-" }, { "[100, 1000)", "-", 3, "-", "-", 6 },
      { ">= 1000", "-", "-", "-", 2, "-" }, { "-", 5, "-", "-", "-", "-" } }, cells(by_bucket))
    -- the buckets as columns by their bounds (not by label text), the missing amount last
    local by_family = long:pivot("famille", "montant_engage_tranche", "dossiers")
    assert.are.same({ "famille", "< 100", "[100, 1000)", ">= 1000", "(missing)" }, by_family:columns())
    assert.are.same({ { "validated", 1, "-", "-", 5 }, { "in_training", "-", 3, "-", "-" },
      { "completed", 4, "-", "-", "-" }, { "cancelled", "-", "-", 2, "-" }, { "-", "-", 6, "-", "-" } },
      cells(by_family))
    -- the same whatever order the result was sorted in
    local sorted = ds:group_by("famille", cpf.bucket("montant_engage", { 100, 1000 })):agg { "dossiers" }
      :order_by("-dossiers"):run()
    assert.are.same(cells(by_family), cells(sorted:pivot("famille", "montant_engage_tranche", "dossiers")))
    assert.are.same(cells(by_bucket), cells(sorted:pivot("montant_engage_tranche", "famille", "dossiers")))
  end)

  it("refuses two values that would give one column name, and two rows for a cell with no value", function()
    local mixed = cpf.result({ "k", "c", "v" }, { { k = "a", c = 1, v = 1 }, { k = "a", c = "1", v = 2 } })
    assert.are.equal("pivot: two c values would both be the column '1'; pivot on another column",
      error_of(function() return mixed:pivot("k", "c", "v") end))
    local named = cpf.result({ "k", "c", "v" }, { { k = "a", c = "k", v = 1 } })
    assert.are.equal("pivot: the c value k would be named as the row key column; pivot on another column",
      error_of(function() return named:pivot("k", "c", "v") end))
    local literal = cpf.result({ "k", "c", "v" }, { { k = "a", v = 1 }, { k = "b", c = "(missing)", v = 2 } })
    assert.are.equal("pivot: two c values would both be the column '(missing)'; pivot on another column",
      error_of(function() return literal:pivot("k", "c", "v") end))
    local twice = cpf.result({ "k", "c", "v" }, { { k = "a", c = "x" }, { k = "a", c = "x", v = 2 } })
    assert.are.equal("pivot: several rows for k = a and c = x; group by these two keys only",
      error_of(function() return twice:pivot("k", "c", "v") end))
  end)

  it("names an unknown column and refuses several rows per cell", function()
    local long = M:group_by("region_lieu_formation", "annee"):agg { "dossiers" }:run()
    assert.are.equal("pivot: unknown column 'nope'",
      error_of(function() return long:pivot("nope", "annee", "dossiers") end))
    assert.are.equal("pivot: unknown column 'x'",
      error_of(function() return long:pivot("annee", "region_lieu_formation", "x") end))
    local three = M:group_by("region_lieu_formation", "annee", "famille"):agg { "dossiers" }:run()
    -- the first region and year with two families
    local seen, first
    seen = {}
    for _, row in three:rows() do
      local k = tostring(row.region_lieu_formation) .. "|" .. row.annee
      if seen[k] and not first then first = row end
      seen[k] = true
    end
    assert.are.equal(("pivot: several rows for region_lieu_formation = %s and annee = %s; group by these two keys only")
      :format(first.region_lieu_formation, tostring(first.annee)),
      error_of(function() return three:pivot("region_lieu_formation", "annee", "dossiers") end))
  end)
end)

describe("cpf.compare", function()
  local ORDER = { "validated", "in_training", "left_training", "completed", "cancelled" }

  it("gives per family the old value, the new value and the difference", function()
    local res = cpf.compare(A, B, "famille", { "dossiers", "montant" })
    assert.are.same({ "famille", "dossiers_old", "dossiers_new", "dossiers_diff", "montant_old", "montant_new",
                      "montant_diff" }, res:columns())
    local function family(ds, i) return FAMILY[ds:get(i, "statut_dossier")] end
    local old, new = sums_by(A, family), sums_by(B, family)
    assert.are.equal(5, #res)
    local seen = {}
    for _, row in res:rows() do
      local f = row.famille
      seen[f] = true
      local o, n = old[f], new[f]
      assert.are.equal(o.d, row.dossiers_old, f)
      assert.are.equal(n.d, row.dossiers_new, f)
      assert.are.equal(n.d - o.d, row.dossiers_diff, f)
      assert.is_true(is_integer(row.dossiers_diff))
      assert.are.equal(o.m, cents(row.montant_old), f)
      assert.are.equal(n.m, cents(row.montant_new), f)
      assert.are.equal(n.m - o.m, cents(row.montant_diff), f)
    end
    for _, f in ipairs(ORDER) do assert.is_true(seen[f], f) end
  end)

  it("keeps the families' own order", function()
    local res = cpf.compare(A, B, "famille", { "dossiers" })
    local order = {}
    for i, row in res:rows() do order[i] = row.famille end
    assert.are.same(ORDER, order)
  end)

  it("keeps the bucket order of bucket keys", function()
    local res = cpf.compare(A, B, { cpf.bucket("montant_engage", { 500, 1000, 5000 }) }, { "dossiers" })
    local order = {}
    for i, row in res:rows() do order[i] = row.montant_engage_tranche end
    assert.are.same({ "< 500", "[500, 1000)", "[1000, 5000)", ">= 5000" }, order)
  end)

  it("counts a group missing on one side as 0 there", function()
    local res = cpf.compare(A, B, { "region_lieu_formation", "code_rncp" }, { "dossiers", "montant" })
    local function key(ds, i)
      return tostring(ds:get(i, "region_lieu_formation")) .. "|" .. ds:get(i, "code_rncp")
    end
    local old, new = sums_by(A, key), sums_by(B, key)
    local keys = {}
    for k in pairs(old) do keys[k] = true end
    for k in pairs(new) do keys[k] = true end
    assert.are.equal(count_keys(keys), #res)
    local only_old, only_new = 0, 0
    for _, row in res:rows() do
      local k = tostring(row.region_lieu_formation) .. "|" .. row.code_rncp
      local o, n = old[k], new[k]
      assert.is_true(o ~= nil or n ~= nil, k)
      if not n then only_old = only_old + 1 end
      if not o then only_new = only_new + 1 end
      assert.are.equal(o and o.d, row.dossiers_old, k)
      assert.are.equal(n and n.d, row.dossiers_new, k)
      assert.are.equal((n and n.d or 0) - (o and o.d or 0), row.dossiers_diff, k)
      assert.are.equal(o and o.m, cents(row.montant_old), k)
      assert.are.equal(n and n.m, cents(row.montant_new), k)
      assert.are.equal((n and n.m or 0) - (o and o.m or 0), cents(row.montant_diff), k)
    end
    assert.is_true(only_old > 0 and only_new > 0, "nothing one-sided to test")
    assert.is_nil(res[#res].region_lieu_formation) -- the missing place, last
  end)

  it("compares by several keys", function()
    local res = cpf.compare(A, B, { "annee", "famille" }, { "montant" })
    assert.are.same({ "annee", "famille", "montant_old", "montant_new", "montant_diff" }, res:columns())
    local function key(ds, i)
      return ds:get(i, "date_validation"):sub(1, 4) .. "|" .. FAMILY[ds:get(i, "statut_dossier")]
    end
    local old, new = sums_by(A, key), sums_by(B, key)
    for _, row in res:rows() do
      local k = tostring(row.annee) .. "|" .. row.famille
      local o, n = old[k], new[k]
      assert.are.equal(o and o.m, cents(row.montant_old), k)
      assert.are.equal(n and n.m, cents(row.montant_new), k)
      assert.are.equal((n and n.m or 0) - (o and o.m or 0), cents(row.montant_diff), k)
    end
  end)
end)

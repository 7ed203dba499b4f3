-- The query engine against an independent pure-Lua computation: every condition, grouping key
-- and aggregate is run in C over a generated 30 k-row file and recomputed here from the CSV text.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

local read_csv, cents_of_text = h.read_csv, h.cents_of_text

local function cents(v)
  if v == nil then return nil end
  return math.floor(v * 100 + 0.5)
end

-- The families, written out here rather than taken from cpf.schema.
local FAMILY = {
  ["Validé"] = "validated", ["Entrée en formation"] = "in_training",
  ["Sortie de formation"] = "left_training", ["Clos - Réalisation Totale"] = "completed",
  ["Clos - Réalisation Partielle"] = "completed", ["Clos - Non Réalisé annulé titulaire"] = "cancelled",
  ["Clos - Non Réalisé annulé OF"] = "cancelled", ["Dossier annulé gestionnaire"] = "cancelled",
  ["Rejeté"] = "cancelled",
}
local FAMILY_ORDER = { "validated", "in_training", "left_training", "completed", "cancelled" }

-- One record per data row, the values parsed from the text by this file alone.
local function reference(path)
  local rows, col = {}, {}
  read_csv(h.read_file(path), function(f, number)
    if number == 1 then
      for i, label in ipairs(f) do col[label] = i end
      return
    end
    local function s(name)
      local v = f[assert(col[name], name)]
      if v == "" then return nil end
      return v
    end
    local month = s("date validation"):sub(1, 7)
    rows[#rows + 1] = {
      status = s "statut_dossier", region = s "region_lieu_formation",
      dep = s "departement_lieu_formation", mode = s "modalite_presence",
      rncp = s "code_rncp", libelle = s "libelle_formacode_principal",
      code_dep = s "Code Officiel Département", chargement = s "date_chargement",
      month = month, year = tonumber(month:sub(1, 4)),
      nb = tonumber(s "nb_dossiers"), nknown = tonumber(s "nb_dossiers_a_duree_connue"),
      duree = s "duree_moyenne" and tonumber(s "duree_moyenne"),
      cents = cents_of_text(s "montant_engage"), prix = cents_of_text(s "prix_moyen"),
    }
  end)
  return rows
end

-- ---- comparison helpers ----

local function is_integer(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v == math.floor(v)
end

local function close(expected, actual, what)
  if expected == nil or actual == nil then
    assert.are.equal(expected, actual, what)
    return
  end
  local scale = math.max(1, math.abs(expected))
  if math.abs(expected - actual) > 1e-9 * scale then
    error(("%s: expected %.17g, got %.17g"):format(what or "value", expected, actual), 2)
  end
end

-- Natural order of key values: numbers and strings ascending, nil last.
local function before(a, b)
  if a == b then return false end
  if a == nil then return false end
  if b == nil then return true end
  return a < b
end

local function tuple_before(x, y, n, ranks)
  for k = 1, n do
    local a, b = x[k], y[k]
    if ranks and ranks[k] then a, b = ranks[k][a] or math.huge, ranks[k][b] or math.huge end
    if a ~= b then return before(a, b) end
  end
  return false
end

-- Groups the reference rows by keyfn(row) (returns the key values, nil allowed); each group
-- has .keys, .rows, .n, .d (Σ nb_dossiers), .m (Σ cents). Sorted like the engine's default.
local function groups_of(rows, nkeys, keyfn, ranks)
  local by_id, list = {}, {}
  for _, r in ipairs(rows) do
    local ks = { keyfn(r) }
    local id = {}
    for k = 1, nkeys do id[k] = type(ks[k]) .. ":" .. tostring(ks[k]) end
    id = table.concat(id, "\1")
    local g = by_id[id]
    if not g then
      g = { keys = ks, rows = {}, n = 0, d = 0, m = 0 }
      by_id[id] = g
      list[#list + 1] = g
    end
    g.rows[#g.rows + 1] = r
    g.n, g.d, g.m = g.n + 1, g.d + r.nb, g.m + r.cents
  end
  table.sort(list, function(a, b) return tuple_before(a.keys, b.keys, nkeys, ranks) end)
  return list
end

local COUNTS = { n = cpf.count(), d = cpf.sum "nb_dossiers", m = cpf.sum "montant_engage" }

-- The grouped result has exactly the reference groups, in order, with their counts and sums.
-- (plain comparisons first: busted's assertions are too slow for 20 k groups)
local function assert_groups(res, names, list)
  assert.are.equal(#list, #res, "number of groups")
  for i, g in ipairs(list) do
    local row = res[i]
    local same = g.n == row.n and g.d == row.d and g.m == cents(row.m)
    for k, name in ipairs(names) do same = same and g.keys[k] == row[name] end
    if not same then
      for k, name in ipairs(names) do
        assert.are.equal(g.keys[k], row[name], ("group %d, key %s"):format(i, name))
      end
      assert.are.equal(g.n, row.n, ("group %d: rows"):format(i))
      assert.are.equal(g.d, row.d, ("group %d: Σ nb_dossiers"):format(i))
      assert.are.equal(g.m, cents(row.m), ("group %d: Σ montant_engage in cents"):format(i))
    end
  end
end

local function sorted(values)
  local t = {}
  for i, v in ipairs(values) do t[i] = v end
  table.sort(t)
  return t
end

-- Type-7 quantile (linear interpolation between order statistics) of a sorted list.
local function quantile7(v, p)
  local n = #v
  if n == 0 then return nil end
  local hpos = (n - 1) * p
  local lo = math.floor(hpos)
  local x = v[lo + 1]
  if lo + 2 <= n then x = x + (hpos - lo) * (v[lo + 2] - v[lo + 1]) end
  return x
end

-- The message of the error f raises; a position is accepted only when it names this file.
local function error_of(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "no error raised")
  assert.are.equal("string", type(err))
  return (err:gsub("^spec/10%-query_spec%.lua:%d+: ", ""))
end

local function count_keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- ---- the generated file, loaded once ----

local path = h.tmpname(".csv")
assert(gen.write(path, 30000, { seed = 11 }))
local ds = assert(cpf.load(path))
local ref = reference(path)

local function select_rows(pred)
  local out = {}
  for _, r in ipairs(ref) do
    if pred(r) then out[#out + 1] = r end
  end
  return out
end

-- One query without keys: rows, Σ nb_dossiers and Σ montant_engage match the reference rows
-- the predicate keeps. `some` (default true) insists that the condition keeps some rows and
-- drops some, so that it is a real test.
local function check(q, pred, some)
  local expected = select_rows(pred)
  local res = q:run(COUNTS)
  assert.are.equal(1, #res)
  local d, m = 0, 0
  for _, r in ipairs(expected) do d, m = d + r.nb, m + r.cents end
  assert.are.equal(#expected, res[1].n, "rows kept")
  if #expected == 0 then
    assert.is_nil(res[1].d)
    assert.is_nil(res[1].m)
  else
    assert.are.equal(d, res[1].d, "Σ nb_dossiers")
    assert.are.equal(m, cents(res[1].m), "Σ montant_engage in cents")
  end
  if some ~= false then
    assert.is_true(#expected > 0 and #expected < #ref,
      ("the condition keeps %d rows of %d"):format(#expected, #ref))
  end
  return #expected
end

describe("query conditions on a generated 30 k-row file", function()
  teardown(h.cleanup)

  it("reads the same file as the reference", function()
    assert.are.equal(30000, #ref)
    assert.are.equal(#ref, #ds)
    local missing_duree, missing_region = 0, 0
    for _, r in ipairs(ref) do
      if r.duree == nil then missing_duree = missing_duree + 1 end
      if r.region == nil then missing_region = missing_region + 1 end
    end
    assert.is_true(missing_duree > 0 and missing_region > 0)
    assert.are.equal(missing_duree, ds:column("duree_moyenne").missing)
    assert.are.equal(missing_region, ds:column("region_lieu_formation").missing)
  end)

  it("selects by equality on a string column", function()
    check(ds:where { region_lieu_formation = "Bretagne" }, function(r) return r.region == "Bretagne" end)
    check(ds:where("statut_dossier", "Rejeté"), function(r) return r.status == "Rejeté" end)
    check(ds:where { region_lieu_formation = cpf.eq "Corse" }, function(r) return r.region == "Corse" end)
    -- a value the column does not hold keeps nothing
    check(ds:where { region_lieu_formation = "Atlantide" }, function() return false end, false)
  end)

  it("selects by a set of values", function()
    check(ds:where { statut_dossier = { "Validé", "Entrée en formation" } },
      function(r) return r.status == "Validé" or r.status == "Entrée en formation" end)
    check(ds:where { statut_dossier = cpf.one_of { "Rejeté", "Sortie de formation", "nothing" } },
      function(r) return r.status == "Rejeté" or r.status == "Sortie de formation" end)
    check(ds:where { nb_dossiers = { 1, 2, 7 } },
      function(r) return r.nb == 1 or r.nb == 2 or r.nb == 7 end)
  end)

  it("compares an integer column", function()
    check(ds:where { nb_dossiers = 1 }, function(r) return r.nb == 1 end)
    check(ds:where { nb_dossiers = cpf.gt(10) }, function(r) return r.nb > 10 end)
    check(ds:where { nb_dossiers = cpf.ge(10) }, function(r) return r.nb >= 10 end)
    check(ds:where { nb_dossiers = cpf.lt(3) }, function(r) return r.nb < 3 end)
    check(ds:where { nb_dossiers = cpf.le(3) }, function(r) return r.nb <= 3 end)
    check(ds:where { nb_dossiers = cpf.between(5, 20) }, function(r) return r.nb >= 5 and r.nb <= 20 end)
    -- fractional bounds on an integer column
    check(ds:where { nb_dossiers = cpf.between(4.5, 9.5) }, function(r) return r.nb >= 4.5 and r.nb <= 9.5 end)
    check(ds:where { nb_dossiers = cpf.gt(2.5) }, function(r) return r.nb > 2.5 end)
    check(ds:where { nb_dossiers = 2.5 }, function() return false end, false)
  end)

  it("compares a decimal column at boundaries that are values of the data", function()
    local at100, at5000 = 0, 0
    for _, r in ipairs(ref) do
      if r.cents == 10000 then at100 = at100 + 1 end
      if r.cents == 500000 then at5000 = at5000 + 1 end
    end
    assert.is_true(at100 > 0 and at5000 > 0, "no row at exactly 100.00 or 5000.00")
    check(ds:where { montant_engage = cpf.between(100, 5000) },
      function(r) return r.cents >= 10000 and r.cents <= 500000 end)
    check(ds:where { montant_engage = cpf.gt(100) }, function(r) return r.cents > 10000 end)
    check(ds:where { montant_engage = cpf.ge(100) }, function(r) return r.cents >= 10000 end)
    check(ds:where { montant_engage = cpf.lt(5000) }, function(r) return r.cents < 500000 end)
    check(ds:where { montant_engage = cpf.le(5000) }, function(r) return r.cents <= 500000 end)
    check(ds:where { montant_engage = 100 }, function(r) return r.cents == 10000 end)
    check(ds:where { montant_engage = 100.001 }, function() return false end, false)
    check(ds:where { montant_engage = cpf.between(99.995, 100.005) }, function(r) return r.cents == 10000 end)
  end)

  it("compares a decimal column exactly at many values with cents", function()
    local all, freq = {}, {}
    for i, r in ipairs(ref) do
      all[i] = r.cents
      freq[r.cents] = (freq[r.cents] or 0) + 1
    end
    table.sort(all)
    -- number of values < x (strict = true) or <= x, by bisection
    local function below(x, strict)
      local lo, hi = 1, #all + 1
      while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        local v = all[mid]
        if (strict and v < x) or (not strict and v <= x) then lo = mid + 1 else hi = mid end
      end
      return lo - 1
    end
    -- values that occur in the data, most with a cents part (the hard case for doubles)
    local distinct = {}
    for v in pairs(freq) do distinct[#distinct + 1] = v end
    table.sort(distinct)
    local probes = {}
    local step = math.max(1, math.floor(#distinct / 120))
    for i = 1, #distinct, step do probes[#probes + 1] = distinct[i] end
    probes[#probes + 1] = distinct[#distinct]
    local with_cents = 0
    for _, v in ipairs(probes) do
      if v % 100 ~= 0 then with_cents = with_cents + 1 end
      local x = v / 100
      local function n(c) return ds:where { montant_engage = c }:run { n = cpf.count() }[1].n end
      local lt, le = below(v, true), below(v, false)
      assert.are.equal(#all - lt, n(cpf.ge(x)), "ge " .. x)
      assert.are.equal(#all - le, n(cpf.gt(x)), "gt " .. x)
      assert.are.equal(lt, n(cpf.lt(x)), "lt " .. x)
      assert.are.equal(le, n(cpf.le(x)), "le " .. x)
      assert.are.equal(freq[v], n(x), "eq " .. x)
    end
    assert.is_true(with_cents > 50, "too few probes with cents: " .. with_cents)
  end)

  it("compares prix_moyen (decimal) at values of the data", function()
    local seen = {}
    for i = 1, #ref, 3000 do seen[#seen + 1] = ref[i].prix end
    for _, v in ipairs(seen) do
      local x = v / 100
      check(ds:where { prix_moyen = cpf.ge(x) }, function(r) return r.prix >= v end, false)
      check(ds:where { prix_moyen = cpf.lt(x) }, function(r) return r.prix < v end, false)
      check(ds:where { prix_moyen = x }, function(r) return r.prix == v end, false)
    end
  end)

  it("takes infinite and huge bounds", function()
    check(ds:where { nb_dossiers = cpf.lt(math.huge) }, function() return true end, false)
    check(ds:where { montant_engage = cpf.between(-math.huge, math.huge) }, function() return true end, false)
    check(ds:where { duree_moyenne = cpf.gt(-math.huge) }, function(r) return r.duree ~= nil end)
    check(ds:where { nb_dossiers = cpf.gt(1e300) }, function() return false end, false)
    check(ds:where { montant_engage = cpf.le(-1e300) }, function() return false end, false)
    check(ds:where { montant_engage = cpf.le(1e17) }, function() return true end, false)
    check(ds:where { nb_dossiers = cpf.between(2 ^ 53, 2 ^ 63) }, function() return false end, false)
  end)

  it("keeps no row for a NaN bound, whatever the column type (or refuses it)", function()
    local nan = 0 / 0
    for _, column in ipairs { "duree_moyenne", "nb_dossiers", "montant_engage" } do
      for name, c in pairs { gt = cpf.gt(nan), ge = cpf.ge(nan), lt = cpf.lt(nan), le = cpf.le(nan) } do
        local ok, res = pcall(function() return ds:where { [column] = c }:run { n = cpf.count() } end)
        if ok then
          assert.are.equal(0, res[1].n, ("%s %s NaN keeps %d rows"):format(column, name, res[1].n))
        end
      end
    end
  end)

  it("compares a number column with missing values, which pass no comparison", function()
    check(ds:where { duree_moyenne = cpf.gt(20) }, function(r) return r.duree ~= nil and r.duree > 20 end)
    check(ds:where { duree_moyenne = cpf.le(20) }, function(r) return r.duree ~= nil and r.duree <= 20 end)
    check(ds:where { duree_moyenne = cpf.between(10, 35.5) },
      function(r) return r.duree ~= nil and r.duree >= 10 and r.duree <= 35.5 end)
    -- at values the data holds, decimals included: counts against a sorted list of the values
    local values, freq = {}, {}
    for _, r in ipairs(ref) do
      if r.duree then
        values[#values + 1] = r.duree
        freq[r.duree] = (freq[r.duree] or 0) + 1
      end
    end
    table.sort(values)
    local probes = {}
    for v in pairs(freq) do probes[#probes + 1] = v end
    table.sort(probes)
    local function below(x, strict) -- values < x (or <= x)
      local lo, hi = 1, #values + 1
      while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        local v = values[mid]
        if (strict and v < x) or (not strict and v <= x) then lo = mid + 1 else hi = mid end
      end
      return lo - 1
    end
    local function n(c) return ds:where { duree_moyenne = c }:run { n = cpf.count() }[1].n end
    local with_fraction = 0
    for i = 1, #probes, math.max(1, math.floor(#probes / 60)) do
      local x = probes[i]
      if x ~= math.floor(x) then with_fraction = with_fraction + 1 end
      local lt, le = below(x, true), below(x, false)
      assert.are.equal(#values - lt, n(cpf.ge(x)), "ge " .. x)
      assert.are.equal(#values - le, n(cpf.gt(x)), "gt " .. x)
      assert.are.equal(lt, n(cpf.lt(x)), "lt " .. x)
      assert.are.equal(le, n(cpf.le(x)), "le " .. x)
      assert.are.equal(freq[x], n(x), "eq " .. x)
    end
    assert.is_true(with_fraction > 5)
  end)

  it("compares a month column with months, days and years", function()
    check(ds:where { ["date validation"] = "2023-01" }, function(r) return r.month == "2023-01" end)
    check(ds:where { ["date validation"] = "2023-01-01" }, function(r) return r.month == "2023-01" end)
    check(ds:where { date_validation = 2023 }, function(r) return r.year == 2023 end)
    check(ds:where { date_validation = cpf.between("2022-06", "2023-02") },
      function(r) return r.month >= "2022-06" and r.month <= "2023-02" end)
    check(ds:where { date_validation = cpf.between(2021, 2022) },
      function(r) return r.year == 2021 or r.year == 2022 end)
    check(ds:where { date_validation = cpf.gt("2023-01") }, function(r) return r.month > "2023-01" end)
    check(ds:where { date_validation = cpf.ge("2023-01") }, function(r) return r.month >= "2023-01" end)
    check(ds:where { date_validation = cpf.lt(2021) }, function(r) return r.year < 2021 end)
    check(ds:where { date_validation = cpf.le("2020-06-01") }, function(r) return r.month <= "2020-06" end)
    check(ds:where { date_validation = cpf.gt(2024) }, function(r) return r.year > 2024 end)
    check(ds:where { date_validation = { "2021-03", 2024 } },
      function(r) return r.month == "2021-03" or r.year == 2024 end)
    -- a date column
    check(ds:where { date_chargement = "2026-05" }, function() return true end, false)
    check(ds:where { date_chargement = "2026-05-04" }, function() return true end, false)
    check(ds:where { date_chargement = cpf.lt("2026-05-04") }, function() return false end, false)
  end)

  it("selects by prefix and by Lua pattern", function()
    check(ds:where { statut_dossier = cpf.prefix "Clos" }, function(r) return r.status:sub(1, 4) == "Clos" end)
    check(ds:where { region_lieu_formation = cpf.prefix "Î" },
      function(r) return r.region ~= nil and r.region:sub(1, 2) == "Î" end)
    check(ds:where { statut_dossier = cpf.match "^Clos %- Non" },
      function(r) return r.status:find("^Clos %- Non") ~= nil end)
    check(ds:where { libelle_formacode_principal = cpf.match "numérique" },
      function(r) return r.libelle ~= nil and r.libelle:find("numérique") ~= nil end)
  end)

  it("selects missing and present values", function()
    check(ds:where { duree_moyenne = cpf.is_null() }, function(r) return r.duree == nil end)
    check(ds:where { duree_moyenne = cpf.not_null() }, function(r) return r.duree ~= nil end)
    check(ds:where { region_lieu_formation = cpf.is_null() }, function(r) return r.region == nil end)
    check(ds:where { region_lieu_formation = cpf.not_null() }, function(r) return r.region ~= nil end)
  end)

  it("negates a condition: the complement, missing values included", function()
    check(ds:where { statut_dossier = cpf.not_ { "Validé", "Rejeté" } },
      function(r) return r.status ~= "Validé" and r.status ~= "Rejeté" end)
    check(ds:where { statut_dossier = cpf.not_(cpf.prefix "Clos") },
      function(r) return r.status:sub(1, 4) ~= "Clos" end)
    check(ds:where { region_lieu_formation = cpf.not_ "Bretagne" }, function(r) return r.region ~= "Bretagne" end)
    check(ds:where { duree_moyenne = cpf.not_(cpf.gt(20)) },
      function(r) return not (r.duree ~= nil and r.duree > 20) end)
    check(ds:where { nb_dossiers = cpf.not_(cpf.between(2, 10)) }, function(r) return r.nb < 2 or r.nb > 10 end)
    check(ds:where { date_validation = cpf.not_(2023) }, function(r) return r.year ~= 2023 end)
  end)

  it("selects by any of several conditions", function()
    check(ds:where { region_lieu_formation = cpf.any { "Bretagne", cpf.prefix "Î", cpf.is_null() } },
      function(r) return r.region == nil or r.region == "Bretagne" or r.region:sub(1, 2) == "Î" end)
    check(ds:where { nb_dossiers = cpf.any { cpf.lt(2), cpf.gt(100) } }, function(r) return r.nb < 2 or r.nb > 100 end)
    check(ds:where { duree_moyenne = cpf.any { cpf.is_null(), cpf.ge(100) } },
      function(r) return r.duree == nil or r.duree >= 100 end)
    check(ds:where { date_validation = cpf.any { "2020-01", cpf.ge("2026-01") } },
      function(r) return r.month == "2020-01" or r.month >= "2026-01" end)
  end)

  it("calls a Lua function on a string column once per distinct value, never per row", function()
    local calls, args = 0, {}
    local q = ds:where { departement_lieu_formation = function(v)
      calls = calls + 1
      args[v] = (args[v] or 0) + 1
      return v:find("^[A-C]") ~= nil
    end }
    assert.are.equal(0, calls) -- building the plan calls nothing
    check(q, function(r) return r.dep ~= nil and r.dep:find("^[A-C]") ~= nil end)
    local distinct = {}
    for _, r in ipairs(ref) do if r.dep then distinct[r.dep] = true end end
    assert.are.equal(count_keys(distinct), calls)
    for v, k in pairs(args) do
      assert.are.equal(1, k, v)
      assert.is_true(distinct[v], v)
    end
  end)

  it("applies a Lua function on numeric columns", function()
    check(ds:where { nb_dossiers = function(v) return v % 2 == 0 end }, function(r) return r.nb % 2 == 0 end)
    check(ds:where { duree_moyenne = function(v) return v >= 30 end },
      function(r) return r.duree ~= nil and r.duree >= 30 end)
    check(ds:where { montant_engage = function(v) return v >= 1000 and v < 2500.5 end },
      function(r) return r.cents >= 100000 and r.cents < 250050 end)
  end)

  it("calls a Lua function on a numeric column only with values the column holds, once each", function()
    local args, calls = {}, 0
    ds:where { nb_dossiers = function(v) calls = calls + 1; args[v] = (args[v] or 0) + 1; return true end }
      :run { n = cpf.count() }
    local distinct = {}
    for _, r in ipairs(ref) do distinct[r.nb] = true end
    local strangers = 0
    for v in pairs(args) do if not distinct[v] then strangers = strangers + 1 end end
    assert.are.equal(0, strangers, ("called with %d values that no row holds (%d calls for %d distinct values)")
      :format(strangers, calls, count_keys(distinct)))
    assert.are.equal(count_keys(distinct), calls)
  end)

  it("applies a row function (the slow path)", function()
    check(ds:where(function(row)
      return row.nb_dossiers > 3 and row.region_lieu_formation ~= nil
        and row.montant_engage / row.nb_dossiers > 1500
    end), function(r) return r.nb > 3 and r.region ~= nil and r.cents / 100 / r.nb > 1500 end)
    check(ds:where(function(row) return row.duree_moyenne == nil end), function(r) return r.duree == nil end)
  end)

  it("selects by derived keys and virtual columns", function()
    check(ds:where(cpf.year "date validation", 2023), function(r) return r.year == 2023 end)
    check(ds:where(cpf.year "date validation", cpf.between(2021, 2022)),
      function(r) return r.year == 2021 or r.year == 2022 end)
    check(ds:where(cpf.month "date validation", "2024-02"), function(r) return r.month == "2024-02" end)
    check(ds:where { annee = 2023 }, function(r) return r.year == 2023 end)
    check(ds:where { annee = { 2020, 2026 } }, function(r) return r.year == 2020 or r.year == 2026 end)
    check(ds:where { mois = cpf.prefix "2025-" }, function(r) return r.year == 2025 end)
    check(ds:where { famille = "cancelled" }, function(r) return FAMILY[r.status] == "cancelled" end)
    check(ds:where { famille = { "validated", "in_training" } },
      function(r) return FAMILY[r.status] == "validated" or FAMILY[r.status] == "in_training" end)
    check(ds:where { statut_dossier = cpf.family "cancelled" }, function(r) return FAMILY[r.status] == "cancelled" end)
    check(ds:where { statut_dossier = cpf.family "completed" }, function(r) return FAMILY[r.status] == "completed" end)
    check(ds:where(cpf.key("departement_lieu_formation", function(v) return #v end), cpf.gt(15)),
      function(r) return r.dep ~= nil and #r.dep > 15 end)
  end)

  it("ANDs several conditions and several where calls", function()
    check(ds:where { region_lieu_formation = "Île-de-France", nb_dossiers = cpf.ge(3) }
      :where { statut_dossier = cpf.family "completed" }
      :where(cpf.year "date validation", 2024),
      function(r)
        return r.region == "Île-de-France" and r.nb >= 3 and FAMILY[r.status] == "completed" and r.year == 2024
      end)
    check(ds:where { duree_moyenne = cpf.not_null() }:where { duree_moyenne = cpf.lt(20) }
      :where(function(row) return row.nb_dossiers > 1 end),
      function(r) return r.duree ~= nil and r.duree < 20 and r.nb > 1 end)
  end)

  it("accepts the header labels as column names", function()
    check(ds:where { ["date validation"] = cpf.between("2021-01", "2021-06") },
      function(r) return r.month >= "2021-01" and r.month <= "2021-06" end)
    check(ds:where { ["Code Officiel Département"] = { "2A", "2B", "01" } },
      function(r) return r.code_dep == "2A" or r.code_dep == "2B" or r.code_dep == "01" end)
    check(ds:where("Date Validation", 2022), function(r) return r.year == 2022 end)
  end)
end)

-- ---------------------------------------------------------------- grouping keys

describe("query grouping keys", function()
  local function run_groups(...)
    return ds:group_by(...):agg(COUNTS):run()
  end

  it("groups by one column, in byte order", function()
    local res = run_groups "statut_dossier"
    assert.are.same({ "statut_dossier", "d", "m", "n" }, res:columns())
    assert_groups(res, { "statut_dossier" }, groups_of(ref, 1, function(r) return r.status end))
    assert.are.equal(9, #res)
  end)

  it("groups by two columns, a missing region as its own group sorted last", function()
    local res = run_groups("region_lieu_formation", "modalite_presence")
    local list = groups_of(ref, 2, function(r) return r.region, r.mode end)
    assert_groups(res, { "region_lieu_formation", "modalite_presence" }, list)
    assert.is_nil(res[#res].region_lieu_formation)
  end)

  it("gives missing values a nil key, last", function()
    local res = run_groups "region_lieu_formation"
    local list = groups_of(ref, 1, function(r) return r.region end)
    assert_groups(res, { "region_lieu_formation" }, list)
    assert.is_nil(res[#res].region_lieu_formation)
    assert.are.equal(ds:column("region_lieu_formation").missing, res[#res].n)
    for i = 1, #res - 1 do assert.is_string(res[i].region_lieu_formation) end
  end)

  it("groups by year and by month of a month column", function()
    local res = run_groups(cpf.year "date validation")
    assert.are.same({ "annee", "d", "m", "n" }, res:columns())
    assert_groups(res, { "annee" }, groups_of(ref, 1, function(r) return r.year end))
    for i = 1, #res do assert.is_true(is_integer(res[i].annee)) end
    res = run_groups(cpf.month "date_validation")
    assert.are.same({ "mois", "d", "m", "n" }, res:columns())
    assert_groups(res, { "mois" }, groups_of(ref, 1, function(r) return r.month end))
    assert.are.equal("2020-01", res[1].mois)
  end)

  it("groups by the virtual keys annee, mois and famille", function()
    assert_groups(run_groups("annee", "mois"), { "annee", "mois" },
      groups_of(ref, 2, function(r) return r.year, r.month end))
    local rank = {}
    for i, f in ipairs(FAMILY_ORDER) do rank[f] = i end
    assert_groups(run_groups "famille", { "famille" },
      groups_of(ref, 1, function(r) return FAMILY[r.status] end, { rank }))
  end)

  it("groups by status family in the families' own order", function()
    local res = run_groups(cpf.family "statut_dossier")
    local names = {}
    for i, row in res:rows() do names[i] = row.famille end
    assert.are.same(FAMILY_ORDER, names)
    local rank = {}
    for i, f in ipairs(FAMILY_ORDER) do rank[f] = i end
    assert_groups(res, { "famille" }, groups_of(ref, 1, function(r) return FAMILY[r.status] end, { rank }))
  end)

  it("groups by buckets of a decimal column, in bucket order, bounds going up", function()
    local res = run_groups(cpf.bucket("montant_engage", { 0, 500, 1000, 5000 }))
    assert.are.same({ "montant_engage_tranche", "d", "m", "n" }, res:columns())
    local labels = { "< 0", "[0, 500)", "[500, 1000)", "[1000, 5000)", ">= 5000" }
    local rank = {}
    for i, l in ipairs(labels) do rank[l] = i end
    local list = groups_of(ref, 1, function(r)
      if r.cents < 0 then return labels[1] end
      if r.cents < 50000 then return labels[2] end
      if r.cents < 100000 then return labels[3] end
      if r.cents < 500000 then return labels[4] end
      return labels[5]
    end, { rank })
    assert_groups(res, { "montant_engage_tranche" }, list)
    assert.are.same({ "[0, 500)", "[500, 1000)", "[1000, 5000)", ">= 5000" },
      { res[1].montant_engage_tranche, res[2].montant_engage_tranche, res[3].montant_engage_tranche,
        res[4].montant_engage_tranche })
  end)

  it("groups by buckets of a number column with missing values", function()
    local res = run_groups(cpf.bucket("duree_moyenne", { 10, 20.5, 100 }))
    local labels = { "< 10", "[10, 20.5)", "[20.5, 100)", ">= 100" }
    local rank = {}
    for i, l in ipairs(labels) do rank[l] = i end
    local list = groups_of(ref, 1, function(r)
      local d = r.duree
      if d == nil then return nil end
      if d < 10 then return labels[1] end
      if d < 20.5 then return labels[2] end
      if d < 100 then return labels[3] end
      return labels[4]
    end, { rank })
    assert_groups(res, { "duree_moyenne_tranche" }, list)
    assert.is_nil(res[#res].duree_moyenne_tranche)
    -- an integer column too
    local res2 = run_groups(cpf.bucket("nb_dossiers", { 2, 10 }))
    assert_groups(res2, { "nb_dossiers_tranche" }, groups_of(ref, 1, function(r)
      return r.nb < 2 and "< 2" or r.nb < 10 and "[2, 10)" or ">= 10"
    end, { { ["< 2"] = 1, ["[2, 10)"] = 2, [">= 10"] = 3 } }))
  end)

  it("groups by month and year of a date column", function()
    local res = ds:group_by(cpf.month "date_chargement", cpf.year "date_chargement", "date_chargement")
      :run { n = cpf.count(), last = cpf.max "date_chargement" }
    assert.are.equal(1, #res)
    assert.are.equal("2026-05", res[1].mois)
    assert.are.equal(2026, res[1].annee)
    assert.are.equal("2026-05-04", res[1].date_chargement)
    assert.are.equal("2026-05-04", res[1].last)
    assert.are.equal(#ref, res[1].n)
  end)

  it("groups by a Lua key function called once per distinct value", function()
    local calls, args = 0, {}
    local function initial(v)
      calls = calls + 1
      args[v] = (args[v] or 0) + 1
      if v:find("^Haute") then return nil end -- nil joins the missing values' group
      return v:match("^[%z\1-\127\194-\244][\128-\191]*")
    end
    local res = run_groups(cpf.key("departement_lieu_formation", initial))
    assert.are.same({ "departement_lieu_formation_cle", "d", "m", "n" }, res:columns())
    local distinct = {}
    for _, r in ipairs(ref) do if r.dep then distinct[r.dep] = true end end
    assert.are.equal(count_keys(distinct), calls)
    for _, k in pairs(args) do assert.are.equal(1, k) end
    assert_groups(res, { "departement_lieu_formation_cle" }, groups_of(ref, 1, function(r)
      if r.dep == nil or r.dep:find("^Haute") then return nil end
      return r.dep:match("^[%z\1-\127\194-\244][\128-\191]*")
    end))
    assert.is_nil(res[#res].departement_lieu_formation_cle)
    -- renamed with :as
    local renamed = ds:group_by(cpf.key("modalite_presence", function(v) return #v end):as("longueur"))
      :run { n = cpf.count() }
    assert.are.same({ "longueur", "n" }, renamed:columns())
    assert.is_number(renamed[1].longueur)
  end)

  it("groups by an integer column: the keys are numbers", function()
    local res = run_groups "nb_dossiers"
    assert_groups(res, { "nb_dossiers" }, groups_of(ref, 1, function(r) return r.nb end))
    for i = 1, #res do assert.is_true(is_integer(res[i].nb_dossiers)) end
  end)

  it("groups by a decimal column: the keys are numbers in euros", function()
    local res = run_groups "montant_engage"
    assert_groups(res, { "montant_engage" }, groups_of(ref, 1, function(r) return r.cents / 100 end))
    assert.is_true(#res > 1000)
    res = run_groups "prix_moyen"
    assert_groups(res, { "prix_moyen" }, groups_of(ref, 1, function(r) return r.prix / 100 end))
  end)

  it("groups by a number column with missing values", function()
    assert_groups(run_groups "duree_moyenne", { "duree_moyenne" },
      groups_of(ref, 1, function(r) return r.duree end))
  end)

  it("groups by keys whose combinations are too many to address directly", function()
    -- ~100 departments × ~20 k amounts > 2^20 combinations: the hashed path
    local res = run_groups("departement_lieu_formation", "montant_engage")
    assert_groups(res, { "departement_lieu_formation", "montant_engage" },
      groups_of(ref, 2, function(r) return r.dep, r.cents / 100 end))
    res = run_groups("code_rncp", "mois", "statut_dossier")
    assert_groups(res, { "code_rncp", "mois", "statut_dossier" },
      groups_of(ref, 3, function(r) return r.rncp, r.month, r.status end))
  end)

  it("groups the selected rows only", function()
    local res = ds:where { nb_dossiers = cpf.ge(5) }:group_by("annee", "famille"):agg(COUNTS):run()
    local rank = {}
    for i, f in ipairs(FAMILY_ORDER) do rank[f] = i end
    assert_groups(res, { "annee", "famille" }, groups_of(select_rows(function(r) return r.nb >= 5 end), 2,
      function(r) return r.year, FAMILY[r.status] end, { nil, rank }))
    -- no row selected: no group
    assert.are.equal(0, #ds:where { region_lieu_formation = "Atlantide" }:group_by("annee"):run { n = cpf.count() })
  end)
end)

-- ---------------------------------------------------------------- aggregates

describe("query aggregates", function()
  local regions -- reference groups by region
  setup(function()
    regions = groups_of(ref, 1, function(r) return r.region end)
  end)

  local function by_region(spec)
    local res = ds:group_by("region_lieu_formation"):agg(spec):run()
    assert.are.equal(#regions, #res)
    for i, g in ipairs(regions) do assert.are.equal(g.keys[1], res[i].region_lieu_formation) end
    return res
  end

  it("counts rows and present values", function()
    local res = by_region { lignes = cpf.count(), durees = cpf.count "duree_moyenne",
                            libelles = cpf.count "libelle_formacode_principal" }
    for i, g in ipairs(regions) do
      local durees, libelles = 0, 0
      for _, r in ipairs(g.rows) do
        if r.duree then durees = durees + 1 end
        if r.libelle then libelles = libelles + 1 end
      end
      assert.are.equal(g.n, res[i].lignes)
      assert.are.equal(durees, res[i].durees)
      assert.are.equal(libelles, res[i].libelles)
      assert.is_true(is_integer(res[i].lignes))
    end
  end)

  it("sums integers as integers and money to the cent", function()
    local res = by_region { d = cpf.sum "nb_dossiers", m = cpf.sum "montant_engage", p = cpf.sum "prix_moyen",
                            k = cpf.sum "nb_dossiers_a_duree_connue" }
    for i, g in ipairs(regions) do
      local p, k = 0, 0
      for _, r in ipairs(g.rows) do p, k = p + r.prix, k + r.nknown end
      assert.are.equal(g.d, res[i].d)
      assert.is_true(is_integer(res[i].d), "Σ nb_dossiers is not an integer")
      assert.is_true(is_integer(res[i].k))
      assert.are.equal(k, res[i].k)
      assert.are.equal(g.m, cents(res[i].m))
      assert.are.equal(p, cents(res[i].p))
    end
    local total = ds:run { d = cpf.sum "nb_dossiers", m = cpf.sum "montant_engage" }
    local d, m = 0, 0
    for _, r in ipairs(ref) do d, m = d + r.nb, m + r.cents end
    assert.are.equal(d, total[1].d)
    assert.are.equal(m, cents(total[1].m))
    if math.type then assert.are.equal("integer", math.type(total[1].d)) end
  end)

  it("sums a number column, skipping missing values", function()
    local res = by_region { s = cpf.sum "duree_moyenne" }
    for i, g in ipairs(regions) do
      local s, any = 0, false
      for _, r in ipairs(g.rows) do if r.duree then s, any = s + r.duree, true end end
      close(any and s or nil, res[i].s, "Σ duree")
    end
  end)

  it("takes means, skipping missing values", function()
    local res = by_region { a = cpf.mean "duree_moyenne", b = cpf.mean "montant_engage", c = cpf.mean "nb_dossiers" }
    for i, g in ipairs(regions) do
      local s, n = 0, 0
      for _, r in ipairs(g.rows) do if r.duree then s, n = s + r.duree, n + 1 end end
      close(s / n, res[i].a, "mean duree")
      close(g.m / 100 / g.n, res[i].b, "mean montant")
      close(g.d / g.n, res[i].c, "mean nb_dossiers")
    end
  end)

  it("takes minima and maxima, months as YYYY-MM", function()
    local res = by_region { nb_min = cpf.min "nb_dossiers", nb_max = cpf.max "nb_dossiers",
                            m_min = cpf.min "montant_engage", m_max = cpf.max "montant_engage",
                            d_min = cpf.min "duree_moyenne", d_max = cpf.max "duree_moyenne",
                            mo_min = cpf.min "date validation", mo_max = cpf.max "date_validation" }
    for i, g in ipairs(regions) do
      local e = {}
      for _, r in ipairs(g.rows) do
        local function lo(k, v) if v ~= nil and (e[k] == nil or v < e[k]) then e[k] = v end end
        local function hi(k, v) if v ~= nil and (e[k] == nil or v > e[k]) then e[k] = v end end
        lo("nb_min", r.nb); hi("nb_max", r.nb); lo("m_min", r.cents); hi("m_max", r.cents)
        lo("d_min", r.duree); hi("d_max", r.duree); lo("mo_min", r.month); hi("mo_max", r.month)
      end
      local row = res[i]
      assert.are.equal(e.nb_min, row.nb_min)
      assert.are.equal(e.nb_max, row.nb_max)
      assert.is_true(is_integer(row.nb_max))
      assert.are.equal(e.m_min, cents(row.m_min))
      assert.are.equal(e.m_max, cents(row.m_max))
      assert.are.equal(e.d_min, row.d_min)
      assert.are.equal(e.d_max, row.d_max)
      assert.are.equal(e.mo_min, row.mo_min)
      assert.are.equal(e.mo_max, row.mo_max)
      assert.is_string(row.mo_max)
    end
  end)

  it("takes ratios of sums over the rows where both values are present", function()
    local res = by_region { prix = cpf.ratio("montant_engage", "nb_dossiers"),
                            h = cpf.ratio("duree_moyenne", "nb_dossiers"),
                            k = cpf.ratio("nb_dossiers_a_duree_connue", "nb_dossiers") }
    for i, g in ipairs(regions) do
      local a, b, k = 0, 0, 0
      for _, r in ipairs(g.rows) do
        if r.duree then a, b = a + r.duree, b + r.nb end
        k = k + r.nknown
      end
      close(g.m / 100 / g.d, res[i].prix, "prix")
      close(a / b, res[i].h, "Σ duree / Σ nb_dossiers")
      close(k / g.d, res[i].k, "Σ connus / Σ nb_dossiers")
    end
  end)

  it("takes weighted means, skipping missing values", function()
    local res = by_region { duree = cpf.wmean("duree_moyenne", "nb_dossiers_a_duree_connue"),
                            plain = cpf.wmean("duree_moyenne", "nb_dossiers") }
    for i, g in ipairs(regions) do
      local s, w, s2, w2 = 0, 0, 0, 0
      for _, r in ipairs(g.rows) do
        if r.duree then
          s, w = s + r.duree * r.nknown, w + r.nknown
          s2, w2 = s2 + r.duree * r.nb, w2 + r.nb
        end
      end
      close(s / w, res[i].duree, "wmean by known files")
      close(s2 / w2, res[i].plain, "wmean by files")
    end
  end)

  it("counts distinct values, missing ones not counted", function()
    local res = ds:group_by("statut_dossier"):agg { rncp = cpf.distinct "code_rncp",
      regions = cpf.distinct "region_lieu_formation", nb = cpf.distinct "nb_dossiers",
      durees = cpf.distinct "duree_moyenne", montants = cpf.distinct "montant_engage",
      mois = cpf.distinct "date validation" }:run()
    local list = groups_of(ref, 1, function(r) return r.status end)
    assert.are.equal(#list, #res)
    for i, g in ipairs(list) do
      local sets = { rncp = {}, regions = {}, nb = {}, durees = {}, montants = {}, mois = {} }
      for _, r in ipairs(g.rows) do
        sets.rncp[r.rncp] = true
        if r.region then sets.regions[r.region] = true end
        sets.nb[r.nb] = true
        if r.duree then sets.durees[r.duree] = true end
        sets.montants[r.cents] = true
        sets.mois[r.month] = true
      end
      for name, set in pairs(sets) do
        assert.are.equal(count_keys(set), res[i][name], name .. " in " .. g.keys[1])
      end
      assert.are.equal(18, res[i].regions)
    end
  end)

  it("gives shares of a total that sum to 1", function()
    local res = by_region { part = cpf.share(cpf.sum "montant_engage"), part_d = cpf.share "nb_dossiers" }
    local total_m, total_d = 0, 0
    for _, g in ipairs(regions) do total_m, total_d = total_m + g.m, total_d + g.d end
    local sum = 0
    for i, g in ipairs(regions) do
      close(g.m / total_m, res[i].part, "share of montant")
      close(g.d / total_d, res[i].part_d, "share of dossiers")
      sum = sum + res[i].part
    end
    close(1, sum, "Σ shares")
  end)

  it("keeps shares relative to all groups when the result is limited", function()
    local res = ds:group_by("region_lieu_formation"):agg { part = cpf.share "montant_engage" }
      :order_by("-part"):limit(3):run()
    local total, best = 0, 0
    for _, g in ipairs(regions) do
      total = total + g.m
      if g.m > best then best = g.m end
    end
    assert.are.equal(3, #res)
    close(best / total, res[1].part, "largest share")
    assert.is_true(res[1].part + res[2].part + res[3].part < 1)
  end)

  it("does not give the median or mean of a month column as a bare month count", function()
    for _, a in ipairs { cpf.median "date validation", cpf.mean "date validation" } do
      local ok, res = pcall(function() return ds:run { x = a } end)
      if ok then
        local v = res[1].x
        assert.is_string(v, ("got %s %s, not a month"):format(type(v), tostring(v)))
        assert.is_truthy(v:match("^%d%d%d%d%-%d%d$"))
      end
    end
  end)

  it("takes medians and quantiles by linear interpolation (type 7)", function()
    local res = by_region { med = cpf.median "duree_moyenne", q25 = cpf.quantile("duree_moyenne", 0.25),
                            q90 = cpf.quantile("duree_moyenne", 0.9), mmed = cpf.median "montant_engage",
                            m90 = cpf.quantile("montant_engage", 0.9), nmed = cpf.median "nb_dossiers",
                            q0 = cpf.quantile("nb_dossiers", 0), q1 = cpf.quantile("nb_dossiers", 1) }
    for i, g in ipairs(regions) do
      local d, m, nb = {}, {}, {}
      for _, r in ipairs(g.rows) do
        if r.duree then d[#d + 1] = r.duree end
        m[#m + 1] = r.cents / 100
        nb[#nb + 1] = r.nb
      end
      d, m, nb = sorted(d), sorted(m), sorted(nb)
      close(quantile7(d, 0.5), res[i].med, "median duree")
      close(quantile7(d, 0.25), res[i].q25, "q25 duree")
      close(quantile7(d, 0.9), res[i].q90, "q90 duree")
      close(quantile7(m, 0.5), res[i].mmed, "median montant")
      close(quantile7(m, 0.9), res[i].m90, "q90 montant")
      close(quantile7(nb, 0.5), res[i].nmed, "median nb_dossiers")
      assert.are.equal(nb[1], res[i].q0)
      assert.are.equal(nb[#nb], res[i].q1)
    end
  end)

  it("runs a custom reducer (the slow path) that matches sum", function()
    local res = ds:where { nb_dossiers = cpf.ge(2) }:group_by("region_lieu_formation"):agg {
      s = cpf.sum "nb_dossiers",
      r = cpf.reduce { column = "nb_dossiers", init = function() return 0 end,
                       step = function(acc, v) return acc + v end },
      rm = cpf.reduce { column = "montant_engage", init = function() return 0 end,
                        step = function(acc, v) return acc + cents(v) end,
                        final = function(acc) return acc / 100 end },
    }:run()
    local list = groups_of(select_rows(function(r) return r.nb >= 2 end), 1, function(r) return r.region end)
    assert.are.equal(#list, #res)
    for i, g in ipairs(list) do
      assert.are.equal(g.d, res[i].r)
      assert.are.equal(res[i].s, res[i].r)
      assert.are.equal(g.m, cents(res[i].rm))
    end
  end)

  it("counts an aggregate over the rows a filter keeps", function()
    local res = by_region {
      rejets = cpf.filtered(cpf.sum "nb_dossiers", { statut_dossier = "Rejeté" }),
      lignes_rejet = cpf.filtered(cpf.count(), { statut_dossier = "Rejeté" }),
      gros = cpf.filtered(cpf.sum "montant_engage", { montant_engage = cpf.gt(1000), annee = 2024 }),
      duree_2023 = cpf.filtered(cpf.wmean("duree_moyenne", "nb_dossiers_a_duree_connue"), { annee = 2023 }),
    }
    for i, g in ipairs(regions) do
      local rej, nrej, big, any_big, s, w = 0, 0, 0, false, 0, 0
      for _, r in ipairs(g.rows) do
        if r.status == "Rejeté" then rej, nrej = rej + r.nb, nrej + 1 end
        if r.cents > 100000 and r.year == 2024 then big, any_big = big + r.cents, true end
        if r.year == 2023 and r.duree then s, w = s + r.duree * r.nknown, w + r.nknown end
      end
      assert.are.equal(nrej, res[i].lignes_rejet)
      assert.are.equal(nrej > 0 and rej or nil, res[i].rejets)
      assert.are.equal(any_big and big or nil, cents(res[i].gros))
      close(w > 0 and s / w or nil, res[i].duree_2023, "filtered wmean")
    end
  end)

  it("combines aggregates with a Lua function called once per group", function()
    local calls = 0
    local res = by_region {
      par_ligne = cpf.combine({ cpf.sum "montant_engage", cpf.count() }, function(m, n)
        calls = calls + 1
        return m / n
      end),
    }
    assert.are.equal(#regions, calls)
    for i, g in ipairs(regions) do close(g.m / 100 / g.n, res[i].par_ligne, "combine") end
  end)
end)

-- ---------------------------------------------------------------- query objects

describe("query objects", function()
  it("are immutable: each call returns a new query", function()
    local q1 = ds:where { region_lieu_formation = "Bretagne" }
    local q2 = q1:where { statut_dossier = "Validé" }
    local q3 = q1:group_by("annee")
    local q4 = q1:agg { x = cpf.count() }
    local q5 = q1:order_by("n"):limit(1)
    assert.are_not.equal(q1, q2)
    local bretagne = check(q1, function(r) return r.region == "Bretagne" end)
    check(q2, function(r) return r.region == "Bretagne" and r.status == "Validé" end)
    assert.are.equal(bretagne, check(q1, function(r) return r.region == "Bretagne" end))
    assert.are.same({ "annee", "n" }, q3:run { n = cpf.count() }:columns())
    assert.are.same({ "x" }, q4:run():columns())
    assert.are.equal(1, #q5:group_by("annee"):run { n = cpf.count() })
    -- q1 kept no key, aggregate, order or limit
    local res = q1:run { n = cpf.count() }
    assert.are.same({ "n" }, res:columns())
    assert.are.equal(bretagne, res[1].n)
    -- an aggregate added to q4 does not change q4
    q4:agg { y = cpf.count() }
    assert.are.same({ "x" }, q4:run():columns())
  end)

  it("can be run again with the same result", function()
    local q = ds:where { nb_dossiers = cpf.gt(2) }:group_by("famille", "annee")
      :agg { d = cpf.sum "nb_dossiers", p = cpf.ratio("montant_engage", "nb_dossiers"), m = cpf.median "duree_moyenne" }
    local a, b = q:run(), q:run()
    assert.are.equal(#a, #b)
    assert.are.same(a:columns(), b:columns())
    for i = 1, #a do assert.are.same(a[i], b[i]) end
  end)

  it("prints its plan", function()
    local q = ds:where { region_lieu_formation = "Bretagne", montant_engage = cpf.between(100, 5000) }
      :where(cpf.year "date validation", 2023)
      :group_by("departement_lieu_formation", cpf.year "date validation")
      :agg { dossiers = cpf.sum "nb_dossiers", prix = cpf.ratio("montant_engage", "nb_dossiers") }
      :order_by("-dossiers", "departement_lieu_formation"):limit(20)
    assert.are.equal(table.concat({
      "cpf query",
      "  where montant_engage = [100, 5000]",
      "  where region_lieu_formation = \"Bretagne\"",
      "  where year(date validation) = 2023",
      "  group by departement_lieu_formation, year(date validation)",
      "  dossiers = sum(nb_dossiers)",
      "  prix = ratio(montant_engage, nb_dossiers)",
      "  order by -dossiers, departement_lieu_formation",
      "  limit 20",
    }, "\n"), tostring(q))
    local lines = {}
    for line in tostring(ds:where { statut_dossier = cpf.family "cancelled", nb_dossiers = cpf.gt(3) }
      :where(function() return true end)
      :agg { { "q", cpf.quantile("duree_moyenne", 0.9) }, { "t", "taux_annulation" } }):gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    assert.are.same({
      "cpf query",
      "  where nb_dossiers = (3, +inf]",
      "  where statut_dossier = family cancelled",
      "  where row function (slow path)",
      "  q = quantile(duree_moyenne, 0.9)",
      "  t = combine(...)",
    }, lines)
  end)

  it("orders and limits the result", function()
    local res = ds:group_by("region_lieu_formation"):agg { montant = cpf.sum "montant_engage", n = cpf.count() }
      :order_by("-montant", "region_lieu_formation"):limit(5):run()
    local list = groups_of(ref, 1, function(r) return r.region end)
    table.sort(list, function(a, b)
      if a.m ~= b.m then return a.m > b.m end
      return before(a.keys[1], b.keys[1])
    end)
    assert.are.equal(5, #res)
    for i = 1, 5 do
      assert.are.equal(list[i].keys[1], res[i].region_lieu_formation)
      assert.are.equal(list[i].m, cents(res[i].montant))
    end
    -- ascending by count then name; limit(0) keeps nothing; a limit over the size keeps all
    res = ds:group_by("statut_dossier"):order_by("n", "statut_dossier"):run { n = cpf.count() }
    for i = 2, #res do assert.is_true(res[i - 1].n <= res[i].n) end
    assert.are.equal(0, #ds:group_by("statut_dossier"):limit(0):run { n = cpf.count() })
    assert.are.equal(9, #ds:group_by("statut_dossier"):limit(100):run { n = cpf.count() })
  end)

  it("keeps the order of {name, aggregate} pairs and sorts named aggregates", function()
    local res = ds:group_by("annee")
                  :agg { { "z", cpf.count() }, { "a", cpf.sum "nb_dossiers" }, { "m", "montant" } }:run()
    assert.are.same({ "annee", "z", "a", "m" }, res:columns())
    res = ds:group_by("annee"):agg { z = cpf.count(), a = cpf.sum "nb_dossiers", m = "montant" }:run()
    assert.are.same({ "annee", "a", "m", "z" }, res:columns())
    res = ds:agg { "montant", { "x", cpf.count() }, b = cpf.count() }:agg { "dossiers" }:run()
    assert.are.same({ "montant", "x", "b", "dossiers" }, res:columns())
  end)

  it("gives one row without grouping", function()
    local d, m = 0, 0
    for _, r in ipairs(ref) do d, m = d + r.nb, m + r.cents end
    for _, res in ipairs {
      ds:run { d = cpf.sum "nb_dossiers", m = cpf.sum "montant_engage" },
      ds:query():run { d = cpf.sum "nb_dossiers", m = cpf.sum "montant_engage" },
      ds:agg { d = cpf.sum "nb_dossiers", m = cpf.sum "montant_engage" }:run(),
    } do
      assert.are.equal(1, #res)
      assert.are.same({ "d", "m" }, res:columns())
      assert.are.equal(d, res[1].d)
      assert.are.equal(m, cents(res[1].m))
    end
    -- an empty selection still gives its one row: counts 0, other aggregates nil
    local res = ds:where { region_lieu_formation = "Atlantide" }:run {
      n = cpf.count(), d = cpf.sum "nb_dossiers", k = cpf.distinct "code_rncp", x = cpf.max "nb_dossiers",
      p = cpf.ratio("montant_engage", "nb_dossiers"), q = cpf.median "duree_moyenne" }
    assert.are.equal(1, #res)
    assert.are.equal(0, res[1].n)
    assert.are.equal(0, res[1].k)
    assert.is_nil(res[1].d)
    assert.is_nil(res[1].x)
    assert.is_nil(res[1].p)
    assert.is_nil(res[1].q)
  end)

  it("returns a result with rows, columns and get", function()
    local res = ds:group_by("annee"):run { n = cpf.count() }
    local years = groups_of(ref, 1, function(r) return r.year end)
    assert.are.equal(#years, #res)
    local cols = res:columns()
    assert.are.same({ "annee", "n" }, cols)
    cols[1] = "changed"
    assert.are.same({ "annee", "n" }, res:columns())
    local seen = 0
    for i, row in res:rows() do
      seen = seen + 1
      assert.are.equal(years[i].keys[1], row.annee)
      assert.are.equal(years[i].n, res:get(i, "n"))
      assert.are.equal(row.n, res:get(i, "n"))
    end
    assert.are.equal(#years, seen)
    assert.are.equal(("row 0 is out of range (the result has %d rows)"):format(#res),
      error_of(function() return res:get(0, "n") end))
    assert.are.equal(("row %d is out of range (the result has %d rows)"):format(#res + 1, #res),
      error_of(function() return res:get(#res + 1, "n") end))
    assert.are.equal("unknown column 'nope'", error_of(function() return res:get(1, "nope") end))
    assert.are.equal("bad argument #1 to 'get' (row number expected, got string)",
      error_of(function() return res:get("1", "n") end))
  end)
end)

-- ---------------------------------------------------------------- errors

describe("query errors", function()
  local NOT_ADDITIVE = "nb_titulaires is not additive across rows: one holder can appear in several "
    .. "rows (several statuses, months or places), so its sum over-counts people; report it per row "
    .. "or use cpf.max \"nb_titulaires\" if you know what it means"

  local function run_error(q, spec)
    return error_of(function() local r = q:run(spec) return r end)
  end

  it("names an unknown column", function()
    assert.are.equal("where: unknown column 'nope'", run_error(ds:where { nope = 1 }, { n = cpf.count() }))
    assert.are.equal("where: unknown column 'nope'", run_error(ds:where("nope", cpf.gt(1)), { n = cpf.count() }))
    assert.are.equal("group_by: unknown column 'nope'", run_error(ds:group_by "nope", { n = cpf.count() }))
    assert.are.equal("group_by: unknown column 'nope'", run_error(ds:group_by(cpf.year "nope"), { n = cpf.count() }))
    assert.are.equal("aggregate n: unknown column 'nope'", run_error(ds:query(), { n = cpf.sum "nope" }))
    assert.are.equal("aggregate w: unknown column 'nope'",
      run_error(ds:query(), { w = cpf.wmean("duree_moyenne", "nope") }))
  end)

  it("refuses an aggregate on a string column", function()
    assert.are.equal("aggregate n: sum needs a numeric column, 'statut_dossier' is a string column",
      run_error(ds:query(), { n = cpf.sum "statut_dossier" }))
    assert.are.equal("aggregate m: mean needs a numeric column, 'code_rncp' is a string column",
      run_error(ds:query(), { m = cpf.mean "code_rncp" }))
    assert.are.equal("aggregate r: ratio needs a numeric column, 'statut_dossier' is a string column",
      run_error(ds:query(), { r = cpf.ratio("montant_engage", "statut_dossier") }))
    assert.are.equal("aggregate q: quantile needs a numeric column, 'region_lieu_formation' is a string column",
      run_error(ds:query(), { q = cpf.median "region_lieu_formation" }))
  end)

  it("refuses a condition value of the wrong type", function()
    assert.are.equal("where nb_dossiers: 'nb_dossiers' is an integer column, expected a number, got string \"10\"",
      run_error(ds:where { nb_dossiers = "10" }, { n = cpf.count() }))
    assert.are.equal("where montant_engage: 'montant_engage' is a decimal column, expected a number, "
      .. "got string \"100\"",
      run_error(ds:where { montant_engage = cpf.gt "100" }, { n = cpf.count() }))
    assert.are.equal("where duree_moyenne: 'duree_moyenne' is a number column, expected a number, got boolean true",
      run_error(ds:where { duree_moyenne = true }, { n = cpf.count() }))
    assert.are.equal("where region_lieu_formation: cannot compare string values with number 5",
      run_error(ds:where { region_lieu_formation = cpf.gt(5) }, { n = cpf.count() }))
    local expected = "where date_validation: expected a year, \"YYYY-Tn\", \"YYYY-Sn\", \"YYYY-MM\" or \"YYYY-MM-DD\" "
      .. "for month column 'date_validation', got "
    assert.are.equal(expected .. "\"2023-13\"",
      run_error(ds:where { date_validation = "2023-13" }, { n = cpf.count() }))
    assert.are.equal(expected .. "2023.5",
      run_error(ds:where { ["date validation"] = 2023.5 }, { n = cpf.count() }))
    assert.are.equal("where date_validation: 'date_validation' holds months; "
      .. "\"2023-01-15\" is not the first day of a month",
      run_error(ds:where { date_validation = "2023-01-15" }, { n = cpf.count() }))
  end)

  it("refuses a number compared with a string column by equality", function()
    -- a plain value of the wrong type is as wrong as a bound of the wrong type
    local ok, err = pcall(function() return ds:where { region_lieu_formation = 5 }:run { n = cpf.count() } end)
    assert.is_false(ok, "{region_lieu_formation = 5} ran without an error")
    assert.is_truthy(tostring(err):find("region_lieu_formation", 1, true))
    ok = pcall(function() return ds:where { statut_dossier = { "Validé", 3 } }:run { n = cpf.count() } end)
    assert.is_false(ok, "{statut_dossier = {\"Validé\", 3}} ran without an error")
    ok = pcall(function() return ds:where { annee = "2023" }:run { n = cpf.count() } end)
    assert.is_false(ok, "{annee = \"2023\"} ran without an error")
  end)

  it("refuses prefix and match on a numeric column", function()
    assert.are.equal("where nb_dossiers: prefix needs a string column, 'nb_dossiers' is integer",
      run_error(ds:where { nb_dossiers = cpf.prefix "1" }, { n = cpf.count() }))
    assert.are.equal("where montant_engage: match needs a string column, 'montant_engage' is decimal",
      run_error(ds:where { montant_engage = cpf.match "^1" }, { n = cpf.count() }))
  end)

  it("refuses to sum nb_titulaires, with the explanation", function()
    assert.are.equal(NOT_ADDITIVE, run_error(ds:query(), { t = cpf.sum "nb_titulaires" }))
    assert.are.equal(NOT_ADDITIVE, run_error(ds:group_by("annee"), { s = cpf.sum "nb_titulaires" }))
    -- the maximum is allowed
    assert.is_number(ds:run { m = cpf.max "nb_titulaires" }[1].m)
  end)

  it("refuses the measures titulaires and nb_titulaires, with the explanation", function()
    assert.are.equal(NOT_ADDITIVE,
      error_of(function() local q = ds:group_by("annee"):agg { "titulaires" } return q end))
    assert.are.equal(NOT_ADDITIVE,
      error_of(function() local q = ds:query():agg { { "t", "nb_titulaires" } } return q end))
    assert.are.equal(NOT_ADDITIVE, error_of(function() local r = ds:run { "titulaires" } return r end))
    assert.are.equal(NOT_ADDITIVE, error_of(function() local r = ds:agg { t = "nb_titulaires" } return r end))
    assert.are.equal("unknown measure 'nope'", error_of(function() local r = ds:run { "nope" } return r end))
  end)

  it("raises the measure errors without a position that blames another line", function()
    -- built in a helper: the message must not carry the position of the helper's caller
    local function build(spec)
      local q = ds:query():agg(spec)
      return q
    end
    local ok, err = pcall(function()
      local q = build { "titulaires" }
      return q
    end)
    assert.is_false(ok)
    assert.are.equal(NOT_ADDITIVE, err)
    ok, err = pcall(function()
      local q = build { "nope" }
      return q
    end)
    assert.is_false(ok)
    assert.are.equal("unknown measure 'nope'", err)
  end)

  it("refuses a duplicate result column", function()
    assert.are.equal("duplicate result column 'annee'", run_error(ds:group_by("annee"), { annee = cpf.count() }))
    assert.are.equal("duplicate result column 'annee'",
      run_error(ds:group_by("annee", cpf.year "date validation"), { n = cpf.count() }))
    assert.are.equal("duplicate result column 'n'",
      run_error(ds:query():agg { n = cpf.count() }, { n = cpf.sum "nb_dossiers" }))
  end)

  it("refuses a negative or fractional limit", function()
    assert.are.equal("bad argument #1 to 'limit' (whole number expected)",
      error_of(function() local q = ds:query():limit(-1) return q end))
    assert.are.equal("bad argument #1 to 'limit' (whole number expected)",
      error_of(function() local q = ds:query():limit(1.5) return q end))
  end)

  it("refuses bucket bounds that do not increase, and buckets of strings", function()
    assert.are.equal("bucket: bounds must increase",
      error_of(function() local k = cpf.bucket("nb_dossiers", { 0, 0 }) return k end))
    assert.are.equal("bucket: bounds must increase",
      error_of(function() local k = cpf.bucket("nb_dossiers", { 5, 1 }) return k end))
    assert.are.equal("bucket: 'statut_dossier' is a string column",
      run_error(ds:group_by(cpf.bucket("statut_dossier", { 1 })), { n = cpf.count() }))
  end)

  it("names a month key on a column that is not a month, without a library position", function()
    assert.are.equal("year() needs a month or date column, 'nb_dossiers' is integer",
      run_error(ds:group_by(cpf.year "nb_dossiers"), { n = cpf.count() }))
  end)

  it("names an unknown order_by column, without a library position", function()
    assert.are.equal("order_by: unknown column 'nope'",
      run_error(ds:group_by("annee"):order_by("nope"), { n = cpf.count() }))
  end)

  it("refuses bad arguments to the constructors", function()
    assert.are.equal("bad argument #2 to 'quantile' (number in [0, 1] expected)",
      error_of(function() local a = cpf.quantile("nb_dossiers", 1.5) return a end))
    assert.are.equal("bad arguments to 'where' ({column = value}, (column, value) or a row function expected)",
      error_of(function() local q = ds:query():where() return q end))
  end)
end)

-- ---------------------------------------------------------------- a hand-computed fixture

describe("queries on a 7-row hand-computed fixture", function()
  local small
  setup(function() small = assert(cpf.load(h.fixture "q_small.csv")) end)
  teardown(function() if small then small:close() end end)

  -- Exact columns, row count and cells: integers as integers (5.3+), floats to 1e-12.
  local function assert_result(columns, expected, res)
    assert.are.same(columns, res:columns())
    assert.are.equal(#expected, #res)
    for i, e in ipairs(expected) do
      for _, name in ipairs(columns) do
        local want, got = e[name], res[i][name]
        local what = ("row %d, %s"):format(i, name)
        if want == nil or type(want) == "string" then
          assert.are.equal(want, got, what)
        else
          assert.is_number(got, what)
          if math.type then assert.are.equal(math.type(want), math.type(got), what) end
          if math.abs(want - got) > 1e-12 * math.max(1, math.abs(want)) then
            error(("%s: expected %.17g, got %.17g"):format(what, want, got))
          end
        end
      end
      for name in pairs(res[i]) do
        local known = false
        for _, c in ipairs(columns) do known = known or c == name end
        assert.is_true(known, "unexpected field " .. tostring(name))
      end
    end
  end

  it("groups by region with every kind of aggregate", function()
    local res = small:group_by("region_lieu_formation"):agg {
      { "lignes", cpf.count() }, { "dossiers", cpf.sum "nb_dossiers" }, { "montant", cpf.sum "montant_engage" },
      { "prix", cpf.ratio("montant_engage", "nb_dossiers") },
      { "duree", cpf.wmean("duree_moyenne", "nb_dossiers_a_duree_connue") },
      { "durees", cpf.count "duree_moyenne" }, { "duree_min", cpf.min "duree_moyenne" },
      { "mois_max", cpf.max "date validation" }, { "statuts", cpf.distinct "statut_dossier" },
      { "part", cpf.share "montant_engage" },
    }:run()
    assert_result({ "region_lieu_formation", "lignes", "dossiers", "montant", "prix", "duree", "durees",
                    "duree_min", "mois_max", "statuts", "part" }, {
      { region_lieu_formation = "Bretagne", lignes = 3, dossiers = 4, montant = 400.49, prix = 400.49 / 4,
        duree = 32 / 3, durees = 2, duree_min = 10.0, mois_max = "2023-02", statuts = 3, part = 400.49 / 3850.65 },
      { region_lieu_formation = "Corse", lignes = 3, dossiers = 12, montant = 3000.06, prix = 3000.06 / 12,
        duree = 18.0, durees = 3, duree_min = 8.0, mois_max = "2024-06", statuts = 3, part = 3000.06 / 3850.65 },
      { region_lieu_formation = nil, lignes = 1, dossiers = 3, montant = 450.10, prix = 450.10 / 3,
        duree = nil, durees = 0, duree_min = nil, mois_max = "2023-01", statuts = 1, part = 450.10 / 3850.65 },
    }, res)
  end)

  it("gives nil, not inf or NaN, for a ratio by a zero sum", function()
    local res = small:group_by("statut_dossier"):agg {
      { "r", cpf.ratio("montant_engage", "nb_dossiers_a_duree_connue") },
      { "w", cpf.wmean("duree_moyenne", "nb_dossiers_a_duree_connue") },
    }:run()
    assert_result({ "statut_dossier", "r", "w" }, {
      { statut_dossier = "Clos - Non Réalisé annulé OF", r = 99.99, w = 12.0 },
      { statut_dossier = "Clos - Réalisation Totale", r = 1000.05 / 4, w = 20.5 },
      { statut_dossier = "Dossier annulé gestionnaire", r = 2000.0, w = 8.0 },
      { statut_dossier = "Entrée en formation", r = 450.10 / 3, w = nil },
      { statut_dossier = "Rejeté", r = nil, w = nil },
      { statut_dossier = "Validé", r = 300.51 / 2, w = 10.0 },
    }, res)
  end)

  it("groups by year and by family", function()
    assert_result({ "annee", "lignes", "dossiers", "montant" }, {
      { annee = 2022, lignes = 2, dossiers = 6, montant = 1100.04 },
      { annee = 2023, lignes = 3, dossiers = 6, montant = 750.60 },
      { annee = 2024, lignes = 2, dossiers = 7, montant = 2000.01 },
    }, small:group_by("annee")
         :agg { { "lignes", cpf.count() }, { "dossiers", "dossiers" }, { "montant", "montant" } }:run())
    assert_result({ "famille", "dossiers", "taux" }, {
      { famille = "validated", dossiers = 5, taux = 0.0 },
      { famille = "in_training", dossiers = 3, taux = 0.0 },
      { famille = "completed", dossiers = 5, taux = 0.0 },
      { famille = "cancelled", dossiers = 6, taux = 1.0 },
    }, small:group_by("famille"):agg { { "dossiers", "dossiers" }, { "taux", "taux_annulation" } }:run())
  end)

  it("aggregates the whole file in one row", function()
    assert_result({ "lignes", "dossiers", "montant", "prix", "duree", "ratio", "moyenne", "mediane", "q25", "q90",
                    "min", "max", "premier", "dernier", "regions", "avec_region", "taux" }, {
      { lignes = 7, dossiers = 19, montant = 3850.65, prix = 3850.65 / 19, duree = 122 / 8, ratio = 80.5 / 15,
        moyenne = 16.1, mediane = 12.0, q25 = 10.0, q90 = 26.2, min = 0.0, max = 2000.0, premier = "2022-12",
        dernier = "2024-06", regions = 2, avec_region = 6, taux = 6 / 19 },
    }, small:agg {
      { "lignes", cpf.count() }, { "dossiers", "dossiers" }, { "montant", "montant" }, { "prix", "prix_moyen" },
      { "duree", "duree_moyenne" }, { "ratio", cpf.ratio("duree_moyenne", "nb_dossiers") },
      { "moyenne", cpf.mean "duree_moyenne" }, { "mediane", cpf.median "duree_moyenne" },
      { "q25", cpf.quantile("duree_moyenne", 0.25) }, { "q90", cpf.quantile("duree_moyenne", 0.9) },
      { "min", cpf.min "montant_engage" }, { "max", cpf.max "montant_engage" },
      { "premier", cpf.min "date validation" }, { "dernier", cpf.max "date validation" },
      { "regions", cpf.distinct "region_lieu_formation" }, { "avec_region", cpf.count "region_lieu_formation" },
      { "taux", "taux_annulation" },
    }:run())
  end)

  it("selects rows at exact boundaries", function()
    local function n(where) return small:where(where):run { n = cpf.count() }[1].n end
    assert.are.equal(3, n { montant_engage = cpf.between(0.01, 300.50) })
    assert.are.equal(6, n { montant_engage = cpf.gt(0) })
    assert.are.equal(1, n { montant_engage = cpf.lt(0.01) })
    assert.are.equal(2, n { montant_engage = cpf.ge(1000.05) })
    assert.are.equal(1, n { montant_engage = cpf.gt(1000.05) })
    assert.are.equal(3, n { duree_moyenne = cpf.le(12) })
    assert.are.equal(4, n { duree_moyenne = cpf.not_(cpf.le(12)) })
    assert.are.equal(1, n { ["date validation"] = "2023-02" })
    assert.are.equal(1, n { region_lieu_formation = cpf.is_null() })
    assert.are.equal(4, n { famille = cpf.any { "cancelled", "in_training" } })
  end)

  it("sorts nil values last in both directions", function()
    local res = small:group_by("region_lieu_formation")
      :agg { duree = cpf.wmean("duree_moyenne", "nb_dossiers_a_duree_connue") }:order_by("-duree"):run()
    assert.are.same({ "Corse", "Bretagne" }, { res[1].region_lieu_formation, res[2].region_lieu_formation })
    assert.is_nil(res[3].duree)
    res = small:group_by("region_lieu_formation")
      :agg { duree = cpf.wmean("duree_moyenne", "nb_dossiers_a_duree_connue") }:order_by("duree"):run()
    assert.are.same({ "Bretagne", "Corse" }, { res[1].region_lieu_formation, res[2].region_lieu_formation })
    assert.is_nil(res[3].duree)
  end)

  it("handles missing and negative integers and amounts", function()
    local ds4 = assert(cpf.load(h.fixture "q_missing_numbers.csv"))
    assert_result({ "nb_dossiers_a_duree_connue", "n", "s", "m" }, {
      { nb_dossiers_a_duree_connue = -2, n = 1, s = 5, m = 7.0 },
      { nb_dossiers_a_duree_connue = 1, n = 2, s = 3, m = 20.5 },
      { nb_dossiers_a_duree_connue = nil, n = 1, s = 2, m = 10.0 },
    }, ds4:group_by("nb_dossiers_a_duree_connue"):agg { { "n", cpf.count() }, { "s", cpf.sum "nb_dossiers" },
                                                    { "m", cpf.sum "montant_engage" } }:run())
    assert_result({ "nb_dossiers_a_duree_connue_tranche", "n" }, {
      { nb_dossiers_a_duree_connue_tranche = "< 0", n = 1 },
      { nb_dossiers_a_duree_connue_tranche = ">= 0", n = 2 },
      { nb_dossiers_a_duree_connue_tranche = nil, n = 1 },
    }, ds4:group_by(cpf.bucket("nb_dossiers_a_duree_connue", { 0 })):run { n = cpf.count() })
    assert_result({ "s", "c", "mean", "r", "mn", "mx", "d", "med" }, {
      { s = 10, c = 3, mean = 10 / 3, r = 3.75, mn = -2, mx = 1, d = 3, med = 3.0 },
    }, ds4:agg { { "s", cpf.sum "nb_dossiers" }, { "c", cpf.count "nb_dossiers" }, { "mean", cpf.mean "nb_dossiers" },
                 { "r", cpf.ratio("montant_engage", "nb_dossiers") }, { "mn", cpf.min "nb_dossiers_a_duree_connue" },
                 { "mx", cpf.max "nb_dossiers_a_duree_connue" }, { "d", cpf.distinct "nb_dossiers" },
                 { "med", cpf.median "nb_dossiers" } }:run())
    local function n(where) return ds4:where(where):run { n = cpf.count() }[1].n end
    assert.are.equal(1, n { nb_dossiers_a_duree_connue = cpf.lt(0) })
    assert.are.equal(1, n { nb_dossiers_a_duree_connue = -2 })
    assert.are.equal(1, n { nb_dossiers_a_duree_connue = cpf.is_null() })
    assert.are.equal(2, n { nb_dossiers_a_duree_connue = cpf.not_(cpf.ge(1)) })
    assert.are.equal(1, n { nb_dossiers_a_duree_connue = function(v) return v < 0 end })
    assert.are.equal(1, n { montant_engage = cpf.is_null() })
    assert.are.equal(2, n { montant_engage = cpf.lt(10.5) })
    ds4:close()
  end)

  it("returns what a reducer's final function returns, nil included; step never sees a missing value", function()
    -- Σ duree over the values present, nil when the group has none; step is never given nil
    local nils = 0
    local res = small:group_by("region_lieu_formation"):agg { s = cpf.reduce {
      column = "duree_moyenne",
      init = function() return { sum = 0, n = 0 } end,
      step = function(acc, v)
        if v == nil then nils = nils + 1 else acc.sum, acc.n = acc.sum + v, acc.n + 1 end
        return acc
      end,
      final = function(acc) if acc.n == 0 then return nil end return acc.sum end,
    }, ref = cpf.sum "duree_moyenne" }:run()
    assert.are.equal(0, nils)
    assert.are.equal("Bretagne", res[1].region_lieu_formation)
    for i = 1, #res do assert.are.equal(res[i].ref, res[i].s, "group " .. i) end
    assert.are.equal(58.5, res[2].s)
    -- init as a plain value, used as it is for every group
    local counted = small:group_by("region_lieu_formation"):agg { c = cpf.reduce {
      column = "duree_moyenne", init = 0, step = function(acc) return acc + 1 end,
    }, ref = cpf.count "duree_moyenne" }:run()
    for i = 1, #counted do assert.are.equal(counted[i].ref, counted[i].c, "group " .. i) end
  end)
end)

describe("keys on a date column", function()
  it("groups days by month and by year", function()
    -- jour: 2023-01-15, 2023-02-28, 2024-02-29
    local days = assert(cpf.load(h.fixture "codes_and_inference.csv"))
    local by_month = days:group_by(cpf.month "jour"):run { "lignes" }
    assert.are.same({ { mois = "2023-01", lignes = 1 }, { mois = "2023-02", lignes = 1 },
                      { mois = "2024-02", lignes = 1 } }, { by_month[1], by_month[2], by_month[3] })
    local by_year = days:group_by(cpf.year "jour"):run { "lignes" }
    assert.are.same({ { annee = 2023, lignes = 2 }, { annee = 2024, lignes = 1 } }, { by_year[1], by_year[2] })
  end)
end)

describe("group ids beyond the directly addressed range", function()
  after_each(h.cleanup)

  it("combines high-cardinality keys through the hashed step, with and without a selection", function()
    local wide_path = h.tmpname(".csv")
    assert(gen.write(wide_path, 30000, { seed = 17 }))
    local wide = assert(cpf.load(wide_path))
    local keys = { "libelle_formacode_principal", "code_rncp", "departement_lieu_formation" }
    for _, status in ipairs { false, "Rejeté" } do
      local q = wide:group_by(keys[1], keys[2], keys[3])
      if status then q = q:where { statut_dossier = status } end
      local res = q:agg { { "lignes", cpf.count() }, { "dossiers", cpf.sum "nb_dossiers" } }:run()
      local expected, groups = {}, 0
      for i = 1, #wide do
        if not status or wide:get(i, "statut_dossier") == status then
          local k = tostring(wide:get(i, keys[1])) .. "\0" .. tostring(wide:get(i, keys[2])) .. "\0"
            .. tostring(wide:get(i, keys[3]))
          local e = expected[k]
          if not e then e = { lignes = 0, dossiers = 0 }; expected[k] = e; groups = groups + 1 end
          e.lignes = e.lignes + 1
          e.dossiers = e.dossiers + wide:get(i, "nb_dossiers")
        end
      end
      assert.are.equal(groups, #res)
      for _, r in ipairs(res) do
        local k = tostring(r[keys[1]]) .. "\0" .. tostring(r[keys[2]]) .. "\0" .. tostring(r[keys[3]])
        assert.are.same(expected[k], { lignes = r.lignes, dossiers = r.dossiers })
      end
    end
  end)

  it("groups by a first key of more than 2^20 distinct values", function()
    local n = 1100000
    local lines = { "x;y" }
    for i = 1, n do lines[i + 1] = (i * 7) .. ";" .. (i % 3) end
    local big = assert(cpf.load(h.write_file(table.concat(lines, "\n") .. "\n")))
    local res = big:group_by("x"):agg { { "s", cpf.sum "y" } }:run()
    assert.are.equal(n, #res)
    assert.are.same({ x = 7, s = 1 }, res[1])
    assert.are.same({ x = 7 * n, s = n % 3 }, res[n])
    local two = big:where { y = 0 }:group_by("x", "y"):run { "lignes" }
    assert.are.equal(math.floor(n / 3), #two)
    assert.are.same({ x = 21, y = 0, lignes = 1 }, two[1])
  end)
end)

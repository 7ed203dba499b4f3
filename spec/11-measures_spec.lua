-- The CPF measures (cpf.measures, ds:funders) against an independent pure-Lua computation over a
-- generated 30 k-row file: files, amounts, average price and duration with the right weights,
-- cancellation rate, and the funder split, exact to the cent.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

local read_csv, cents_of_text = h.read_csv, h.cents_of_text

local function cents(v)
  if v == nil then return nil end
  return math.floor(v * 100 + 0.5)
end

-- The funders and the cancelled statuses, written out here rather than taken from cpf.schema.
local FUNDERS = { "france_competences", "titulaires", "etat", "pole_emploi", "regions", "opco",
                  "entreprises", "cec" }
local CANCELLED = {
  ["Clos - Non Réalisé annulé titulaire"] = true, ["Clos - Non Réalisé annulé OF"] = true,
  ["Dossier annulé gestionnaire"] = true, ["Rejeté"] = true,
}

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
    local r = {
      status = s "statut_dossier", region = s "region_lieu_formation",
      year = tonumber(s("date validation"):sub(1, 4)),
      nb = tonumber(s "nb_dossiers"), nknown = tonumber(s "nb_dossiers_a_duree_connue"),
      duree = s "duree_moyenne" and tonumber(s "duree_moyenne"),
      cents = cents_of_text(s "montant_engage"), prix = cents_of_text(s "prix_moyen"),
      parts = {}, files = {},
    }
    for _, fu in ipairs(FUNDERS) do
      r.parts[fu] = cents_of_text(s("part_" .. fu))
      if fu ~= "france_competences" then r.files[fu] = tonumber(s("nb_dossiers_finances_par_" .. fu)) end
    end
    rows[#rows + 1] = r
  end)
  return rows
end

-- Totals of a list of reference rows.
local function totals(rows)
  local t = { n = #rows, d = 0, m = 0, cancelled = 0, ws = 0, w = 0, prix = 0, dsum = 0, dn = 0,
              parts = {}, files = {} }
  for _, fu in ipairs(FUNDERS) do t.parts[fu], t.files[fu] = 0, 0 end
  for _, r in ipairs(rows) do
    t.d, t.m, t.prix = t.d + r.nb, t.m + r.cents, t.prix + r.prix
    if CANCELLED[r.status] then t.cancelled = t.cancelled + r.nb end
    if r.duree then
      t.ws, t.w = t.ws + r.duree * r.nknown, t.w + r.nknown
      t.dsum, t.dn = t.dsum + r.duree, t.dn + 1
    end
    for _, fu in ipairs(FUNDERS) do
      t.parts[fu] = t.parts[fu] + r.parts[fu]
      if r.files[fu] then t.files[fu] = t.files[fu] + r.files[fu] end
    end
  end
  return t
end

local function by(rows, keyfn)
  local groups, keys = {}, {}
  for _, r in ipairs(rows) do
    local k = keyfn(r)
    if k ~= nil then
      if not groups[k] then groups[k] = {}; keys[#keys + 1] = k end
      local g = groups[k]
      g[#g + 1] = r
    end
  end
  table.sort(keys)
  return keys, groups
end

local function is_integer(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v == math.floor(v)
end

local function close(expected, actual, what)
  if expected == nil or actual == nil then
    assert.are.equal(expected, actual, what)
    return
  end
  if math.abs(expected - actual) > 1e-9 * math.max(1, math.abs(expected)) then
    error(("%s: expected %.17g, got %.17g"):format(what or "value", expected, actual), 2)
  end
end

local path = h.tmpname(".csv")
assert(gen.write(path, 30000, { seed = 11 }))
local ds = assert(cpf.load(path))
local ref = reference(path)
local all = totals(ref)
local years, by_year = by(ref, function(r) return r.year end)

describe("CPF measures on a generated 30 k-row file", function()
  teardown(h.cleanup)

  it("sums files and amounts: dossiers, montant, lignes", function()
    local res = ds:group_by("annee"):agg { "dossiers", "montant", "lignes" }:run()
    assert.are.same({ "annee", "dossiers", "montant", "lignes" }, res:columns())
    assert.are.equal(#years, #res)
    for i, y in ipairs(years) do
      local t = totals(by_year[y])
      assert.are.equal(y, res[i].annee)
      assert.are.equal(t.d, res[i].dossiers)
      assert.is_true(is_integer(res[i].dossiers))
      assert.are.equal(t.m, cents(res[i].montant))
      assert.are.equal(t.n, res[i].lignes)
    end
    local one = ds:run { "dossiers", "montant" }
    assert.are.equal(all.d, one[1].dossiers)
    assert.are.equal(all.m, cents(one[1].montant))
  end)

  it("takes the average price as Σ montant / Σ dossiers, not the mean of prix_moyen", function()
    local one = ds:run { "prix_moyen", naive = cpf.mean "prix_moyen" }
    close(all.m / 100 / all.d, one[1].prix_moyen, "prix_moyen")
    local naive = all.prix / 100 / all.n
    close(naive, one[1].naive, "mean of prix_moyen")
    -- the naive mean is another number on this data
    assert.is_true(math.abs(one[1].prix_moyen - naive) > 0.01 * naive,
      ("prix_moyen %.2f and the naive mean %.2f are too close to tell apart"):format(one[1].prix_moyen, naive))
    local res = ds:group_by("annee"):agg { "prix_moyen" }:run()
    for i, y in ipairs(years) do
      local t = totals(by_year[y])
      close(t.m / 100 / t.d, res[i].prix_moyen, "prix_moyen " .. y)
    end
    close(all.m / 100 / all.d, ds:run { p = cpf.measures.prix_moyen }[1].p, "cpf.measures.prix_moyen")
  end)

  it("weights the average duration by the files of known duration, skipping missing values", function()
    local one = ds:run { "duree_moyenne", naive = cpf.mean "duree_moyenne" }
    close(all.ws / all.w, one[1].duree_moyenne, "duree_moyenne")
    close(all.dsum / all.dn, one[1].naive, "plain mean")
    assert.are_not.equal(one[1].naive, one[1].duree_moyenne)
    local res = ds:group_by("annee"):agg { "duree_moyenne" }:run()
    for i, y in ipairs(years) do
      local t = totals(by_year[y])
      close(t.ws / t.w, res[i].duree_moyenne, "duree_moyenne " .. y)
    end
  end)

  it("gives the cancellation rate over the four cancelled statuses", function()
    local one = ds:run { "taux_annulation" }
    close(all.cancelled / all.d, one[1].taux_annulation, "taux_annulation")
    assert.is_true(one[1].taux_annulation > 0 and one[1].taux_annulation < 1)
    local res = ds:group_by("annee"):agg { "taux_annulation" }:run()
    for i, y in ipairs(years) do
      local t = totals(by_year[y])
      close(t.cancelled / t.d, res[i].taux_annulation, "taux_annulation " .. y)
    end
    local regions, by_region = by(ref, function(r) return r.region end)
    res = ds:where { region_lieu_formation = cpf.not_null() }:group_by("region_lieu_formation")
      :agg { "taux_annulation", "dossiers" }:run()
    assert.are.equal(#regions, #res)
    for i, name in ipairs(regions) do
      local t = totals(by_region[name])
      assert.are.equal(name, res[i].region_lieu_formation)
      close(t.cancelled / t.d, res[i].taux_annulation, "taux_annulation " .. name)
    end
    -- by status: 1 for the four cancelled statuses, 0 for the five others
    res = ds:group_by("statut_dossier"):agg { "taux_annulation" }:run()
    assert.are.equal(9, #res)
    for _, row in res:rows() do
      assert.are.equal(CANCELLED[row.statut_dossier] and 1 or 0, row.taux_annulation, row.statut_dossier)
    end
  end)

  it("sums each funder's part and files, and its share of the amount", function()
    local spec = {}
    for _, fu in ipairs(FUNDERS) do
      spec[#spec + 1] = "part_" .. fu
      spec[#spec + 1] = "share_" .. fu
      if fu ~= "france_competences" then spec[#spec + 1] = "dossiers_" .. fu end
    end
    spec[#spec + 1] = "montant"
    local function check(row, t, what)
      local parts, shares = 0, 0
      for _, fu in ipairs(FUNDERS) do
        local p = cents(row["part_" .. fu])
        assert.are.equal(t.parts[fu], p, what .. " part_" .. fu)
        close(t.parts[fu] / t.m, row["share_" .. fu], what .. " share_" .. fu)
        if fu ~= "france_competences" then
          assert.are.equal(t.files[fu], row["dossiers_" .. fu], what .. " dossiers_" .. fu)
          assert.is_true(is_integer(row["dossiers_" .. fu]))
        end
        parts, shares = parts + p, shares + row["share_" .. fu]
      end
      -- the parts add up to the amount, to the cent
      assert.are.equal(cents(row.montant), parts, what .. ": Σ parts")
      close(1, shares, what .. ": Σ shares")
    end
    local one = ds:run(spec)
    assert.are.equal(#spec, #one:columns())
    check(one[1], all, "all")
    -- co-funders are there at all in this file
    for _, fu in ipairs { "titulaires", "opco", "regions" } do assert.is_true(all.parts[fu] > 0, fu) end
    local res = ds:group_by("annee"):agg(spec):run()
    for i, y in ipairs(years) do check(res[i], totals(by_year[y]), tostring(y)) end
  end)

  it("has no files count for France compétences", function()
    assert.is_nil(cpf.measures.dossiers_france_competences)
    local ok, err = pcall(ds.run, ds, { "dossiers_france_competences" })
    assert.is_false(ok)
    assert.are.equal("unknown measure 'dossiers_france_competences'", (err:gsub("^[^:]*:%d+: ", "")))
  end)

  it("refuses to add up nb_titulaires", function()
    local ok, err = pcall(function() local r = ds:run { "nb_titulaires" } return r end)
    assert.is_false(ok)
    assert.is_truthy(err:find("nb_titulaires is not additive across rows", 1, true))
    ok, err = pcall(function() local r = ds:group_by("annee"):run { t = cpf.sum "nb_titulaires" } return r end)
    assert.is_false(ok)
    assert.is_truthy(err:find("nb_titulaires is not additive across rows", 1, true))
  end)

  it("gives the funder split in long form", function()
    local res = ds:funders()
    assert.are.same({ "financeur", "montant", "part", "dossiers" }, res:columns())
    assert.are.equal(8, #res)
    local shares = 0
    for i, fu in ipairs(FUNDERS) do
      local row = res[i]
      assert.are.equal(fu, row.financeur)
      assert.are.equal(all.parts[fu], cents(row.montant), fu)
      close(all.parts[fu] / all.m, row.part, fu)
      if fu == "france_competences" then
        assert.is_nil(row.dossiers)
      else
        assert.are.equal(all.files[fu], row.dossiers, fu)
      end
      shares = shares + row.part
    end
    close(1, shares, "Σ part")
  end)

  it("gives the funder split per group of a query", function()
    local res = ds:funders(ds:group_by("annee"))
    assert.are.same({ "annee", "financeur", "montant", "part", "dossiers" }, res:columns())
    assert.are.equal(8 * #years, #res)
    for k, y in ipairs(years) do
      local t = totals(by_year[y])
      local shares, sum = 0, 0
      for i, fu in ipairs(FUNDERS) do
        local row = res[(k - 1) * 8 + i]
        assert.are.equal(y, row.annee)
        assert.are.equal(fu, row.financeur)
        assert.are.equal(t.parts[fu], cents(row.montant), y .. " " .. fu)
        close(t.parts[fu] / t.m, row.part, y .. " " .. fu)
        assert.are.equal(fu ~= "france_competences" and t.files[fu] or nil, row.dossiers)
        shares, sum = shares + row.part, sum + cents(row.montant)
      end
      close(1, shares, "Σ part " .. y)
      assert.are.equal(t.m, sum, "Σ montant " .. y)
    end
    -- a filtered query
    res = ds:funders(ds:where { annee = 2023, statut_dossier = cpf.family "completed" })
    assert.are.equal(8, #res)
    local t = totals((function()
      local out = {}
      for _, r in ipairs(by_year[2023]) do
        if r.status == "Clos - Réalisation Totale" or r.status == "Clos - Réalisation Partielle" then
          out[#out + 1] = r
        end
      end
      return out
    end)())
    for i, fu in ipairs(FUNDERS) do
      assert.are.equal(t.parts[fu], cents(res[i].montant), fu)
      close(t.parts[fu] / t.m, res[i].part, fu)
    end
  end)

  it("does not take a query's own aggregates for keys", function()
    local ok, res = pcall(function() return ds:funders(ds:group_by("annee"):agg { "dossiers" }) end)
    if ok then
      local seen = {}
      for _, c in ipairs(res:columns()) do
        assert.is_nil(seen[c], "column '" .. c .. "' twice in " .. table.concat(res:columns(), ", "))
        seen[c] = true
      end
      assert.are.equal(8 * #years, #res)
    end
  end)
end)

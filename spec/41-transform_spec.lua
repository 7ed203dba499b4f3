-- Results made from results (lua/cpf/transform.lua): having and res:where, res:with, res:join,
-- top n per group, change, cumsum and rank. Every answer is computed again here from the rows
-- (ds:rows()), with missing keys, missing values, ties, empty results and keys absent on one side.
local h = require "spec.helpers"
local cpf = require "cpf"

-- 240 rows over 4 regions (one often missing), 5 years with a gap (2022 absent), codes with
-- ties in amount, missing counts and amounts.
local function fixture_csv()
  local regions = { "Bretagne", "Corse", "Normandie", "" }
  local years = { 2020, 2021, 2023, 2024, 2025 }
  local lines = { "region_lieu_formation;date_validation;code_rncp;nb_dossiers;montant_engage" }
  for i = 1, 240 do
    lines[#lines + 1] = table.concat({
      regions[i % 4 + 1],
      ("%d-%02d"):format(years[i % 5 + 1], i % 12 + 1),
      ("R%d"):format(i % 7),
      i % 13 == 0 and "" or tostring(i % 9 + 1),
      i % 17 == 0 and "" or ("%d.%02d"):format((i * 37) % 400, i % 4 * 25),
    }, ";")
  end
  return table.concat(lines, "\n") .. "\n"
end

-- Σ per group, from the rows: { [id] = {keys..., dossiers =, montant =} } over `names`.
local function totals(ds, names)
  local groups, order = {}, {}
  for _, r in ds:rows() do
    local parts = {}
    for i, n in ipairs(names) do
      local v = n == "annee" and r.date_validation and tonumber(r.date_validation:sub(1, 4)) or r[n]
      parts[i] = tostring(v)
    end
    local id = table.concat(parts, "|")
    local g = groups[id]
    if not g then
      g = { dossiers = 0, montant = 0, id = id }
      for i, n in ipairs(names) do
        g[n] = n == "annee" and r.date_validation and tonumber(r.date_validation:sub(1, 4)) or r[n]
        g[i] = g[n]
      end
      groups[id] = g
      order[#order + 1] = g
    end
    g.dossiers = g.dossiers + (r.nb_dossiers or 0)
    g.montant = g.montant + (r.montant_engage or 0)
  end
  return groups, order
end

local function id_of(row, names)
  local parts = {}
  for i, n in ipairs(names) do parts[i] = tostring(row[n]) end
  return table.concat(parts, "|")
end

local function near(a, b) return a == b or (a and b and math.abs(a - b) < 1e-6) end

describe("results from results", function()
  local ds
  setup(function() ds = assert(cpf.load(h.write_file(fixture_csv()))) end)
  teardown(h.cleanup)

  local function by_region_year()
    return ds:group_by("region_lieu_formation", "annee"):agg { "dossiers", "montant" }
  end

  describe("q:having and res:where", function()
    it("keep the groups whose aggregates pass, before order_by and limit", function()
      local groups = totals(ds, { "region_lieu_formation", "annee" })
      local res = by_region_year():having { dossiers = cpf.ge(60) }:run()
      local expected = 0
      for _, g in pairs(groups) do if g.dossiers >= 60 then expected = expected + 1 end end
      assert.is_true(expected > 0 and expected < 20)
      assert.are.equal(expected, #res)
      for _, r in res:rows() do
        local g = groups[id_of(r, { "region_lieu_formation", "annee" })]
        assert.is_true(g.dossiers >= 60)
        assert.are.equal(g.dossiers, r.dossiers)
      end
      -- the limit counts the rows having kept, in the query's order
      local top = by_region_year():having { dossiers = cpf.ge(40) }:order_by("-montant"):limit(3):run()
      local all = by_region_year():order_by("-montant"):run():where { dossiers = cpf.ge(40) }
      assert.are.equal(3, #top)
      for i = 1, 3 do assert.are.same(all[i], top[i]) end
      assert.are.same({ "-montant" }, top:order())
      -- several conditions, on keys too; a call per condition adds to the others
      local both = by_region_year():having { dossiers = cpf.between(30, 60), annee = cpf.ge(2023) }
        :having { region_lieu_formation = cpf.not_null() }:run()
      for _, r in both:rows() do
        assert.is_true(r.dossiers >= 30 and r.dossiers <= 60 and r.annee >= 2023 and r.region_lieu_formation ~= nil)
      end
      local n = 0
      for _, g in pairs(groups) do
        if g.dossiers >= 30 and g.dossiers <= 60 and g.annee >= 2023 and g.region_lieu_formation then n = n + 1 end
      end
      assert.are.equal(n, #both)
    end)

    it("treat a missing value as SQL does, and can leave nothing", function()
      local res = by_region_year():run()
      local missing_region = res:where { region_lieu_formation = cpf.is_null() }
      assert.are.equal(5, #missing_region)
      assert.are.equal(#res - 5, #res:where { region_lieu_formation = cpf.not_null() })
      assert.are.equal(0, #res:where { region_lieu_formation = "Corse" }:where { annee = 2022 })
      assert.are.equal(0, #by_region_year():having { dossiers = cpf.gt(1e9) }:run())
      -- a function condition sees the value; the input is unchanged
      local before = #res
      local odd = res:where { dossiers = function(v) return v % 2 == 1 end }
      for _, r in odd:rows() do assert.are.equal(1, r.dossiers % 2) end
      assert.are.equal(before, #res)
    end)

    it("name the result's columns when a condition names another", function()
      assert.are.equal(
        "having: 'nope' is not a column of the result (its columns: region_lieu_formation, annee, dossiers, montant)",
        h.error_of(function() return by_region_year():having { nope = 1 }:run() end))
      assert.are.equal(
        "where: 'nope' is not a column of the result (its columns: region_lieu_formation, annee, dossiers, montant)",
        h.error_of(function() return by_region_year():run():where { nope = 1 } end))
      assert.are.equal("having dossiers: cannot compare number values with string \"x\"",
        h.error_of(function() return by_region_year():having { dossiers = "x" }:run() end))
      assert.has_error(function() by_region_year():having(cpf.ge(1)) end,
        "bad argument #1 to 'having' ({column = condition} expected)")
    end)
  end)

  describe("res:with", function()
    it("computes columns once per row, in order, each seeing the ones before", function()
      local res = by_region_year():run()
      local function price(r) return r.dossiers > 0 and r.montant / r.dossiers or nil end
      local out = res:with { { "prix", price, "money" },
                             { "double", function(r) return r.prix and r.prix * 2 end } }
      assert.are.same({ "region_lieu_formation", "annee", "dossiers", "montant", "prix", "double" }, out:columns())
      assert.are.equal(#res, #out)
      for i, r in out:rows() do
        assert.is_true(near(res[i].montant / res[i].dossiers, r.prix))
        assert.is_true(near(r.prix * 2, r.double))
        assert.is_nil(res[i].prix) -- the input is unchanged
      end
      assert.are.equal("money", out:kinds().prix)
      assert.are.equal("number", out:kinds().double)
      local named = res:with { z = function() return "z" end, a = function(r) return r.annee end }
      assert.are.same({ "region_lieu_formation", "annee", "dossiers", "montant", "a", "z" }, named:columns())
      assert.are.equal(0, #res:where { annee = 1999 }:with { x = function() return 1 end })
      -- titles in each locale, for the display formats
      local titled = res:head(1):with { { "prix", price, "money", { fr = "Prix par dossier", en = "Price per file" } } }
      assert.are.same({ fr = "Prix par dossier", en = "Price per file" }, titled:labels().prix)
      assert.is_truthy(titled:format("table", { locale = "en" }):find("Price per file", 1, true))
      assert.are.equal("with: the titles of 'prix' must be {fr = \"...\", en = \"...\"}",
        h.error_of(function() return res:with { { "prix", price, "money", { fr = "Prix" } } } end))
    end)

    it("refuses a value that is not a number, a string or nil, and a name taken", function()
      local res = by_region_year():run()
      assert.are.equal("with: 'x' returned a table for row 1 (a number, a string or nil expected)",
        h.error_of(function() return res:with { x = function() return {} end } end))
      assert.are.equal("with: the result already has a column 'montant'",
        h.error_of(function() return res:with { montant = function() return 1 end } end))
      assert.are.equal("with: kind of 'x' must be count, money, rate, number or key",
        h.error_of(function() return res:with { { "x", function() return 1 end, "euros" } } end))
      assert.are.equal("boom", h.error_of(function() return res:with { x = function() error("boom", 0) end } end))
    end)
  end)

  describe("res:join", function()
    local function by_region() return ds:group_by("region_lieu_formation"):agg { "dossiers", "montant" }:run() end

    it("brings the columns of a result, a dataset or a Lua table, left or inner", function()
      local res = by_region()
      assert.are.equal(4, #res) -- Bretagne, Corse, Normandie, missing
      local pop = cpf.result({ "region_lieu_formation", "habitants" },
        { { region_lieu_formation = "Bretagne", habitants = 3400000 },
          { region_lieu_formation = "Normandie", habitants = 3300000 },
          { region_lieu_formation = "Guyane", habitants = 290000 } },
        { "region_lieu_formation" }, { habitants = "count" })
      local left = res:join(pop, "region_lieu_formation")
      assert.are.same({ "region_lieu_formation", "dossiers", "montant", "habitants" }, left:columns())
      assert.are.equal(4, #left)
      local seen = {}
      for i, r in left:rows() do
        assert.are.equal(res[i].montant, r.montant)
        seen[tostring(r.region_lieu_formation)] = r.habitants
      end
      assert.are.same({ Bretagne = 3400000, Normandie = 3300000 }, seen) -- Corse and the missing key: nil
      assert.are.equal("count", left:kinds().habitants)
      local inner = res:join(pop, "region_lieu_formation", { how = "inner" })
      assert.are.same({ "Bretagne", "Normandie" }, { inner[1].region_lieu_formation, inner[2].region_lieu_formation })
      -- a dataset loaded from a reference file, and {left = "right"}
      local ref = assert(cpf.load(h.write_file(
        "nom;population;chef_lieu\nBretagne;3400000;Rennes\nCorse;350000;Ajaccio\n")))
      local with_ds = res:join(ref, { region_lieu_formation = "nom" }, { columns = { "population" } })
      assert.are.same({ "region_lieu_formation", "dossiers", "montant", "population" }, with_ds:columns())
      assert.are.same({ 3400000, 350000 }, { with_ds[1].population, with_ds[2].population })
      -- a Lua table of rows, or of values named by opts.columns
      local t = res:join({ Corse = { chef_lieu = "Ajaccio" } }, "region_lieu_formation")
      assert.are.equal("Ajaccio", t[2].chef_lieu)
      local v = res:join({ Corse = 350000 }, "region_lieu_formation", { columns = { "population" } })
      assert.are.same({ nil, 350000 }, { v[1].population, v[2].population })
      assert.are.equal(4, #res) -- unchanged
      assert.is_nil(res[1].habitants)
    end)

    it("refuses keys of other types, a key twice (unless many), a name on both sides (unless suffix)", function()
      local res = by_region()
      local codes = cpf.result({ "annee", "x" }, { { annee = "2020", x = 1 } })
      local years = ds:group_by("annee"):agg { "dossiers" }:run()
      assert.are.equal("join: annee holds number values, the reference's annee holds string values: keys compare "
        .. "as stored ('01' is not 1)", h.error_of(function() return years:join(codes, "annee") end))
      local twice = cpf.result({ "region_lieu_formation", "x" },
        { { region_lieu_formation = "Corse", x = 1 }, { region_lieu_formation = "Corse", x = 2 },
          { region_lieu_formation = "Corse", x = 3 } })
      assert.are.equal("join: the reference has 3 rows for region_lieu_formation 'Corse'",
        h.error_of(function() return res:join(twice, "region_lieu_formation") end))
      local many = res:join(twice, "region_lieu_formation", { many = true, how = "inner" })
      assert.are.same({ 1, 2, 3 }, { many[1].x, many[2].x, many[3].x })
      local clash = cpf.result({ "region_lieu_formation", "montant" },
        { { region_lieu_formation = "Corse", montant = 1 } })
      assert.are.equal("join: both sides have a column 'montant' (give opts.suffix to rename the reference's)",
        h.error_of(function() return res:join(clash, "region_lieu_formation") end))
      local suffixed = res:join(clash, "region_lieu_formation", { suffix = "_ref" })
      assert.are.equal(1, suffixed[2].montant_ref)
      assert.are.equal(
        "join: 'nope' is not a column of the result (its columns: region_lieu_formation, dossiers, montant)",
        h.error_of(function() return res:join(clash, "nope") end))
      assert.are.equal("join: 'code' is not a column of the reference (its columns: region_lieu_formation, montant)",
        h.error_of(function() return res:join(clash, { region_lieu_formation = "code" }) end))
      assert.are.equal("join: opts.how must be \"left\" or \"inner\"",
        h.error_of(function() return res:join(clash, "region_lieu_formation", { how = "outer" }) end))
    end)
  end)

  describe("top n per group", function()
    it("keeps the first n rows of each group in the query's order, ties in order", function()
      local names = { "region_lieu_formation", "code_rncp" }
      local _, order = totals(ds, names)
      local q = ds:group_by("region_lieu_formation", "code_rncp"):agg { "dossiers", "montant" }
        :order_by("region_lieu_formation", "-dossiers")
      local full = q:run()
      local top = q:limit(2, { per = "region_lieu_formation" }):run()
      -- expected: in the full order, the first 2 of each region
      local count, expected = {}, {}
      for _, r in full:rows() do
        local k = tostring(r.region_lieu_formation)
        count[k] = (count[k] or 0) + 1
        if count[k] <= 2 then expected[#expected + 1] = r end
      end
      assert.are.equal(8, #top)
      for i, r in ipairs(expected) do assert.are.same(r, top[i]) end
      assert.are.equal(#order, #full)
      -- res:head per does the same on a result; per a list of columns; 0 rows
      assert.are.same(top[3], full:head(2, { per = { "region_lieu_formation" } })[3])
      assert.are.equal(#full, #full:head(1, { per = { "region_lieu_formation", "code_rncp" } }))
      assert.are.equal(0, #full:head(0, { per = "region_lieu_formation" }))
      assert.are.equal("head: 'nope' is not a column of the result (its columns: region_lieu_formation, code_rncp, "
        .. "dossiers, montant)", h.error_of(function() return full:head(2, { per = "nope" }) end))
    end)
  end)

  it("give the same rows whether the result's rows live in C (a query's) or in Lua tables", function()
    -- the same result made of Lua tables (cpf.result), whose operations take the Lua path
    local function lua_copy(r)
      local rows = {}
      for i, row in r:rows() do
        local t = {}
        for k, v in pairs(row) do t[k] = v end
        rows[i] = t
      end
      return cpf.result(r:columns(), rows, r:keys(), r:kinds())
    end
    local res = ds:group_by("region_lieu_formation", "code_rncp"):agg { "dossiers", "montant" }
      :order_by("-montant"):run()
    local copy = lua_copy(res)
    local ref = cpf.result({ "code_rncp", "libelle" }, { { code_rncp = "R1", libelle = "un" },
      { code_rncp = "R3", libelle = "trois" }, { code_rncp = "R9", libelle = "absent" } })
    local function same(a, b, what)
      assert.are.same(a:columns(), b:columns(), what)
      assert.are.equal(#b, #a, what)
      for i = 1, #a do assert.are.same(b[i], a[i], what .. " row " .. i) end
      assert.are.same(b:kinds(), a:kinds(), what)
    end
    for what, op in pairs {
      where = function(r) return r:where { dossiers = cpf.between(5, 30), region_lieu_formation = cpf.not_null() } end,
      where_fn = function(r) return r:where { montant = function(v) return v % 2 < 1 end } end,
      where_none = function(r) return r:where { code_rncp = "nope" } end,
      head_per = function(r) return r:head(2, { per = "region_lieu_formation" }) end,
      head_per2 = function(r) return r:head(1, { per = { "code_rncp", "region_lieu_formation" } }) end,
      join = function(r) return r:join(ref, "code_rncp") end,
      join_inner = function(r) return r:join(ref, "code_rncp", { how = "inner" }) end,
      -- on a column that is no key (an aggregate): its values read row by row
      join_aggregate = function(r) return r:join({ [10] = { tag = "dix" }, [12] = { tag = "douze" } }, "dossiers") end,
      join_aggregate_inner = function(r)
        return r:join({ [10] = { tag = "dix" } }, "dossiers", { how = "inner" })
      end,
      chain = function(r)
        return r:join(ref, "code_rncp"):where { libelle = cpf.not_null() }:head(1, { per = "libelle" })
      end,
    } do
      same(op(res), op(copy), what)
    end
    -- over time, on a result with a year key
    local years = by_region_year():order_by("-montant"):run()
    local years_copy = lua_copy(years)
    for what, op in pairs {
      change = function(r) return r:change("montant", { over = "annee" }) end,
      cumsum = function(r) return r:cumsum("dossiers", { over = "annee" }) end,
      rank = function(r) return r:rank("montant", { by = "annee" }) end,
      rank_all = function(r) return r:rank("dossiers", { desc = false }) end,
      all = function(r)
        return r:change("montant", { over = "annee" }):rank("montant_evol_pct")
          :where { montant_evol_pct_rang = cpf.le(3) }
      end,
    } do
      same(op(years), op(years_copy), what)
    end
    -- a condition of the wrong type says so on either path
    local msg = "where dossiers: cannot compare number values with string \"x\""
    assert.are.equal(msg, h.error_of(function() return res:where { dossiers = "x" } end))
    assert.are.equal(msg, h.error_of(function() return copy:where { dossiers = "x" } end))
  end)

  describe("over time", function()
    it("change: the previous period's value within each group, its difference and rate", function()
      local res = by_region_year():run()
      local out = res:change("montant", { over = "annee" })
      assert.are.same({ "region_lieu_formation", "annee", "dossiers", "montant", "montant_prec", "montant_evol",
                        "montant_evol_pct" }, out:columns())
      -- expected from the groups: the calendar's previous year for the same region (2022 is
      -- absent: 2023 has no previous value, as SQL's self-join on annee - 1 gives)
      local groups = totals(ds, { "region_lieu_formation", "annee" })
      for _, r in out:rows() do
        local prev = groups[tostring(r.region_lieu_formation) .. "|" .. (r.annee - 1)]
        assert.is_true(near(prev and prev.montant or nil, r.montant_prec))
        if prev then
          assert.is_true(near(r.montant - prev.montant, r.montant_evol))
          assert.is_true(near((r.montant - prev.montant) / prev.montant, r.montant_evol_pct))
        else
          assert.is_nil(r.montant_evol)
          assert.is_nil(r.montant_evol_pct)
        end
      end
      assert.are.same({ "money", "money", "rate" },
        { out:kinds().montant_prec, out:kinds().montant_evol, out:kinds().montant_evol_pct })
      -- a previous value of 0 or missing gives no rate
      local zero = cpf.result({ "k", "t", "v" }, { { k = 1, t = 1, v = 0 }, { k = 1, t = 2, v = 5 }, { k = 1, t = 3 },
        { k = 1, t = 4, v = 2 } }, { "k", "t" })
      local z = zero:change("v", { over = "t" })
      assert.are.same({ nil, 0, 5, nil }, { z[1].v_prec, z[2].v_prec, z[3].v_prec, z[4].v_prec })
      assert.are.same({ nil, 5, nil, nil }, { z[1].v_evol, z[2].v_evol, z[3].v_evol, z[4].v_evol })
      assert.are.same({ nil, nil, nil, nil }, { z[1].v_evol_pct, z[2].v_evol_pct, z[3].v_evol_pct, z[4].v_evol_pct })
    end)

    it("cumsum: the running total within each group; rank: 1 the largest, ties sharing", function()
      local months = ds:group_by("mois"):agg { "dossiers" }:run()
      local out = months:cumsum("dossiers", { over = "mois" })
      local total = 0
      for _, r in out:rows() do
        total = total + r.dossiers
        assert.are.equal(total, r.dossiers_cumul)
      end
      local all = 0
      for _, r in ds:rows() do all = all + (r.nb_dossiers or 0) end
      assert.are.equal(all, out[#out].dossiers_cumul)
      -- within the other keys, by default
      local by = by_region_year():run():cumsum("dossiers", { over = "annee" })
      local running = {}
      for _, r in by:rows() do
        local k = tostring(r.region_lieu_formation)
        running[k] = (running[k] or 0) + r.dossiers
        assert.are.equal(running[k], r.dossiers_cumul)
      end
      local ties = cpf.result({ "k", "g", "v" }, { { k = 1, g = "a", v = 5 }, { k = 2, g = "a", v = 9 },
        { k = 3, g = "a", v = 5 }, { k = 4, g = "b", v = 1 }, { k = 5, g = "a" }, { k = 6, g = "a", v = 2 } })
      local r1 = ties:rank("v")
      assert.are.same({ 2, 1, 2, 5, nil, 4 }, { r1[1].v_rang, r1[2].v_rang, r1[3].v_rang, r1[4].v_rang,
                                                r1[5].v_rang, r1[6].v_rang })
      local r2 = ties:rank("v", { by = "g", desc = false })
      assert.are.same({ 2, 4, 2, 1, nil, 1 }, { r2[1].v_rang, r2[2].v_rang, r2[3].v_rang, r2[4].v_rang,
                                                r2[5].v_rang, r2[6].v_rang })
    end)

    it("refuse two rows of one period in a group, and names taken", function()
      local res = ds:group_by("region_lieu_formation", "annee", "code_rncp"):agg { "montant" }:run()
      assert.are.equal("change: 2 rows have annee = 2020 within region_lieu_formation = 'Bretagne': add the keys "
        .. "that tell them apart to by",
        h.error_of(function() return res:change("montant", { over = "annee", by = "region_lieu_formation" }) end))
      assert.are.equal("cumsum: opts.over names the column of the periods",
        h.error_of(function() return res:cumsum("montant", {}) end))
      local once = by_region_year():run():rank("montant")
      assert.are.equal("rank: the result already has a column 'montant_rang'",
        h.error_of(function() return once:rank("montant") end))
    end)

    it("label the new columns in French and English for the display formats", function()
      local t = cpf.result({ "annee", "montant" }, { { annee = 2023, montant = 100 }, { annee = 2024, montant = 150 } },
        { "annee" }, { montant = "money" }):change("montant", { over = "annee" })
      local E = "\194\160€" -- a no-break space before the euro sign
      assert.are.equal(table.concat({
        "Année  Montant engagé  Montant engagé, période précédente  Évolution (Montant engagé)  "
          .. "Évolution en % (Montant engagé)",
        "-----  --------------  ----------------------------------  --------------------------  "
          .. "-------------------------------",
        " 2023        100,00" .. E,
        " 2024        150,00" .. E .. "                            100,00" .. E .. "                     50,00" .. E
          .. "                           50,0\194\160%",
      }, "\n") .. "\n", t:format("table", { locale = "fr" }))
      assert.are.same({ fr = "Rang (Montant engagé)", en = "Rank (Amount committed)" },
        t:rank("montant"):labels().montant_rang)
    end)
  end)
end)

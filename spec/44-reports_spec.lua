-- Reports analysts write (issue 29): one number text on every Lua, buckets over months, the
-- same names for share, filtered and combine — each checked against sums from ds:rows().
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"
local core = require "cpf.core"

describe("numbers as text", function()
  it("are written by one routine in C: the same digits on every Lua, '.' under any locale", function()
    assert.are.equal("1060.62", core.fixed_text(1060.625, 2)) -- a tie: the C library's rounding
    assert.are.equal("1060.63", core.fixed_text(1060.6251, 2))
    assert.are.equal("-0.00", core.fixed_text(-0.004, 2))
    assert.are.equal("0.1", core.number_text(0.1))
    assert.are.equal("0.3333333333333333", core.number_text(1 / 3))
    assert.are.equal("1e+300", core.number_text(1e300))
    assert.is_nil(core.number_text(0 / 0))
    assert.is_nil(core.fixed_text(math.huge, 2))
    local res = cpf.result({ "m" }, { { m = 1060.625 } }, nil, { m = "number" })
    assert.are.equal("      m\n-------\n1060.62\n", res:format("table", { decimals = 2 }))
    assert.are.equal("|        m |\n|---------:|\n| 1\226\128\175060,62 |\n", -- U+202F between thousands
      res:format("markdown", { decimals = 2, locale = "fr" }))
  end)
end)

describe("buckets", function()
  local path, ds, rows
  setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 3000, { seed = 12 }))
    ds = assert(cpf.load(path))
    rows = {}
    for _, r in ds:rows() do rows[#rows + 1] = r end
  end)
  teardown(function() ds:close() h.cleanup() end)

  it("over a month column take \"YYYY-MM\" bounds and are labelled in months", function()
    local res = ds:group_by(cpf.bucket("date_validation", { "2021-01", "2022-07" })):run { n = cpf.sum "nb_dossiers" }
    local want = { 0, 0, 0 }
    for _, r in ipairs(rows) do
      local m = r.date_validation
      if m then
        local i = m < "2021-01" and 1 or m < "2022-07" and 2 or 3
        want[i] = want[i] + r.nb_dossiers
      end
    end
    assert.are.same({ "< 2021-01", "[2021-01, 2022-07)", ">= 2022-07" },
      { res[1].date_validation_tranche, res[2].date_validation_tranche, res[3].date_validation_tranche })
    assert.are.same(want, { res[1].n, res[2].n, res[3].n })
  end)

  it("refuse numbers over a month column, and texts over a number column, with a message", function()
    assert.are.equal("bucket: 'date_validation' is a month column: give its bounds as \"YYYY-MM\" (or \"YYYY-MM-DD\"), "
      .. "got the number 2021", h.error_of(function() ds:group_by(cpf.bucket("date_validation", { 2021 })):run() end))
    assert.are.equal("bucket: 'nb_dossiers' is a integer column: its bounds are numbers, got \"2021-01\"",
      h.error_of(function() ds:group_by(cpf.bucket("nb_dossiers", { "2021-01" })):run() end))
    assert.are.equal("bad argument #2 to 'bucket' (bound 2 is \"2021\", \"YYYY-MM\" or \"YYYY-MM-DD\" expected)",
      h.error_of(function() cpf.bucket("date_validation", { "2021-01", "2021" }) end))
    assert.are.equal("bucket: bounds must increase",
      h.error_of(function() cpf.bucket("date_validation", { "2022-01", "2021-01" }) end))
  end)

  it("label fractional and whole bounds the same on every Lua", function()
    local res = ds:group_by(cpf.bucket("nb_dossiers", { 1.0, 2.5 })):run { n = cpf.count() }
    local labels = {}
    for i, r in ipairs(res) do labels[i] = r.nb_dossiers_tranche end
    for _, l in ipairs(labels) do assert.is_truthy(l == "< 1" or l == "[1, 2.5)" or l == ">= 2.5", l) end
  end)
end)

describe("csv-fr", function()
  it("rounds computed money to the cent and other computed decimals to 6; csv stays exact", function()
    local res = cpf.result({ "annee", "montant", "prix", "taux", "n" },
      { { annee = 2020, montant = 3908.2289928057553, prix = 1 / 3, taux = 0.1234567891, n = 12 },
        { annee = 2021, montant = 57331777.3, prix = 2.5, taux = -0.0000001, n = 7 } },
      { "annee" }, { montant = "money", prix = "number", taux = "rate", n = "count" })
    assert.are.equal("\239\187\191annee;montant;prix;taux;n\n2020;3908,23;0,333333;0,123457;12\n"
      .. "2021;57331777,3;2,5;0;7\n", res:format("csv-fr"))
    assert.are.equal("annee,montant,prix,taux,n\n2020,3908.2289928057553,0.3333333333333333,0.1234567891,12\n"
      .. "2021,57331777.3,2.5,-1e-07,7\n", res:format("csv"))
    assert.are.equal("annee;montant\n2020;3908,2289928057553\n2021;57331777,3\n",
      cpf.result({ "annee", "montant" }, { { annee = 2020, montant = 3908.2289928057553 },
        { annee = 2021, montant = 57331777.3 } }, nil, { montant = "money" })
        :format("csv-fr", { rounded = false, bom = false }))
  end)
end)

describe("res:with", function()
  it("takes the kind key, and a year it makes never gets a thousands separator", function()
    local res = cpf.result({ "d" }, { { d = "2020-03" }, { d = "2021-11" } })
    local with = res:with { annee = function(r) return tonumber(r.d:sub(1, 4)) end }
    assert.are.equal("key", with:kinds().annee)
    assert.are.equal("| d       | Année |\n|---------|------:|\n| 2020-03 |  2020 |\n| 2021-11 |  2021 |\n",
      with:format("markdown", { locale = "fr" }))
    local keyed = res:with { { "an", function(r) return tonumber(r.d:sub(1, 4)) end, "key" } }
    assert.are.equal("key", keyed:kinds().an)
    assert.is_truthy(keyed:format("table", { locale = "fr" }):find(" 2020\n", 1, true))
    assert.are.equal("with: kind of 'x' must be count, money, rate, number or key",
      h.error_of(function() res:with { { "x", function() return 1 end, "year" } } end))
  end)
end)

describe("one order on every path", function()
  local path, ds
  setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 3000, { seed = 13 }))
    ds = assert(cpf.load(path))
  end)
  teardown(function() ds:close() h.cleanup() end)

  local function column(res, name)
    local out = {}
    for i, r in ipairs(res) do out[i] = r[name] end
    return out
  end

  it("sorts families and buckets in their own order on a result held in Lua tables", function()
    local res = ds:group_by("famille"):agg { "dossiers" }:run()
    local in_c = column(res:sorted("famille"), "famille")
    local lua_rows = res:with { x = function() return 1 end } -- rows in Lua tables now
    assert.are.same(in_c, column(lua_rows:sorted("famille"), "famille"))
    assert.are.same({ "validated", "in_training", "left_training", "completed", "cancelled" }, in_c)
    local b = ds:group_by(cpf.bucket("montant_engage", { 1000, 5000 })):agg { "dossiers" }:run()
    local want = { "< 1000", "[1000, 5000)", ">= 5000" }
    assert.are.same(want, column(b:with { x = function() return 1 end }:sorted("montant_engage_tranche"),
      "montant_engage_tranche"))
    assert.are.same({ ">= 5000", "[1000, 5000)", "< 1000" },
      column(b:with { x = function() return 1 end }:sorted("-montant_engage_tranche"), "montant_engage_tranche"))
  end)

  it("runs cumsum and change over a bucket or family key in its own order", function()
    local b = ds:group_by(cpf.bucket("montant_engage", { 1000, 5000 })):agg { "dossiers" }:run()
    local c = b:cumsum("dossiers", { over = "montant_engage_tranche" })
    local running, want = 0, {}
    for i, r in ipairs(b) do running = running + r.dossiers want[i] = running end
    assert.are.same(want, column(c, "dossiers_cumul"))
    local f = ds:group_by("famille"):agg { "dossiers" }:run()
    local ch = f:change("dossiers", { over = "famille" })
    assert.are.same({ nil, f[1].dossiers }, { ch[1].dossiers_prec, ch[2].dossiers_prec })
  end)
end)

describe("res:join on a Lua table of rows", function()
  it("brings only opts.columns, as for a result or a dataset", function()
    local res = cpf.result({ "dep", "n" }, { { dep = "35", n = 1 }, { dep = "75", n = 2 } }, { "dep" })
    local ref = { ["35"] = { pop = 1100000, nom = "Ille-et-Vilaine" }, ["75"] = { pop = 2100000, nom = "Paris" } }
    local joined = res:join(ref, "dep", { columns = { "pop" } })
    assert.are.same({ "dep", "n", "pop" }, joined:columns())
    assert.are.same({ 1100000, 2100000 }, { joined[1].pop, joined[2].pop })
    assert.are.same({ "dep", "n", "nom", "pop" }, res:join(ref, "dep"):columns())
    assert.are.equal("join: 'x' is not a column of the reference (its columns: dep, nom, pop)",
      h.error_of(function() res:join(ref, "dep", { columns = { "x" } }) end))
  end)
end)

describe("charts", function()
  -- every label's extent at about 7 px a character: inside the drawing, right of the y title
  local function check_labels(svg, min_end)
    local width = tonumber(svg:match('viewBox="0 0 (%d+)'))
    local seen = 0
    for x, anchor, text in svg:gmatch('<text x="([%d%.]+)" y="[%d%.]+" text%-anchor="(%a+)"[^>]*>([^<]*)</text>') do
      local w = require("cpf.format.common").display_width(text) * 7
      x = tonumber(x)
      if anchor == "end" then assert.is_true(x - w >= min_end, ("'%s' ends at %s"):format(text, x)) end
      if anchor == "middle" then
        assert.is_true(x - w / 2 >= 0 and x + w / 2 <= width, ("'%s' centred at %s"):format(text, x))
      end
      seen = seen + 1
    end
    for x, text in svg:gmatch('<text x="([%d%.]+)" y="[%d%.]+">([^<]*)</text>') do
      local w = require("cpf.format.common").display_width(text) * 7
      assert.is_true(tonumber(x) + w <= width, ("'%s' starts at %s"):format(text, x))
      seen = seen + 1
    end
    return seen
  end

  it("size their axes from their labels at any magnitude, in fr and en, none leaving the drawing", function()
    for _, scale in ipairs { 1, 1e3, 1e6, 1.5e9, 1e12 } do
      local rows = {}
      for m = 1, 24 do
        local mois = ("%d-%02d"):format(2023 + math.floor((m - 1) / 12), (m - 1) % 12 + 1)
        rows[m] = { mois = mois, montant = scale * (1 + m / 10) }
      end
      local res = cpf.result({ "mois", "montant" }, rows, { "mois" }, { montant = "money" })
      for _, locale in ipairs { "fr", "en" } do
        -- the y labels right of the rotated y title (x = 16)
        assert.is_true(check_labels(res:format("svg", { locale = locale }), 24) > 10, scale .. " " .. locale)
        local bars = cpf.result({ "region", "montant" }, { { region = "Île-de-France", montant = scale * 1.5 },
          { region = "Bretagne", montant = scale } }, { "region" }, { montant = "money" })
        assert.is_true(check_labels(bars:format("svg", { locale = locale }), 0) >= 4, scale .. " " .. locale)
      end
    end
  end)
end)

describe("periods as keys", function()
  local path, ds, rows
  setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 4000, { seed = 14 }))
    ds = assert(cpf.load(path))
    rows = {}
    for _, r in ds:rows() do rows[#rows + 1] = r end
  end)
  teardown(function() ds:close() h.cleanup() end)

  -- Σ nb_dossiers by fn(row's date_validation "YYYY-MM"), from the rows
  local function sums(fn)
    local out = {}
    for _, r in ipairs(rows) do
      if r.date_validation then
        local k = fn(r.date_validation)
        out[k] = (out[k] or 0) + r.nb_dossiers
      end
    end
    return out
  end
  local function by_key(res, key)
    local out = {}
    for _, r in ipairs(res) do if r[key] ~= nil then out[r[key]] = r.dossiers end end
    return out
  end
  local function month_of(m) return tonumber(m:sub(6, 7)) end

  it("group by trimestre, semestre and mois_de_l_annee as SQL's quarter(), 2024-T1 and 2024-S2 labels", function()
    local want_q = sums(function(m) return ("%s-T%d"):format(m:sub(1, 4), math.floor((month_of(m) - 1) / 3) + 1) end)
    local want_s = sums(function(m) return ("%s-S%d"):format(m:sub(1, 4), month_of(m) <= 6 and 1 or 2) end)
    local want_m = sums(month_of)
    assert.are.same(want_q, by_key(ds:group_by("trimestre"):agg { "dossiers" }:run(), "trimestre"))
    assert.are.same(want_s, by_key(ds:group_by("semestre"):agg { "dossiers" }:run(), "semestre"))
    assert.are.same(want_m, by_key(ds:group_by("mois_de_l_annee"):agg { "dossiers" }:run(), "mois_de_l_annee"))
    assert.are.same(want_q, by_key(ds:group_by(cpf.quarter "date_validation"):agg { "dossiers" }:run(), "trimestre"))
    -- in time order, the C order of the codes
    local res = ds:group_by("trimestre"):agg { "dossiers" }:run()
    for i = 2, #res do assert.is_true(res[i - 1].trimestre < res[i].trimestre) end
  end)

  it("compile conditions on them to ranges of the column: trimestre=2024-T2 is April to June", function()
    local q2 = ds:where { trimestre = "2024-T2" }:run { n = cpf.sum "nb_dossiers" }[1].n
    local months = ds:where { date_validation = cpf.between("2024-04", "2024-06") }
      :run { n = cpf.sum "nb_dossiers" }[1].n
    assert.are.equal(months, q2)
    assert.are.equal(ds:where { date_validation = cpf.between("2024-01", "2024-06") }:run { n = "dossiers" }[1].n,
      ds:where { semestre = "2024-S1" }:run { n = "dossiers" }[1].n)
    local dec = 0
    for _, r in ipairs(rows) do if r.date_validation and month_of(r.date_validation) == 12 then dec = dec + 1 end end
    assert.are.equal(dec, ds:where { mois_de_l_annee = 12 }:run { n = cpf.count() }[1].n)
    local out, err, code = h.run(h.cpf_command(("query %s --where trimestre=2024-T2 --by trimestre --measure dossiers "
      .. "--format csv"):format(h.shell_quote(path))))
    assert.are.equal(0, code, err)
    assert.are.equal(("trimestre,dossiers\n2024-T2,%d\n"):format(q2), out)
  end)

  it("work on a date column too, and refuse other columns with a message", function()
    local res = ds:group_by(cpf.semester "date_chargement"):run { n = cpf.count() }
    assert.are.equal(#rows, res[1].n)
    assert.is_truthy(res[1].semestre:match("^%d%d%d%d%-S[12]$"))
    assert.are.equal("quarter() needs a month or date column, 'nb_dossiers' is integer",
      h.error_of(function() ds:group_by(cpf.quarter "nb_dossiers"):run() end))
  end)
end)

describe("windows on results", function()
  local path, ds, rows
  setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 4000, { seed = 15 }))
    ds = assert(cpf.load(path))
    rows = {}
    for _, r in ds:rows() do rows[#rows + 1] = r end
  end)
  teardown(function() ds:close() h.cleanup() end)

  local function month_number(m) return tonumber(m:sub(1, 4)) * 12 + tonumber(m:sub(6, 7)) - 1 end
  -- Σ nb_dossiers by (region, month number), from the rows
  local function by_region_month()
    local t, first = {}, {}
    for _, r in ipairs(rows) do
      if r.date_validation and r.region_lieu_formation then
        local k = r.region_lieu_formation .. "|" .. month_number(r.date_validation)
        t[k] = (t[k] or 0) + r.nb_dossiers
        local f, m = first[r.region_lieu_formation], month_number(r.date_validation)
        if not f or m < f then first[r.region_lieu_formation] = m end
      end
    end
    return t, first
  end

  it("rolling: the sum of the N calendar periods ending at each row's, none before a full window", function()
    local res = ds:where { region_lieu_formation = cpf.not_null() }:group_by("region_lieu_formation", "mois")
      :agg { "dossiers" }:run()
    local out = res:rolling("dossiers", 12, { over = "mois" })
    local t, first = by_region_month()
    local checked = 0
    for _, r in out:rows() do
      local m, region = month_number(r.mois), r.region_lieu_formation
      local want
      if m - 11 >= first[region] then
        for k = m - 11, m do
          local v = t[region .. "|" .. k]
          if v then want = (want or 0) + v end
        end
      end
      assert.are.equal(want, r.dossiers_glissant_12, region .. " " .. r.mois)
      checked = checked + 1
    end
    assert.is_true(checked > 100)
    local mean = res:rolling("dossiers", 3, { over = "mois", fn = "mean" })
    local sum = res:rolling("dossiers", 3, { over = "mois" })
    for i, r in ipairs(mean) do
      local s = sum[i].dossiers_glissant_3
      assert.are.equal(s and s / 3, r.dossiers_glissant_3)
    end
  end)

  it("change with a lag: the same month a year before, counted on the calendar", function()
    local res = ds:where { region_lieu_formation = cpf.not_null() }:group_by("region_lieu_formation", "mois")
      :agg { "dossiers" }:run()
    local out = res:change("dossiers", { over = "mois", lag = 12 })
    local t = by_region_month()
    for _, r in out:rows() do
      local prev = t[r.region_lieu_formation .. "|" .. (month_number(r.mois) - 12)]
      assert.are.equal(prev, r.dossiers_prec)
      assert.are.equal(prev and r.dossiers - prev, r.dossiers_evol)
    end
  end)

  it("recomputes a measure with components over the window (Σ montant / Σ dossiers), refuses a median", function()
    local res = ds:group_by("annee"):agg { "dossiers", "prix_moyen", "taux_annulation", "duree_moyenne",
                                          { "med", cpf.median "montant_engage" } }:run()
    local rolled = res:rolling("prix_moyen", 2, { over = "annee" }):rolling("taux_annulation", 2, { over = "annee" })
      :rolling("duree_moyenne", 2, { over = "annee" })
    local checked = 0
    for _, r in ipairs(rolled) do
      if r.prix_moyen_glissant_2 then
        -- the window's two years run as one query: the same measures, from the rows themselves
        local direct = ds:where { annee = { r.annee - 1, r.annee } }:run { "prix_moyen", "taux_annulation",
                                                                           "duree_moyenne" }[1]
        for _, m in ipairs { "prix_moyen", "taux_annulation", "duree_moyenne" } do
          local a, b = direct[m], r[m .. "_glissant_2"]
          assert.is_true(math.abs(a - b) <= 1e-9 * math.abs(a), m .. " " .. r.annee)
        end
        checked = checked + 1
      end
    end
    assert.is_true(checked >= 3)
    assert.are.equal("rolling: 'med' is no sum of its rows (a median, a distinct count...): a window cannot be "
      .. "made of it", h.error_of(function() res:rolling("med", 2, { over = "annee" }) end))
    assert.are.equal("rolling: the window must be a whole number of periods from 1, got 0",
      h.error_of(function() res:rolling("dossiers", 0, { over = "annee" }) end))
  end)

  it("is in the request language: --rolling COL:PERIOD:N and --change COL:PERIOD:LAG", function()
    local out, err, code = h.run(h.cpf_command(("query %s --by annee --measure dossiers --rolling dossiers:annee:2 "
      .. "--change dossiers:annee:2 --format csv"):format(h.shell_quote(path))))
    assert.are.equal(0, code, err)
    local res = ds:group_by("annee"):agg { "dossiers" }:run():change("dossiers", { over = "annee", lag = 2 })
      :rolling("dossiers", 2, { over = "annee" })
    assert.are.equal(res:format("csv"), out)
    assert.is_truthy(out:find("^annee,dossiers,dossiers_prec,dossiers_evol,dossiers_evol_pct,dossiers_glissant_2\n"))
  end)
end)

describe("shares within groups", function()
  local path, ds, rows
  setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 3000, { seed = 16 }))
    ds = assert(cpf.load(path))
    rows = {}
    for _, r in ds:rows() do rows[#rows + 1] = r end
  end)
  teardown(function() ds:close() h.cleanup() end)

  -- Σ nb_dossiers by year and family, and by year, from the rows
  local function sums()
    local cell, year = {}, {}
    for _, r in ipairs(rows) do
      if r.date_validation then
        local y = tonumber(r.date_validation:sub(1, 4))
        local f = require("cpf.schema").families[r.statut_dossier] or "?"
        cell[y .. "|" .. f] = (cell[y .. "|" .. f] or 0) + r.nb_dossiers
        year[y] = (year[y] or 0) + r.nb_dossiers
      end
    end
    return cell, year
  end

  it("each group's share of its year, in a query (cpf.share(m, {within})) and on a result (res:share)", function()
    local cell, year = sums()
    local q = ds:where { annee = cpf.not_null() }:group_by("annee", "famille")
      :agg { "dossiers", { "part", cpf.share("dossiers", { within = "annee" }) } }:run()
    local r = q:share("dossiers", { within = "annee" })
    for _, row in r:rows() do
      local want = cell[row.annee .. "|" .. row.famille] / year[row.annee]
      assert.is_true(math.abs(want - row.part) < 1e-12)
      assert.is_true(math.abs(want - row.dossiers_part) < 1e-12)
    end
    assert.are.equal("rate", r:kinds().dossiers_part)
  end)

  it("refuses a share of what does not add up, in a query and on a result", function()
    assert.are.equal("bad argument #1 to 'share' (a ratio does not add up across groups: share the sums it is made of)",
      h.error_of(function() cpf.share "prix_moyen" end))
    local res = ds:group_by("annee"):agg { "prix_moyen" }:run()
    assert.are.equal("share: 'prix_moyen' does not add up across rows (a ratio, a mean, a median...): share the sums "
      .. "it is made of", h.error_of(function() res:share("prix_moyen") end))
    assert.are.equal("share: within names no key of the query ('nope'; its keys: annee)",
      h.error_of(function() ds:group_by("annee"):agg { x = cpf.share("dossiers", { within = "nope" }) }:run() end))
  end)

  it("is --share COL:KEYS in the request language, over every group before --having and --limit", function()
    local out, err, code = h.run(h.cpf_command(("query %s --by annee,famille --measure dossiers "
      .. "--share dossiers:annee --having 'dossiers>=100' --format csv"):format(h.shell_quote(path))))
    assert.are.equal(0, code, err)
    local want = ds:group_by("annee", "famille"):agg { "dossiers" }:run():share("dossiers", { within = "annee" })
      :where { dossiers = cpf.ge(100) }
    assert.are.equal(want:format("csv"), out)
  end)
end)

describe("totals and Autres", function()
  local path, ds, rows
  setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 3000, { seed = 17 }))
    ds = assert(cpf.load(path))
    rows = {}
    for _, r in ds:rows() do rows[#rows + 1] = r end
  end)
  teardown(function() ds:close() h.cleanup() end)

  -- Σ nb_dossiers, Σ montant_engage and the cancelled files of the rows `keep` keeps
  local function sums(keep)
    local d, m, c = 0, 0, 0
    for _, r in ipairs(rows) do
      if keep(r) then
        d, m = d + r.nb_dossiers, m + r.montant_engage
        if require("cpf.schema").families[r.statut_dossier] == "cancelled" then c = c + r.nb_dossiers end
      end
    end
    return d, m, c
  end
  local function near(a, b) return a == b or math.abs(a - b) <= 1e-9 * math.max(math.abs(a), math.abs(b)) end

  it("top 3 + Autres + Total: every measure of those rows computed from their rows, never a sum of ratios", function()
    local res = ds:group_by("region_lieu_formation"):agg { "dossiers", "montant", "prix_moyen", "taux_annulation" }
      :order_by("-dossiers"):limit(3, { others = true }):totals():run()
    assert.are.equal(5, #res)
    assert.are.same({ "others", "total" }, { res:row_kind(4), res:row_kind(5) })
    assert.is_nil(res:row_kind(1))
    local top = {}
    for i = 1, 3 do top[res[i].region_lieu_formation] = true end
    local d, m, c = sums(function(r) return not top[r.region_lieu_formation] end)
    local autres = res[4]
    assert.is_nil(autres.region_lieu_formation)
    assert.are.equal(d, autres.dossiers)
    assert.is_true(near(m, autres.montant))
    assert.is_true(near(m / d, autres.prix_moyen)) -- Σ montant / Σ dossiers of the rows folded
    assert.is_true(near(c / d, autres.taux_annulation))
    local td, tm = sums(function() return true end)
    assert.are.equal(td, res[5].dossiers)
    assert.is_true(near(tm / td, res[5].prix_moyen))
    assert.are.equal(td, res[1].dossiers + res[2].dossiers + res[3].dossiers + autres.dossiers) -- they add up
  end)

  it("subtotals after each group of the first key, the sort within each group, a total over every row kept", function()
    local res = ds:where { annee = { 2023, 2024 } }:group_by("annee", "famille"):agg { "dossiers", "prix_moyen" }
      :order_by("-dossiers"):having { dossiers = cpf.ge(50) }:totals():run()
    local last_year, kinds = nil, {}
    for i, r in ipairs(res) do
      kinds[#kinds + 1] = res:row_kind(i) or "group"
      if res:row_kind(i) == "subtotal" then
        local d, m = sums(function(x) return x.date_validation and x.date_validation:sub(1, 4) == tostring(r.annee) end)
        assert.are.equal(d, r.dossiers) -- the whole year, having or not
        assert.is_true(near(m / d, r.prix_moyen))
        assert.is_nil(r.famille)
      elseif not res:row_kind(i) then
        if last_year then assert.is_true(r.annee == last_year or res:row_kind(i - 1) == "subtotal") end
        last_year = r.annee
      end
    end
    assert.are.equal("total", kinds[#kinds])
    local d = sums(function(x) return x.date_validation and (x.date_validation:sub(1, 4) == "2023"
      or x.date_validation:sub(1, 4) == "2024") end)
    assert.are.equal(d, res[#res].dossiers)
  end)

  it("folds the groups left out of each group with per", function()
    local res = ds:where { annee = { 2023, 2024 } }:group_by("annee", "region_lieu_formation"):agg { "dossiers" }
      :order_by("annee", "-dossiers"):limit(2, { per = "annee", others = true }):run()
    for i, r in ipairs(res) do
      if res:row_kind(i) == "others" then
        local kept = {}
        for j = 1, i - 1 do
          if res[j].annee == r.annee and not res:row_kind(j) then kept[res[j].region_lieu_formation] = true end
        end
        local d = sums(function(x) return x.date_validation and x.date_validation:sub(1, 4) == tostring(r.annee)
          and not kept[x.region_lieu_formation] end)
        assert.are.equal(d, r.dossiers)
      end
    end
    assert.are.equal("others needs a free key: the rows are folded by one key, and 'annee' and "
      .. "'region_lieu_formation' are both free: give the others to per", (h.error_of(function()
        ds:group_by("annee", "region_lieu_formation"):agg { "dossiers" }:limit(2, { others = true }):run()
      end):gsub("^others: ", "others needs a free key: ")))
  end)

  it("are --others and --totals in the request language, shown as Total and Autres by the formats", function()
    local out, err, code = h.run(h.cpf_command(("query %s --by region_lieu_formation --measure dossiers "
      .. "--sort -dossiers --limit 2 --others --totals --format csv-fr --opt bom=false"):format(h.shell_quote(path))))
    assert.are.equal(0, code, err)
    local res = ds:group_by("region_lieu_formation"):agg { "dossiers" }:order_by("-dossiers")
      :limit(2, { others = true }):totals():run()
    assert.are.equal(("region_lieu_formation;dossiers\n%s;%d\n%s;%d\nAutres;%d\nTotal;%d\n"):format(
      res[1].region_lieu_formation, res[1].dossiers, res[2].region_lieu_formation, res[2].dossiers, res[3].dossiers,
      res[4].dossiers), out)
    assert.are.equal(("region_lieu_formation,dossiers,row_kind\n%s,%d,group\n%s,%d,group\n,%d,others\n,%d,total\n")
      :format(res[1].region_lieu_formation, res[1].dossiers, res[2].region_lieu_formation, res[2].dossiers,
        res[3].dossiers, res[4].dossiers), res:format("csv", { row_kind = true }))
    local md = res:format("markdown", { locale = "en" })
    assert.is_truthy(md:find("| **Others** ", 1, true), md)
    assert.is_truthy(md:find("| **Total** ", 1, true), md)
    assert.is_truthy(res:format("html", { locale = "fr" }):find('<tr class="others"><td>Autres</td>', 1, true))
    local _, e2, c2 = h.run(h.cpf_command(("query %s --by annee --others"):format(h.shell_quote(path))))
    assert.are.equal(2, c2)
    assert.are.equal("cpf: --others needs --limit N (the rows kept before Autres)\ntry 'cpf query --help'\n", e2)
  end)
end)

describe("reference tables", function()
  local path, ds, ref
  setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 3000, { seed = 18 }))
    ds = assert(cpf.load(path))
    ref = h.write_file("DEP;population\n01;660000\n35;1100000\n75;2100000\n", ".csv")
  end)
  teardown(function() ds:close() h.cleanup() end)

  it("join on differently named columns and derive a column, from the request language", function()
    local out, err, code = h.run(h.cpf_command(("query %s --by code_officiel_departement --measure montant "
      .. "--where 'code_officiel_departement=01|35|75' --join %s:code_officiel_departement=DEP "
      .. "--with 'eur_hab:money=montant / population' --format csv"):format(h.shell_quote(path), h.shell_quote(ref))))
    assert.are.equal(0, code, err)
    local res = ds:where { code_officiel_departement = { "01", "35", "75" } }:group_by("code_officiel_departement")
      :agg { "montant" }:run()
    local pop = { ["01"] = 660000, ["35"] = 1100000, ["75"] = 2100000 }
    local want = { "code_officiel_departement,montant,population,eur_hab" }
    for _, r in ipairs(res) do
      local p = pop[r.code_officiel_departement]
      local text = require("cpf.format.common").number_text
      want[#want + 1] = ("%s,%s,%d,%s"):format(r.code_officiel_departement, text(r.montant), p, text(r.montant / p))
    end
    assert.are.equal(table.concat(want, "\n") .. "\n", out)
  end)

  it("--with computes + - * / and parentheses of result columns and numbers, and nothing else", function()
    local request = require "cpf.request"
    local req = assert(request.parse { by = "annee", measure = "dossiers,montant",
      with = { "a=(montant + 1) * 2 / dossiers", "b = -dossiers - 1.5", "c=montant/0" } })
    local res = assert(req:run(ds))
    for _, r in ipairs(res) do
      assert.are.equal((r.montant + 1) * 2 / r.dossiers, r.a)
      assert.are.equal(-r.dossiers - 1.5, r.b)
      assert.is_nil(r.c) -- a division by zero: no value
    end
    for text, msg in pairs {
      ["x=os.exit()"] = "--with 'x=os.exit()': '.' does not continue the expression",
      ["x=montant^2"] = "--with 'x=montant^2': '^' does not continue the expression",
      ["x=(montant"] = "--with 'x=(montant': a ')' is missing",
      ["x=montant +"] = "--with 'x=montant +': an operand is missing at the end",
      ["=montant"] = "--with '=montant': expected NAME=EXPRESSION, e.g. eur_hab=montant/population",
      ["x=#montant"] = "--with 'x=#montant': '#' is no number, column or '(' (the operators are + - * / and "
        .. "parentheses)",
    } do
      assert.are.same({ nil, msg, "usage" }, { request.parse { by = "annee", with = text } })
    end
    req = assert(request.parse { by = "annee", with = "x=nope*2" })
    assert.are.same({ nil, "--with 'x=nope*2': no column 'nope' in the result (annee, dossiers, montant)", "usage" },
      { req:run(ds) })
  end)
end)

describe("French order", function()
  local path
  setup(function()
    path = h.write_file("region_lieu_formation;nb_dossiers;montant_engage;date_validation;statut_dossier\n"
      .. "Île-de-France;3;100;2024-01;Validé\nBretagne;1;10;2024-01;Validé\nHauts-de-France;2;50;2024-01;Validé\n"
      .. "Normandie;4;70;2024-01;Validé\nÀ distance;5;20;2024-01;Validé\naquitaine;1;1;2024-01;Validé\n", ".csv")
  end)
  teardown(h.cleanup)

  local function first_column(text, sep)
    local out = {}
    for line in text:gmatch("[^\n]+") do out[#out + 1] = line:match("^[^" .. sep .. "]*") end
    return out
  end

  it("orders text keys French-wise in what people read, before the limit; the machine formats keep bytes", function()
    local function run(args)
      local out, err, code = h.run(h.cpf_command("query " .. h.shell_quote(path) .. " " .. args))
      assert.are.equal(0, code, err)
      return out
    end
    assert.are.same({ "region_lieu_formation", "À distance", "aquitaine", "Bretagne", "Hauts-de-France",
                      "Île-de-France", "Normandie" },
      first_column(run("--by region_lieu_formation --format csv-fr --opt bom=false"), ";"))
    assert.are.same({ "region_lieu_formation", "Bretagne", "Hauts-de-France", "Normandie", "aquitaine", "À distance",
                      "Île-de-France" }, first_column(run("--by region_lieu_formation --format csv"), ","))
    local md = run("--by region_lieu_formation --format markdown --locale fr --limit 3")
    assert.is_truthy(md:find("| À distance ", 1, true) and md:find("| Bretagne ", 1, true), md)
    assert.is_nil(md:find("Normandie", 1, true))
    local desc = run("--by region_lieu_formation --format markdown --locale fr --sort -region_lieu_formation --limit 2")
    assert.is_truthy(desc:find("| Normandie ", 1, true) and desc:find("| Île-de-France ", 1, true), desc)
  end)

  it("is res:sorted(..., {collation = \"fr\"}) in Lua", function()
    local ds = assert(cpf.load(path))
    local res = ds:group_by("region_lieu_formation"):agg { "dossiers" }:run()
    local names = {}
    for i, r in ipairs(res:sorted("region_lieu_formation", { collation = "fr" })) do
      names[i] = r.region_lieu_formation
    end
    assert.are.same({ "À distance", "aquitaine", "Bretagne", "Hauts-de-France", "Île-de-France", "Normandie" }, names)
    assert.is_true(require("cpf.result").french_less("Hauts-de-France", "Île-de-France"))
    ds:close()
  end)

  it("is what the display formats under locale fr and csv-fr show from Lua, in the result's order", function()
    local ds = assert(cpf.load(path))
    local res = ds:group_by("region_lieu_formation"):agg { "dossiers" }:run()
    local french = { "À distance", "aquitaine", "Bretagne", "Hauts-de-France", "Île-de-France", "Normandie" }
    local function names_in(text, pattern)
      local out = {}
      for _, want in ipairs(french) do
        local at = text:find(pattern:format(want), 1, true)
        assert.is_truthy(at, want)
        out[#out + 1] = { at, want }
      end
      table.sort(out, function(a, b) return a[1] < b[1] end)
      for i, x in ipairs(out) do out[i] = x[2] end
      return out
    end
    assert.are.same(french, names_in(res:format("table", { locale = "fr" }), "\n%s "))
    assert.are.same(french, names_in(res:format("markdown", { locale = "fr" }), "| %s "))
    assert.are.same(french, names_in(res:format("html", { locale = "fr", chart = false }), "<td>%s</td>"))
    local csv_fr = first_column(res:format("csv-fr", { bom = false }), ";")
    table.remove(csv_fr, 1) -- the header
    assert.are.same(french, csv_fr)
    -- the machine formats and other locales keep byte order; a result sorted otherwise keeps it
    assert.are.same({ "region_lieu_formation", "Bretagne", "Hauts-de-France", "Normandie", "aquitaine", "À distance",
                      "Île-de-France" }, first_column(res:format("csv"), ","))
    local by_files = res:sorted("-dossiers")
    local order = {}
    for i, r in ipairs(by_files) do order[i] = r.region_lieu_formation end
    assert.are.same(order, names_in(by_files:format("table", { locale = "fr" }), "\n%s "))
    -- rows made in Lua keep the order they were given in
    local mine = cpf.result({ "region_lieu_formation" }, { { region_lieu_formation = "Île-de-France" },
                                                           { region_lieu_formation = "Bretagne" } })
    local text = mine:format("table", { locale = "fr" })
    assert.is_true(text:find("Île-de-France", 1, true) < text:find("Bretagne", 1, true))
    -- cpf.report in French
    local page = cpf.report { title = "t", locale = "fr", sections = { { title = "s", result = res, chart = false } } }
      :format("markdown")
    assert.are.same(french, names_in(page, "| %s "))
    ds:close()
  end)
end)

describe("partial periods", function()
  local path, ds, extraction
  setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 3000, { seed = 19 }))
    ds = assert(cpf.load(path))
    extraction = ds:run { d = cpf.max "date_chargement" }[1].d
  end)
  teardown(function() ds:close() h.cleanup() end)

  it("a result knows its extraction and the periods it does not cover whole", function()
    assert.is_truthy(extraction:match("^%d%d%d%d%-%d%d%-%d%d$"))
    local year = tonumber(extraction:sub(1, 4))
    local m = tonumber(extraction:sub(6, 7))
    local res = ds:group_by("annee", "trimestre"):agg { "dossiers" }:run():change("dossiers", { over = "annee" })
    assert.are.equal(extraction, res:extraction())
    local partial = {}
    for _, p in ipairs(res:partial()) do partial[p.column] = p.value end
    assert.are.equal(year, partial.annee)
    local q = ("%d-T%d"):format(year, math.floor((m - 1) / 3) + 1)
    local has_q = false
    for _, r in ipairs(res) do has_q = has_q or r.trimestre == q end
    assert.are.equal(has_q and q or nil, partial.trimestre)
    assert.are.same({}, ds:group_by("famille"):agg { "dossiers" }:run():partial())
  end)

  it("is said on stderr when a request compares periods, and under a report's table", function()
    local _, err, code = h.run(h.cpf_command(("query %s --by annee --measure dossiers --change dossiers:annee "
      .. "--format csv"):format(h.shell_quote(path))))
    assert.are.equal(0, code, err)
    assert.are.equal(("cpf: note: annee %s is partial: the extraction of %s covers part of it, so its changes and "
      .. "windows compare an incomplete period\n"):format(extraction:sub(1, 4), extraction), err)
    local _, quiet = h.run(h.cpf_command(("query %s --by annee --format csv"):format(h.shell_quote(path))))
    assert.are.equal("", quiet)
    local page = cpf.report { title = "t", dataset = ds, sections = {
      { title = "s", result = ds:group_by("annee"):agg { "dossiers" }:run(), chart = false } } }:format("markdown")
    assert.is_truthy(page:find("Période partielle : " .. extraction:sub(1, 4), 1, true), page)
  end)

  it("marks each change and window value on a partial period with '*' in the display formats", function()
    local year = tonumber(extraction:sub(1, 4))
    local res = ds:group_by("annee"):agg { "dossiers", "montant" }:run()
      :change("dossiers", { over = "annee" }):rolling("montant", 2, { over = "annee" })
    local n = 0
    for _, row in ipairs(res) do
      for _, name in ipairs { "dossiers_evol", "dossiers_evol_pct", "montant_glissant_2" } do
        if row.annee == year and row[name] ~= nil then n = n + 1 end
      end
    end
    assert.are.equal(3, n, "the partial year has its three values")
    local text = res:format("table", { locale = "fr" })
    local stars = select(2, text:gsub("%*", ""))
    assert.are.equal(4, stars, "three cells and the note") -- the cells, then the note's own
    assert.are.equal(("* période incomplète : l'extraction du %s n'en couvre qu'une partie\n"):format(extraction),
                     text:match("[^\n]*\n$"))
    local last = text:match("\n([^\n]*)\n[^\n]*\n$") -- the partial year's row
    assert.are.equal(tostring(year), last:match("^%s*(%d+)"))
    assert.are.equal(3, select(2, last:gsub("%*", "")))
    -- the previous period's value is whole: never marked; nor is any other year
    for line in text:gmatch("[^\n]+") do
      if line:match("^%s*%d%d%d%d ") and not line:match("^%s*" .. year) then assert.is_nil(line:find("*", 1, true)) end
    end
    local md = res:format("markdown")
    assert.are.equal(("\n\n\\* partial period: the extraction of %s covers only part of it\n"):format(extraction),
                     md:match("\n\n[^\n]*\n$"))
    local html = res:format("html", { chart = false, locale = "en" })
    assert.is_truthy(html:find(('<p class="note">* partial period: the extraction of %s covers only part of it</p>')
      :format(extraction), 1, true))
    -- machine formats keep the values as they are
    assert.is_nil(res:format("csv"):find("*", 1, true))
    -- without the partial year, nothing is marked
    local whole = res:where { annee = cpf.lt(year) }
    assert.is_nil(whole:format("table"):find("*", 1, true))
  end)
end)

describe("numbers written with thousands separators", function()
  it("load as numbers when a column is written that way throughout (space, U+00A0, U+202F, '.' before ',')", function()
    local path = h.write_file("code;population;surface;texte;postal\n"
      .. "01;8 235 923;1 234,5;1 23;01 000\n"
      .. "35;1\194\160100\194\160000;12,25;a b;35 000\n"
      .. "75;2\226\128\175100\226\128\175000;105;x;75 001\n"
      .. "2A;999;3 000;y;2A 000\n", ".csv")
    local ds = assert(cpf.load(path))
    local types = {}
    for _, c in ipairs(ds:columns()) do types[c.name] = c.type end
    assert.are.same({ code = "string", population = "integer", surface = "number", texte = "string",
                      postal = "string" }, types)
    assert.are.same({ 8235923, 1100000, 2100000, 999 },
      { ds:get(1, "population"), ds:get(2, "population"), ds:get(3, "population"), ds:get(4, "population") })
    assert.are.same({ 1234.5, 12.25, 105, 3000 },
      { ds:get(1, "surface"), ds:get(2, "surface"), ds:get(3, "surface"), ds:get(4, "surface") })
    ds:close()
    local dots = assert(cpf.load(h.write_file("a;b\n1.234,5;x\n2.000;y\n", ".csv"), { decimal = "," }))
    assert.are.same({ 1234.5, 2000 }, { dots:get(1, "a"), dots:get(2, "a") })
    dots:close()
  end)

  it("follow thousands = / --thousands when it is given: that separator only, or none", function()
    local path = h.write_file("a;b;c\n1 234;1'234;2.345\n12 345 678;12'345;1.000,5\n", ".csv")
    local function typed(opts)
      local ds = assert(cpf.load(path, opts))
      local out = {}
      for _, c in ipairs(ds:columns()) do
        local v = ds:get(1, c.name)
        out[#out + 1] = c.type .. " " .. (type(v) == "number" and ("%.10g"):format(v) or tostring(v))
      end
      ds:close()
      return table.concat(out, ", ")
    end
    assert.are.equal("integer 1234, string 1'234, string 2.345", typed {})
    assert.are.equal("string 1 234, string 1'234, string 2.345", typed { thousands = "none" })
    assert.are.equal("string 1 234, integer 1234, string 2.345", typed { thousands = "'" })
    -- '.' as the separator leaves ',' as the decimal mark: 2.345 is two thousand
    assert.are.equal("string 1 234, string 1'234, number 2345", typed { thousands = "." })
    assert.are.equal([[load: option 'thousands' must be " ", ".", ",", "'" or "none"]],
      h.error_of(function() cpf.load(path, { thousands = "x" }) end))
    assert.are.equal("load: option 'thousands' cannot be the decimal mark too",
      h.error_of(function() cpf.load(path, { thousands = ",", decimal = "," }) end))
    local out, err = h.run(h.cpf_command("query " .. path .. " --by c --measure lignes --thousands . --format csv"))
    assert.are.equal("", err)
    assert.are.equal("c,lignes\n1000.5,1\n2345,1\n", out)
    out, err = h.run(h.cpf_command("query " .. path .. " --thousands x"))
    assert.are.equal("", out)
    assert.are.equal("cpf: --thousands must be ' ', '.', ',', \"'\" or none, got 'x'\ntry 'cpf query --help'\n", err)
  end)
end)

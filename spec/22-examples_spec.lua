-- The example reports (examples/*.lua) run as users run them, `cpf run examples/X.lua DATA`,
-- on a generated 20 000-row file. Each output's shape and key totals are checked against
-- sums computed here with plain ds:get loops (no query, no measure of cpf).
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

local q = h.shell_quote
local _ -- the values a test ignores

local EXAMPLES = { "top10_certifications", "region_year_crosstab", "cancellation_by_department",
                   "funder_mix", "rncp_price_duration", "month_series", "custom_format",
                   "euros_per_inhabitant", "top3_by_region", "year_over_year", "rolling_12_months",
                   "funder_share_by_year", "top10_autres_total" }

local CANCELLED = { ["Clos - Non Réalisé annulé titulaire"] = true, ["Clos - Non Réalisé annulé OF"] = true,
                    ["Dossier annulé gestionnaire"] = true, ["Rejeté"] = true }
local FUNDERS = { "france_competences", "titulaires", "etat", "pole_emploi", "regions", "opco",
                  "entreprises", "cec" }

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local function lines_of(text)
  local t = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do t[#t + 1] = line end
  if t[#t] == "" then t[#t] = nil end
  return t
end

local function chars(s)
  local t = {}
  for ch in s:gmatch("[%z\1-\127\194-\244][\128-\191]*") do t[#t + 1] = ch end
  return t
end

-- A table printed by the "table" format, from its header line at lines[i]: cells are cut at
-- the dash runs of the rule below the header (counted in characters), trimmed; what follows
-- the last column (a bar) is row._bar. Rows end at a blank line or the end of the text.
local function parse_table(lines, i)
  local rule = assert(lines[i + 1], "no rule under the header")
  assert(rule:find("^%-[%- ]*$"), "not a rule: " .. rule)
  local spans, pos = {}, 1
  while true do
    local a, b = rule:find("%-+", pos)
    if not a then break end
    spans[#spans + 1] = { a, b }
    pos = b + 1
  end
  local function cut(line)
    local c = chars(line)
    local cells = {}
    for j, sp in ipairs(spans) do
      cells[j] = sp[1] <= #c and trim(table.concat(c, "", sp[1], math.min(sp[2], #c))) or ""
    end
    local last = spans[#spans][2]
    return cells, last < #c and trim(table.concat(c, "", last + 1, #c)) or ""
  end
  local names = cut(lines[i])
  local rows, j = {}, i + 2
  while lines[j] and lines[j] ~= "" do
    local cells, rest = cut(lines[j])
    local row = { _bar = rest }
    for k, n in ipairs(names) do row[n] = cells[k] end
    rows[#rows + 1] = row
    j = j + 1
  end
  return names, rows, j
end

-- A French display number ("1 234 567,89 €", "12,5 %": narrow no-break spaces) -> 1234567.89
local function fr_num(s)
  if s == nil or s == "" then return nil end
  local t = s:gsub("\226\128\175", ""):gsub("\194\160", ""):gsub("€", ""):gsub("%%", ""):gsub(" ", "")
  return assert(tonumber((t:gsub(",", "."))), "not a number: " .. s)
end

-- "1 234 567.89" -> 1234567.89; "" -> nil
local function num(s)
  if s == nil or s == "" then return nil end
  return assert(tonumber((s:gsub(" ", ""))), "not a number: " .. s)
end

local function cents_of(s) return math.floor(num(s) * 100 + 0.5) end
local function cents(v) return math.floor(v * 100 + 0.5) end

local function near(expected, got, tolerance, what)
  assert(got ~= nil and math.abs(expected - got) <= tolerance,
    ("%s: expected %.6f, got %s"):format(what, expected, tostring(got)))
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

describe("examples", function()
  local data, rows

  local function run_example(name, args, env)
    local out, err, code = h.run((env and ("env " .. env .. " ") or "")
      .. h.cpf_command("run examples/" .. name .. ".lua " .. q(data) .. (args and (" -- " .. args) or "")))
    assert(code == 0, name .. " exited with " .. tostring(code) .. ": " .. err)
    return out, err
  end

  setup(function()
    data = h.tmpname(".csv")
    assert(gen.write(data, 20000, { seed = 77 }))
    local ds = assert(cpf.load(data))
    rows = {}
    for i = 1, #ds do
      local month = ds:get(i, "date_validation")
      local r = {
        month = month, year = tonumber(month:sub(1, 4)),
        status = ds:get(i, "statut_dossier"), type = ds:get(i, "type_referentiel"),
        rncp = ds:get(i, "code_rncp"), rs = ds:get(i, "code_rs"),
        region = ds:get(i, "region_lieu_formation"), dept = ds:get(i, "departement_lieu_formation"),
        dept_code = ds:get(i, "code_officiel_departement"),
        mode = ds:get(i, "modalite_presence"),
        files = ds:get(i, "nb_dossiers"), cents = cents(ds:get(i, "montant_engage")),
        duration = ds:get(i, "duree_moyenne"), known = ds:get(i, "nb_dossiers_a_duree_connue"),
        parts = {},
      }
      for _, f in ipairs(FUNDERS) do r.parts[f] = cents(ds:get(i, "part_" .. f)) end
      rows[i] = r
    end
    ds:close()
  end)
  teardown(h.cleanup)

  it("are all run by this spec, and each says how to run it", function()
    local listed = {}
    for _, name in ipairs(EXAMPLES) do listed[name] = true end
    local p = io.popen("ls examples")
    for file in p:lines() do
      local name = file:match("^(.*)%.lua$")
      if name then
        assert.is_true(listed[name] == true, "examples/" .. file .. " is not checked by spec/22")
        local text = h.read_file("examples/" .. file)
        assert.is_truthy(text:find("cpf run examples/" .. file, 1, true), file)
      end
    end
    p:close()
    for _, name in ipairs(EXAMPLES) do
      assert.is_truthy(io.open("examples/" .. name .. ".lua"), name)
    end
  end)

  it("euros_per_inhabitant: the amount by department over INSEE's population, joined on the code", function()
    -- the population table in INSEE's layout; its figures are illustrative, not INSEE's
    local population = h.fixture "population_departements_illustratif.csv"
    local people = {}
    for line in io.lines(population) do
      local code, pmun = line:match("^[^;]*;[^;]*;([^;]*);[^;]*;[^;]*;[^;]*;[^;]*;(%d+);")
      if code then people[code] = tonumber(pmun) end
    end
    local o, err, code = h.run(h.cpf_command("run examples/euros_per_inhabitant.lua " .. q(data) .. " "
      .. q(population) .. " -- 2024"))
    assert.are.equal(0, code, err)
    local lines = lines_of(o)
    assert.are.equal("Montant engagé par habitant, par département en 2024 (population : PMUN)", lines[1])
    local names, table_rows = parse_table(lines, 2)
    assert.are.same({ "Code du département", "Département", "Dossiers", "Montant engagé", "Habitants",
                      "€ par habitant" }, names)
    local cents_by, files_by = {}, {}
    for _, r in ipairs(rows) do
      if r.year == 2024 then
        local c = r.dept_code or "Non renseigné"
        cents_by[c] = (cents_by[c] or 0) + r.cents
        files_by[c] = (files_by[c] or 0) + r.files
      end
    end
    local n, previous = 0, math.huge
    for _, row in ipairs(table_rows) do
      local c = row["Code du département"]
      n = n + 1
      assert.are.equal(files_by[c], fr_num(row.Dossiers), c)
      assert.are.equal(cents_by[c], math.floor(fr_num(row["Montant engagé"]) * 100 + 0.5), c)
      assert.are.equal(people[c], fr_num(row.Habitants), c) -- none for a missing code
      local per_head = fr_num(row["€ par habitant"])
      if people[c] then
        near(cents_by[c] / 100 / people[c], per_head, 0.005, "per head " .. c)
        assert.is_true(per_head <= previous + 0.005, "sorted by € per inhabitant") -- largest first
        previous = per_head
      else
        assert.is_nil(per_head)
        previous = -math.huge -- the rows without a population come last
      end
    end
    local departments = 0
    for _ in pairs(cents_by) do departments = departments + 1 end
    assert.are.equal(departments, n)
  end)

  it("top3_by_region: the 3 largest amounts of each region, ranked", function()
    local out = run_example("top3_by_region", "2024")
    local lines = lines_of(out)
    assert.are.equal("Les 3 certifications au plus fort montant engagé, par région en 2024", lines[1])
    local names, table_rows = parse_table(lines, 2)
    assert.are.same({ "Région", "Rang", "Certification", "Dossiers", "Montant engagé", "Prix moyen" }, names)
    local by_region = {}
    for _, r in ipairs(rows) do
      if r.year == 2024 then
        local region = r.region or "Non renseigné"
        local name = r.type == "RNCP" and "RNCP" .. r.rncp or r.type == "RS" and "RS" .. r.rs
          or r.type or "hors référentiel"
        by_region[region] = by_region[region] or {}
        local c = by_region[region][name] or { name = name, cents = 0, files = 0 }
        by_region[region][name] = c
        c.cents, c.files = c.cents + r.cents, c.files + r.files
      end
    end
    local expected = 0
    local got = {}
    for _, row in ipairs(table_rows) do
      got[row["Région"]] = got[row["Région"]] or {}
      table.insert(got[row["Région"]], row)
    end
    for region, certs in pairs(by_region) do
      local ranked = {}
      for _, c in pairs(certs) do ranked[#ranked + 1] = c end
      table.sort(ranked, function(a, b) return a.cents > b.cents end)
      local shown = assert(got[region], region)
      assert.are.equal(math.min(3, #ranked), #shown, region)
      for k, row in ipairs(shown) do
        expected = expected + 1
        assert.are.equal(ranked[k].cents, math.floor(fr_num(row["Montant engagé"]) * 100 + 0.5), region)
        assert.are.equal(by_region[region][row.Certification].cents, ranked[k].cents, region)
        assert.are.equal(tostring(k), row.Rang, region) -- no tie among these amounts
      end
    end
    assert.are.equal(expected, #table_rows)
  end)

  it("year_over_year: each region's amount against the year before, and a one-page report", function()
    local page = h.tmpname(".html")
    local out, err = run_example("year_over_year", q(page) .. " 2024")
    assert.are.equal("wrote " .. page .. "\n", err)
    local lines = lines_of(out)
    local names, table_rows = parse_table(lines, 1)
    assert.are.same({ "Région", "Année", "Dossiers", "Montant engagé", "Montant engagé, période précédente",
                      "Évolution (Montant engagé)", "Évolution en % (Montant engagé)" }, names)
    local by_region = {}
    for _, r in ipairs(rows) do
      local region = r.region or "Non renseigné"
      by_region[region] = by_region[region] or {}
      by_region[region][r.year] = (by_region[region][r.year] or 0) + r.cents
    end
    local n, previous = 0, math.huge
    for _, row in ipairs(table_rows) do
      n = n + 1
      local c = by_region[row["Région"]]
      assert.are.equal("2024", row["Année"])
      assert.are.equal(c[2024], math.floor(fr_num(row["Montant engagé"]) * 100 + 0.5))
      assert.are.equal(c[2023], math.floor(fr_num(row["Montant engagé, période précédente"]) * 100 + 0.5))
      assert.are.equal(c[2024] - c[2023], math.floor(fr_num(row["Évolution (Montant engagé)"]) * 100 + 0.5))
      local pct = fr_num(row["Évolution en % (Montant engagé)"])
      near(100 * (c[2024] - c[2023]) / c[2023], pct, 0.051, "change " .. row["Région"])
      assert.is_true(pct <= previous, "largest rise first")
      previous = pct
    end
    local regions = 0
    for _, years in pairs(by_region) do if years[2024] then regions = regions + 1 end end
    assert.are.equal(regions, n)
    local html = h.read_file(page)
    assert.is_truthy(html:find("Montant engagé par région : 2024 par rapport à 2023", 1, true))
    assert.is_truthy(html:find("<svg", 1, true), "a chart")
  end)

  it("top10_certifications: the 10 largest amounts of the last full year", function()
    local function check(out, year)
      local lines = lines_of(out)
      local title_year, files, amount = lines[1]:match(
        "^Top 10 certifications by amount in (%d+) %(all certifications: (%d+) files, ([%d.]+) €%)$")
      assert.is_truthy(title_year, lines[1])
      assert.are.equal(year, tonumber(title_year))
      local total_files, total_cents, by_cert = 0, 0, {}
      for _, r in ipairs(rows) do
        if r.year == year then
          local name = r.type == "RNCP" and "RNCP" .. r.rncp or r.type == "RS" and "RS" .. r.rs
            or r.type or "hors référentiel"
          local c = by_cert[name] or { name = name, files = 0, cents = 0 }
          by_cert[name] = c
          c.files, c.cents = c.files + r.files, c.cents + r.cents
          total_files, total_cents = total_files + r.files, total_cents + r.cents
        end
      end
      assert.are.equal(total_files, tonumber(files))
      assert.are.equal(("%d.%02d"):format(math.floor(total_cents / 100), total_cents % 100), amount)
      local ranked = {}
      for _, c in pairs(by_cert) do ranked[#ranked + 1] = c end
      table.sort(ranked, function(a, b) return a.cents > b.cents end)
      local names, table_rows = parse_table(lines, 2)
      assert.are.same({ "rang", "certification", "dossiers", "montant", "prix_moyen", "part" }, names)
      assert.are.equal(math.min(10, #ranked), #table_rows)
      for k, row in ipairs(table_rows) do
        local c = ranked[k]
        assert.are.equal(tostring(k), row.rang)
        assert.are.equal(c.name, row.certification)
        assert.are.equal(c.files, num(row.dossiers))
        assert.are.equal(c.cents, cents_of(row.montant))
        near(c.cents / 100 / c.files, num(row.prix_moyen), 0.0051, "prix_moyen " .. c.name)
        near(c.cents / total_cents, num(row.part), 0.00006, "part " .. c.name)
      end
    end
    local last = ""
    for _, r in ipairs(rows) do if r.month > last then last = r.month end end
    local year = tonumber(last:sub(1, 4))
    if last:sub(6, 7) ~= "12" then year = year - 1 end
    check(run_example("top10_certifications"), year)
    check(run_example("top10_certifications", "2021"), 2021)
  end)

  it("region_year_crosstab: files and average price by region and year, with totals", function()
    local lines = lines_of(run_example("region_year_crosstab"))
    assert.are.equal("Files (Σ nb_dossiers) by region and year", lines[1])
    local cells, years, regions = {}, {}, {}
    local function add(t, region, year, f, c)
      t[region] = t[region] or {}
      local cell = t[region][year] or { files = 0, cents = 0 }
      t[region][year] = cell
      cell.files, cell.cents = cell.files + f, cell.cents + c
    end
    for _, r in ipairs(rows) do
      local region = r.region or "(sans région)"
      years[r.year] = true
      regions[region] = true
      for _, reg in ipairs { region, "France entière" } do
        for _, y in ipairs { r.year, "all" } do add(cells, reg, y, r.files, r.cents) end
      end
    end
    local year_list = sorted_keys(years)
    local region_list = {}
    for _, reg in ipairs(sorted_keys(regions)) do
      if reg ~= "(sans région)" then region_list[#region_list + 1] = reg end
    end
    if regions["(sans région)"] then region_list[#region_list + 1] = "(sans région)" end
    region_list[#region_list + 1] = "France entière"

    local function check(first_line, total_name, value_of, tolerance)
      local names, table_rows, next_line = parse_table(lines, first_line)
      local expected_names = { "region_lieu_formation" }
      for _, y in ipairs(year_list) do expected_names[#expected_names + 1] = tostring(y) end
      expected_names[#expected_names + 1] = total_name
      assert.are.same(expected_names, names)
      assert.are.equal(#region_list, #table_rows)
      for k, row in ipairs(table_rows) do
        local reg = region_list[k]
        assert.are.equal(reg, row.region_lieu_formation)
        for _, y in ipairs(year_list) do
          local cell = cells[reg][y]
          if cell then near(value_of(cell), num(row[tostring(y)]), tolerance, reg .. " " .. y)
          else assert.are.equal("", row[tostring(y)]) end
        end
        near(value_of(cells[reg].all), num(row[total_name]), tolerance, reg .. " " .. total_name)
      end
      return next_line
    end
    local after = check(2, "total", function(c) return c.files end, 0)
    assert.are.equal("", lines[after])
    assert.are.equal("Average price (Σ montant_engage / Σ nb_dossiers) by region and year, €", lines[after + 1])
    check(after + 2, "ensemble", function(c) return c.cents / 100 / c.files end, 0.0051)
  end)

  it("cancellation_by_department: an HTML page with a chart, the 10 highest rates on stdout", function()
    local page = h.tmpname(".html")
    local out, err = run_example("cancellation_by_department", q(page))
    local by_dept, total_files, total_cancelled = {}, 0, 0
    for _, r in ipairs(rows) do
      if r.dept then
        local d = by_dept[r.dept] or { name = r.dept, files = 0, cancelled = 0 }
        by_dept[r.dept] = d
        d.files = d.files + r.files
        if CANCELLED[r.status] then d.cancelled = d.cancelled + r.files end
        total_files = total_files + r.files
        if CANCELLED[r.status] then total_cancelled = total_cancelled + r.files end
      end
    end
    local ranked = {}
    for _, d in pairs(by_dept) do
      d.rate = d.cancelled / d.files
      ranked[#ranked + 1] = d
    end
    table.sort(ranked, function(a, b)
      if a.rate ~= b.rate then return a.rate > b.rate end
      return a.name < b.name
    end)
    assert.are.equal(("wrote %s: %d departments\n"):format(page, #ranked), err)
    local lines = lines_of(out)
    assert.are.equal("The 10 departments with the highest cancellation rates", lines[1])
    local names, table_rows = parse_table(lines, 2)
    assert.are.same({ "departement_lieu_formation", "dossiers", "annules", "taux_annulation" }, names)
    assert.are.equal(10, #table_rows)
    for k, row in ipairs(table_rows) do
      local d = ranked[k]
      assert.are.equal(d.name, row.departement_lieu_formation)
      assert.are.equal(d.files, num(row.dossiers))
      assert.are.equal(d.cancelled, num(row.annules))
      near(d.rate, num(row.taux_annulation), 0.00006, d.name)
    end
    -- the page: a chart, then one table row per department adding up to the totals
    local html = h.read_file(page)
    assert.is_truthy(html:find("^<!DOCTYPE html>"))
    assert.is_truthy(html:find("<svg", 1, true))
    assert.is_truthy(html:find("<h1>Taux d", 1, true))
    local count, files, cancelled = 0, 0, 0
    -- a French page (cpf.report): 1 234 with U+202F, rates 35,2 %
    local n, nb = "[%d\226\128\175]+", "\226\128\175"
    local row = '<tr><td>[^<]*</td><td class="num">(' .. n .. ')</td><td class="num">(' .. n .. ')</td>'
      .. '<td class="num">%d+,%d\194\160%%</td></tr>'
    for f, c in html:gmatch(row) do
      count = count + 1
      files, cancelled = files + tonumber((f:gsub(nb, ""))), cancelled + tonumber((c:gsub(nb, "")))
    end
    assert.is_truthy(html:find("<h2>Part des dossiers annulés", 1, true))
    assert.is_truthy(html:find("extraction du ", 1, true), "the source line")
    assert.are.equal(#ranked, count)
    assert.are.equal(total_files, files)
    assert.are.equal(total_cancelled, cancelled)
    assert.are.equal(#ranked, select(2, html:gsub("<rect ", "")))
  end)

  it("funder_mix: shares and amounts by funder and year, with totals", function()
    local lines = lines_of(run_example("funder_mix"))
    local parts, amounts, years = {}, {}, {}
    for _, r in ipairs(rows) do
      local y = tostring(r.year)
      years[r.year] = true
      amounts[y] = (amounts[y] or 0) + r.cents
      parts[y] = parts[y] or {}
      for _, f in ipairs(FUNDERS) do parts[y][f] = (parts[y][f] or 0) + r.parts[f] end
    end
    local expected_names = { "financeur" }
    for _, y in ipairs(sorted_keys(years)) do expected_names[#expected_names + 1] = tostring(y) end

    assert.are.equal("Share of the amount committed, by funder and year", lines[1])
    local names, shares, after = parse_table(lines, 2)
    assert.are.same(expected_names, names)
    assert.are.equal(#FUNDERS + 1, #shares)
    for k, f in ipairs(FUNDERS) do
      assert.are.equal(f, shares[k].financeur)
      for j = 2, #names do
        local y = names[j]
        near(parts[y][f] / amounts[y], num(shares[k][y]), 0.00006, f .. " " .. y)
      end
    end
    assert.are.equal("total", shares[#shares].financeur)
    for j = 2, #names do assert.are.equal("1.0000", shares[#shares][names[j]]) end

    assert.are.equal("Amount committed by funder and year, €", lines[after + 1])
    local names2, money = parse_table(lines, after + 2)
    assert.are.same(expected_names, names2)
    assert.are.equal(#FUNDERS + 1, #money)
    for k, f in ipairs(FUNDERS) do
      for j = 2, #names2 do assert.are.equal(parts[names2[j]][f], cents_of(money[k][names2[j]]), f) end
    end
    assert.are.equal("montant_engage", money[#money].financeur)
    for j = 2, #names2 do assert.are.equal(amounts[names2[j]], cents_of(money[#money][names2[j]])) end
  end)

  it("rncp_price_duration: weighted price and duration by attendance mode", function()
    local files_by_code = {}
    for _, r in ipairs(rows) do
      if r.rncp ~= "-1" then files_by_code[r.rncp] = (files_by_code[r.rncp] or 0) + r.files end
    end
    local codes = {}
    for code, f in pairs(files_by_code) do codes[#codes + 1] = { code = code, files = f } end
    table.sort(codes, function(a, b)
      if a.files ~= b.files then return a.files > b.files end
      return a.code < b.code
    end)

    local function check(out, code)
      local lines = lines_of(out)
      assert.are.equal(("RNCP%s: average price (€) and duration (hours) by attendance mode"):format(code), lines[1])
      local stats = {}
      local function add(key, r)
        local s = stats[key] or { files = 0, cents = 0, dw = 0, w = 0 }
        stats[key] = s
        s.files, s.cents = s.files + r.files, s.cents + r.cents
        if r.duration and r.known then s.dw, s.w = s.dw + r.duration * r.known, s.w + r.known end
      end
      for _, r in ipairs(rows) do
        if r.rncp == code then add(r.mode, r) add("ensemble", r) end
      end
      local modes = sorted_keys(stats)
      for i, m in ipairs(modes) do if m == "ensemble" then table.remove(modes, i) break end end
      modes[#modes + 1] = "ensemble"
      local names, table_rows = parse_table(lines, 2)
      assert.are.same({ "modalite_presence", "dossiers", "montant", "prix_moyen", "duree_moyenne" }, names)
      assert.are.equal(#modes, #table_rows)
      for k, row in ipairs(table_rows) do
        local s = stats[modes[k]]
        assert.are.equal(modes[k], row.modalite_presence)
        assert.are.equal(s.files, num(row.dossiers))
        assert.are.equal(s.cents, cents_of(row.montant))
        near(s.cents / 100 / s.files, num(row.prix_moyen), 0.0051, modes[k] .. " price")
        if s.w > 0 then near(s.dw / s.w, num(row.duree_moyenne), 0.0051, modes[k] .. " duration")
        else assert.are.equal("", row.duree_moyenne) end
      end
      assert.are.equal(files_by_code[code], num(table_rows[#table_rows].dossiers))
    end
    check(run_example("rncp_price_duration"), codes[1].code)
    check(run_example("rncp_price_duration", "RNCP" .. codes[3].code), codes[3].code)
    check(run_example("rncp_price_duration", codes[2].code), codes[2].code)
  end)

  it("month_series: files per month with a bar column", function()
    local by_month, total = {}, 0
    for _, r in ipairs(rows) do
      by_month[r.month] = (by_month[r.month] or 0) + r.files
      total = total + r.files
    end
    local months = sorted_keys(by_month)
    local max = 0
    for _, f in pairs(by_month) do if f > max then max = f end end

    local lines = lines_of(run_example("month_series", nil, "NO_COLOR=1"))
    assert.are.equal("Files per month", lines[1])
    local names, table_rows = parse_table(lines, 2)
    assert.are.same({ "mois", "dossiers", "montant" }, names)
    assert.are.equal(#months, #table_rows)
    local sum = 0
    for k, row in ipairs(table_rows) do
      assert.are.equal(months[k], row.mois)
      local f = by_month[months[k]]
      assert.are.equal(f, num(row.dossiers))
      assert.are.equal(("#"):rep(math.floor(f / max * 30 + 0.5)), row._bar)
      sum = sum + num(row.dossiers)
    end
    assert.are.equal(total, sum)

    -- Unicode blocks on a UTF-8 terminal: the largest month gets 30 full blocks
    lines = lines_of(run_example("month_series", nil, "NO_COLOR= LC_ALL=C.UTF-8"))
    _, table_rows = parse_table(lines, 2)
    for k, row in ipairs(table_rows) do
      if by_month[months[k]] == max then assert.are.equal(("█"):rep(30), row._bar) end
      assert.is_true(#chars(row._bar) <= 30)
      assert.is_nil(row._bar:find("#", 1, true))
    end

    -- a range of months
    lines = lines_of(run_example("month_series", "2024-03 2024", "NO_COLOR=1"))
    _, table_rows = parse_table(lines, 2)
    local expected = {}
    for _, m in ipairs(months) do if m >= "2024-03" and m <= "2024-12" then expected[#expected + 1] = m end end
    assert.are.equal(#expected, #table_rows)
    for k, row in ipairs(table_rows) do assert.are.equal(expected[k], row.mois) end
  end)

  it("custom_format: a format registered in under 20 lines, used by the script and by cpf query", function()
    local source = h.read_file("examples/custom_format.lua")
    local first, last
    for n, line in ipairs(lines_of(source)) do
      if not first and line:find("^cpf%.formats%.register%(") then first = n end
      if first and not last and line:find("^end%)") then last = n end
    end
    assert.is_truthy(first and last, "no cpf.formats.register(...) block")
    assert.is_true(last - first + 1 < 20, ("the format takes %d lines"):format(last - first + 1))

    local by_key, total = {}, 0
    local family = function(s)
      if s == "Validé" then return "validated" end
      if s == "Entrée en formation" then return "in_training" end
      if s == "Sortie de formation" then return "left_training" end
      if s:find("^Clos %- Réalisation") then return "completed" end
      return "cancelled"
    end
    for _, r in ipairs(rows) do
      local key = r.year .. " " .. family(r.status)
      by_key[key] = (by_key[key] or 0) + r.files
      total = total + r.files
    end
    local out = run_example("custom_format")
    local count, sum = 0, 0
    for _, line in ipairs(lines_of(out)) do
      local y, fam, files = line:match('^INSERT INTO cpf_annee_famille %("annee", "famille", "dossiers", "montant"%) '
        .. "VALUES %((%d+), '([%w_]+)', (%d+), [%d.]+%);$")
      assert.is_truthy(y, line)
      assert.are.equal(by_key[y .. " " .. fam], tonumber(files), line)
      count, sum = count + 1, sum + tonumber(files)
    end
    assert.are.equal(#sorted_keys(by_key), count)
    assert.are.equal(total, sum)

    -- from the command line, with --plugin
    local years = {}
    for _, r in ipairs(rows) do years[r.year] = (years[r.year] or 0) + r.files end
    local qout, err, code = h.run(h.cpf_command("query " .. q(data)
      .. " --by annee --measure dossiers --plugin examples/custom_format.lua --format sql --opt table=t"))
    assert.are.equal(0, code, err)
    local expected = {}
    for _, y in ipairs(sorted_keys(years)) do
      expected[#expected + 1] = ('INSERT INTO t ("annee", "dossiers") VALUES (%d, %d);'):format(y, years[y])
    end
    assert.are.equal(table.concat(expected, "\n") .. "\n", qout)
  end)
  -- the rows of a CSV output (no quoted field in these), as lists of fields
  local function csv_rows(text)
    local out = {}
    for line in text:gmatch("[^\n]+") do
      local fields = {}
      for f in (line .. ","):gmatch("(.-),") do fields[#fields + 1] = f end
      out[#out + 1] = fields
    end
    return out
  end
  local function month_number(m) return tonumber(m:sub(1, 4)) * 12 + tonumber(m:sub(6, 7)) - 1 end

  it("rolling_12_months: each region's amount over the 12 calendar months to each month, and a year before", function()
    local out = run_example("rolling_12_months", "2025-06")
    local t = csv_rows(out)
    assert.are.same({ "region_lieu_formation", "mois", "montant", "montant_glissant_12", "montant_glissant_12_prec",
                      "montant_glissant_12_evol", "montant_glissant_12_evol_pct" }, t[1])
    local by, first = {}, {}
    for _, r in ipairs(rows) do
      if r.region then
        local m = month_number(r.month)
        by[r.region .. "|" .. m] = (by[r.region .. "|" .. m] or 0) + r.cents
        if not first[r.region] or m < first[r.region] then first[r.region] = m end
      end
    end
    local function window(region, m)
      if m - 11 < first[region] then return nil end
      local total = 0
      for k = m - 11, m do total = total + (by[region .. "|" .. k] or 0) end
      return total
    end
    assert.is_true(#t > 50)
    for i = 2, #t do
      local region, m = t[i][1], month_number(t[i][2])
      assert.is_true(m >= month_number("2024-07") and m <= month_number("2025-06"))
      local want = window(region, m)
      assert.are.equal(want, t[i][4] ~= "" and cents_of(t[i][4]) or nil, region .. " " .. t[i][2])
      -- the rolling value of the same month a year before: none when that month has no row
      local before = by[region .. "|" .. (m - 12)] and window(region, m - 12) or nil
      assert.are.equal(before, t[i][5] ~= "" and cents_of(t[i][5]) or nil, region .. " " .. t[i][2])
      if want and before then assert.are.equal(want - before, cents_of(t[i][6])) end
    end
  end)

  it("funder_share_by_year: each funder's share of each year's funding, funder x year", function()
    local t = csv_rows(run_example("funder_share_by_year", "csv"))
    local years = {}
    for j = 2, #t[1] do years[j] = tonumber(t[1][j]) end
    local part, total = {}, {}
    for _, r in ipairs(rows) do
      for _, f in ipairs(FUNDERS) do
        part[f .. "|" .. r.year] = (part[f .. "|" .. r.year] or 0) + r.parts[f]
        total[r.year] = (total[r.year] or 0) + r.parts[f]
      end
    end
    assert.are.equal(#FUNDERS + 1, #t)
    for i = 2, #t do
      local f = t[i][1]
      for j = 2, #t[i] do
        local want = part[f .. "|" .. years[j]] / total[years[j]]
        near(want, num(t[i][j]), 1e-12, f .. " " .. years[j])
      end
    end
  end)

  it("top10_autres_total: the 10 largest RNCP amounts, Autres and Total, each price Σ amount / Σ files", function()
    local t = csv_rows(run_example("top10_autres_total", "2024 csv"))
    assert.are.same({ "code_rncp", "dossiers", "montant", "prix_moyen", "row_kind" }, t[1])
    local by = {}
    local all_files, all_cents = 0, 0
    for _, r in ipairs(rows) do
      if r.year == 2024 and r.type == "RNCP" then
        local c = by[r.rncp or ""] or { files = 0, cents = 0 }
        by[r.rncp or ""] = c
        c.files, c.cents = c.files + r.files, c.cents + r.cents
        all_files, all_cents = all_files + r.files, all_cents + r.cents
      end
    end
    assert.are.equal(13, #t)
    local top_files, top_cents = 0, 0
    for i = 2, 11 do
      local c = by[t[i][1]]
      assert.are.equal("group", t[i][5])
      assert.are.equal(c.files, tonumber(t[i][2]))
      assert.are.equal(c.cents, cents_of(t[i][3]))
      top_files, top_cents = top_files + c.files, top_cents + c.cents
    end
    local autres, total = t[12], t[13]
    assert.are.same({ "", "others" }, { autres[1], autres[5] })
    assert.are.equal(all_files - top_files, tonumber(autres[2]))
    assert.are.equal(all_cents - top_cents, cents_of(autres[3]))
    near((all_cents - top_cents) / 100 / (all_files - top_files), num(autres[4]), 1e-12, "prix Autres")
    assert.are.same({ "", "total" }, { total[1], total[5] })
    assert.are.equal(all_files, tonumber(total[2]))
    near(all_cents / 100 / all_files, num(total[4]), 1e-12, "prix Total")
  end)
end)

-- A history folder (one snapshot per extraction, as cpf fetch writes them): cpf.history and
-- cpf history, a folder as DATA, cpf changes / cpf.changes between two extractions and
-- cpf cohorts / cpf.cohorts, each checked against sums made here from the CSV's own rows.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"
local history = require "cpf.history"

local q = h.shell_quote

-- Sums of a generated CSV made here, row by row: per key value (key(row) -> text), rows, files
-- (nb_dossiers) and cents of montant_engage.
local function sums_of(path, key)
  local out, names = {}, nil
  h.read_csv(h.read_file(path), function(record)
    if not names then
      names = {}
      for i, v in ipairs(record) do names[require("cpf.schema").normalize(v)] = i end
      return
    end
    local k = key and key(record, names) or ""
    local t = out[k] or { rows = 0, files = 0, cents = 0 }
    out[k] = t
    t.rows = t.rows + 1
    t.files = t.files + (tonumber(record[names.nb_dossiers]) or 0)
    t.cents = t.cents + h.cents_of_text(record[names.montant_engage])
  end)
  return out
end

local function year_of(record, names) return record[names.date_validation]:sub(1, 4) end

describe("a history folder", function()
  local dir, csvs = nil, {}

  lazy_setup(function()
    dir = h.tmpname("-history")
    assert(require("cpf.core").make_dirs(dir))
    for i, spec in ipairs { { "2026-03-04", 2000, 61 }, { "2026-04-03", 2100, 62 }, { "2026-05-04", 2200, 63 } } do
      local csv = h.tmpname(".csv")
      assert(gen.write(csv, spec[2], { seed = spec[3], extraction_date = spec[1] }))
      csvs[i] = { path = csv, date = spec[1], rows = spec[2] }
      local ds = assert(cpf.load(csv))
      assert(ds:save(history.snapshot_path(dir, spec[1])))
      ds:close()
      assert(history.record(dir, spec[1], { modified = spec[1] .. "T06:00:00+00:00", records_count = spec[2] }, ""))
    end
    assert(history.link_latest(dir))
  end)
  lazy_teardown(h.cleanup)

  it("opens an extraction by date, latest or previous, and says what it holds otherwise", function()
    local hist = assert(cpf.history(dir))
    local dates = {}
    for i, e in ipairs(hist:extractions()) do dates[i] = e.date .. ":" .. e.records_count end
    assert.are.same({ "2026-03-04:2000", "2026-04-03:2100", "2026-05-04:2200" }, dates)
    assert.are.equal(2200, #assert(hist:open()))
    assert.are.equal(2100, #assert(hist:open("previous")))
    local ds, e = assert(hist:open("2026-03-04"))
    assert.are.same({ 2000, "2026-03-04" }, { #ds, e.date })
    assert.are.same({ nil, dir .. ": no extraction of 2026-01-01 (it holds 2026-03-04, 2026-04-03, 2026-05-04)",
                      "usage" }, { hist:open("2026-01-01") })
    assert.are.same({ nil, dir .. ": 'hier' is no extraction: latest, previous or a date YYYY-MM-DD", "usage" },
      { hist:open("hier") })
    local empty = h.tmpname("-empty")
    assert(require("cpf.core").make_dirs(empty))
    assert.are.same({ nil, empty .. ": no previous extraction (it holds none: cpf fetch " .. empty .. ")", "usage" },
      { assert(cpf.history(empty)):open("previous") })
    assert.are.equal("usage", select(3, cpf.history(csvs[1].path)))
  end)

  it("stands for its latest extraction wherever a data file goes", function()
    local latest = dir .. "/cpf-latest.cpfsnap"
    assert.are.equal(2200, #assert(cpf.open(dir)))
    assert.are.equal(2200, #assert(cpf.source(dir)):load())
    assert.are.equal(2200, #select(2, assert(cpf.load_async(dir)):wait()))
    assert.is_true(cpf.is_snapshot(dir))
    local by_dir = h.run(h.cpf_command("query " .. q(dir) .. " --by annee --format csv"))
    local by_file = h.run(h.cpf_command("query " .. q(latest) .. " --by annee --format csv"))
    assert.are.equal(by_file, by_dir)
    local empty = h.tmpname("-empty")
    assert(require("cpf.core").make_dirs(empty))
    -- a folder with none: refused as a folder is
    assert.are.same({ nil, empty .. ": not a snapshot: not a regular file", "io" }, { cpf.open(empty) })
  end)

  it("cpf history lists each extraction's rows, files and amount", function()
    local out, err, code = h.run(h.cpf_command("history " .. q(dir) .. " --format csv"))
    assert.are.equal(0, code, err)
    local expected = { "extraction,lignes,dossiers,montant" }
    for _, c in ipairs(csvs) do
      local t = sums_of(c.path)[""]
      expected[#expected + 1] = ("%s,%d,%d,%s"):format(c.date, t.rows, t.files,
        cpf.formats.number_text(t.cents / 100))
    end
    assert.are.equal(table.concat(expected, "\n") .. "\n", out)
  end)

  it("compares two extractions per key: the older, the newer and the difference, added and removed keys", function()
    local old, new = assert(cpf.open(history.snapshot_path(dir, "2026-03-04"))), assert(cpf.open(dir))
    local res = assert(cpf.changes(old, new, { by = "annee", measure = "dossiers,montant,prix_moyen" }))
    assert.are.same({ "annee", "dossiers_prec", "dossiers", "dossiers_evol", "montant_prec", "montant", "montant_evol",
                      "prix_moyen_prec", "prix_moyen", "prix_moyen_evol", "change" }, res:columns())
    local before, after = sums_of(csvs[1].path, year_of), sums_of(csvs[3].path, year_of)
    for _, row in ipairs(res) do
      local y = tostring(row.annee)
      local a, b = before[y] or { files = 0, cents = 0 }, after[y] or { files = 0, cents = 0 }
      assert.are.same({ a.files, b.files, b.files - a.files }, { row.dossiers_prec, row.dossiers, row.dossiers_evol })
      local function cents(v) return math.floor(v * 100 + 0.5) end
      assert.are.same({ a.cents, b.cents, b.cents - a.cents },
        { cents(row.montant_prec), cents(row.montant), cents(row.montant_evol) })
      -- a difference of amounts exact to the cent, as the query sums them
      assert.are.equal(row.montant_evol, (cents(row.montant) - cents(row.montant_prec)) / 100)
      assert.are.equal(a.files == b.files and a.cents == b.cents and "unchanged" or "revised", row.change)
    end
    -- a key on one side only: 0 for sums and counts, missing for ratios
    local other = assert(cpf.load(csvs[2].path))
    local by_rncp = assert(cpf.changes(old, other, { by = "code_rncp", measure = "dossiers,prix_moyen" }))
    local added, removed = 0, 0
    for _, row in ipairs(by_rncp) do
      if row.change == "added" then
        added = added + 1
        assert.are.same({ 0, nil, nil }, { row.dossiers_prec, row.prix_moyen_prec, row.prix_moyen_evol })
        assert.are.equal(row.dossiers, row.dossiers_evol)
      elseif row.change == "removed" then
        removed = removed + 1
        assert.are.same({ 0, nil }, { row.dossiers, row.prix_moyen })
        assert.are.equal(-row.dossiers_prec, row.dossiers_evol)
      end
    end
    assert.is_true(added > 0 and removed > 0, "keys on one side only")
    -- every file counted once on each side
    local total_old, total_new = 0, 0
    for _, row in ipairs(by_rncp) do total_old, total_new = total_old + row.dossiers_prec, total_new + row.dossiers end
    assert.are.same({ sums_of(csvs[1].path)[""].files, sums_of(csvs[2].path)[""].files }, { total_old, total_new })
    assert.are.same({ nil, "changes: takes where, by and measure, not 'sort'", "usage" },
      { cpf.changes(old, new, { sort = "annee" }) })
  end)

  it("cpf changes DIR compares the previous and the latest extraction, or the two named", function()
    local out, err, code = h.run(h.cpf_command("changes " .. q(dir) .. " --by annee --format csv"))
    assert.are.equal(0, code, err)
    assert.are.equal("cpf: changes from 2026-04-03 (2100 rows) to 2026-05-04 (2200 rows)\n", err)
    local res = assert(cpf.changes(assert(cpf.history(dir)):open("previous"), assert(cpf.open(dir)), { by = "annee" }))
    assert.are.equal(res:format("csv"), out)
    local _, err2, code2 = h.run(h.cpf_command("changes " .. q(dir) .. " 2026-03-04 latest --by annee"))
    assert.are.equal(0, code2, err2)
    assert.are.equal("cpf: changes from 2026-03-04 (2000 rows) to 2026-05-04 (2200 rows)\n", err2)
    -- the page in French
    local page = h.tmpname(".html")
    local _, err4, code4 = h.run(h.cpf_command(("changes %s --html %s"):format(q(dir), q(page))))
    assert.are.equal(0, code4, err4)
    local html = h.read_file(page)
    h.check_markup(html)
    local titles = {}
    for t in html:gmatch("<h[12][^>]*>(.-)</h[12]>") do titles[#titles + 1] = t end
    assert.are.same({ "Ce qui a changé entre les extractions du 3 avril 2026 et du 4 mai 2026", "Ensemble",
                      "Par année de validation", "Par famille de statut", "Mois de validation révisés" }, titles)
    local _, err3, code3 = h.run(h.cpf_command("changes " .. q(dir) .. " 2026-01-01 latest"))
    assert.are.equal(2, code3)
    assert.are.equal(("cpf: %s: no extraction of 2026-01-01 (it holds 2026-03-04, 2026-04-03, 2026-05-04)\n"
      .. "try 'cpf changes --help'\n"):format(dir), err3)
  end)

  it("gives each validation month's files by status family, the recent months flagged", function()
    local ds = assert(cpf.open(dir))
    local res = assert(cpf.cohorts(ds))
    local by_month = {}
    for _, row in ipairs(ds:group_by("mois", "famille"):agg { "dossiers" }:run()) do
      local t = by_month[row.mois] or {}
      by_month[row.mois] = t
      t[row.famille] = row.dossiers
    end
    local families = require("cpf.schema").family_order
    local recent = 0
    for _, row in ipairs(res) do
      local t, total = by_month[row.mois], 0
      for _, f in ipairs(families) do total = total + (t[f] or 0) end
      assert.are.equal(total, row.dossiers)
      local sum = 0
      for _, f in ipairs(families) do
        assert.are.equal((t[f] or 0) / total, row["share_" .. f])
        sum = sum + row["share_" .. f]
      end
      assert.is_true(math.abs(sum - 1) < 1e-9)
      -- the extraction is of May 2026: June 2025 to May 2026 are recent
      assert.are.equal(row.mois >= "2025-06" and "recent" or "closed", row.cohort, row.mois)
      if row.cohort == "recent" then recent = recent + 1 end
    end
    assert.is_true(recent > 0)
    local three = assert(cpf.cohorts(ds, { recent_months = 3 }))
    for _, row in ipairs(three) do assert.are.equal(row.mois >= "2026-03" and "recent" or "closed", row.cohort) end
    local out, err, code = h.run(h.cpf_command("cohorts " .. q(dir) .. " --recent-months 3 --format csv"))
    assert.are.equal(0, code, err)
    assert.are.equal(three:format("csv"), out)
  end)
end)

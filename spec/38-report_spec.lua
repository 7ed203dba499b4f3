-- cpf.report (issue 13): one page of several results that a French analyst sends as it is: the
-- exact Markdown, the HTML page's structure, its errors, and the page as headless Chromium
-- renders it (a DOM check and a PNG in build/ to look at).
local h = require "spec.helpers"
local cpf = require "cpf"

local N, S = "\226\128\175", "\194\160"

local CSV = table.concat({
  "date_chargement;date_validation;statut_dossier;region_lieu_formation;nb_dossiers;montant_engage",
  "2026-05-04;2024-01;Validé;Bretagne;1200;1234567,89",
  "2026-05-04;2024-02;Rejeté;Bretagne;300;0",
  "2026-05-04;2025-03;Validé;;5;250,5",
  "2026-05-04;2025-01;Clos - Réalisation Totale;Île-de-France;2;-1500",
}, "\n") .. "\n"

describe("cpf.report", function()
  local ds, rep
  setup(function()
    ds = assert(cpf.load(h.write_file(CSV, ".csv")))
    rep = cpf.report {
      title = "Formations engagées", subtitle = "Bretagne et Île-de-France", dataset = ds,
      sections = {
        { title = "Par région", result = ds:group_by("region_lieu_formation"):agg { "dossiers", "montant" }
            :order_by("-montant"):run(), note = "Montants en euros." },
        { title = "Par famille", result = ds:group_by("famille"):agg { "dossiers", "taux_annulation" }:run(),
          chart = false },
      },
    }
  end)
  teardown(function() ds:close() h.cleanup() end)

  it("writes Markdown: titles, the tables in French, notes and the source line from the data", function()
    local expected = table.concat({
      "# Formations engagées", "", "_Bretagne et Île-de-France_", "", "## Par région", "",
      "| Région        | Dossiers | Montant engagé |",
      "|---------------|---------:|---------------:|",
      "| Bretagne      |    1~500 | 1~234~567,89`€ |",
      "| Non renseigné |        5 |       250,50`€ |",
      "| Île-de-France |        2 |    -1~500,00`€ |",
      "", "Montants en euros.", "", "## Par famille", "",
      "| Famille de statut | Dossiers | Taux d'annulation |",
      "|-------------------|---------:|------------------:|",
      "| Validés           |    1~205 |             0,0`% |",
      "| Terminés          |        2 |             0,0`% |",
      "| Annulés           |      300 |           100,0`% |",
      "", "---", "",
      "Source : Caisse des Dépôts, Mon Compte Formation – formations engagées, extraction du 4 mai 2026 (4 lignes)",
      "" }, "\n"):gsub("~", N):gsub("`", S)
    assert.are.equal(expected, rep:format("markdown"))
  end)

  it("writes one self-contained HTML page: a section each, charts where asked, A4 when printed", function()
    local page = rep:format("html")
    assert.is_truthy(page:find('^<!DOCTYPE html>\n<html lang="fr">'))
    assert.is_truthy(page:find("<title>Formations engagées</title>", 1, true))
    local sections, svgs = 0, 0
    for _ in page:gmatch("<section>") do sections = sections + 1 end
    for _ in page:gmatch("<svg ") do svgs = svgs + 1 end
    assert.are.equal(2, sections)
    assert.are.equal(1, svgs, "the second section has chart = false")
    assert.is_truthy(page:find("@page{size:A4", 1, true))
    -- printed, sections flow on the page, none split across two
    assert.is_truthy(page:find("section{break-inside:avoid-page}", 1, true))
    assert.is_nil(page:find("break-before:page", 1, true))
    assert.is_truthy(page:find('<td class="num">1' .. N .. '234' .. N .. '567,89' .. S .. '€</td>', 1, true))
    assert.is_truthy(page:find('<p class="source">Source : Caisse des Dépôts', 1, true))
    assert.is_nil(page:find("<script", 1, true))
    assert.is_nil(page:find("https?://[^\"]*\"") and page:find('src="http', 1, true))
    h.check_markup(page)
  end)

  it("writes to a path, the format from its extension; source = false leaves the line out", function()
    local md, page = h.tmpname(".md"), h.tmpname(".html")
    assert.is_true(rep:write(md))
    assert.is_true(rep:write(page))
    assert.are.equal(rep:format("markdown"), h.read_file(md))
    assert.are.equal(rep:format("html"), h.read_file(page))
    local bare = cpf.report { title = "T", source = false, dataset = ds, locale = "en",
                              sections = { { title = "S", result = ds:run { "dossiers" } } } }
    assert.are.equal("# T\n\n## S\n\n| Files |\n|------:|\n| 1,507 |\n\n", bare:format("markdown"))
  end)

  it("refuses what it cannot do, naming the field", function()
    local res = ds:run { "dossiers" }
    for spec, msg in pairs {
      [{ sections = { { title = "S", result = res } } }] = "report: 'title' must be a string",
      [{ title = "T", sections = {} }] =
        "report: 'sections' must be a non-empty list of {title =, result =, chart =, note =}",
      [{ title = "T", author = "x", sections = { { title = "S", result = res } } }] =
        "report: unknown field 'author' (title, subtitle, source, dataset, locale, sections)",
      [{ title = "T", sections = { { title = "S", result = {} } } }] =
        "report: section 1: 'result' must be a result (q:run())",
      [{ title = "T", sections = { { title = "S", result = res, chart = { y = "nope" } } } }] =
        "report: section 1: html: option 'chart' field 'y' names no column of the result ('nope')",
      -- labels are checked with or without a chart (they were not when the section had no chart)
      [{ title = "T", sections = { { title = "S", result = res, labels = { dossiers = 1 } } } }] =
        "report: section 1: html: option 'labels' must map column names to titles (strings)",
      [{ title = "T", locale = "de", sections = { { title = "S", result = res } } }] =
        "report: 'locale' must be \"fr\", \"en\" or \"C\"",
    } do
      assert.are.equal(msg, h.error_of(function() return cpf.report(spec) end))
    end
  end)

  if _VERSION == "Lua 5.4" and not jit then
    it("renders in headless Chromium: title, a chart per charted section, French cells; build/report-fr.png #no_asan",
      function()
      local g = h.tmpname(".csv")
      assert(require("cpf.gen").write(g, 20000, { seed = 8 }))
      local big = assert(cpf.load(g))
      local page = h.root .. "/build/report-fr.html"
      assert(cpf.report {
        title = "Mon Compte Formation : formations engagées", subtitle = "Données générées, 20 000 lignes",
        dataset = big,
        sections = {
          { title = "Montant par année", result = big:group_by("annee"):agg { "dossiers", "montant" }:run(),
            chart = { y = "montant" } },
          { title = "Taux d'annulation par région", result = big:group_by("region_lieu_formation")
              :agg { "dossiers", "taux_annulation" }:order_by("-taux_annulation"):limit(8):run() },
          { title = "Dossiers par mois", result = big:group_by("mois"):agg { "dossiers" }:run() },
        },
      }:write(page))
      local dom = h.run(("chromium --headless --no-sandbox --disable-gpu --dump-dom file://%s 2>/dev/null")
        :format(page))
      assert.is_truthy(dom:find("<h1>Mon Compte Formation : formations engagées</h1>", 1, true), dom:sub(1, 300))
      local charts = 0
      for _ in dom:gmatch("<figure>%s*<svg") do charts = charts + 1 end
      assert.are.equal(3, charts)
      -- the DOM as Chromium serializes it: U+00A0 as &nbsp;
      local amount = "[%d" .. N .. "]+,%d%d"
      assert.is_truthy(dom:find(amount .. "&nbsp;€</td>") or dom:find(amount .. S .. "€</td>"), "an amount in French")
      assert.is_truthy(dom:find(">janv%. 20%d%d</text>"), "months in French")
      os.remove(h.root .. "/build/report-fr.png")
      h.run(("chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=900,2400 "
        .. "--screenshot=%s/build/report-fr.png file://%s 2>/dev/null"):format(h.root, page))
      local png = io.open(h.root .. "/build/report-fr.png", "rb")
      assert.is_truthy(png, "no screenshot")
      assert.are.equal("\137PNG", png:read(4))
      png:close()
      -- printed on A4, four short sections flow on one page (none forced onto a page of its own)
      local short = h.root .. "/build/report-short.html"
      local by_family = big:group_by("famille"):agg { "dossiers" }:run()
      assert(cpf.report { title = "Quatre sections", dataset = big, sections = {
        { title = "Un", result = by_family, chart = false }, { title = "Deux", result = by_family, chart = false },
        { title = "Trois", result = by_family, chart = false }, { title = "Quatre", result = by_family, chart = false },
      } }:write(short))
      local pdf = h.tmpname(".pdf")
      h.run(("chromium --headless --no-sandbox --disable-gpu --no-pdf-header-footer --print-to-pdf=%s file://%s "
        .. "2>/dev/null"):format(pdf, short))
      local pages = select(2, h.read_file(pdf):gsub("/Type%s*/Page[^s]", ""))
      assert.are.equal(1, pages)
      os.remove(short)
    end)
  end
end)

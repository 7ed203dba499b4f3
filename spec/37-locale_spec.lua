-- The locale of the display formats (issue 13): fr and en read each column by its kind
-- (amounts with €, rates in percent, counts whole, a missing key named), C keeps the numbers
-- as they are; the machine formats never change; the command line takes the environment's.
local h = require "spec.helpers"
local cpf = require "cpf"

local N, S = "\226\128\175", "\194\160" -- U+202F narrow no-break space (thousands), U+00A0 (before € and %)

local CSV = table.concat({
  "date_validation;statut_dossier;region_lieu_formation;nb_dossiers;montant_engage",
  "2024-01;Validé;Bretagne;1200;1234567,89",
  "2024-02;Rejeté;Bretagne;300;0",
  "2024-03;Validé;;5;250,5",
  "2025-01;Clos - Réalisation Totale;Île-de-France;2;-1500",
}, "\n") .. "\n"

describe("locales", function()
  local path, res
  setup(function()
    path = h.write_file(CSV, ".csv")
    local ds = assert(cpf.load(path))
    res = ds:group_by("region_lieu_formation")
      :agg { "dossiers", "montant", "prix_moyen", "taux_annulation", "lignes" }:run()
  end)
  teardown(h.cleanup)

  -- the expected text with ~ for U+202F and ` for U+00A0
  local function spaces(lines) return (table.concat(lines, "\n"):gsub("~", N):gsub("`", S)) .. "\n" end

  it("fr: labels, narrow no-break thousands, decimal comma, € and % after a no-break space, Non renseigné", function()
    assert.are.equal(spaces {
      "Région         Dossiers  Montant engagé  Prix moyen  Taux d'annulation  Lignes",
      "-------------  --------  --------------  ----------  -----------------  ------",
      "Bretagne          1~500  1~234~567,89`€    823,05`€             20,0`%       2",
      "Île-de-France         2     -1~500,00`€   -750,00`€              0,0`%       1",
      "Non renseigné         5        250,50`€     50,10`€              0,0`%       1",
    }, res:format("table", { locale = "fr" }))
    assert.are.equal(spaces {
      "| Région        | Dossiers | Montant engagé | Prix moyen | Taux d'annulation | Lignes |",
      "|---------------|---------:|---------------:|-----------:|------------------:|-------:|",
      "| Bretagne      |    1~500 | 1~234~567,89`€ |   823,05`€ |            20,0`% |      2 |",
      "| Île-de-France |        2 |    -1~500,00`€ |  -750,00`€ |             0,0`% |      1 |",
      "| Non renseigné |        5 |       250,50`€ |    50,10`€ |             0,0`% |      1 |",
    }, res:format("markdown", { locale = "fr" }))
  end)

  it("en: English labels, comma thousands, € before, % after, Not specified", function()
    assert.are.equal(spaces {
      "Region         Files  Amount committed  Average price  Cancellation rate  Rows",
      "-------------  -----  ----------------  -------------  -----------------  ----",
      "Bretagne       1,500     €1,234,567.89        €823.05              20.0%     2",
      "Île-de-France      2        -€1,500.00       -€750.00               0.0%     1",
      "Not specified      5           €250.50         €50.10               0.0%     1",
    }, res:format("table", { locale = "en" }))
  end)

  it("markdown en and the html table in fr and en, exactly", function()
    local three = res:sorted("region_lieu_formation") -- a copy: the same kinds
    local small = cpf.result({ "region_lieu_formation", "dossiers", "montant", "taux_annulation" }, {},
      three:keys(), three:kinds())
    for i, r in ipairs(three) do
      small[i] = { region_lieu_formation = r.region_lieu_formation, dossiers = r.dossiers, montant = r.montant,
                   taux_annulation = r.taux_annulation }
    end
    assert.are.equal(spaces {
      "| Region        | Files | Amount committed | Cancellation rate |",
      "|---------------|------:|-----------------:|------------------:|",
      "| Bretagne      | 1,500 |    €1,234,567.89 |             20.0% |",
      "| Île-de-France |     2 |       -€1,500.00 |              0.0% |",
      "| Not specified |     5 |          €250.50 |              0.0% |",
    }, small:format("markdown", { locale = "en" }))
    local fragment = require("cpf.format.html").table_fragment
    local function rows_of(locale)
      return (fragment(small, { locale = locale }):match("<tbody>\n(.*)</tbody>"))
    end
    assert.are.equal(spaces {
      '<tr><td>Bretagne</td><td class="num">1~500</td><td class="num">1~234~567,89`€</td>'
        .. '<td class="num">20,0`%</td></tr>',
      '<tr><td>Île-de-France</td><td class="num">2</td><td class="num">-1~500,00`€</td>'
        .. '<td class="num">0,0`%</td></tr>',
      '<tr><td>Non renseigné</td><td class="num">5</td><td class="num">250,50`€</td><td class="num">0,0`%</td></tr>',
    }, rows_of("fr"))
    assert.are.equal(spaces {
      '<tr><td>Bretagne</td><td class="num">1,500</td><td class="num">€1,234,567.89</td>'
        .. '<td class="num">20.0%</td></tr>',
      '<tr><td>Île-de-France</td><td class="num">2</td><td class="num">-€1,500.00</td><td class="num">0.0%</td></tr>',
      '<tr><td>Not specified</td><td class="num">5</td><td class="num">€250.50</td><td class="num">0.0%</td></tr>',
    }, rows_of("en"))
    assert.is_truthy(fragment(small, { locale = "fr" }):find(
      '<tr><th>Région</th><th class="num">Dossiers</th><th class="num">Montant engagé</th>'
        .. '<th class="num">Taux d&#39;annulation</th></tr>', 1, true))
  end)

  it("svg in fr and en, exactly: the key's title, the bars' labels in the kind's words", function()
    local two = res:sorted("-taux_annulation"):head(2)
    local picked = cpf.result({ "region_lieu_formation", "montant", "taux_annulation" }, {}, two:keys(), two:kinds())
    for i, r in ipairs(two) do
      picked[i] = { region_lieu_formation = r.region_lieu_formation, montant = r.montant,
                    taux_annulation = r.taux_annulation }
    end
    picked = picked:sorted("-taux_annulation")
    assert.are.equal(spaces {
      '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="104" viewBox="0 0 640 104" font-family="'
        .. 'sans-serif" font-size="12" role="img">',
      '<text x="99" y="16" text-anchor="end" font-weight="bold">Région</text>',
      '<line x1="107.0" y1="22" x2="107.0" y2="68" stroke="#888"/>',
      '<text x="99" y="39" text-anchor="end">Bretagne</text>',
      '<rect x="107.0" y="27" width="473.0" height="16" fill="#4e79a7"><title>Bretagne: 20,0`%</title></rect>',
      '<text x="584.0" y="39">20,0`%</text>',
      '<text x="99" y="61" text-anchor="end">Île-de-France</text>',
      '<rect x="107.0" y="49" width="0.0" height="16" fill="#4e79a7">'
        .. '<title>Île-de-France: 0,0`%</title></rect>',
      '<text x="111.0" y="61">0,0`%</text>',
      '<text x="343.5" y="94" text-anchor="middle" font-weight="bold">Taux d&#39;annulation</text>',
      '</svg>',
    }, picked:format("svg", { locale = "fr" }))
    assert.are.equal(spaces {
      '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="104" viewBox="0 0 640 104" font-family="'
        .. 'sans-serif" font-size="12" role="img">',
      '<text x="99" y="16" text-anchor="end" font-weight="bold">Region</text>',
      '<line x1="107.5" y1="22" x2="107.5" y2="68" stroke="#888"/>',
      '<text x="99" y="39" text-anchor="end">Bretagne</text>',
      '<rect x="107.5" y="27" width="429.5" height="16" fill="#4e79a7">'
        .. '<title>Bretagne: €1,234,567.89</title></rect>',
      '<text x="541.0" y="39">€1,234,567.89</text>',
      '<text x="99" y="61" text-anchor="end">Île-de-France</text>',
      '<rect x="107.0" y="49" width="0.5" height="16" fill="#4e79a7">'
        .. '<title>Île-de-France: -€1,500.00</title></rect>',
      '<text x="111.5" y="61">-€1,500.00</text>',
      '<text x="322.0" y="94" text-anchor="middle" font-weight="bold">Amount committed</text>',
      '</svg>',
    }, picked:format("svg", { locale = "en", chart = { y = "montant" } }))
  end)

  it("labels = {column = title} overrides any locale's; the machine formats keep the names", function()
    local text = res:format("table", { locale = "fr", labels = { region_lieu_formation = "Où", lignes = "n" } })
    assert.are.equal("Où             Dossiers  Montant engagé  Prix moyen  Taux d'annulation  n",
      text:match("^[^\n]*"))
    assert.are.equal("Où             dossiers",
      res:format("table", { labels = { region_lieu_formation = "Où" } }):match("^[^\n]*"):sub(1, 24))
    assert.are.equal("region_lieu_formation,dossiers,montant,prix_moyen,taux_annulation,lignes",
      res:format("csv"):match("^[^\n]*"))
    assert.is_truthy(res:format("html", { locale = "fr" }):find("<th>Région</th>", 1, true))
    assert.is_truthy(h.error_of(function() return res:format("table", { labels = { x = 1 } }) end)
      :find("option 'labels' must map column names to titles (strings)", 1, true))
  end)

  it("html and svg: the table's cells and the chart's labels in the locale", function()
    local page = res:format("html", { locale = "fr", chart = { y = "taux_annulation" } })
    assert.is_truthy(page:find('<td class="num">1' .. N .. '234' .. N .. '567,89' .. S .. '€</td>', 1, true))
    assert.is_truthy(page:find("<td>Non renseigné</td>", 1, true))
    assert.is_truthy(page:find(">20,0" .. S .. "%</text>", 1, true), "the bar's label reads in percent")
    local svg = res:format("svg", { locale = "en", chart = { y = "montant" } })
    assert.is_truthy(svg:find(">€1,234,567.89</text>", 1, true))
    assert.is_truthy(svg:find(">Not specified</text>", 1, true))
  end)

  it("charts: y is the sorted measure, else the first measure; months read janv. 2024; rates in percent", function()
    local path2 = h.write_file(table.concat({
      "date_validation;statut_dossier;region_lieu_formation;nb_dossiers;montant_engage",
      "2024-01;Validé;Bretagne;10;1000", "2024-02;Rejeté;Bretagne;30;500", "2024-03;Validé;Bretagne;20;2500",
    }, "\n") .. "\n", ".csv")
    local ds = assert(cpf.load(path2))
    local by_month = ds:group_by("mois"):agg { "dossiers", "montant", "taux_annulation" }
    local function y_title(svg)
      return svg:match('rotate%(%-90%)" text%-anchor="middle" font%-weight="bold">(.-)</text>')
    end
    assert.are.equal("Dossiers", y_title(by_month:run():format("svg", { locale = "fr" })))
    local sorted = by_month:order_by("-montant"):run():format("svg", { locale = "fr" })
    assert.are.equal("Montant engagé", y_title(sorted))
    for _, m in ipairs { "janv. 2024", "févr. 2024", "mars 2024" } do
      assert.is_truthy(sorted:find(">" .. m .. "</text>", 1, true), m)
    end
    assert.is_truthy(sorted:find(">2" .. S .. "500,00" .. S .. "€</title>", 1, true) or
      sorted:find(": 2" .. N .. "500,00" .. S .. "€</title>", 1, true), "the point's amount")
    local rates = by_month:order_by("taux_annulation"):run():format("svg", { locale = "en" })
    assert.are.equal("Cancellation rate", y_title(rates))
    assert.is_truthy(rates:find(">Feb 2024</text>", 1, true))
    assert.is_truthy(rates:find(">Feb 2024: 100.0%</title>", 1, true), "a rate in percent")
    -- a key is never the default y, even a numeric one: region × year charts a measure
    local region_year = ds:group_by("region_lieu_formation", "annee"):agg { "dossiers" }:run():format("svg")
    assert.are.equal("dossiers", region_year:match('height %- 10[^>]*>(.-)</text>') or
      region_year:match('<text x="[%d.]+" y="%d+" text%-anchor="middle" font%-weight="bold">(.-)</text>'))
    -- under C the months stay as they are
    assert.is_truthy(by_month:run():format("svg"):find(">2024-01</text>", 1, true))
  end)

  it("C, the default, keeps the numbers as they are; the machine formats ignore the locale", function()
    local plain = res:format("table")
    assert.are.equal(plain, res:format("table", { locale = "C" }))
    assert.is_truthy(plain:find("Bretagne                   1500  1234567.89      823.05           0.2000       2",
      1, true))
    for _, fmt in ipairs { "csv", "tsv", "json", "jsonl", "csv-fr" } do
      local out = assert(require("cpf.request").output { format = fmt, locale = "fr" })
      assert.are.equal(res:format(fmt), assert(out:text(res)), fmt)
    end
    assert.are.equal([[option 'locale' must be "fr", "en" or "C"]],
      h.error_of(function() return res:format("table", { locale = "de" }) end):match("option 'locale'.*$"))
  end)

  it("the command line takes --locale, else a French LC_ALL, LC_NUMERIC or LANG", function()
    local function run(env, args)
      local out, err, code = h.run("env -u LC_ALL -u LC_NUMERIC -u LANG " .. env .. " "
        .. h.cpf_command("query " .. h.shell_quote(path) .. " --by annee --measure montant " .. (args or "")))
      assert.are.equal(0, code, err)
      return out
    end
    local fr = " 2024  1" .. N .. "234" .. N .. "818,39" .. S .. "€"
    local c = " 2024  1234818.39"
    assert.is_truthy(run("LC_ALL=fr_FR.UTF-8"):find(fr, 1, true))
    assert.is_truthy(run("LC_NUMERIC=fr_BE.UTF-8 LANG=C.UTF-8"):find(fr, 1, true))
    assert.is_truthy(run("LANG=fr_FR.UTF-8"):find(fr, 1, true))
    assert.is_truthy(run("LANG=en_US.UTF-8"):find(c, 1, true))
    assert.is_truthy(run(""):find(c, 1, true))
    assert.is_truthy(run("LC_ALL=fr_FR.UTF-8", "--locale C"):find(c, 1, true))
    assert.is_truthy(run("", "--locale en"):find("\n2024 +€1,234,818%.39"))
    assert.are.equal("annee,montant\n2024,1234818.39\n2025,-1500\n", run("LC_ALL=fr_FR.UTF-8", "--format csv"))
    local _, err, code = h.run(h.cpf_command("query " .. h.shell_quote(path) .. " --locale de"))
    assert.are.equal(2, code)
    assert.are.equal("cpf: --locale must be fr, en or C, got 'de'\ntry 'cpf query --help'\n", err)
  end)
end)

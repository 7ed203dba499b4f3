-- cpf query, describe, convert and run as a user runs them: a subprocess, its stdout, stderr
-- and exit status (0 ok, 1 error, 2 usage error), compared with the same work done in Lua.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

local q = h.shell_quote
local _ -- the values a test ignores

local function cpf_run(args)
  return h.run(h.cpf_command(args))
end

-- A hand-made file: a quoted field with an apostrophe and accents, a missing region, missing
-- durations, a code that looks like a number, amounts with and without decimals.
local FIXTURE = table.concat({
  "date validation;statut_dossier;region_lieu_formation;code_rncp;nb_dossiers;montant_engage;"
    .. "nb_dossiers_a_duree_connue;duree_moyenne",
  "2023-01;Validé;Bretagne;35185;2;1000.50;2;10",
  "2023-02;Rejeté;Bretagne;-1;1;300;1;",
  "2023-02;Clos - Réalisation Totale;Corse;35185;3;1500;0;",
  "2024-05;Validé;\"Provence-Alpes-Côte d'Azur\";-1;4;4000.25;4;20.5",
  "2024-06;Dossier annulé gestionnaire;;35185;1;250;1;8",
}, "\n") .. "\n"

-- #no_asan: each test runs the cpf command in a process of its own, over C that the in-process
-- specs (10, 14, 20, 47) already drive under AddressSanitizer; the plain stages run it all.
describe("cpf query #no_asan", function()
  local fixture, generated, ds
  setup(function()
    fixture = h.write_file(FIXTURE, ".csv")
    generated = h.tmpname(".csv")
    assert(gen.write(generated, 3000, { seed = 5 }))
    ds = assert(cpf.load(generated))
  end)
  teardown(h.cleanup)

  it("prints what the same query gives in Lua, in the table format by default", function()
    local out, err, code = cpf_run("query " .. q(generated) .. " --where 'statut_dossier=Validé|Entrée en formation'"
      .. " --where annee=2023 --by region_lieu_formation,annee --measure dossiers,montant,prix_moyen"
      .. " --sort -montant --limit 10")
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    local res = ds:where { statut_dossier = { "Validé", "Entrée en formation" }, annee = 2023 }
      :group_by("region_lieu_formation", "annee"):agg { "dossiers", "montant", "prix_moyen" }
      :order_by("-montant"):limit(10):run()
    assert.is_true(#res > 0)
    assert.are.equal(res:format("table"), out)
    assert.are.equal(tostring(res) .. "\n", out)
  end)

  it("writes the same bytes as res:format for every built-in format", function()
    local res = ds:group_by("famille", "modalite_presence")
      :agg { "dossiers", "montant", "prix_moyen", "duree_moyenne", "taux_annulation", "share_opco" }:run()
    for _, fmt in ipairs { "csv", "csv-fr", "tsv", "json", "jsonl", "markdown", "table", "html", "svg" } do
      local out, err, code = cpf_run("query " .. q(generated) .. " --by famille,modalite_presence --measure"
        .. " dossiers,montant,prix_moyen,duree_moyenne,taux_annulation,share_opco --format " .. fmt)
      assert.are.equal(0, code, err)
      -- csv-fr is for people: its text keys in French order (À distance with the A)
      local sorted = fmt == "csv-fr" and res:sorted("famille", "modalite_presence", { collation = "fr" }) or res
      assert.are.equal(sorted:format(fmt), out, fmt)
    end
  end)

  it("writes exact CSV on a hand-made file, missing keys last", function()
    local out, err, code = cpf_run("query " .. q(fixture)
      .. " --by region_lieu_formation --measure dossiers,montant,prix_moyen --format csv")
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    assert.are.equal(table.concat({
      "region_lieu_formation,dossiers,montant,prix_moyen",
      "Bretagne,3,1300.5,433.5",
      "Corse,3,1500,500",
      "Provence-Alpes-Côte d'Azur,4,4000.25,1000.0625",
      ",1,250,250",
    }, "\n") .. "\n", out)
  end)

  it("reshapes the result: --having, --limit --per, --change, --cumsum, --rank, --join", function()
    local function csv(args)
      local out, err, code = cpf_run("query " .. q(fixture) .. " " .. args .. " --format csv")
      assert.are.equal(0, code, err)
      assert.are.equal("", err)
      return out
    end
    assert.are.equal("region_lieu_formation,dossiers,montant\nBretagne,3,1300.5\nCorse,3,1500\n"
      .. "Provence-Alpes-Côte d'Azur,4,4000.25\n", csv("--by region_lieu_formation --having 'dossiers>=3'"))
    assert.are.equal("region_lieu_formation,dossiers,montant\nCorse,3,1500\n",
      csv("--by region_lieu_formation --having 'dossiers>=3' --having 'montant<2000' "
        .. "--having 'region_lieu_formation^=C'"))
    -- the first row of each year in the sort's order; a tie keeps the earlier row (the key order)
    assert.are.equal("annee,region_lieu_formation,dossiers\n2023,Bretagne,3\n2024,Provence-Alpes-Côte d'Azur,4\n",
      csv("--by annee,region_lieu_formation --measure dossiers --sort annee,-dossiers --limit 1 --per annee"))
    assert.are.equal("annee,dossiers,montant,montant_prec,montant_evol,montant_evol_pct\n2023,6,2800.5,,,\n"
      .. "2024,5,4250.25,2800.5,1449.75,0.5176754151044456\n", csv("--by annee --change montant:annee"))
    assert.are.equal("annee,dossiers,dossiers_cumul,dossiers_rang\n2023,6,6,1\n2024,5,11,2\n",
      csv("--by annee --measure dossiers --cumsum dossiers:annee --rank dossiers"))
    -- --sort may name a column the reshaping added
    assert.are.equal("annee,dossiers,dossiers_rang\n2024,5,2\n2023,6,1\n",
      csv("--by annee --measure dossiers --rank dossiers --sort -dossiers_rang"))
    local ref = h.write_file("region_lieu_formation;habitants\nBretagne;3400000\nCorse;350000\n", ".csv")
    assert.are.equal("region_lieu_formation,dossiers,habitants\nBretagne,3,3400000\nCorse,3,350000\n"
      .. "Provence-Alpes-Côte d'Azur,4,\n,1,\n",
      csv("--by region_lieu_formation --measure dossiers --join " .. q(ref .. ":region_lieu_formation")))
    -- the new columns' titles in the display formats
    local out, err = cpf_run("query " .. q(fixture)
      .. " --by annee --measure montant --change montant:annee --locale en")
    assert.are.equal("", err)
    assert.are.equal(table.concat({
      "Year  Amount committed  Amount committed, previous period  Change (Amount committed)  "
        .. "Change in % (Amount committed)",
      "----  ----------------  ---------------------------------  -------------------------  "
        .. "------------------------------",
      "2023         €2,800.50",
      "2024         €4,250.25                          €2,800.50                  €1,449.75  "
        .. "                         51.8%",
    }, "\n") .. "\n", out)
    for _, case in ipairs {
      { "--change montant", 2,
        "--change 'montant': expected COLUMN:PERIOD[:LAG], e.g. montant:annee or montant:mois:12" },
      { "--rank :x", 2, "--rank ':x': expected COLUMN or COLUMN:KEY,..." },
      { "--having x", 2, "--having 'x': expected COLUMN OP VALUE, OP one of = != > >= < <= ^= ~" },
      { "--per annee", 2, "--per needs --limit N (the rows kept in each group)" },
      { "--by annee --having nope=1", 2,
        "--having 'nope=1': no column 'nope' in the result (annee, dossiers, montant)" },
      { "--by annee --change montant:nope", 1,
        "change: 'nope' is not a column of the result (its columns: annee, dossiers, montant)" },
      { "--join x.csv", 2, "--join 'x.csv': expected FILE:COLUMN (COLUMN of both the result and the reference) or "
        .. "FILE:COLUMN=REFCOLUMN" },
      { "--join nofile.csv:annee", 1, "--join 'nofile.csv:annee': nofile.csv: cannot open: No such file or directory" },
    } do
      local o, e, code = cpf_run("query " .. q(fixture) .. " " .. case[1])
      assert.are.equal(case[2], code, case[1])
      assert.are.equal("", o, case[1])
      local expected = "cpf: " .. case[3] .. "\n" .. (case[2] == 2 and "try 'cpf query --help'\n" or "")
      assert.are.equal(expected, e, case[1])
    end
  end)

  it("reads the measure grammar: names, FN:COL, ratio, wmean, quantile, share, NAME=SPEC", function()
    local out, err, code = cpf_run("query " .. q(fixture) .. " --by annee --format csv --measure"
      .. " 'lignes,count,count:duree_moyenne,sum:nb_dossiers,mean:montant_engage,min:montant_engage,"
      .. "max:date_validation,distinct:code_rncp,median:nb_dossiers,quantile:nb_dossiers:0.5,"
      .. "ratio:montant_engage:nb_dossiers,wmean:duree_moyenne:nb_dossiers_a_duree_connue,"
      .. "share:dossiers,taux_annulation,total=sum:montant_engage'")
    assert.are.equal(0, code, err)
    assert.are.equal(table.concat({
      "annee,lignes,count,count_duree_moyenne,sum_nb_dossiers,mean_montant_engage,min_montant_engage,"
        .. "max_date_validation,distinct_code_rncp,median_nb_dossiers,quantile_nb_dossiers_0.5,"
        .. "ratio_montant_engage_nb_dossiers,wmean_duree_moyenne_nb_dossiers_a_duree_connue,"
        .. "share_dossiers,taux_annulation,total",
      "2023,3,3,1,6,933.5,300,2023-02,2,2,2,466.75,10,0.5454545454545454,0.16666666666666666,2800.5",
      "2024,2,2,2,5,2125.125,250,2024-06,2,2.5,2.5,850.05,18,0.45454545454545453,0.2,4250.25",
    }, "\n") .. "\n", out)
  end)

  it("reads the where grammar", function()
    local cases = {
      { "statut_dossier=Validé", 6 },
      { "statut_dossier=Validé|Rejeté", 7 },
      { "statut_dossier!=Validé", 5 },
      { "statut_dossier!=Validé|Rejeté", 4 },
      { "statut_dossier = Clos - Réalisation Totale", 3 },
      { "statut_dossier^=Clos", 3 },
      { "statut_dossier^=Clos|Rej", 4 },
      { "region_lieu_formation=", 1 },
      { "region_lieu_formation!=", 10 },
      { "region_lieu_formation=Corse|", 4 },
      { "region_lieu_formation!=Corse", 8 },
      { "region_lieu_formation!=Corse|", 7 },
      { "region_lieu_formation~^B", 3 },
      { "region_lieu_formation=Provence-Alpes-Côte d'Azur", 4 },
      { "nb_dossiers>=3", 7 },
      { "nb_dossiers>3", 4 },
      { "nb_dossiers<2", 2 },
      { "nb_dossiers<=2", 4 },
      { "nb_dossiers=1|4", 6 },
      { "montant_engage>1000.5", 7 },
      { "montant_engage<=1000.50", 4 },
      { "duree_moyenne=", 4 },
      { "duree_moyenne>=10", 6 },
      { "code_rncp=35185", 6 },
      { "code_rncp!=-1", 6 },
      { "annee=2024", 5 },
      { "annee=2023|2024", 11 },
      { "annee>2023", 5 },
      { "mois=2023-02", 4 },
      { "mois>=2024-06", 1 },
      { "famille=cancelled", 2 },
      { "famille=validated|completed", 9 },
      { "date_validation>=2023-02", 9 },
      { "date validation<2024", 6 },
      { "date_validation=2024", 5 },
      { "Date Validation=2023-01-01", 2 },
    }
    for _, case in ipairs(cases) do
      local out, err, code = cpf_run("query " .. q(fixture) .. " --where " .. q(case[1])
        .. " --measure dossiers --format csv")
      assert.are.equal(0, code, case[1] .. ": " .. err)
      assert.are.equal("dossiers\n" .. case[2] .. "\n", out, case[1])
    end
    -- several --where all hold
    local out = cpf_run("query " .. q(fixture)
      .. " --where annee=2023 --where 'statut_dossier!=Rejeté' --measure dossiers --format csv")
    assert.are.equal("dossiers\n5\n", out)
    -- '\|' is a literal '|'
    local piped = h.write_file("statut_dossier;nb_dossiers\na|b;2\na;3\n", ".csv")
    out = cpf_run("query " .. q(piped) .. " --where 'statut_dossier=a\\|b' --measure dossiers --format csv")
    assert.are.equal("dossiers\n2\n", out)
  end)

  it("loads only the columns the query names", function()
    -- a column the query does not name may hold anything: it is never parsed
    local text = FIXTURE:gsub("\n2023%-02;Rejeté;Bretagne;%-1;1;300;1;\n",
                              "\n2023-02;Rejeté;Bretagne;-1;1;300;1;not a number\n")
    local path = h.write_file(text, ".csv")
    local out, err, code = cpf_run("query " .. q(path) .. " --by famille --measure dossiers --format csv")
    assert.are.equal(0, code, err)
    assert.are.equal("famille,dossiers\nvalidated,6\ncompleted,3\ncancelled,2\n", out)
    _, err, code = cpf_run("query " .. q(path) .. " --by famille --measure duree_moyenne --format csv")
    assert.are.equal(1, code)
    assert.are.equal("cpf: " .. path .. ":3:8: duree_moyenne: expected a number, got \"not a number\"\n", err)
  end)

  it("exits with 1 and names an unknown column and the option that asked for it", function()
    local out, err, code = cpf_run("query " .. q(fixture) .. " --where nope=1")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: " .. fixture .. ":1: unknown column 'nope' (--where 'nope=1')\n", err)
    _, err, code = cpf_run("query " .. q(fixture) .. " --by region,annee")
    assert.are.equal(1, code)
    assert.are.equal("cpf: " .. fixture .. ":1: unknown column 'region' (--by region)\n", err)
    _, err, code = cpf_run("query " .. q(fixture) .. " --measure sum:part_opco")
    assert.are.equal(1, code)
    assert.are.equal("cpf: " .. fixture .. ":1: unknown column 'part_opco' (--measure sum:part_opco)\n", err)
    _, err, code = cpf_run("query " .. q(fixture) .. " --cache --where nope=1")
    assert.are.equal(1, code)
    assert.are.equal("cpf: " .. fixture .. ":1: unknown column 'nope' (--where 'nope=1')\n", err)
    os.remove(fixture .. ".cpfsnap")
  end)

  it("shows the control characters of a message escaped, never raw on the terminal", function()
    -- a column name and a value of the data, both holding ESC sequences and a bidi override
    local path = h.write_file("date_validation;\"t\27]0;pwned\7\";nb_dossiers\n2023-01;x;\"1\27[2J\226\128\174\"\n",
                              ".csv")
    local _, err, code = cpf_run("query " .. q(path) .. " --by mois --measure dossiers")
    assert.are.equal(1, code)
    assert.are.equal("cpf: " .. path .. ":2:3: nb_dossiers: expected an integer, got \"1\\x1B[2J\\u202E\"\n", err)
    _, err, code = cpf_run("query " .. q(path) .. " --by " .. q("t\27]0;x\7"))
    assert.are.equal(1, code)
    assert.are.equal("cpf: " .. path .. ":1: unknown column 't\\x1B]0;x\\x07' (--by t\\x1B]0;x\\x07)\n", err)
  end)

  it("exits with 1 on a query cpf refuses, with its message", function()
    local out, err, code = cpf_run("query " .. q(fixture) .. " --where 'nb_dossiers=abc'")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: where nb_dossiers: 'nb_dossiers' is an integer column, expected a number, "
      .. "got string \"abc\"\n", err)
    _, err, code = cpf_run("query " .. q(fixture) .. " --measure sum:statut_dossier")
    assert.are.equal(1, code)
    assert.are.equal("cpf: aggregate sum_statut_dossier: sum needs a numeric column, "
      .. "'statut_dossier' is a string column\n", err)
  end)

  it("exits with 1 on a file cpf cannot load, with path:row:col", function()
    local out, err, code = cpf_run("query " .. q(h.fixture "bad_month.csv") .. " --by annee --measure dossiers")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: spec/fixtures/bad_month.csv:2:2: date_validation: "
      .. "expected a month YYYY-MM or YYYY-MM-DD, got \"2023-13\"\n", err)
    _, err, code = cpf_run("spec/fixtures/no-such-file.csv")
    assert.are.equal(2, code) -- no command named so
    assert.are.equal("cpf: unknown command 'spec/fixtures/no-such-file.csv'\ntry 'cpf --help'\n", err)
    _, err, code = cpf_run("query spec/fixtures/no-such-file.csv")
    assert.are.equal(1, code)
    assert.are.equal("cpf: spec/fixtures/no-such-file.csv: cannot open: No such file or directory\n", err)
  end)

  it("exits with 2 and a hint on a usage error", function()
    local cases = {
      { "--frobnicate", "unknown option '--frobnicate'" },
      { "-z", "unknown option '-z'" },
      { "--limit", "option '--limit' needs a value" },
      { "--limit x", "--limit must be a whole number, got 'x'" },
      { "--threads 0", "--threads must be a whole number from 1 to 64" },
      { "--sep ';;'", "--sep must be one character, got ';;'" },
      { "--where nope", "--where 'nope': expected COLUMN OP VALUE, OP one of = != > >= < <= ^= ~" },
      { "--where 'nb_dossiers>'", "--where 'nb_dossiers>': '>' needs a value" },
      { "--measure foo", "--measure 'foo': expected a CPF measure, count, "
        .. "FN:COL (sum mean min max median distinct count), quantile:COL:P, ratio:A:B, wmean:X:W or share:M" },
      { "--measure quantile:nb_dossiers:2", "--measure 'quantile:nb_dossiers:2': P must be a number from 0 to 1" },
      { "--measure titulaires", "--measure 'titulaires': nb_titulaires is not additive across rows: "
        .. "one holder can appear in several rows (several statuses, months or places), so its sum over-counts "
        .. "people; report it per row or use cpf.max \"nb_titulaires\" if you know what it means" },
      { "--format xlsx", "unknown format 'xlsx' (csv, csv-fr, tsv, json, jsonl, markdown, table, html, svg)" },
      { "--format csv --opt separator=x", "csv: unknown option 'separator'" },
      { "--format csv --bar dossiers", "--bar applies to the table format" },
      { "--by annee --sort -nope", "--sort: no column 'nope' in the result (annee, dossiers, montant)" },
      { "--cache=yes", "option '--cache' takes no value" },
    }
    for _, case in ipairs(cases) do
      local out, err, code = cpf_run("query " .. q(fixture) .. " " .. case[1])
      assert.are.equal(2, code, case[1])
      assert.are.equal("", out, case[1])
      assert.are.equal("cpf: " .. case[2] .. "\ntry 'cpf query --help'\n", err, case[1])
    end
    local out, err, code = cpf_run("query")
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: query needs a DATA file\ntry 'cpf query --help'\n", err)
  end)

  it("writes to a file with -o, and nothing on stdout", function()
    local path = h.tmpname(".md")
    local out, err, code = cpf_run("query " .. q(fixture) .. " --by annee --measure dossiers -o " .. q(path)
      .. " --format markdown")
    assert.are.equal(0, code, err)
    assert.are.equal("", out)
    assert.are.equal("", err)
    assert.are.equal("| annee | dossiers |\n|------:|---------:|\n|  2023 |        6 |\n|  2024 |        5 |\n",
                     h.read_file(path))
    _, err, code = cpf_run("query " .. q(fixture) .. " --output=" .. q(path) .. " --format=csv")
    assert.are.equal(0, code, err)
    assert.are.equal("dossiers,montant\n11,7050.75\n", h.read_file(path))
    _, err, code = cpf_run("query " .. q(fixture) .. " -o /nonexistent/dir/x.csv")
    assert.are.equal(1, code)
    assert.are.equal("cpf: /nonexistent/dir/x.csv: cannot write: No such file or directory\n", err)
  end)

  it("passes format options: --bar, --title, --opt", function()
    local out, err, code = cpf_run("query " .. q(fixture)
      .. " --by annee --measure dossiers --bar dossiers --opt ascii=true --opt bar_width=4")
    assert.are.equal(0, code, err)
    assert.are.equal("annee  dossiers\n-----  --------\n 2023         6  ####\n 2024         5  ###\n", out)
    out, err, code = cpf_run("query " .. q(fixture)
      .. " --by annee --format html --title 'Dossiers & montants' --opt chart.y=montant")
    assert.are.equal(0, code, err)
    local res = assert(cpf.load(fixture)):group_by("annee"):agg { "dossiers", "montant" }:run()
    assert.are.equal(res:format("html", { title = "Dossiers & montants", chart = { y = "montant" } }), out)
    out, err, code = cpf_run("query " .. q(fixture) .. " --format csv --opt decimal=, --opt sep=';'")
    assert.are.equal(0, code, err)
    assert.are.equal("dossiers;montant\n11;7050,75\n", out)
  end)

  it("loads several files as one dataset with a source column, and reads standard input", function()
    local other = h.write_file(FIXTURE, ".csv")
    local out, err, code = cpf_run("query " .. q(fixture) .. " " .. q(other)
      .. " --by source --measure dossiers --format csv")
    assert.are.equal(0, code, err)
    local first, second = fixture, other
    if second < first then first, second = second, first end
    assert.are.equal(("source,dossiers\n%s,11\n%s,11\n"):format(first, second), out)
    out, err, code = h.run("cat " .. q(fixture) .. " | "
      .. h.cpf_command("query - --by annee --measure dossiers --format csv"))
    assert.are.equal(0, code, err)
    assert.are.equal("annee,dossiers\n2023,6\n2024,5\n", out)
  end)

  it("runs a --plugin first, which may register a format", function()
    local plugin = h.write_file([[
local cpf = ...
cpf.formats.register("count", function(res, out) out:write(#res, " rows\n") end)
]], ".lua")
    local out, err, code = cpf_run("query " .. q(fixture) .. " --by annee --plugin " .. q(plugin) .. " --format count")
    assert.are.equal(0, code, err)
    assert.are.equal("2 rows\n", out)
    local broken = h.write_file("local cpf = ...\nerror('no luck')\n", ".lua")
    out, err, code = cpf_run("query " .. q(fixture) .. " --plugin " .. q(broken))
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: " .. broken .. ":2: no luck\n", err)
  end)
end)

describe("cpf describe #no_asan", function()
  local fixture
  setup(function() fixture = h.write_file(FIXTURE, ".csv") end)
  teardown(h.cleanup)

  it("prints each column's type, missing and distinct counts, min, max and top values", function()
    local out, err, code = cpf_run("describe " .. q(fixture))
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    -- the expected table as cpf prints it, one line of output per line here
    -- luacheck: push no max line length
    assert.are.equal(fixture .. ": 5 rows, 8 columns\n" .. table.concat({
      "column                      type     missing  distinct  min      max      top",
      "--------------------------  -------  -------  --------  -------  -------  --------------------------",
      "date_validation             month          0         4  2023-01  2024-06",
      "statut_dossier              string         0         4                    Validé (2), …",
      "region_lieu_formation       string         1         3                    Bretagne (2), Corse (1), …",
      "code_rncp                   string         0         2                    35185 (3), -1 (2)",
      "nb_dossiers                 integer        0         4  1        4",
      "montant_engage              decimal        0         5  250      4000.25",
      "nb_dossiers_a_duree_connue  integer        0         4  0        4",
      "duree_moyenne               number         2         3  8        20.5",
    }, "\n") .. "\n", out)
    -- luacheck: pop
  end)

  it("writes any format, without the title line, and --top N", function()
    local out, err, code = cpf_run("describe " .. q(fixture) .. " --format csv --top 1")
    assert.are.equal(0, code, err)
    assert.are.equal(table.concat({
      "column,label,type,missing,distinct,min,max,top",
      "date_validation,date validation,month,0,4,2023-01,2024-06,",
      "statut_dossier,statut_dossier,string,0,4,,,Validé (2)",
      "region_lieu_formation,region_lieu_formation,string,1,3,,,Bretagne (2)",
      "code_rncp,code_rncp,string,0,2,,,35185 (3)",
      "nb_dossiers,nb_dossiers,integer,0,4,1,4,",
      "montant_engage,montant_engage,decimal,0,5,250,4000.25,",
      "nb_dossiers_a_duree_connue,nb_dossiers_a_duree_connue,integer,0,4,0,4,",
      "duree_moyenne,duree_moyenne,number,2,3,8,20.5,",
    }, "\n") .. "\n", out)
    local path = h.tmpname(".txt")
    out, err, code = cpf_run("describe " .. q(fixture) .. " -o " .. q(path))
    assert.are.equal(0, code, err)
    assert.are.equal("", out)
    assert.are.equal(fixture .. ": 5 rows, 8 columns\n", h.read_file(path):match("^[^\n]*\n"))
  end)

  it("agrees with ds:columns and ds:distinct on a generated file", function()
    local path = h.tmpname(".csv")
    assert(gen.write(path, 2000, { seed = 9 }))
    local out, err, code = cpf_run("describe " .. q(path) .. " --format json")
    assert.are.equal(0, code, err)
    local ds = assert(cpf.load(path))
    local cols = ds:columns()
    local lines = {}
    for line in out:gmatch("[^\n]+") do
      if line:find('^[%[ ]?{') or line:find('^,?{') then lines[#lines + 1] = line end
    end
    assert.are.equal(#cols, #lines)
    for i, c in ipairs(cols) do
      local line = lines[i]
      assert.is_truthy(line:find('"column":"' .. c.name .. '"', 1, true), c.name)
      assert.is_truthy(line:find('"missing":' .. c.missing .. ',', 1, true), c.name)
      local distinct = 0
      for _, e in ipairs(ds:distinct(c.name)) do if e.value ~= nil then distinct = distinct + 1 end end
      assert.is_truthy(line:find('"distinct":' .. distinct .. ',', 1, true), c.name .. " distinct " .. distinct)
    end
  end)

  it("exits with 2 on a usage error and 1 on a load error", function()
    local out, err, code = cpf_run("describe")
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: describe needs a DATA file\ntry 'cpf describe --help'\n", err)
    _, err, code = cpf_run("describe " .. q(fixture) .. " --top x")
    assert.are.equal(2, code)
    assert.are.equal("cpf: --top must be a whole number, got 'x'\ntry 'cpf describe --help'\n", err)
    _, err, code = cpf_run("describe spec/fixtures/too_many_fields.csv")
    assert.are.equal(1, code)
    assert.are.equal("cpf: spec/fixtures/too_many_fields.csv:3:4: too many fields (the header has 3)\n", err)
  end)
end)

describe("cpf convert #no_asan", function()
  local generated
  setup(function()
    generated = h.tmpname(".csv")
    assert(gen.write(generated, 3000, { seed = 6 }))
  end)
  teardown(h.cleanup)

  it("saves a snapshot that queries give the same output on", function()
    local snap = generated .. ".cpfsnap"
    finally(function() os.remove(snap) end)
    local out, err, code = cpf_run("convert " .. q(generated))
    assert.are.equal(0, code, err)
    assert.are.equal("", out)
    local pattern = "^cpf: " .. generated:gsub("%p", "%%%0") .. " %-> " .. snap:gsub("%p", "%%%0")
      .. ": 3000 rows, %d+%.%d kB %-> %d+%.%d kB in %d+%.%d%d s\n$"
    assert.is_truthy(err:find(pattern), err)
    local s = assert(cpf.open(snap))
    assert.are.equal(3000, #s)
    s:close()
    local query = " --where 'famille=cancelled|completed' --by region_lieu_formation,annee"
      .. " --measure dossiers,montant,prix_moyen,duree_moyenne --sort -montant --format csv"
    local from_csv = cpf_run("query " .. q(generated) .. query)
    local from_snap, serr, scode = cpf_run("query " .. q(snap) .. query)
    assert.are.equal(0, scode, serr)
    assert.are.equal("", serr)
    assert.is_true(#from_csv > 100)
    assert.are.equal(from_csv, from_snap)
    -- found by its header too, whatever its name
    local plain = h.tmpname(".data")
    out, err, code = cpf_run("convert -q " .. q(generated) .. " " .. q(plain))
    assert.are.equal(0, code, err)
    assert.are.equal("", out)
    assert.are.equal("", err)
    assert.are.equal(from_csv, (cpf_run("query " .. q(plain) .. query)))
    -- and describe reads it the same
    assert.are.equal(select(1, cpf_run("describe --format csv " .. q(generated))),
                     select(1, cpf_run("describe --format csv " .. q(plain))))
    _, err, code = cpf_run("query " .. q(plain) .. " --by nope")
    assert.are.equal(1, code)
    assert.are.equal("cpf: " .. plain .. ": unknown column 'nope' (--by nope)\n", err)
  end)

  it("exits with 1 when the CSV cannot be loaded or the snapshot written", function()
    local out, err, code = cpf_run("convert spec/fixtures/text_after_quote.csv /tmp/x.cpfsnap")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: spec/fixtures/text_after_quote.csv:2:2: malformed quoted field: "
      .. "text after its closing quote\n", err)
    _, err, code = cpf_run("convert " .. q(generated) .. " /nonexistent/dir/x.cpfsnap")
    assert.are.equal(1, code)
    assert.is_truthy(err:find("^cpf: /nonexistent/dir/x%.cpfsnap"), err)
    _, err, code = cpf_run("convert")
    assert.are.equal(2, code)
    assert.are.equal("cpf: convert needs DATA.csv and at most one OUT.cpfsnap\ntry 'cpf convert --help'\n", err)
  end)
end)

describe("cpf run #no_asan", function()
  local fixture
  setup(function() fixture = h.write_file(FIXTURE, ".csv") end)
  teardown(h.cleanup)

  it("runs a script with cpf, the datasets and the arguments", function()
    local script = h.write_file([[
local cpf, datasets, args = ...
assert(cpf == require "cpf")
io.write(#datasets, " ", #datasets[1], " ", #datasets[2], " ", datasets.paths[2], "\n")
io.write(table.concat(args, "|"), " ", #args, " ", arg[0], " ", tostring(arg[1]), "\n")
local res = datasets[1]:group_by("annee"):agg { "dossiers" }:run()
res:write(io.stdout, "csv")
io.stderr:write("done\n")
]], ".lua")
    local out, err, code = cpf_run("run " .. q(script) .. " " .. q(fixture) .. " " .. q(h.fixture "labels_bom_lf.csv")
      .. " -- a 'b c' --not-an-option")
    assert.are.equal(0, code, err)
    assert.are.equal("done\n", err)
    assert.are.equal("2 5 3 spec/fixtures/labels_bom_lf.csv\na|b c|--not-an-option 3 " .. script .. " a\n"
      .. "annee,dossiers\n2023,6\n2024,5\n", out)
    -- no data, no arguments
    out, err, code = cpf_run("run " .. q(script))
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.is_truthy(err:find("^cpf: " .. script:gsub("%p", "%%%0") .. ":3: "), err)
  end)

  it("opens snapshots given as data", function()
    local snap = h.tmpname(".cpfsnap")
    assert.is_true(assert(cpf.load(fixture)):save(snap))
    local script = h.write_file("local _, d = ...\nprint(d[1]:is_snapshot(), #d[1])\n", ".lua")
    local out, err, code = cpf_run("run " .. q(script) .. " " .. q(snap))
    assert.are.equal(0, code, err)
    assert.are.equal("true\t5\n", out)
  end)

  it("exits with 1 and script:line: message when the script fails", function()
    local script = h.write_file("local cpf, datasets = ...\nlocal n = 0\nerror('the report failed')\n", ".lua")
    local out, err, code = cpf_run("run " .. q(script) .. " " .. q(fixture))
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: " .. script .. ":3: the report failed\n", err)
    -- an error raised inside cpf gets the script's line
    script = h.write_file("local cpf, datasets = ...\n\ndatasets[1]:where { nope = 1 }:run { 'dossiers' }\n", ".lua")
    _, err, code = cpf_run("run " .. q(script) .. " " .. q(fixture))
    assert.are.equal(1, code)
    assert.are.equal("cpf: " .. script .. ":3: where: unknown column 'nope'\n", err)
    script = h.write_file("local x = \n", ".lua")
    _, err, code = cpf_run("run " .. q(script))
    assert.are.equal(1, code)
    assert.is_truthy(err:find("^cpf: " .. script:gsub("%p", "%%%0") .. ":%d: .*near '?<eof>'?\n$"), err)
    _, err, code = cpf_run("run /nonexistent/report.lua")
    assert.are.equal(1, code)
    assert.are.equal("cpf: /nonexistent/report.lua: No such file or directory\n", err)
    script = h.write_file("os.exit(3)\n", ".lua")
    _, _, code = cpf_run("run " .. q(script))
    assert.are.equal(3, code)
  end)

  it("exits with 1 when a data file cannot be loaded, 2 on a usage error", function()
    local script = h.write_file("print('never')\n", ".lua")
    local out, err, code = cpf_run("run " .. q(script) .. " spec/fixtures/bad_integer.csv")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: spec/fixtures/bad_integer.csv:3:2: nb_dossiers: expected an integer, got \"deux\"\n", err)
    out, err, code = cpf_run("run " .. q(script) .. " " .. q(fixture) .. " 2024")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: 2024: cannot open: No such file or directory "
      .. "(arguments for the script go after '--')\n", err)
    out, err, code = cpf_run("run")
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: run needs a SCRIPT.lua\ntry 'cpf run --help'\n", err)
    out, err, code = cpf_run("run " .. q(script) .. " --verbose")
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: unknown option '--verbose'\ntry 'cpf run --help'\n", err)
  end)
end)

describe("cpf help #no_asan", function()
  it("lists every command", function()
    local out, err, code = cpf_run "--help"
    assert.are.equal(0, code, err)
    for _, c in ipairs { "query", "describe", "run", "convert", "gen", "demo", "--version" } do
      assert.is_truthy(out:find("\n  " .. c .. " ", 1, true), c)
    end
  end)

  it("has a help text for each command, with --help, -h and help COMMAND", function()
    for _, c in ipairs { "query", "describe", "run", "convert", "gen", "demo" } do
      local out, err, code = cpf_run(c .. " --help")
      assert.are.equal(0, code, c)
      assert.are.equal("", err)
      assert.is_truthy(out:find("^usage: cpf " .. c .. " "), c)
      assert.are.equal(out, (cpf_run(c .. " -h")))
      assert.are.equal(out, (cpf_run("help " .. c)))
    end
    local out = cpf_run "run --help"
    assert.is_truthy(out:find("local cpf, datasets, args = ...", 1, true))
    assert.is_truthy(out:find("cpf: SCRIPT.lua:LINE: message", 1, true))
    out = cpf_run "query --help"
    for _, word in ipairs { "--where", "--by", "--measure", "--sort", "--limit", "--format", "-o", "--cache",
                            "--threads", "-q", "quantile:COL:P", "^=" } do
      assert.is_truthy(out:find(word, 1, true), word)
    end
    local _, err, code = cpf_run "help nope"
    assert.are.equal(2, code)
    assert.are.equal("cpf: no command 'nope'\ntry 'cpf --help'\n", err)
  end)
end)

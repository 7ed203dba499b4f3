-- The text request language (cpf.request) that the command line, Neovim and HTTP share: the
-- same question gives the same bytes in Lua and on the command line, errors come back as
-- nil, message, kind, and result columns can be renamed with any UTF-8 name.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"
local request = require "cpf.request"

local q = h.shell_quote

local function cpf_run(args) return h.run(h.cpf_command(args)) end

-- Every result of f(...) as a list, nils included.
local function all(...) return { n = select("#", ...), ... } end

describe("cpf.request", function()
  local path, ds
  setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 2000, { seed = 9 }))
    ds = assert(cpf.load(path))
  end)
  teardown(function() ds:close() h.cleanup() end)

  -- fields of a request and the same request as command-line options
  local SAME = {
    { { where = { "statut_dossier=Validé|Entrée en formation", "annee=2023" }, by = "region_lieu_formation,annee",
        measure = "dossiers,montant,prix_moyen", sort = "-montant", limit = "10", format = "csv" },
      "--where 'statut_dossier=Validé|Entrée en formation' --where annee=2023 --by region_lieu_formation,annee"
        .. " --measure dossiers,montant,prix_moyen --sort -montant --limit 10 --format csv" },
    { { by = "famille", measure = { "dossiers", "share:montant" }, format = "json" },
      "--by famille --measure dossiers --measure share:montant --format json" },
    { { where = "montant_engage>1000", by = { "mois" }, measure = "count,median:prix_moyen,quantile:duree_moyenne:0.9",
        format = "tsv" },
      "--where 'montant_engage>1000' --by mois --measure count,median:prix_moyen,quantile:duree_moyenne:0.9"
        .. " --format tsv" },
    { { by = "Région=region_lieu_formation", measure = "Taux d'annulation=taux_annulation,Dossiers=dossiers",
        sort = "-Dossiers", limit = 3, format = "markdown" },
      "--by 'Région=region_lieu_formation' --measure \"Taux d'annulation=taux_annulation,Dossiers=dossiers\""
        .. " --sort -Dossiers --limit 3 --format markdown" },
    { { where = { "code_rncp^=3", "famille!=cancelled" }, measure = "distinct:code_rncp", format = "table",
        opt = { "thousands= " } },
      "--where 'code_rncp^=3' --where 'famille!=cancelled' --measure distinct:code_rncp --opt 'thousands= '" },
  }

  it("gives the bytes the command line prints for the same question", function()
    for _, case in ipairs(SAME) do
      local req = assert(request.parse(case[1]))
      local res = assert(req:run(ds))
      local text = assert(req:text(res))
      local out, err, code = cpf_run("query " .. q(path) .. " " .. case[2])
      assert.are.equal(0, code, err)
      assert.are.equal(text, out, case[2])
    end
  end)

  it("renames result columns with any UTF-8 name, keys included", function()
    local req = assert(request.parse { by = "Région=region_lieu_formation, Année = annee",
                                       measure = "Taux d'annulation=taux_annulation,montant",
                                       sort = "-Taux d'annulation" })
    local res = assert(req:run(ds))
    assert.are.same({ "Région", "Année", "Taux d'annulation", "montant" }, res:columns())
    local direct = ds:group_by("region_lieu_formation", "annee"):agg { "taux_annulation", "montant" }:run()
    assert.are.equal(#direct, #res)
    local by_key = {}
    for _, r in ipairs(direct) do by_key[tostring(r.region_lieu_formation) .. "/" .. r.annee] = r end
    local last
    for _, r in ipairs(res) do
      local d = by_key[tostring(r["Région"]) .. "/" .. r["Année"]]
      assert.are.equal(d.taux_annulation, r["Taux d'annulation"])
      assert.are.equal(d.montant, r.montant)
      if last then assert.is_true(last >= r["Taux d'annulation"]) end
      last = r["Taux d'annulation"]
    end
  end)

  it("returns nil, message, 'usage' for a request that does not parse, with the command line's messages", function()
    local cases = {
      { { where = "nope" }, "--where 'nope': expected COLUMN OP VALUE, OP one of = != > >= < <= ^= ~" },
      { { where = "nb_dossiers>" }, "--where 'nb_dossiers>': '>' needs a value" },
      { { measure = "foo" }, "--measure 'foo': expected a CPF measure, count, FN:COL (sum mean min max median"
          .. " distinct count), quantile:COL:P, ratio:A:B, wmean:X:W or share:M" },
      { { measure = "quantile:nb_dossiers:2" }, "--measure 'quantile:nb_dossiers:2': P must be a number from 0 to 1" },
      { { measure = "" }, "--measure: no measure given" },
      { { measure = "=dossiers" }, "--measure '=dossiers': expected NAME=SPEC with a name and a measure" },
      { { measure = "x=" }, "--measure 'x=': expected NAME=SPEC with a name and a measure" },
      { { by = "Région=" }, "--by 'Région=': expected NAME=KEY with a name and a key" },
      { { measure = "\255=dossiers" }, "--measure '\255=dossiers': the name is not valid UTF-8" },
      { { limit = "x" }, "--limit must be a whole number, got 'x'" },
      { { limit = -1 }, "--limit must be a whole number, got '-1'" },
      { { format = "xlsx" }, "unknown format 'xlsx' (csv, csv-fr, tsv, json, jsonl, markdown, table, html, svg)" },
      { { format = "csv", bar = "dossiers" }, "--bar applies to the table format" },
      { { title = "x" }, "--title applies to the html and svg formats" },
      { { opt = "thousands" }, "--opt 'thousands': expected KEY=VALUE" },
      { { where = 3 }, "where: text expected, got number" },
      { { by = { "a", false } }, "by: entry 2 is a boolean, text expected" },
      { { frobnicate = "x" }, "request: unknown field 'frobnicate'" },
    }
    for _, case in ipairs(cases) do
      assert.are.same({ n = 3, nil, case[2], "usage" }, all(request.parse(case[1])))
    end
    assert.are.same({ n = 3, nil, "request: table of fields expected", "usage" }, all(request.parse("x")))
  end)

  it("refuses to add up nb_titulaires however it is asked, as a usage error", function()
    local refusal = cpf.schema.not_additive.nb_titulaires
    for _, m in ipairs { "titulaires", "nb_titulaires", "sum:nb_titulaires", "sum:Nb Titulaires",
                         "ratio:nb_titulaires:nb_dossiers", "wmean:prix_moyen:nb_titulaires",
                         "share:sum:nb_titulaires" } do
      assert.are.same({ n = 3, nil, ("--measure '%s': %s"):format(m, refusal), "usage" },
        all(request.parse { measure = m }))
      local out, err, code = cpf_run("query " .. q(path) .. " --measure " .. q(m))
      assert.are.equal(2, code, m)
      assert.are.equal("", out)
      assert.are.equal(("cpf: --measure '%s': %s\ntry 'cpf query --help'\n"):format(m, refusal), err)
    end
    assert.is_truthy(request.parse { measure = "max:nb_titulaires" })
  end)

  it("returns nil, message, 'data' for what the data cannot answer", function()
    local req = assert(request.parse { where = "nope=1", by = "region" })
    assert.are.same({ n = 3, nil, "x.csv:1: unknown column 'nope' (--where 'nope=1')", "data" },
      all(req:check(ds:columns(), "x.csv:1")))
    assert.are.same({ n = 3, nil, "unknown column 'nope' (--where 'nope=1')", "data" }, all(req:run(ds)))
    req = assert(request.parse { where = "nb_dossiers=abc" })
    assert.are.same({ n = 3, nil, "where nb_dossiers: 'nb_dossiers' is an integer column, expected a number,"
                                  .. " got string \"abc\"", "data" },
      all(req:run(ds)))
    req = assert(request.parse { measure = "sum:statut_dossier" })
    assert.are.same({ n = 3, nil, "aggregate sum_statut_dossier: sum needs a numeric column, 'statut_dossier'"
                                  .. " is a string column", "data" },
      all(req:run(ds)))
    req = assert(request.parse { by = "annee", sort = "-nope" })
    assert.are.same({ n = 3, nil, "--sort: no column 'nope' in the result (annee, dossiers, montant)", "usage" },
      all(req:run(ds)))
    req = assert(request.parse { format = "csv", opt = "separator=x" })
    assert.are.same({ n = 3, nil, "csv: unknown option 'separator'", "usage" }, all(req:text(assert(req:run(ds)))))
  end)

  it("never raises, whatever text it is given", function()
    local seed = 12345
    local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n end
    local alphabet = { "=", "!", "<", ">", "^", "~", "|", "\\", ",", ":", " ", "a", "nb_dossiers", "annee",
                       "sum", "quantile", "share", "0.5", "-", "\255", "é", "montant", "x=", "famille", "" }
    local function text()
      local t = {}
      for i = 1, rand(6) do t[i] = alphabet[rand(#alphabet) + 1] end
      return table.concat(t)
    end
    for _ = 1, 500 do
      local fields = { where = { text(), text() }, by = text(), measure = text(), sort = text(),
                       limit = rand(2) == 0 and text() or nil }
      local ok, req, msg, kind = pcall(request.parse, fields)
      assert.is_true(ok, tostring(req))
      if req then
        local ok2, res, msg2, kind2 = pcall(req.run, req, ds)
        assert.is_true(ok2, tostring(res))
        if not res then assert.is_string(msg2) assert.is_truthy(kind2 == "usage" or kind2 == "data", msg2) end
      else
        assert.is_string(msg)
        assert.are.equal("usage", kind)
      end
    end
  end)

  it("lists the columns a request reads, as written, for a loader that loads only those", function()
    local req = assert(request.parse { where = { "Statut Dossier=Validé", "annee=2023" },
                                       by = "Région=region_lieu_formation", measure = "prix_moyen,sum:part_opco" })
    assert.are.same({ "Statut Dossier", "annee", "region_lieu_formation", "montant_engage", "nb_dossiers",
                      "part_opco" }, req.columns)
    local small = assert(cpf.load(path, { columns = req.columns }))
    assert.are.same(assert(req:text(assert(req:run(ds)))), assert(req:text(assert(req:run(small)))))
    small:close()
  end)
end)

describe("cpf.is_snapshot", function()
  teardown(h.cleanup)

  it("knows a snapshot by its extension or its first bytes, and reads nothing else ahead", function()
    local csv = h.write_file("a;b\n1;2\n", ".csv")
    assert.is_false(cpf.is_snapshot(csv))
    local ds = assert(cpf.load(csv))
    local snap = h.tmpname(".data")
    assert(ds:save(snap))
    ds:close()
    assert.is_true(cpf.is_snapshot(snap))
    assert.is_true(cpf.is_snapshot("no-such-file.cpfsnap"))
    assert.is_false(cpf.is_snapshot("no-such-file.csv"))
    assert.is_false(cpf.is_snapshot(h.write_file("CPFSNAP", ".csv"))) -- 7 bytes: no NUL
    assert.is_false(cpf.is_snapshot("/dev/null"))
    local fifo = h.tmpname(".fifo")
    local made = os.execute("mkfifo " .. h.shell_quote(fifo))
    assert.is_truthy(made == true or made == 0)
    assert.is_false(cpf.is_snapshot(fifo)) -- returns at once: a FIFO is never opened
    assert.are.equal("bad argument #1 to 'is_snapshot' (string expected, got nil)",
      h.error_of(function() return cpf.is_snapshot() end))
  end)
end)

-- First contact (issue 31, points 3, 4 and 7): files that explain themselves — gzip read directly
-- (by its first bytes, any name, standard input too), workbooks, archives and pages recognised
-- with what to do, text that is not UTF-8 refused with its row (or read with encoding = "cp1252"
-- / "latin1"), a header that another separator would split; typos answered with "did you mean"
-- (columns, measures, formats, --where values, which also get a note when they match nothing);
-- `-o` to a device, `cpf demo DIR` making DIR.
local h = require "spec.helpers"
local cpf = require "cpf"
local core = require "cpf.core"

local CSV = { "region_lieu_formation;statut_dossier;date_validation;nb_dossiers;montant_engage" }
local REGIONS = { "Bretagne", "Île-de-France", "Auvergne-Rhône-Alpes", "Provence-Alpes-Côte d'Azur", "" }
for i = 1, 400 do
  CSV[#CSV + 1] = ("%s;%s;202%d-%02d;%d;%d,%02d"):format(REGIONS[i % 5 + 1], i % 3 == 0 and "Validé" or "Annulé",
    i % 5, i % 12 + 1, i % 7 + 1, i * 137, i % 100)
end
CSV = table.concat(CSV, "\n") .. "\n"

-- UTF-8 text as Windows-1252 bytes (the characters this spec uses)
local function to_cp1252(s)
  local map = { ["Î"] = "\206", ["ô"] = "\244", ["é"] = "\233", ["€"] = "\128", ["’"] = "\146" }
  return (s:gsub("[\192-\244][\128-\191]+", function(c) return assert(map[c], c) end))
end

describe("files that explain themselves", function()
  local path
  setup(function() path = h.write_file(CSV, ".csv") end)
  teardown(h.cleanup)

  it("reads gzip by its first bytes: a .csv.gz, another name, several members, standard input", function()
    local want = assert(cpf.load(path))
    local gz = path .. ".gz"
    assert.are.equal(0, select(3, h.run("gzip -c " .. path .. " > " .. gz)))
    h.same_dataset(want, assert(cpf.load(gz)), ".csv.gz")
    h.same_dataset(want, assert(cpf.load(gz, { threads = 3 })), ".csv.gz, 3 threads")
    local renamed = h.tmpname(".csv")
    assert.are.equal(0, select(3, h.run("cp " .. gz .. " " .. renamed)))
    h.same_dataset(want, assert(cpf.load(renamed)), "a gzip named .csv")
    -- two members, as `cat a.gz b.gz` makes: the header in the first, rows in both
    local head, tail = CSV:match("^(.-\n.-\n.-\n)(.*)$")
    local two = h.tmpname(".csv.gz")
    local a, b = h.write_file(head, ".part"), h.write_file(tail, ".part")
    assert.are.equal(0, select(3, h.run(("(gzip -c %s; gzip -c %s) > %s"):format(a, b, two))))
    h.same_dataset(want, assert(cpf.load(two)), "two members")
    -- zeros after the last member (padding), as gzip -d passes them over
    local padded = h.tmpname(".csv.gz")
    h.write_bytes(padded, h.read_file(gz) .. ("\0"):rep(512))
    h.same_dataset(want, assert(cpf.load(padded)), "padded")
    local out, err, code = h.run("cat " .. gz .. " | " .. h.cpf_command("query - --by annee --format csv"))
    assert.are.equal(0, code, err)
    assert.are.equal((h.run(h.cpf_command("query " .. path .. " --by annee --format csv"))), out)
    -- a gzip file cut short, or damaged, is an error of kind data
    local cut = h.tmpname(".csv.gz")
    h.write_bytes(cut, h.read_file(gz):sub(1, 200))
    local ds, cerr, kind = cpf.load(cut)
    assert.is_nil(ds)
    assert.are.same({ cut .. ": truncated gzip file: it ends before its last block", "data" }, { cerr, kind })
    local bad = h.tmpname(".csv.gz")
    h.write_bytes(bad, h.read_file(gz):sub(1, 12) .. ("\255"):rep(40) .. h.read_file(gz):sub(53))
    ds, cerr, kind = cpf.load(bad)
    assert.is_nil(ds)
    assert.is_truthy(cerr:find(bad .. ": damaged gzip file: ", 1, true), cerr)
    assert.are.equal("data", kind)
  end)

  it("fails cleanly at sampled allocations of a gzip load (zlib's go through the core's)", function()
    local gz = path .. ".gz"
    assert.are.equal(0, select(3, h.run("gzip -c " .. path .. " > " .. gz)))
    local want = assert(cpf.load(path))
    local n = 1
    while true do
      core.fail_allocation(n)
      local ok, ds, err, kind = pcall(cpf.load, gz)
      local left = core.allocations_left()
      core.fail_allocation(0)
      assert.is_true(ok, tostring(ds))
      if left > 0 then break end
      if ds then h.same_dataset(want, ds, "allocation " .. n)
      else assert.are.same({ gz .. ": out of memory", "memory" }, { err, kind }, "allocation " .. n) end
      n = n + 3
    end
    assert.is_true(n > 10)
  end)

  it("recognises workbooks, archives, PDFs and web pages by their first bytes, and says what to do", function()
    local cases = {
      { "PK\3\4\20\0\0\0\8\0[Content_Types].xml xl/workbook.xml", "an Excel workbook (.xlsx)" },
      { "PK\3\4\20\0\0\0\8\0data.csv", "a ZIP archive" },
      { "\208\207\17\224\161\177\26\225" .. ("\0"):rep(40), "an old Excel workbook (.xls)" },
      { "PAR1\21\4\21", "a Parquet file" },
      { "%PDF-1.7\n", "a PDF document" },
      { "BZh91AY&SY", "a bzip2-compressed file" },
      { "\253" .. "7zXZ\0\0", "an xz-compressed file" },
      { "\239\187\191\n  <!DOCTYPE html>\n<html><body>Erreur 502</body></html>\n", "an HTML page" },
    }
    for _, case in ipairs(cases) do
      local file = h.write_file(case[1], ".csv")
      local ds, err, kind = cpf.load(file)
      assert.is_nil(ds, case[2])
      assert.are.equal("data", kind, case[2])
      assert.are.equal(file .. ": " .. case[2], err:sub(1, #file + 2 + #case[2]), err)
    end
  end)

  it("refuses text that is not UTF-8 with its row, even skipping bad records, and reads it with encoding", function()
    local cp = h.write_file(to_cp1252(CSV), ".csv")
    local ds, err, kind = cpf.load(cp)
    assert.is_nil(ds)
    assert.are.equal("data", kind)
    assert.are.equal(cp .. ":2:1: region_lieu_formation: not UTF-8 text: \"\\xCEle-de-France\"; a French file that "
      .. "is not UTF-8 is most often Windows-1252: load it with --encoding cp1252 (encoding = \"cp1252\")", err)
    assert.is_nil((cpf.load(cp, { on_error = "skip" })))
    local want = assert(cpf.load(path))
    h.same_dataset(want, assert(cpf.load(cp, { encoding = "cp1252" })), "cp1252")
    h.same_dataset(want, assert(cpf.load(cp, { encoding = "latin1", threads = 2 })), "latin1")
    -- the header too
    local header = h.write_file(to_cp1252("Région;nb_dossiers\nBretagne;1\n"), ".csv")
    ds, err = cpf.load(header)
    assert.is_nil(ds)
    assert.are.equal(header .. ":1:1: the header is not UTF-8 text; a French file that is not UTF-8 is most often "
      .. "Windows-1252: load it with --encoding cp1252 (encoding = \"cp1252\")", err)
    assert.are.equal("Région", assert(cpf.load(header, { encoding = "cp1252" })):columns()[1].label)
    -- a Windows-1252 no-break space between thousands: numbers, as in a UTF-8 file
    local grouped = h.write_file("a;b\nx;1\160234\ny;5\160678\n", ".csv")
    local g = assert(cpf.load(grouped, { encoding = "cp1252" }))
    assert.are.same({ "integer", 1234, 5678 }, { g:column("b").type, g:get(1, "b"), g:get(2, "b") })
    -- Windows-1252's own characters between 0x80 and 0x9F
    local euro = h.write_file(to_cp1252("a;b\n€;l’été\n"), ".csv")
    local e = assert(cpf.load(euro, { encoding = "cp1252" }))
    assert.are.same({ "€", "l’été" }, { e:get(1, "a"), e:get(1, "b") })
    assert.are.equal("load: option 'encoding' must be \"utf-8\", \"cp1252\" or \"latin1\"",
                     h.error_of(function() cpf.load(cp, { encoding = "utf-16" }) end))
    local out, cerr, code = h.run(h.cpf_command("query " .. cp .. " --encoding windows-1252 --by region_lieu_formation "
      .. "--where region_lieu_formation=Île-de-France --measure dossiers --format csv"))
    assert.are.equal(0, code, cerr)
    assert.are.equal("region_lieu_formation,dossiers\nÎle-de-France," .. want:group_by("region_lieu_formation")
      :where { region_lieu_formation = "Île-de-France" }:run { "dossiers" }[1].dossiers .. "\n", out)
  end)

  it("says when the header is one column that another separator splits", function()
    local _, err, code = h.run(h.cpf_command("query " .. path .. " --sep , --by annee"))
    assert.are.equal(1, code)
    assert.are.equal("cpf: " .. path .. ":1: unknown column 'annee' (--by annee); the header is one column, which ';' "
      .. "splits: give --sep ';'\n", err)
  end)
end)

describe("typos", function()
  local path
  setup(function() path = h.write_file(CSV, ".csv") end)
  teardown(h.cleanup)

  local function run(args) return h.run(h.cpf_command("query " .. path .. " " .. args)) end

  it("get 'did you mean' for columns, measures and formats", function()
    local _, err = run("--by regoin_lieu_formation")
    assert.are.equal("cpf: " .. path .. ":1: unknown column 'regoin_lieu_formation' (--by regoin_lieu_formation) "
      .. "(did you mean 'region_lieu_formation'?)\n", err)
    _, err = run("--by Annee")
    assert.are.equal("cpf: " .. path .. ":1: unknown column 'Annee' (--by Annee) (did you mean 'annee'?)\n", err)
    _, err = run("--by annee --measure dossier")
    assert.are.equal("cpf: --measure 'dossier': unknown measure 'dossier' (did you mean 'dossiers'?)\n"
      .. "try 'cpf query --help'\n", err)
    _, err = run("--by annee --format cvs")
    assert.are.equal("cpf: unknown format 'cvs' (csv, csv-fr, tsv, json, jsonl, markdown, table, html, svg) "
      .. "(did you mean 'csv'?)\ntry 'cpf query --help'\n", err)
    -- nothing close: no suggestion
    _, err = run("--by zzzzzz")
    assert.are.equal("cpf: " .. path .. ":1: unknown column 'zzzzzz' (--by zzzzzz)\n", err)
    -- from Lua too
    local ds = assert(cpf.load(path))
    assert.is_truthy(h.error_of(function() ds:group_by("regoin_lieu_formation"):run { "dossiers" } end)
      :find("unknown column 'regoin_lieu_formation' (did you mean 'region_lieu_formation'?)", 1, true))
  end)

  it("give a note, with the closest value, for a --where value no row has; the answer is the same", function()
    local out, err, code, _ = run("--by annee --measure dossiers --where statut_dossier=Valide --format csv")
    assert.are.equal(0, code, err)
    assert.are.equal("annee,dossiers\n", out)
    assert.are.equal("cpf: note: --where 'statut_dossier=Valide': no row has statut_dossier 'Valide' "
      .. "(did you mean 'Validé'?)\n", err)
    _, err = run("--by annee --where 'region_lieu_formation=Ile-de-France|Bretagne' --format csv")
    assert.are.equal("cpf: note: --where 'region_lieu_formation=Ile-de-France|Bretagne': no row has "
      .. "region_lieu_formation 'Ile-de-France' (did you mean 'Île-de-France'?)\n", err)
    _, err = run("--by annee --where statut_dossier=Validé --format csv")
    assert.are.equal("", err)
  end)
end)

describe("small things", function()
  teardown(h.cleanup)

  it("csv-fr --opt labels=true writes French titles and family names for a spreadsheet", function()
    local path = h.write_file(CSV, ".csv")
    local out, err, code = h.run(h.cpf_command("query " .. path .. " --by annee,famille --measure dossiers "
      .. "--where annee=2021 --format csv-fr --opt labels=true --opt bom=false"))
    assert.are.equal(0, code, err)
    local ds = assert(cpf.load(path))
    local want = { "Année;Famille de statut;Dossiers" }
    local names = { validated = "Validés", cancelled = "Annulés" }
    for _, r in ipairs(ds:group_by("annee", "famille"):where { annee = 2021 }:run { "dossiers" }) do
      want[#want + 1] = ("%d;%s;%d"):format(r.annee, names[r.famille] or "", r.dossiers)
    end
    assert.are.equal(table.concat(want, "\n") .. "\n", out)
    out = h.run(h.cpf_command("query " .. path .. " --by famille --measure dossiers --format csv --opt labels=true"))
    assert.are.equal("Status family,Files", out:match("^[^\n]*"))
  end)

  it("cpf demo DIR makes DIR", function()
    local dir = h.tmpname("-demo") .. "/a/b"
    finally(function() os.execute("rm -rf " .. h.shell_quote(dir:gsub("/a/b$", ""))) end)
    local _, err, code = h.run(h.cpf_command("demo " .. dir .. " --rows 300"))
    assert.are.equal(0, code, err)
    assert.is_truthy(io.open(dir .. "/cpf-demo.csv"))
    local file = h.write_file("x", ".txt")
    _, err, code = h.run(h.cpf_command("demo " .. file .. "/sub --rows 300"))
    assert.are.equal(1, code)
    assert.are.equal("cpf: " .. file .. ": not a folder\n", err)
  end)
end)

-- bin/cpf as a user runs it: a subprocess under the Lua running the specs, its output and
-- exit status (0 ok, 1 runtime error, 2 usage error).
local h = require "spec.helpers"
local cpf = require "cpf"

local function cpf_run(args)
  return h.run(h.cpf_command(args))
end

describe("bin/cpf", function()
  teardown(h.cleanup)

  it("prints its version", function()
    local out, err, code = cpf_run "--version"
    assert.are.equal("cpf 0.1.0\n", out)
    assert.are.equal("", err)
    assert.are.equal(0, code)
  end)

  it("prints its help", function()
    local out, _, code = cpf_run "--help"
    assert.are.equal(0, code)
    assert.is_truthy(out:find("^usage: cpf COMMAND"))
    assert.is_truthy(out:find("gen ROWS OUT.csv", 1, true))
    local gen_help, _, gen_code = cpf_run "gen --help"
    assert.are.equal(0, gen_code)
    assert.is_truthy(gen_help:find("^usage: cpf gen ROWS OUT.csv"))
  end)

  it("exits with 2 and the usage when given no command", function()
    local out, _, code = cpf_run ""
    assert.are.equal(2, code)
    assert.is_truthy(out:find("^usage: cpf COMMAND"))
  end)

  it("exits with 2 on an unknown command, with a message on stderr", function()
    local out, err, code = cpf_run "frobnicate"
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: unknown command 'frobnicate'\ntry 'cpf --help'\n", err)
  end)

  it("generates the same bytes twice for a seed, which cpf.load reads back", function()
    local a, b = h.tmpname(".csv"), h.tmpname(".csv")
    local _, err, code = cpf_run("gen 1000 " .. h.shell_quote(a) .. " --seed 3")
    assert.are.equal(0, code, err)
    _, err, code = cpf_run("gen 1000 " .. h.shell_quote(b) .. " --seed 3")
    assert.are.equal(0, code, err)
    local text = h.read_file(a)
    assert.is_true(text == h.read_file(b), "two runs with --seed 3 differ")
    assert.are.equal("\239\187\191date_chargement;date validation;", text:sub(1, 35))
    -- a header and 1000 records; quoted titles may hold more line breaks
    assert.is_true(select(2, text:gsub("\n", "")) >= 1001)
    local ds = assert(cpf.load(a))
    assert.are.equal(1000, #ds)
    assert.are.equal(37, #ds:columns())
    ds:close()
    local c = h.tmpname(".csv")
    assert.are.equal(0, select(3, cpf_run("gen 1000 " .. h.shell_quote(c) .. " --seed 4")))
    assert.is_false(h.read_file(c) == text, "--seed 4 gives the bytes of --seed 3")
  end)

  it("writes the API field names without a BOM, with CRLF", function()
    local path = h.tmpname(".csv")
    assert.are.equal(0, select(3, cpf_run("gen 5 " .. h.shell_quote(path) .. " --fields --no-bom --crlf")))
    local text = h.read_file(path)
    assert.are.equal("date_chargement;date_validation;", text:sub(1, 32))
    assert.are.equal(6, select(2, text:gsub("\r\n", "")))
  end)

  it("exits with 2 when ROWS is not a number", function()
    local out, err, code = cpf_run "gen abc x"
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: ROWS must be a whole number, got 'abc'\ntry 'cpf gen --help'\n", err)
    assert.is_nil(io.open("x"), "gen abc x wrote a file")
  end)

  it("exits with 2 on a missing argument or an unknown option", function()
    local _, err, code = cpf_run "gen 10"
    assert.are.equal(2, code)
    assert.are.equal("cpf: gen needs ROWS and OUT.csv\ntry 'cpf gen --help'\n", err)
    _, err, code = cpf_run "gen 10 x.csv --colour"
    assert.are.equal(2, code)
    assert.are.equal("cpf: unknown option '--colour'\ntry 'cpf gen --help'\n", err)
  end)

  it("exits with 1 and a 'cpf: ' message when the file cannot be written", function()
    local out, err, code = cpf_run "gen 10 /nonexistent/dir/x.csv"
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("cpf: /nonexistent/dir/x.csv: No such file or directory\n", err)
  end)

  it("runs the demo on generated data", function()
    local dir = h.tmpname("-demo")
    assert(os.execute("mkdir " .. h.shell_quote(dir)))
    finally(function() os.execute("rm -rf " .. h.shell_quote(dir)) end)
    local page = dir .. "/demo.html"
    local out, err, code = cpf_run("demo --rows 2000 " .. h.shell_quote(dir) .. " --html " .. h.shell_quote(page))
    assert.are.equal(0, code, err)
    -- the same report as one French page (cpf.report): four sections, each with its chart
    local html = h.read_file(page)
    assert.are.equal(4, select(2, html:gsub("<section>", "")))
    assert.are.equal(4, select(2, html:gsub("<figure>", "")))
    for _, title in ipairs { "Dossiers, montant, prix moyen, durée et taux d&#39;annulation par année",
                             "Les 10 régions au plus fort montant en ", "Dossiers par famille de statut",
                             "Qui finance", "Rapport de démonstration sur 2\226\128\175000 lignes générées",
                             "extraction du 4 mai 2026 (2\226\128\175000 lignes)" } do
      assert.is_truthy(html:find(title, 1, true), title)
    end
    assert.is_truthy(out:find("^cpf dataset: 2000 rows × 37 columns, "))
    for _, title in ipairs { "Files, amount, average price and duration, cancellation rate by year",
                             "Top 10 regions by amount in ", "Files by status family", "Who pays" } do
      assert.is_truthy(out:find(title, 1, true), title)
    end
    local ds = assert(cpf.load(dir .. "/cpf-demo.csv"))
    assert.are.equal(2000, #ds)
    -- the yearly table adds up to the files of the whole file
    local yearly = out:match("by year\n[^\n]*\n%-[%- ]*\n(.-)\n\n") -- below the header and its rule
    local sum, files = 0, 0
    for line in yearly:gmatch("[^\n]+") do -- cells are 2+ spaces apart; thousands, 1 space
      local cells = {}
      for c in (line:gsub("^%s+", "") .. "  "):gmatch("(.-)%s%s+") do cells[#cells + 1] = c end
      sum = sum + tonumber((cells[2]:gsub(" ", "")))
    end
    for i = 1, #ds do files = files + ds:get(i, "nb_dossiers") end
    assert.are.equal(files, sum)
    ds:close()
  end)
end)

-- Parallel loading: the file is cut into chunks at record boundaries (quote parity), parsed on
-- several threads and merged. The dataset must be the same whatever the thread count.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

local same_dataset = h.same_dataset

-- Rows whose titles hold quotes, separators and line breaks (LF and CRLF), so that many chunk
-- cuts fall inside or next to a quoted field; plus amounts with varying decimals and an
-- unknown column whose type is only known at the end.
local function nasty_csv(rows, crlf)
  local eol = crlf and "\r\n" or "\n"
  local out = { "statut_dossier;libelle_formacode_principal;nb_dossiers;montant_engage;extra" .. eol }
  local state = 7
  local function r(n) state = (state * 48271) % 2147483647 return state % n end
  for i = 1, rows do
    local title = ({ "plain", '"with ; semicolon"', '"two\nlines"', '"crlf\r\ninside"', '"a ""quote"""',
                     '"\n"', '""', "  spaced  " })[r(8) + 1]
    local amount = ({ "12.5", "100", "0", "", "7.125", "1e3" })[r(6) + 1]
    if i < rows / 2 and amount == "1e3" then amount = "3.25" end -- doubles only in the second half
    local extra = i == rows - 3 and "x" or tostring(r(100))      -- text only near the end
    out[#out + 1] = ("Validé;%s;%d;%s;%s%s"):format(title, r(50), amount, extra, eol)
    if r(40) == 0 then out[#out + 1] = eol end                    -- blank lines
  end
  return table.concat(out)
end

describe("parallel load #threads", function()
  after_each(h.cleanup)

  it("gives the same dataset with 1, 2, 3, 5 and 8 threads on a generated file", function()
    local path = h.tmpname(".csv")
    assert(gen.write(path, 40000, { seed = 13 }))
    local one = assert(cpf.load(path, { threads = 1 }))
    for _, t in ipairs { 2, 3, 5, 8 } do
      same_dataset(one, assert(cpf.load(path, { threads = t })), t .. " threads")
    end
  end)

  it("gives the same dataset on files with quoted line breaks everywhere, LF and CRLF", function()
    for _, crlf in ipairs { false, true } do
      local path = h.write_file(nasty_csv(30000, crlf))
      local one = assert(cpf.load(path, { threads = 1 }))
      assert.are.equal(30000, #one)
      assert.are.equal("number", one:column("montant_engage").type)
      assert.are.equal("string", one:column("extra").type)
      for _, t in ipairs { 2, 4, 7 } do
        same_dataset(one, assert(cpf.load(path, { threads = t })), ("%d threads, crlf %s"):format(t, tostring(crlf)))
        same_dataset(one, assert(cpf.load(path, { threads = t, parser = "libcsv" })), t .. " threads, libcsv")
      end
    end
  end)

  it("keeps money exact when chunks end with different scales", function()
    local lines = { "montant_engage" }
    for i = 1, 20000 do lines[#lines + 1] = i == 19000 and "0.125" or "1.50" end
    local path = h.write_file(table.concat(lines, "\n") .. "\n")
    local one = assert(cpf.load(path, { threads = 1, sep = ";" }))
    local four = assert(cpf.load(path, { threads = 4, sep = ";" }))
    assert.are.equal(3, four:column("montant_engage").scale)
    same_dataset(one, four, "scales")
    assert.are.equal(29998.625, four:run { s = cpf.sum "montant_engage" }[1].s)
  end)

  it("reports the first error of the file, with its row, whatever the thread count", function()
    local text = nasty_csv(20000, false)
    -- a bad count on a late line: its row number depends on every line before it
    local lines = {}
    for line in text:gmatch("[^\n]*\n") do lines[#lines + 1] = line end
    local bad = #lines - 100
    while not lines[bad]:match("^Validé;plain;") do bad = bad - 1 end
    lines[bad] = lines[bad]:gsub("^Validé;plain;%d+;", "Validé;plain;deux;")
    local path = h.write_file(table.concat(lines))
    local _, e1 = cpf.load(path, { threads = 1 })
    assert.is_string(e1)
    assert.is_truthy(e1:find('nb_dossiers: expected an integer, got "deux"', 1, true))
    for _, t in ipairs { 2, 3, 6 } do
      local none, e = cpf.load(path, { threads = t })
      assert.is_nil(none)
      assert.are.equal(e1, e)
    end
  end)

  it("refuses a bad thread count", function()
    assert.has_error(function() cpf.load("x.csv", { threads = 0 }) end,
      "load: option 'threads' must be a whole number from 1 to 64")
    assert.has_error(function() cpf.load("x.csv", { threads = 1.5 }) end,
      "load: option 'threads' must be a whole number from 1 to 64")
  end)
end)

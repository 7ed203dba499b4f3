-- The loader's fast path (lines without quotes, fields quoted whole) against libcsv: the same files
-- loaded both ways (opts.parser = "libcsv" sends every line through libcsv) must give identical
-- datasets, or the same error.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

local function same_load(path, opts)
  local a, err_a = cpf.load(path, opts)
  local forced = { parser = "libcsv" }
  for k, v in pairs(opts or {}) do forced[k] = v end
  local b, err_b = cpf.load(path, forced)
  assert.are.equal(err_b, err_a)
  if not a then return nil, err_a end
  h.same_dataset(b, a, path)
  return a
end

-- Small deterministic generator (an LCG in doubles: same sequence on every Lua).
local function rng(seed)
  local state = seed
  return function(n)
    state = (state * 48271) % 2147483647
    return state % n + 1
  end
end

local PIECES = { "", "a", " b ", "\tc\t", '"q"', '"x;y"', '"line\nbreak"', '""', "12", "1.5", "-3",
                 "  ", '"a""b"', "Validé", '" padded "', "x y", '"crlf\r\ninside"', "07", " 12 ", "\t",
                 'dekh"iykh\'ya', 'x"', ' "q" ', '"q"  ', '"q"\t', "a\"\"b" }

-- A random CSV of `cols` columns: random fields, LF or CRLF, empty lines and lines of blank fields.
local function random_csv(seed, cols, rows)
  local r = rng(seed)
  local crlf = r(2) == 1
  local eol = crlf and "\r\n" or "\n"
  local out, header = {}, {}
  for c = 1, cols do header[c] = "c" .. c end
  out[1] = table.concat(header, ";") .. eol
  for _ = 1, rows do
    local k = r(20)
    if k == 1 then
      out[#out + 1] = eol
    elseif k == 2 then
      out[#out + 1] = ("  \t ;"):rep(cols):sub(1, -2) .. eol
    else
      local fields = {}
      for c = 1, cols do fields[c] = PIECES[r(#PIECES)] end
      out[#out + 1] = table.concat(fields, ";") .. eol
    end
  end
  if r(3) == 1 then out[#out] = out[#out]:gsub("[\r\n]+$", "") end -- no final line break
  return table.concat(out)
end

describe("the loader's fast path", function()
  after_each(h.cleanup)

  it("gives the same dataset as libcsv on generated CPF files", function()
    local path = h.tmpname(".csv")
    assert(gen.write(path, 20000, { seed = 5 }))
    local ds = same_load(path)
    assert.are.equal(20000, #ds)
    local crlf = h.tmpname(".csv")
    assert(gen.write(crlf, 3000, { seed = 6, crlf = true, bom = false, header = "fields" }))
    assert.are.equal(3000, #same_load(crlf))
  end)

  it("gives the same dataset as libcsv on 200 random small files", function()
    for seed = 1, 200 do
      local text = random_csv(seed, 1 + seed % 5, 1 + seed % 17)
      local path = h.write_file(text)
      local ok, err = pcall(same_load, path, { sep = ";" })
      assert(ok, ("seed %d: %s\n%q"):format(seed, tostring(err), text))
    end
  end)

  it("keeps spaces and tabs around unquoted fields, and fields of blanks only, byte for byte", function()
    local ds = same_load(h.write_file('a;b;c;d\n  x \t;" y ";\tz;  \n \t; ;\t\t;x y\n'))
    assert.are.same({ a = "  x \t", b = " y ", c = "\tz", d = "  " }, ds:row(1))
    assert.are.same({ a = " \t", b = " ", c = "\t\t", d = "x y" }, ds:row(2))
    ds = same_load(h.write_file("a\n \n\n  \n"), { sep = ";" })      -- one column: a blank is a value
    assert.are.same({ " ", "  " }, { ds:get(1, "a"), ds:get(2, "a") })
    local _, err = same_load(h.write_file("a;b\n1;2\n  \n"))          -- two: a blank line is a short record
    assert.is_truthy(err:find(":3: too few fields: 1 (the header has 2)", 1, true), err)
  end)

  it("reads numbers, months and dates through the blanks around them; blanks only are missing", function()
    local ds = same_load(h.write_file("date_validation;nb_dossiers;montant_engage;date_chargement;x\n"
      .. " 2024-01 ;\t2 ; 10.50\t;2026-05-04  ; 7 \n2024-02;  ;\t;   ;\n"))
    assert.are.same({ "2024-01", 2, 10.5, "2026-05-04", 7 },
      { ds:get(1, 1), ds:get(1, 2), ds:get(1, 3), ds:get(1, 4), ds:get(1, 5) })
    assert.are.same({ "2024-02" }, { ds:get(2, 1), ds:get(2, 2), ds:get(2, 3), ds:get(2, 4), ds:get(2, 5) })
  end)

  it("reads a quote inside an unquoted field as a character, blanks around quoted fields as padding", function()
    local ds = same_load(h.write_file('a;b;c\ndekh"iykh\'ya;13";"q"  \n x "y";"z" \t;\t"w"\n'))
    assert.are.same({ a = 'dekh"iykh\'ya', b = '13"', c = "q" }, ds:row(1))
    assert.are.same({ a = ' x "y"', b = "z", c = '\t"w"' }, ds:row(2))
    assert.are.equal(2, #ds)
  end)

  it("keeps a tab inside fields of a tab-separated file as the separator", function()
    local ds = same_load(h.write_file("a\tb\tc\n x \t y \t\"z\"\n"), { sep = "\t" })
    assert.are.same({ a = " x ", b = " y ", c = "z" }, ds:row(1))
  end)

  it("ends a record at a lone CR, as libcsv does", function()
    local ds = same_load(h.write_file("a;b\n1;2\r3;4\n"))
    assert.are.equal(2, #ds)
    assert.are.same({ a = 3, b = 4 }, ds:row(2))
  end)

  it("handles long lines, wide rows and stops found far into a line", function()
    local wide = {}
    for c = 1, 1500 do wide[c] = "c" .. c end -- more fields than the scanner keeps: libcsv reads it
    local row = {}
    for c = 1, 1500 do row[c] = tostring(c) end
    local long = ("x"):rep(40)
    local text = table.concat(wide, ";") .. "\n" .. table.concat(row, ";") .. "\n"
    assert.are.equal(1, #same_load(h.write_file(text)))
    text = "a;b;c\n" .. long .. ";" .. long .. ";" .. long .. "\r\n"     -- CRLF after 16-byte blocks
      .. long .. ";" .. long .. '"q";' .. long .. "\n"                   -- a bare quote late in a line
    assert.are.equal(long .. '"q"', same_load(h.write_file(text)):get(2, "b"))
    text = "a;b;c\n" .. long .. ';"' .. long .. '"q;' .. long .. "\n"  -- text after a closing quote
    local _, err = same_load(h.write_file(text))
    assert.is_truthy(err:find(":2:2: malformed quoted field: text after its closing quote", 1, true), err)
    text = "a;b\n" .. long .. "\r" .. long .. ";1\n" .. long .. ";2\n"   -- a lone CR far into a line
    local _, err2 = same_load(h.write_file(text))
    assert.is_truthy(err2:find(":2: too few fields: 1 (the header has 2)", 1, true), err2)
    text = "a;b\n" .. long .. ";" .. long .. "\n" .. long .. ";" .. long   -- no final line break
    assert.are.equal(2, #same_load(h.write_file(text)))
  end)

  it("reads fields quoted whole, and passes over the fields after the last column asked for", function()
    local text = 'a;b;c;d\n"x;y";1;"z";"p;q"\n"";2;"";""\n"q""r";3;s;t\n"w" ;4;"v";"u"\r\n5;"";6;"7\n8"\n9;a"b;10;11\n'
    local ds = same_load(h.write_file(text))
    assert.are.same({ a = "x;y", b = "1", c = "z", d = "p;q" }, ds:row(1))
    assert.are.same({ b = "2" }, ds:row(2))
    assert.are.same({ a = 'q"r', b = "3", c = "s", d = "t" }, ds:row(3))
    assert.are.same({ a = "w", b = "4", c = "v", d = "u" }, ds:row(4))
    assert.are.same({ a = "5", c = "6", d = "7\n8" }, ds:row(5))
    assert.are.same({ a = "9", b = 'a"b', c = "10", d = "11" }, ds:row(6))
    for _, columns in ipairs { { "a" }, { "b" }, { "a", "c" }, { "d" } } do
      same_load(h.write_file(text), { columns = columns })
    end
    for seed = 1, 100 do
      local cols = 2 + seed % 4
      local text2 = random_csv(seed, cols, 1 + seed % 13)
      local ok, err = pcall(same_load, h.write_file(text2), { sep = ";", columns = { "c" .. (1 + seed % (cols - 1)) } })
      assert(ok, ("seed %d: %s\n%q"):format(seed, tostring(err), text2))
    end
  end)

  it("loads only the columns asked for, with the same values", function()
    local path = h.tmpname(".csv")
    assert(gen.write(path, 5000, { seed = 9 }))
    local full = assert(cpf.load(path))
    local wanted = { "montant_engage", "date validation", "Code Officiel Département", "statut_dossier" }
    for _, threads in ipairs { 1, 3 } do
      local part = assert(cpf.load(path, { columns = wanted, threads = threads }))
      local names = {}
      for _, c in ipairs(part:columns()) do names[#names + 1] = c.name end
      assert.are.same({ "date_validation", "statut_dossier", "montant_engage", "code_officiel_departement" }, names)
      for i = 1, #full, 7 do
        for _, n in ipairs(names) do assert.are.equal(full:get(i, n), part:get(i, n)) end
      end
      assert.is_true(part:memory() < full:memory() / 4)
    end
    local none, err = cpf.load(path, { columns = { "montant_engage", "nope" } })
    assert.is_nil(none)
    assert.are.equal(path .. ":1: opts.columns: no column named 'nope'", err)
    assert.has_error(function() cpf.load(path, { columns = {} }) end,
      "load: option 'columns' must be a non-empty list of column names")
  end)

  it("reports the same errors", function()
    for _, text in ipairs {
      "a;b\n1;2\n3\n4;5\n",                 -- too few fields
      "a;b\n1;2;3\n",                       -- too many
      'a;b\n1;"open\n2;3\n',                -- unterminated quote at the end
      'a;b\n"x y"z;1\n',                   -- text after a closing quote
      'a;b\n"x y"  z;1\n',                 -- the same after blanks
      "nb_dossiers;b\n1;x\ndeux;y\n",      -- not a number
    } do
      local _, err = same_load(h.write_file(text))
      assert.is_string(err)
    end
  end)

  it("refuses an unknown parser", function()
    assert.has_error(function() cpf.load("x.csv", { parser = "fast" }) end,
      "load: option 'parser' must be \"auto\" or \"libcsv\"")
  end)
end)

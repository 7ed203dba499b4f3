-- The hostile-input catalogue (issue 8): malformed files, odd bytes, bad paths and misuse from
-- Lua, each with the exact message or the exact answer cpf gives. A crash anywhere here kills
-- the whole run; a changed message or value fails its case.
local h = require "spec.helpers"
local cpf = require "cpf"

local H = "statut_dossier;nb_dossiers;montant_engage\n"
local MALFORMED = "malformed quoted field: text after its closing quote"

-- Each file case: content, load options, then either err (PATH stands for the file's path) or
-- the dataset's columns ("name:type ...") and its rows (values in column order, nil allowed).
local files = {
  { "empty file", "", err = "PATH: empty file: no header line" },
  { "BOM only", "\239\187\191\n\n", err = "PATH: empty file: no header line" },
  { "blank lines only", "\n\r\n  \n", err = "PATH: empty file: no header line" },
  -- CPF columns take their schema types even without a row
  { "header only", H, cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = {} },
  { "header without a line break", "statut_dossier;nb_dossiers",
    cols = "statut_dossier:string nb_dossiers:integer", rows = {} },
  { "unknown columns without a row are strings", "a;b\n", cols = "a:string b:string", rows = {} },
  { "last line without a line break", H .. "Validé;2;1",
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = { { "Validé", 2, 1 } } },
  { "blank lines after the header only", H .. "\n\n\n",
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = {} },
  { "unterminated quote", H .. 'Validé;"2;1\n',
    err = "PATH:2:2: unterminated quoted field: the file ends inside quotes" },
  { "a quote inside an unquoted field is a character", H .. 'Le "x";2;1\nx"";3;1\n',
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal",
    rows = { { 'Le "x"', 2, 1 }, { 'x""', 3, 1 } } },
  { "spaces before a quote: the field is not quoted", H .. ' "x";2;1\n',
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = { { ' "x"', 2, 1 } } },
  { "blanks after a closing quote are passed over", H .. '"x" \t;"2"  ;1\n',
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = { { "x", 2, 1 } } },
  { "text after blanks after a closing quote", H .. '"x"  y;2;1\n', err = "PATH:2:1: " .. MALFORMED },
  { "text after a closing quote", H .. '"abc"def;2;1\n', err = "PATH:2:1: " .. MALFORMED },
  { "too few fields", H .. "Validé;2\n", err = "PATH:2: too few fields: 2 (the header has 3)" },
  { "too many fields", H .. "Validé;2;1;7\n", err = "PATH:2:4: too many fields (the header has 3)" },
  { "ragged rows further down", H .. "Validé;2;1\nRejeté;1;2\nx\n",
    err = "PATH:4: too few fields: 1 (the header has 3)" },
  { "NUL byte inside a text field", H .. "Val\0idé;2;10.00\n",
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = { { "Val\0idé", 2, 10 } } },
  { "NUL byte inside a number", H .. "Validé;2\0;10.00\n",
    err = 'PATH:2:2: nb_dossiers: expected an integer, got "2\\0"' },
  { "NUL byte inside a header name", "statut\0_dossier;nb_dossiers\nValidé;2\n",
    err = "PATH:1:1: a NUL byte in the header (column 1's name)" },
  { "control bytes shown escaped", H .. "Validé;2\1\127;10.00\n",
    err = 'PATH:2:2: nb_dossiers: expected an integer, got "2\\x01\\x7F"' },
  { "Latin-1 bytes refused as text that is not UTF-8", H .. "Valid\233;2;10.00\n",
    err = 'PATH:2:1: statut_dossier: not UTF-8 text: "Valid\\xE9"; a French file that is not UTF-8 is most often '
      .. 'Windows-1252: load it with --encoding cp1252 (encoding = "cp1252")' },
  { "Latin-1 bytes read with encoding = latin1", H .. "Valid\233;2;10.00\n", { encoding = "latin1" },
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = { { "Validé", 2, 10 } } },
  { "CR-only line endings", "statut_dossier;nb_dossiers\rValidé;2\rRejeté;3\r",
    cols = "statut_dossier:string nb_dossiers:integer", rows = { { "Validé", 2 }, { "Rejeté", 3 } } },
  { "CRLF and LF mixed", "statut_dossier;nb_dossiers\r\nValidé;2\nRejeté;3\r\n",
    cols = "statut_dossier:string nb_dossiers:integer", rows = { { "Validé", 2 }, { "Rejeté", 3 } } },
  { "wrong separator given", "statut_dossier,nb_dossiers\nValidé,2\n", { sep = ";" },
    cols = "statut_dossiernb_dossiers:string", rows = { { "Validé,2" } } },
  { "tab separated", "statut_dossier\tnb_dossiers\nValidé\t2\n",
    cols = "statut_dossier:string nb_dossiers:integer", rows = { { "Validé", 2 } } },
  { "pipe separated", "statut_dossier|nb_dossiers\nValidé|2\n",
    cols = "statut_dossier:string nb_dossiers:integer", rows = { { "Validé", 2 } } },
  { "no separator in a one-column header", "statut_dossier\nValidé\n",
    err = "PATH:1: cannot detect the separator: the header has no ';', ',', tab or '|' (give one with opts.sep)" },
  { "integer beyond 64 bits", H .. "Validé;9223372036854775808;1\n",
    err = 'PATH:2:2: nb_dossiers: expected an integer within 64 bits, got "9223372036854775808"' },
  { "smallest 64-bit integer", H .. "Validé;-9223372036854775808;1\n",
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal",
    rows = { { "Validé", math.mininteger or -2 ^ 63, 1 } } },
  { "money beyond 64 bits of cents becomes a number", H .. "Validé;1;92233720368547758.08\n",
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:number",
    rows = { { "Validé", 1, 92233720368547758.08 } } },
  { "1e400 is out of range, not infinity", "a;duree_moyenne\nx;1e400\n",
    err = 'PATH:2:2: duree_moyenne: expected a number within the range of a double, got "1e400"' },
  { "nan is not a number", "a;duree_moyenne\nx;nan\n", err = 'PATH:2:2: duree_moyenne: expected a number, got "nan"' },
  { "inf is not a number", "a;duree_moyenne\nx;inf\n", err = 'PATH:2:2: duree_moyenne: expected a number, got "inf"' },
  { "hexadecimal", H .. "Validé;0x10;1\n", err = 'PATH:2:2: nb_dossiers: expected an integer, got "0x10"' },
  { "thousands separator", H .. "Validé;1 000;1\n", err = 'PATH:2:2: nb_dossiers: expected an integer, got "1 000"' },
  { "two decimal points", H .. "Validé;1;1.2.3\n", err = 'PATH:2:3: montant_engage: expected a number, got "1.2.3"' },
  { "fractional count", "statut_dossier;nb_dossiers\nValidé;2.5\n",
    err = 'PATH:2:2: nb_dossiers: expected an integer, got "2.5"' },
  { "plus sign and spaces around a number", H .. "Validé; +2 ;1\n",
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = { { "Validé", 2, 1 } } },
  { "month 00", "date validation;nb_dossiers\n2023-00;1\n",
    err = 'PATH:2:1: date_validation: expected a month YYYY-MM or YYYY-MM-DD, got "2023-00"' },
  { "month 13", "date validation;nb_dossiers\n2023-13;1\n",
    err = 'PATH:2:1: date_validation: expected a month YYYY-MM or YYYY-MM-DD, got "2023-13"' },
  { "February 30", "date_chargement;nb_dossiers\n2023-02-30;1\n",
    err = 'PATH:2:1: date_chargement: expected a date YYYY-MM-DD, got "2023-02-30"' },
  { "February 29 of a common year", "date_chargement;nb_dossiers\n2023-02-29;1\n",
    err = 'PATH:2:1: date_chargement: expected a date YYYY-MM-DD, got "2023-02-29"' },
  { "February 29 of a leap year", "date_chargement;nb_dossiers\n2024-02-29;1\n",
    cols = "date_chargement:date nb_dossiers:integer", rows = { { "2024-02-29", 1 } } },
  { "empty header names", ";;\n1;2;3\n",
    cols = "column_1:integer column_2:integer column_3:integer", rows = { { 1, 2, 3 } } },
  { "a text field of spaces is kept, a number field of spaces is missing", H .. "   ;\t ;1\n",
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = { { "   ", nil, 1 } } },
  { "spaces around text are kept", H .. " Validé\t;2;1\n",
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = { { " Validé\t", 2, 1 } } },
  { "an inferred column reads numbers through spaces, blanks as missing", "a;b\n 1 ;x\n  ;y\n2;z\n",
    cols = "a:integer b:string", rows = { { 1, "x" }, { nil, "y" }, { 2, "z" } } },
  { "an inferred column of blanks only is text", "a;b\n  ;x\n;y\n",
    cols = "a:string b:string", rows = { { "  ", "x" }, { nil, "y" } } },
  { "quoted numbers", H .. 'Validé;"2";"1.50"\n',
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = { { "Validé", 2, 1.5 } } },
  { "quoted empty field is missing", H .. '"";2;1\n',
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = { { nil, 2, 1 } } },
  { "doubled quotes, separators and line breaks in quotes", H .. '"a""b;\nc";2;1\n',
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = { { 'a"b;\nc', 2, 1 } } },
  { "codes keep their leading zeros", "Code Officiel Département;nb_dossiers\n01;1\n2A;2\n",
    cols = "code_officiel_departement:string nb_dossiers:integer", rows = { { "01", 1 }, { "2A", 2 } } },
  { "negative amount", H .. "Validé;1;-10.50\n",
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = { { "Validé", 1, -10.5 } } },
  { "decimal comma", H .. "Validé;1;10,50\n",
    cols = "statut_dossier:string nb_dossiers:integer montant_engage:decimal", rows = { { "Validé", 1, 10.5 } } },
  { "two BOMs", "\239\187\191\239\187\191statut_dossier;nb_dossiers\nx;1\n",
    cols = "statut_dossier:string nb_dossiers:integer", rows = { { "x", 1 } } },
  { "the same column twice", "nb_dossiers;nb_dossiers\n1;2\n",
    err = "PATH:1: columns 1 and 2 are both 'nb_dossiers' (headers \"nb_dossiers\" and \"nb_dossiers\")" },
  { "a column under both spellings", "date validation;date_validation\n2023-01;2023-02\n",
    err = "PATH:1: columns 1 and 2 are both 'date_validation' (headers \"date validation\" and \"date_validation\")" },
  { "unknown columns only", "foo;bar\n1;x\n", cols = "foo:integer bar:string", rows = { { 1, "x" } } },
  { "opts.columns naming no column", H .. "Validé;1;1\n", { columns = { "nope" } },
    err = "PATH:1: opts.columns: no column named 'nope'" },
  { "opts.types with an unknown type", H .. "Validé;1;1\n", { types = { nb_dossiers = "float" } },
    err = "PATH:1: opts.types.nb_dossiers: unknown type 'float' "
      .. "(string, integer, number, decimal, month, date or auto)" },
  { "opts.types naming no column", H .. "Validé;1;1\n", { types = { nope = "integer" } },
    err = "PATH:1: opts.types: no column named 'nope'" },
}

local function check_file_case(c)
  local path = h.write_file(c[2])
  local ds, err = cpf.load(path, c[3])
  if c.err then
    assert.is_nil(ds, c[1])
    assert.are.equal(c.err:gsub("PATH", (path:gsub("%%", "%%%%"))), err, c[1])
    return
  end
  assert.is_not_nil(ds, c[1] .. ": " .. tostring(err))
  local cols = {}
  for i, col in ipairs(ds:columns()) do cols[i] = col.name .. ":" .. col.type end
  assert.are.equal(c.cols, table.concat(cols, " "), c[1])
  assert.are.equal(#c.rows, #ds, c[1])
  for r, row in ipairs(c.rows) do
    for j = 1, #cols do assert.are.equal(row[j], ds:get(r, j), ("%s: row %d column %d"):format(c[1], r, j)) end
  end
  ds:close()
end

describe("hostile files", function()
  after_each(h.cleanup)
  for _, c in ipairs(files) do
    it(c[1], function() check_file_case(c) end)
  end

  it("a 20 MB field", function()
    local big = string.rep("y", 20 * 1024 * 1024)
    local ds = assert(cpf.load(h.write_file("a;b\n1;x\n2;" .. big .. "\n3;z\n"), { threads = 1 }))
    assert.are.equal(3, #ds)
    assert.are.equal(#big, #ds:get(2, "b"))
  end)

  it("100 000 columns", function()
    local names, values = {}, {}
    for i = 1, 100000 do names[i] = "c" .. i values[i] = tostring(i % 10) end
    local ds = assert(cpf.load(h.write_file(table.concat(names, ";") .. "\n" .. table.concat(values, ";") .. "\n")))
    assert.are.equal(100000, #ds:columns())
    assert.are.equal(5, ds:get(1, "c99995"))
  end)
end)

describe("hostile paths", function()
  after_each(h.cleanup)

  it("give a message for each kind of file", function()
    local cases = {
      { "/nonexistent/x.csv", "/nonexistent/x.csv: cannot open: No such file or directory" },
      { "spec", "spec: cannot read: is a directory" },
      { "/dev/null", "/dev/null: empty file: no header line" },
    }
    for _, c in ipairs(cases) do
      local ds, err = cpf.load(c[1])
      assert.is_nil(ds, c[1])
      assert.are.equal(c[2], err)
    end
  end)

  it("read a FIFO like a file", function()
    local fifo = h.tmpname(".fifo")
    assert.are.equal(0, select(3, h.run("mkfifo " .. fifo)))
    local writer = io.popen("cat spec/fixtures/q_small.csv > " .. fifo, "w")
    local ds = assert(cpf.load(fifo))
    writer:close()
    assert.are.equal(7, #ds)
  end)

  it("refuse what is not a snapshot", function()
    for _, c in ipairs {
      { "/nonexistent.cpfsnap", "/nonexistent.cpfsnap: cannot open: No such file or directory" },
      { "spec/fixtures/q_small.csv", "spec/fixtures/q_small.csv: not a snapshot (no CPFSNAP header)" },
      { "spec", "spec: not a snapshot: not a regular file" },
      { "/dev/null", "/dev/null: not a snapshot: not a regular file" },
    } do
      local ds, err = cpf.open(c[1])
      assert.is_nil(ds, c[1])
      assert.are.equal(c[2], err)
    end
  end)

  -- a flipped byte of a column name used to open as a renamed column: names and labels are in
  -- their column's checksum since snapshot format 2, checked with the column's values when the
  -- column is first used (a query naming the old name finds no such column)
  it("truncated and bit-flipped snapshots never open as a dataset with other values", function()
    local ds = assert(cpf.load(h.fixture "q_small.csv"))
    local snap = h.tmpname(".cpfsnap")
    assert.is_true(ds:save(snap))
    local bytes = h.read_file(snap)
    for _, size in ipairs { 0, 7, 8, 64, math.floor(#bytes / 2), #bytes - 1 } do
      local cut = h.write_file(bytes:sub(1, size), ".cpfsnap")
      local none, err = cpf.open(cut)
      assert.is_nil(none, "cut at " .. size)
      assert.is_string(err)
    end
    for pos = 1, #bytes, 7 do
      local b = bytes:byte(pos)
      b = math.floor(b / 16) % 2 == 1 and b - 16 or b + 16 -- bit 4 flipped (no ~ on LuaJIT)
      local flipped = bytes:sub(1, pos - 1) .. string.char(b) .. bytes:sub(pos + 1)
      local s = cpf.open(h.write_file(flipped, ".cpfsnap"))
      -- a column's name and values are checked together when it is first used (or by verify)
      if s then
        if s:verify() then h.same_dataset(ds, s, "bit flipped at " .. pos) end
        s:close()
      end
    end
  end)
end)

describe("misuse from Lua", function()
  local p = "spec/fixtures/q_small.csv"
  local raised = h.error_of

  it("bad load arguments and options", function()
    for _, c in ipairs {
      { function() cpf.load() end, "bad argument #1 to 'load' (string expected, got nil)" },
      { function() cpf.load(42) end, "bad argument #1 to 'load' (string expected, got number)" },
      { function() cpf.load(p, "x") end, "bad argument #2 to 'load' (table expected, got string)" },
      { function() cpf.load(p, { thread = 2 }) end, "load: unknown option 'thread'" },
      { function() cpf.load(p, { threads = 0 }) end, "load: option 'threads' must be a whole number from 1 to 64" },
      { function() cpf.load(p, { threads = -1 }) end, "load: option 'threads' must be a whole number from 1 to 64" },
      { function() cpf.load(p, { threads = 1e9 }) end, "load: option 'threads' must be a whole number from 1 to 64" },
      { function() cpf.load(p, { threads = "2" }) end, "load: option 'threads' must be a whole number from 1 to 64" },
      { function() cpf.load(p, { threads = 1.5 }) end, "load: option 'threads' must be a whole number from 1 to 64" },
      { function() cpf.load(p, { threads = 0 / 0 }) end, "load: option 'threads' must be a whole number from 1 to 64" },
      { function() cpf.load(p, { columns = {} }) end,
        "load: option 'columns' must be a non-empty list of column names" },
      { function() cpf.load(p, { columns = "nb_dossiers" }) end,
        "load: option 'columns' must be a non-empty list of column names" },
      { function() cpf.load(p, { decimal = ";" }) end, "load: option 'decimal' must be \".\" or \",\"" },
      { function() cpf.load(p, { parser = "fast" }) end, "load: option 'parser' must be \"auto\" or \"libcsv\"" },
      { function() cpf.load(p, { progress = 1 }) end, "load: option 'progress' must be a function or true" },
      { function() cpf.load(p, { sep = ";;" }) end, "load: option 'sep' must be a one-character string" },
      { function() cpf.load(p, { sep = "\0" }) end,
        "load: option 'sep' cannot be a NUL byte (leave it out to detect the separator)" },
      { function() cpf.load({}) end, "bad argument #1 to 'load' (list of paths is empty)" },
      { function() cpf.open() end, "bad argument #1 to 'open' (string expected, got nil)" },
      { function() cpf.open(p, { check = true }) end, "open: unknown option 'check'" },
    } do
      assert.are.equal(c[2], raised(c[1]))
    end
  end)

  it("a progress callback that raises or cancels", function()
    local none, err = cpf.load(p, { progress = function() error("boom", 0) end })
    assert.is_nil(none)
    assert.are.equal("progress callback failed: boom", err)
    none, err = cpf.load(p, { progress = function() return false end })
    assert.is_nil(none)
    assert.are.equal("load cancelled by the progress callback", err)
  end)

  it("bad queries", function()
    local ds = assert(cpf.load(p))
    for _, c in ipairs {
      { function() ds:where { nope = 1 }:run { n = cpf.count() } end, "where: unknown column 'nope'" },
      { function() ds:group_by("nope"):run { n = cpf.count() } end, "group_by: unknown column 'nope'" },
      { function() ds:run { n = cpf.sum "statut_dossier" } end,
        "aggregate n: sum needs a numeric column, 'statut_dossier' is a string column" },
      { function() ds:run { n = cpf.mean "date_validation" } end,
        "aggregate n: mean needs a numeric column, 'date_validation' is a month column (min and max work)" },
      { function() ds:where { nb_dossiers = "deux" }:run { n = cpf.count() } end,
        "where nb_dossiers: 'nb_dossiers' is an integer column, expected a number, got string \"deux\"" },
      { function() ds:query():limit(-1) end, "bad argument #1 to 'limit' (whole number expected)" },
      { function() ds:group_by("statut_dossier"):agg { n = cpf.count() }:order_by("zz"):run() end,
        "order_by: unknown column 'zz'" },
      { function() ds:agg(1) end, "bad argument #1 to 'agg' (table expected)" },
      { function() ds:agg { n = 1 } end, "agg: 'n' must be an aggregate or a measure name, got number" },
      { function() ds:agg { "nope" } end, "unknown measure 'nope'" },
      { function() ds:get(0, 1) end, "row 0 is out of range (the dataset has 7 rows)" },
      { function() ds:get(1, 99) end, "column 99 does not exist (the dataset has 7 columns)" },
      { function() ds:get(1, "nope") end, "unknown column 'nope'" },
      { function() cpf.quantile("x", 0 / 0) end, "bad argument #2 to 'quantile' (number in [0, 1] expected)" },
      { function() cpf.bucket("x", { 0 / 0 }) end, "bad argument #2 to 'bucket' (bound 1 is NaN, a number expected)" },
      { function() ds.group_by("annee") end,
        "bad argument #1 to 'group_by' (dataset expected, got string: call it as ds:group_by(...))" },
      { function() cpf.result(42) end, "bad argument #1 to 'result' (list of column names expected, got number)" },
      { function() ds:run { n = cpf.count() }:write(io.stdout, "xls") end,
        "unknown format 'xls' (csv, csv-fr, tsv, json, jsonl, markdown, table, html, svg)" },
    } do
      assert.are.equal(c[2], raised(c[1]))
    end
    ds:close()
    assert.are.equal("dataset is closed", raised(function() ds:run { n = cpf.count() } end))
    assert.are.equal("dataset is closed", raised(function() ds:get(1, 1) end))
  end)

  it("outputs that cannot be written", function()
    local ds = assert(cpf.load(p))
    local ok, err = ds:save("/nonexistent/x.cpfsnap")
    assert.is_nil(ok)
    assert.are.equal("/nonexistent/x.cpfsnap: cannot write: No such file or directory", err)
    ok, err = ds:run { n = cpf.count() }:write("/nonexistent/x.csv", "csv")
    assert.is_nil(ok)
    assert.are.equal("/nonexistent/x.csv: cannot write: No such file or directory", err)
  end)
end)

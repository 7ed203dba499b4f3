-- Bad input gives nil and "path:row:col: message" (row 1 is the header), never a crash and
-- never a shortened dataset. Bad arguments raise.
local h = require "spec.helpers"
local cpf = require "cpf"

local function load_error(name, opts)
  local ds, err = cpf.load(h.fixture(name), opts)
  assert.is_nil(ds)
  return err
end

describe("bad input", function()
  it("names a missing file", function()
    local ds, err = cpf.load("spec/fixtures/no-such-file.csv")
    assert.is_nil(ds)
    assert.are.equal("spec/fixtures/no-such-file.csv: cannot open: No such file or directory", err)
  end)

  it("refuses a directory", function()
    assert.are.equal("spec: cannot read: is a directory", select(2, cpf.load("spec")))
  end)

  it("refuses an empty file and a file with only a BOM", function()
    assert.are.equal("spec/fixtures/empty.csv: empty file: no header line", load_error "empty.csv")
    assert.are.equal("spec/fixtures/bom_only.csv: empty file: no header line", load_error "bom_only.csv")
  end)

  it("reports a row with too many fields", function()
    assert.are.equal("spec/fixtures/too_many_fields.csv:3:4: too many fields (the header has 3)",
      load_error "too_many_fields.csv")
  end)

  it("reports a row with too few fields", function()
    assert.are.equal("spec/fixtures/too_few_fields.csv:3: too few fields: 2 (the header has 3)",
      load_error "too_few_fields.csv")
  end)

  it("reports an unterminated quote at the end of the file", function()
    assert.are.equal("spec/fixtures/unterminated_quote.csv:3:2: unterminated quoted field: "
      .. "the file ends inside quotes", load_error "unterminated_quote.csv")
  end)

  it("reports text after a closing quote (quotes inside a quoted field not doubled)", function()
    assert.are.equal("spec/fixtures/text_after_quote.csv:2:2: malformed quoted field: text after its closing quote",
      load_error "text_after_quote.csv")
  end)

  it("reads a quote inside a field that does not start with one as a character", function()
    local ds = assert(cpf.load("spec/fixtures/stray_quote.csv"))
    assert.are.equal('Le "bon" titre', ds:get(1, "libelle_formacode_principal"))
    ds:close()
  end)

  it("shows the value that is not a number", function()
    assert.are.equal('spec/fixtures/bad_integer.csv:3:2: nb_dossiers: expected an integer, got "deux"',
      load_error "bad_integer.csv")
    assert.are.equal('spec/fixtures/bad_amount.csv:3:3: montant_engage: expected a number, got "12 euros"',
      load_error "bad_amount.csv")
    assert.are.equal('spec/fixtures/fractional_count.csv:2:2: nb_dossiers: expected an integer, got "2.5"',
      load_error "fractional_count.csv")
    assert.are.equal('spec/fixtures/bad_month.csv:2:2: date_validation: expected a month YYYY-MM or '
      .. 'YYYY-MM-DD, got "2023-13"', load_error "bad_month.csv")
  end)

  it("reports an integer beyond 64 bits", function()
    local path = h.write_file("nb_dossiers\n99999999999999999999\n")
    local _, err = cpf.load(path, { sep = ";" })
    assert.are.equal(path .. ':2:1: nb_dossiers: expected an integer within 64 bits, got "99999999999999999999"', err)
  end)

  it("cuts a long bad value in the message", function()
    local path = h.write_file("nb_dossiers;x\n" .. ("a"):rep(100) .. ";1\n")
    local _, err = cpf.load(path)
    assert.are.equal(path .. ':2:1: nb_dossiers: expected an integer, got "' .. ("a"):rep(60) .. '..."', err)
  end)

  it("reports a header without a separator", function()
    assert.are.equal("spec/fixtures/no_separator.csv:1: cannot detect the separator: the header has "
      .. "no ';', ',', tab or '|' (give one with opts.sep)", load_error "no_separator.csv")
  end)

  it("loads a one-column file when the separator is given", function()
    local ds = assert(cpf.load(h.fixture "no_separator.csv", { sep = ";" }))
    assert.are.equal("Validé", ds:get(1, "statut_dossier"))
  end)

  it("raises on bad arguments", function()
    assert.has_error(function() cpf.load() end, "bad argument #1 to 'load' (string expected, got nil)")
    assert.has_error(function() cpf.load("x.csv", 5) end, "bad argument #2 to 'load' (table expected, got number)")
    assert.has_error(function() cpf.load("x.csv", { separator = ";" }) end, "load: unknown option 'separator'")
    assert.has_error(function() cpf.load("x.csv", { sep = ";;" }) end,
                     "load: option 'sep' must be a one-character string")
    assert.has_error(function() cpf.load("x.csv", { decimal = ";" }) end,
                     "load: option 'decimal' must be \".\" or \",\"")
    assert.has_error(function() cpf.load("x.csv", { progress = 3 }) end,
                     "load: option 'progress' must be a function or true")
  end)

  it("refuses a type override for an unknown column or type", function()
    local _, err = cpf.load(h.fixture "missing_values.csv", { types = { nope = "string" } })
    assert.are.equal("spec/fixtures/missing_values.csv:1: opts.types: no column named 'nope'", err)
    _, err = cpf.load(h.fixture "missing_values.csv", { types = { nb_dossiers = "text" } })
    assert.are.equal("spec/fixtures/missing_values.csv:1: opts.types.nb_dossiers: unknown type 'text' "
      .. "(string, integer, number, decimal, month, date or auto)", err)
  end)

  it("stops when the progress callback fails, with its message", function()
    local path = h.write_file("a;b\n" .. ("1;2\n"):rep(5))
    local _, err = cpf.load(path, { progress = function() error("boom", 0) end })
    assert.are.equal("progress callback failed: boom", err)
    _, err = cpf.load(path, { progress = function() return false end })
    assert.are.equal("load cancelled by the progress callback", err)
  end)
end)

-- A generated 50 k-row file: what cpf.load holds is checked against an independent pure-Lua
-- reading of the same bytes (its own CSV reader below, exact cents from the text).
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

local read_csv, cents_of_text = h.read_csv, h.cents_of_text

local function cents_of_value(v)
  return math.floor(v * 100 + 0.5)
end

local PARTS = {
  "part_france_competences", "part_titulaires", "part_etat", "part_pole_emploi", "part_regions",
  "part_opco", "part_entreprises", "part_cec",
}

-- Totals computed from the text alone. Columns are found by their header as written.
local function reference(path)
  local r = {
    rows = 0, dossiers = 0, montant_cents = 0, duree_missing = 0,
    rows_by_status = {}, dossiers_by_status = {}, rows_by_departement = {},
    line_breaks = 0, newlines_in_fields = 0, quotes = 0, semicolons = 0,
    sample = {}, -- some whole records by row number (1 = first data row)
  }
  local col = {}
  local text = h.read_file(path)
  r.lines = select(2, text:gsub("\n", "\n"))
  read_csv(text, function(f, number)
    if number == 1 then
      r.header = {}
      for i, label in ipairs(f) do
        r.header[i] = label
        col[label] = i
      end
      -- both spellings of the columns this reference reads
      col.code_officiel_departement = col.code_officiel_departement or col["Code Officiel Département"]
      return
    end
    local row = r.rows + 1
    r.rows = row
    for k = 1, #f do
      local _, breaks = f[k]:gsub("\n", "")
      r.newlines_in_fields = r.newlines_in_fields + breaks
    end
    local nb = tonumber(f[col.nb_dossiers])
    r.dossiers = r.dossiers + nb
    r.montant_cents = r.montant_cents + cents_of_text(f[col.montant_engage])
    if f[col.duree_moyenne] == "" then r.duree_missing = r.duree_missing + 1 end
    local status = f[col.statut_dossier]
    r.rows_by_status[status] = (r.rows_by_status[status] or 0) + 1
    r.dossiers_by_status[status] = (r.dossiers_by_status[status] or 0) + nb
    local dep = f[col.code_officiel_departement]
    r.rows_by_departement[dep] = (r.rows_by_departement[dep] or 0) + 1
    local label = f[col.libelle_formacode_principal]
    local broken = label:find("\n", 1, true)
    if broken then r.line_breaks = r.line_breaks + 1 end
    if label:find('"', 1, true) then r.quotes = r.quotes + 1 end
    if label:find(";", 1, true) then r.semicolons = r.semicolons + 1 end
    if row % 997 == 1 or broken then
      local copy = {}
      for k = 1, #f do copy[k] = f[k] end
      r.sample[row] = copy
    end
  end)
  return r
end

-- ---- the specs ----

describe("a generated 50 k-row file", function()
  local path, ds, ref

  setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 50000, { seed = 7 }))
    ds = assert(cpf.load(path))
    ref = reference(path)
  end)

  teardown(function()
    if ds then ds:close() end
    h.cleanup()
  end)

  it("is read the same way by the reference reader, quirks included", function()
    assert.are.equal(50000, ref.rows)
    assert.are.same(gen.columns, ref.header)
    -- the file exercises the quirks: quoted line breaks, doubled quotes, ';' in titles
    assert.is_true(ref.line_breaks > 0, "no quoted line break in the file")
    assert.is_true(ref.quotes > 0, "no doubled quote in the file")
    assert.is_true(ref.semicolons > 0, "no ';' inside a title")
    -- every line break of the file ends a record or sits inside a quoted field
    assert.are.equal(ref.rows + 1 + ref.newlines_in_fields, ref.lines)
  end)

  it("has every row", function()
    assert.are.equal(50000, #ds)
    assert.are.equal(37, #ds:columns())
  end)

  it("sums nb_dossiers exactly", function()
    local sum = 0
    for i = 1, #ds do sum = sum + ds:get(i, "nb_dossiers") end
    assert.are.equal(ref.dossiers, sum)
  end)

  it("sums montant_engage to the cent", function()
    local sum = 0
    for i = 1, #ds do sum = sum + cents_of_value(ds:get(i, "montant_engage")) end
    assert.are.equal(ref.montant_cents, sum)
    assert.are.equal("decimal", ds:column("montant_engage").type)
    assert.are.equal(2, ds:column("montant_engage").scale)
  end)

  it("counts the missing durations", function()
    assert.is_true(ref.duree_missing > 0)
    assert.are.equal(ref.duree_missing, ds:column("duree_moyenne").missing)
    local missing = 0
    for i = 1, #ds do
      if ds:get(i, "duree_moyenne") == nil then missing = missing + 1 end
    end
    assert.are.equal(ref.duree_missing, missing)
  end)

  it("sums nb_dossiers by status", function()
    local by_status = {}
    for i = 1, #ds do
      local s = ds:get(i, "statut_dossier")
      by_status[s] = (by_status[s] or 0) + ds:get(i, "nb_dossiers")
    end
    assert.are.same(ref.dossiers_by_status, by_status)
    local n = 0
    for s in pairs(by_status) do
      n = n + 1
      assert.is_truthy(cpf.schema.families[s], "unknown status " .. s)
    end
    assert.are.equal(9, n)
  end)

  it("counts rows by status with distinct()", function()
    local counts, previous = {}, math.huge
    for _, e in ipairs(ds:distinct("statut_dossier")) do
      counts[e.value] = e.count
      assert.is_true(e.count <= previous, "distinct() is not sorted by count")
      previous = e.count
    end
    assert.are.same(ref.rows_by_status, counts)
  end)

  it("keeps the leading zeros of department codes", function()
    local counts = {}
    for _, e in ipairs(ds:distinct("code_officiel_departement")) do
      counts[e.value == nil and "" or e.value] = e.count
      assert.is_true(e.value == nil or type(e.value) == "string")
    end
    assert.are.same(ref.rows_by_departement, counts)
    for _, code in ipairs { "01", "09", "2A", "2B", "971", "974" } do
      assert.is_truthy(counts[code], "department " .. code .. " missing")
    end
    assert.is_nil(counts["1"])
    assert.are.equal("string", ds:column("code_officiel_departement").type)
  end)

  it("has montant_engage equal to the sum of the 8 parts in every row", function()
    local get = ds.get
    for i = 1, #ds do
      local parts = 0
      for _, name in ipairs(PARTS) do parts = parts + cents_of_value(get(ds, i, name)) end
      local total = cents_of_value(get(ds, i, "montant_engage"))
      if parts ~= total then
        error(("row %d: montant_engage %d cents, parts %d cents"):format(i, total, parts))
      end
    end
  end)

  it("holds the same text as the file in sampled rows, line breaks included", function()
    local cols = ds:columns()
    local n = 0
    for row, fields in pairs(ref.sample) do
      n = n + 1
      for j, c in ipairs(cols) do
        local v = ds:get(row, j)
        local text = fields[j]
        if text == "" then
          assert.is_nil(v, ("row %d, %s"):format(row, c.name))
        elseif c.type == "string" then
          assert.are.equal(text, v)
        elseif c.type == "decimal" then
          assert.are.equal(cents_of_text(text), cents_of_value(v))
        elseif c.type == "integer" or c.type == "number" then
          assert.are.equal(tonumber(text), v)
        elseif c.type == "month" then
          assert.are.equal(text:sub(1, 7), v)
        else
          assert.are.equal(text, v)
        end
      end
    end
    assert.is_true(n > 50)
  end)
end)

describe("a generated file with API field names, no BOM and CRLF", function()
  teardown(h.cleanup)

  it("gives the same values as the export labels", function()
    local fields_path, labels_path = h.tmpname(".csv"), h.tmpname(".csv")
    assert(gen.write(fields_path, 3000, { seed = 11, header = "fields", bom = false, crlf = true }))
    assert(gen.write(labels_path, 3000, { seed = 11 }))
    local text = h.read_file(fields_path)
    assert.are.equal("date_chargement;date_validation;", text:sub(1, 32))
    assert.is_truthy(text:find("\r\n", 1, true))

    local a = assert(cpf.load(fields_path))
    local b = assert(cpf.load(labels_path))
    assert.are.equal(3000, #a)
    assert.are.equal(#b, #a)
    local ca, cb = a:columns(), b:columns()
    assert.are.equal(#cb, #ca)
    for j = 1, #ca do
      assert.are.equal(cb[j].name, ca[j].name)
      assert.are.equal(cb[j].type, ca[j].type)
    end
    assert.are.equal("date_validation", ca[2].label)
    assert.are.equal("date validation", cb[2].label)
    assert.are.equal("Code Officiel Département", cb[34].label)
    assert.are.equal("code_officiel_departement", ca[34].label)
    for _, name in ipairs { "date_validation", "statut_dossier", "libelle_formacode_principal",
                            "nb_dossiers", "duree_moyenne", "montant_engage",
                            "code_officiel_departement", "nom_officiel_region" } do
      for i = 1, #a do
        if a:get(i, name) ~= b:get(i, name) then
          error(("%s differs in row %d: %q vs %q"):format(name, i, tostring(a:get(i, name)),
            tostring(b:get(i, name))))
        end
      end
    end
    -- no carriage return left at the end of the last column
    for _, e in ipairs(a:distinct("nom_officiel_region")) do
      assert.is_nil(e.value and e.value:find("\r", 1, true))
    end
    -- the reference reader agrees on the CRLF file too
    local ref = reference(fields_path)
    assert.are.equal(3000, ref.rows)
    local sum, cents = 0, 0
    for i = 1, #a do
      sum = sum + a:get(i, "nb_dossiers")
      cents = cents + cents_of_value(a:get(i, "montant_engage"))
    end
    assert.are.equal(ref.dossiers, sum)
    assert.are.equal(ref.montant_cents, cents)
  end)
end)

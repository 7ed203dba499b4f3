-- One rule for column names (schema.find_column): the same name designates the same column in
-- the loader's opts.columns, in queries (where, group_by, aggregates), in cpf.header, in the
-- request language and on the command line.
local h = require "spec.helpers"
local cpf = require "cpf"
local schema = require "cpf.schema"
local request = require "cpf.request"

-- Headers as an export writes them (labels with accents and spaces, an older spelling).
local FILE = table.concat({
  "date validation;Statut Dossier;code_inventaire;Nb Dossiers;montant_engage;Code Officiel Département;"
    .. "Colonne Inconnue;région",
  "2023-01;Validé;5012;2;100.50;01;a;Bretagne",
  "2023-02;Rejeté;5013;1;50;2A;b;Corse",
  "2024-05;Validé;5012;4;400;01;a;Bretagne",
}, "\n") .. "\n"

-- name as asked -> canonical name of the column it designates (false: none)
local CASES = {
  { "date_validation", "date_validation" },     -- canonical name
  { "date validation", "date_validation" },     -- header as written
  { "Statut Dossier", "statut_dossier" },       -- header as written
  { "statut dossier", "statut_dossier" },       -- normalises to the canonical name
  { "STATUT_DOSSIER", "statut_dossier" },
  { "code_rs", "code_rs" },                     -- header code_inventaire: an older spelling
  { "code_inventaire", "code_rs" },             -- the older spelling itself
  { "nb_dossiers", "nb_dossiers" },
  { "Code Officiel Département", "code_officiel_departement" },
  { "code officiel departement", "code_officiel_departement" },
  { "colonne_inconnue", "colonne_inconnue" },   -- a column the schema does not know
  { "Colonne Inconnue", "colonne_inconnue" },
  { "région", "region" },
  { "region", "region" },
  { "nope", false },
  { "", false },
}

local function rows_of(res)
  local t = {}
  for i, r in ipairs(res) do t[i] = r end
  return t
end

describe("column names", function()
  local path, ds
  setup(function()
    path = h.write_file(FILE, ".csv")
    ds = assert(cpf.load(path))
  end)
  teardown(function() ds:close() h.cleanup() end)

  it("resolve the same way in schema.find_column over the dataset, the header and the loader's specs", function()
    local header = assert(cpf.header(path))
    for _, case in ipairs(CASES) do
      local name, want = case[1], case[2]
      local in_ds, in_header = schema.find_column(ds:columns(), name), schema.find_column(header, name)
      assert.are.equal(want or nil, in_ds and in_ds.name, name)
      assert.are.equal(want or nil, in_header and in_header.name, name)
    end
  end)

  it("resolve the same way in opts.columns, where, group_by, aggregates and the request language", function()
    for _, case in ipairs(CASES) do
      local name, want = case[1], case[2]
      local ok, loaded = pcall(cpf.load, path, { columns = { name } })
      local req = assert(request.parse { by = name, measure = "count" })
      local checked = req:check(ds:columns())
      if want then
        assert.is_true(ok, name)
        assert.is_truthy(loaded, name)
        assert.are.same({ want }, (function()
          local t = {}
          for _, c in ipairs(loaded:columns()) do t[#t + 1] = c.name end
          return t
        end)(), name)
        loaded:close()
        local by = ds:group_by(name):run { n = cpf.count() }
        assert.are.equal(want, by:columns()[1], name)
        local first = by[1][want]
        local kept = ds:where(name, first):run { n = cpf.count() }[1].n
        assert.are.equal(by[1].n, kept, name)
        assert.are.equal(by[1].n, ds:where { [name] = first }:run { n = cpf.count() }[1].n, name)
        assert.are.equal(#ds, ds:run { n = cpf.count(name) }[1].n, name)
        assert.is_true(checked, name)
        local res = assert(req:run(ds))
        assert.are.equal(want, res:columns()[1], name)
      else
        assert.is_falsy(ok and loaded, name)
        assert.are.equal(name == "" and "group_by: unknown column ''" or "group_by: unknown column '" .. name .. "'",
          h.error_of(function() return ds:group_by(name):run { n = cpf.count() } end))
        if name ~= "" then -- an empty --by item is dropped: no key at all
          assert.are.same({ nil, ("unknown column '%s' (--by %s)"):format(name, name), "data" },
            { req:check(ds:columns()) })
        end
      end
    end
  end)

  it("resolve the same way on the command line", function()
    for _, case in ipairs(CASES) do
      local name, want = case[1], case[2]
      if name ~= "" then
        local out, err, code = h.run(h.cpf_command("query " .. h.shell_quote(path) .. " --by "
          .. h.shell_quote(name) .. " --measure count --format csv"))
        if want then
          assert.are.equal(0, code, err)
          assert.are.equal(want .. ",count", out:match("^[^\r\n]*"), name)
        else
          assert.are.equal(1, code, name)
          assert.are.equal(("cpf: %s:1: unknown column '%s' (--by %s)\n"):format(path, name, name), err)
        end
      end
    end
  end)

  it("resolve the same way in ds:column, ds:get, ds:distinct, ds:dictionary and opts.types", function()
    for _, case in ipairs(CASES) do
      local name, want = case[1], case[2]
      if want then
        assert.are.equal(want, ds:column(name).name, name)
        for i = 1, #ds do assert.are.equal(ds:get(i, want), ds:get(i, name), name) end
        assert.are.same(ds:distinct(want), ds:distinct(name), name)
        -- the same dictionary, or the same refusal for a column that is not text
        assert.are.same({ pcall(ds.dictionary, ds, want) }, { pcall(ds.dictionary, ds, name) }, name)
        local typed = assert(cpf.load(path, { types = { [name] = "string" } }))
        assert.are.equal("string", typed:column(want).type, name)
        typed:close()
      else
        assert.is_nil(ds:column(name), name)
        local unknown = ("unknown column '%s'"):format(name)
        assert.has_error(function() return ds:get(1, name) end, unknown)
        assert.has_error(function() return ds:distinct(name) end, unknown)
        assert.has_error(function() return ds:dictionary(name) end, unknown)
        assert.are.same({ nil, ("%s:1: opts.types: no column named '%s'"):format(path, name), "usage" },
          { cpf.load(path, { types = { [name] = "string" } }) })
      end
    end
    assert.is_nil(ds:column("annee")) -- a key, not a column
    assert.has_error(function() return ds:get(1, "annee") end, "unknown column 'annee'")
  end)

  it("give the virtual keys annee, mois and famille wherever a column name goes", function()
    for _, name in ipairs { "annee", "mois", "famille" } do
      local c = schema.find_column(ds:columns(), name)
      assert.are.equal(name, c.name)
      assert.are.equal(name == "famille" and "statut_dossier" or "date_validation", c.column.name)
      assert.are.same(c, schema.find_column(assert(cpf.header(path)), name) and c)
    end
    -- the loader loads the column a virtual key is computed from
    local two = assert(cpf.load(path, { columns = { "annee", "famille", "nb_dossiers" } }))
    local names = {}
    for _, col in ipairs(two:columns()) do names[#names + 1] = col.name end
    assert.are.same({ "date_validation", "statut_dossier", "nb_dossiers" }, names)
    assert.are.same({ { annee = 2023, famille = "validated", d = 2 }, { annee = 2023, famille = "cancelled", d = 1 },
                      { annee = 2024, famille = "validated", d = 4 } },
      rows_of(two:group_by("annee", "famille"):run { d = cpf.sum "nb_dossiers" }))
    two:close()
    -- a virtual key on a file without its column says which column it needs
    local bare = assert(cpf.load(path, { columns = { "nb_dossiers" } }))
    assert.is_nil(schema.find_column(bare:columns(), "annee"))
    assert.are.equal("group_by: 'annee' is computed from the column 'date_validation', which the dataset does not have",
      h.error_of(function() return bare:group_by("annee"):run { n = cpf.count() } end))
    assert.are.equal("aggregate x: 'annee' is a key computed from the column 'date_validation', not a column",
      h.error_of(function() return ds:run { x = cpf.sum "annee" } end))
    bare:close()
  end)

  it("let a real column named like a virtual key win over the key", function()
    local p = h.write_file("annee;nb_dossiers;date_validation\n1999;2;2023-01\n1999;3;2024-01\n", ".csv")
    local d = assert(cpf.load(p))
    assert.are.same({ { annee = 1999, n = 5 } }, rows_of(d:group_by("annee"):run { n = cpf.sum "nb_dossiers" }))
    assert.is_nil(schema.find_column(d:columns(), "annee").virtual)
    d:close()
  end)
end)

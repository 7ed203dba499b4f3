-- Loading the real export's quirks: BOM, CRLF, both header spellings, quotes, separators.
local h = require "spec.helpers"
local cpf = require "cpf"

local function values(ds, name)
  local t = {}
  for i = 1, #ds do t[i] = ds:get(i, name) end
  return t
end

local function names_and_labels(ds)
  local t = {}
  for _, c in ipairs(ds:columns()) do t[#t + 1] = c.name .. "=" .. c.label end
  return t
end

describe("cpf.load", function()
  it("reads the export with BOM, LF and export labels", function()
    local ds = assert(cpf.load(h.fixture "labels_bom_lf.csv"))
    assert.are.equal(3, #ds)
    assert.are.same({
      "date_chargement=date_chargement", "date_validation=date validation",
      "statut_dossier=statut_dossier", "type_referentiel=type_referentiel", "code_rncp=code_rncp",
      "nb_dossiers=nb_dossiers", "prix_moyen=prix_moyen", "duree_moyenne=duree_moyenne",
      "montant_engage=montant_engage", "code_officiel_departement=Code Officiel Département",
      "nom_officiel_region=Nom Officiel Région",
    }, names_and_labels(ds))
    assert.are.same({ "Validé", "Rejeté", "Clos - Réalisation Totale" }, values(ds, "statut_dossier"))
    assert.are.same({ "01", "2A", "971" }, values(ds, "code_officiel_departement"))
    assert.are.same({ 3601.5, 990, 183 }, values(ds, "montant_engage"))
  end)

  it("gives the same dataset from API field names, no BOM and CRLF", function()
    local a = assert(cpf.load(h.fixture "labels_bom_lf.csv"))
    local b = assert(cpf.load(h.fixture "fields_nobom_crlf.csv"))
    assert.are.equal(#a, #b)
    for i = 1, #a do assert.are.same(a:row(i), b:row(i)) end
    assert.are.equal("date_validation", b:columns()[2].label)
    -- no stray carriage return at the end of the last column
    assert.are.equal("Guadeloupe", b:get(3, "nom_officiel_region"))
  end)

  it("keeps ';', doubled quotes and line breaks inside quoted fields", function()
    local ds = assert(cpf.load(h.fixture "quoted_fields.csv"))
    assert.are.same({ "Anglais ; niveau B2", 'Le "bon" usage du tableur', "Titre sur\ndeux lignes",
                      nil, 'a;"b";\nc' }, values(ds, "libelle_formacode_principal"))
    assert.are.same({ 2, 1, 4, 1, 5 }, values(ds, "nb_dossiers"))
    assert.are.equal(5, #ds)
  end)

  it("detects a comma separator", function()
    local ds = assert(cpf.load(h.fixture "comma_separated.csv"))
    assert.are.same({ "Anglais, niveau B2", "Bureautique" }, values(ds, "libelle_formacode_principal"))
    assert.are.same({ 100, 50.5 }, values(ds, "montant_engage"))
  end)

  it("takes the separator from opts.sep", function()
    local path = h.write_file("a|b\n1|x\n2|y\n")
    local ds = assert(cpf.load(path, { sep = "|" }))
    assert.are.same({ 1, 2 }, values(ds, "a"))
    local tabs = assert(cpf.load(h.write_file("a\tb\n1\tx\n")))
    assert.are.same({ "x" }, values(tabs, "b"))
  end)

  it("ignores trailing empty lines", function()
    local ds = assert(cpf.load(h.fixture "trailing_blank_lines.csv"))
    assert.are.equal(2, #ds)
  end)

  it("loads a header-only file as an empty dataset with typed columns", function()
    local ds = assert(cpf.load(h.fixture "header_only.csv"))
    assert.are.equal(0, #ds)
    local types = {}
    for _, c in ipairs(ds:columns()) do types[#types + 1] = c.type end
    assert.are.same({ "date", "month", "string", "integer", "decimal" }, types)
  end)

  it("loads a file without a final line break", function()
    local ds = assert(cpf.load(h.write_file("a;b\n1;x\n2;y")))
    assert.are.same({ "x", "y" }, values(ds, "b"))
  end)

  it("maps renamed columns and keeps unknown ones", function()
    local ds = assert(cpf.load(h.fixture "renamed_columns.csv"))
    local names = {}
    for _, c in ipairs(ds:columns()) do names[#names + 1] = c.name .. ":" .. c.type end
    assert.are.same({
      "code_rs:string", "annee_validation:integer", "nb_dossiers_finances_par_titulaires:integer",
      "part_titulaires:decimal", "nb_dossiers_finances_par_entreprises:integer",
      "part_entreprises:decimal", "intitule_certification:string", "colonne_inconnue:string",
    }, names)
    assert.are.equal("Année de validation", ds:columns()[2].label)
    assert.are.equal(150, ds:get(1, "part_titulaires"))
  end)

  it("gives unknown duplicate headers distinct names and refuses duplicate known ones", function()
    local ds = assert(cpf.load(h.fixture "duplicate_headers.csv"))
    local names = {}
    for _, c in ipairs(ds:columns()) do names[#names + 1] = c.name end
    assert.are.same({ "a", "b", "a_2", "column_4", "a_3" }, names)
    local none, err = cpf.load(h.fixture "duplicate_known.csv")
    assert.is_nil(none)
    assert.are.equal('spec/fixtures/duplicate_known.csv:1: columns 1 and 3 are both \'nb_dossiers\' '
      .. '(headers "nb_dossiers" and "nb_dossiers")', err)
  end)

  it("reads from a pipe", function()
    local f = io.popen("cat " .. h.fixture "quoted_fields.csv" .. " | " .. h.interpreter
      .. " -e 'package.path=\"lua/?.lua;lua/?/init.lua;\"..package.path "
      .. "package.cpath=\"build/" .. h.lua_name .. "/?.so;\"..package.cpath "
      .. "local ds = assert(require(\"cpf\").load(\"/dev/stdin\")) io.write(#ds)'")
    assert.are.equal("5", f:read("*a"))
    f:close()
  end)
end)

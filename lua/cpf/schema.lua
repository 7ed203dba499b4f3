-- cpf.schema — what cpf knows about the CPF "formations engagées" export: canonical column
-- names, the header spellings that map to them, their types, statuses and funders.
local schema = {}

-- Canonical name and storage type of every known column, in the order of the May 2026 export;
-- `label` where the export's header differs from the API field name.
-- Money is `decimal` (exact cents); codes are `string` so that "01", "2A" and "-1" survive.
schema.columns = {
  { name = "date_chargement", type = "date" },
  { name = "date_validation", type = "month", label = "date validation" },
  { name = "statut_dossier", type = "string" },
  { name = "type_referentiel", type = "string" },
  { name = "code_rs", type = "string" },
  { name = "code_rncp", type = "string" },
  { name = "domaine_formation_nsf", type = "string" },
  { name = "formacode_principal", type = "string" },
  { name = "libelle_formacode_principal", type = "string" },
  { name = "modalite_presence", type = "string" },
  { name = "region_lieu_formation", type = "string" },
  { name = "departement_lieu_formation", type = "string" },
  { name = "nb_dossiers", type = "integer" },
  { name = "nb_titulaires", type = "integer" },
  { name = "prix_moyen", type = "decimal" },
  { name = "nb_dossiers_a_duree_connue", type = "integer" },
  { name = "duree_moyenne", type = "number" },
  { name = "montant_engage", type = "decimal" },
  { name = "part_france_competences", type = "decimal" },
  { name = "nb_dossiers_finances_par_titulaires", type = "integer" },
  { name = "part_titulaires", type = "decimal" },
  { name = "nb_dossiers_finances_par_etat", type = "integer" },
  { name = "part_etat", type = "decimal" },
  { name = "nb_dossiers_finances_par_pole_emploi", type = "integer" },
  { name = "part_pole_emploi", type = "decimal" },
  { name = "nb_dossiers_finances_par_regions", type = "integer" },
  { name = "part_regions", type = "decimal" },
  { name = "nb_dossiers_finances_par_opco", type = "integer" },
  { name = "part_opco", type = "decimal" },
  { name = "nb_dossiers_finances_par_entreprises", type = "integer" },
  { name = "part_entreprises", type = "decimal" },
  { name = "nb_dossiers_finances_par_cec", type = "integer" },
  { name = "part_cec", type = "decimal" },
  { name = "code_officiel_departement", type = "string", label = "Code Officiel Département" },
  { name = "nom_officiel_departement", type = "string", label = "Nom Officiel Département" },
  { name = "code_officiel_region", type = "string", label = "Code Officiel Région" },
  { name = "nom_officiel_region", type = "string", label = "Nom Officiel Région" },
  -- columns that some extractions have and others do not
  { name = "annee_validation", type = "integer", optional = true },
  { name = "intitule_certification", type = "string", optional = true },
}

-- Other spellings seen across versions (after normalisation) → canonical name.
schema.aliases = {
  code_inventaire = "code_rs",
  annee_de_validation = "annee_validation",
  nb_dossiers_finances_par_titulaire = "nb_dossiers_finances_par_titulaires",
  part_titulaire = "part_titulaires",
  nb_dossiers_finances_par_region = "nb_dossiers_finances_par_regions",
  part_region = "part_regions",
  nb_dossiers_finances_par_entreprise = "nb_dossiers_finances_par_entreprises",
  part_entreprise = "part_entreprises",
  part_france_competence = "part_france_competences",
}

schema.by_name = {}
for _, c in ipairs(schema.columns) do schema.by_name[c.name] = c end

-- UTF-8 accented letters (lower and upper case) of French headers → plain ASCII.
local accents = {
  ["à"] = "a", ["â"] = "a", ["ä"] = "a", ["á"] = "a", ["ç"] = "c", ["é"] = "e", ["è"] = "e",
  ["ê"] = "e", ["ë"] = "e", ["î"] = "i", ["ï"] = "i", ["í"] = "i", ["ô"] = "o", ["ö"] = "o",
  ["ó"] = "o", ["ù"] = "u", ["û"] = "u", ["ü"] = "u", ["ú"] = "u", ["ÿ"] = "y", ["œ"] = "oe",
  ["æ"] = "ae", ["À"] = "a", ["Â"] = "a", ["Ä"] = "a", ["Á"] = "a", ["Ç"] = "c", ["É"] = "e",
  ["È"] = "e", ["Ê"] = "e", ["Ë"] = "e", ["Î"] = "i", ["Ï"] = "i", ["Í"] = "i", ["Ô"] = "o",
  ["Ö"] = "o", ["Ó"] = "o", ["Ù"] = "u", ["Û"] = "u", ["Ü"] = "u", ["Ú"] = "u", ["Ÿ"] = "y",
  ["Œ"] = "oe", ["Æ"] = "ae",
}

--- Normalised header: BOM removed, lowercase, accents stripped, runs of spaces, dots, hyphens
--- and apostrophes turned into one "_". "Code Officiel Département" → "code_officiel_departement".
function schema.normalize(header)
  local s = header:gsub("^\239\187\191", "")
  s = s:gsub("[\195\197][\128-\191]", accents):lower()
  s = s:gsub("[%s%.%-'/]+", "_"):gsub("[^%w_]", ""):gsub("__+", "_"):gsub("^_", ""):gsub("_$", "")
  return s
end

--- The column of the CPF schema a header names, or nil for an unknown column.
function schema.lookup(header)
  local n = schema.normalize(header)
  return schema.by_name[schema.aliases[n] or n]
end

local valid_types = { string = true, integer = true, number = true, decimal = true,
                      month = true, date = true, auto = true }

--- Column specs for the loader: canonical name, label as written, storage type.
--- `types` (optional) forces the type of columns by canonical name.
function schema.resolve(labels, types)
  local specs, seen = {}, {}
  for i, label in ipairs(labels) do
    local known = schema.lookup(label)
    local name = known and known.name or schema.normalize(label)
    if name == "" then name = "column_" .. i end
    if seen[name] then
      if known then
        return nil, ("columns %d and %d are both '%s' (headers %q and %q)")
          :format(seen[name], i, name, labels[seen[name]], label), "data"
      end
      local k = 2
      while seen[name .. "_" .. k] do k = k + 1 end
      name = name .. "_" .. k
    end
    seen[name] = i
    specs[i] = { name = name, label = label:gsub("^\239\187\191", ""),
                 type = known and known.type or "auto" }
  end
  for name, t in pairs(types or {}) do
    local c = schema.find_column(specs, name)
    if not c or c.virtual then
      return nil, ("opts.types: no column named '%s'"):format(tostring(name)), "usage"
    end
    if not valid_types[t] then
      return nil, ("opts.types.%s: unknown type '%s' (string, integer, number, decimal, month, date or auto)")
        :format(name, tostring(t)), "usage"
    end
    c.type = t
  end
  return specs
end

-- What a column's values are, for the display formats (issue: French reports): amounts in
-- euros (the decimal columns: prices, amounts, funders' parts) and counts of files or people.
schema.column_kinds = {}
for _, c in ipairs(schema.columns) do
  if c.type == "decimal" then schema.column_kinds[c.name] = "money"
  elseif c.name:find("^nb_") then schema.column_kinds[c.name] = "count" end
end

-- The titles the display formats give columns under a locale (cpf.format.common.column_info):
-- CPF columns, virtual keys, measures and the columns of ds:funders().
local FUNDER_NAMES = {
  fr = { france_competences = "France compétences", titulaires = "titulaires", etat = "État",
         pole_emploi = "Pôle emploi", regions = "Régions", opco = "OPCO", entreprises = "entreprises", cec = "CEC" },
  en = { france_competences = "France compétences", titulaires = "holders", etat = "State",
         pole_emploi = "Pôle emploi", regions = "Regions", opco = "OPCO", entreprises = "employers", cec = "CEC" },
}
schema.labels = {
  fr = {
    date_chargement = "Date de chargement", date_validation = "Mois de validation",
    statut_dossier = "Statut du dossier", type_referentiel = "Référentiel", code_rs = "Code RS",
    code_rncp = "Code RNCP", domaine_formation_nsf = "Domaine de formation (NSF)",
    formacode_principal = "Formacode", libelle_formacode_principal = "Formation (Formacode)",
    modalite_presence = "Modalité", region_lieu_formation = "Région",
    departement_lieu_formation = "Département", nb_dossiers = "Dossiers", nb_titulaires = "Titulaires",
    nb_dossiers_a_duree_connue = "Dossiers à durée connue", duree_moyenne = "Durée moyenne (h)",
    montant_engage = "Montant engagé", code_officiel_departement = "Code du département",
    nom_officiel_departement = "Département", code_officiel_region = "Code de la région",
    nom_officiel_region = "Région",
    annee = "Année", semestre = "Semestre", trimestre = "Trimestre", mois = "Mois",
    mois_de_l_annee = "Mois de l'année", famille = "Famille de statut",
    dossiers = "Dossiers", montant = "Montant engagé", prix_moyen = "Prix moyen", lignes = "Lignes",
    taux_annulation = "Taux d'annulation", financeur = "Financeur", part = "Part",
  },
  en = {
    date_chargement = "Load date", date_validation = "Validation month", statut_dossier = "File status",
    type_referentiel = "Register", code_rs = "RS code", code_rncp = "RNCP code",
    domaine_formation_nsf = "Training field (NSF)", formacode_principal = "Formacode",
    libelle_formacode_principal = "Training (Formacode)", modalite_presence = "Attendance",
    region_lieu_formation = "Region", departement_lieu_formation = "Department", nb_dossiers = "Files",
    nb_titulaires = "Holders", nb_dossiers_a_duree_connue = "Files with a known duration",
    duree_moyenne = "Average duration (h)", montant_engage = "Amount committed",
    code_officiel_departement = "Department code", nom_officiel_departement = "Department",
    code_officiel_region = "Region code", nom_officiel_region = "Region",
    annee = "Year", semestre = "Half-year", trimestre = "Quarter", mois = "Month",
    mois_de_l_annee = "Month of the year", famille = "Status family",
    dossiers = "Files", montant = "Amount committed", prix_moyen = "Average price", lignes = "Rows",
    taux_annulation = "Cancellation rate", financeur = "Funder", part = "Share",
  },
}
-- The values of the status family and funder keys as a reader says them, by locale.
schema.value_labels = {
  fr = { famille = { validated = "Validés", in_training = "En formation", left_training = "Sortis de formation",
                     completed = "Terminés", cancelled = "Annulés" },
         financeur = {},
         -- what cpf changes says of a row between two extractions
         change = { added = "Apparu", removed = "Disparu", revised = "Révisé", unchanged = "Inchangé" },
         cohort = { recent = "Récente", closed = "Close" } },
  en = { famille = { validated = "Validated", in_training = "In training", left_training = "Left training",
                     completed = "Completed", cancelled = "Cancelled" },
         financeur = {},
         change = { added = "Added", removed = "Removed", revised = "Revised", unchanged = "Unchanged" },
         cohort = { recent = "Recent", closed = "Closed" } },
}
for locale, names in pairs(FUNDER_NAMES) do -- as a value, a name starts with a capital
  for f, name in pairs(names) do schema.value_labels[locale].financeur[f] = (name:gsub("^%l", string.upper)) end
end

-- the funders' measures and columns: "Montant OPCO", "OPCO amount"...
local FUNDER_TITLES = {
  fr = { part = "Montant %s", share = "Part %s", dossiers = "Dossiers %s" },
  en = { part = "%s amount", share = "%s share", dossiers = "%s files" },
}
for locale, names in pairs(FUNDER_NAMES) do
  local t, titles = schema.labels[locale], FUNDER_TITLES[locale]
  for f, name in pairs(names) do
    t["part_" .. f] = titles.part:format(name)
    t["share_" .. f] = titles.share:format(name)
    t["dossiers_" .. f] = titles.dossiers:format(name)
    t["nb_dossiers_finances_par_" .. f] = t["dossiers_" .. f]
  end
end

-- ---------------------------------------------------------------- finding a column by name

-- Names that are not columns of the file but keys computed from one: the year and the month
-- of validation, and the status family. A real column of the same name wins.
schema.virtual_keys = {
  annee = { kind = "year", column = "date_validation" },
  semestre = { kind = "semester", column = "date_validation" },
  trimestre = { kind = "quarter", column = "date_validation" },
  mois = { kind = "month", column = "date_validation" },
  mois_de_l_annee = { kind = "month_of_year", column = "date_validation" },
  famille = { kind = "family", column = "statut_dossier" },
}

--- The column a name designates among `columns` (ds:columns(), cpf.header(path) or the
--- loader's specs: tables with name and label), or nil. The one rule every part of cpf uses,
--- in this order: the canonical name, the header as written, the name normalised (an alias
--- of an older export included), a header that normalises to it. Failing those, a virtual key
--- (annee, semestre, trimestre, mois, mois_de_l_annee, famille) gives { name = "annee",
--- virtual = "year", column = <the column it is computed from> }, or nil when the file lacks
--- that column.
function schema.find_column(columns, name)
  if type(name) ~= "string" then return nil end
  for _, c in ipairs(columns) do if c.name == name then return c end end
  for _, c in ipairs(columns) do if c.label == name then return c end end
  local n = schema.normalize(name)
  local alias = schema.aliases[n]
  for _, c in ipairs(columns) do if c.name == n or c.name == alias then return c end end
  for _, c in ipairs(columns) do
    if c.label and schema.normalize(c.label) == n then return c end
  end
  local v = schema.virtual_keys[name]
  if v then
    local base = schema.find_column(columns, v.column)
    if base then return { name = name, virtual = v.kind, column = base } end
  end
  return nil
end

--- Marks the specs of the columns not named in `wanted` to be passed over by the loader (names
--- as schema.find_column reads them; a virtual key loads the column it is computed from).
function schema.select(specs, wanted)
  local keep = {}
  for _, name in ipairs(wanted) do
    local c = schema.find_column(specs, name)
    if c and c.virtual then c = c.column end
    if not c then return nil, ("opts.columns: no column named '%s'"):format(tostring(name)), "usage" end
    for i, spec in ipairs(specs) do if spec == c then keep[i] = true end end
  end
  for i, spec in ipairs(specs) do spec.skip = not keep[i] end
  return specs
end

-- The 9 values of statut_dossier and the families analysts group them into.
schema.statuses = {
  "Validé", "Entrée en formation", "Sortie de formation",
  "Clos - Réalisation Totale", "Clos - Réalisation Partielle",
  "Clos - Non Réalisé annulé titulaire", "Clos - Non Réalisé annulé OF",
  "Dossier annulé gestionnaire", "Rejeté",
}

-- statut_dossier → family, and the families in the order results list them.
schema.families = {
  ["Validé"] = "validated",
  ["Entrée en formation"] = "in_training",
  ["Sortie de formation"] = "left_training",
  ["Clos - Réalisation Totale"] = "completed",
  ["Clos - Réalisation Partielle"] = "completed",
  ["Clos - Non Réalisé annulé titulaire"] = "cancelled",
  ["Clos - Non Réalisé annulé OF"] = "cancelled",
  ["Dossier annulé gestionnaire"] = "cancelled",
  ["Rejeté"] = "cancelled",
}

schema.family_order = { "validated", "in_training", "left_training", "completed", "cancelled" }

-- Who pays: France compétences (the CPF itself) and the co-funders, by column suffix.
schema.funders = { "france_competences", "titulaires", "etat", "pole_emploi", "regions",
                   "opco", "entreprises", "cec" }

--- A funder's columns: its part of the amount, and the files it co-funds — nil for France
--- compétences, which the export does not count separately (it funds every file).
function schema.funder_columns(f)
  return "part_" .. f, f ~= "france_competences" and "nb_dossiers_finances_par_" .. f or nil
end

-- The fields of a report's source line: the column that dates an extraction (its latest value
-- is the extraction's date), who publishes the data and its title.
schema.source = { date_column = "date_chargement", publisher = "Caisse des Dépôts",
                  title = "Mon Compte Formation – formations engagées" }

-- Where cpf fetch finds the extractions: the publisher's Opendatasoft portal (Explore API
-- v2.1), the dataset's identifier there, and the export it asks for (';', the BOM, the
-- columns' labels as headers, gzip).
schema.portal = { url = "https://opendata.caissedesdepots.fr", dataset = "moncompteformation_formations_engagees",
                  export_query = "delimiter=%3B&with_bom=true&use_labels=true&compressed=true" }

-- ---------------------------------------------------------------- measures

-- The columns whose values must not be added across rows, and why. One holder appears in
-- several rows, so a sum over-counts people; per-row statistics (min, max, mean, median,
-- quantiles, distinct, count) stay allowed.
schema.not_additive = {
  nb_titulaires = "nb_titulaires is not additive across rows: one holder can appear in several "
    .. "rows (several statuses, months or places), so its sum over-counts people; report it per row "
    .. "or use cpf.max \"nb_titulaires\" if you know what it means",
}

-- The aggregates that add a column's values across rows (a ratio and a weighted mean are
-- quotients of sums).
schema.adds_rows = { sum = true, ratio = true, wmean = true }

--- Why aggregate `kind` may not read the column of canonical name `column`, or nil.
function schema.refusal(kind, column)
  if schema.adds_rows[kind] then return schema.not_additive[column] end
end

--- Why a measure name is refused, or nil: the names that would sum nb_titulaires.
function schema.measure_refusal(name)
  if name == "titulaires" or name == "nb_titulaires" then return schema.not_additive.nb_titulaires end
end

-- The CPF measures, by name, as descriptions that cpf.query turns into aggregates:
-- { kind, column [, column2] }, or a function of the aggregate constructors for a composed one.
-- Amounts are sums (cents exact); a price or a duration is a ratio of sums, never a mean of the
-- per-row averages (cpf-dataset.md, "the correct measures").
schema.measures = {
  dossiers = { "sum", "nb_dossiers" },
  montant = { "sum", "montant_engage" },
  prix_moyen = { "ratio", "montant_engage", "nb_dossiers" },
  duree_moyenne = { "wmean", "duree_moyenne", "nb_dossiers_a_duree_connue" },
  lignes = { "count" },
  -- files of the cancelled family / all files
  taux_annulation = function(c)
    return c.combine({ c.filtered(c.sum "nb_dossiers", { statut_dossier = c.family "cancelled" }),
                       c.sum "nb_dossiers" },
                     function(cancelled, all) if all and all ~= 0 then return (cancelled or 0) / all end end)
  end,
}
for _, f in ipairs(schema.funders) do
  local part, files = schema.funder_columns(f)
  schema.measures["part_" .. f] = { "sum", part }
  schema.measures["share_" .. f] = { "ratio", part, "montant_engage" }
  if files then schema.measures["dossiers_" .. f] = { "sum", files } end
end

-- The kind of a measure the query cannot tell from its aggregate (a combination): what the
-- display formats show it as.
schema.measure_kinds = { taux_annulation = "rate" }

-- The demo report's sections (cpf demo, cpf serve's page; report.demo_sections builds them):
-- each a title in French and English, the keys, the measures and the chart. `last_full_year`:
-- only the last year whose twelve months are in the file (the current one is still being
-- filled); `funders`: ds:funders().
schema.demo_sections = {
  { title = { fr = "Dossiers, montant, prix moyen, durée et taux d'annulation par année",
              en = "Files, amount, average price and duration, cancellation rate by year" },
    by = { "annee" }, measures = { "dossiers", "montant", "prix_moyen", "duree_moyenne", "taux_annulation" },
    chart = { y = "montant" } },
  { title = { fr = "Les 10 régions au plus fort montant en %d", en = "Top 10 regions by amount in %d" },
    last_full_year = true, by = { "region_lieu_formation" }, measures = { "dossiers", "montant", "prix_moyen" },
    order = "-montant", limit = 10, chart = { y = "montant" } },
  { title = { fr = "Dossiers par famille de statut", en = "Files by status family" },
    by = { "famille" }, measures = { "dossiers" }, share_of = { part = "nb_dossiers" }, chart = { y = "dossiers" } },
  { title = { fr = "Qui finance", en = "Who pays" }, funders = true, chart = { x = "financeur", y = "montant" } },
}

return schema

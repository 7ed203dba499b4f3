-- Top 10 certifications by amount committed in one year.
--   cpf run examples/top10_certifications.lua DATA.csv [-- YEAR]
-- YEAR defaults to the last full year of the data (the last year with a December).
-- A certification is its RNCP or RS code; the legal exceptions without a code (driving
-- licence, skills assessment, VAE, business creation) count as one line.
local cpf, datasets, args = ...
local ds = assert(datasets[1], "usage: cpf run examples/top10_certifications.lua DATA.csv [-- YEAR]")

local year = tonumber(args[1])
if args[1] and not year then error("YEAR must be a year, got '" .. args[1] .. "'", 0) end
if not year then
  local last = ds:run { last = cpf.max "date_validation" }[1].last -- "YYYY-MM"
  if not last then error("no date validation in the data: give a YEAR", 0) end
  year = tonumber(last:sub(1, 4))
  if last:sub(6, 7) ~= "12" then year = year - 1 end
end

local in_year = ds:where { annee = year }
local total = in_year:run { "dossiers", "montant" }[1]
local top = in_year:group_by("type_referentiel", "code_rncp", "code_rs")
  :agg { "dossiers", "montant", "prix_moyen" }
  :order_by("-montant"):limit(10):run()

-- one readable name per certification, and its share of the year's amount
local rows = {}
for i, r in ipairs(top) do
  local name
  if r.type_referentiel == "RNCP" then name = "RNCP" .. r.code_rncp
  elseif r.type_referentiel == "RS" then name = "RS" .. r.code_rs
  else name = r.type_referentiel or "hors référentiel" end
  rows[i] = { rang = i, certification = name, dossiers = r.dossiers, montant = r.montant,
              prix_moyen = r.prix_moyen, part = total.montant and r.montant / total.montant }
end
local res = cpf.result({ "rang", "certification", "dossiers", "montant", "prix_moyen", "part" }, rows)

print(("Top 10 certifications by amount in %d (all certifications: %d files, %.2f €)")
  :format(year, total.dossiers or 0, total.montant or 0))
io.write(res:format("table", { thousands = " " }))

-- The 3 certifications with the largest amount committed in each region.
--   cpf run examples/top3_by_region.lua DATA.csv [-- YEAR [N]]
-- YEAR: one year of date validation (default: every year); N: how many per region (default 3).
-- A certification is its RNCP or RS code; the legal exceptions without a code (driving
-- licence, skills assessment...) count as one line each.
local cpf, datasets, args = ...
local ds = assert(datasets[1], "usage: cpf run examples/top3_by_region.lua DATA.csv [-- YEAR [N]]")

local year = args[1] and tonumber(args[1])
if args[1] and not year then error("YEAR must be a year, got '" .. args[1] .. "'", 0) end
local n = tonumber(args[2] or "3")
if not n or n < 1 or n % 1 ~= 0 then error("N must be a whole number from 1, got '" .. args[2] .. "'", 0) end

local q = ds:group_by("region_lieu_formation", "type_referentiel", "code_rncp", "code_rs")
if year then q = q:where { annee = year } end
local top = q:agg { "dossiers", "montant", "prix_moyen" }
  :order_by("region_lieu_formation", "-montant")
  :limit(n, { per = "region_lieu_formation" })
  :run()
  :rank("montant", { by = "region_lieu_formation" })
  :with { { "certification", function(r)
             if r.type_referentiel == "RNCP" then return "RNCP" .. r.code_rncp end
             if r.type_referentiel == "RS" then return "RS" .. r.code_rs end
             return r.type_referentiel or "hors référentiel"
           end } }

local rows = {}
for i, r in top:rows() do
  rows[i] = { region = r.region_lieu_formation, rang = r.montant_rang, certification = r.certification,
              dossiers = r.dossiers, montant = r.montant, prix_moyen = r.prix_moyen }
end
local res = cpf.result({ "region", "rang", "certification", "dossiers", "montant", "prix_moyen" }, rows,
  { "region", "rang", "certification" }, { dossiers = "count", montant = "money", prix_moyen = "money" })
print(("Les %d certifications au plus fort montant engagé, par région%s"):format(n, year and (" en " .. year) or ""))
io.write(res:format("table", { locale = "fr", labels = { region = "Région", rang = "Rang",
  certification = "Certification" } }))

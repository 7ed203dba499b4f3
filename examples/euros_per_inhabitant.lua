-- Amount committed per inhabitant, by department: the CPF amounts joined to INSEE's population
-- table (the "populations légales" by department, donnees_departements.csv: CODDEP, DEP, PMUN...).
--   cpf run examples/euros_per_inhabitant.lua DATA.csv POPULATION.csv [-- YEAR [POPULATION_COLUMN]]
-- YEAR: one year of date validation (default: every year). POPULATION_COLUMN: PMUN (municipal
-- population, the default) or PTOT. The department codes stay text ("01", "2A", "971"): a code
-- column read as numbers would never match, and the join says so instead of leaving blanks.
local _, datasets, args = ... -- cpf itself is not needed: the datasets' methods do it all
local usage = "usage: cpf run examples/euros_per_inhabitant.lua DATA.csv POPULATION.csv [-- YEAR [COLUMN]]"
local ds, population = assert(datasets[1], usage), assert(datasets[2], usage)

local year = args[1] and tonumber(args[1])
if args[1] and not year then error("YEAR must be a year, got '" .. args[1] .. "'", 0) end
local people = population:column(args[2] or "PMUN")
if not people then error(("%s has no population column '%s'"):format(datasets.paths[2], args[2] or "PMUN"), 0) end
local code = population:column "CODDEP" or population:column "DEP"
if not code then error(datasets.paths[2] .. ": no department code column (CODDEP)", 0) end

local q = ds:group_by("code_officiel_departement", "nom_officiel_departement")
if year then q = q:where { annee = year } end
local res = q:agg { "dossiers", "montant" }:run()
  :join(population, { code_officiel_departement = code.name }, { columns = { people.name } })
  :with { { "euros_par_habitant", function(r)
             local n = r[people.name]
             return n and n > 0 and r.montant and r.montant / n or nil
           end, "money" } }
  :sorted("-euros_par_habitant")

print(("Montant engagé par habitant, par département%s (population : %s)")
  :format(year and (" en " .. year) or "", people.label or people.name))
io.write(res:format("table", { locale = "fr", labels = { [people.name] = "Habitants",
  euros_par_habitant = "€ par habitant" } }))

-- Region × year crosstabs: files (with totals) and average price (Σ amount / Σ files).
--   cpf run examples/region_year_crosstab.lua DATA.csv
local cpf, datasets = ...
local ds = assert(datasets[1], "usage: cpf run examples/region_year_crosstab.lua DATA.csv")

local by_region_year = ds:group_by("region_lieu_formation", "annee"):agg { "dossiers", "prix_moyen" }:run()
local by_region = ds:group_by("region_lieu_formation"):agg { "dossiers", "prix_moyen" }:run()
local by_year = ds:group_by("annee"):agg { "dossiers", "prix_moyen" }:run()
local all = ds:run { "dossiers", "prix_moyen" }[1]

-- res:pivot gives one row per region, one column per year; a total column and a total row
-- come from the queries by region, by year and over everything (never from adding prices).
local NONE = "(sans région)"
local function crosstab(measure, total_name)
  local t = by_region_year:pivot("region_lieu_formation", "annee", measure)
  local total_of = {}
  for _, r in ipairs(by_region) do total_of[r.region_lieu_formation or NONE] = r[measure] end
  local columns = t:columns()
  local rows = {}
  for i, row in ipairs(t) do
    row.region_lieu_formation = row.region_lieu_formation or NONE
    row[total_name] = total_of[row.region_lieu_formation]
    rows[i] = row
  end
  local last = { region_lieu_formation = "France entière", [total_name] = all[measure] }
  for _, y in ipairs(by_year) do last[tostring(y.annee)] = y[measure] end
  rows[#rows + 1] = last
  columns[#columns + 1] = total_name
  return cpf.result(columns, rows)
end

print("Files (Σ nb_dossiers) by region and year")
io.write(crosstab("dossiers", "total"):format("table"), "\n")
print("Average price (Σ montant_engage / Σ nb_dossiers) by region and year, €")
io.write(crosstab("prix_moyen", "ensemble"):format("table"))

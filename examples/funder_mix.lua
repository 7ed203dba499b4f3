-- Funder mix by year: who pays for the training files, as shares of the amount committed.
--   cpf run examples/funder_mix.lua DATA.csv
-- ds:funders(query) gives one row per funder and group: montant (Σ part_X), part (its share
-- of Σ montant_engage) and dossiers (files co-funded; none for France compétences).
local cpf, datasets = ...
local ds = assert(datasets[1], "usage: cpf run examples/funder_mix.lua DATA.csv")

local long = ds:funders(ds:group_by("annee"))

-- funders as rows in the schema's order, years as columns, and a last row of totals
local function crosstab(measure, total)
  local t = long:pivot("financeur", "annee", measure)
  local by_funder = {}
  for _, row in ipairs(t) do by_funder[row.financeur] = row end
  local rows = {}
  for _, f in ipairs(cpf.schema.funders) do rows[#rows + 1] = by_funder[f] end
  rows[#rows + 1] = total
  return cpf.result(t:columns(), rows)
end

-- the totals: shares add up to 1 when the parts add up to montant_engage, as they should
local share_total, amount_total = { financeur = "total" }, { financeur = "montant_engage" }
for _, r in ipairs(long) do
  local y = tostring(r.annee)
  share_total[y] = (share_total[y] or 0) + (r.part or 0)
end
for _, r in ipairs(ds:group_by("annee"):agg { "montant" }:run()) do amount_total[tostring(r.annee)] = r.montant end

print("Share of the amount committed, by funder and year")
io.write(crosstab("part", share_total):format("table", { decimals = 4 }), "\n")
print("Amount committed by funder and year, €")
io.write(crosstab("montant", amount_total):format("table", { thousands = " " }))

-- The 10 RNCP certifications with the largest amount in a year, then "Autres" (every other one)
-- and "Total": each row's price is Σ montant / Σ dossiers of its own rows, so the three parts
-- add up and no price is an average of prices.
--   cpf run examples/top10_autres_total.lua DATA.csv [-- YEAR [csv]]
-- YEAR: default the last full year (the last with a December); csv: machine output, the kind
-- of each row in a last column.
local cpf, datasets, args = ...
local ds = assert(datasets[1], "usage: cpf run examples/top10_autres_total.lua DATA.csv [-- YEAR [csv]]")
local year = args[1] and tonumber(args[1])
if args[1] and not year then error("YEAR must be a year, got '" .. args[1] .. "'", 0) end
if not year then
  local last = ds:run { last = cpf.max "date_validation" }[1].last
  year = tonumber(last:sub(1, 4))
  if last:sub(6, 7) ~= "12" then year = year - 1 end
end

local res = ds:where { annee = year, type_referentiel = "RNCP" }
  :group_by("code_rncp"):agg { "dossiers", "montant", "prix_moyen" }
  :order_by("-montant"):limit(10, { others = true }):totals():run()
if args[2] == "csv" then
  io.write(res:format("csv", { row_kind = true }))
else
  io.write(("Les 10 certifications RNCP au plus fort montant en %d, les autres, le total\n"):format(year))
  io.write(res:format("table", { locale = "fr" }))
end

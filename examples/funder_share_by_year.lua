-- Each funder's share of each year's funding, as a funder × year crosstab: the amounts of
-- ds:funders by year, their share within the year (res:share), then a pivot.
--   cpf run examples/funder_share_by_year.lua DATA.csv [-- csv|table]
local cpf, datasets, args = ...
local ds = assert(datasets[1], "usage: cpf run examples/funder_share_by_year.lua DATA.csv [-- csv|table]")
local fmt = args[1] or "table"
if fmt ~= "csv" and fmt ~= "table" then error("the format is csv or table, got " .. fmt, 0) end

local long = ds:funders(ds:where { annee = cpf.not_null() }:group_by("annee"))
  :share("montant", { within = "annee" }) -- montant_part: the funder's amount / the year's
local wide = long:pivot("financeur", "annee", "montant_part")
io.write(wide:format(fmt, fmt == "table" and { locale = "fr" } or nil))

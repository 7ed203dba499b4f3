-- Files per month, with a bar column drawn in the terminal.
--   cpf run examples/month_series.lua DATA.csv [-- FROM [TO]]
-- FROM and TO: years or months (2023, 2023-06), inclusive. The bars are Unicode blocks, or
-- '#' when NO_COLOR is set or the locale is not UTF-8.
local cpf, datasets, args = ...
local ds = assert(datasets[1], "usage: cpf run examples/month_series.lua DATA.csv [-- FROM [TO]]")

local function bound(s)
  if s == nil then return nil end
  return tonumber(s) or s -- a year as a number, a month as "YYYY-MM"
end
local q = ds:group_by("mois")
local from, to = bound(args[1]), bound(args[2])
if from then q = q:where("date_validation", cpf.ge(from)) end
if to then q = q:where("date_validation", cpf.le(to)) end
local res = q:agg { "dossiers", "montant" }:run()

print("Files per month")
io.write(res:format("table", { bar = "dossiers", bar_width = 30 }))

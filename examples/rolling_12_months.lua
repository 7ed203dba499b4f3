-- The amount committed over the last 12 months by region, month by month: a rolling sum on the
-- calendar (an absent month adds nothing), as CSV, with the same month a year before.
--   cpf run examples/rolling_12_months.lua DATA.csv [-- MONTH]
-- MONTH: the last month shown, "YYYY-MM" (default: the last month of the data); the 12 months
-- before it are shown too.
local cpf, datasets, args = ...
local ds = assert(datasets[1], "usage: cpf run examples/rolling_12_months.lua DATA.csv [-- MONTH]")
local last = args[1] or ds:run { last = cpf.max "date_validation" }[1].last
if not (last and last:match("^%d%d%d%d%-%d%d$")) then error("MONTH must be YYYY-MM, got " .. tostring(last), 0) end
local y, m = tonumber(last:sub(1, 4)), tonumber(last:sub(6, 7))
local first = ("%04d-%02d"):format(m == 12 and y or y - 1, m == 12 and 1 or m + 1) -- 12 months shown

-- every month of every region: the window needs the months before the first one shown
local res = ds:where { region_lieu_formation = cpf.not_null() }
  :group_by("region_lieu_formation", "mois"):agg { "montant" }:run()
  :rolling("montant", 12, { over = "mois" })
  :change("montant_glissant_12", { over = "mois", lag = 12 })
  :where { mois = cpf.between(first, last) }
io.write(res:format("csv"))

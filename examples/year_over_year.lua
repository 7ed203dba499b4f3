-- Year-over-year change of the amount committed by region, as a one-page report (HTML or
-- Markdown, by OUT's extension), and its table on stdout.
--   cpf run examples/year_over_year.lua DATA.csv [-- OUT.html|OUT.md [YEAR]]
-- YEAR: the year compared with the one before (default: the last full year of the data, the
-- last with a December).
local cpf, datasets, args = ...
local ds = assert(datasets[1], "usage: cpf run examples/year_over_year.lua DATA.csv [-- OUT.html|OUT.md [YEAR]]")
local out = args[1]
if out and not (out:match("%.html$") or out:match("%.md$")) then error("OUT must end in .html or .md", 0) end

local year = args[2] and tonumber(args[2])
if args[2] and not year then error("YEAR must be a year, got '" .. args[2] .. "'", 0) end
if not year then
  local last = ds:run { last = cpf.max "date_validation" }[1].last -- "YYYY-MM"
  if not last then error("no date validation in the data: give a YEAR", 0) end
  year = tonumber(last:sub(1, 4))
  if last:sub(6, 7) ~= "12" then year = year - 1 end
end

-- every year's amount by region, its change from the year before, then the year asked for
local by_year = ds:where { annee = cpf.between(year - 1, year) }
  :group_by("region_lieu_formation", "annee"):agg { "dossiers", "montant" }:run()
  :change("montant", { over = "annee" })
  :where { annee = year }
  :sorted("-montant_evol_pct")
local total = ds:where { annee = cpf.between(year - 1, year) }:group_by("annee"):agg { "dossiers", "montant" }:run()
  :change("montant", { over = "annee" })

io.write(by_year:format("table", { locale = "fr" }))
if out then
  local report = cpf.report {
    title = ("Montant engagé par région : %d par rapport à %d"):format(year, year - 1),
    dataset = ds,
    sections = {
      { title = "Ensemble", result = total, chart = false,
        note = "Évolution : différence avec l'année précédente ; en % : rapportée au montant de l'année précédente." },
      { title = ("Par région, de la plus forte hausse à la plus forte baisse (%d)"):format(year), result = by_year,
        chart = { x = "region_lieu_formation", y = "montant_evol_pct" } },
    },
  }
  assert(report:write(out))
  io.stderr:write(("wrote %s\n"):format(out))
end

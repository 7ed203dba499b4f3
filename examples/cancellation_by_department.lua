-- Cancellation rate by department, as one self-contained HTML page with a bar chart.
--   cpf run examples/cancellation_by_department.lua DATA.csv [-- OUT.html [MIN_FILES]]
-- OUT.html defaults to cancellation_by_department.html; departments with fewer than
-- MIN_FILES files (default 1) are left out. The 10 highest rates are printed on stdout.
local cpf, datasets, args = ...
local ds = assert(datasets[1], "usage: cpf run examples/cancellation_by_department.lua DATA.csv [-- OUT.html]")
local out = args[1] or "cancellation_by_department.html"
local min_files = tonumber(args[2] or 1) or error("MIN_FILES must be a number", 0)

-- cancelled: the two "Clos - Non Réalisé", "Dossier annulé gestionnaire" and "Rejeté". The
-- rate weighs files, not rows: Σ nb_dossiers of cancelled statuses / Σ nb_dossiers.
local cancelled = cpf.filtered(cpf.sum "nb_dossiers", { statut_dossier = cpf.family "cancelled" })
local res = ds:where { departement_lieu_formation = cpf.not_null() }
  :group_by("departement_lieu_formation")
  :agg { "dossiers", { "annules", cancelled }, "taux_annulation" }
  :order_by("-taux_annulation", "departement_lieu_formation")
  :run()
local kept = {}
for _, r in ipairs(res) do
  if (r.dossiers or 0) >= min_files then kept[#kept + 1] = r end
end
res = cpf.result(res:columns(), kept, res:keys(), res:kinds()) -- a rate stays a rate

-- one page to send as it is (cpf.report): French numbers, the chart, the table, the source line
local ok, err = cpf.report {
  title = "Taux d'annulation des dossiers CPF par département", dataset = ds,
  sections = { {
    title = "Part des dossiers annulés, par département du lieu de formation", result = res,
    chart = { x = "departement_lieu_formation", y = "taux_annulation" },
    labels = { annules = "Dossiers annulés" },
    note = "Annulés : les statuts « Clos - Non Réalisé », « Dossier annulé gestionnaire » et « Rejeté ». "
      .. "Le taux rapporte les dossiers annulés à tous les dossiers du département.",
  } },
}:write(out)
if not ok then error(err, 0) end
io.stderr:write(("wrote %s: %d departments\n"):format(out, #res))
print("The 10 departments with the highest cancellation rates")
io.write(res:head(10):format("table"))

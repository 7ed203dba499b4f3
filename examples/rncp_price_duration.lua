-- Average price and duration by attendance mode for one RNCP certification.
--   cpf run examples/rncp_price_duration.lua DATA.csv [-- CODE]
-- CODE (code_rncp, e.g. 39468 or RNCP39468) defaults to the certification with the most files.
-- price = Σ montant_engage / Σ nb_dossiers; duration = Σ(duree_moyenne × files of known
-- duration) / Σ files of known duration: the weightings of the dataset's documentation.
local cpf, datasets, args = ...
local ds = assert(datasets[1], "usage: cpf run examples/rncp_price_duration.lua DATA.csv [-- CODE]")

local code = args[1] and args[1]:gsub("^RNCP", "")
if not code then
  local top = ds:where { code_rncp = cpf.not_(cpf.one_of { "-1", "" }) }:group_by("code_rncp")
    :agg { "dossiers" }:order_by("-dossiers", "code_rncp"):limit(1):run()
  code = top[1] and top[1].code_rncp or error("no RNCP certification in the data", 0)
end

local measures = { "dossiers", "montant", "prix_moyen", "duree_moyenne" }
local one = ds:where { code_rncp = code }
local by_mode = one:group_by("modalite_presence"):agg(measures):run()
if #by_mode == 0 then error(("no file for RNCP%s"):format(code), 0) end
local all = one:run(measures)[1]
all.modalite_presence = "ensemble"
local rows = {}
for i, r in ipairs(by_mode) do rows[i] = r end
rows[#rows + 1] = all

print(("RNCP%s: average price (€) and duration (hours) by attendance mode"):format(code))
io.write(cpf.result(by_mode:columns(), rows):format("table", { thousands = " " }))

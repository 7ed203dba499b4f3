-- fuzz/make_corpus.lua — writes the fuzzers' seed corpora: small valid snapshots saved with
-- ds:save from spec/fixtures CSVs, plus one with every column type and missing values and one
-- with records set aside.
-- Usage, from the repository root after `make`: lua5.4 fuzz/make_corpus.lua
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/" .. (jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))) .. "/?.so;" .. package.cpath
local cpf = require "cpf"

local fixtures = { "q_small.csv", "missing_values.csv", "codes_and_inference.csv", "extra_decimals.csv",
                   "exponent_amount.csv", "header_only.csv", "labels_bom_lf.csv", "q_scale_1.csv",
                   "quoted_fields.csv", "q_source_column.csv" }

-- every type: date, month, 1-byte codes (with missing values), integers of 1 and 8 bytes (with
-- missing values), decimal, number (with missing values); a tag
local function all_types_csv(path)
  local f = assert(io.open(path, "wb"))
  f:write("date_chargement;date_validation;statut_dossier;region_lieu_formation;nb_dossiers;"
    .. "montant_engage;duree_moyenne;grand_nombre\n")
  local regions = { "Bretagne", "Corse", "Guyane" }
  for i = 1, 40 do
    f:write(("2024-%02d-%02d;20%02d-%02d;%s;%s;%s;%d.%02d;%s;%d\n"):format(i % 12 + 1, i % 28 + 1,
      19 + i % 6, i % 12 + 1, i % 3 == 0 and "Validé" or "Rejeté", i % 7 == 0 and "" or regions[i % 3 + 1],
      i % 11 == 0 and "" or tostring(i % 10), i * 37 % 5000, i % 100,
      i % 13 == 0 and "" or ("%d.25"):format(i), i * 1000000000000))
  end
  f:close()
end

-- records set aside (on_error = "skip"): a snapshot that keeps its rejects
local function rejects_csv(path)
  local f = assert(io.open(path, "wb"))
  f:write("date_validation;statut_dossier;nb_dossiers\n2024-01;Validé;3\n2024-02;Rejeté\n"
    .. "2024-13;Validé;1\n2024-03;\"Val\"idé;2\n2024-04;Validé;x\n2024-05;Validé;4;5\n2024-06;Validé;7\n")
  f:close()
end

local tmp, with_rejects = os.tmpname(), os.tmpname()
all_types_csv(tmp)
rejects_csv(with_rejects)
local sources = { { tmp, "all_types", "seed corpus" }, { with_rejects, "rejects", "", { on_error = "skip" } } }
for _, name in ipairs(fixtures) do sources[#sources + 1] = { "spec/fixtures/" .. name, name:gsub("%.csv$", ""), "" } end
for _, harness in ipairs { "snapshot_open", "snapshot_mutate" } do
  os.execute("mkdir -p fuzz/corpus/" .. harness)
  for _, s in ipairs(sources) do
    local ds = assert(cpf.load(s[1], s[4]))
    assert(ds:save(("fuzz/corpus/%s/%s.cpfsnap"):format(harness, s[2]), s[3]))
  end
end
os.remove(tmp)
os.remove(with_rejects)

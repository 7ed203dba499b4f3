-- A custom output format: SQL INSERT statements, registered in a few lines.
--   cpf run examples/custom_format.lua DATA.csv [-- TABLE]     prints files and amount by
--                                                             year and status family
--   cpf query DATA.csv --by annee --plugin examples/custom_format.lua --format sql
-- A format registered by a script exists while that script runs; --plugin runs this file
-- before the query (with cpf as its only argument) so that `cpf query` knows it too.
local cpf, datasets, args = ...

cpf.formats.register("sql", function(res, out, opts)
  local columns = res:columns()
  local quoted = {}
  for j, c in ipairs(columns) do quoted[j] = '"' .. c:gsub('"', '""') .. '"' end
  local head = ("INSERT INTO %s (%s) VALUES ("):format(opts.table or "cpf", table.concat(quoted, ", "))
  for _, row in ipairs(res) do
    local values = {}
    for j, c in ipairs(columns) do
      local v = row[c]
      if type(v) == "number" then values[j] = cpf.formats.number_text(v) or "NULL"
      elseif v == nil then values[j] = "NULL"
      else values[j] = "'" .. tostring(v):gsub("'", "''") .. "'" end
    end
    out:write(head, table.concat(values, ", "), ");\n")
  end
end)

if not datasets then return end -- run as a --plugin: the format is registered, that is all
local ds = assert(datasets[1], "usage: cpf run examples/custom_format.lua DATA.csv [-- TABLE]")
local res = ds:group_by("annee", "famille"):agg { "dossiers", "montant" }:run()
res:write(io.stdout, "sql", { table = args[1] or "cpf_annee_famille" })

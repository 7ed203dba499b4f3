-- ref_rncp.lua: writes the reference table of the join_ref warm class for a data file: a
-- `code_rncp;libelle` CSV of 20 000 rows, each code once: every distinct code_rncp of FILE,
-- then synthetic codes (integers the file does not have) up to 20 000 rows, as a certification
-- register would have more codes than one extract uses. Rows in ascending numeric code order
-- (not the byte order of the join's keys), the labels made up and deterministic (accents, an
-- apostrophe, a comma: plain UTF-8 text). Every engine is told to read both columns as text.
-- bench/run.sh writes it next to the data file (FILE without .csv + ".ref-rncp.csv",
-- bench/lib.lua's ref_path) when it is missing or older than FILE.
-- Usage (from the repository root): lua5.4 bench/ref_rncp.lua FILE [OUT]
local lib = dofile("bench/lib.lua")
local cpf = require "cpf"

local ROWS = 20000
local path = arg[1] or error("usage: lua5.4 bench/ref_rncp.lua FILE [OUT]")
local out_path = arg[2] or lib.ref_path(path)

local ds = assert(cpf.load(path, { columns = { "code_rncp" } }))
local codes = ds:group_by("code_rncp"):agg { { "n", cpf.count() } }:run()
local seen, list = {}, {}
for _, row in codes:rows() do
  local code = row.code_rncp
  if code ~= nil and not seen[code] then seen[code] = true; list[#list + 1] = code end
end
assert(#list <= ROWS, ("%d distinct codes: more than the %d rows of the reference"):format(#list, ROWS))
local n = 1
while #list < ROWS do
  local code = tostring(n)
  if not seen[code] then seen[code] = true; list[#list + 1] = code end
  n = n + 1
end
table.sort(list, function(a, b)
  local x, y = tonumber(a), tonumber(b)
  if x and y and x ~= y then return x < y end
  if (x ~= nil) ~= (y ~= nil) then return x ~= nil end
  return a < b
end)

local KIND = { "Titre professionnel", "Diplôme d'État", "Certificat de qualification professionnelle",
  "Licence professionnelle", "Bachelor", "Mastère spécialisé", "Brevet professionnel" }
local FIELD = { "agent(e) de maintenance, bâtiment", "développeur web et web mobile",
  "comptabilité et gestion", "aide-soignant(e)", "conducteur routier de marchandises",
  "management d'équipe", "secrétaire assistant(e) médico-social(e)", "électricien(ne) d'équipement",
  "cuisinier(ère)", "langue anglaise, niveau B2" }
local function label(code, i)
  local h = 0
  for k = 1, #code do h = (h * 31 + code:byte(k)) % 1000003 end
  return ("%s %s (n° %s, fiche %d)"):format(KIND[h % #KIND + 1], FIELD[(h // 7) % #FIELD + 1], code, i)
end

local lines = { "code_rncp;libelle" }
for i, code in ipairs(list) do
  local l = label(code, i)
  assert(not l:find('[;"\r\n]'), "a label needs no quoting")
  lines[#lines + 1] = code .. ";" .. l
end
local tmp = out_path .. ".tmp"
local f = assert(io.open(tmp, "wb"))
f:write(table.concat(lines, "\n"), "\n")
f:close()
assert(os.rename(tmp, out_path))
io.stderr:write(("ref_rncp.lua: %s: %d codes (%d from %s)\n"):format(out_path, #list, #codes, path))

-- The command line's bytes did not change when its request language moved into one table
-- (issue 28): every command below gives the exit status, stdout and stderr that the code
-- before that change gave (spec/fixtures/cli_bytes.txt, written by it). The changes meant are
-- tested where they are: --join's usage error (spec/21), cpf query --help (spec/42), csv-fr's
-- rounding and the charts' margins (spec/44, spec/20), --change's grammar with a lag (spec/21),
-- its calendar and its note on a partial period (spec/41, spec/44). Changed since, with the
-- fixture: the hint of a header that another separator splits (spec/50), describe's table
-- within 100 characters (spec/21).
local h = require "spec.helpers"
-- luacheck: no max line length
local gen = require "cpf.gen"

local COMMANDS = {
  [=[query DATA]=],
  [=[query DATA --by annee]=],
  [=[query DATA --by region_lieu_formation,annee --measure dossiers,montant,prix_moyen --sort -montant --limit 10 --format csv]=],
  [=[query DATA --where 'statut_dossier=Validé|Entrée en formation' --where annee=2023 --by famille --format json]=],
  [=[query DATA --by mois --measure count,median:prix_moyen,quantile:duree_moyenne:0.9 --format tsv]=],
  [=[query DATA --by 'Région=region_lieu_formation' --measure "Taux d'annulation=taux_annulation,Dossiers=dossiers" --sort -Dossiers --limit 3 --format markdown]=],
  [=[query DATA --where 'code_rncp^=3' --where 'famille!=cancelled' --measure distinct:code_rncp --opt 'thousands= ']=],
  [=[query DATA --by region_lieu_formation,annee --sort region_lieu_formation,-montant --limit 2 --per region_lieu_formation --format jsonl]=],
  [=[query DATA --by annee --join REF:annee --format csv]=],
  [=[query DATA --by annee --bar montant --locale fr]=],
  [=[query DATA --by nope]=],
  [=[query DATA --where nope=1]=],
  [=[query DATA --measure sum:nb_titulaires]=],
  [=[query DATA --measure foo]=],
  [=[query DATA --format nope]=],
  [=[query DATA --limit x]=],
  [=[query DATA --per annee]=],
  [=[query DATA --by annee --sort -nope]=],
  [=[query DATA --frob]=],
  [=[query DATA --by]=],
  [=[query DATA --bar montant --format csv]=],
  [=[query DATA --title x]=],
  [=[query DATA --locale de]=],
  [=[query DATA --join /nope.csv:annee]=],
  [=[query DATA --rank '']=],
  [=[query DATA --having 'nope>1' --by annee]=],
  [=[query DATA --sep , --by annee]=],
  [=[query DATA --sep ab]=],
  [=[query DATA --decimal x]=],
  [=[query DATA --threads 0]=],
  [=[query DATA --threads 2 --by annee --format csv]=],
  [=[query DATA --where 'code_rncp~(' ]=],
  [=[query DATA --opt bad]=],
  [=[query DATA --opt decimals=1 --format markdown --by annee]=],
  [=[describe DATA]=],
  [=[describe DATA --format csv --top 1]=],
  [=[describe DATA --top x]=],
  [=[query]=],
}

-- Each command's answer on DATA (a generated file) and REF (a reference table), their paths
-- written DATA and REF: "=== COMMAND\nexit N\nSTDOUT--- stderr\nSTDERR".
local function answers(data, ref)
  local out = {}
  local function plain(s) return (s:gsub("%p", "%%%0")) end
  for i, command in ipairs(COMMANDS) do
    local line = command:gsub("DATA", data):gsub("REF", ref)
    local stdout, stderr, code = h.run(h.cpf_command(line))
    local text = ("=== %s\nexit %d\n%s--- stderr\n%s"):format(command, code, stdout, stderr)
    out[i] = text:gsub(plain(data), "DATA"):gsub(plain(ref), "REF")
  end
  return out
end

-- #no_asan: the command's bytes, in processes of their own (see spec/21)
describe("cpf query's bytes #no_asan", function()
  it("are those the command line gave before the request table", function()
    local dir = h.tmpname("-bytes")
    os.execute("mkdir -p " .. h.shell_quote(dir))
    local data, ref = dir .. "/data.csv", dir .. "/ref.csv"
    assert(gen.write(data, 5000, { seed = 3 }))
    h.write_bytes(ref, "annee;pop\n2021;10\n2022;20\n2023;30\n")
    local got = answers(data, ref)
    os.execute("rm -rf " .. h.shell_quote(dir))
    if os.getenv("CPF_WRITE_CLI_BYTES") then -- run by the code before the change, once
      h.write_bytes("spec/fixtures/cli_bytes.txt", table.concat(got, "\0"))
      return
    end
    local expected = {}
    for part in (h.read_file("spec/fixtures/cli_bytes.txt") .. "\0"):gmatch("(.-)%z") do
      expected[#expected + 1] = part
    end
    assert.are.equal(#COMMANDS, #expected)
    for i = 1, #COMMANDS do assert.are.equal(expected[i], got[i]) end
  end)
end)

-- The writers of csv, csv-fr, tsv and json/jsonl write the bytes the Lua writers of bfaeba7 wrote
-- (spec/support/lua_writers.lua): many results × every format × option sets, compared byte for byte.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"
local schema = require "cpf.schema"
local set_row_kinds = require("cpf.result").set_row_kinds
local ref = require "spec.support.lua_writers"

local FORMATS = ref.names -- csv, csv-fr, tsv, json, jsonl

-- spec/28's hostile values
local HOSTILE = {
  "\1\2\3", "a\27[2Jb", "\27]0;title\7", "bell\7", "back\8space", "del\127", "nul\0byte", "\31unit",
  "tab\there", "cr\rhere", "lf\nhere", "crlf\r\nhere", "\tleading tab", "trailing tab\t",
  "   ", " ", " padded ", "  two  spaces  ",
  "\226\128\174gnp.exe", "zero\226\128\139width", "\239\187\191bom inside", "\226\129\166isolate\226\129\169",
  "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "a & b", "&amp;", "]]>", "<!--",
  "=1+2", "+1+2", "-x", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(\"http://x\")",
  ";", ",", '"', '""', 'a"b', "'quoted'", "a;b,c", "|pipe|", "back\\slash", "\\n",
  "\240\159\152\128", "\240\157\149\143", "e\204\129", "\206\169\226\137\136\195\167\226\136\154",
  "NULL", "null", "nil", "true", "{{7*7}}", "${jndi:ldap://x}", "%s%n",
  ("long "):rep(400),
}
-- not UTF-8: stray bytes, a surrogate, above U+10FFFF, cut and overlong sequences; and near misses
local INVALID_UTF8 = {
  "\255", "a\192b", "\237\160\128", "\244\144\128\128", "\226\130", "\224\128\128", "\128", "x\191", "\194",
  "\248\136\128\128\128", "\192\128", "\240\144\128", "\226\130\172\226\130", "\239\191\189", "\237\159\191",
  "\244\143\191\191", "\226\128\168", "\226\128\169", "a\226\128\168b\226\128\169c", "\226\128\167", "\226\128\170",
}
-- starting with = + - @ tab or CR, reading as a number or not (tonumber differs between Lua versions:
-- LuaJIT reads -inf, -nan and -0b1, Lua 5.1 stops at a zero byte)
local FORMULA = {
  "-1", "+3", "-12,5", "=1", "-x", "0x10", "-0x10", "-inf", "+inf", "-nan", "-NaN", "-infinity", " 1", "1e5",
  "-.5", "+.5", "-5.", "-1,5e3", "-,5", "-1,", "-1,000,5", "-0x1p4", "-0b1", "+0b11", "-1 ", "-1\t", "- 1",
  "+-1", "--1", "-1e", "-1\0", "-1\v", "\t1", "\t-1", "\r1", "\r 5", "\t", "\r", "=", "+", "-", "@", "@1",
  "=-1", "+=1", "-1e400", "-0", "-00", "-08", "+0x7fffffffffffffff", "-9223372036854775809", "1,5", "-1.5",
  "-1.5e-3", "-1E5", "=\"x\"", "-1\r\n", "-1\n", "\n-1", " -x", "-1;2", "-1|2",
}
local SPACES = {
  "", " ", "  ", "\t", " a", "a ", "\ta", "a\t", "\va", "a\v", "\fa", "a\f", "\ra", "a\r", "\na", "a\n",
  " a ", "a b", "\194\160a", "a\194\160", '"', '""', 'a"b', '"a"', "\r", "\n", "\r\n", "\\", "\\\\", "a\\tb",
  "a\0b", "\0", "\b\f", "\1\31\127", "é", "L'Isle", "Île-de-France",
}
local SEPARATORS = { ",", ";", "|", "\t", " ", "a", "1", ".", "-", "%", "]", "^" }

local NAN, INF, NEG_ZERO = 0 / 0, math.huge, -1 / math.huge
local NUMBERS = {
  0, 1, -1, 7, 42, -3, 2020, 1e15, 2 ^ 53 - 1, 2 ^ 53, 2 ^ 53 + 1, -2 ^ 53, 2 ^ 63, -2 ^ 63, 1e16, 1e20, 1e21,
  0.1, 0.2, 0.1 + 0.2, 1 / 3, 2 / 3, -1 / 3, 1e-7, -1e-7, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
  -1.7976931348623157e308, 123456789012.34, 3908.2289928057553, 2.5, 1060.625, -1060.625, 0.125, 1.005, 2.675,
  99.995, 9.995, 0.5, 1.5, -0.5, 1.234e-7, 12345.678901234567, 57331777.3, 4503599627370495.5, 1e-300, 1e300,
  3.14159265358979, 1234567.891, 0.000005, 0.0000005, 0.0000015, 1e-6, 9999999.999999, 0.9999999, 0.9999995,
  -0.0000004, 1e22, 123456789.123456789, NEG_ZERO, NAN, -NAN, INF, -INF,
}
if math.type then -- true integers on Lua 5.3+
  for _, v in ipairs { math.maxinteger, math.mininteger, math.maxinteger - 1, math.mininteger + 1,
                       9007199254740993, -9007199254740993, math.tointeger(2 ^ 53), 100000000000000000, 3, 0 } do
    NUMBERS[#NUMBERS + 1] = v
  end
  NUMBERS[#NUMBERS + 1] = 3.0
end

local STRINGS = {}
for _, list in ipairs { HOSTILE, INVALID_UTF8, FORMULA, SPACES } do
  for _, s in ipairs(list) do STRINGS[#STRINGS + 1] = s end
end
for _, c in ipairs(SEPARATORS) do
  for _, s in ipairs { c, "x" .. c .. "y", c .. c, " " .. c, c .. " ", c .. "1", "1" .. c .. "5", "-" .. c } do
    STRINGS[#STRINGS + 1] = s
  end
end

-- ---- option sets, by format ----

local OPTIONS = {
  csv = { {}, { rounded = true }, { formula_guard = true }, { labels = true }, { labels = true, row_labels = "fr" },
          { row_labels = "en" }, { row_labels = false }, { row_labels = "fr" }, { row_kind = true },
          { row_kind = true, row_labels = "fr", labels = true }, { bom = true, eol = "\r\n" },
          { rounded = false, formula_guard = false, bom = false, eol = "\n", row_kind = false, labels = false } },
  ["csv-fr"] = { {}, { bom = false }, { rounded = false }, { formula_guard = false }, { row_labels = false },
                 { row_labels = "en" }, { labels = true }, { row_kind = true }, { decimal = "." }, { sep = "|" },
                 { sep = ",", decimal = "." }, { eol = "\r\n" }, { sep = "\t", labels = true, row_kind = true } },
  tsv = {},
  json = { {}, { row_kind = true }, { row_kind = false } },
  jsonl = { {}, { row_kind = true }, { row_kind = false } },
}
for _, sep in ipairs(SEPARATORS) do
  local csv = OPTIONS.csv
  csv[#csv + 1] = { sep = sep, decimal = "." }
  csv[#csv + 1] = { sep = sep, formula_guard = true, rounded = true, row_labels = "fr", eol = "\r\n" }
  csv[#csv + 1] = { sep = sep, decimal = sep ~= "," and "," or nil, labels = true, bom = true, rounded = true,
                    row_kind = sep == ";" or nil, row_labels = "en", formula_guard = true }
end
for i = 0, 15 do -- every combination of bom, decimal, eol and row_kind
  OPTIONS.tsv[i + 1] = { bom = i % 2 == 1 or nil, decimal = i % 4 >= 2 and "," or ".",
                         eol = i % 8 >= 4 and "\r\n" or "\n", row_kind = i >= 8 or nil }
end

-- ---- comparing ----

local compared = 0
-- Under the sanitizers (CI's ASan stage, slower) a third of the option sets and 100 random results:
-- the C writers' every path still runs there; the plain Lua stages compare them all.
local SAMPLE = os.getenv("CPF_SANITIZED") and 3 or 1

local function show_opts(opts)
  local keys, parts = {}, {}
  for k in pairs(opts) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do
    local v = opts[k]
    parts[i] = k .. "=" .. (type(v) == "string" and ("%q"):format(v) or tostring(v))
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- The bytes `got` against `want`; on a difference, the message says where, with the bytes around.
local function same(want, got, case)
  compared = compared + 1
  if want == got then return end
  if type(got) == "string" then
    local at = 1
    while at <= #want and want:byte(at) == got:byte(at) do at = at + 1 end
    local from = math.max(1, at - 30)
    case = ("%s: first difference at byte %d of %d/%d: expected %q, got %q"):format(case, at, #want, #got,
      want:sub(from, at + 30), got:sub(from, at + 30))
  end
  assert.are.equal(want, got, case)
end

local function compare(res, name, opts, case)
  case = ("%s, %s %s"):format(case, name, show_opts(opts))
  local ok, want = pcall(ref.to_string, res, name, opts)
  assert(ok, "the reference raised for " .. case .. ": " .. tostring(want))
  local ok2, got = pcall(res.format, res, name, opts)
  if not ok2 then error(case .. ": res:format raised: " .. tostring(got), 0) end
  same(want, got, case)
end

-- ---- results made in Lua ----

-- rows of one column `name` holding list[1..n] (nil holes kept)
local function rows_of(name, list, n)
  local rows = {}
  for i = 1, n or #list do rows[i] = { [name] = list[i] } end
  return rows
end

local LUA_RESULTS = {
  { "each number in each kind", function()
    local rows = {}
    for i, v in ipairs(NUMBERS) do rows[i] = { plain = v, c = v, m = v, r = v, k = v } end
    return cpf.result({ "plain", "c", "m", "r", "k" }, rows, { "k" },
      { c = "count", m = "money", r = "rate", k = "key" }) end },
  { "numbers as a money measure (csv-fr rounds)", function()
    return cpf.result({ "montant" }, rows_of("montant", NUMBERS), nil, { montant = "money" }) end },
  { "strings, beside numbers", function()
    local rows = {}
    for i, s in ipairs(STRINGS) do rows[i] = { texte = s, n = i + 0.5 } end
    return cpf.result({ "texte", "n" }, rows, { "texte" }, { n = "money" }) end },
  { "strings alone (one column)", function() return cpf.result({ "texte" }, rows_of("texte", STRINGS)) end },
  { "booleans and holes", function()
    return cpf.result({ "a", "b", "c" }, { { a = true, b = false }, { c = true }, {}, { a = false, b = "x", c = 1 },
      { b = NAN }, { a = "", c = "" } }) end },
  { "one column: empty, missing, NaN, space", function()
    return cpf.result({ "v" }, rows_of("v", { "", nil, "x", NAN, " ", INF, "", 0, false, "\"\"" }, 10)) end },
  { "one column, nothing but missing", function() return cpf.result({ "v" }, { {}, {}, {} }) end },
  { "one column named ''", function() return cpf.result({ "" }, { { [""] = "" }, {}, { [""] = "x" } }) end },
  { "one column of labels", function() return cpf.result({ "famille" }, rows_of("famille", { "validated", nil, "",
    "cancelled", 1 }, 5), { "famille" }) end },
  { "no rows", function() return cpf.result({ "a", "b" }, {}) end },
  { "no rows, one column", function() return cpf.result({ "dossiers" }) end },
  { "no columns", function() return cpf.result({}, { {}, { x = 1 } }) end },
  { "no columns, no rows", function() return cpf.result({}) end },
  { "column names that need quoting or a guard", function()
    local names = { "=1+2", "a;b,c", '"', "lf\nhere", "-1", " padded ", "\255", "dossiers", "tab\there", "a|b",
                    "1", "é", "a\226\128\168b", "\\", "@x", "" }
    local row = {}
    for i, n in ipairs(names) do row[n] = i end
    return cpf.result(names, { row, {} }) end },
  { "duplicate column names, fields outside the columns", function()
    return cpf.result({ "a", "a", "b" }, { { a = 1.5, b = "x", z = "unseen" }, { a = "-1", b = 2 } }) end },
  { "labelled keys: families, funders, changes, cohorts", function()
    local rows, values = {}, { "validated", "in_training", "left_training", "completed", "cancelled", "opco",
      "france_competences", "etat", "added", "removed", "revised", "unchanged", "recent", "closed", "other", "1",
      1, 2.5, "", "=x", "Validé" }
    for i, v in ipairs(values) do
      rows[i] = { famille = v, financeur = v, change = v, cohort = v, statut_dossier = v, dossiers = i,
                  montant = i / 3, prix_moyen = v, annee = 2019 + i, part_opco = i / 7, taux_annulation = i / 9 }
    end
    return cpf.result({ "famille", "financeur", "change", "cohort", "statut_dossier", "dossiers", "montant",
      "prix_moyen", "annee", "part_opco", "taux_annulation" }, rows, { "famille", "financeur", "change", "cohort" },
      { montant = "money", prix_moyen = "money", taux_annulation = "rate", dossiers = "count", annee = "key" }) end },
  { "row kinds set on a result made in Lua", function()
    local res = cpf.result({ "annee", "region", "montant", "note" }, {
      { annee = 2023, region = "Bretagne", montant = 1.005, note = "-x" },
      { annee = 2023, montant = 2.675, note = "=1" }, { annee = 2024, region = "-1", montant = 1 / 3 },
      { region = "Corse", montant = 99.995 }, { montant = 1e21, note = "" }, { annee = 2025, region = "x" },
      { annee = 2026 },
    }, { "annee", "region" }, { montant = "money", annee = "key" })
    set_row_kinds(res, { [2] = "subtotal", [3] = "others", [4] = "others", [5] = "total", [6] = "total" })
    return res end },
  { "an object with __tostring, a row with an __index metatable", function()
    local object = setmetatable({}, { __tostring = function() return '=obj;"x"' end })
    return cpf.result({ "a", "b" }, { { a = object, b = 1 }, setmetatable({ a = 1 }, { __index = { b = "=b" } }) })
  end },
  { "row kinds, one key column", function()
    local res = cpf.result({ "k" }, { { k = "a" }, {}, {} }, { "k" })
    set_row_kinds(res, { [2] = "others", [3] = "total" })
    return res end },
}

-- ---- query results over a generated file and a fixture ----

local QUERY_RESULTS = {
  { "families by year", function(ds) return ds:group_by("famille", "annee"):agg { "dossiers", "montant", "prix_moyen" }
    :run() end },
  { "families by year, sorted by -montant", function(ds)
    return ds:group_by("famille", "annee"):agg { "dossiers", "montant", "prix_moyen" }:run():sorted("-montant") end },
  { "top 3 regions + Autres + Total", function(ds)
    return ds:group_by("region_lieu_formation"):agg { "dossiers", "montant", "prix_moyen", "taux_annulation" }
      :order_by("-dossiers"):limit(3, { others = true }):totals():run() end },
  { "subtotals by year and family", function(ds)
    return ds:where { annee = { 2023, 2024 } }:group_by("annee", "famille"):agg { "dossiers", "prix_moyen" }
      :totals():run() end },
  { "top 2 regions per year + Autres", function(ds)
    return ds:group_by("annee", "region_lieu_formation"):agg { "dossiers", "montant" }
      :order_by("annee", "-dossiers"):limit(2, { per = "annee", others = true }):run() end },
  { "quarters", function(ds) return ds:group_by("trimestre"):agg { "dossiers", "montant" }:run() end },
  { "months of 2024", function(ds)
    return ds:where { annee = 2024 }:group_by("mois"):agg { "dossiers", "montant", "duree_moyenne" }:run() end },
  { "funders", function(ds) return ds:funders() end },
  { "funders by year", function(ds) return ds:funders(ds:where { annee = { 2024, 2025 } }:group_by("annee")) end },
  { "training titles by -montant", function(ds)
    return ds:group_by("libelle_formacode_principal"):agg { "dossiers", "montant", "prix_moyen" }
      :order_by("-montant"):limit(15):run() end },
  { "departments", function(ds)
    return ds:group_by("departement_lieu_formation"):agg { "dossiers" }:order_by("departement_lieu_formation")
      :limit(12):run() end },
  { "means and medians", function(ds)
    return ds:group_by("modalite_presence")
      :agg { "dossiers", m = cpf.mean "montant_engage", med = cpf.median "montant_engage" }:run() end },
  { "no key", function(ds) return ds:run { "dossiers", "montant", "prix_moyen", "taux_annulation" } end },
  { "no row", function(ds) return ds:where { annee = 1999 }:group_by("annee"):agg { "dossiers" }:run() end },
  { "share within the year", function(ds)
    return ds:where { annee = { 2024, 2025 } }:group_by("annee", "famille"):agg { "dossiers" }:run()
      :share("dossiers", { within = "annee" }) end },
  { "change over the year", function(ds)
    return ds:where { annee = { 2022, 2023, 2024 } }:group_by("region_lieu_formation", "annee"):agg { "montant" }
      :run():change("montant", { over = "annee" }) end },
  { "rolling sum and mean over months", function(ds)
    return ds:where { annee = { 2024, 2025 } }:group_by("mois"):agg { "dossiers", "prix_moyen" }:run()
      :rolling("dossiers", 3, { over = "mois" }):rolling("dossiers", 2, { over = "mois", fn = "mean" }) end },
  { "a column computed in Lua", function(ds)
    return ds:where { annee = 2025 }:group_by("mois"):agg { "dossiers", "montant" }:run()
      :with { { "prix", function(r) return r.montant / r.dossiers end, "money" } } end },
  { "a query result with rows read and changed in Lua", function(ds)
    local res = ds:group_by("departement_lieu_formation", "annee"):agg { "dossiers", "montant" }
      :order_by("-montant"):limit(150):run()
    res[140].montant, res[141].dossiers, res[142].extra = '"changed";', nil, "not a column" -- 5.4: rows 140-150 built
    res[143] = { departement_lieu_formation = "=replaced", annee = 1.5 }
    return res end },
  { "q_small.csv: status by region", function(_, small)
    return small:group_by("statut_dossier", "region_lieu_formation"):agg { "dossiers", "montant", "duree_moyenne" }
      :run() end },
  { "q_small.csv: families + Total", function(_, small)
    return small:group_by("famille"):agg { "dossiers", "montant", "prix_moyen" }:totals():run() end },
}

local CASES = {}
for _, list in ipairs { LUA_RESULTS, QUERY_RESULTS } do
  for _, c in ipairs(list) do CASES[#CASES + 1] = c end
end

-- ---- a random result: columns, keys, kinds, row kinds and values drawn from the lists above ----

local NAMES = { "a", "b", "texte", "famille", "financeur", "annee", "mois", "dossiers", "montant", "taux", "=x",
                "a;b", "sp ace", "é", "-1", "\255", 'q"q', "" }
local KINDS = { "count", "money", "rate", "number", "key", false }
local FRAGMENTS = { ",", ";", "|", "\t", " ", '"', "\r", "\n", "=", "-", "+", "@", "1", "5", ".", "e", "x", "\255",
                    "\226\128\168", "é", "\0", "\\", "a", "%", "]", "^", "inf", "0x" }

local function random_value()
  local r = math.random()
  if r < 0.35 then return NUMBERS[math.random(#NUMBERS)] end
  if r < 0.6 then return STRINGS[math.random(#STRINGS)] end
  if r < 0.65 then return math.random() < 0.5 end
  if r < 0.7 then return (math.random(-1000000, 1000000)) / 100 end
  local parts = {}
  for i = 1, math.random(1, 4) do parts[i] = FRAGMENTS[math.random(#FRAGMENTS)] end
  return table.concat(parts)
end

local function random_result()
  local names, taken, keys, kinds = {}, {}, {}, {}
  for _ = 1, math.random(0, 5) do
    local n = NAMES[math.random(#NAMES)]
    if not taken[n] then
      taken[n] = true
      names[#names + 1] = n
      if math.random() < 0.3 then keys[#keys + 1] = n end
      kinds[n] = KINDS[math.random(#KINDS)] or nil
    end
  end
  local rows = {}
  for i = 1, math.random(0, 6) do
    rows[i] = {}
    for _, n in ipairs(names) do rows[i][n] = math.random() < 0.8 and random_value() or nil end
  end
  local res = cpf.result(names, rows, keys, kinds)
  if #keys > 0 and math.random() < 0.3 then
    local row_kinds = {}
    for i = 1, #rows do row_kinds[i] = ({ "total", "subtotal", "others", false })[math.random(4)] or nil end
    set_row_kinds(res, row_kinds)
  end
  return res
end

describe("csv, csv-fr, tsv, json and jsonl write the bytes of the Lua writers of bfaeba7", function()
  local ds, small, built = nil, nil, {}
  setup(function()
    local path = h.tmpname(".csv")
    assert(gen.write(path, 3000, { seed = 53 }))
    ds = assert(cpf.load(path))
    small = assert(cpf.load(h.fixture("q_small.csv")))
    for _, c in ipairs(CASES) do built[c[1]] = c[2](ds, small) end
  end)
  teardown(function() ds:close() small:close() h.cleanup() end)

  for ci, c in ipairs(CASES) do
    for _, name in ipairs(FORMATS) do
      it(("%s, in %s with each option set"):format(c[1], name), function()
        local res = built[c[1]]
        for i, opts in ipairs(OPTIONS[name]) do
          if (i + ci) % SAMPLE == 0 then compare(res, name, opts, c[1]) end
        end
      end)
    end
  end

  it("csv with a zero byte as the separator, where the reference writes it (LuaJIT's pattern raises)", function()
    for _, c in ipairs(CASES) do
      for _, opts in ipairs { { sep = "\0" }, { sep = "\0", formula_guard = true, rounded = true } } do
        if pcall(ref.to_string, built[c[1]], "csv", opts) then compare(built[c[1]], "csv", opts, c[1]) end
      end
    end
  end)

  -- On Lua 5.3/5.4 the Lua writers went on past #res (the store's count) to a row appended in Lua;
  -- json is left out: its commas follow #res, so it wrote no comma before that row there.
  it("a query result with a row appended in Lua", function()
    local res = small:group_by("famille"):agg { "dossiers", "montant" }:run()
    res[#res + 1] = { famille = "appended", dossiers = 1, montant = 2.5 }
    for _, name in ipairs { "csv", "csv-fr", "tsv", "jsonl" } do
      for _, opts in ipairs { {}, { row_kind = true } } do compare(res, name, opts, "a row appended in Lua") end
    end
  end)

  it("long values: quotes doubled, control bytes escaped, bytes that are not UTF-8 replaced, past 64 kB", function()
    local res = cpf.result({ "a", "b" }, { { a = ('"'):rep(40000), b = ("\1"):rep(12000) },
      { a = ("\255"):rep(25000), b = ("é"):rep(40000) .. "\n" }, { a = ("-"):rep(70000), b = ("\t"):rep(40000) } })
    for _, name in ipairs(FORMATS) do
      for i = 1, 3 do compare(res, name, OPTIONS[name][#OPTIONS[name] + 1 - i], "long values") end
    end
  end)

  it("labels keyed by numbers and by texts that read as numbers label only the value of their own type", function()
    local saved = {}
    local extra = { ["1"] = "Un", [3] = "Trois", [2.5] = "Deux et demi", x = "=SUM(A1)", y = "-1", z = " z " }
    for _, language in ipairs { "fr", "en" } do
      local t = schema.value_labels[language].famille
      saved[language] = {}
      for k, v in pairs(extra) do saved[language][k], t[k] = t[k], v end
    end
    finally(function()
      for _, language in ipairs { "fr", "en" } do
        for k in pairs(extra) do schema.value_labels[language].famille[k] = saved[language][k] end
      end
    end)
    local res = cpf.result({ "famille", "n" }, rows_of("famille", { 1, "1", 3, "3", 2.5, "2.5", "x", "y", "z",
      "validated", 1.0, 3.0, -1, nil, "" }, 15), { "famille" })
    for _, name in ipairs { "csv", "csv-fr" } do
      for _, opts in ipairs(OPTIONS[name]) do compare(res, name, opts, "labels keyed by numbers") end
    end
  end)

  it("300 random results (math.randomseed(53)), each in every format with a random option set", function()
    math.randomseed(53)
    for n = 1, SAMPLE > 1 and 100 or 300 do
      local res = random_result()
      for _, name in ipairs(FORMATS) do
        local sets = OPTIONS[name]
        compare(res, name, sets[math.random(#sets)], ("random result %d"):format(n))
      end
    end
  end)

  it("res:write to a path, a file handle and an object with :write writes the same bytes", function()
    local big = {}
    for i = 1, 3000 do
      big[i] = { i = i, x = NUMBERS[i % #NUMBERS + 1], s = STRINGS[i % #STRINGS + 1], b = i % 3 == 0 or nil }
    end
    big = cpf.result({ "i", "x", "s", "b" }, big, { "i" }, { x = "money" })
    local cases = {
      { big, "json", {} }, { big, "jsonl", { row_kind = true } }, { big, "csv", { sep = ";", formula_guard = true } },
      { big, "csv-fr", {} }, { big, "tsv", { bom = true, eol = "\r\n" } },
      { built["top 3 regions + Autres + Total"], "csv-fr", {} },
      { built["families by year, sorted by -montant"], "csv-fr", { labels = true } },
      { built["strings, beside numbers"], "tsv", { decimal = "," } },
      { built["one column: empty, missing, NaN, space"], "csv", { sep = "|" } },
      { built["no columns"], "json", {} }, { built["no rows"], "csv-fr", { row_kind = true } },
    }
    for i, c in ipairs(cases) do
      local res, name, opts = c[1], c[2], c[3]
      local case = ("write case %d, %s %s"):format(i, name, show_opts(opts))
      local want = ref.to_string(res, name, opts)
      local path = h.tmpname("." .. name)
      assert(res:write(path, name, opts))
      same(want, h.read_file(path), case .. " to a path")
      if i <= 2 or i == 6 then
        local handle_path = h.tmpname("." .. name)
        local handle = assert(io.open(handle_path, "wb"))
        assert(res:write(handle, name, opts))
        handle:close()
        same(want, h.read_file(handle_path), case .. " to a file handle")
        local pieces = {}
        assert(res:write({ write = function(_, s) pieces[#pieces + 1] = s return true end }, name, opts))
        same(want, table.concat(pieces), case .. " to an object with :write")
      end
    end
  end)

  it("made thousands of comparisons", function()
    assert.is_true(compared > 3000 / SAMPLE, ("%d comparisons"):format(compared))
  end)
end)

-- The writers' numbers: format_shortest (csrc/numparse.c) finds the shortest text from one
-- "%.16e" of the C library; its definition is the first "%.{k}g" (k = 1 to 17) that reads back as
-- the same double, which Lua 5.3 and 5.4's string.format (the C library's) writes directly.
describe("the shortest text of a double", function()
  local core = require "cpf.core"
  local by_trial = _VERSION ~= "Lua 5.1" and not jit and function(v)
    if v == math.floor(v) and math.abs(v) <= 2 ^ 53 then return ("%.0f"):format(v == 0 and 0.0 or v) end
    for k = 1, 17 do
      local s = ("%." .. k .. "g"):format(v)
      if tonumber(s) == v then return s end
    end
  end

  -- 20 000 doubles in CI, 200 000 with CPF_SHORTEST_SWEEP=all (make check-all)
  local COUNT = os.getenv("CPF_SHORTEST_SWEEP") == "all" and 200000 or 20000

  it("is the first %.{k}g that reads back, on doubles of every kind", function()
    if not by_trial then return pending("Lua 5.1 and LuaJIT format numbers their own way") end
    math.randomseed(54)
    local kinds = {
      function() return math.random(-10 ^ 9, 10 ^ 9) / 100 end, -- amounts in cents
      function() return math.random(1, 10 ^ 6) / math.random(1, 1000) end, -- ratios
      function() return math.random(1, 999) * 10.0 ^ math.random(-30, 30) end, -- short mantissas
      function() return (math.random() - 0.5) * 2.0 ^ math.random(-1070, 1023) end, -- every exponent
      function() -- a double's random bits, subnormals included
        local v = string.unpack("<d", string.pack("<I4I4", math.random(0, 2 ^ 32 - 1), math.random(0, 2 ^ 32 - 1)))
        return (v == v and v - v == 0) and v or 1.5
      end,
    }
    local wrong = {}
    for i = 1, COUNT do
      local v = kinds[i % #kinds + 1]()
      local want, got = by_trial(v), core.number_text(v)
      if want ~= got and #wrong < 5 then wrong[#wrong + 1] = ("%.17g: %s, not %s"):format(v, got, want) end
    end
    assert.are.same({}, wrong)
  end)
end)

-- cpf serve streams a large answer through a target whose write yields (ngx.flush(true) waits
-- for the client): the pieces leave the C writer one at a time, from a Lua loop, so that the
-- yield never crosses a C call (it once raised "attempt to yield across a C-call boundary").
describe("a target whose write yields", function()
  it("gets every piece, the bytes of a plain write, from a result made in Lua and a query's", function()
    local rows = {}
    for i = 1, 20000 do rows[i] = { i = i, s = ("ligne %d, \"x\""):format(i) } end
    local path = h.tmpname(".csv")
    assert(gen.write(path, 20000, { seed = 53 }))
    local ds = assert(cpf.load(path))
    local results = { cpf.result({ "i", "s" }, rows, { "i" }),
                      ds:group_by("code_rncp", "mois"):agg { "dossiers", "montant" }:run() }
    for r, res in ipairs(results) do
      for _, name in ipairs(FORMATS) do
        local want, got, resumes = res:format(name), {}, 0
        local co = coroutine.create(function()
          return res:write({ write = function(_, piece)
            got[#got + 1] = piece
            coroutine.yield()
            return true
          end }, name)
        end)
        local ok, value
        repeat
          ok, value = coroutine.resume(co)
          resumes = resumes + 1
        until not ok or coroutine.status(co) == "dead"
        assert.is_true(ok, tostring(value))
        assert.is_true(value)
        assert.is_true(resumes > 2, ("%s result %d: %d resumes"):format(name, r, resumes))
        assert.are.equal(want, table.concat(got), ("%s result %d"):format(name, r))
      end
    end
    ds:close()
  end)
end)

-- cpf.request — the request language and its one table of fields. A question written as text
-- (the command line's options, Neovim's :Cpf query, an HTTP query string) or as a Lua table is
-- turned here into a query and output settings, so one question gives the same bytes on every
-- front end. Each front end derives what it takes from FIELDS: the command line its options
-- and help, cpf serve its parameters, Neovim its completion. Errors come back as values:
-- nil, message, kind (cpf.errors), "usage" when the request is wrong, "data" when the data
-- cannot answer it; never as a raise.
local cpf = require "cpf"
local schema = require "cpf.schema"
local query = require "cpf.query"
local errors = require "cpf.errors"
local transform = require "cpf.transform"
local rollup = require "cpf.query.rollup"
local grammar = require "cpf.request.grammar"
local complete = require "cpf.request.complete"
local words = require "cpf.request.words"
local output = require "cpf.request.output"
local suggest = require "cpf.suggest"

local request = {}
request.read_args = words.read_args -- the command line's words and the help of fields
request.help = words.help

local unpack = table.unpack or unpack

local usage = errors.usage
local protect = errors.protect

local texts, split_list, split_rename = grammar.texts, grammar.split_list, grammar.split_rename
local parse_where, where_condition, measure_agg = grammar.parse_where, grammar.where_condition, grammar.measure_agg
local agg_columns = grammar.agg_columns
local parse_over, parse_rank = grammar.parse_over, grammar.parse_rank
local whole_number = grammar.whole_number
--- A whole number >= 0 from a number or its text, else nil (the command line's options use it).
request.whole_number = whole_number
request.split_join = grammar.split_join
request.measure_forms = grammar.measure_forms

-- ---------------------------------------------------------------- --change, --cumsum, --rank, --join

-- A join entry: {ref = a dataset or result, on = column} as it is, or the text REF:COLUMN with
-- REF resolved by the front end's settings.reference(ref, text) -> dataset, or nil, message, kind.
local function parse_join(entry, i, settings)
  if type(entry) == "string" then
    local ref, column = request.split_join(entry)
    if not ref then usage(column) end
    if not settings.reference then
      usage(("join '%s': a text join needs the front end's references; in Lua give {ref = a dataset or result, "
        .. "on = column}"):format(entry))
    end
    local on = grammar.join_on(column)
    if not on then usage(("--join '%s': expected FILE:COLUMN or FILE:COLUMN=REFCOLUMN"):format(entry)) end
    local found, err, kind = settings.reference(ref, entry)
    if not found then errors.raise(kind or "data", err) end
    return { ref = found, on = on, text = entry }
  end
  if type(entry) ~= "table" or entry.ref == nil or (type(entry.on) ~= "string" and type(entry.on) ~= "table") then
    usage(("join: entry %d must be {ref = a dataset or result, on = column}"):format(i))
  end
  return entry
end

--- The reference of --join FILE:COLUMN on the command line and in Neovim: the file loaded (a
--- CSV) or opened (a snapshot); nil, message, kind on failure.
function request.file_reference(path, text)
  local ref, err, kind
  if cpf.is_snapshot(path) then ref, err, kind = cpf.open(path) else ref, err, kind = cpf.load(path) end
  if not ref then return nil, ("--join '%s': %s"):format(text or path, err), kind or "data" end
  return ref
end

-- ---------------------------------------------------------------- the table of fields

-- The funders' measures in --measure's help, from the schema's list of funders.
local FUNDER_HELP
do
  local line = "  part_F share_F dossiers_F  (F: "
  local lines = {}
  for _, f in ipairs(schema.funders) do
    if #line + #f + 1 > 70 then lines[#lines + 1] = (line:gsub(" $", "")) line = "  " end
    line = line .. f .. " "
  end
  lines[#lines + 1] = (line:gsub(" $", ")   — the CPF measures"))
  FUNDER_HELP = table.concat(lines, "\n")
end

-- Every field a request or a load may have, in the order of `cpf query --help`. Each entry:
--   name      the field's name: the Lua table's key, the option --name, the HTTP parameter
--   class     "request" (what to compute and how to show it: the command line, HTTP, Neovim
--             and Lua), "load" (how to read a file: the command line and Lua, never HTTP: a
--             request never names a file or how to read it) or "cli" (the command line's own)
--   shape     "flag" (no value), "one" (one value; on the command line the last one given),
--             "list" (comma-separated; repeated options add up on the command line, one
--             parameter over HTTP) or "repeat" (each value an item; repeatable everywhere)
--   arg       the value's placeholder in the help; short: a one-letter alias (-o)
--   complete  what Neovim completes for the value: "column" (a column or virtual key),
--             "keys" (a comma list of them), "sort" (signed result columns), "measures" (the
--             CPF measures and aggregate forms), "measure_over" (MEASURE:PERIOD), "rank"
--             (MEASURE:KEYS), "result" (a result column), "format", "locale", "file",
--             "on_error", "encoding"
--   help      the help text, its first line beside the option
--   example   a value that works on any CPF file (the specs send each field with it)
--   lua_only  a Lua value (a table, a function) that no text front end takes
--   output    an output setting (cpf describe takes these too)
--   pattern   its values may hold a ~ Lua pattern (cpf serve bounds them)
--   tag       a load field that changes what is loaded: part of a cached snapshot's tag
--   help_section "data" for a command-line field listed with the data options
local FIELDS = {
  { name = "where", class = "request", shape = "repeat", arg = "COND", complete = "column", pattern = true,
    example = "annee>=2021", help = [[
keep the rows where COND holds; several --where must all hold.
COND is COLUMN OP VALUE, OP one of:
  =   equal: col=v; one of: col=a|b|c; missing: col=
  !=  not equal / none of: col!=a|b; not missing: col!=
      (keeps the rows where col is missing; col!=a| drops them)
  >  >=  <  <=   compare: nb_dossiers>=10, date_validation>=2023-06
  ^=  starts with: statut_dossier^=Clos (a|b: any of the prefixes)
  ~   matches a Lua pattern: code_rncp~^3
COLUMN is a column name or header, or annee, semestre, trimestre, mois,
mois_de_l_annee (periods of date validation) or famille (status family:
validated, in_training, left_training, completed, cancelled). VALUE is a
number for numeric columns, annee and mois_de_l_annee; semestre takes
2024-S1, trimestre 2024-T2; a month column takes 2023, 2023-S1, 2023-T2,
2023-06 or 2023-06-01. '\|' is a literal '|'; spaces around COLUMN and
VALUE are ignored.]] },
  { name = "by", class = "request", shape = "list", arg = "KEYS", complete = "keys", example = "annee", help = [[
grouping keys, comma-separated: columns, annee, semestre, trimestre, mois,
mois_de_l_annee, famille (none: one row for the whole selection); NAME=KEY names the result
column, e.g. 'Région=region_lieu_formation']] },
  { name = "measure", class = "request", shape = "list", arg = "LIST", complete = "measures",
    example = "dossiers,prix_moyen", help = [[
comma-separated, in this order (default: dossiers,montant):
  dossiers montant prix_moyen duree_moyenne taux_annulation lignes
]] .. FUNDER_HELP .. "\n" .. [[
  count                      rows
  count:COL                  rows where COL has a value
  sum:COL mean:COL min:COL max:COL median:COL distinct:COL
  quantile:COL:P             P from 0 to 1
  ratio:A:B                  sum of A / sum of B
  wmean:X:W                  sum of X*W / sum of W
  share:M                    M (a measure or sum:COL) as a share of its total
NAME=SPEC names the result column, any text before the first '='
(default: the measure name, or FN_COL such as sum_montant_engage,
ratio_A_B, quantile_COL_P): "Taux d'annulation=taux_annulation"]] },
  { name = "sort", class = "request", shape = "list", arg = "COLS", complete = "sort", example = "-dossiers",
    help = [[
result columns, comma-separated, '-' before a name for descending
(default: by the keys)]] },
  { name = "limit", class = "request", shape = "one", arg = "N", example = "5",
    help = "keep the first N rows (after --sort)" },
  { name = "per", class = "request", shape = "list", arg = "KEYS", complete = "keys", example = "annee", help = [[
with --limit: the first N rows of each group of rows sharing these
result columns, e.g. --sort region_lieu_formation,-montant --limit 3
--per region_lieu_formation]] },
  { name = "having", class = "request", shape = "repeat", arg = "COND", complete = "result", pattern = true,
    example = "dossiers>=1", help = [[
keep the result rows where COND holds, on result columns (measures by
their result name): --having 'dossiers>=100'; the grammar of --where]] },
  { name = "join", class = "request", shape = "repeat", arg = "FILE:COL", complete = "file", help = [[
add the columns of a reference file (CSV or snapshot) whose COL matches
the result's COL (every result row kept; values compared as stored);
FILE:COL=REFCOL when the reference names it REFCOL; over HTTP,
NAME:COL with a reference the server declares]] },
  { name = "with", class = "request", shape = "repeat", arg = "NAME=EXPR", complete = "result",
    example = "par_dossier=montant/dossiers", help = [[
add the column NAME (any text before the first '='; NAME:KIND= for a kind:
count, money, rate, number) computed on each row from result columns,
numbers, + - * / and parentheses (a division by zero: no value):
--with 'eur_hab:money=montant/population']] },
  { name = "change", class = "request", shape = "repeat", arg = "COL:PERIOD[:LAG]", complete = "measure_over",
    example = "dossiers:annee", help = [[
add COL_prec, COL_evol and COL_evol_pct: the value LAG periods before
(default 1; montant:mois:12 is the same month a year before) within the
other --by keys, counted on the calendar (an absent period's value is
missing), the difference, the relative change]] },
  { name = "cumsum", class = "request", shape = "repeat", arg = "COL:PERIOD", complete = "measure_over",
    example = "dossiers:annee",
    help = "add COL_cumul: the running total over PERIOD within the other keys" },
  { name = "rolling", class = "request", shape = "repeat", arg = "COL:PERIOD:N", complete = "measure_over",
    example = "dossiers:annee:2", help = [[
add COL_glissant_N: COL over the N periods ending at each row's, within
the other keys, on the calendar (an absent period adds nothing; no value
before a full window): a sum over the window, a price or a rate
recomputed from its sums (Σ montant / Σ dossiers), a median refused]] },
  { name = "share", class = "request", shape = "repeat", arg = "COL[:KEYS]", complete = "rank",
    example = "dossiers:annee", help = [[
add COL_part: each row's COL over the sum of its group's, the rows
sharing KEYS (the whole result without); COL must add up]] },
  { name = "rank", class = "request", shape = "repeat", arg = "COL[:KEYS]", complete = "rank", example = "dossiers",
    help = "add COL_rang: 1 for the largest, ties sharing (within KEYS)" },
  { name = "others", class = "request", shape = "flag", example = "true", help = [[
with --limit: fold the groups left out into one "Autres" row (one per
group with --per), every measure computed from their rows]] },
  { name = "totals", class = "request", shape = "flag", example = "true", help = [[
add a subtotal row after each group of the first key (two keys or
more) and a total row last, over every row the conditions keep, every
measure computed from those rows (SQL's ROLLUP; a price is Σ montant /
Σ dossiers, never a sum of prices)]] },
  { name = "format", class = "request", shape = "one", arg = "FORMAT", complete = "format", output = true,
    example = "csv", help = [[
csv, csv-fr, tsv, json, jsonl, markdown, table (the default, also when
piped; json over HTTP), html, svg, or one registered by a --plugin]] },
  { name = "bar", class = "request", shape = "one", arg = "COL", complete = "result", output = true,
    help = "table format: a bar column scaled on COL" },
  { name = "title", class = "request", shape = "one", arg = "TEXT", output = true,
    help = "html and svg formats: the title" },
  { name = "locale", class = "request", shape = "one", arg = "L", complete = "locale", output = true,
    example = "fr", help = [[
table, markdown, html and svg: fr (1 234,5; amounts 12,50 €; rates 35,2 %;
a missing key 'Non renseigné'), en (1,234.5; €12.50; 35.2%) or C (the
numbers as they are). Default: fr when LC_ALL, LC_NUMERIC or LANG is French,
else C (over HTTP: C). The other formats never change.]] },
  { name = "opt", class = "request", shape = "repeat", arg = "KEY=VALUE", output = true, example = "decimals=1",
    help = [[
any option of the format (repeatable): --opt thousands=' ', --opt
chart.y=montant; true/false and numbers are converted]] },
  { name = "opts", class = "request", shape = "one", lua_only = true, output = true,
    help = "the format's options as a Lua table (merged under --opt)" },
  { name = "output", class = "cli", shape = "one", arg = "OUT", short = "o",
    help = "write to the file OUT (atomically) instead of stdout" },
  { name = "plugin", class = "cli", shape = "repeat", arg = "FILE", help = [[
run a Lua file first, with cpf as its argument (local cpf = ...), for
example to register a format (repeatable)]] },
  { name = "sep", class = "load", shape = "one", arg = "C", tag = true,
    help = "field separator (default: detected from the header line)" },
  { name = "decimal", class = "load", shape = "one", arg = "C", tag = true,
    help = "decimal mark, '.' or ',' (default: either, '.' when the separator is ',')" },
  { name = "thousands", class = "load", shape = "one", arg = "C", tag = true,
    help = [[thousands separator: ' ', '.', ',', "'" or none (default: inferred)]] },
  { name = "encoding", class = "load", shape = "one", arg = "ENC", tag = true, complete = "encoding",
    help = [[the file's text: utf-8 (the default, checked), cp1252 (Windows-1252, what
Excel writes in France) or latin1]] },
  { name = "on_error", class = "load", shape = "one", arg = "WHAT", tag = true, complete = "on_error",
    help = [[
fail (the default: a malformed record stops the load) or skip (set it aside
and go on; ds:rejects() lists them, cpf describe counts them)]] },
  { name = "max_rejects", class = "load", shape = "one", arg = "N", tag = true,
    help = "with --on-error skip, the records set aside at most (default 1000)" },
  { name = "threads", class = "load", shape = "one", arg = "N",
    help = "load on N threads, 1 to 64 (default: one per core)" },
  { name = "cache", class = "load", shape = "flag", help = [[
reuse DATA.cpfsnap while the CSV is unchanged, else write it (loads every
column)]] },
  { name = "types", class = "load", lua_only = true, tag = true, help = "{column = type} overrides" },
  { name = "parser", class = "load", lua_only = true, tag = true, help = '"auto" or "libcsv"' },
  { name = "columns", class = "load", lua_only = true, tag = true, help = "the columns to load (names)" },
  { name = "progress", class = "load", lua_only = true, help = "a function, or true for a line on stderr" },
  { name = "quiet", class = "cli", shape = "flag", short = "q", help_section = "data",
    help = "no progress line (shown on a terminal when a load takes over a second)" },
  -- cpf fetch DIR, cpf.fetch{dir = DIR, ...} (with the load's threads and a progress function)
  { name = "dir", class = "fetch", lua_only = true, help = "the history folder (cpf fetch's DIR)" },
  { name = "url", class = "fetch", shape = "one", arg = "BASE",
    help = "the portal's address (default: the publisher's)" },
  { name = "retries", class = "fetch", shape = "one", arg = "N",
    help = "attempts after a cut transfer, a 429 or a 5xx" },
  { name = "keep", class = "fetch", shape = "one", arg = "N", help = "keep the newest N extractions, delete the rest" },
  -- cpf cohorts, cpf.cohorts(ds, {...})
  { name = "recent_months", class = "history", shape = "one", arg = "N",
    help = "a cohort is recent while younger than N months at the extraction (12)" },
  { name = "backoff", class = "fetch", lua_only = true, help = "seconds before the first retry, doubled each time" },
  { name = "max_wait", class = "fetch", lua_only = true, help = "the longest Retry-After waited out, seconds" },
}
request.fields = FIELDS

local FIELD = {}
for _, f in ipairs(FIELDS) do FIELD[f.name] = f end
request.field = FIELD

-- The front ends each class belongs to.
local FRONTS = { request = { cli = true, http = true, nvim = true, lua = true }, load = { cli = true, lua = true },
                 cli = { cli = true }, fetch = { cli = true, nvim = true, lua = true },
                 history = { cli = true, lua = true } }

--- Whether a field is taken by a front end: "cli", "http", "nvim" or "lua".
function request.takes(front, field)
  local f = field
  if type(field) ~= "table" then f = FIELD[field] end
  if not f or not FRONTS[f.class][front] then return false end
  if f.lua_only then return front == "lua" end
  return true
end

--- The fields a front end takes, in the table's order (optionally of one class only).
function request.fields_of(front, class)
  local out = {}
  for _, f in ipairs(FIELDS) do
    if request.takes(front, f) and (class == nil or f.class == class) then out[#out + 1] = f end
  end
  return out
end

--- The names of the load options that change what is loaded (a cached snapshot's tag), in
--- the table's order.
function request.load_tag_fields()
  local out = {}
  for _, f in ipairs(FIELDS) do if f.class == "load" and f.tag then out[#out + 1] = f.name end end
  return out
end

-- ---------------------------------------------------------------- each field's parser

-- A request field's parser fills the request from the field's value: `values` is the value as
-- its shape reads it (a list of texts for list and repeat; the value itself for one), `raw` the
-- value as given, `fields` the whole request, `settings` the front end's (parse_fields).
local function no_parse() end

FIELD.where.parse = function(req, values)
  for i, text in ipairs(values) do req.wheres[i] = parse_where(text) end
end

FIELD.by.parse = function(req, values)
  for _, text in ipairs(values) do
    local name, key = split_rename(text, "--by")
    req.keys[#req.keys + 1] = { name = name, column = key, text = text }
  end
end

FIELD.measure.parse = function(req, values, raw)
  if raw == nil then values = { "dossiers", "montant" } end
  for _, text in ipairs(values) do
    local name, spec = split_rename(text, "--measure")
    local agg, default = measure_agg(spec, text)
    req.measures[#req.measures + 1] = { name = name or default, agg = agg, text = text }
  end
  if #req.measures == 0 then usage("--measure: no measure given") end
end

FIELD.sort.parse = function(req, values) req.sorts = values end

FIELD.limit.parse = function(req, _, raw)
  if raw == nil then return end
  req.limit = whole_number(raw)
  if not req.limit or (type(raw) ~= "string" and type(raw) ~= "number") then
    usage(("--limit must be a whole number, got '%s'"):format(tostring(raw)))
  end
end

FIELD.per.parse = function(req, values, _, fields)
  if #values == 0 then return end
  if fields.limit == nil then usage("--per needs --limit N (the rows kept in each group)") end
  req.per = values
end

FIELD.having.parse = function(req, values)
  for i, text in ipairs(values) do req.havings[i] = parse_where(text, "--having") end
end

FIELD.join.items = "any" -- {ref =, on =} tables from Lua, REF:COLUMN texts from the front ends
FIELD.join.parse = function(req, values, _, _, settings)
  for i, entry in ipairs(values) do req.joins[i] = parse_join(entry, i, settings) end
end

FIELD.with.parse = function(req, values)
  for i, text in ipairs(values) do req.withs[i] = grammar.parse_with(text) end
end

FIELD.change.parse = function(req, values)
  for i, text in ipairs(values) do req.changes[i] = parse_over(text, "--change") end
end

FIELD.cumsum.parse = function(req, values)
  for i, text in ipairs(values) do req.cumsums[i] = parse_over(text, "--cumsum") end
end

FIELD.rolling.parse = function(req, values)
  for i, text in ipairs(values) do req.rollings[i] = parse_over(text, "--rolling") end
end

FIELD.share.parse = function(req, values)
  for i, text in ipairs(values) do req.shares[i] = parse_rank(text, "--share") end
end

-- A flag's value: true from the command line and Neovim, true/false (or 1/0) as text over HTTP.
local function flag_value(raw, option)
  if raw == nil or raw == false or raw == "false" or raw == "0" then return false end
  if raw == true or raw == "true" or raw == "1" then return true end
  usage(("%s takes no value but true or false, got '%s'"):format(option, tostring(raw)))
end

FIELD.others.parse = function(req, _, raw, fields)
  req.others = flag_value(raw, "--others")
  if req.others and fields.limit == nil then usage("--others needs --limit N (the rows kept before Autres)") end
end

FIELD.totals.parse = function(req, _, raw) req.totals = flag_value(raw, "--totals") end

FIELD.rank.parse = function(req, values)
  for i, text in ipairs(values) do req.ranks[i] = parse_rank(text) end
end

-- the output settings are read together, once the others are (output.parse)
for _, f in ipairs(FIELDS) do if f.output then f.parse = no_parse end end

-- A load field's parser reads the command line's text as cpf.load's option.
local function one_character(name)
  return function(v)
    if v == "\\t" or v == "tab" then v = "\t" end
    if #v ~= 1 then usage(("--%s must be one character, got '%s'"):format(name, v)) end
    return v
  end
end
FIELD.sep.parse_text = one_character("sep")
FIELD.decimal.parse_text = function(v)
  v = one_character("decimal")(v)
  if v ~= "." and v ~= "," then usage("--decimal must be '.' or ','") end
  return v
end
FIELD.thousands.parse_text = function(v)
  if v ~= " " and v ~= "." and v ~= "," and v ~= "'" and v ~= "none" then
    usage(("--thousands must be ' ', '.', ',', \"'\" or none, got '%s'"):format(v))
  end
  return v
end
FIELD.encoding.parse_text = function(v)
  local known = { ["utf-8"] = "utf-8", utf8 = "utf-8", cp1252 = "cp1252", ["windows-1252"] = "cp1252",
                  latin1 = "latin1", ["iso-8859-1"] = "latin1" }
  local e = known[v:lower()]
  if not e then usage(("--encoding must be utf-8, cp1252 or latin1, got '%s'"):format(v)) end
  return e
end
FIELD.on_error.parse_text = function(v)
  if v ~= "fail" and v ~= "skip" then usage(("--on-error must be fail or skip, got '%s'"):format(v)) end
  return v
end
FIELD.max_rejects.parse_text = function(v)
  local n = whole_number(v)
  if not n then usage(("--max-rejects must be a whole number, got '%s'"):format(v)) end
  return n
end
FIELD.threads.parse_text = function(v)
  local n = whole_number(v)
  if not n or n < 1 or n > 64 then usage("--threads must be a whole number from 1 to 64") end
  return n
end
FIELD.cache.parse_text = function() return true end

-- A field's value as its shape reads it.
local function values_of(f, v)
  if f.shape == "one" or f.shape == "flag" then return v end
  if f.items == "any" then
    if v == nil then return {} end
    if type(v) ~= "table" then return { v } end
    return v
  end
  local list = texts(v, f.name)
  if f.shape == "list" then return split_list(list) end
  return list
end

-- ---------------------------------------------------------------- requests

local Request = {}
Request.__index = Request

-- settings: what the front end adds — format (its default format), locale (its default
-- locale), reference (function(ref, text) -> the dataset of join REF:COLUMN, or nil, message).
local function parse_fields(fields, settings)
  for k in pairs(fields) do
    if not request.takes("lua", k) or FIELD[k].class ~= "request" then
      usage(("request: unknown field '%s'"):format(tostring(k)))
    end
  end
  local req = setmetatable({ wheres = {}, keys = {}, measures = {}, sorts = {}, havings = {}, changes = {},
                             cumsums = {}, rollings = {}, shares = {}, ranks = {}, joins = {}, withs = {} },
                           Request)
  for _, f in ipairs(FIELDS) do
    if f.class == "request" then f.parse(req, values_of(f, fields[f.name]), fields[f.name], fields, settings) end
  end
  req.output = output.parse(fields, settings)
  -- the columns the request reads, and which option asked for each (for messages)
  req.columns, req.origin = {}, {}
  local function need(name, from)
    if not req.origin[name] then
      req.columns[#req.columns + 1] = name
      req.origin[name] = from
    end
  end
  for _, w in ipairs(req.wheres) do need(w.column, ("--where '%s'"):format(w.text)) end
  for _, k in ipairs(req.keys) do need(k.column, "--by " .. k.text) end
  for _, m in ipairs(req.measures) do
    for _, c in ipairs(agg_columns(m.agg, {})) do need(c, "--measure " .. m.text) end
  end
  return req
end

--- Parses a request: a table of request fields (request.fields_of("lua", "request"): where =
--- {"COLUMN OP VALUE", ...}, by = "KEYS", measure = "MEASURES", sort = "COLS", limit = "N",
--- format =, opt = {"KEY=VALUE", ...}, opts = {...}, bar =, title =, locale =, having =, per
--- =, change = {"COL:PERIOD"}, cumsum =, rank = {"COL[:KEY,...]"}, join = {{ref = dataset or
--- result, on = column}, or "REF:COLUMN" with settings.reference}), each text field a string or
--- a list of strings with the grammar of the command line's options. settings (optional):
--- format and locale (the front end's defaults), reference (see parse_fields). Returns the
--- request, or nil, message, kind. req.columns: the names of the columns it reads (as
--- written; virtual keys included).
function request.parse(fields, settings)
  if type(fields) ~= "table" then return nil, "request: table of fields expected", "usage" end
  return protect(parse_fields, fields, settings or {})
end

--- Output settings alone: {format =, opt = {"KEY=VALUE", ...}, opts = {...}, bar =, title =,
--- locale =} -> output, or nil, message, "usage". output.format, output.options.
function request.output(fields, settings)
  if type(fields) ~= "table" then return nil, "request: table of fields expected", "usage" end
  for k in pairs(fields) do
    if not (FIELD[k] and FIELD[k].output) then
      return nil, ("output: unknown field '%s'"):format(tostring(k)), "usage"
    end
  end
  return protect(output.parse, fields, settings or {})
end

--- The request fields of a table of options (what request.read_args gives: request, load and
--- command-line fields together), parsed as request.parse does.
function request.from_options(opts, settings)
  local fields = {}
  for _, f in ipairs(FIELDS) do
    if f.class == "request" and opts[f.name] ~= nil then fields[f.name] = opts[f.name] end
  end
  return request.parse(fields, settings)
end

--- cpf.load's options from the command line's texts of the load fields (request.read_args):
--- {sep =, decimal =, threads =, cache =}, or nil, message, "usage".
function request.load_options(opts)
  return protect(function()
    local lo = {}
    for _, f in ipairs(request.fields_of("cli", "load")) do
      if opts[f.name] ~= nil then lo[f.name] = f.parse_text(opts[f.name]) end
    end
    return lo
  end)
end

-- The names a request may use for columns (names, labels, the virtual keys), for suggestions.
local function column_names(columns)
  local names = {}
  for _, c in ipairs(columns) do
    names[#names + 1] = c.name
    if c.label and c.label ~= c.name then names[#names + 1] = c.label end
  end
  for name in pairs(schema.virtual_keys) do names[#names + 1] = name end
  table.sort(names)
  return names
end

-- A header read as one column that another separator would split: what to give.
local function other_separator(columns)
  if #columns ~= 1 or not columns[1].label then return "" end
  for _, sep in ipairs { ";", ",", "\t", "|" } do
    if columns[1].label:find(sep, 1, true) then
      return ("; the header is one column, which '%s' splits: give --sep '%s'"):format(sep == "\t" and "\\t" or sep,
        sep == "\t" and "\\t" or sep)
    end
  end
  return ""
end

--- Whether the columns (ds:columns() or cpf.header()) have every column the request reads:
--- true, or nil, "[where: ]unknown column 'x' (--where 'x=1')", "data".
function Request:check(columns, where)
  for _, name in ipairs(self.columns) do
    if not schema.find_column(columns, name) then
      return nil, ("%sunknown column '%s' (%s)%s"):format(where and where .. ": " or "", name, self.origin[name],
        suggest.hint(name, column_names(columns)) .. other_separator(columns)), "data"
    end
  end
  return true
end

local function build_query(self, ds)
  local columns = ds:columns()
  local q = ds:query()
  for _, w in ipairs(self.wheres) do
    local c = schema.find_column(columns, w.column)
    local ctype = c and (c.virtual or c.type)
    q = q:where(c and not c.virtual and c.name or w.column, where_condition(w, ctype))
  end
  if #self.keys > 0 then
    local keys = {}
    for i, k in ipairs(self.keys) do
      keys[i] = k.name and query.named_key(k.column, k.name) or k.column
    end
    q = q:group_by(unpack(keys))
  end
  local spec = {}
  for i, m in ipairs(self.measures) do spec[i] = { m.name, m.agg } end
  return q:agg(spec)
end

--- The query the request asks of a dataset (without its sort and limit, which apply to the
--- result): query, or nil, message, kind.
function Request:query(ds)
  return protect(build_query, self, ds)
end

-- The type a having condition's value is read as: that of the result column's values.
local function result_type(res, column)
  for _, row in ipairs(res) do
    local v = row[column]
    if v ~= nil then return type(v) end
  end
  return "string"
end

-- What the request does to the query's result, in this order: --share (over every group),
-- --having, --join, --with, --change, --cumsum, --rolling, --rank (so that --sort and --limit
-- may name the columns they add).
local function derive(self, res)
  for _, s in ipairs(self.shares) do res = transform.share(res, s.column, { within = s.by }) end
  for _, w in ipairs(self.havings) do
    local has = false
    for _, c in ipairs(res:columns()) do if c == w.column then has = true end end
    if not has then
      usage(("--having '%s': no column '%s' in the result (%s)"):format(w.text, w.column,
        table.concat(res:columns(), ", ")))
    end
    res = transform.where(res, { [w.column] = where_condition(w, result_type(res, w.column)) }, "having")
  end
  for _, j in ipairs(self.joins) do res = transform.join(res, j.ref, j.on) end
  for _, w in ipairs(self.withs) do
    local has = {}
    for _, c in ipairs(res:columns()) do has[c] = true end
    for _, c in ipairs(w.columns) do
      if not has[c] then
        usage(("--with '%s': no column '%s' in the result (%s)"):format(w.text, c, table.concat(res:columns(), ", ")))
      end
    end
    res = transform.with(res, { { w.name, w.fn, w.kind } })
  end
  for _, c in ipairs(self.changes) do res = transform.change(res, c.column, { over = c.over, lag = c.n }) end
  for _, c in ipairs(self.cumsums) do res = transform.cumsum(res, c.column, { over = c.over }) end
  for _, c in ipairs(self.rollings) do res = transform.rolling(res, c.column, c.n, { over = c.over }) end
  for _, r in ipairs(self.ranks) do res = transform.rank(res, r.column, { by = r.by }) end
  return res
end

-- A result's notes of --where values that match nothing (Request:notes).
local UNMATCHED = setmetatable({}, { __mode = "k" })

-- The --where values (= and !=) a text column has no row of — a typo, a missing accent: a note
-- each, with the closest value it has; the answer itself is the same.
local function unmatched_values(self, ds)
  local notes, columns = {}, ds:columns()
  for _, w in ipairs(self.wheres) do
    local c = schema.find_column(columns, w.column)
    if c and not c.virtual and c.type == "string" and (w.op == "=" or w.op == "!=") then
      local values, has = ds:dictionary(c.name), {}
      for _, v in ipairs(values) do has[v] = true end
      for _, v in ipairs(grammar.split_values(w.value)) do
        if v ~= "" and not has[v] then
          notes[#notes + 1] = ("note: --where '%s': no row has %s '%s'%s"):format(w.text, c.name, v,
            #values <= 50000 and suggest.hint(v, values) or "")
        end
      end
    end
  end
  return notes
end

local function run(self, ds)
  local q = build_query(self, ds)
  local res = derive(self, q:run())
  local result_columns = res:columns()
  local sorts = {}
  for i, s in ipairs(self.sorts) do
    local name = s:gsub("^[-+]", "")
    local found = false
    for _, c in ipairs(result_columns) do if c == name then found = true end end
    if not found then
      usage(("--sort: no column '%s' in the result (%s)"):format(name, table.concat(result_columns, ", ")))
    end
    sorts[i] = s:gsub("^%+", "")
  end
  -- collation is part of sorting: what people read in French (the display formats under locale
  -- fr, csv-fr) is ordered French-wise before the limit, so that a table shows the first n of
  -- the order it shows; the machine formats keep byte order
  local out = self.output
  local collation = (out.format == "csv-fr" or out.options.locale == "fr") and "fr" or nil
  if collation and #sorts == 0 then -- the default order, by the keys, French-wise
    for i, k in ipairs(res:keys()) do sorts[i] = k end
  end
  if #sorts > 0 then
    sorts[#sorts + 1] = { collation = collation }
    res = res:sorted(unpack(sorts))
  end
  if self.per then
    res = transform.head_per(res, self.limit, self.per)
  elseif self.limit then
    res = res:head(self.limit)
  end
  -- the rows that stand for several groups: the query run again over the rows they cover
  if self.others then res = rollup.others(q, res, self.per) end
  if self.totals then res = rollup.totals(q, res) end
  UNMATCHED[res] = unmatched_values(self, ds)
  return res
end

--- Runs the request on a dataset: its result, sorted and cut as asked, or nil, message, kind
--- (`where` goes before the message of an unknown column, as in Request:check). opts.checked:
--- the caller checked the dataset's columns already (the header of the file it loaded).
function Request:run(ds, where, opts)
  if not (opts and opts.checked) then
    local ok, why, kind = self:check(ds:columns(), where)
    if not ok then return nil, why, kind end
  end
  return protect(run, self, ds)
end

local PERIODS = { year = true, semester = true, quarter = true, month = true }

--- The columns to load for the request from a file with `columns` (cpf.header's): those it
--- reads, and the extraction's date column when it groups by a period (its last period may be
--- partial: res:partial()).
function Request:load_columns(columns)
  local out = {}
  for i, c in ipairs(self.columns) do out[i] = c end
  local date = schema.source.date_column
  for _, k in ipairs(self.keys) do
    local v = schema.virtual_keys[k.column]
    if v and PERIODS[v.kind] and schema.find_column(columns, date) then
      out[#out + 1] = date
      break
    end
  end
  return out
end

--- What a person should know of a result before reading it: a note for each --where value no
--- row has (with the closest value the column has), and for each period the extraction covers
--- only in part when the request compares periods (--change, --rolling).
function Request:notes(res)
  local notes = {}
  for i, note in ipairs(UNMATCHED[res] or {}) do notes[i] = note end
  if #self.changes == 0 and #self.rollings == 0 then return notes end
  for _, p in ipairs(res.partial and res:partial() or {}) do
    notes[#notes + 1] = ("note: %s %s is partial: the extraction of %s covers part of it, so its changes and "
      .. "windows compare an incomplete period"):format(p.column, tostring(p.value), res:extraction())
  end
  return notes
end

--- The result in the request's format, as text (Output:text).
function Request:text(res) return self.output:text(res) end

--- Writes the result in the request's format to a file handle or a path (Output:write).
function Request:write(res, target) return self.output:write(res, target) end

-- the command line's words and help, the HTTP parameters: request.options_of, data_help,
-- field_list, http_parameters, option_names (cpf.request.words)
words.front_helpers(request)

-- ---------------------------------------------------------------- completion

--- The completions of a field's value typed so far (`lead`), each the whole value: columns
--- (the open dataset's, else the CPF schema's), virtual keys, measures and aggregate forms,
--- formats, locales, as the field's `complete` says. nil for a field that completes files
--- (the editor's own completion) and {} for one that completes nothing.
function request.complete(field, lead, columns)
  local f = field
  if type(field) ~= "table" then f = FIELD[field] end
  if not f then return {} end
  if f.complete == "file" then return nil end
  return complete.value(f.complete, lead, columns)
end

return request

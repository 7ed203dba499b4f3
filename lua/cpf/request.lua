-- cpf.request — the text request language: a question written as text (the command line's
-- --where, --by, --measure, --sort, --limit and output options; Neovim's :Cpf query; HTTP
-- query strings) turned into a query and output settings. Every front end goes through here,
-- so one question gives the same bytes everywhere. Errors come back as values:
-- nil, message, kind, where kind is "usage" (the request is wrong) or "data" (the data cannot
-- answer it: an unknown column, a value of the wrong type), never as a raise.
local schema = require "cpf.schema"
local query = require "cpf.query"
local common = require "cpf.format.common"

local request = {}

local unpack = table.unpack or unpack

-- A request error raised inside this module and turned into nil, message, kind at its edge.
local Failure = {}
local function raise(kind, msg) error(setmetatable({ kind = kind, msg = msg }, Failure), 0) end
local function usage(msg) raise("usage", msg) end

-- Calls fn(...) and returns its results, or nil, message, kind for a request error. An error
-- raised by cpf while it builds or runs the query is the data's answer: kind "data".
local function pack(...) return { n = select("#", ...), ... } end
local function protect(fn, ...)
  local out = pack(pcall(fn, ...))
  if out[1] then return unpack(out, 2, out.n) end
  local e = out[2]
  if getmetatable(e) == Failure then return nil, e.msg, e.kind end
  local derived = require("cpf.transform").message(e) -- a result operation's refusal
  if derived then return nil, derived, "data" end
  -- cpf's own message, without the place in its source that raised it
  return nil, (tostring(e):gsub("^[^\n]-%.lua:%d+: ", "")), "data"
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- A field as a list of texts: nil -> {}, "a" -> {"a"}, {"a", "b"} as it is.
local function texts(v, field)
  if v == nil then return {} end
  if type(v) == "string" then return { v } end
  if type(v) ~= "table" then usage(("%s: text expected, got %s"):format(field, type(v))) end
  for i, x in ipairs(v) do
    if type(x) ~= "string" then usage(("%s: entry %d is a %s, text expected"):format(field, i, type(x))) end
  end
  return v
end

-- "a,b, c" (in each text) -> {"a", "b", "c"}, empty items dropped.
local function split_list(values)
  local out = {}
  for _, v in ipairs(values) do
    for item in (v .. ","):gmatch("(.-),") do
      item = trim(item)
      if item ~= "" then out[#out + 1] = item end
    end
  end
  return out
end

-- "NAME=SPEC" -> name, spec (everything before the first '=' names the result column, any
-- UTF-8 text); "SPEC" -> nil, spec.
local function split_rename(text, option)
  local at = text:find("=", 1, true)
  if not at then return nil, text end
  local name, spec = trim(text:sub(1, at - 1)), trim(text:sub(at + 1))
  if name == "" or spec == "" then
    usage(("%s '%s': expected NAME=%s with a name and a %s"):format(option, text,
      option == "--by" and "KEY" or "SPEC", option == "--by" and "key" or "measure"))
  end
  if common.valid_utf8(name) ~= name then
    usage(("%s '%s': the name is not valid UTF-8"):format(option, text))
  end
  return name, spec
end

--- A whole number >= 0 from a number or its text, else nil (1e9999 is not one). The command
--- line's options use it too.
local function whole_number(v)
  local n = tonumber(v)
  if n and n >= 0 and n == math.floor(n) and n ~= math.huge then return n end
end
request.whole_number = whole_number

-- ---------------------------------------------------------------- --where

local OPS = { ">=", "<=", "!=", "^=", "=", ">", "<", "~" }

-- Splits on '|' (not on '\|').
local function split_values(s)
  local out = {}
  s = s:gsub("\\|", "\0")
  for item in (s .. "|"):gmatch("(.-)|") do out[#out + 1] = trim(item:gsub("%z", "|")) end
  return out
end

local function parse_where(text, option)
  option = option or "--where"
  local at = text:find("[=!<>%^~]")
  local column = at and trim(text:sub(1, at - 1))
  local op
  if at then
    for _, o in ipairs(OPS) do
      if text:sub(at, at + #o - 1) == o then op = o break end
    end
  end
  if not column or column == "" or not op then
    usage(("%s '%s': expected COLUMN OP VALUE, OP one of = != > >= < <= ^= ~"):format(option, text))
  end
  local value = trim(text:sub(at + #op))
  if (op == ">" or op == ">=" or op == "<" or op == "<=" or op == "~" or op == "^=") and value == "" then
    usage(("%s '%s': '%s' needs a value"):format(option, text, op))
  end
  if op == "~" then -- a pattern Lua cannot read is the request's fault, said here
    local ok, err = pcall(string.find, "", value)
    if not ok then usage(("%s '%s': %s"):format(option, text, tostring(err):gsub("^.-:%d+: ", ""))) end
  end
  return { text = text, column = column, op = op, value = value }
end

local NUMERIC = { integer = true, number = true, decimal = true, year = true }

-- The condition of a parsed --where, values converted for the column's type (a virtual key's
-- type is its kind: year, month or family).
local function where_condition(w, ctype)
  local cpf = require "cpf"
  local function convert(v)
    if NUMERIC[ctype] then return tonumber(v) or v end
    return v
  end
  local function one_of(raw)
    if raw == "" then return cpf.is_null() end
    local values, null = {}, false
    for _, v in ipairs(split_values(raw)) do
      if v == "" then null = true else values[#values + 1] = convert(v) end
    end
    local c = #values == 1 and cpf.eq(values[1]) or cpf.one_of(values)
    if null then c = cpf.any { c, cpf.is_null() } end
    return c
  end
  local op, v = w.op, w.value
  if op == "=" then return one_of(v) end
  if op == "!=" then return cpf.not_(one_of(v)) end
  if op == ">" then return cpf.gt(convert(v)) end
  if op == ">=" then return cpf.ge(convert(v)) end
  if op == "<" then return cpf.lt(convert(v)) end
  if op == "<=" then return cpf.le(convert(v)) end
  if op == "~" then return cpf.match(v) end
  local prefixes = {}
  for i, p in ipairs(split_values(v)) do prefixes[i] = cpf.prefix(p) end
  return #prefixes == 1 and prefixes[1] or cpf.any(prefixes)
end

-- ---------------------------------------------------------------- --measure

local ONE_COLUMN = { sum = "sum", mean = "mean", min = "min", max = "max", median = "median",
                     distinct = "distinct", count = "count" }
local TWO_COLUMNS = { ratio = "ratio", wmean = "wmean" }

local MEASURE_GRAMMAR = "a CPF measure, count, FN:COL (sum mean min max median distinct count), "
  .. "quantile:COL:P, ratio:A:B, wmean:X:W or share:M"

-- The refusal of an aggregate that adds up a non-additive column, whichever way it is named.
local function refuse_column(kind, column, text)
  local n = schema.normalize(column)
  local refusal = schema.refusal(kind, schema.aliases[n] or n)
  if refusal then usage(("--measure '%s': %s"):format(text, refusal)) end
end

-- A measure spec -> aggregate and default name.
local function measure_agg(spec, text)
  local cpf = require "cpf"
  local parts = {}
  for p in (spec .. ":"):gmatch("(.-):") do parts[#parts + 1] = trim(p) end
  local fn = parts[1]
  local function bad(why) usage(("--measure '%s': %s"):format(text, why or ("expected " .. MEASURE_GRAMMAR))) end
  for i = 2, #parts do if parts[i] == "" then bad() end end
  if #parts == 1 then
    if fn == "count" then return cpf.count(), "count" end
    if cpf.measures[fn] then return cpf.measures[fn], fn end
    local refusal = schema.measure_refusal(fn)
    if refusal then bad(refusal) end
    bad()
  end
  if fn == "share" then
    local inner, inner_name = measure_agg(table.concat(parts, ":", 2), text)
    return cpf.share(inner), "share_" .. inner_name
  end
  if ONE_COLUMN[fn] and #parts == 2 then
    refuse_column(fn, parts[2], text)
    return cpf[ONE_COLUMN[fn]](parts[2]), fn .. "_" .. schema.normalize(parts[2])
  end
  if fn == "quantile" and #parts == 3 then
    local p = tonumber(parts[3])
    if not p or p < 0 or p > 1 then bad("P must be a number from 0 to 1") end
    return cpf.quantile(parts[2], p), ("quantile_%s_%s"):format(schema.normalize(parts[2]), parts[3])
  end
  if TWO_COLUMNS[fn] and #parts == 3 then
    refuse_column(fn, parts[2], text)
    refuse_column(fn, parts[3], text)
    return cpf[TWO_COLUMNS[fn]](parts[2], parts[3]),
      ("%s_%s_%s"):format(fn, schema.normalize(parts[2]), schema.normalize(parts[3]))
  end
  bad()
end

-- The columns an aggregate reads (names as written), in a stable order.
local function agg_columns(a, out)
  if type(a) ~= "table" then return out end
  if a.column then out[#out + 1] = a.column end
  if a.column2 then out[#out + 1] = a.column2 end
  if a.spec and a.spec.column then out[#out + 1] = a.spec.column end
  if a.inner then agg_columns(a.inner, out) end
  for _, p in ipairs(a.parts or {}) do agg_columns(p, out) end
  if type(a.where) == "table" then
    local names = {}
    for k in pairs(a.where) do if type(k) == "string" then names[#names + 1] = k end end
    table.sort(names)
    for _, k in ipairs(names) do out[#out + 1] = k end
  end
  return out
end

-- ---------------------------------------------------------------- output settings

local BUILTIN_FORMATS = { csv = true, ["csv-fr"] = true, tsv = true, json = true, jsonl = true,
                          markdown = true, table = true, html = true, svg = true }

local Output = {}
Output.__index = Output

-- "KEY=VALUE" texts -> nested option table (a.b=1 -> {a = {b = 1}}); true/false and numbers
-- converted.
local function text_options(list, fo)
  for _, kv in ipairs(list) do
    local key, value = kv:match("^([%w_%.]+)=(.*)$")
    if not key then usage(("--opt '%s': expected KEY=VALUE"):format(kv)) end
    if value == "true" then value = true
    elseif value == "false" then value = false
    else value = tonumber(value) or value end
    local t, path = fo, {}
    for k in key:gmatch("[^%.]+") do path[#path + 1] = k end
    for i = 1, #path - 1 do
      t[path[i]] = type(t[path[i]]) == "table" and t[path[i]] or {}
      t = t[path[i]]
    end
    t[path[#path]] = value
  end
  return fo
end

local DISPLAY_FORMATS = { table = true, markdown = true, html = true, svg = true }

local function parse_output(fields)
  local fmt = fields.format or "table"
  if type(fmt) ~= "string" then usage(("format: text expected, got %s"):format(type(fmt))) end
  local fo = {}
  if fields.opts ~= nil then
    if type(fields.opts) ~= "table" then usage(("opts: table expected, got %s"):format(type(fields.opts))) end
    for k, v in pairs(fields.opts) do fo[k] = v end
  end
  text_options(texts(fields.opt, "opt"), fo)
  if fields.bar ~= nil then
    if fmt ~= "table" then usage("--bar applies to the table format") end
    fo.bar = fields.bar
  end
  if fields.title ~= nil then
    if fmt ~= "html" and fmt ~= "svg" then usage("--title applies to the html and svg formats") end
    fo.title = fields.title
  end
  if fields.locale ~= nil then
    if common.option.locale(fields.locale) then -- the display formats' own check
      usage(("--locale must be fr, en or C, got '%s'"):format(tostring(fields.locale)))
    end
    -- the formats people read; the machine formats (csv, tsv, json...) never change
    if DISPLAY_FORMATS[fmt] and fo.locale == nil then fo.locale = fields.locale end
  end
  local names = require("cpf").formats.names()
  local known = false
  for _, n in ipairs(names) do if n == fmt then known = true end end
  if not known then usage(("unknown format '%s' (%s)"):format(fmt, table.concat(names, ", "))) end
  return setmetatable({ format = fmt, options = fo }, Output)
end

--- Output settings alone: {format =, opt = {"KEY=VALUE", ...}, opts = {...}, bar =, title =}
--- -> output, or nil, message, "usage". output.format, output.options.
function request.output(fields)
  if type(fields) ~= "table" then return nil, "request: table of fields expected", "usage" end
  return protect(parse_output, fields)
end

-- A format's raise: on its options for a built-in format (usage), else the format's own fault.
local function format_failure(self, msg)
  msg = tostring(msg)
  if BUILTIN_FORMATS[self.format] then return nil, (msg:gsub("^[^:\n]*%.lua:%d+: ", "")), "usage" end
  return nil, msg, "callback"
end

--- The result in the output's format, as text; nil, message, kind on failure.
function Output:text(res)
  local ok, text = pcall(res.format, res, self.format, self.options)
  if not ok then return format_failure(self, text) end
  return text
end

--- Writes the result to a file handle or a path (atomically); true, or nil, message, kind.
function Output:write(res, target)
  local ok, done, err, kind = pcall(res.write, res, target, self.format, self.options)
  if not ok then return format_failure(self, done) end
  if not done then return nil, err, kind or "io" end
  return true
end

-- ---------------------------------------------------------------- requests

local Request = {}
Request.__index = Request

local FIELDS = { where = true, by = true, measure = true, sort = true, limit = true, format = true,
                 opt = true, opts = true, bar = true, title = true, locale = true, having = true,
                 per = true, change = true, cumsum = true, rank = true, join = true }

-- "COL:OVER" (--change, --cumsum) -> column, over.
local function parse_over(text, option)
  local column, over = text:match("^%s*([^:]-)%s*:%s*([^:]-)%s*$")
  if not column or column == "" or over == "" then
    usage(("%s '%s': expected COLUMN:PERIOD, e.g. %s"):format(option, text,
      option == "--change" and "montant:annee" or "dossiers:mois"))
  end
  return { column = column, over = over, text = text }
end

-- "COL" or "COL:KEY,KEY" (--rank) -> column, by.
local function parse_rank(text)
  local column, by = text:match("^%s*([^:]-)%s*:(.*)$")
  column = column or trim(text)
  if column == "" then usage(("--rank '%s': expected COLUMN or COLUMN:KEY,..."):format(text)) end
  local keys = by and split_list { by } or nil
  if by and #keys == 0 then usage(("--rank '%s': expected COLUMN or COLUMN:KEY,..."):format(text)) end
  return { column = column, by = keys, text = text }
end

--- "REF:COLUMN" (--join) -> ref, column: what a front end reads before it resolves REF (a file
--- on the command line, a reference the server declares over HTTP); nil, message if malformed.
function request.split_join(text)
  local ref, column = tostring(text):match("^(.+):([^:]+)$")
  if not ref or trim(column) == "" then
    return nil, ("--join '%s': expected FILE:COLUMN (COLUMN of both the result and the reference)"):format(text)
  end
  return ref, trim(column)
end

local function parse(fields)
  for k in pairs(fields) do
    if not FIELDS[k] then usage(("request: unknown field '%s'"):format(tostring(k))) end
  end
  local req = setmetatable({ wheres = {}, keys = {}, measures = {}, sorts = {} }, Request)
  for i, text in ipairs(texts(fields.where, "where")) do req.wheres[i] = parse_where(text) end
  for _, text in ipairs(split_list(texts(fields.by, "by"))) do
    local name, key = split_rename(text, "--by")
    req.keys[#req.keys + 1] = { name = name, column = key, text = text }
  end
  local measure_texts = fields.measure == nil and { "dossiers,montant" } or texts(fields.measure, "measure")
  for _, text in ipairs(split_list(measure_texts)) do
    local name, spec = split_rename(text, "--measure")
    local agg, default = measure_agg(spec, text)
    req.measures[#req.measures + 1] = { name = name or default, agg = agg, text = text }
  end
  if #req.measures == 0 then usage("--measure: no measure given") end
  req.sorts = split_list(texts(fields.sort, "sort"))
  req.havings = {}
  for i, text in ipairs(texts(fields.having, "having")) do req.havings[i] = parse_where(text, "--having") end
  local per = split_list(texts(fields.per, "per"))
  if #per > 0 then
    if fields.limit == nil then usage("--per needs --limit N (the rows kept in each group)") end
    req.per = per
  end
  req.changes, req.cumsums, req.ranks = {}, {}, {}
  for i, text in ipairs(texts(fields.change, "change")) do req.changes[i] = parse_over(text, "--change") end
  for i, text in ipairs(texts(fields.cumsum, "cumsum")) do req.cumsums[i] = parse_over(text, "--cumsum") end
  for i, text in ipairs(texts(fields.rank, "rank")) do req.ranks[i] = parse_rank(text) end
  -- joins: {ref = a result or dataset, on = column, text =}, the reference resolved by the front end
  req.joins = {}
  if fields.join ~= nil then
    if type(fields.join) ~= "table" then usage("join: a list of {ref =, on =} expected") end
    for i, j in ipairs(fields.join) do
      if type(j) ~= "table" or j.ref == nil or type(j.on) ~= "string" then
        usage(("join: entry %d must be {ref = a dataset or result, on = column}"):format(i))
      end
      req.joins[i] = j
    end
  end
  if fields.limit ~= nil then
    req.limit = whole_number(fields.limit)
    if not req.limit or (type(fields.limit) ~= "string" and type(fields.limit) ~= "number") then
      usage(("--limit must be a whole number, got '%s'"):format(tostring(fields.limit)))
    end
  end
  req.output = parse_output(fields)
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

--- Parses a request: {where = {"COLUMN OP VALUE", ...}, by = "KEYS", measure = "MEASURES",
--- sort = "COLS", limit = "N", format = "FORMAT", opt = {"KEY=VALUE", ...}, opts = {...},
--- bar =, title =, having = {"COLUMN OP VALUE", ...}, per = "KEYS", change = {"COL:PERIOD"},
--- cumsum = {"COL:PERIOD"}, rank = {"COL[:KEY,...]"}, join = {{ref = dataset or result, on =
--- column}}}, each text field a string or a list of strings, with the grammar of the command
--- line's options. Returns the request, or nil, message, "usage". req.columns: the
--- names of the columns it reads (as written; virtual keys included).
function request.parse(fields)
  if type(fields) ~= "table" then return nil, "request: table of fields expected", "usage" end
  return protect(parse, fields)
end

--- Whether the columns (ds:columns() or cpf.header()) have every column the request reads:
--- true, or nil, "[where: ]unknown column 'x' (--where 'x=1')", "data".
function Request:check(columns, where)
  for _, name in ipairs(self.columns) do
    if not schema.find_column(columns, name) then
      return nil, ("%sunknown column '%s' (%s)"):format(where and where .. ": " or "", name, self.origin[name]), "data"
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

-- What the request does to the query's result, in this order: --having, --join, --change,
-- --cumsum, --rank (so that --sort and --limit may name the columns they add).
local function derive(self, res)
  local transform = require "cpf.transform"
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
  for _, c in ipairs(self.changes) do res = transform.change(res, c.column, { over = c.over }) end
  for _, c in ipairs(self.cumsums) do res = transform.cumsum(res, c.column, { over = c.over }) end
  for _, r in ipairs(self.ranks) do res = transform.rank(res, r.column, { by = r.by }) end
  return res
end

local function run(self, ds)
  local res = derive(self, build_query(self, ds):run())
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
  if #sorts > 0 then res = res:sorted(unpack(sorts)) end
  if self.per then
    res = require("cpf.transform").head_per(res, self.limit, self.per)
  elseif self.limit then
    res = res:head(self.limit)
  end
  return res
end

--- Runs the request on a dataset: its result, sorted and cut as asked, or nil, message, kind
--- (`where` goes before the message of an unknown column, as in Request:check).
function Request:run(ds, where)
  local ok, why, kind = self:check(ds:columns(), where)
  if not ok then return nil, why, kind end
  return protect(run, self, ds)
end

--- The result in the request's format, as text (Output:text).
function Request:text(res) return self.output:text(res) end

--- Writes the result in the request's format to a file handle or a path (Output:write).
function Request:write(res, target) return self.output:write(res, target) end

return request

-- cpf.request.grammar — the text of a request's values: conditions (COLUMN OP VALUE), keys and
-- measures with their names (NAME=SPEC), aggregate forms (FN:COL, quantile:COL:P, ratio:A:B,
-- wmean:X:W, share:M), format options (KEY=VALUE), COL:PERIOD, COL[:KEYS] and REF:COLUMN —
-- read into conditions, aggregates and plain tables. A wrong text raises a usage error
-- (cpf.errors) with the command line's message; cpf.request catches it at its edge.
local schema = require "cpf.schema"
local query = require "cpf.query.build"
local common = require "cpf.format.common"
local errors = require "cpf.errors"
local suggest = require "cpf.suggest"

local grammar = {}

local usage = errors.usage

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
grammar.whole_number = whole_number

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
    if not ok then usage(("%s '%s': %s"):format(option, text, errors.strip(err))) end
  end
  return { text = text, column = column, op = op, value = value }
end

local NUMERIC = { integer = true, number = true, decimal = true, year = true }

-- The condition of a parsed --where, values converted for the column's type (a virtual key's
-- type is its kind: year, month or family).
local function where_condition(w, ctype)
  local function convert(v)
    if NUMERIC[ctype] then return tonumber(v) or v end
    return v
  end
  local function one_of(raw)
    if raw == "" then return query.is_null() end
    local values, null = {}, false
    for _, v in ipairs(split_values(raw)) do
      if v == "" then null = true else values[#values + 1] = convert(v) end
    end
    local c = #values == 1 and query.eq(values[1]) or query.one_of(values)
    if null then c = query.any { c, query.is_null() } end
    return c
  end
  local op, v = w.op, w.value
  if op == "=" then return one_of(v) end
  if op == "!=" then return query.not_(one_of(v)) end
  if op == ">" then return query.gt(convert(v)) end
  if op == ">=" then return query.ge(convert(v)) end
  if op == "<" then return query.lt(convert(v)) end
  if op == "<=" then return query.le(convert(v)) end
  if op == "~" then return query.match(v) end
  local prefixes = {}
  for i, p in ipairs(split_values(v)) do prefixes[i] = query.prefix(p) end
  return #prefixes == 1 and prefixes[1] or query.any(prefixes)
end

-- ---------------------------------------------------------------- --measure

-- The aggregate forms a measure spec may take besides the CPF measures' names: FN:COL for one
-- column, FN:A:B for two, quantile:COL:P, share:M. Completion offers exactly these.
local ONE_COLUMN = { "sum", "mean", "min", "max", "median", "distinct", "count" }
local TWO_COLUMNS = { "ratio", "wmean" }
local ONE_COLUMN_SET, TWO_COLUMNS_SET = {}, {}
for _, f in ipairs(ONE_COLUMN) do ONE_COLUMN_SET[f] = true end
for _, f in ipairs(TWO_COLUMNS) do TWO_COLUMNS_SET[f] = true end

local MEASURE_GRAMMAR = "a CPF measure, count, FN:COL (sum mean min max median distinct count), "
  .. "quantile:COL:P, ratio:A:B, wmean:X:W or share:M"

--- The aggregate forms of --measure, as completion offers them: count, sum:, ..., share:.
function grammar.measure_forms()
  local forms = { "count" }
  for _, f in ipairs(ONE_COLUMN) do forms[#forms + 1] = f .. ":" end
  forms[#forms + 1] = "quantile:"
  for _, f in ipairs(TWO_COLUMNS) do forms[#forms + 1] = f .. ":" end
  forms[#forms + 1] = "share:"
  return forms
end

-- The refusal of an aggregate that adds up a non-additive column, whichever way it is named.
local function refuse_column(kind, column, text)
  local n = schema.normalize(column)
  local refusal = schema.refusal(kind, schema.aliases[n] or n)
  if refusal then usage(("--measure '%s': %s"):format(text, refusal)) end
end

-- A measure spec -> aggregate and default name.
local function measure_agg(spec, text)
  local parts = {}
  for p in (spec .. ":"):gmatch("(.-):") do parts[#parts + 1] = trim(p) end
  local fn = parts[1]
  local function bad(why) usage(("--measure '%s': %s"):format(text, why or ("expected " .. MEASURE_GRAMMAR))) end
  for i = 2, #parts do if parts[i] == "" then bad() end end
  if #parts == 1 then
    if fn == "count" then return query.count(), "count" end
    if query.measures[fn] then return query.measures[fn], fn end
    local refusal = schema.measure_refusal(fn)
    if refusal then bad(refusal) end
    local names = { "count" }
    for name in pairs(query.measures) do names[#names + 1] = name end
    table.sort(names)
    local close = suggest.closest(fn, names)
    if close then bad(("unknown measure '%s' (did you mean '%s'?)"):format(fn, close)) end
    bad()
  end
  if fn == "share" then
    local inner, inner_name = measure_agg(table.concat(parts, ":", 2), text)
    local ok, share = pcall(query.share, inner)
    if not ok then bad((errors.strip(share):gsub("^bad argument #1 to 'share' %((.*)%)$", "%1"))) end
    return share, "share_" .. inner_name
  end
  if ONE_COLUMN_SET[fn] and #parts == 2 then
    refuse_column(fn, parts[2], text)
    return query[fn](parts[2]), fn .. "_" .. schema.normalize(parts[2])
  end
  if fn == "quantile" and #parts == 3 then
    local p = tonumber(parts[3])
    if not p or p < 0 or p > 1 then bad("P must be a number from 0 to 1") end
    return query.quantile(parts[2], p), ("quantile_%s_%s"):format(schema.normalize(parts[2]), parts[3])
  end
  if TWO_COLUMNS_SET[fn] and #parts == 3 then
    refuse_column(fn, parts[2], text)
    refuse_column(fn, parts[3], text)
    return query[fn](parts[2], parts[3]),
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


-- ---------------------------------------------------------------- --opt, --change, --cumsum, --rank, --join

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

-- "COL:OVER" (--change, --cumsum) -> column, over.
-- "COL:OVER" (--cumsum), "COL:OVER[:LAG]" (--change), "COL:OVER:N" (--rolling) -> column,
-- over and the number (lag, window).
local EXAMPLES = { ["--change"] = "montant:annee or montant:mois:12", ["--cumsum"] = "dossiers:mois",
                   ["--rolling"] = "montant:mois:12" }
local function parse_over(text, option)
  local parts = {}
  for p in (text .. ":"):gmatch("(.-):") do parts[#parts + 1] = trim(p) end
  local shape = option == "--cumsum" and "COLUMN:PERIOD" or option == "--change" and "COLUMN:PERIOD[:LAG]"
    or "COLUMN:PERIOD:N"
  local wanted = option == "--cumsum" and 2 or 3
  local number = parts[3] and whole_number(parts[3])
  if #parts < 2 or #parts > wanted or parts[1] == "" or parts[2] == "" or (option == "--rolling" and #parts ~= 3)
     or (parts[3] and not (number and number >= 1)) then
    usage(("%s '%s': expected %s, e.g. %s"):format(option, text, shape, EXAMPLES[option]))
  end
  return { column = parts[1], over = parts[2], n = number, text = text }
end

-- "COL" or "COL:KEY,KEY" (--rank, --share) -> column, by.
local function parse_rank(text, option)
  option = option or "--rank"
  local column, by = text:match("^%s*([^:]-)%s*:(.*)$")
  column = column or trim(text)
  if column == "" then usage(("%s '%s': expected COLUMN or COLUMN:KEY,..."):format(option, text)) end
  local keys = by and split_list { by } or nil
  if by and #keys == 0 then usage(("%s '%s': expected COLUMN or COLUMN:KEY,..."):format(option, text)) end
  return { column = column, by = keys, text = text }
end

--- "REF:COLUMN" (--join) -> ref, column: what a front end reads before it resolves REF (a file
--- on the command line, a reference the server declares over HTTP); nil, message if malformed.
function grammar.split_join(text)
  local ref, column = tostring(text):match("^(.+):([^:]+)$")
  if not ref or trim(column) == "" then
    return nil, ("--join '%s': expected FILE:COLUMN (COLUMN of both the result and the reference) or "
      .. "FILE:COLUMN=REFCOLUMN"):format(text)
  end
  return ref, trim(column)
end

--- The key of a join: "COL" (a column of both sides) or "COL=REFCOL" (the result's COL matched
--- with the reference's REFCOL) -> what res:join takes as `on`, or nil when malformed.
function grammar.join_on(column)
  local left, right = column:match("^([^=]+)=([^=]+)$")
  if not left then return column:find("=", 1, true) == nil and column or nil end
  left, right = trim(left), trim(right)
  if left == "" or right == "" then return nil end
  return { [left] = right }
end

-- ---------------------------------------------------------------- --with NAME=EXPR

-- An expression of result columns: numbers, column names (letters, digits and _; any other
-- name between double quotes), + - * / and parentheses — nothing else, so that a request over
-- HTTP computes and never runs code. Parsed once into a tree; evaluated per row with no load().
local function parse_expression(text, option, shown)
  local pos, len = 1, #text
  local function bad(why) usage(("%s '%s': %s"):format(option, shown or text, why)) end
  local function skip() pos = text:find("[^ \t]", pos) or len + 1 end
  local expr
  local function primary()
    skip()
    local c = text:sub(pos, pos)
    if c == "(" then
      pos = pos + 1
      local e = expr()
      skip()
      if text:sub(pos, pos) ~= ")" then bad("a ')' is missing") end
      pos = pos + 1
      return e
    end
    if c == "-" then pos = pos + 1 return { op = "neg", primary() } end
    local number = text:match("^%d+%.?%d*", pos) or text:match("^%.%d+", pos)
    if number then
      pos = pos + #number
      return { op = "number", value = tonumber(number) }
    end
    local name = text:match("^[%a_][%w_]*", pos)
    if name then pos = pos + #name return { op = "column", name = name } end
    if c == '"' then
      local close = text:find('"', pos + 1, true)
      if not close then bad("a closing '\"' is missing") end
      name = text:sub(pos + 1, close - 1)
      pos = close + 1
      return { op = "column", name = name }
    end
    if c == "" then bad("an operand is missing at the end") end
    bad(("'%s' is no number, column or '(' (the operators are + - * / and parentheses)"):format(c))
  end
  local function term()
    local left = primary()
    while true do
      skip()
      local c = text:sub(pos, pos)
      if c ~= "*" and c ~= "/" then return left end
      pos = pos + 1
      left = { op = c, left, primary() }
    end
  end
  function expr()
    local left = term()
    while true do
      skip()
      local c = text:sub(pos, pos)
      if c ~= "+" and c ~= "-" then return left end
      pos = pos + 1
      left = { op = c, left, term() }
    end
  end
  local tree = expr()
  skip()
  if pos <= len then bad(("'%s' does not continue the expression"):format(text:sub(pos, pos))) end
  return tree
end

-- The columns an expression reads, in order of first use.
local function expression_columns(tree, out, seen)
  out, seen = out or {}, seen or {}
  if tree.op == "column" then
    if not seen[tree.name] then seen[tree.name] = true out[#out + 1] = tree.name end
  else
    for _, child in ipairs(tree) do expression_columns(child, out, seen) end
  end
  return out
end

-- The value of an expression for a row: nil when a column is missing or not a number, or a
-- division by zero.
local function evaluate(tree, row)
  local op = tree.op
  if op == "number" then return tree.value end
  if op == "column" then
    local v = row[tree.name]
    return type(v) == "number" and v == v and v or nil
  end
  local a = evaluate(tree[1], row)
  if a == nil then return nil end
  if op == "neg" then return -a end
  local b = evaluate(tree[2], row)
  if b == nil then return nil end
  if op == "+" then return a + b end
  if op == "-" then return a - b end
  if op == "*" then return a * b end
  if b == 0 then return nil end
  return a / b
end

local WITH_KINDS = { count = true, money = true, rate = true, number = true, key = true }

--- "NAME=EXPR" or "NAME:KIND=EXPR" (--with) -> {name =, kind =, columns = {...}, fn = function(row)},
--- NAME any text before the first '=' (a ':' in it gives the kind: count, money, rate, number).
function grammar.parse_with(text)
  local at = text:find("=", 1, true)
  local head = at and trim(text:sub(1, at - 1)) or ""
  if not at or head == "" then
    usage(("--with '%s': expected NAME=EXPRESSION, e.g. eur_hab=montant/population"):format(text))
  end
  local name, kind = head:match("^(.-)%s*:%s*(%a+)$")
  if name and WITH_KINDS[kind] then head = name else kind = nil end
  local tree = parse_expression(text:sub(at + 1), "--with", text)
  return { name = head, kind = kind, columns = expression_columns(tree), text = text,
           fn = function(row) return evaluate(tree, row) end }
end

grammar.trim, grammar.texts, grammar.split_list, grammar.split_rename = trim, texts, split_list, split_rename
grammar.parse_expression, grammar.evaluate = parse_expression, evaluate
grammar.parse_where, grammar.where_condition, grammar.measure_agg = parse_where, where_condition, measure_agg
grammar.split_values = split_values
grammar.agg_columns, grammar.text_options, grammar.parse_over, grammar.parse_rank =
  agg_columns, text_options, parse_over, parse_rank

return grammar

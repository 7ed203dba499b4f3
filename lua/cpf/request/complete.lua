-- cpf.request.complete — what Neovim completes for a request field's value, by the field's
-- `complete` kind (cpf.request's table): columns of the open dataset (the CPF schema's without
-- one) and the virtual keys, the CPF measures and every aggregate form, signed result columns,
-- MEASURE:PERIOD and MEASURE:KEYS, formats and locales. Each candidate is the whole value.
local schema = require "cpf.schema"
local format = require "cpf.format"
local grammar = require "cpf.request.grammar"

local complete = {}

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

--- The items of list that start with lead, each after prefix (Neovim's completion uses it too).
local function matching(list, lead, prefix)
  local out = {}
  for _, item in ipairs(list) do
    if item:sub(1, #lead) == lead then out[#out + 1] = (prefix or "") .. item end
  end
  return out
end
complete.matching = matching

-- The names a key or condition can use: the columns (the CPF schema's without a dataset) and
-- the virtual keys.
local function key_names(columns)
  local names = {}
  for _, c in ipairs(columns or schema.columns) do names[#names + 1] = c.name end
  for _, k in ipairs(sorted_keys(schema.virtual_keys)) do names[#names + 1] = k end
  return names
end

-- The CPF measures' names (what a result column is called by default).
local function measure_names() return sorted_keys(schema.measures) end

-- The measure specs: the CPF measures, then the aggregate forms.
local function measure_specs()
  local names = measure_names()
  for _, f in ipairs(grammar.measure_forms()) do names[#names + 1] = f end
  return names
end

local function concat_lists(a, b)
  local out = {}
  for _, x in ipairs(a) do out[#out + 1] = x end
  for _, x in ipairs(b) do out[#out + 1] = x end
  return out
end

-- A comma list: the candidates for its last item, each with what comes before it.
local function last_item(lead)
  local head, last = lead:match("^(.*,)([^,]*)$")
  return head or "", last or lead
end

local COMPLETE = {}
function COMPLETE.column(lead, columns) return matching(key_names(columns), lead) end
function COMPLETE.keys(lead, columns)
  local head, last = last_item(lead)
  return matching(key_names(columns), last, head)
end
function COMPLETE.result(lead, columns) return matching(concat_lists(measure_names(), key_names(columns)), lead) end
function COMPLETE.sort(lead, columns)
  local head, last = last_item(lead)
  local signed = {}
  for _, c in ipairs(concat_lists(key_names(columns), measure_names())) do
    signed[#signed + 1] = c
    signed[#signed + 1] = "-" .. c
  end
  return matching(signed, last, head)
end
function COMPLETE.measures(lead, columns)
  local head, last = last_item(lead)
  local form, arg = last:match("^(.*:)([^:]*)$") -- sum:mon -> the columns after sum:
  if form then
    if form == "share:" then return matching(measure_specs(), arg, head .. form) end
    local names = {}
    for _, c in ipairs(columns or schema.columns) do names[#names + 1] = c.name end
    return matching(names, arg, head .. form)
  end
  return matching(measure_specs(), last, head)
end
-- MEASURE:PERIOD (--change, --cumsum) and MEASURE:KEYS (--rank)
function COMPLETE.measure_over(lead, columns)
  local measure, after = lead:match("^([^:]*:)(.*)$")
  if measure then return matching(key_names(columns), after, measure) end
  return matching(measure_names(), lead)
end
function COMPLETE.rank(lead, columns)
  local measure, after = lead:match("^([^:]*:)(.*)$")
  if measure then
    local head, last = last_item(after)
    return matching(key_names(columns), last, measure .. head)
  end
  return matching(measure_names(), lead)
end
function COMPLETE.format(lead) return matching(format.names(), lead) end
function COMPLETE.locale(lead) return matching({ "fr", "en", "C" }, lead) end
function COMPLETE.on_error(lead) return matching({ "fail", "skip" }, lead) end
function COMPLETE.encoding(lead) return matching({ "utf-8", "cp1252", "latin1" }, lead) end

--- The candidates of kind `kind` that extend `lead` ({} for a kind that completes nothing).
function complete.value(kind, lead, columns)
  local fn = COMPLETE[kind]
  return fn and fn(lead, columns) or {}
end

return complete

-- cpf — fast analysis of the CPF "formations engagées" open dataset: the public Lua API.
-- The C core (cpf.core) loads and stores the columns; this layer adds the CPF knowledge.
local core = require "cpf.core"
local schema = require "cpf.schema"

local cpf = {
  _VERSION = "0.1.0",
  schema = schema,
}

local dataset_mt = core.dataset_metatable
local Dataset = dataset_mt.__index -- methods written in C, completed below

local load_options = { sep = true, decimal = true, types = true, progress = true }

local function check_options(opts, allowed, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad argument #2 to '%s' (table expected, got %s)"):format(fname, type(opts)), 3)
  end
  for k in pairs(opts) do
    if not allowed[k] then error(("%s: unknown option '%s'"):format(fname, tostring(k)), 3) end
  end
  return opts
end

local function human_bytes(n)
  if n >= 1024 * 1024 * 1024 then return ("%.1f GB"):format(n / 1024 ^ 3) end
  if n >= 1024 * 1024 then return ("%.1f MB"):format(n / 1024 ^ 2) end
  if n >= 1024 then return ("%.1f kB"):format(n / 1024) end
  return ("%d B"):format(n)
end
cpf.human_bytes = human_bytes

-- A progress line on stderr, rewritten in place: bytes read, rows/s, percent.
local function stderr_progress(path)
  local clock = core.clock
  local start = clock()
  local shown = false
  return function(done, total, rows)
    local elapsed = clock() - start
    if done < total and elapsed < 1 and not shown then return end -- quick loads stay silent
    shown = true
    io.stderr:write(("\r%s: %s / %s  %d rows  %.0f rows/s  %3.0f%%%s"):format(
      path, human_bytes(done), human_bytes(total), rows,
      elapsed > 0 and rows / elapsed or 0, total > 0 and 100 * done / total or 100,
      done >= total and "\n" or ""))
  end
end

--- Load a delimited file into a dataset.
--- opts: sep (one character; detected from the header by default), decimal ("." or ","),
--- types ({column = type} overrides), progress (function(bytes_done, bytes_total, rows), or
--- true for a progress line on stderr). Returns the dataset, or nil and "path:row:col: message".
function cpf.load(path, opts)
  if type(path) ~= "string" then
    error(("bad argument #1 to 'load' (string expected, got %s)"):format(type(path)), 2)
  end
  opts = check_options(opts, load_options, "load")
  if opts.types ~= nil and type(opts.types) ~= "table" then
    error("load: option 'types' must be a table {column = type}", 2)
  end
  local progress = opts.progress
  if progress == true then progress = stderr_progress(path)
  elseif progress ~= nil and progress ~= false and type(progress) ~= "function" then
    error("load: option 'progress' must be a function or true", 2)
  end
  if progress == false then progress = nil end
  for _, key in ipairs { "sep", "decimal" } do
    local v = opts[key]
    if v ~= nil and (type(v) ~= "string" or #v ~= 1) then
      error(("load: option '%s' must be a one-character string"):format(key), 2)
    end
  end
  if opts.decimal ~= nil and opts.decimal ~= "." and opts.decimal ~= "," then
    error("load: option 'decimal' must be \".\" or \",\"", 2)
  end
  local source, err = core.open(path)
  if not source then return nil, err end
  local labels, sep = source:header(opts.sep)
  if not labels then source:close() return nil, sep end
  local specs
  specs, err = schema.resolve(labels, opts.types)
  if not specs then source:close() return nil, path .. ":1: " .. err end
  local ds
  ds, err = source:load(specs, { sep = sep, decimal = opts.decimal, progress = progress })
  source:close() -- unmap now rather than at the next collection
  return ds, err
end

--- Column description by name: {name, label, type, missing, bytes}, or nil.
function Dataset:column(name)
  for _, c in ipairs(self:columns()) do
    if c.name == name then return c end
  end
  return nil
end

local function preview_cell(v)
  local s = v == nil and "" or tostring(v)
  if #s > 16 then s = s:sub(1, 15) .. "…" end
  return s
end

-- "cpf dataset: N rows × C columns, size" then the first rows of the first columns.
function dataset_mt.__tostring(ds)
  if ds:is_closed() then return "cpf dataset (closed)" end
  local cols = ds:columns()
  local lines = { ("cpf dataset: %d rows × %d columns, %s"):format(#ds, #cols, human_bytes(ds:memory())) }
  local shown = math.min(#cols, 5)
  local header = {}
  for j = 1, shown do header[j] = cols[j].name .. " (" .. cols[j].type .. ")" end
  lines[#lines + 1] = "  " .. table.concat(header, " | ") .. (shown < #cols and " | …" or "")
  for i = 1, math.min(#ds, 3) do
    local cells = {}
    for j = 1, shown do cells[j] = preview_cell(ds:get(i, j)) end
    lines[#lines + 1] = "  " .. table.concat(cells, " | ")
  end
  if #ds > 3 then lines[#lines + 1] = ("  … %d more rows"):format(#ds - 3) end
  return table.concat(lines, "\n")
end

return cpf

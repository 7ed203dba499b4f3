-- cpf.format — how a result leaves the program: the registry of output formats (built in and
-- custom), res:format to a string, res:write to a path (atomically) or a file handle.
local core = require "cpf.core"
local common = require "cpf.format.common"
local result = require "cpf.result"
local suggest = require "cpf.suggest"

local format = {}

local concat = table.concat

-- Built-in formats, loaded on first use, in the order messages list them. A preset is a
-- format with other defaults (the caller's options still win).
local BUILTIN_ORDER = { "csv", "csv-fr", "tsv", "json", "jsonl", "markdown", "table", "html", "svg" }
-- media: the Content-Type an HTTP answer in this format has (cpf serve); display: a format people
-- read, in French order under locale fr; french: always read in French (csv-fr).
local BUILTIN = {
  csv = { module = "cpf.format.delimited", name = "csv", media = "text/csv; charset=utf-8" },
  ["csv-fr"] = { module = "cpf.format.delimited", name = "csv", media = "text/csv; charset=utf-8",
                 defaults = { sep = ";", bom = true, decimal = ",", formula_guard = true, rounded = true,
                              row_labels = "fr" }, french = true },
  tsv = { module = "cpf.format.delimited", name = "tsv", media = "text/tab-separated-values; charset=utf-8" },
  json = { module = "cpf.format.json", name = "json", media = "application/json; charset=utf-8" },
  jsonl = { module = "cpf.format.json", name = "jsonl", media = "application/x-ndjson; charset=utf-8" },
  markdown = { display = true, module = "cpf.format.text", name = "markdown",
               media = "text/markdown; charset=utf-8" },
  table = { display = true, module = "cpf.format.text", name = "table", media = "text/plain; charset=utf-8" },
  html = { display = true, module = "cpf.format.html", name = "html", media = "text/html; charset=utf-8" },
  svg = { display = true, module = "cpf.format.html", name = "svg", media = "image/svg+xml; charset=utf-8" },
}

--- Whether a format is one of cpf's own (a custom format's failure is its own fault).
function format.is_builtin(name) return BUILTIN[name] ~= nil end

--- The Content-Type of an answer in a built-in format, or nil.
function format.media_type(name) return BUILTIN[name] and BUILTIN[name].media end
local custom, custom_order = {}, {}

--- Names of every format: the built-in ones, then the custom ones in registration order.
function format.names()
  local t = {}
  for i, name in ipairs(BUILTIN_ORDER) do t[i] = name end
  for _, name in ipairs(custom_order) do t[#t + 1] = name end
  return t
end

--- Adds a format: fn(result, out, opts) writes with out:write(...). A built-in name raises;
--- registering a custom name again replaces it.
function format.register(name, fn)
  if type(name) ~= "string" or not name:find("^%w[%w_%.%-]*$") then
    error(("bad argument #1 to 'register' (format name expected: letters, digits, '_', '.', '-'; got %s)")
      :format(type(name) == "string" and ("%q"):format(name) or type(name)), 2)
  end
  if type(fn) ~= "function" then
    error(("bad argument #2 to 'register' (function expected, got %s)"):format(type(fn)), 2)
  end
  if BUILTIN[name] then
    error(("format '%s' is built in and cannot be replaced; register yours under another name"):format(name), 2)
  end
  if not custom[name] then custom_order[#custom_order + 1] = name end
  custom[name] = fn
end

-- The writer and the options for a format name; raises (at `level`) on a bad name or option.
local function resolve(res, name, opts, fname, opts_arg, level)
  level = level + 1
  if type(name) ~= "string" then
    error(("bad argument #%d to '%s' (format name expected, got %s)"):format(opts_arg - 1, fname, type(name)), level)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #%d to '%s' (table expected, got %s)"):format(opts_arg, fname, type(opts)), level)
  end
  local builtin = BUILTIN[name]
  if not builtin then
    local fn = custom[name]
    if not fn then
      error(("unknown format '%s' (%s)%s"):format(name, concat(format.names(), ", "),
        suggest.hint(name, format.names())), level)
    end
    return fn, opts or {}, res
  end
  local spec = require(builtin.module)[builtin.name] -- a built-in format's module loads on first use
  local merged = {}
  for k, v in pairs(builtin.defaults or {}) do merged[k] = v end
  for k, v in pairs(opts or {}) do
    local check = spec.options[k]
    if not check then error(("%s: unknown option '%s'"):format(name, tostring(k)), level) end
    local err = check(v, res)
    if err then error(("%s: option '%s' %s"):format(name, k, err), level) end
    merged[k] = v
  end
  local err = spec.check and spec.check(merged, res)
  if err then error(name .. ": " .. err, level) end
  -- what people read in French shows text in French order (result.french_order)
  if builtin.french or builtin.display and merged.locale == "fr" then res = result.french_order(res) end
  return spec.write, merged, res
end

-- ---- out: what a format writes to ----

local Out = {}
Out.__index = Out

local FLUSH_PIECES = 4096

--- out:write(...): strings, and numbers (written as common.number_text does). Returns out.
function Out:write(...)
  local parts, n = self.parts, self.n
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "number" then
      v = common.number_text(v) or tostring(v)
    elseif type(v) ~= "string" then
      error(("bad argument #%d to 'write' (string expected, got %s)"):format(i, type(v)), 2)
    end
    n = n + 1
    parts[n] = v
  end
  self.n = n
  if self.target and n >= FLUSH_PIECES then self:flush() end
  return self
end

-- Sends the pieces to the target; the first failure is kept in self.err.
function Out:flush()
  if self.n > 0 and not self.err then
    local ok, err = self.target:write(concat(self.parts, "", 1, self.n))
    if ok == nil and err ~= nil then self.err = err end
  end
  self.parts, self.n = {}, 0
end

-- A query's result on Lua 5.3+ builds its row tables only when read: the C writers read the
-- others from its result store. On 5.1 and LuaJIT every row table exists: they read those.
local LAZY_ROWS = _VERSION ~= "Lua 5.1" and _VERSION ~= "Lua 5.2"

--- out:rows(res, spec): the built-in machine formats' rows, written by the C writers
--- (core.row_writer) from the spec the format made, in pieces of about 64 kB sent on at once —
--- from this Lua loop, so that a target whose write yields (cpf serve) can.
function Out:rows(res, spec)
  local writer = core.row_writer(res, LAZY_ROWS and result.store_of(res) or nil, spec)
  for piece in writer.next, writer do
    local n = self.n + 1
    self.parts[n], self.n = piece, n
    if self.target then
      self:flush()
      if self.err then return end -- the target failed: the rest would go nowhere
    end
  end
end

local function new_out(target)
  return setmetatable({ parts = {}, n = 0, target = target }, Out)
end

--- Checks a format name and its options for a result as writing would, without writing: raises
--- (at `level`) on a bad name or option.
function format.check(res, name, opts, level)
  resolve(res, name, opts, "format", 2, level or 1)
end

--- The result in a format, as a string. Raises on a bad format name or option.
function format.to_string(res, name, opts, level)
  local fn, merged
  fn, merged, res = resolve(res, name, opts, "format", 2, level or 1)
  local out = new_out(nil)
  fn(res, out, merged)
  return concat(out.parts, "", 1, out.n)
end

-- A path is written through a temporary beside it, created exclusively and renamed over the
-- target once complete (cpf.core's output files): readers never see half a file, and nothing but
-- a regular file is replaced (a symlink, FIFO or device at the target is refused).
local function write_path(res, path, fn, opts)
  local file, err, kind = core.output_file(path)
  if not file then return nil, err, kind end
  local out = new_out(file)
  local ok, failure = pcall(fn, res, out, opts)
  if ok then out:flush() end
  if not ok then
    file:abort()
    error(failure, 0) -- the format's own error, as it raised it
  end
  if out.err then
    file:abort()
    return nil, tostring(out.err), "io"
  end
  return file:commit()
end

-- A FIFO or a character device (/dev/null, /dev/stdout) is written to, not replaced: its handle,
-- opened for writing; false for any other path (write_path); nil, message if it cannot be opened.
local function device_handle(path)
  local kind = core.file_kind(path)
  if kind ~= "fifo" and kind ~= "device" then return false end
  return io.open(path, "wb")
end

--- Writes a text to a path as write_path does (a temporary renamed over it once complete):
--- true, or nil, message, kind.
function format.write_text(path, text)
  local handle, herr = device_handle(path)
  if handle == nil then return nil, herr, "io" end
  if handle then
    local ok, werr = handle:write(text)
    handle:close()
    if not ok then return nil, path .. ": " .. tostring(werr), "io" end
    return true
  end
  local file, err, kind = core.output_file(path)
  if not file then return nil, err, kind end
  local ok
  ok, err, kind = file:write(text)
  if not ok then file:abort() return nil, err, kind end
  return file:commit()
end

--- Writes the result in a format to a path (a temporary file renamed over it, so readers never
--- see half a file) or to a file handle (or any object with :write). true, or nil and a
--- message ("out.csv: Permission denied") on an I/O failure; bad arguments raise.
function format.write(res, target, name, opts, level)
  level = (level or 1) + 1
  local kind = io.type(target)
  if kind == "closed file" then error("bad argument #1 to 'write' (file is closed)", level - 1) end
  if type(target) ~= "string" and kind ~= "file"
     and not (type(target) == "table" and type(target.write) == "function") then
    error(("bad argument #1 to 'write' (path or file handle expected, got %s)"):format(type(target)), level - 1)
  end
  local fn, merged
  fn, merged, res = resolve(res, name, opts, "write", 3, level - 1)
  if type(target) == "string" then
    local handle, herr = device_handle(target)
    if handle == nil then return nil, herr, "io" end
    if not handle then return write_path(res, target, fn, merged) end
    local ok, werr, wkind = format.write(res, handle, name, merged)
    handle:close()
    return ok, werr and target .. ": " .. werr, wkind
  end
  local out = new_out(target)
  fn(res, out, merged)
  out:flush()
  if not out.err and kind == "file" then
    local ok, err = target:flush()
    if not ok then out.err = err end
  end
  if out.err then return nil, "cannot write: " .. tostring(out.err), "io" end
  return true
end

--- cpf.bar(value, max [, opts]): a bar of value/max × opts.width (20) terminal columns in
--- Unicode blocks, or '#' when opts.ascii (default: NO_COLOR set or a locale that is not UTF-8).
function format.bar(value, max, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #3 to 'bar' (table expected, got %s)"):format(type(opts)), 2)
  end
  opts = opts or {}
  local width = opts.width or 20
  if type(width) ~= "number" or width < 1 or width ~= math.floor(width) then
    error("bar: option 'width' must be a whole number >= 1", 2)
  end
  local ascii = opts.ascii
  if ascii == nil then ascii = not common.unicode_terminal() end
  return common.bar(value, max, width, ascii)
end

format.number_text = common.number_text
format.display_width = common.display_width

return format

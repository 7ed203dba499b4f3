-- cpf.request.output — a request's output settings (format, its options, bar, title, locale)
-- read from its fields, and what writes a result with them: text, a file, or the describe table.
local common = require "cpf.format.common"
local errors = require "cpf.errors"
local format = require "cpf.format"
local grammar = require "cpf.request.grammar"
local result = require "cpf.result"
local suggest = require "cpf.suggest"

local output = {}

local usage = errors.usage
local texts, text_options = grammar.texts, grammar.text_options

local Output = {}
Output.__index = Output

local DISPLAY_FORMATS = { table = true, markdown = true, html = true, svg = true }

-- settings.format: the front end's default format (the command line's table, HTTP's json);
-- settings.format_options: {format = its default options}, under the request's own.
function output.parse(fields, settings)
  local fmt = fields.format or settings.format or "table"
  if type(fmt) ~= "string" then usage(("format: text expected, got %s"):format(type(fmt))) end
  local fo = {}
  -- the front end's own defaults for this format (HTTP: Unicode bars, its answers being UTF-8)
  for k, v in pairs(settings.format_options and settings.format_options[fmt] or {}) do fo[k] = v end
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
  local locale = fields.locale
  if locale == nil then locale = settings.locale end
  if locale ~= nil then
    if common.option.locale(locale) then -- the display formats' own check
      usage(("--locale must be fr, en or C, got '%s'"):format(tostring(locale)))
    end
    -- the formats people read; the machine formats (csv, tsv, json...) never change
    if DISPLAY_FORMATS[fmt] and fo.locale == nil then fo.locale = locale end
  end
  local names = format.names()
  local known = false
  for _, n in ipairs(names) do if n == fmt then known = true end end
  if not known then
    usage(("unknown format '%s' (%s)%s"):format(fmt, table.concat(names, ", "), suggest.hint(fmt, names)))
  end
  return setmetatable({ format = fmt, options = fo }, Output)
end

-- A format's raise: on its options for a built-in format (usage), else the format's own fault.
local function format_failure(self, msg)
  if format.is_builtin(self.format) then return nil, errors.strip(msg), "usage" end
  return nil, tostring(msg), "callback"
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

-- The widest a line of the describe table gets, and the most its fixed columns take.
local DESCRIBE_WIDTH = 100
local DESCRIBE_CUT = { column = 30, min = 16, max = 16 }

-- ds:describe's result as the table shows it: one line per column within DESCRIBE_WIDTH
-- characters — the label left out (the other formats have it) and the cells cut with "…", the
-- top values taking what the other columns leave.
local function describe_table(res)
  local names = { "column", "type", "missing", "distinct", "min", "max", "top" }
  local rows, widths = {}, {}
  for _, n in ipairs(names) do widths[n] = #n end
  for i, r in ipairs(res) do
    local row = {}
    for _, n in ipairs(names) do
      local v = r[n]
      if type(v) == "string" and DESCRIBE_CUT[n] then v = common.truncate(v, DESCRIBE_CUT[n]) end
      row[n] = v
      local shown = v == nil and "" or (type(v) == "number" and tostring(v) or v)
      if n ~= "top" then widths[n] = math.max(widths[n], common.display_width(shown)) end
    end
    rows[i] = row
  end
  local used = 0
  for _, n in ipairs(names) do if n ~= "top" then used = used + widths[n] + 2 end end
  -- the names give way first, down to 12 characters, so that the top values keep 20
  local excess = used + 20 - DESCRIBE_WIDTH
  if excess > 0 and widths.column > 12 then
    local keep = math.max(12, widths.column - excess)
    for _, row in ipairs(rows) do row.column = common.truncate(row.column, keep) end
    used = used - (widths.column - keep)
  end
  local room = math.max(10, DESCRIBE_WIDTH - used)
  for _, row in ipairs(rows) do
    if row.top and common.display_width(row.top) > room then
      -- whole "value (count)" entries while they fit, then "…"; the first one cut if it alone does not
      local fit
      for stop in row.top:gmatch("()%), ") do
        if common.display_width(row.top:sub(1, stop)) + 3 > room then break end
        fit = stop
      end
      row.top = fit and row.top:sub(1, fit) .. ", …" or common.truncate(row.top, room)
    end
  end
  if not res:columns()[8] then table.remove(names) end -- top = 0: no top column
  return result.new(names, rows, nil, nil, res:kinds())
end

--- What `cpf describe`, :Cpf describe and /describe show in the table format: a title line
--- (`name`, the rows, the columns, the records set aside), then one line per column within
--- 100 characters (describe_table); in another format ds:describe's rows, whole. The text, or
--- nil, message, kind. progress(done, total) is called between columns (ds:describe).
function Output:describe(ds, name, top, progress)
  return self:description(ds, name, ds:describe(top, progress))
end

--- The same text from a description already made (res: ds:describe's or describe_async's).
function Output:description(ds, name, res)
  if self.format ~= "table" then return self:text(res) end
  local options = {}
  for k, v in pairs(self.options) do options[k] = v end
  if options.max_width == nil then options.max_width = false end
  local body, err, kind = setmetatable({ format = self.format, options = options }, Output):text(describe_table(res))
  if not body then return nil, err, kind end
  local rejects = ds.rejects and #ds:rejects() or 0
  return ("%s: %d rows, %d columns%s\n"):format(name, #ds, #ds:columns(),
    rejects > 0 and (", %d malformed record%s set aside"):format(rejects, rejects > 1 and "s" or "") or "") .. body
end

return output

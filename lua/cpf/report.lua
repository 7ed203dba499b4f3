-- cpf.report — one page of several results, the report an analyst sends as it is: a title, a
-- subtitle, sections (a title, a chart, the table, a note) and the source line, as one
-- self-contained HTML page (inline CSS, no script, nothing fetched; A4 when printed, the sections
-- flowing from page to page, none split) or as Markdown. Numbers, labels and months follow the locale (fr by default).
local cpf = require "cpf"
local schema = require "cpf.schema"
local common = require "cpf.format.common"
local html = require "cpf.format.html"
local format = require "cpf.format"
local errors = require "cpf.errors"
local result = require "cpf.result"

local report = {}

local Report = {}
Report.__index = Report

local esc = common.xml_escape

local FIELDS = { title = true, subtitle = true, source = true, dataset = true, locale = true, sections = true }
local SECTION_FIELDS = { title = true, result = true, chart = true, note = true, labels = true }

local MONTHS = {
  fr = { "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
         "novembre", "décembre" },
  en = { "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
         "November", "December" },
}

-- "2026-05-04" as "4 mai 2026" (fr) or "4 May 2026" (en)
local function long_date(text, locale)
  local y, m, d = tostring(text):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return nil end
  local names = MONTHS[locale] or MONTHS.en
  return ("%d %s %s"):format(tonumber(d), names[tonumber(m)], y)
end
report.long_date = long_date

--- The source line of a dataset: who publishes the data, the extraction's date (the latest
--- value of the schema's date column) and the rows.
function report.source_line(ds, locale)
  locale = common.locales[locale] and locale or "fr"
  local source = schema.source
  local date
  if ds:column(source.date_column) then
    local last = ds:run { last = cpf.max(source.date_column) }[1].last
    date = long_date(last, locale)
  end
  local rows = common.display_number(#ds, 0, { thousands = common.locales[locale].thousands })
  if locale == "fr" then
    return ("Source : %s, %s%s (%s lignes)")
      :format(source.publisher, source.title, date and ", extraction du " .. date or "", rows)
  end
  return ("Source: %s, %s%s (%s rows)")
    :format(source.publisher, source.title, date and ", extracted on " .. date or "", rows)
end

local function check(spec)
  if type(spec) ~= "table" then error("bad argument #1 to 'report' (table expected)", 3) end
  for k in pairs(spec) do
    if not FIELDS[k] then error(("report: unknown field '%s' (title, subtitle, source, dataset, locale, sections)")
      :format(tostring(k)), 3) end
  end
  if type(spec.title) ~= "string" then error("report: 'title' must be a string", 3) end
  for _, k in ipairs { "subtitle", "source" } do
    if spec[k] ~= nil and spec[k] ~= false and type(spec[k]) ~= "string" then
      error(("report: '%s' must be a string"):format(k), 3)
    end
  end
  local locale = spec.locale or "fr"
  if locale ~= "C" and not common.locales[locale] then error('report: \'locale\' must be "fr", "en" or "C"', 3) end
  if type(spec.sections) ~= "table" or #spec.sections == 0 then
    error("report: 'sections' must be a non-empty list of {title =, result =, chart =, note =}", 3)
  end
  for i, s in ipairs(spec.sections) do
    if type(s) ~= "table" then error(("report: section %d must be a table"):format(i), 3) end
    for k in pairs(s) do
      if not SECTION_FIELDS[k] then
        error(("report: section %d: unknown field '%s' (title, result, chart, note, labels)"):format(i, tostring(k)), 3)
      end
    end
    if type(s.title) ~= "string" then error(("report: section %d: 'title' must be a string"):format(i), 3) end
    if type(s.result) ~= "table" or type(s.result.columns) ~= "function" then
      error(("report: section %d: 'result' must be a result (q:run())"):format(i), 3)
    end
    if s.note ~= nil and type(s.note) ~= "string" then
      error(("report: section %d: 'note' must be a string"):format(i), 3)
    end
    -- the chart and labels as the html format checks them (nothing is drawn here)
    local ok, err = pcall(format.check, s.result, "html", { chart = s.chart, labels = s.labels })
    if not ok then
      error(("report: section %d: %s"):format(i, errors.strip(err)), 3)
    end
  end
  return locale
end

--- cpf.report{ title =, subtitle =, source = (text, or false for none; default: the dataset's
--- source_line), dataset =, locale = "fr" | "en" | "C", sections = { {title =, result =,
--- chart = {x =, y =} or false, note =, labels =}, ... } } -> a report: report:format("html" |
--- "markdown"), report:write(path [, format]) (the format from the extension: .md is markdown).
-- The note a section gets when its result has periods the extraction covers only in part
-- (res:partial): they count part of the period, and a change over them compares unequal spans.
local function partial_note(res, locale)
  local partial = res.partial and res:partial() or {}
  if #partial == 0 then return nil end
  local values = {}
  for i, p in ipairs(partial) do values[i] = tostring(p.value) end
  local date = long_date(res:extraction(), locale) or res:extraction()
  if locale == "fr" then
    return ("Période partielle : %s, l'extraction du %s n'en couvre qu'une partie (ses valeurs et ses évolutions "
      .. "portent sur une période incomplète)."):format(table.concat(values, ", "), date)
  end
  return ("Partial period: %s, which the extraction of %s covers only in part (its values and changes cover an "
    .. "incomplete period)."):format(table.concat(values, ", "), date)
end

function report.new(spec)
  local locale = check(spec)
  local self = setmetatable({ title = spec.title, subtitle = spec.subtitle, locale = locale, sections = {} }, Report)
  if spec.source ~= nil then
    self.source = spec.source or nil
  elseif spec.dataset then
    self.source = report.source_line(spec.dataset, locale)
  end
  for i, s in ipairs(spec.sections) do
    local note = s.note
    local partial = partial_note(s.result, locale)
    if partial then note = note and note .. " " .. partial or partial end
    -- in French, text in French order (as the display formats under locale fr)
    local res = locale == "fr" and result.french_order(s.result) or s.result
    self.sections[i] = { title = s.title, result = res, chart = s.chart, note = note, labels = s.labels }
  end
  return self
end

local REPORT_CSS = [[
header{border-bottom:2px solid #4e79a7;margin-bottom:1.5rem}
h1{font-size:1.6rem;margin:0 0 .3rem}
.subtitle{color:#555;margin:0 0 .8rem}
h2{font-size:1.15rem;margin:1.6rem 0 .6rem}
.note{color:#444;font-size:.9rem;max-width:48rem}
footer{margin-top:2rem;border-top:1px solid #ccc;color:#555;font-size:.85rem}
@page{size:A4;margin:15mm}
@media print{body{margin:0}section{break-inside:avoid-page}h2{break-after:avoid-page}}
]]

local function html_page(self)
  local parts = {
    '<!DOCTYPE html>\n<html lang="', self.locale == "en" and "en" or "fr", '">\n<head>\n<meta charset="utf-8">\n',
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
    "<title>", esc(self.title), "</title>\n<style>\n", html.CSS, REPORT_CSS, "</style>\n</head>\n<body>\n",
    "<header>\n<h1>", esc(self.title), "</h1>\n",
  }
  if self.subtitle then parts[#parts + 1] = '<p class="subtitle">' .. esc(self.subtitle) .. "</p>\n" end
  parts[#parts + 1] = "</header>\n"
  for _, s in ipairs(self.sections) do
    local opts = { locale = self.locale ~= "C" and self.locale or nil, chart = s.chart or nil, labels = s.labels }
    parts[#parts + 1] = "<section>\n<h2>" .. esc(s.title) .. "</h2>\n"
    local svg = s.chart ~= false and html.chart_fragment(s.result, opts, nil)
    if svg then parts[#parts + 1] = "<figure>\n" .. svg .. "</figure>\n" end
    parts[#parts + 1] = html.table_fragment(s.result, opts)
    if s.note then parts[#parts + 1] = '<p class="note">' .. esc(s.note) .. "</p>\n" end
    parts[#parts + 1] = "</section>\n"
  end
  if self.source then parts[#parts + 1] = '<footer>\n<p class="source">' .. esc(self.source) .. "</p>\n</footer>\n" end
  parts[#parts + 1] = "</body>\n</html>\n"
  return table.concat(parts)
end

local function one_line(s) return (s:gsub("[\r\n]+", " ")) end

local function markdown_page(self)
  local parts = { "# " .. one_line(self.title) .. "\n\n" }
  if self.subtitle then parts[#parts + 1] = "_" .. one_line(self.subtitle) .. "_\n\n" end
  for _, s in ipairs(self.sections) do
    local opts = { locale = self.locale ~= "C" and self.locale or nil, labels = s.labels }
    parts[#parts + 1] = "## " .. one_line(s.title) .. "\n\n" .. s.result:format("markdown", opts) .. "\n"
    if s.note then parts[#parts + 1] = s.note .. "\n\n" end
  end
  if self.source then parts[#parts + 1] = "---\n\n" .. self.source .. "\n" end
  return table.concat(parts)
end

--- The report as text: "html" (default) or "markdown".
function Report:format(name)
  name = name or "html"
  if name == "html" then return html_page(self) end
  if name == "markdown" then return markdown_page(self) end
  error(("bad argument #1 to 'format' (\"html\" or \"markdown\" expected, got %s)"):format(tostring(name)), 2)
end

--- Writes the report to a path, atomically (a temporary renamed over it): the format from the
--- extension (.md, .markdown: markdown; else html) unless given. true, or nil, message.
function Report:write(path, name)
  if type(path) ~= "string" then error("bad argument #1 to 'write' (path expected)", 2) end
  name = name or (path:match("%.md$") or path:match("%.markdown$")) and "markdown" or "html"
  local ok, err = format.write_text(path, self:format(name))
  if not ok then return nil, err end
  return true
end

--- The demo report's sections for a CPF dataset (schema.demo_sections): {title, result, chart}
--- in the locale's words (fr: French titles; otherwise English). Used by cpf demo and cpf
--- serve's page (the front ends share it here, never through each other).
function report.demo_sections(ds, locale)
  local lang = locale == "fr" and "fr" or "en"
  -- the last year with all its twelve months (the current one is still being filled)
  local last_year
  for _, r in ipairs(ds:group_by("annee"):run { months = cpf.distinct "date_validation" }) do
    if r.months == 12 then last_year = r.annee end
  end
  local sections = {}
  for _, s in ipairs(schema.demo_sections) do
    local title, res = s.title[lang], nil
    if s.funders then
      res = ds:funders()
    elseif not s.last_full_year or last_year then
      local q = s.last_full_year and ds:where { annee = last_year } or ds:query()
      local measures = {}
      for i, m in ipairs(s.measures) do measures[i] = m end
      for name, column in pairs(s.share_of or {}) do measures[#measures + 1] = { name, cpf.share(column) } end
      q = q:group_by((table.unpack or unpack)(s.by)):agg(measures)
      if s.order then q = q:order_by(s.order) end
      if s.limit then q = q:limit(s.limit) end
      res = q:run()
      if s.last_full_year then title = title:format(last_year) end
    end
    if res then sections[#sections + 1] = { title = title, result = res, chart = s.chart } end
  end
  return sections
end

return report

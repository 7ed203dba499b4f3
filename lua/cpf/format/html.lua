-- cpf.format.html — html (one self-contained page: the table and an inline SVG chart) and svg
-- (the chart alone: horizontal bars, or a line for a month series). Same bytes on every run.
local common = require "cpf.format.common"
local option = common.option

local html = {}

local esc = common.xml_escape
local floor, ceil, log = math.floor, math.ceil, math.log
local COLOR = "#4e79a7"
local WIDTH = 640

-- The width of a character of the charts' 12 px text, about (what margins are sized with).
local CHAR_W = 7

local function px(v) return common.fixed_text(v, 1) end

local function one_line(s)
  return (s:gsub("\r\n", " "):gsub("[\t\r\n]", " "))
end

-- chart = {x = column, y = numeric column}; both optional
local function check_chart(v, res)
  if type(v) ~= "table" then return "must be a table {x = column, y = column}" end
  for k, c in pairs(v) do
    if k ~= "x" and k ~= "y" then return ("has an unknown field '%s' (x, y)"):format(tostring(k)) end
    local err = option.column(c, res)
    if err then return ("field '%s' %s"):format(k, err) end
  end
end

-- The charted columns: chart.x or the first column; chart.y, else the column the result is
-- sorted by first when it is a numeric measure (what the page is about: "-montant"), else the
-- first numeric measure, else the first numeric column other than x (nil when there is none).
local function chart_columns(res, chart, info)
  local x = chart and chart.x or res:columns()[1]
  local y = chart and chart.y
  local is_key = {}
  for _, k in ipairs(res.keys and res:keys() or {}) do is_key[k] = true end
  local function measure(c) return c.numeric and c.name ~= x and not is_key[c.name] end
  if y == nil then
    local first = (res.order and res:order() or {})[1]
    first = first and first:gsub("^%-", "")
    for _, c in ipairs(info) do if c.name == first and measure(c) then y = c.name end end
  end
  for _, c in ipairs(info) do if y == nil and measure(c) then y = c.name end end
  for _, c in ipairs(info) do if y == nil and c.numeric and c.name ~= x then y = c.name end end
  local x_info, y_info
  for _, c in ipairs(info) do
    if c.name == x then x_info = c end
    if c.name == y then y_info = c end
  end
  return x_info, y_info
end

local function check_charted(opts, res, required)
  if opts.chart == false then return nil end
  local info = common.column_info(res, res:columns(), opts)
  local x, y = chart_columns(res, opts.chart, info)
  if opts.chart and opts.chart.y and not y.numeric then
    return ("chart y '%s' is not a numeric column"):format(y.name)
  end
  if required and (not x or not y) then
    return "the result has no numeric column to chart (chart = {x = column, y = column})"
  end
end

-- Month series: every x a "YYYY-MM" string, each once.
local function is_month_series(res, x)
  local seen, any = {}, false
  for _, row in ipairs(res) do
    local v = row[x]
    if v ~= nil then
      if type(v) ~= "string" or not v:find("^%d%d%d%d%-%d%d$") or seen[v] then return false end
      seen[v], any = true, true
    end
  end
  return any
end

local function svg_open(parts, w, h, title)
  parts[#parts + 1] = ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
    .. 'font-family="sans-serif" font-size="12" role="img">\n'):format(w, h, w, h)
  if title then
    parts[#parts + 1] = ("<title>%s</title>\n"):format(esc(title))
    parts[#parts + 1] = ('<text x="%d" y="20" text-anchor="middle" font-size="15" font-weight="bold">%s</text>\n')
      :format(floor(w / 2), esc(title))
  end
end

local function value_range(values, n)
  local lo, hi = 0, 0
  for i = 1, n do
    local v = values[i]
    if v then
      if v < lo then lo = v end
      if v > hi then hi = v end
    end
  end
  if hi == lo then hi = lo + 1 end
  return lo, hi
end

local function bar_chart(res, x, y, title)
  local labels, values, texts, longest = {}, {}, {}, 0
  local n = #res
  for i, row in ipairs(res) do
    labels[i] = common.truncate(one_line(common.display_text(row[x.name], x.decimals, x.opts)), 30)
    if common.display_width(labels[i]) > longest then longest = common.display_width(labels[i]) end
    local v = row[y.name]
    values[i] = type(v) == "number" and common.is_finite(v) and v or nil
    texts[i] = common.display_text(values[i], y.decimals, y.opts) -- the column's: a rate in percent
  end
  -- about 7 px per character at 12 px; the values' texts after the bars fit the right margin
  local label_w = math.min(math.max(longest * 7 + 16, 60), 240)
  local longest_text = 0
  for i = 1, n do longest_text = math.max(longest_text, common.display_width(texts[i] or "")) end
  local x0, x1 = label_w, WIDTH - math.max(60, longest_text * CHAR_W + 12)
  local top = title and 52 or 24
  local row_h = 22
  local height = top + n * row_h + 36
  local lo, hi = value_range(values, n)
  local function at(v) return x0 + (v - lo) / (hi - lo) * (x1 - x0) end
  local parts = {}
  svg_open(parts, WIDTH, height, title)
  parts[#parts + 1] = ('<text x="%d" y="%d" text-anchor="end" font-weight="bold">%s</text>\n')
    :format(label_w - 8, top - 8, esc(x.title))
  parts[#parts + 1] = ('<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="#888"/>\n')
    :format(px(at(0)), top - 2, px(at(0)), top + n * row_h)
  for i = 1, n do
    local y0 = top + (i - 1) * row_h
    parts[#parts + 1] = ('<text x="%d" y="%d" text-anchor="end">%s</text>\n')
      :format(label_w - 8, y0 + 15, esc(labels[i]))
    local v = values[i]
    if v then
      local left, right = at(math.min(v, 0)), at(math.max(v, 0))
      parts[#parts + 1] = ('<rect x="%s" y="%d" width="%s" height="16" fill="%s"><title>%s: %s</title></rect>\n')
        :format(px(left), y0 + 3, px(right - left), COLOR, esc(labels[i]), esc(texts[i]))
      parts[#parts + 1] = ('<text x="%s" y="%d">%s</text>\n'):format(px(right + 4), y0 + 15, esc(texts[i]))
    end
  end
  parts[#parts + 1] = ('<text x="%s" y="%d" text-anchor="middle" font-weight="bold">%s</text>\n')
    :format(px((x0 + x1) / 2), height - 10, esc(y.title))
  parts[#parts + 1] = "</svg>\n"
  return table.concat(parts)
end

-- About five round ticks (steps of 1, 2 or 5 × 10^k) covering lo..hi, and their decimals.
local function nice_ticks(lo, hi)
  local raw = (hi - lo) / 5
  local magnitude = 10 ^ floor(log(raw) / log(10))
  local f = raw / magnitude
  local step = (f <= 1 and 1 or f <= 2 and 2 or f <= 5 and 5 or 10) * magnitude
  local ticks = {}
  for k = floor(lo / step), ceil(hi / step) do ticks[#ticks + 1] = k * step end
  local decimals = step >= 1 and 0 or ceil(-log(step) / log(10) - 1e-9)
  return ticks, decimals
end

local function line_chart(res, x, y, title)
  local points = {}
  for _, row in ipairs(res) do
    if row[x.name] ~= nil then points[#points + 1] = row end
  end
  table.sort(points, function(a, b) return a[x.name] < b[x.name] end)
  local n = #points
  local months, values = {}, {}
  for i, row in ipairs(points) do
    months[i] = common.month_label(row[x.name], x.opts.locale) -- janv. 2024 under fr
    local v = row[y.name]
    values[i] = type(v) == "number" and common.is_finite(v) and v or nil
  end
  local height = 320
  local ticks, tick_decimals = nice_ticks(value_range(values, n))
  if y.opts.scale then tick_decimals = math.max(0, tick_decimals - 2) end -- 0.05 reads 5 %
  -- the margins from the labels' widths at any magnitude: the y labels right of the rotated
  -- title, the last month's label (centred on its point) inside the drawing
  local tick_texts, widest_tick, widest_month = {}, 0, 0
  for k, t in ipairs(ticks) do
    tick_texts[k] = common.display_number(t, tick_decimals, y.opts)
    widest_tick = math.max(widest_tick, common.display_width(tick_texts[k]))
  end
  for i = 1, n do widest_month = math.max(widest_month, common.display_width(months[i])) end
  local last_half = n > 0 and ceil(common.display_width(months[n]) * CHAR_W / 2) or 0
  local left = math.max(80, 32 + widest_tick * CHAR_W)
  local right, top, bottom = WIDTH - math.max(24, last_half + 4), title and 44 or 16, height - 56
  local lo, hi = ticks[1], ticks[#ticks]
  local function at_y(v) return bottom - (v - lo) / (hi - lo) * (bottom - top) end
  local function at_x(i) return n == 1 and (left + right) / 2 or left + (i - 1) / (n - 1) * (right - left) end
  local parts = {}
  svg_open(parts, WIDTH, height, title)
  for k, t in ipairs(ticks) do
    local ty = px(at_y(t))
    parts[#parts + 1] = ('<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#ddd"/>\n'):format(left, ty, right, ty)
    parts[#parts + 1] = ('<text x="%d" y="%s" text-anchor="end">%s</text>\n')
      :format(left - 6, px(at_y(t) + 4), esc(tick_texts[k]))
  end
  parts[#parts + 1] = ('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>\n'):format(left, bottom, right, bottom)
  -- at most ten month labels, fewer when wide ones would overlap
  local every = ceil(n / 10)
  if n > 1 then every = math.max(every, ceil((widest_month * CHAR_W + 8) / ((right - left) / (n - 1)))) end
  for i = 1, n, every do
    parts[#parts + 1] = ('<text x="%s" y="%d" text-anchor="middle">%s</text>\n')
      :format(px(at_x(i)), bottom + 18, esc(months[i]))
  end
  local path, move = {}, true
  for i = 1, n do
    if values[i] then
      path[#path + 1] = (move and "M" or "L") .. px(at_x(i)) .. " " .. px(at_y(values[i]))
      move = false
    else
      move = true -- a missing month breaks the line
    end
  end
  if #path > 0 then
    parts[#parts + 1] = ('<path d="%s" fill="none" stroke="%s" stroke-width="2"/>\n')
      :format(table.concat(path, " "), COLOR)
  end
  for i = 1, n do
    if values[i] then
      parts[#parts + 1] = ('<circle cx="%s" cy="%s" r="3" fill="%s"><title>%s: %s</title></circle>\n')
        :format(px(at_x(i)), px(at_y(values[i])), COLOR, esc(months[i]),
                esc(common.display_text(values[i], y.decimals, y.opts)))
    end
  end
  parts[#parts + 1] = ('<text x="%d" y="%d" text-anchor="middle" font-weight="bold">%s</text>\n')
    :format(floor((left + right) / 2), height - 12, esc(x.title))
  parts[#parts + 1] = ('<text transform="translate(16 %d) rotate(-90)" text-anchor="middle" '
    .. 'font-weight="bold">%s</text>\n')
    :format(floor((top + bottom) / 2), esc(y.title))
  parts[#parts + 1] = "</svg>\n"
  return table.concat(parts)
end

-- The chart's SVG, or nil when there is nothing to chart.
local function chart(res, opts, title)
  local info = common.column_info(res, res:columns(), opts)
  local x, y = chart_columns(res, opts.chart, info)
  if not x or not y then return nil end
  if is_month_series(res, x.name) then return line_chart(res, x, y, title) end
  return bar_chart(res, x, y, title)
end

local chart_options = { title = option.string, chart = check_chart }
common.display_options(chart_options)

html.svg = {
  options = chart_options,
  check = function(opts, res) return check_charted(opts, res, true) end,
  write = function(res, out, opts)
    out:write(chart(res, opts, opts.title))
  end,
}

local CSS = [[
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#222;background:#fff}
h1{font-size:1.4rem}
figure{margin:1rem 0}
svg{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:.9rem}
th,td{padding:.3rem .7rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th{border-bottom:2px solid #999}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.total td,tr.subtotal td,tr.others td{font-weight:bold}
]]

local function html_cell(s)
  return (esc(s):gsub("\r\n", "<br>"):gsub("[\r\n]", "<br>"))
end

local page_options = { chart = function(v, res) if v ~= false then return check_chart(v, res) end end }
for k, v in pairs(chart_options) do page_options[k] = page_options[k] or v end

--- The result's table as an HTML fragment (<table>...</table>), for pages of several results
--- (cpf.report). opts: the display options.
function html.table_fragment(res, opts)
  local parts = {}
  local info = common.column_info(res, res:columns(), opts)
  parts[#parts + 1] = "<table>\n<thead>\n<tr>"
  for _, c in ipairs(info) do
    parts[#parts + 1] = (c.numeric and '<th class="num">' or "<th>") .. html_cell(c.title) .. "</th>"
  end
  parts[#parts + 1] = "</tr>\n</thead>\n<tbody>\n"
  local label = common.rollup_label(res, opts.locale)
  local marked, note = common.partial_marks(res, opts.locale)
  local any
  for i, row in ipairs(res) do
    local kind = res.row_kind and res:row_kind(i)
    parts[#parts + 1] = kind and ('<tr class="%s">'):format(kind) or "<tr>" -- a total or Autres: bold
    for _, c in ipairs(info) do
      local v = row[c.name]
      local numeric = c.numeric or type(v) == "number"
      local s = label(i, row, c.name) or common.display_text(v, c.decimals, c.opts)
      if v ~= nil and s ~= "" and marked(row, c.name) then s, any = s .. "*", true end -- on a partial period
      parts[#parts + 1] = (numeric and '<td class="num">' or "<td>") .. html_cell(s) .. "</td>"
    end
    parts[#parts + 1] = "</tr>\n"
  end
  parts[#parts + 1] = "</tbody>\n</table>\n"
  if any then parts[#parts + 1] = '<p class="note">' .. html_cell(note) .. "</p>\n" end
  return table.concat(parts)
end

--- The result's chart as SVG (opts.chart: {x =, y =}; the defaults of the svg format), or nil
--- when it has nothing to chart.
function html.chart_fragment(res, opts, title) return chart(res, opts, title) end

html.CSS = CSS

html.html = {
  options = page_options,
  check = function(opts, res) return check_charted(opts, res, false) end,
  write = function(res, out, opts)
    local title = esc(opts.title or "cpf")
    out:write('<!DOCTYPE html>\n<html lang="fr">\n<head>\n<meta charset="utf-8">\n',
      '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
      "<title>", title, "</title>\n<style>\n", CSS, "</style>\n</head>\n<body>\n<h1>", title, "</h1>\n")
    local svg = opts.chart ~= false and chart(res, opts, nil)
    if svg then out:write("<figure>\n", svg, "</figure>\n") end
    out:write(html.table_fragment(res, opts), "</body>\n</html>\n")
  end,
}

return html

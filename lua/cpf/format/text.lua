-- cpf.format.text — the formats people read as text: table (aligned by display width for a
-- terminal, with an optional bar column; what print(res) shows) and markdown (GitHub tables).
local common = require "cpf.format.common"
local option = common.option

local text = {}

local width = common.display_width

local terminal_text = common.terminal_text

-- Each row's cell texts, per column info (numeric, decimals) from common.column_info; a total
-- or "Autres" row says so in its first missing key (common.rollup_label), and `strong` (when
-- given) marks its cells; a change on a partial period ends with "*" (common.partial_marks).
-- Also the note explaining "*" when a cell has it.
local function cell_texts(res, info, fix, locale, strong)
  local rows, label = {}, common.rollup_label(res, locale)
  local marked, note = common.partial_marks(res, locale)
  local any
  for i, row in ipairs(res) do
    local cells = {}
    for j, c in ipairs(info) do
      local v = row[c.name]
      local s = label(i, row, c.name) or common.display_text(v, c.decimals, c.opts)
      s = fix(s, type(v) == "number")
      if v ~= nil and s ~= "" and marked(row, c.name) then s, any = s .. "*", true end
      if strong and res:row_kind(i) and s ~= "" then s = strong(s) end
      cells[j] = s
    end
    rows[i] = cells
  end
  return rows, any and note or nil
end

local check_max_width = option.count(2)

text.table = {
  options = common.display_options {
    max_width = function(v) if v ~= false then return check_max_width(v) end end,
    bar = option.column,
    bar_width = option.count(1, 1000),
    ascii = option.boolean,
  },
  check = function(opts, res)
    if opts.bar == nil then return nil end
    for _, row in ipairs(res) do
      local v = row[opts.bar]
      if v ~= nil and type(v) ~= "number" then
        return ("option 'bar' needs a numeric column ('%s' holds %s values)"):format(opts.bar, type(v))
      end
    end
  end,
  write = function(res, out, opts)
    local columns = res:columns()
    local info = common.column_info(res, columns, opts)
    local max_width = opts.max_width
    if max_width == nil then max_width = 40 end
    -- text is cut to max_width; a number never is
    local function fix(s, is_number)
      s = terminal_text(s) -- one line, nothing a terminal would act on
      if max_width and not is_number then s = common.truncate(s, max_width) end
      return s
    end
    local header, widths = {}, {}
    for j in ipairs(columns) do
      header[j] = fix(info[j].title)
      widths[j] = width(header[j])
    end
    local rows, note = cell_texts(res, info, fix, opts.locale)
    for _, cells in ipairs(rows) do
      for j, s in ipairs(cells) do
        local w = width(s)
        if w > widths[j] then widths[j] = w end
      end
    end

    local bars = {}
    if opts.bar then
      local max = 0
      for _, row in ipairs(res) do
        local v = row[opts.bar]
        if type(v) == "number" and common.is_finite(v) and v > max then max = v end
      end
      local ascii = opts.ascii
      if ascii == nil then ascii = not common.unicode_terminal() end
      for i, row in ipairs(res) do bars[i] = common.bar(row[opts.bar], max, opts.bar_width or 20, ascii) end
    end

    -- numbers to the right; a numeric column's header and missing cells too
    local function line(cells, values, bar)
      local parts = {}
      for j, s in ipairs(cells) do
        local pad = (" "):rep(widths[j] - width(s))
        local right = info[j].numeric or (values and type(values[info[j].name]) == "number")
        parts[j] = right and pad .. s or s .. pad
      end
      parts[#parts + 1] = bar
      out:write((table.concat(parts, "  "):gsub(" +$", "")), "\n")
    end
    line(header)
    local rule = {}
    for j, w in ipairs(widths) do rule[j] = ("-"):rep(w) end
    line(rule)
    for i, cells in ipairs(rows) do line(cells, res[i], bars[i]) end
    if note then out:write(note, "\n") end
  end,
}

-- '|' would end the cell and a line break the row; other control characters are shown escaped
-- as in table (a Markdown file is read in a terminal too).
local function markdown_cell(s)
  s = common.valid_utf8(s):gsub("|", "\\|"):gsub("\r\n", "<br>"):gsub("[\r\n]", "<br>")
  return terminal_text(s)
end

local MARKDOWN_ALIGN = 80

text.markdown = {
  options = common.display_options {},
  write = function(res, out, opts)
    local columns = res:columns()
    local info = common.column_info(res, columns, opts)
    local header, widths = {}, {}
    for j in ipairs(columns) do
      header[j] = markdown_cell(info[j].title)
      widths[j] = math.max(3, math.min(width(header[j], MARKDOWN_ALIGN), MARKDOWN_ALIGN))
    end
    local rows, note = cell_texts(res, info, markdown_cell, opts.locale, function(s) return "**" .. s .. "**" end)
    -- aligned up to MARKDOWN_ALIGN columns: a wider value is written whole but not padded to,
    -- so the file stays as long as its values (never rows × the widest cell)
    for _, cells in ipairs(rows) do
      for j, s in ipairs(cells) do
        local w = math.min(width(s, MARKDOWN_ALIGN), MARKDOWN_ALIGN)
        if w > widths[j] then widths[j] = w end
      end
    end
    local function line(cells)
      local parts = {}
      for j, s in ipairs(cells) do
        local pad = (" "):rep(widths[j] - width(s, widths[j]))
        parts[j] = info[j].numeric and pad .. s or s .. pad
      end
      out:write("| ", table.concat(parts, " | "), " |\n")
    end
    line(header)
    local rule = {}
    for j, w in ipairs(widths) do
      rule[j] = info[j].numeric and ("-"):rep(w + 1) .. ":" or ("-"):rep(w + 2)
    end
    out:write("|", table.concat(rule, "|"), "|\n")
    for _, cells in ipairs(rows) do line(cells) end
    if note then out:write("\n", (note:gsub("^%*", "\\*")), "\n") end
  end,
}

return text

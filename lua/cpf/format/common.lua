-- cpf.format.common — what every output format shares: numbers written the same under every C
-- locale and Lua, valid UTF-8, display width for terminals, and per-column display rules.
local core = require "cpf.core"
local schema = require "cpf.schema"

local common = {}

local floor, huge = math.floor, math.huge
local math_type = math.type
local concat = table.concat

local function is_finite(v)
  return v == v and v ~= huge and v ~= -huge
end
common.is_finite = is_finite

-- Numbers become text in C (core.number_text, core.fixed_text): the same digits on every Lua
-- (LuaJIT's string.format rounds ties its own way) and "." whatever the C locale.
local number_text, fixed_text = core.number_text, core.fixed_text
--- v with `decimals` fixed decimals (0 to 9), "." as the decimal point; nil for NaN and ±inf.
common.fixed_text = fixed_text

--- Text of a finite number that reads back as the same number, "." as the decimal point:
--- integers (5.3/5.4) and whole floats up to 2^53 as integers, other floats with the fewest
--- significant digits (1 to 17) that round-trip, written by the C core (core.number_text) so
--- that every Lua writes the same digits. nil for NaN and ±inf.
function common.number_text(v)
  if not is_finite(v) then return nil end
  if v == 0 then return "0" end -- -0.0 too
  if math_type and math_type(v) == "integer" then return ("%d"):format(v) end
  if v == floor(v) and v >= -2 ^ 53 and v <= 2 ^ 53 then return ("%.0f"):format(v) end
  return number_text(v)
end

-- ---- UTF-8 ----

-- Code point and byte length of the UTF-8 sequence at i, or nil when it is not valid there
-- (stray continuation byte, overlong form, surrogate, above U+10FFFF, cut sequence).
local function decode(s, i)
  local c = s:byte(i)
  if c < 0x80 then return c, 1 end
  local len, cp
  if c >= 0xC2 and c <= 0xDF then len, cp = 2, c - 0xC0
  elseif c >= 0xE0 and c <= 0xEF then len, cp = 3, c - 0xE0
  elseif c >= 0xF0 and c <= 0xF4 then len, cp = 4, c - 0xF0
  else return nil end
  for k = 1, len - 1 do
    local b = s:byte(i + k)
    if not b or b < 0x80 or b > 0xBF then return nil end
    cp = cp * 64 + (b - 0x80)
  end
  if (len == 3 and (cp < 0x800 or (cp >= 0xD800 and cp <= 0xDFFF)))
     or (len == 4 and (cp < 0x10000 or cp > 0x10FFFF)) then
    return nil
  end
  return cp, len
end

local REPLACEMENT = "\239\191\189" -- U+FFFD

--- s with every byte that is not part of a valid UTF-8 sequence replaced by U+FFFD.
function common.valid_utf8(s)
  if not s:find("[\128-\255]") then return s end
  local out, i, n, start = {}, 1, #s, 1
  while i <= n do
    local _, len = decode(s, i)
    if len then
      i = i + len
    else
      out[#out + 1] = s:sub(start, i - 1)
      out[#out + 1] = REPLACEMENT
      i = i + 1
      start = i
    end
  end
  out[#out + 1] = s:sub(start)
  return concat(out)
end

local NAMED_CONTROLS = { ["\t"] = "\\t", ["\n"] = "\\n", ["\r"] = "\\r" }
local function terminal_control(cp)
  return (cp >= 0x80 and cp <= 0x9F) or cp == 0x061C or (cp >= 0x202A and cp <= 0x202E)
    or (cp >= 0x2066 and cp <= 0x2069)
end
local function hex_byte(c) return NAMED_CONTROLS[c] or ("\\x%02X"):format(c:byte()) end

--- s made safe to send to a terminal, where a control character of the data could move the
--- cursor, retitle the window or hide lines: C0 controls and DEL become \t, \n, \r or \xHH,
--- C1 controls (U+0080-U+009F) and the bidirectional embeddings, overrides and isolates (which
--- show a line in another order) \uHHHH, and a byte that is not UTF-8 \xHH (an 8-bit terminal
--- reads 0x9B as a control). keep_lines leaves LF and tab as they are (messages).
function common.terminal_text(s, keep_lines)
  s = s:gsub(keep_lines and "[%z\1-\8\11-\31\127]" or "[%z\1-\31\127]", hex_byte)
  if not s:find("[\128-\255]") then return s end
  local out, i, n, start = {}, 1, #s, 1
  while i <= n do
    local cp, len = decode(s, i)
    if cp and not terminal_control(cp) then
      i = i + len
    else
      out[#out + 1] = s:sub(start, i - 1)
      out[#out + 1] = cp and ("\\u%04X"):format(cp) or hex_byte(s:sub(i, i))
      i = i + (len or 1)
      start = i
    end
  end
  out[#out + 1] = s:sub(start)
  return concat(out)
end

-- Columns a code point takes in a terminal: 0 for combining marks and zero-width characters,
-- 2 for the East Asian wide and fullwidth blocks (CJK, Hangul, fullwidth forms, most emoji).
local ZERO = { { 0x0300, 0x036F }, { 0x0483, 0x0489 }, { 0x0591, 0x05BD }, { 0x1AB0, 0x1AFF },
               { 0x1DC0, 0x1DFF }, { 0x200B, 0x200F }, { 0x20D0, 0x20FF }, { 0xFE00, 0xFE0F },
               { 0xFE20, 0xFE2F } }
local WIDE = { { 0x1100, 0x115F }, { 0x2E80, 0x303E }, { 0x3041, 0x33FF }, { 0x3400, 0x4DBF },
               { 0x4E00, 0x9FFF }, { 0xA000, 0xA4CF }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF },
               { 0xFE30, 0xFE4F }, { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 }, { 0x1F300, 0x1F64F },
               { 0x1F900, 0x1F9FF }, { 0x20000, 0x2FFFD }, { 0x30000, 0x3FFFD } }

local function in_ranges(cp, ranges)
  for _, r in ipairs(ranges) do
    if cp < r[1] then return false end
    if cp <= r[2] then return true end
  end
  return false
end

local function codepoint_width(cp)
  if cp < 0x300 then return 1 end
  if in_ranges(cp, ZERO) then return 0 end
  if in_ranges(cp, WIDE) then return 2 end
  return 1
end

--- Terminal columns taken by UTF-8 text; an invalid byte counts as one column. With `limit`,
--- the walk stops once the width passes it (a giant cell is measured as far as it is shown):
--- then any number above limit.
function common.display_width(s, limit)
  if not s:find("[\128-\255]") then return #s end
  local w, i, n = 0, 1, #s
  limit = limit or math.huge
  while i <= n and w <= limit do
    local cp, len = decode(s, i)
    if cp then w, i = w + codepoint_width(cp), i + len else w, i = w + 1, i + 1 end
  end
  return w
end

--- s cut to at most max columns, ending with "…" when cut (never inside a character). One
--- walk that stops at the cut: the time does not grow with what is cut off.
function common.truncate(s, max)
  if #s <= max then return s end -- no character takes more columns than bytes
  local w, i, n, cut = 0, 1, #s, nil
  while i <= n do
    local cp, len = decode(s, i)
    local cw = cp and codepoint_width(cp) or 1
    len = cp and len or 1
    if not cut and w + cw > max - 1 then cut = i end
    w, i = w + cw, i + len
    if w > max then return s:sub(1, cut - 1) .. "…" end
  end
  return s
end

-- ---- columns and display numbers (table, markdown, html) ----

-- ---- locales of the display formats ----

local NBSP, NNBSP = "\194\160", "\226\128\175" -- U+00A0 no-break space, U+202F narrow no-break space

--- What a locale changes in the display formats: the number marks, how an amount and a rate read
--- and what a missing key says. "C" (the default) is none of it: the numbers as they are.
common.locales = {
  fr = { thousands = NNBSP, decimal = ",", money_prefix = "", money_suffix = NBSP .. "€",
         rate_suffix = NBSP .. "%", missing = "Non renseigné" },
  en = { thousands = ",", decimal = ".", money_prefix = "€", money_suffix = "", rate_suffix = "%",
         missing = "Not specified" },
}

local MONTHS = {
  fr = { "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc." },
  en = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" },
}

--- A month "YYYY-MM" as a chart reads it under a locale ("janv. 2024", "Jan 2024"); as it is
--- under C or when it is no month.
function common.month_label(v, locale)
  local names = MONTHS[locale]
  local y, m = tostring(v):match("^(%d%d%d%d)%-(%d%d)$")
  if not names or not y or not names[tonumber(m)] then return v end
  return names[tonumber(m)] .. " " .. y
end

--- The locale the environment asks for: "fr" when LC_ALL, else LC_NUMERIC, else LANG names a
--- French locale (fr_FR.UTF-8, fr_BE...), else "C".
function common.environment_locale()
  for _, var in ipairs { "LC_ALL", "LC_NUMERIC", "LANG" } do
    local v = os.getenv(var)
    if v and v ~= "" then return v:match("^fr[_.@]") and "fr" or v == "fr" and "fr" or "C" end
  end
  return "C"
end

-- The options of a column of `kind` under locale L, the caller's own options winning: the marks,
-- and for amounts and rates the decimals, scale and signs around the number.
local function locale_options(L, kind, opts, value_labels)
  local t = { thousands = L.thousands, decimal = L.decimal }
  if kind == "money" then t.prefix, t.suffix = L.money_prefix, L.money_suffix end
  if kind == "rate" then t.scale, t.suffix = 100, L.rate_suffix end
  if kind == "key" then t.thousands, t.nil_text = false, L.missing end
  t.value_labels = value_labels
  for _, k in ipairs { "thousands", "decimal", "nil_text" } do
    if opts[k] ~= nil and not (kind == "key" and k == "thousands") then t[k] = opts[k] end
  end
  return setmetatable(t, { __index = opts })
end

local KIND_DECIMALS = { count = 0, money = 2, rate = 1 }

--- A column's title for readers in `locale` ("fr" or "en"): `titles[name]` (the labels option),
--- else the result's own label of a derived column, else the schema's label of a CPF column or
--- measure, else its name.
function common.column_title(res, name, locale, titles)
  if titles and titles[name] then return titles[name] end
  local own = res.labels and res:labels()[name]
  return own and own[locale] or (schema.labels[locale] or {})[name] or name
end

--- Per column: numeric (at least one number and nothing but numbers besides nil), the
--- decimals its numbers are shown with: opts.decimals, or 0 when every number is whole, else
--- 2 when the largest magnitude is at least 1, else 4 (shares and rates); and the options its
--- cells are written with (a key column's without thousands separators). With opts.locale "fr"
--- or "en", a column whose kind the result knows (res:kinds()) reads as that kind: a count
--- whole, an amount with 2 decimals and €, a rate in percent with 1 decimal, a missing key as
--- the locale says; the others with the locale's marks.
function common.column_info(res, columns, opts)
  local info = {}
  -- key columns (years, codes) are labels: shown without thousands separators
  local is_key, plain = {}, opts
  if res.keys then
    for _, k in ipairs(res:keys()) do is_key[k] = true end
    plain = setmetatable({ thousands = false }, { __index = opts })
  end
  local L = opts.locale and common.locales[opts.locale]
  local kinds = L and res.kinds and res:kinds() or {}
  -- a column's title: opts.labels, else the locale's label of a CPF column or measure, else its name
  local labels = opts.labels or {}
  local locale_labels = L and schema.labels[opts.locale] or {}
  local own_labels = L and res.labels and res:labels() or {} -- the result's derived columns'
  for j, name in ipairs(columns) do
    local numbers, others, whole, largest = 0, 0, true, 0
    for _, row in ipairs(res) do
      local v = row[name]
      if type(v) == "number" then
        numbers = numbers + 1
        if is_finite(v) then
          if v ~= floor(v) then whole = false end
          if math.abs(v) > largest then largest = math.abs(v) end
        end
      elseif v ~= nil then
        others = others + 1
      end
    end
    local decimals = 0
    if not whole then decimals = opts.decimals or (largest >= 1 and 2 or 4) end
    local column_opts = is_key[name] and plain or opts
    if L then
      local kind = kinds[name] or (is_key[name] and "key") or "number"
      local values = kind == "key" and schema.value_labels[opts.locale][name] or nil
      column_opts = locale_options(L, kind, opts, values)
      if KIND_DECIMALS[kind] then
        decimals = opts.decimals and kind ~= "count" and opts.decimals or KIND_DECIMALS[kind]
      end
    end
    info[j] = { name = name, numeric = numbers > 0 and others == 0, decimals = decimals, opts = column_opts,
                title = labels[name] or (own_labels[name] and own_labels[name][opts.locale])
                  or locale_labels[name] or name }
  end
  return info
end

local function group_thousands(digits, sep)
  local head = #digits % 3
  local parts = {}
  if head > 0 then parts[1] = digits:sub(1, head) end
  for k = head + 1, #digits, 3 do parts[#parts + 1] = digits:sub(k, k + 2) end
  return concat(parts, sep)
end

--- A number for reading: `decimals` fixed decimals (0: rounded to a whole number), integer
--- digits grouped with opts.thousands, opts.decimal as the mark. nil for NaN and ±inf.
function common.display_number(v, decimals, opts)
  if not is_finite(v) then return nil end
  if opts.scale then v = v * opts.scale end -- a rate in percent
  local s
  if math_type and math_type(v) == "integer" then
    s = ("%d"):format(v)
    if decimals > 0 then s = s .. "." .. ("0"):rep(decimals) end
  elseif math.abs(v) >= 1e15 and v ~= floor(v) or math.abs(v) >= 1e21 then
    s = common.number_text(v) -- fixed decimals would write digits the double does not hold
  else
    s = fixed_text(v, decimals) -- the C library's rounding of the exact value, on every Lua
  end
  if s:find("^%-[0.]+$") then s = s:sub(2) end -- no "-0.00"
  local sign, int, frac = s:match("^(%-?)(%d+)(.*)$")
  if opts.thousands and opts.thousands ~= "" then int = group_thousands(int, opts.thousands) end
  if frac ~= "" and opts.decimal and opts.decimal ~= "." then frac = opts.decimal .. frac:sub(2) end
  return sign .. (opts.prefix or "") .. int .. frac .. (opts.suffix or "")
end

--- Text of any value for the display formats: numbers by display_number, nil (and NaN, ±inf)
--- as opts.nil_text or "".
function common.display_text(v, decimals, opts)
  if type(v) == "number" then v = common.display_number(v, decimals, opts) end
  if opts.value_labels and v ~= nil and opts.value_labels[v] then v = opts.value_labels[v] end -- "Annulés"
  if v == nil then return opts.nil_text or "" end
  return tostring(v)
end

--- HTML/XML text: escaped, valid UTF-8, no control characters XML forbids.
function common.xml_escape(s)
  s = common.valid_utf8(tostring(s))
  s = s:gsub("[%z\1-\8\11\12\14-\31\127]", REPLACEMENT) -- no control character is XML (DEL neither)
  s = s:gsub("\239\191[\190\191]", REPLACEMENT) -- nor U+FFFE and U+FFFF, which no XML reader takes
  return (s:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
                                 ["'"] = "&#39;" }))
end

-- ---- terminal bars ----

local EIGHTHS = { "▏", "▎", "▍", "▌", "▋", "▊", "▉" }

--- True when a terminal can be sent Unicode blocks: NO_COLOR unset or empty, and the locale
--- (LC_ALL, else LC_CTYPE, else LANG) names UTF-8.
function common.unicode_terminal()
  local no_color = os.getenv("NO_COLOR")
  if no_color and no_color ~= "" then return false end
  local locale
  for _, var in ipairs { "LC_ALL", "LC_CTYPE", "LANG" } do
    locale = os.getenv(var)
    if locale and locale ~= "" then break end
  end
  return locale ~= nil and locale:lower():gsub("[^%w]", ""):find("utf8") ~= nil
end

--- A bar of `value / max` × width columns: full blocks and an eighth-block tail, or '#' when
--- ascii. Empty for nil, NaN, zero and negative values.
function common.bar(value, max, width, ascii)
  if type(value) ~= "number" or not is_finite(value) or value <= 0
     or type(max) ~= "number" or not (max > 0) or max == huge then
    return ""
  end
  local fraction = math.min(value / max, 1)
  if ascii then return ("#"):rep(floor(fraction * width + 0.5)) end
  local eighths = floor(fraction * width * 8 + 0.5)
  local tail = eighths % 8
  return ("█"):rep((eighths - tail) / 8) .. (EIGHTHS[tail] or "")
end


-- ---- option checks: nil when the value is right, else the end of a message ----

local option = {}
common.option = option

function option.boolean(v)
  if type(v) ~= "boolean" then return "must be true or false" end
end

function option.string(v)
  if type(v) ~= "string" then return "must be a string" end
end

function option.decimal(v)
  if v ~= "." and v ~= "," then return 'must be "." or ","' end
end

function option.eol(v)
  if v ~= "\n" and v ~= "\r\n" then return 'must be "\\n" or "\\r\\n"' end
end

--- A whole number from min to max (default: no bound).
function option.count(min, max)
  return function(v)
    if type(v) ~= "number" or v ~= floor(v) or v < min or v > (max or 2 ^ 31) then
      return max and ("must be a whole number from %d to %d"):format(min, max)
        or "must be a whole number >= " .. min
    end
  end
end

function option.column(v, res)
  if type(v) ~= "string" then return "must be a column name" end
  for _, c in ipairs(res:columns()) do
    if c == v then return nil end
  end
  return ("names no column of the result ('%s')"):format(v)
end

function option.labels(v)
  if type(v) ~= "table" then return "must be a table {column = title}" end
  for k, x in pairs(v) do
    if type(k) ~= "string" or type(x) ~= "string" then return "must map column names to titles (strings)" end
  end
end

function option.locale(v)
  if v ~= "C" and not common.locales[v] then return 'must be "fr", "en" or "C"' end
end

-- The words of the rows that stand for several groups, by locale (C: English).
local ROLLUP_WORDS = { fr = { total = "Total", subtotal = "Total", others = "Autres" },
                       en = { total = "Total", subtotal = "Total", others = "Others" } }

--- The key cell texts of the rows that stand for several groups (res:row_kind): a function
--- (i, row, name) -> "Total" / "Autres" (fr; "Others" otherwise) for the first missing key of a
--- total, subtotal or others row, nil for any other cell.
function common.rollup_label(res, locale)
  if not res.row_kind then return function() return nil end end
  local words = ROLLUP_WORDS[locale] or ROLLUP_WORDS.en
  local keys = res:keys()
  return function(i, row, name)
    local kind = res:row_kind(i)
    if not kind then return nil end
    for _, k in ipairs(keys) do
      if row[k] == nil then return k == name and words[kind] or nil end
    end
    return nil
  end
end

local PARTIAL_NOTES = { fr = "* période incomplète : l'extraction du %s n'en couvre qu'une partie",
                        en = "* partial period: the extraction of %s covers only part of it" }

--- The cells of change and rolling columns (their labels' `compares`: the period column they
--- compare) on a period the extraction covers only in part (res:partial()): a function (row,
--- name) -> true for such a cell, which the display formats mark with "*", and the note that
--- explains the mark (in the locale; C: English). A result without such cells: a function
--- always false.
function common.partial_marks(res, locale)
  local none = function() return false end
  if not (res.partial and res.labels) then return none end
  local partial = {}
  for _, p in ipairs(res:partial()) do
    partial[p.column] = partial[p.column] or {}
    partial[p.column][p.value] = true
  end
  local over = {}
  for name, l in pairs(res:labels()) do
    if type(l) == "table" and l.compares and partial[l.compares] then over[name] = l.compares end
  end
  if next(over) == nil then return none end
  local note = (PARTIAL_NOTES[locale] or PARTIAL_NOTES.en):format(res:extraction())
  return function(row, name)
    local o = over[name]
    return o ~= nil and row[o] ~= nil and partial[o][row[o]] == true
  end, note
end

--- The result with a last column row_kind saying what each row stands for: "group", or
--- "total", "subtotal", "others" (the machine formats' row_kind option); the result itself
--- when it has no such column to add.
function common.with_row_kind(res)
  local columns = res:columns()
  columns[#columns + 1] = "row_kind"
  local rows = {}
  for i, r in ipairs(res) do
    local t = {}
    for k, v in pairs(r) do t[k] = v end
    t.row_kind = res.row_kind and res:row_kind(i) or "group"
    rows[i] = t
  end
  -- cpf.result: loaded here, where a format adds the column (the formats never need it else)
  return require("cpf.result").new(columns, rows, res:keys(), nil, res:kinds())
end

--- The display options of table, markdown, html and svg.
function common.display_options(t)
  t.decimals = option.count(0, 9)
  t.thousands = option.string
  t.decimal = option.decimal
  t.nil_text = option.string
  t.locale = option.locale
  t.labels = option.labels
  return t
end

return common

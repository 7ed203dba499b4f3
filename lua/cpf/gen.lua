-- cpf.gen: writes synthetic, seeded CSV files shaped like the CPF "formations
-- engagées" export (37 columns, Opendatasoft conventions), for tests and benchmarks.
--
-- Output is byte-identical for a given seed under Lua 5.1, 5.3, 5.4 and LuaJIT:
-- the generator has its own PRNG and uses only exactly rounded double
-- arithmetic (+ - * / % floor sqrt), never math.random, log, exp or pow, whose
-- results differ between Lua versions or libm builds. Integers stay far below
-- 2^53, so 5.4 integers and 5.1 doubles hold the same values; numbers only reach
-- the output through string.format("%d"), never through tostring or `..`.

local schema = require "cpf.schema"

local M = {}

local floor, sqrt = math.floor, math.sqrt
local format, concat, gsub, find = string.format, table.concat, string.gsub, string.find
local tonumber, type = tonumber, type

-- The export's columns (cpf.schema, the optional ones left out): headers as the export writes
-- them, and the API field names.
M.columns, M.fields = {}, {}
for _, c in ipairs(schema.columns) do
  if not c.optional then
    M.columns[#M.columns + 1] = c.label or c.name
    M.fields[#M.fields + 1] = c.name
  end
end

M.statuses = schema.statuses

M.modes = { "En présentiel", "À distance", "Mixte" }

---------------------------------------------------------------------------
-- PRNG: L'Ecuyer's combined multiplicative LCG (CACM 1988), period ~2.3e18.
-- Every product is below 2^47, so doubles compute it exactly, and so do 5.4
-- integers; `%` on such doubles is exact too.
---------------------------------------------------------------------------
local MOD1, MUL1 = 2147483563, 40014
local MOD2, MUL2 = 2147483399, 40692
local INV_MOD1 = 1 / MOD1

-- Returns a function yielding uniform doubles in the open interval (0, 1).
-- Seeds should be integers below 2^50 in magnitude (beyond that doubles and
-- 5.4 integers stop agreeing).
local function new_rng(seed)
  seed = floor(tonumber(seed) or 0)
  local s1 = seed % (MOD1 - 1) + 1
  local s2 = (s1 * 7 + 12345) % (MOD2 - 1) + 1
  local function rand()
    s1 = MUL1 * s1 % MOD1
    s2 = MUL2 * s2 % MOD2
    local z = s1 - s2
    if z < 1 then z = z + (MOD1 - 1) end
    return z * INV_MOD1
  end
  for _ = 1, 8 do rand() end
  return rand
end
M.new_rng = new_rng

-- Weighted choice: cumulative weights, then a binary search for u * total.
local function cumulate(weights)
  local cum, total = {}, 0
  for i = 1, #weights do
    total = total + weights[i]
    cum[i] = total
  end
  return { cum = cum, n = #weights, total = total }
end

local function pick(s, u)
  local x, cum = u * s.total, s.cum
  local lo, hi = 1, s.n
  while lo < hi do
    local mid = floor((lo + hi) / 2)
    if cum[mid] > x then hi = mid else lo = mid + 1 end
  end
  return lo
end

local function probabilities(weights)
  local total, p = 0, {}
  for i = 1, #weights do total = total + weights[i] end
  for i = 1, #weights do p[i] = weights[i] / total end
  return p
end

-- Opendatasoft quoting: only fields holding ; " CR or LF are quoted.
local function csv_field(s)
  if find(s, '[;"\r\n]') then
    return '"' .. gsub(s, '"', '""') .. '"'
  end
  return s
end

---------------------------------------------------------------------------
-- Reference data (cpf.gen.data)
---------------------------------------------------------------------------
local data = require "cpf.gen.data"
local REGIONS = data.REGIONS
local DEPARTMENTS = data.DEPARTMENTS
local NSF = data.NSF
local TERMS = data.TERMS
local QUALIFIERS = data.QUALIFIERS
local LONG_PHRASES = data.LONG_PHRASES
local QUOTED_NAMES = data.QUOTED_NAMES
local EXCEPTIONS = data.EXCEPTIONS
local STATUS_WEIGHTS = data.STATUS_WEIGHTS
local MODE_WEIGHTS = data.MODE_WEIGHTS
local MISSING_PLACE = data.MISSING_PLACE
local SEASON = data.SEASON
local KIND_SHARE = data.KIND_SHARE
local N_RNCP, N_RS = data.N_RNCP, data.N_RS
local FUNDERS = data.FUNDERS
local CELL_SCALE = data.CELL_SCALE

---------------------------------------------------------------------------
-- Catalogue: certifications, formacodes, labels. Depends only on its own
-- seed, so files generated with different seeds share codes and labels.
---------------------------------------------------------------------------
local CATALOGUE_SEED = 20260504
local catalogues = {}

local function shuffle(t, rand)
  for i = #t, 2, -1 do
    local j = floor(rand() * i) + 1
    t[i], t[j] = t[j], t[i]
  end
end

local function unique_code(rand, used, lo, hi, width)
  while true do
    local v = lo + floor(rand() * (hi - lo + 1))
    local s = format("%0" .. width .. "d", v)
    if not used[s] then
      used[s] = true
      return s
    end
  end
end

local function derived_terms(label)
  local t = label:match("^([^,(:;]+)") or label
  t = t:gsub("%s+$", "")
  -- NSF labels start with an ASCII capital
  return { t:sub(1, 1):lower() .. t:sub(2) }
end

local function build_catalogue(cseed)
  local rand = new_rng(cseed)
  local domains, domain_by_code = {}, {}
  for i, d in ipairs(NSF) do
    local dom = {
      code = d[1], text = d[1] .. " - " .. d[2], weight = d[3], profile = d[4],
      terms = TERMS[d[1]] or derived_terms(d[2]), formacodes = {},
    }
    domains[i], domain_by_code[d[1]] = dom, dom
  end

  -- Formacodes: five digits, a few with a leading zero; ~1500 in all.
  local used_fc = {}
  for _, e in ipairs(EXCEPTIONS) do used_fc[e[1]] = true end
  local wsum = 0
  for _, dom in ipairs(domains) do wsum = wsum + dom.weight end
  local formacodes = {}
  for _, dom in ipairs(domains) do
    local n = 3 + floor(dom.weight / wsum * 1300)
    local nt = #dom.terms
    for j = 1, n do
      local code
      if rand() < 0.03 then
        code = unique_code(rand, used_fc, 1000, 9999, 5)
      else
        code = unique_code(rand, used_fc, 11000, 46999, 5)
      end
      local round = floor((j - 1) / nt)
      local label = dom.terms[(j - 1) % nt + 1]
      if round > 0 then
        label = label .. QUALIFIERS[(j * 7 + round) % #QUALIFIERS + 1]
        if round > #QUALIFIERS then label = label .. format(" %d", round) end
      end
      if rand() < 0.05 then
        local k = floor(rand() * #LONG_PHRASES)
        for step = 0, 3 do
          local phrase = LONG_PHRASES[(k + step * 2) % #LONG_PHRASES + 1]
          if #label + #phrase > 180 then break end
          label = label .. phrase
        end
      end
      local fc = { code = code, label = label, domain = dom, p = 0 }
      dom.formacodes[j] = fc
      formacodes[#formacodes + 1] = fc
    end
  end

  local dom_pick = {}
  for i, dom in ipairs(domains) do dom_pick[i] = dom.weight end
  dom_pick = cumulate(dom_pick)

  -- Certifications: per kind, ranked by a Zipf-like popularity 1/(rank+3).
  local certs = {}
  local used_code = {}
  local function add_kind(kind, n)
    local list = {}
    for r = 1, n do
      local dom = domains[pick(dom_pick, rand())]
      local nfc = #dom.formacodes
      -- first formacodes of a domain are the common ones
      local j = floor(nfc * rand() * rand()) + 1
      local code, price, hours
      if kind == 1 then
        if rand() < 0.85 then
          code = unique_code(rand, used_code, 30000, 39999, 1)
        else
          code = unique_code(rand, used_code, 1000, 29999, 1)
        end
        local u = rand()
        price = 1000 + floor(14000 * u * u / 50) * 50
        hours = 70 + floor(1130 * rand() * rand())
      else
        code = unique_code(rand, used_code, 1000, 7299, 1)
        local u = rand()
        price = 100 + floor(2900 * u * u / 10) * 10
        hours = 7 + floor(113 * rand() * rand())
      end
      if rand() < 0.3 then price = price - 10 end     -- 1490 rather than 1500
      list[r] = {
        kind = kind, code = code, domain = dom, fc = dom.formacodes[j],
        price = price * 100, hours10 = hours * 10,
      }
    end
    shuffle(list, rand)
    local w, z = {}, 0
    for r = 1, n do
      w[r] = 1 / (r + 3)
      z = z + w[r]
    end
    for r = 1, n do
      list[r].p = KIND_SHARE[kind] * w[r] / z
      certs[#certs + 1] = list[r]
    end
  end
  add_kind(1, N_RNCP)
  add_kind(2, N_RS)

  local wex = 0
  for _, e in ipairs(EXCEPTIONS) do wex = wex + e[4] end
  for _, e in ipairs(EXCEPTIONS) do
    local dom = domain_by_code[e[3]]
    local fc = { code = e[1], label = e[2], domain = dom, p = 0, fixed = true }
    local u = rand()
    certs[#certs + 1] = {
      kind = 3, code = "", domain = dom, fc = fc,
      price = (e[5] + floor((e[6] - e[5]) * u / 10) * 10) * 100,
      hours10 = (e[7] + floor((e[8] - e[7]) * rand())) * 10,
      p = KIND_SHARE[3] * e[4] / wex,
    }
  end

  -- Label oddities, targeted at a share of rows rather than of formacodes:
  -- line breaks in ~1 row in 2000, empty labels in ~3 %, quotes and
  -- semicolons in a few %. Long labels are left alone so none passes ~180.
  for _, c in ipairs(certs) do c.fc.p = c.fc.p + c.p end
  local order = {}
  for i, fc in ipairs(formacodes) do order[i] = fc end
  shuffle(order, rand)
  local function mark(target, apply)
    local acc = 0
    for _, fc in ipairs(order) do
      if not fc.odd and fc.p > 0 and #fc.label <= 150 and acc + fc.p <= target then
        fc.odd = true
        acc = acc + fc.p
        apply(fc)
      end
      if acc >= target * 0.95 then break end
    end
  end
  mark(0.0005, function(fc) fc.label = fc.label .. "\n" .. "module complémentaire" end)
  mark(0.03, function(fc) fc.label = "" end)
  mark(0.012, function(fc)
    fc.label = fc.label .. ' "' .. QUOTED_NAMES[floor(rand() * #QUOTED_NAMES) + 1] .. '"'
  end)
  mark(0.02, function(fc)
    local terms = fc.domain.terms
    fc.label = fc.label .. " ; " .. terms[floor(rand() * #terms) + 1]
  end)

  -- Columns 4-9, joined, with the separator after them.
  local KIND_TEXT = { "RNCP", "RS", "" }
  local weights = {}
  for i, c in ipairs(certs) do
    local rs = c.kind == 2 and c.code or "-1"
    local rncp = c.kind == 1 and c.code or "-1"
    c.segment = concat({ KIND_TEXT[c.kind], rs, rncp, csv_field(c.domain.text), c.fc.code,
      csv_field(c.fc.label) }, ";") .. ";"
    c.profile = c.kind == 3 and (c.fc.code:sub(1, 3) == "318" and "P" or "B") or c.domain.profile
    weights[i] = c.p
  end
  return { certs = certs, pick = cumulate(weights) }
end

local function catalogue(cseed)
  local cat = catalogues[cseed]
  if not cat then
    cat = build_catalogue(cseed)
    catalogues[cseed] = cat
  end
  return cat
end

---------------------------------------------------------------------------
-- Writer
---------------------------------------------------------------------------

local function money(c)
  return format("%d.%02d", floor(c / 100), c % 100)
end

local function money_or_zero(c)
  if c == 0 then return "0" end
  return format("%d.%02d", floor(c / 100), c % 100)
end

-- Months from 2020-01 to the month before the extraction date.
local function months_before(extraction)
  local y, m = extraction:match("^(%d%d%d%d)%-(%d%d)%-%d%d$")
  if not y then return nil end
  local last = tonumber(y) * 12 + tonumber(m) - 2   -- year*12 + month0, minus one
  local first = 2020 * 12
  if last < first then return nil end
  local list = {}
  for k = first, last do
    local yy = floor(k / 12)
    list[#list + 1] = { year = yy, month = k - yy * 12 + 1 }
  end
  return list
end

--- Writes `rows` synthetic data rows (plus the header) to `path`.
-- opts: seed (integer, default 1), header ("labels" | "fields"), bom
-- (default true), crlf (default false), extraction_date ("YYYY-MM-DD",
-- default "2026-05-04"), unique (default true: no two rows share
-- certification, month, status, mode and place, as in the real export;
-- costs ~40 bytes of memory per row), progress(rows_done, rows_total),
-- catalogue_seed (certifications and labels; default shared by all seeds).
-- `path` may also be an open file handle, which is left open.
-- Returns true, or nil and a message when the file cannot be written.
function M.write(path, rows, opts)
  opts = opts or {}
  if type(rows) ~= "number" or rows < 0 or rows ~= floor(rows) then
    error("bad argument #2 to 'write' (non-negative integer expected)", 2)
  end
  local header = opts.header or "labels"
  if header ~= "labels" and header ~= "fields" then
    error("bad argument #3 to 'write' (header must be \"labels\" or \"fields\")", 2)
  end
  local extraction = opts.extraction_date or "2026-05-04"
  local month_list = type(extraction) == "string" and months_before(extraction)
  if not month_list then
    error("bad argument #3 to 'write' (extraction_date must be YYYY-MM-DD after 2020-01)", 2)
  end
  local progress = opts.progress
  local eol = opts.crlf and "\r\n" or "\n"
  local unique = opts.unique ~= false

  local cat = catalogue(opts.catalogue_seed or CATALOGUE_SEED)
  local certs, cert_pick = cat.certs, cat.pick
  local rand = new_rng(opts.seed or 1)

  -- Per-month prefixes (columns 1-2), weights and status table.
  local nmonths = #month_list
  local prefix_short, prefix_day, month_w, month_bucket, month_reform = {}, {}, {}, {}, {}
  for i, mo in ipairs(month_list) do
    prefix_short[i] = format("%s;%04d-%02d;", extraction, mo.year, mo.month)
    prefix_day[i] = format("%s;%04d-%02d-01;", extraction, mo.year, mo.month)
    month_w[i] = (30 + i) * SEASON[mo.month]
    local age = nmonths - i
    month_bucket[i] = age < 3 and 1 or (age < 12 and 2 or 3)
    -- flat holder participation from May 2024 (102.23 EUR from 2025)
    local ym = mo.year * 100 + mo.month
    month_reform[i] = ym >= 202405 and (mo.year >= 2025 and 10223 or 10000) or 0
  end
  local month_pick = cumulate(month_w)
  local month_p = probabilities(month_w)

  local status_str, status_pick, status_p = {}, {}, {}
  for i, s in ipairs(M.statuses) do status_str[i] = s .. ";" end
  for b, w in ipairs(STATUS_WEIGHTS) do
    status_pick[b] = cumulate(w)
    status_p[b] = probabilities(w)
  end

  local mode_str, mode_pick, mode_p = {}, {}, {}
  for i, s in ipairs(M.modes) do mode_str[i] = s .. ";" end
  for prof, w in pairs(MODE_WEIGHTS) do
    mode_pick[prof] = cumulate(w)
    mode_p[prof] = probabilities(w)
  end

  -- Geography: index 0 is "place missing" (all six fields empty).
  local geo_before, geo_after, dep_w = { [0] = ";;" }, { [0] = ";;;;" .. eol }, {}
  for i, d in ipairs(DEPARTMENTS) do
    local region = REGIONS[d[3]]
    geo_before[i] = csv_field(region) .. ";" .. csv_field(d[2]) .. ";"
    geo_after[i] = ";" .. d[1] .. ";" .. csv_field(d[2]) .. ";" .. d[3] .. ";" .. csv_field(region) .. eol
    dep_w[i] = d[4]
  end
  local dep_pick = cumulate(dep_w)
  local dep_p = probabilities(dep_w)

  local f, owned
  if type(path) == "string" then
    local err
    f, err = io.open(path, "wb")
    if not f then return nil, err end
    owned = true
  else
    f = path
  end
  local function fail(err)
    if owned then f:close() end
    return nil, err or "write failed"
  end

  local names = header == "fields" and M.fields or M.columns
  local ok, err = f:write((opts.bom == false and "" or "\239\187\191") .. concat(names, ";") .. eol)
  if not ok then return fail(err) end

  local seen = unique and {} or nil
  local NFUND = #FUNDERS
  local fund_n, fund_amt = {}, {}
  local duree_cache = {}
  local fast_tail = "%d;%d;%d.%02d;%d;%s;%d.%02d;%d.%02d" .. string.rep(";0", 14)
  local slow_tail = "%d;%d;%s;%d;%s;%s;%s" .. string.rep(";%d;%s", 7)

  local buf, n = {}, 0
  local FLUSH = 4096
  for row = 1, rows do
    -- Draw a cell; redraw when it already has its row.
    local ci, c, mi, si, bucket, md, di, key
    local tries = 0
    repeat
      ci = pick(cert_pick, rand())
      c = certs[ci]
      mi = pick(month_pick, rand())
      bucket = month_bucket[mi]
      si = pick(status_pick[bucket], rand())
      md = pick(mode_pick[c.profile], rand())
      if rand() < MISSING_PLACE[md] then di = 0 else di = pick(dep_pick, rand()) end
      key = (((ci * nmonths + mi) * 9 + si) * 3 + md) * 128 + di
      tries = tries + 1
    until not seen or not seen[key] or tries >= 64
    if seen then seen[key] = true end

    -- Files: heavy-tailed, scaled by how busy the cell is.
    local pplace = di == 0 and MISSING_PLACE[md] or (1 - MISSING_PLACE[md]) * dep_p[di]
    local lambda = c.p * month_p[mi] * status_p[bucket][si] * mode_p[c.profile][md] * pplace * CELL_SCALE
    local u = rand()
    local t
    if rand() < 0.75 then t = 1 / sqrt(u) else t = 1 / u end
    if t > 5000 then t = 5000 end
    local nb = floor(t * (1 + lambda))
    if nb < 1 then nb = 1 end
    if nb > 200000 then nb = 200000 end

    local ntit = nb
    if nb > 1 then ntit = nb - floor(nb * rand() * 0.08) end

    -- Duration, in tenths of an hour.
    local nknown, dstr
    if rand() < 0.05 then
      nknown, dstr = 0, ""
    else
      nknown = nb
      if nb > 1 and rand() < 0.1 then nknown = nb - floor(rand() * nb) end
      local d10 = floor(c.hours10 * (0.85 + 0.3 * rand()))
      if nknown == 1 or rand() < 0.4 then d10 = floor(d10 / 10) * 10 end
      if d10 < 10 then d10 = 10 end
      dstr = duree_cache[d10]
      if not dstr then
        local h = floor(d10 / 10)
        if d10 == h * 10 then dstr = format("%d", h) else dstr = format("%d.%d", h, d10 - h * 10) end
        duree_cache[d10] = dstr
      end
    end

    -- Amounts in integer cents.
    local mt = nb * c.price
    if rand() < 0.4 then mt = mt + floor((rand() - 0.5) * 0.2 * mt) end
    if mt < nb then mt = nb end
    local pm = floor((2 * mt + nb) / (2 * nb))

    local rest = mt
    local cofunded = false
    for j = 1, NFUND do
      local fj = FUNDERS[j]
      local prob = fj[1]
      local flat = 0
      if j == 1 then
        flat = month_reform[mi]
        if flat > 0 then prob = 0.22 end
      end
      local k, a = 0, 0
      if rest > 1 and rand() < prob then
        k = nb
        if nb > 1 and rand() < 0.3 then k = 1 + floor(rand() * nb) end
        if flat > 0 then
          a = k * flat
          if rand() < 0.2 then a = a + floor(rest * k / nb * 0.2 * rand()) end
          if a > rest * 0.9 then a = floor(rest * 0.9) end
        else
          a = floor(rest * k / nb * (fj[2] + (fj[3] - fj[2]) * rand()))
        end
        if a < 1 then k, a = 0, 0 end
        rest = rest - a
        if k > 0 then cofunded = true end
      end
      fund_n[j], fund_amt[j] = k, a
    end

    local numeric
    if cofunded then
      numeric = format(slow_tail, nb, ntit, money(pm), nknown, dstr, money(mt), money_or_zero(rest),
        fund_n[1], money_or_zero(fund_amt[1]), fund_n[2], money_or_zero(fund_amt[2]),
        fund_n[3], money_or_zero(fund_amt[3]), fund_n[4], money_or_zero(fund_amt[4]),
        fund_n[5], money_or_zero(fund_amt[5]), fund_n[6], money_or_zero(fund_amt[6]),
        fund_n[7], money_or_zero(fund_amt[7]))
    else
      local pe, me = floor(pm / 100), floor(mt / 100)
      numeric = format(fast_tail, nb, ntit, pe, pm - pe * 100, nknown, dstr, me, mt - me * 100,
        me, mt - me * 100)
    end

    buf[n + 1] = rand() < 0.1 and prefix_day[mi] or prefix_short[mi]
    buf[n + 2] = status_str[si]
    buf[n + 3] = c.segment
    buf[n + 4] = mode_str[md]
    buf[n + 5] = geo_before[di]
    buf[n + 6] = numeric
    buf[n + 7] = geo_after[di]
    n = n + 7

    if row % FLUSH == 0 or row == rows then
      ok, err = f:write(concat(buf, "", 1, n))
      if not ok then return fail(err) end
      n = 0
      if progress then progress(row, rows) end
    end
  end

  if owned then
    ok, err = f:close()
    if not ok then return nil, err end
  end
  return true
end

return M

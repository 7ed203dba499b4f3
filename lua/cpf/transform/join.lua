-- cpf.transform.join — res:join: the columns of a reference (a result, a dataset or a Lua table)
-- brought to a result's rows by a key, left or inner, one or many matches; a query's result
-- keeps its rows in C and looks each distinct key up once.
local result = require "cpf.result"
local base = require "cpf.transform.base"

local transform = {}

local fail, has, need_column, derived = base.fail, base.has, base.need_column, base.derived
local column_index, copy_row = base.column_index, base.copy_row
local read_columns, with_columns = base.read_columns, base.with_columns
local kept_rows, value_text, key_types = base.kept_rows, base.value_text, base.key_types

-- The reference side of a join as { columns = {...}, rows = {...}, kinds =, labels = }.
local function reference_of(other, right_key, opts)
  if type(other) == "userdata" and other.columns and other.row then -- a dataset
    local names = {}
    for i, c in ipairs(other:columns()) do names[i] = c.name end
    local column = other:column(right_key)
    if column then right_key = column.name end
    local rows = {}
    for i = 1, #other do rows[i] = other:row(i) end
    return { columns = names, rows = rows, kinds = {}, labels = {}, key = right_key }
  end
  if type(other) == "table" and getmetatable(other) and other.columns and other.kinds then -- a result
    local rows = {}
    for i, r in ipairs(other) do rows[i] = r end
    return { columns = other:columns(), rows = rows, kinds = other:kinds(), labels = other:labels(),
             key = right_key }
  end
  if type(other) ~= "table" then
    fail("join", ("a result, a dataset or a table {[key] = value or row} expected, got %s"):format(type(other)))
  end
  -- a Lua table: keys in a stable order (numbers, then strings), values as rows
  local keys = {}
  for k in pairs(other) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) ~= type(b) then return type(a) < type(b) end
    return a < b
  end)
  local rows, columns, seen, plain = {}, { right_key }, { [right_key] = true }, false
  for _, k in ipairs(keys) do
    local v = other[k]
    local row
    if type(v) == "table" then
      row = copy_row(v)
      local names = {}
      for name in pairs(v) do if not seen[name] then names[#names + 1] = name end end
      table.sort(names)
      for _, name in ipairs(names) do seen[name] = true columns[#columns + 1] = name end
    else
      plain = true
      local name = opts.columns and opts.columns[1]
      if type(name) ~= "string" then
        fail("join", "a table of plain values needs the name of their column: opts.columns = {\"name\"}")
      end
      if not seen[name] then seen[name] = true columns[#columns + 1] = name end
      row = { [name] = v }
    end
    row[right_key] = k
    rows[#rows + 1] = row
  end
  -- plain: opts.columns named the values' column, it chose none among the rows' columns
  return { columns = columns, rows = rows, kinds = {}, labels = {}, key = right_key, plain = plain }
end

--- res:join(other, on [, opts]): the result's rows with the columns of the matching row of
--- `other` (a result, a dataset or a table {[key] = value or row}). on: a column of both sides,
--- or {left = "right"}. opts.how = "left" (every row kept) or "inner"; opts.columns: which of
--- other's columns (default all but its key); opts.many: a key may match several rows;
--- opts.suffix: added to the name of other's columns the result has already.
function transform.join(res, other, on, opts)
  opts = opts or {}
  if type(opts) ~= "table" then fail("join", ("options table expected, got %s"):format(type(opts))) end
  local left_key, right_key
  if type(on) == "string" then
    left_key, right_key = on, on
  elseif type(on) == "table" then
    left_key, right_key = next(on)
    if type(left_key) ~= "string" or type(right_key) ~= "string" or next(on, left_key) ~= nil then
      fail("join", "on must be a column name or {left_column = \"right_column\"}")
    end
  else
    fail("join", ("on must be a column name or {left_column = \"right_column\"}, got %s"):format(type(on)))
  end
  local how = opts.how or "left"
  if how ~= "left" and how ~= "inner" then fail("join", "opts.how must be \"left\" or \"inner\"") end
  need_column(res, left_key, "join")
  local ref = reference_of(other, right_key, opts)
  right_key = ref.key
  local in_ref = {}
  for _, c in ipairs(ref.columns) do in_ref[c] = true end
  if not in_ref[right_key] then
    fail("join", ("'%s' is not a column of the reference (its columns: %s)")
      :format(right_key, table.concat(ref.columns, ", ")))
  end
  -- the columns brought, and their names in the joined result
  local brought = {}
  if opts.columns and not ref.plain then
    if type(opts.columns) ~= "table" then fail("join", "opts.columns must be a list of column names") end
    for _, c in ipairs(opts.columns) do
      if not in_ref[c] then
        fail("join", ("'%s' is not a column of the reference (its columns: %s)")
          :format(tostring(c), table.concat(ref.columns, ", ")))
      end
      brought[#brought + 1] = c
    end
  else
    for _, c in ipairs(ref.columns) do if c ~= right_key then brought[#brought + 1] = c end end
  end
  local columns, names = res:columns(), {}
  for _, c in ipairs(brought) do
    local name = c
    if has(res, c) then
      if type(opts.suffix) ~= "string" then
        fail("join", ("both sides have a column '%s' (give opts.suffix to rename the reference's)"):format(c))
      end
      name = c .. opts.suffix
      if has(res, name) then fail("join", ("both sides have a column '%s'"):format(name)) end
    end
    names[c] = name
    columns[#columns + 1] = name
  end
  -- the reference's first row of each key, and the others of a key given twice
  local first, first_at, more, twice, right_types = {}, {}, {}, nil, {}
  for at, r in ipairs(ref.rows) do
    local k = r[right_key]
    if k ~= nil then
      right_types[type(k)] = true
      if first[k] == nil then
        first[k], first_at[k] = r, at
      else
        more[k] = more[k] or {}
        table.insert(more[k], r)
        if twice == nil then twice = k end
      end
    end
  end
  -- keys compare as stored: a string key never matches a number, and saying so beats no match
  local function check_keys(left_types)
    local lt, rt = key_types(left_types), key_types(right_types)
    if #lt > 0 and #rt > 0 and table.concat(lt, " and ") ~= table.concat(rt, " and ") then
      fail("join", ("%s holds %s values, the reference's %s holds %s values: keys compare as stored ('01' is not 1)")
        :format(left_key, table.concat(lt, " and "), right_key, table.concat(rt, " and ")))
    end
    if twice ~= nil and not opts.many then -- opts.many = true joins each of them
      fail("join", ("the reference has %d rows for %s %s"):format(#more[twice] + 1, right_key, value_text(twice)))
    end
  end
  local added = {} -- the brought columns as with_columns adds them
  for j, c in ipairs(brought) do
    added[j] = { name = names[c], kind = ref.kinds[c], labels = ref.labels[c] }
  end
  local store = result.store_of(res)
  if store and twice == nil then
    -- a key column of a query's result: each distinct key value looked up once, the brought
    -- values set by group in C (nil for another column: read row by row below)
    local refcols = {}
    for j, c in ipairs(brought) do
      local values = {}
      for at, r in ipairs(ref.rows) do values[at] = r[c] end
      refcols[j] = values
    end
    local by_group, mask, left_types = store:join_key(column_index(res, left_key), first_at, refcols)
    if by_group then
      check_keys(left_types)
      for j in ipairs(brought) do added[j].groups = by_group[j] end
      local out = with_columns(res, added)
      return how == "inner" and kept_rows(out, mask) or out
    end
  end
  -- one pass over the result's keys: their types, and the matching row's values brought
  local cols, n = read_columns(res, { left_key })
  local left_values, left_types, keep = cols[left_key], {}, {}
  for j in ipairs(brought) do added[j].values = {} end
  for i = 1, n do
    local k = left_values[i]
    local r = false
    if k ~= nil then
      left_types[type(k)] = true
      r = first[k] or false
    end
    keep[i] = r and true or false
    if r then
      for j, c in ipairs(brought) do added[j].values[i] = r[c] end
    end
  end
  check_keys(left_types)
  if twice == nil then -- one match at most: the result with the columns added
    local out = with_columns(res, added)
    return how == "inner" and kept_rows(out, keep) or out
  end
  -- opts.many and a key given twice: a row per match, in the reference's order
  local rows = {}
  local function add(row, match)
    local new = copy_row(row)
    for _, c in ipairs(brought) do new[names[c]] = match[c] end
    rows[#rows + 1] = new
  end
  for i, row in ipairs(res) do
    local k = left_values[i]
    local r = k ~= nil and first[k]
    if r then
      add(row, r)
      for _, x in ipairs(more[k] or {}) do add(row, x) end
    elseif how == "left" then
      rows[#rows + 1] = row
    end
  end
  return derived(res, columns, rows, added)
end


return transform

-- How a query compiles: a condition on annee or mois becomes a range on the month or date
-- column it is computed from (no per-row key computed), and a query compiles once: running
-- it again reuses its plan and calls none of its Lua functions again.
local h = require "spec.helpers"
local cpf = require "cpf"
local core = require "cpf.core"

-- Calls f with core.prepare recording the plans it compiles; returns f's result and the plans.
local function with_plans(f)
  local plans, real = {}, core.prepare
  core.prepare = function(ds, plan) plans[#plans + 1] = plan return real(ds, plan) end
  local ok, res = pcall(f)
  core.prepare = real
  assert(ok, res)
  return res, plans
end

-- Months over several years, a missing one, and a date column for the same rows.
local FILE = { "date_validation;date_chargement;nb_dossiers" }
do
  local n = 0
  for y = 2019, 2025 do
    for m = 1, 12, 2 do
      n = n + 1
      FILE[#FILE + 1] = ("%d-%02d;%d-%02d-%02d;%d"):format(y, m, y, m, (n % 28) + 1, n % 5 + 1)
    end
  end
  FILE[#FILE + 1] = ";;7"
  FILE[#FILE + 1] = ";2024-02-29;9"
  FILE = table.concat(FILE, "\n") .. "\n"
end

-- year and "YYYY-MM" of a month or date text, nil for a missing value
local function year_of(v) return v and tonumber(v:sub(1, 4)) end
local function month_of(v) return v and v:sub(1, 7) end

-- Σ nb_dossiers over the rows where pass(value of the key) holds (value nil when missing).
local function direct(ds, column, derive, pass)
  local total = 0
  for i = 1, #ds do
    if pass(derive(ds:get(i, column))) then total = total + ds:get(i, "nb_dossiers") end
  end
  return total
end

describe("query plans", function()
  local ds
  setup(function() ds = assert(cpf.load(h.write_file(FILE, ".csv"))) end)
  teardown(function() ds:close() h.cleanup() end)

  local function cmp(op, x, b)
    if x == nil then return false end
    if op == "gt" then return x > b elseif op == "ge" then return x >= b
    elseif op == "lt" then return x < b else return x <= b end
  end

  -- condition, and the same as a Lua predicate over the key's value
  local YEAR_CASES = {
    { 2023, function(y) return y == 2023 end },
    { { 2019, 2024 }, function(y) return y == 2019 or y == 2024 end },
    { cpf.between(2020, 2022), function(y) return y ~= nil and y >= 2020 and y <= 2022 end },
    { cpf.not_(2023), function(y) return y ~= 2023 end },
    { cpf.is_null(), function(y) return y == nil end },
    { cpf.not_null(), function(y) return y ~= nil end },
    { cpf.any { 2019, cpf.ge(2025) }, function(y) return y == 2019 or (y ~= nil and y >= 2025) end },
    { cpf.not_(cpf.any { cpf.lt(2021), cpf.is_null() }), function(y) return y ~= nil and y >= 2021 end },
  }
  for _, op in ipairs { "gt", "ge", "lt", "le" } do
    YEAR_CASES[#YEAR_CASES + 1] = { cpf[op](2022), function(y) return cmp(op, y, 2022) end }
  end
  local MONTH_CASES = {
    { "2023-05", function(m) return m == "2023-05" end },
    { { "2019-01", "2025-11" }, function(m) return m == "2019-01" or m == "2025-11" end },
    { cpf.between("2020-03", "2021-07"), function(m) return m ~= nil and m >= "2020-03" and m <= "2021-07" end },
    { cpf.not_("2024-01"), function(m) return m ~= "2024-01" end },
  }
  for _, op in ipairs { "gt", "ge", "lt", "le" } do
    MONTH_CASES[#MONTH_CASES + 1] = { cpf[op]("2022-07"), function(m) return cmp(op, m, "2022-07") end }
  end

  it("turns annee and mois conditions into ranges on the column, with the same answers", function()
    for _, column in ipairs { "date_validation", "date_chargement" } do
      local annee = column == "date_validation" and "annee" or cpf.year(column)
      local mois = column == "date_validation" and "mois" or cpf.month(column)
      for _, set in ipairs { { annee, YEAR_CASES, year_of }, { mois, MONTH_CASES, month_of } } do
        for i, case in ipairs(set[2]) do
          local what = ("%s case %d"):format(column, i)
          local res, plans = with_plans(function()
            if type(set[1]) == "string" then
              return ds:where { [set[1]] = case[1] }:run { d = cpf.sum "nb_dossiers" }
            end
            return ds:where(set[1], case[1]):run { d = cpf.sum "nb_dossiers" }
          end)
          assert.are.equal(direct(ds, column, set[3], case[2]), res[1].d or 0, what)
          if type(set[1]) == "string" then -- the virtual names compile to ranges
            local op = plans[1].where.conds[1].op
            assert.is_truthy(op == "range" or op == "or" or op == "not" or op == "null", what .. ": " .. op)
          end
        end
      end
    end
  end)

  it("keeps testing key values where a range would not say the same", function()
    -- "2023" is no value of mois (whose values are YYYY-MM), a function sees each value
    local res, plans = with_plans(function() return ds:where { mois = "2023" }:run { n = cpf.count() } end)
    assert.are.equal(0, res[1].n)
    assert.are.equal("mask", plans[1].where.conds[1].op)
    res = ds:where { annee = function(y) return y % 2 == 0 end }:run { d = cpf.sum "nb_dossiers" }
    assert.are.equal(direct(ds, "date_validation", year_of, function(y) return y ~= nil and y % 2 == 0 end), res[1].d)
    assert.are.equal("where annee: cannot compare number values with string \"2023\"",
      h.error_of(function() return ds:where { annee = "2023" }:run { n = cpf.count() } end))
    assert.are.equal("where mois: cannot compare string values with number 2023",
      h.error_of(function() return ds:where { mois = 2023 }:run { n = cpf.count() } end))
    assert.are.equal(0, ds:where { annee = 2023.5 }:run { n = cpf.count() }[1].n)
  end)

  it("runs a prepared plan on its own dataset only", function()
    local other = assert(cpf.load(h.write_file(FILE, ".csv")))
    local plan = core.prepare(ds, { keys = { { kind = "year", column = 1 } }, aggs = { { kind = "count" } } })
    local function rows_of(store) -- a result store's rows, keys in order
      store:set_columns { { "annee", key = 1 }, { "n", agg = 1 } }
      return store:fill {}
    end
    local a, b = rows_of(core.query(ds, plan)), rows_of(core.query(ds, plan))
    assert.are.same(a, b)
    assert.are.equal(8, #a) -- 7 years and the rows without a month, last
    assert.is_nil(a[8].annee)
    for i = 2, 7 do assert.is_true(a[i - 1].annee < a[i].annee) end
    local unprepared = { keys = { { kind = "year", column = 1 } }, aggs = { { kind = "count" } } }
    assert.are.same(a, rows_of(core.query(ds, unprepared)))
    assert.are.equal("core.query: the plan was prepared for another dataset",
      h.error_of(function() return core.query(other, plan) end))
    other:close()
  end)

  it("compiles a query once: running it again reuses the plan and calls no Lua function again", function()
    local key_calls, cond_calls = 0, 0
    local p = h.write_file("code;nb_dossiers\na;1\nb;2\na;3\nc;4\n", ".csv")
    local d = assert(cpf.load(p))
    local q = d:where { code = function(v) cond_calls = cond_calls + 1 return v ~= "c" end }
      :group_by(cpf.key("code", function(v) key_calls = key_calls + 1 return v:upper() end))
      :agg { n = cpf.sum "nb_dossiers" }
    local first, plans1 = with_plans(function() return q:run() end)
    local calls = { key_calls, cond_calls }
    local second, plans2 = with_plans(function() return q:run() end)
    assert.are.same({ 3, 3 }, calls)
    assert.are.same(calls, { key_calls, cond_calls })
    assert.are.equal(1, #plans1)
    assert.are.equal(0, #plans2) -- nothing compiled again, in Lua or in C
    assert.are.same({ { code_cle = "A", n = 4 }, { code_cle = "B", n = 2 } }, { first[1], first[2] })
    assert.are.same({ first[1], first[2] }, { second[1], second[2] })
    -- a query built from it is a new plan
    local third, plans3 = with_plans(function() return q:where { nb_dossiers = cpf.ge(2) }:run() end)
    assert.are.equal(1, #plans3)
    assert.are.same({ { code_cle = "A", n = 3 }, { code_cle = "B", n = 2 } }, { third[1], third[2] })
    d:close()
  end)
end)

-- Misuse walk (issue 30, point 6): every public function and method of cpf, called with each of
-- a set of wrong arguments (nil, booleans, NaN, ±inf, huge and negative numbers, empty and odd
-- strings, tables, functions, another object), either works or fails at the call: the error is
-- raised with this spec's position (level 2, the caller's line), never from inside cpf's files
-- ("lua/cpf/...: "), never a raw Lua error ("attempt to ...", "table index is NaN"), never a
-- crash. Each call runs on fresh objects, so one misuse cannot hide another.
local h = require "spec.helpers"
local cpf = require "cpf"

local CSV = "region_lieu_formation;date_validation;nb_dossiers;montant_engage\n"
  .. "Bretagne;2023-01;2;10,5\nCorse;2024-02;3;20\n;2024-03;;\n"

local BAD = {
  { "nil", nil }, { "true", true }, { "false", false }, { "0", 0 }, { "-1", -1 }, { "NaN", 0 / 0 },
  { "inf", math.huge }, { "-inf", -math.huge }, { "2^63", 2 ^ 63 }, { "1.5", 1.5 }, { '""', "" },
  { '"nope"', "nope" }, { '"-"', "-" }, { "{}", {} }, { "{1}", { 1 } }, { "{nope=1}", { nope = 1 } },
  { "a function", function() end }, { "a coroutine", coroutine.create(function() end) },
}

-- A raw error: raised from inside cpf, or by Lua itself on a wrong value.
local function raw(err)
  local text = tostring(err)
  return text:find("lua/cpf/", 1, true) or text:find("attempt to", 1, true)
    or text:find("table index is", 1, true) or text:find("stack overflow", 1, true)
    or text:find("^[^:]*%.lua:%d+: bad argument") and not text:find("^spec/")
end

-- The position of the path a writer takes: a number or a string there is a path (Lua turns a
-- number into text), which the walk would create in the current folder.
local WRITES = { write = 1, save = 1, convert = 2 }

-- Calls method `name` of the object `make()` gives with each bad value in each of the first two
-- argument positions (the other one a plausible value); returns the raw errors seen.
local function walk(what, make, names, plausible)
  local found = {}
  for _, name in ipairs(names) do
    for position = 1, 2 do
      for _, bad in ipairs(BAD) do
        local a_path = WRITES[name] == position and (type(bad[2]) == "string" or type(bad[2]) == "number")
        if not a_path then
          local obj = make()
          local args = { plausible[name] and plausible[name][1], plausible[name] and plausible[name][2] }
          args[position] = bad[2]
          local ok, err = pcall(function() return obj[name](obj, args[1], args[2]) end)
          if not ok and raw(err) then
            found[#found + 1] = ("%s:%s(arg %d = %s): %s"):format(what, name, position, bad[1], tostring(err))
          end
        end
      end
    end
  end
  return found
end

describe("misuse walk", function()
  local path
  setup(function() path = h.write_file(CSV, ".csv") end)
  teardown(h.cleanup)

  local function dataset() return assert(cpf.load(path)) end
  local function result()
    return dataset():group_by("region_lieu_formation", "annee"):run { "dossiers", "montant" }
  end

  it("of the dataset's methods fails at the call", function()
    local names = { "group_by", "where", "get", "distinct", "dictionary", "columns", "rows", "save", "summary",
                    "column", "sample", "head" }
    local plausible = { group_by = { "annee" }, where = { { annee = 2023 } }, get = { 1, "nb_dossiers" },
                        distinct = { "region_lieu_formation" }, save = { h.tmpname(".cpfsnap") } }
    local usable = {}
    local ds = dataset()
    for _, name in ipairs(names) do if type(ds[name]) == "function" then usable[#usable + 1] = name end end
    assert.are.same({}, walk("ds", dataset, usable, plausible))
  end)

  it("of the query's methods fails at the call", function()
    local q = function() return dataset():group_by("region_lieu_formation") end
    local names = {}
    for _, name in ipairs { "agg", "run", "where", "having", "limit", "order_by", "totals", "sorted" } do
      if type(q()[name]) == "function" then names[#names + 1] = name end
    end
    local plausible = { agg = { { "dossiers" } }, having = { { dossiers = cpf.gt(1) } }, limit = { 2 },
                        order_by = { "-dossiers" } }
    assert.are.same({}, walk("q", q, names, plausible))
  end)

  it("of the result's methods fails at the call", function()
    local names = {}
    local res = result()
    for _, name in ipairs { "sorted", "head", "where", "with", "join", "change", "cumsum", "rank", "share",
                            "rolling", "pivot", "get", "format", "write", "columns", "kinds", "labels",
                            "keys", "row_kind", "partial", "rows" } do
      if type(res[name]) == "function" then names[#names + 1] = name end
    end
    local plausible = { sorted = { "-dossiers" }, head = { 2 }, join = { result(), "region_lieu_formation" },
                        change = { "dossiers", { over = "annee" } }, cumsum = { "dossiers", { over = "annee" } },
                        rank = { "dossiers" }, share = { "dossiers" }, rolling = { "dossiers", 2 },
                        get = { 1, "dossiers" }, format = { "csv" }, write = { h.tmpname(".csv"), "csv" },
                        pivot = { "region_lieu_formation", "annee" } }
    assert.are.same({}, walk("res", result, names, plausible))
  end)

  it("of the module's functions fails at the call", function()
    local names = {}
    for _, name in ipairs { "load", "open", "header", "convert", "gt", "ge", "lt", "le", "between", "one_of",
                            "median", "distinct", "count", "sum", "mean", "min", "max", "ratio", "wmean",
                            "quarter", "semester", "month_of_year", "is_snapshot" } do
      if type(cpf[name]) == "function" then names[#names + 1] = name end
    end
    local module = setmetatable({}, { __index = function(_, k)
      return function(_, ...) return cpf[k](...) end
    end })
    local plausible = { load = { path }, header = { path }, convert = { path, h.tmpname(".cpfsnap") },
                        between = { 1, 2 }, median = { "montant_engage" }, sum = { "nb_dossiers" } }
    assert.are.same({}, walk("cpf", function() return module end, names, plausible))
  end)
end)

-- Steady warm runs (issue 33): a dataset keeps the work arrays of its queries (query.c's
-- scratch_take) and a pool of result arrays that collected results give back (cpf_pool), and a
-- result store tells Lua's collector what it holds outside its heap. What must hold whatever the
-- reuse: every run gives the same answer, a result kept alive is never written over by a later
-- query, a result outlives its dataset's close, and a query run from inside another one's Lua
-- function (a row predicate, a reducer) on the same dataset gets its own arrays. The speed itself
-- is measured by make bench (bench/results.md), never asserted here.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

describe("warm runs on one dataset", function()
  local path, ds
  setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 20000, { seed = 54 }))
    ds = assert(cpf.load(path))
  end)
  teardown(function()
    if ds then ds:close() end
    h.cleanup()
  end)

  local function query(d)
    return (d or ds):group_by("code_rncp", "mois"):agg { "dossiers", "montant", "prix_moyen" }:run()
  end

  it("give the same answer on every run, results kept or dropped, collected or not", function()
    local first = query():format("csv")
    local kept = {}
    for i = 1, 30 do
      local res = query()
      if i % 3 == 0 then kept[#kept + 1] = res end
      if i % 7 == 0 then collectgarbage() end
      assert.are.equal(first, res:format("csv"), "run " .. i)
    end
    for i, res in ipairs(kept) do assert.are.equal(first, res:format("csv"), "kept result " .. i) end
  end)

  it("never write over a result that is still alive, whatever ran since", function()
    local res = query()
    local text = res:format("json")
    local shapes = {
      function() return ds:group_by("region_lieu_formation"):agg { "dossiers" }:run() end,
      function() return ds:group_by("mois"):agg { "montant", "lignes" }:run() end,
      function() return ds:group_by("code_rncp", "annee", "famille"):agg { "dossiers", "montant" }:run() end,
      function() return ds:agg { "dossiers" }:run() end,
      function() return query():sorted("-montant") end,
    }
    for i = 1, 40 do
      shapes[i % #shapes + 1]()
      if i % 5 == 0 then collectgarbage() end
    end
    assert.are.equal(text, res:format("json"))
  end)

  it("answer a query without keys the same after queries that group or select (their row work array)", function()
    local total = ds:agg { "dossiers", "montant", m = cpf.median "montant_engage" }:run():format("csv")
    for i = 1, 6 do
      if i % 2 == 0 then ds:group_by("code_rncp"):agg { "dossiers" }:run()
      else ds:where { famille = "validated" }:agg { "dossiers" }:run() end
      assert.are.equal(total, ds:agg { "dossiers", "montant", m = cpf.median "montant_engage" }:run():format("csv"),
        "after query " .. i)
    end
  end)

  it("outlive their dataset's close", function()
    local other = assert(cpf.load(path))
    local res = query(other)
    local text = res:format("csv")
    query(other) -- a result given back to the pool before the close
    collectgarbage()
    other:close()
    collectgarbage()
    assert.are.equal(text, res:format("csv"))
    res = nil -- luacheck: ignore 311
    collectgarbage()
  end)

  it("give a query run from inside another one's Lua function its own arrays", function()
    local want_inner = query():format("csv")
    local want = ds:group_by("region_lieu_formation"):agg { "dossiers" }:run():format("csv")
    local inner
    local res = ds:where(function()
      if not inner then inner = query():format("csv") end
      return true
    end):group_by("region_lieu_formation"):agg { "dossiers" }:run()
    assert.are.equal(want, res:format("csv"))
    assert.are.equal(want_inner, inner)
    local inside = {}
    local reduced = ds:group_by("region_lieu_formation"):agg {
      n = cpf.reduce { column = "nb_dossiers", init = function() return 0 end,
                       step = function(acc, v)
                         if #inside < 2 then inside[#inside + 1] = query():format("csv") end
                         return acc + v
                       end },
      "dossiers",
    }:run()
    for _, row in ipairs(reduced) do assert.are.equal(row.dossiers, row.n) end
    assert.are.same({ want_inner, want_inner }, inside)
  end)
end)

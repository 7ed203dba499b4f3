-- Allocation failures (issue 30): every allocation of the C core goes through one counting
-- allocator (csrc/alloc.c) that a test makes fail at the Nth call. Swept over a workload — a
-- load on 1 and 2 threads, a grouped query with a median and a distinct count, having, a join,
-- a save, an open and a query of the snapshot — each failure gives "out of memory" (kind
-- "memory" where it is returned), never a crash, a partial dataset or a wrong answer, and the
-- data stays usable after it (under ASan in CI: nothing freed twice, nothing leaked). CI
-- samples the counts; CPF_OOM_SWEEP=all runs every one (make check-all).
local h = require "spec.helpers"
local cpf = require "cpf"
local core = require "cpf.core"

local ALL = os.getenv("CPF_OOM_SWEEP") == "all"

local CSV = { "date_validation;statut_dossier;region_lieu_formation;nb_dossiers;montant_engage;code_rncp" }
for i = 1, 60 do
  CSV[#CSV + 1] = ("202%d-%02d;%s;%s;%d;%d,%02d;%d"):format(i % 5, i % 12 + 1,
    i % 3 == 0 and "Validé" or "Rejeté", ({ "Bretagne", "Corse", "Normandie", "" })[i % 4 + 1], i % 7 + 1,
    i * 137, i % 100, 30000 + i % 9)
end
CSV = table.concat(CSV, "\n") .. "\n"

describe("out of memory", function()
  local path, snap, ref
  setup(function()
    path = h.write_file(CSV, ".csv")
    snap = h.tmpname(".cpfsnap")
    ref = h.write_file("region_lieu_formation;habitants\nBretagne;3400000\nCorse;340000\n", ".csv")
  end)
  teardown(function()
    core.fail_allocation(0)
    os.remove(snap)
    h.cleanup()
  end)

  -- The workload; each step returns what it made, or raises / returns nil, message.
  local function workload(threads)
    local ds, err = cpf.load(path, { threads = threads })
    if not ds then return nil, err end
    local res = ds:group_by("region_lieu_formation", "annee")
      :agg { "dossiers", "montant", { "med", cpf.median "montant_engage" }, { "rncp", cpf.distinct "code_rncp" } }
      :having { dossiers = cpf.ge(2) }:run()
    local joined = res:join(assert(cpf.load(ref)), "region_lieu_formation")
    local ok, serr = ds:save(snap)
    if not ok then return nil, serr end
    local opened, oerr = cpf.open(snap)
    if not opened then return nil, oerr end
    local again = opened:group_by("famille"):run { n = cpf.count() }
    return { #res, #joined, #again }
  end

  local expected
  for _, threads in ipairs { 1, 2 } do
    it(("fails cleanly at every allocation of a load on %d thread(s), a query, a join, a save and an open")
      :format(threads), function()
      core.fail_allocation(0)
      expected = expected or workload(1)
      assert.are.same(expected, workload(threads))
      local n, failures, step = 1, 0, ALL and 1 or 7
      while true do
        core.fail_allocation(n)
        local ok, got, msg = pcall(workload, threads)
        local left = core.allocations_left()
        core.fail_allocation(0)
        if left > 0 then -- the workload needed fewer allocations: every one was tried
          assert.is_true(ok, tostring(got))
          assert.are.same(expected, got)
          break
        end
        failures = failures + 1
        local text = ok and msg or got
        if ok and got then
          -- an allocation that failed and was taken care of (a smaller buffer, retried): the
          -- answer must still be right
          assert.are.same(expected, got, "allocation " .. n)
        else
          assert.is_truthy(tostring(text):find("out of memory", 1, true),
            ("allocation %d: %s"):format(n, tostring(text)))
        end
        -- the data is still usable after a failure
        assert.are.same(expected, workload(threads), "after allocation " .. n)
        n = n + step
      end
      assert.is_true(failures > 10, "the sweep reached the allocations")
      if os.getenv("CPF_OOM_VERBOSE") then print(("%d allocations failed, %d tried"):format(failures, n)) end
    end)
  end

  it("returns kind memory from a load that fails for lack of it", function()
    core.fail_allocation(5)
    local ds, err, kind = cpf.load(path)
    core.fail_allocation(0)
    assert.is_nil(ds)
    assert.are.equal(path .. ": out of memory", err)
    assert.are.equal("memory", kind)
  end)

  it("fails cleanly at every allocation of the C writers, to a string and to a file that keeps its bytes", function()
    core.fail_allocation(0)
    local ds = assert(cpf.load(path))
    -- a label long enough that the writers' buffer grows several times
    local res = ds:group_by("region_lieu_formation", "annee", "code_rncp"):agg { "dossiers", "montant" }
      :run():with { { "long", function(row) return ("x"):rep(2000) .. tostring(row.dossiers) end, "key" } }
    local out = h.tmpname(".txt")
    for _, name in ipairs { "csv", "csv-fr", "tsv", "json", "jsonl" } do
      local wanted = res:format(name)
      for _, to_file in ipairs { false, true } do
        local n, failures = 1, 0
        while true do
          h.write_bytes(out, "before")
          core.fail_allocation(n)
          local ok, got, msg -- res:write returns nil, message for a file it could not make
          if to_file then ok, got, msg = pcall(res.write, res, out, name)
          else ok, got = pcall(res.format, res, name) end
          local left = core.allocations_left()
          core.fail_allocation(0)
          if left > 0 then
            assert.is_true(ok, tostring(got))
            assert.are.equal(wanted, to_file and h.read_file(out) or got)
            break
          end
          failures = failures + 1
          if ok and got then -- a failure taken care of (output_file's own): the bytes are right
            assert.are.equal(wanted, to_file and h.read_file(out) or got, name .. " allocation " .. n)
          else
            local text = ok and msg or got
            assert.are.equal("out of memory", tostring(text):match("out of memory"), tostring(text))
            assert.are.equal("before", h.read_file(out), name .. " allocation " .. n)
          end
          n = n + 1
        end
        assert.is_true(failures >= 3, name .. ": the sweep reached the writers' buffer")
      end
    end
    ds:close()
  end)
end)

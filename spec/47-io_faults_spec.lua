-- I/O errors (issue 30, point 2): every read, write, fsync and map of a file by the C core goes
-- through one layer (csrc/io.c) that a test makes fail at the Nth call — with EIO, with ENOSPC,
-- or by making every transfer from then on short (half of what was asked). Swept over every
-- reader (a CSV on 1 and 2 threads, a CSV from a pipe, a snapshot) and every writer (ds:save,
-- res:write): a failure gives "PATH: cannot read|write|map: <the system's message>" with kind
-- "io", the target keeps its old bytes and no temporary is left beside it; short transfers give
-- the very same dataset and bytes as a run without them.
local h = require "spec.helpers"
local cpf = require "cpf"
local core = require "cpf.core"

local MESSAGES = { EIO = "Input/output error", ENOSPC = "No space left on device" }

local CSV = { "date_validation;statut_dossier;region_lieu_formation;nb_dossiers;montant_engage" }
for i = 1, 3000 do
  CSV[#CSV + 1] = ("202%d-%02d-01;%s;%s;%d;%d,%02d"):format(i % 5, i % 12 + 1,
    i % 3 == 0 and "Validé" or "Rejeté", ({ "Bretagne", "Corse", "Normandie", "" })[i % 4 + 1], i % 7 + 1,
    i * 137, i % 100)
end
CSV = table.concat(CSV, "\n") .. "\n"

-- The names left in path's folder that start with path's own name followed by ".tmp.".
local function temporaries_of(path)
  local folder, name = path:match("^(.*)/([^/]+)$")
  local p = io.popen("ls -a " .. h.shell_quote(folder))
  local left = {}
  for entry in p:lines() do
    if entry:sub(1, #name + 5) == name .. ".tmp." then left[#left + 1] = entry end
  end
  p:close()
  return left
end

-- Runs f once with the nth I/O call failing in `mode`, for n = 1, 2, ... until f needs fewer
-- calls than n; check(n, ...) sees what f returned each time. Returns how many calls failed.
local function sweep(mode, f, check)
  local n = 1
  while true do
    core.fail_io(n, mode)
    local results = table.pack(pcall(f))
    local left = core.io_left()
    core.fail_io(0)
    assert(results[1], ("call %d (%s) raised: %s"):format(n, mode, tostring(results[2])))
    if left > 0 then return n - 1 end
    check(n, table.unpack(results, 2, results.n))
    n = n + 1
  end
end

describe("I/O errors", function()
  local path, snap, expected
  setup(function()
    path = h.write_file(CSV, ".csv")
    snap = h.tmpname(".cpfsnap")
    local ds = assert(cpf.load(path))
    assert(ds:save(snap))
    expected = ds:group_by("region_lieu_formation", "annee"):run { "dossiers", "montant" }:format("csv")
  end)
  teardown(function()
    core.fail_io(0)
    os.remove(snap)
    h.cleanup()
  end)

  local function summary(ds)
    return ds:group_by("region_lieu_formation", "annee"):run { "dossiers", "montant" }:format("csv")
  end

  for _, threads in ipairs { 1, 2 } do
    for _, mode in ipairs { "EIO", "ENOSPC" } do
      it(("of a CSV read on %d thread(s) (%s) fail the load with the system's message"):format(threads, mode),
        function()
          local failed = sweep(mode, function() return cpf.load(path, { threads = threads }) end,
            function(n, ds, msg, kind)
              assert.is_nil(ds, "call " .. n)
              assert.are.equal(path .. ": cannot read: " .. MESSAGES[mode], msg)
              assert.are.equal("io", kind)
            end)
          assert.is_true(failed >= 1)
          assert.are.equal(expected, summary(assert(cpf.load(path, { threads = threads }))))
        end)
    end
    it(("short reads of a CSV on %d thread(s) give the same dataset"):format(threads), function()
      local failed = sweep("short", function() return cpf.load(path, { threads = threads }) end,
        function(n, ds, msg)
          assert(ds, ("call %d: %s"):format(n, tostring(msg)))
          assert.are.equal(expected, summary(ds), "short from call " .. n)
        end)
      assert.is_true(failed >= 1)
    end)
  end

  it("of a CSV read from a pipe fail the load, and short reads from it change nothing", function()
    local fifo = h.tmpname(".fifo")
    local function from_pipe()
      os.remove(fifo)
      assert(os.execute("mkfifo " .. h.shell_quote(fifo)))
      -- the writer is in the background; a reader that stops early leaves it a closed pipe
      os.execute(("cat %s > %s 2>/dev/null &"):format(h.shell_quote(path), h.shell_quote(fifo)))
      return cpf.load(fifo)
    end
    local eio = sweep("EIO", from_pipe, function(n, ds, msg, kind)
      assert.is_nil(ds, "call " .. n)
      assert.are.equal(fifo .. ": cannot read: Input/output error", msg)
      assert.are.equal("io", kind)
    end)
    assert.is_true(eio >= 1)
    local short = sweep("short", from_pipe, function(n, ds, msg)
      assert(ds, ("call %d: %s"):format(n, tostring(msg)))
      assert.are.equal(expected, summary(ds))
    end)
    assert.is_true(short >= 1)
    os.remove(fifo)
  end)

  it("of a snapshot's map fail the open with the system's message", function()
    local failed = sweep("EIO", function() return cpf.open(snap) end, function(n, ds, msg, kind)
      assert.is_nil(ds, "call " .. n)
      assert.are.equal(snap .. ": cannot map: Input/output error", msg)
      assert.are.equal("io", kind)
    end)
    assert.are.equal(1, failed)
    assert.are.equal(expected, summary(assert(cpf.open(snap))))
  end)

  -- A writer over a target that already holds other bytes: each failure leaves those bytes.
  local writers = {
    ["ds:save"] = function(ds, target) return ds:save(target) end,
    ["res:write csv"] = function(ds, target)
      return ds:group_by("region_lieu_formation", "annee"):run { "dossiers", "montant" }:write(target, "csv")
    end,
    ["res:write markdown"] = function(ds, target)
      return ds:group_by("region_lieu_formation"):run { "dossiers" }:write(target, "markdown")
    end,
  }
  for name, write in pairs(writers) do
    for _, mode in ipairs { "EIO", "ENOSPC" } do
      it(("of %s (%s) fail it with the system's message, the target untouched, no temporary left"):format(name, mode),
        function()
          local ds = assert(cpf.load(path))
          local target = h.write_file("the old bytes\n", ".out")
          local failed = sweep(mode, function() return write(ds, target) end, function(n, ok, msg, kind)
            assert.is_nil(ok, "call " .. n)
            assert.are.equal(target .. ": cannot write: " .. MESSAGES[mode], msg)
            if kind ~= nil then assert.are.equal("io", kind) end
            assert.are.equal("the old bytes\n", h.read_file(target), "call " .. n)
            assert.are.same({}, temporaries_of(target), "call " .. n)
          end)
          assert.is_true(failed >= 2) -- at least one write and the fsync
          assert(write(ds, target))
          assert.are_not.equal("the old bytes\n", h.read_file(target))
        end)
    end
    it(("short writes of %s give the same bytes"):format(name), function()
      local ds = assert(cpf.load(path))
      local reference = h.tmpname(".out")
      assert(write(ds, reference))
      local target = h.tmpname(".out")
      local failed = sweep("short", function() return write(ds, target) end, function(n, ok, msg)
        assert(ok, ("call %d: %s"):format(n, tostring(msg)))
        assert.are.equal(h.read_file(reference), h.read_file(target), "short from call " .. n)
      end)
      assert.is_true(failed >= 1)
    end)
  end
end)

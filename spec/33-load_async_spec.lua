-- cpf.load_async: a load on cpf's own threads, polled from Lua (what the hosts build on: Neovim
-- must stay responsive while a 2 M-row file loads). The job answers what cpf.load answers;
-- cancelling, collecting it or closing its Lua state stops the threads cleanly.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

local function poll_until_done(job)
  local seen = {}
  while true do
    local finished, a, b, c, d = job:poll()
    if finished then return seen, a, b, c, d end
    seen[#seen + 1] = { done = a, total = b, rows = c }
    os.execute("sleep 0.002")
  end
end

-- A process that starts jobs (the Lua code `start`, with cpf loaded) and exits at once, closing
-- its Lua state while they run: the jobs are cancelled and joined, and it exits cleanly.
local function exits_cleanly(start)
  local script = ("package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path "
    .. "package.cpath = '%s/?.so;' .. package.cpath local cpf = require 'cpf' %s "
    .. "io.write('started') os.exit(0, true)"):format(os.getenv("CPF_BUILD_DIR") or ("build/" .. h.lua_name), start)
  local out, err, code = h.run(h.interpreter .. " -e " .. h.shell_quote(script))
  assert.are.equal("started", out)
  assert.are.equal("", err)
  assert.are.equal(0, code)
end

describe("cpf.load_async #threads", function()
  local path -- 60 000 generated rows, about 17 MB: several chunks on two threads

  lazy_setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 60000, { seed = 21 }))
  end)
  lazy_teardown(h.cleanup)

  it("answers the dataset cpf.load answers, with progress on the way", function()
    local job = assert(cpf.load_async(path, { threads = 2 }))
    local seen, ds, err = poll_until_done(job)
    assert.is_nil(err)
    h.same_dataset(assert(cpf.load(path, { threads = 1 })), ds, "load_async")
    assert.is_true(#seen >= 1, "the first poll comes before the end")
    local size = #h.read_file(path)
    local last = 0
    for _, p in ipairs(seen) do
      assert.are.equal(size, p.total)
      assert.is_true(p.done >= last and p.done <= size, "bytes done go up to the size")
      assert.is_true(p.rows >= 0)
      last = p.done
    end
    -- the answer stays: the same dataset again, from poll and from wait
    local finished, again = job:poll()
    assert.is_true(finished)
    assert.are.equal(ds, again)
    assert.are.equal(ds, select(2, job:wait()))
    assert.are.equal("cpf load job " .. path .. ": done", tostring(job))
  end)

  it("waits for the load with job:wait()", function()
    local job = assert(cpf.load_async(path, { columns = { "nb_dossiers", "region_lieu_formation" } }))
    local finished, ds = job:wait()
    assert.is_true(finished)
    assert.are.equal(60000, #ds)
    assert.are.same({ "region_lieu_formation", "nb_dossiers" },
      { ds:columns()[1].name, ds:columns()[2].name })
    assert.are.equal(assert(cpf.load(path)):run { n = cpf.sum "nb_dossiers" }[1].n,
      ds:run { n = cpf.sum "nb_dossiers" }[1].n)
  end)

  it("stops when cancelled, with the kind 'cancelled'", function()
    local job = assert(cpf.load_async(path, { threads = 2 }))
    job:cancel()
    local _, ds, err, kind = poll_until_done(job)
    assert.is_nil(ds)
    assert.are.equal(path .. ": load cancelled", err)
    assert.are.equal("cancelled", kind)
    assert.are.equal("cpf load job " .. path .. ": failed: " .. path .. ": load cancelled", tostring(job))
    job:cancel() -- a finished job keeps its answer
    assert.are.equal("cancelled", select(4, job:poll()))
  end)

  it("gives a bad file's error as cpf.load does, from poll", function()
    local bad = h.write_file("date_validation;nb_dossiers\n2024-01;1\n2024-02;\"x\"y\n")
    local _, expected, expected_kind = cpf.load(bad)
    local job = assert(cpf.load_async(bad))
    local _, ds, err, kind = poll_until_done(job)
    assert.is_nil(ds)
    assert.are.equal(expected, err)
    assert.are.equal(expected_kind, kind)
    assert.are.equal("data", kind)
  end)

  it("returns nil, message at once when the file cannot be opened or its header read", function()
    local missing = h.tmpname(".csv")
    local job, err, kind = cpf.load_async(missing)
    assert.is_nil(job)
    assert.are.same({ select(2, cpf.load(missing)) }, { err, kind })
    local no_header = h.write_file("")
    job, err = cpf.load_async(no_header)
    assert.is_nil(job)
    assert.are.equal(select(2, cpf.load(no_header)), err)
  end)

  it("refuses a FIFO or a device, which would block it, and never loses the dataset to tostring #no_tsan", function()
    local fifo = h.tmpname(".fifo")
    assert(os.execute("mkfifo " .. fifo))
    local job, err, kind = cpf.load_async(fifo)
    os.remove(fifo)
    assert.is_nil(job)
    assert.are.equal(fifo .. ": a fifo cannot load in the background (cpf.load reads it)", err)
    assert.are.equal("usage", kind)
    job = assert(cpf.load_async(path))
    assert.is_truthy(tostring(job):find("^cpf load job " .. path:gsub("%p", "%%%0") .. ": "))
    job:wait()
    assert.are.equal("cpf load job " .. path .. ": done", tostring(job))
    local finished, ds = job:poll()
    assert.is_true(finished)
    assert.are.equal(60000, #ds)
  end)

  it("opens a snapshot at once, and reuses a valid cache at once", function()
    local snap = h.tmpname(".cpfsnap")
    assert(assert(cpf.load(path)):save(snap))
    local job = assert(cpf.load_async(snap))
    local finished, ds = job:poll() -- the first poll has the answer
    assert.is_true(finished)
    assert.are.equal(60000, #ds)

    local csv = h.tmpname(".csv")
    h.write_bytes(csv, h.read_file(path))
    local first = assert(cpf.load_async(csv, { cache = true }))
    local _, loaded = first:wait() -- the answer saves the cache
    assert.is_truthy(io.open(csv .. ".cpfsnap"), "no cache written")
    os.remove(csv .. ".cpfsnap")
    assert(cpf.load_async(csv, { cache = true })):wait()
    local second = assert(cpf.load_async(csv, { cache = true }))
    finished, ds = second:poll()
    assert.is_true(finished, "a valid cache is a finished job")
    h.same_dataset(loaded, ds, "cache")
    os.remove(csv .. ".cpfsnap")
  end)

  it("cancels and joins a job that is collected while it loads", function()
    for _ = 1, 5 do
      local job = assert(cpf.load_async(path, { threads = 2 }))
      assert.is_false((job:poll()))
    end
    collectgarbage()
    collectgarbage()
    -- still usable: nothing was left half-freed
    assert.are.equal(60000, #select(2, assert(cpf.load_async(path)):wait()))
  end)

  it("refuses what it cannot do, with the argument named", function()
    assert.are.equal("load_async: option 'progress' is not for load_async: job:poll() gives the progress",
      h.error_of(function() cpf.load_async(path, { progress = true }) end))
    assert.are.equal("bad argument #1 to 'load_async' (one path: several files load with cpf.load)",
      h.error_of(function() cpf.load_async { path, path } end))
    assert.are.equal("bad argument #1 to 'load_async' (string expected, got nil)",
      h.error_of(function() cpf.load_async() end))
    assert.are.equal("load_async: unknown option 'thread'",
      h.error_of(function() cpf.load_async(path, { thread = 2 }) end))
    assert.are.equal("load_async: option 'threads' must be a whole number from 1 to 64",
      h.error_of(function() cpf.load_async(path, { threads = 0 }) end))
  end)

  it("inflates a .csv.gz on its own thread: the open reads the header's bytes only #no_tsan", function()
    local gz = h.tmpname(".csv.gz")
    assert(os.execute(("env -u LD_PRELOAD gzip -c %s > %s"):format(h.shell_quote(path), h.shell_quote(gz))))
    local job = assert(cpf.load_async(gz, { threads = 2 }))
    local finished, ds = job:wait()
    assert.is_true(finished)
    h.same_dataset(assert(cpf.load(path, { threads = 1 })), ds, "gzip in the background")
    -- a cancel is heard while it inflates (or the load ended first)
    local early = assert(cpf.load_async(gz))
    early:cancel()
    local _, got, cerr, ckind = early:wait()
    if got then
      assert.are.equal(#ds, #got)
    else
      assert.are.same({ gz .. ": load cancelled", "cancelled" }, { cerr, ckind })
    end
    -- cut: the open still succeeds (its header is whole), the job finds the end missing
    local bytes = h.read_file(gz)
    h.write_bytes(gz, bytes:sub(1, math.floor(#bytes * 0.6)))
    local cut = assert(cpf.load_async(gz))
    local _, none, err, kind = cut:wait()
    assert.is_nil(none)
    assert.are.same({ gz .. ": truncated gzip file: it ends before its last block", "data" }, { err, kind })
  end)

  it("lets its Lua state close while it loads: the process exits cleanly #no_tsan", function()
    exits_cleanly(("jobs = { assert(cpf.load_async(%q, { threads = 2 })), assert(cpf.load_async(%q)) }")
      :format(path, path))
  end)
end)

-- ds:describe_async: a snapshot's description on a thread of its own (cpf serve computes
-- /describe so, off the worker's event loop).
describe("ds:describe_async #threads", function()
  local csv, snap

  lazy_setup(function()
    csv = h.tmpname(".csv")
    assert(gen.write(csv, 30000, { seed = 33 }))
    snap = h.tmpname(".cpfsnap")
    local ds = assert(cpf.load(csv))
    assert(ds:save(snap))
    ds:close()
  end)
  lazy_teardown(h.cleanup)

  it("answers ds:describe's result, for every top, with the columns done on the way", function()
    for _, top in ipairs { 0, 3, 10 } do
      local ds = assert(cpf.open(snap))
      local job = assert(ds:describe_async(top))
      local seen, res, err = poll_until_done(job)
      assert.is_nil(err)
      assert.are.equal(ds:describe(top):format("json"), res:format("json"), "top " .. top)
      for _, p in ipairs(seen) do
        assert.are.equal(#ds:columns(), p.total)
        assert.is_true(p.done >= 0 and p.done <= p.total)
      end
      -- asked again: the same answer
      assert.are.equal(res, select(2, job:poll()))
      assert.are.equal(res, select(2, job:wait()))
      ds:close()
    end
  end)

  it("goes on when its dataset is closed: the thread has its own", function()
    local ds = assert(cpf.open(snap))
    local expected = ds:describe(3):format("csv")
    local job = assert(ds:describe_async())
    ds:close()
    local finished, res = job:wait()
    assert.is_true(finished)
    assert.are.equal(expected, res:format("csv"))
  end)

  it("stops when cancelled, with the kind 'cancelled' (or has its answer when it ended first)", function()
    local ds = assert(cpf.open(snap))
    local job = assert(ds:describe_async(3))
    job:cancel()
    local finished, res, err, kind = job:wait()
    assert.is_true(finished)
    if res then
      assert.are.equal(ds:describe(3):format("csv"), res:format("csv"))
    else
      assert.are.same({ "describe cancelled", "cancelled" }, { err, kind })
    end
    ds:close()
  end)

  it("refuses a snapshot replaced since its dataset was opened, and a dataset of no snapshot file", function()
    local path = h.tmpname(".cpfsnap")
    local f = assert(io.open(path, "wb")) -- in Lua: no subprocess under ThreadSanitizer
    f:write(h.read_file(snap))
    f:close()
    local ds = assert(cpf.open(path))
    local other = assert(cpf.load(csv, { columns = { "annee", "montant_engage" } }))
    assert(other:save(path .. ".new"))
    assert(os.rename(path .. ".new", path))
    local finished, res, err, kind = assert(ds:describe_async()):wait()
    assert.is_true(finished)
    assert.is_nil(res)
    assert.are.same({ path .. ": the snapshot was replaced while it was being described", "io" }, { err, kind })
    assert.are.same({ nil, "describe_async: the dataset was not opened from a snapshot file (ds:describe)", "usage" },
      { other:describe_async() })
    assert.has_error(function() ds:describe_async(-1) end,
      "bad argument #1 to 'describe_async' (whole number expected)")
    ds:close()
    other:close()
  end)

  it("lets its Lua state close while it runs: the process exits cleanly #no_tsan", function()
    exits_cleanly(("ds = cpf.open(%q) jobs = { assert(ds:describe_async(3)), assert(ds:describe_async(0)) }")
      :format(snap))
  end)
end)

-- core.save_job: ds:save on a thread (cpf.fetch writes its snapshot so inside a host).
describe("core.save_job #threads", function()
  lazy_teardown(h.cleanup)

  it("writes the snapshot ds:save writes, and keeps the dataset open until it ended", function()
    local csv = h.tmpname(".csv")
    assert(gen.write(csv, 20000, { seed = 34 }))
    local ds = assert(cpf.load(csv))
    local a, b = h.tmpname(".cpfsnap"), h.tmpname(".cpfsnap")
    assert(ds:save(a, "tag"))
    local job = require("cpf.core").save_job(ds, b, "tag")
    assert.has_error(function() ds:close() end, "dataset: a save job is writing it: close it once the job ended")
    assert.are.same({ true, true }, { job:wait() })
    assert.are.equal(h.read_file(a), h.read_file(b))
    ds:close()
    local bad = assert(cpf.load(csv))
    assert.are.same({ true, nil, "io" }, { (function(f, r, _, k) return f, r, k end)(
      require("cpf.core").save_job(bad, "/nonexistent/dir/x.cpfsnap"):wait()) })
    bad:close()
  end)
end)

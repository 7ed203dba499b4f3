-- cpf fetch and cpf.fetch against a stand-in for the portal on 127.0.0.1 (spec/portal/portal.py:
-- the catalog entry and the gzip export, with ETag and Range, and what each export request
-- meets: a cut, a 429, a 500, an HTML page). Never the internet.
local h = require "spec.helpers"
local cpf = require "cpf"
local core = require "cpf.core"
local gen = require "cpf.gen"

local q = h.shell_quote

-- Plain Lua over the C transfer: run under Lua 5.4, 5.1, LuaJIT and ASan; Lua 5.3 adds
-- nothing 5.4 does not cover, and CI time goes to the other stages.
if _VERSION == "Lua 5.3" then return end

local function sh(cmd)
  local out, err, code = h.run(cmd)
  assert(code == 0, cmd .. "\n" .. out .. err)
  return out
end

describe("cpf fetch", function()
  local portal, base, pid, csvs = nil, nil, nil, {}

  -- The portal serves `csv` (gzip) as an extraction of `rows` rows (its catalog entry says
  -- `records`, default rows) last modified at `modified`; `script`: what the export requests meet.
  local function publish(name, modified, opts)
    opts = opts or {}
    local csv = csvs[name]
    sh(("env -u LD_PRELOAD gzip -c %s > %s"):format(q(csv.path), q(portal .. "/export.csv.gz")))
    if opts.truncate then
      local gz = h.read_file(portal .. "/export.csv.gz")
      h.write_bytes(portal .. "/export.csv.gz", gz:sub(1, math.floor(#gz * opts.truncate)))
    end
    h.write_bytes(portal .. "/metadata.json", ('{"dataset_id": "moncompteformation_formations_engagees", '
      .. '"metas": {"default": {"title": "Mon Compte Formation", "modified": "%s", "data_processed": "%s", '
      .. '"records_count": %d}}}'):format(modified, modified, opts.records or csv.rows))
    h.write_bytes(portal .. "/script", table.concat(opts.script or {}, "\n") .. "\n")
    os.remove(portal .. "/requests.log")
  end

  local function requests()
    local log = io.open(portal .. "/requests.log") and h.read_file(portal .. "/requests.log") or ""
    local out = {}
    for line in log:gmatch("[^\n]+") do
      local path, range, if_range = line:match("^GET (%S+) Range=(%S+) If%-Range=(.*)$")
      out[#out + 1] = { export = path:find("/exports/csv", 1, true) ~= nil, range = range, if_range = if_range }
    end
    return out
  end

  local function cli(args)
    return h.run(h.cpf_command(args))
  end

  local function listing(dir)
    local names = {}
    for _, n in ipairs(core.list_dir(dir) or {}) do names[#names + 1] = n end
    table.sort(names)
    return names
  end

  lazy_setup(function()
    portal = h.tmpname("-portal")
    sh("mkdir -p " .. q(portal))
    for name, spec in pairs { may = { rows = 3000, date = "2026-05-04", seed = 51 },
                              june = { rows = 3100, date = "2026-06-03", seed = 52 } } do
      local path = h.tmpname(".csv")
      assert(gen.write(path, spec.rows, { seed = spec.seed, extraction_date = spec.date }))
      csvs[name] = { path = path, rows = spec.rows, date = spec.date }
    end
    local other = h.tmpname(".csv")
    h.write_bytes(other, "a;b\n" .. ("1;2\n"):rep(3000))
    csvs.other = { path = other, rows = 3000 }
    base, pid = h.start_portal(portal)
  end)

  lazy_teardown(function()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    h.cleanup()
  end)

  it("downloads a new extraction into a snapshot named by its date, then nothing while it is unchanged", function()
    local dir = h.tmpname("-history") .. "/cpf" -- made, with its parent
    publish("may", "2026-05-05T06:00:00+00:00")
    local out, err, code = cli(("fetch %s --url %s"):format(q(dir), base))
    assert.are.equal(0, code, err)
    assert.are.equal("", out)
    local size = #h.read_file(portal .. "/export.csv.gz")
    assert.are.equal(("cpf: wrote %s/cpf-2026-05-04.cpfsnap: the extraction of 2026-05-04, 3000 rows (%s downloaded)\n")
      :format(dir, cpf.human_bytes(size)), err)
    assert.are.same({ "cpf-2026-05-04.cpfsnap", "cpf-2026-05-04.json", "cpf-latest.cpfsnap" }, listing(dir))
    -- the same dataset as the CSV loaded directly; cpf-latest is a second name of the file
    h.same_dataset(assert(cpf.load(csvs.may.path)), assert(cpf.open(dir .. "/cpf-2026-05-04.cpfsnap")), "fetched")
    assert.is_true(core.same_file(dir .. "/cpf-2026-05-04.cpfsnap", dir .. "/cpf-latest.cpfsnap"))
    assert.is_truthy(h.read_file(dir .. "/cpf-2026-05-04.json"):match('^{"extraction": "2026%-05%-04", "modified": '
      .. '"2026%-05%-05T06:00:00%+00:00", "data_processed": "2026%-05%-05T06:00:00%+00:00", "records_count": 3000, '
      .. '"etag": "\\"%x+\\""}\n$'), h.read_file(dir .. "/cpf-2026-05-04.json"))
    -- the export was asked compressed, with labels and ';'
    local log = h.read_file(portal .. "/requests.log")
    assert.is_truthy(log:find("/exports/csv?delimiter=%3B&with_bom=true&use_labels=true&compressed=true ", 1, true),
      log)
    -- unchanged: the catalog entry only
    os.remove(portal .. "/requests.log")
    out, err, code = cli(("fetch %s --url %s"):format(q(dir), base))
    assert.are.same({ 0, "" }, { code, out })
    assert.are.equal(("cpf: %s already holds the current extraction (2026-05-04, 3000 rows): nothing downloaded\n")
      :format(dir), err)
    assert.are.same({ { export = false, range = "None", if_range = "None" } }, requests())
  end)

  it("adds a changed extraction beside the older one and points cpf-latest at it", function()
    local dir = h.tmpname("-history")
    publish("may", "2026-05-05T06:00:00+00:00")
    assert(cpf.fetch { dir = dir, url = base })
    publish("june", "2026-06-04T06:00:00+00:00")
    local answer = assert(cpf.fetch { dir = dir, url = base })
    assert.are.same({ "new", "2026-06-03", 3100, dir .. "/cpf-2026-06-03.cpfsnap", 0 },
      { answer.status, answer.date, answer.rows, answer.snapshot, answer.resumed })
    assert.are.same({ "cpf-2026-05-04.cpfsnap", "cpf-2026-05-04.json", "cpf-2026-06-03.cpfsnap",
                      "cpf-2026-06-03.json", "cpf-latest.cpfsnap" }, listing(dir))
    assert.is_true(core.same_file(dir .. "/cpf-2026-06-03.cpfsnap", dir .. "/cpf-latest.cpfsnap"))
    assert.are.equal(3100, #assert(cpf.open(dir .. "/cpf-latest.cpfsnap")))
  end)

  it("keeps the newest N extractions with --keep N", function()
    local dir = h.tmpname("-history")
    publish("may", "2026-05-05T06:00:00+00:00")
    assert(cpf.fetch { dir = dir, url = base })
    publish("june", "2026-06-04T06:00:00+00:00")
    local _, err, code = cli(("fetch %s --url %s --keep 1"):format(q(dir), base))
    assert.are.equal(0, code, err)
    assert.are.equal(("cpf: wrote %s/cpf-2026-06-03.cpfsnap: the extraction of 2026-06-03, 3100 rows (%s downloaded)\n"
      .. "cpf: removed the extractions of 2026-05-04 (--keep 1)\n"):format(dir,
      cpf.human_bytes(#h.read_file(portal .. "/export.csv.gz"))), err)
    assert.are.same({ "cpf-2026-06-03.cpfsnap", "cpf-2026-06-03.json", "cpf-latest.cpfsnap" }, listing(dir))
    assert.has_error(function() cpf.fetch { dir = dir, keep = 0 } end,
      "fetch: option 'keep' must be a whole number from 1")
  end)

  it("resumes a transfer cut midway where it stopped (Range, If-Range), within the run and on the next", function()
    local dir = h.tmpname("-history")
    publish("may", "2026-05-05T06:00:00+00:00", { script = { "cut:20000" } })
    local answer = assert(cpf.fetch { dir = dir, url = base, backoff = 0.05 })
    assert.are.same({ 1, 2 }, { answer.resumed, answer.attempts })
    local r = requests()
    assert.are.equal(3, #r)
    assert.are.equal("bytes=20000-", r[3].range)
    assert.are.equal(h.read_file(dir .. "/cpf-2026-05-04.json"):match('"etag": "(\\"%x+\\")"'):gsub("\\", ""),
      r[3].if_range)
    h.same_dataset(assert(cpf.load(csvs.may.path)), assert(cpf.open(answer.snapshot)), "resumed")
    -- a run that gives up after the cut (no retry) leaves its partial file; the next resumes it
    dir = h.tmpname("-history")
    publish("may", "2026-05-05T06:00:00+00:00", { script = { "cut:30000" } })
    local none, err, kind = cpf.fetch { dir = dir, url = base, retries = 0 }
    assert.is_nil(none)
    assert.are.equal("io", kind)
    assert.is_truthy(err:find("/exports/csv?", 1, true), err)
    assert.are.same({ ".cpf-fetch.csv.gz", ".cpf-fetch.etag", ".cpf-fetch.json" }, listing(dir))
    answer = assert(cpf.fetch { dir = dir, url = base })
    assert.are.same({ 1, "bytes=30000-" }, { answer.resumed, requests()[4].range })
    assert.are.same({ "cpf-2026-05-04.cpfsnap", "cpf-2026-05-04.json", "cpf-latest.cpfsnap" }, listing(dir))
    h.same_dataset(assert(cpf.load(csvs.may.path)), assert(cpf.open(answer.snapshot)), "resumed next run")
  end)

  it("restarts from zero when the server sends the whole file to a Range (no ETag)", function()
    local dir = h.tmpname("-history")
    publish("may", "2026-05-05T06:00:00+00:00", { script = { "cut:20000", "noetag" } })
    local answer = assert(cpf.fetch { dir = dir, url = base, backoff = 0.05 })
    assert.are.equal(0, answer.resumed)
    h.same_dataset(assert(cpf.load(csvs.may.path)), assert(cpf.open(answer.snapshot)), "restarted")
  end)

  it("restarts from zero when the server ignores the Range, and takes a whole partial file as done", function()
    local dir = h.tmpname("-history")
    publish("may", "2026-05-05T06:00:00+00:00", { script = { "cut:20000", "norange" } })
    local answer = assert(cpf.fetch { dir = dir, url = base, backoff = 0.05 })
    assert.are.same({ 0, 1 }, { answer.resumed, answer.restarted })
    h.same_dataset(assert(cpf.load(csvs.may.path)), assert(cpf.open(answer.snapshot)), "restarted")
    -- a run that stopped after the download (before the snapshot): the next asks the bytes
    -- after the end, gets 416 with the size, and goes on without downloading again
    dir = h.tmpname("-history")
    assert(core.make_dirs(dir))
    local gz = h.read_file(portal .. "/export.csv.gz")
    h.write_bytes(dir .. "/.cpf-fetch.csv.gz", gz)
    h.write_bytes(dir .. "/.cpf-fetch.json", "2026-05-05T06:00:00+00:00\n3000\n")
    local etag = '"' .. h.run("md5sum " .. q(portal .. "/export.csv.gz")):sub(1, 16) .. '"'
    h.write_bytes(dir .. "/.cpf-fetch.etag", etag .. "\n")
    publish("may", "2026-05-05T06:00:00+00:00")
    answer = assert(cpf.fetch { dir = dir, url = base })
    assert.are.equal(("bytes=%d-"):format(#gz), requests()[2].range)
    assert.are.equal(etag, requests()[2].if_range)
    assert.are.equal(3000, #assert(cpf.open(answer.snapshot)))
    -- a lost cpf-latest (a run that stopped before linking it) comes back with the next run
    os.remove(dir .. "/cpf-latest.cpfsnap")
    assert.are.equal("unchanged", assert(cpf.fetch { dir = dir, url = base }).status)
    assert.is_true(core.same_file(answer.snapshot, dir .. "/cpf-latest.cpfsnap"))
    assert.are.same({ "cpf-2026-05-04.cpfsnap", "cpf-2026-05-04.json", "cpf-latest.cpfsnap" }, listing(dir))
  end)

  it("waits out a 429 and retries a 500, then succeeds", function()
    local dir = h.tmpname("-history")
    publish("may", "2026-05-05T06:00:00+00:00", { script = { "429:0", "500", "429date:0" } })
    local answer = assert(cpf.fetch { dir = dir, url = base, backoff = 0.05 })
    assert.are.equal(4, answer.attempts)
    assert.are.equal(5, #requests())
    assert.has_error(function() cpf.fetch { dir = dir, retries = -1 } end,
      "fetch: option 'retries' must be a whole number from 0 to 100")
  end)

  it("fails clearly, leaving no snapshot, on every bad answer", function()
    local cases = {
      { "a 500", { script = { "500" } }, { retries = 0 },
        "cpf: fetch: URL: HTTP 500 Internal Server Error: internal error\n" },
      { "an HTML page", { script = { "html" } }, {},
        "cpf: fetch: URL: the portal answered an HTML page, not the export (Content-Type text/html; charset=utf-8)\n" },
      { "a truncated gzip", { truncate = 0.6 }, {}, "cpf: fetch: URL: PART: " },
      { "fewer rows than the portal says", { records = 3005 }, {},
        "cpf: fetch: URL: the export has 3000 rows, the portal says 3005: incomplete, run cpf fetch again\n" },
    }
    for _, case in ipairs(cases) do
      local dir = h.tmpname("-history")
      publish("may", "2026-05-05T06:00:00+00:00", case[2])
      local args = ("fetch %s --url %s"):format(q(dir), base)
      if case[3].retries then args = args .. " --retries " .. case[3].retries end
      local _, err, code = h.run(h.cpf_command(args))
      assert.are.equal(1, code, case[1])
      local url = base .. "/api/explore/v2.1/catalog/datasets/moncompteformation_formations_engagees/exports/csv?"
        .. "delimiter=%3B&with_bom=true&use_labels=true&compressed=true"
      local expected = case[4]:gsub("URL", (url:gsub("%%", "%%%%")), 1)
        :gsub("PART", (dir .. "/.cpf-fetch.csv.gz"):gsub("%%", "%%%%"), 1)
      assert.are.equal(expected, err:sub(1, #expected), case[1])
      for _, name in ipairs(listing(dir)) do
        assert.is_falsy(name:find("cpfsnap", 1, true), case[1] .. ": " .. name)
      end
    end
    -- not the CPF file
    local dir = h.tmpname("-history")
    publish("other", "2026-05-05T06:00:00+00:00")
    local none, err = cpf.fetch { dir = dir, url = base }
    assert.is_nil(none)
    assert.is_truthy(err:find("the export's header is not the CPF file's (0 of its ", 1, true), err)
    -- not the portal
    none, err = cpf.fetch { dir = dir, url = base .. "/nothing" }
    assert.is_nil(none)
    assert.is_truthy(err:find("/nothing/api/explore/v2.1/catalog/datasets/moncompteformation_formations_engagees: "
      .. "HTTP 404 Not Found", 1, true), err)
  end)

  it("says the disk is full, and resumes once there is room", function()
    local dir = h.tmpname("-history")
    publish("may", "2026-05-05T06:00:00+00:00")
    core.fail_io(3, "ENOSPC")
    local none, err, kind = cpf.fetch { dir = dir, url = base, retries = 0 }
    core.fail_io(0)
    assert.is_nil(none)
    assert.are.equal("io", kind)
    assert.is_truthy(err:find(dir .. "/.cpf-fetch.csv.gz: the disk is full (No space left on device): free some "
      .. "space and run again, the download resumes where it stopped", 1, true), err)
    local answer = assert(cpf.fetch { dir = dir, url = base })
    assert.are.equal(1, answer.resumed)
    h.same_dataset(assert(cpf.load(csvs.may.path)), assert(cpf.open(answer.snapshot)), "after the disk was full")
  end)

  it("goes through the proxy the environment names, and reports each step to progress", function()
    local dir = h.tmpname("-history")
    publish("may", "2026-05-05T06:00:00+00:00")
    -- the stand-in answers as a proxy too: a host that does not resolve is reached through it
    local _, err, code = h.run(("env http_proxy=%s no_proxy= NO_PROXY= %s"):format(base,
      h.cpf_command(("fetch %s --url http://cpf-portal.invalid -q"):format(q(dir)))))
    assert.are.equal(0, code, err)
    local log = h.read_file(portal .. "/requests.log")
    assert.is_truthy(log:find("GET http://cpf-portal.invalid/api/explore/v2.1/catalog/datasets/", 1, true), log)
    dir = h.tmpname("-history")
    local steps, last = {}, nil
    assert(cpf.fetch { dir = dir, url = base, progress = function(step, done, total, attempt)
      if step ~= last then steps[#steps + 1] = step end
      last = step
      assert.is_true(done >= 0 and total >= 0 and attempt >= 0)
    end })
    assert.are.equal("metadata", steps[1])
    for _, step in ipairs(steps) do
      assert.is_truthy(({ metadata = true, download = true, load = true, save = true })[step], step)
    end
  end)

  -- nginx runs the luajit build whatever runs this spec: once, under Lua 5.4
  local serve_it = (_VERSION == "Lua 5.4" and not jit) and it or pending
  serve_it("cpf serve DIR --fetch fetches into DIR, serves it, and swaps in a new extraction #no_asan", function()
    local dir = h.tmpname("-served") .. "/history"
    sh("make -s LUA=luajit")
    publish("may", "2026-05-05T06:00:00+00:00")
    local prefix = h.tmpname("-prefix")
    local user = sh("id -u"):match("^0\n") and " --user root" or ""
    local port, server
    -- another spec may have seeded math.random: this run's own entropy (a table's address)
    math.randomseed(os.time() + tonumber(tostring({}):match("(%x%x%x%x%x%x)$") or "0", 16))
    -- a free port, then the server's own answer: another run on this machine may have taken
    -- the same port at the same moment (its nginx then fails to bind and exits: try another)
    for _ = 1, 20 do
      port = 20000 + math.random(0, 39999)
      local _, _, code = h.run(("curl -s -o /dev/null --max-time 1 http://127.0.0.1:%d/"):format(port))
      if code == 7 then
        server = sh(("lua5.4 bin/cpf serve %s --fetch --url %s --fetch-every 1 --port %d --workers 2 --prefix %s"
          .. " --check-every 0.2%s > %s 2>&1 & echo $!"):format(q(dir), base, port, q(prefix), user,
          q(prefix .. ".log"))):match("%d+")
        os.execute("sleep 0.5")
        if select(3, h.run("kill -0 " .. server)) == 0 then break end
        server = nil
      end
    end
    assert(server, "no port to serve on")
    local function rows()
      local out = h.run(("curl -s http://127.0.0.1:%d/health"):format(port))
      return tonumber(out:match('"rows": (%d+)'))
    end
    local ok, err = pcall(function()
      local seen
      for _ = 1, 300 do
        seen = rows()
        if seen then break end
        os.execute("sleep 0.1")
      end
      assert.are.equal(3000, seen, h.read_file(prefix .. ".log") .. (io.open(prefix .. "/logs/error.log")
        and h.read_file(prefix .. "/logs/error.log") or ""))
      publish("june", "2026-06-04T06:00:00+00:00")
      for _ = 1, 300 do
        seen = rows()
        if seen == 3100 then break end
        os.execute("sleep 0.1")
      end
      assert.are.equal(3100, seen)
      assert.are.same({ "cpf-2026-05-04.cpfsnap", "cpf-2026-05-04.json", "cpf-2026-06-03.cpfsnap",
                        "cpf-2026-06-03.json", "cpf-latest.cpfsnap" }, listing(dir))
      local log = h.read_file(prefix .. "/logs/error.log")
      assert.is_nil(log:find("[error]", 1, true), log)
      assert.is_nil(log:find("[alert]", 1, true), log)
    end)
    os.execute("kill " .. server .. " 2>/dev/null; sleep 0.3")
    assert(ok, err)
  end)

  it("fails cleanly at every allocation of a transfer (libcurl's go through the core's)", function()
    publish("may", "2026-05-05T06:00:00+00:00")
    local url = base .. "/api/explore/v2.1/catalog/datasets/moncompteformation_formations_engagees"
    local want = assert(select(2, core.http_job { url = url }:wait())).body
    local n, failed, _ = 1, 0, nil
    while true do
      core.fail_allocation(n)
      local made, job = pcall(core.http_job, { url = url, retries = 0 })
      local answer, err, kind
      if made then _, answer, err, kind = job:wait() end
      local left = core.allocations_left()
      core.fail_allocation(0)
      if left > 0 then break end
      if not made then
        assert.is_truthy(tostring(job):find("not enough memory", 1, true), tostring(job)) -- the job's own copies
      elseif answer then
        assert.are.equal(want, answer.body, "allocation " .. n)
      else
        failed = failed + 1
        assert.is_truthy(kind == "memory" or kind == "io", ("allocation %d: %s %s"):format(n, tostring(err), kind))
      end
      n = n + (os.getenv("CPF_SANITIZED") and 4 or 1) -- sampled under the sanitizers
    end
    assert.is_true(n > 20 and failed > 0, ("%d allocations, %d failed"):format(n, failed))
  end)

  it("runs as a job to poll, which a cancel stops", function()
    local dir = h.tmpname("-history")
    publish("may", "2026-05-05T06:00:00+00:00", { script = { "429:30" } })
    local job = cpf.fetch_async { dir = dir, url = base }
    local steps = {}
    for _ = 1, 200 do
      local finished, step = job:poll()
      assert.is_false(finished)
      steps[step] = true
      if step == "download" then break end
      core.sleep(0.01)
    end
    assert.is_true(steps.download)
    job:cancel()
    local finished, res, err, kind = job:poll()
    assert.are.same({ true, nil, "fetch cancelled", "cancelled" }, { finished, res, err, kind })
    assert.has_error(function() cpf.fetch_async { dir = dir, bogus = 1 } end, "fetch: unknown option 'bogus'")
  end)
end)

-- Reliability (issue 8): the cache never answers for another file or other options, a query is
-- accepted or refused from its plan alone, outputs never destroy inputs, and misuse fails at
-- the call with a clear message.
local h = require "spec.helpers"
local cpf = require "cpf"

local TITULAIRES = "nb_titulaires;nb_dossiers;montant_engage;statut_dossier\n"
local full = TITULAIRES .. "3;4;400.00;Validé\n2;2;150.50;Rejeté\n"
local holes = TITULAIRES .. "3;4;400.00;Validé\n;2;150.50;Rejeté\n1;;10.00;Validé\n"

local NOT_ADDITIVE = "nb_titulaires is not additive across rows: one holder can appear in several "
  .. "rows (several statuses, months or places), so its sum over-counts people; report it per row "
  .. "or use cpf.max \"nb_titulaires\" if you know what it means"

local raised = h.error_of

describe("the cache", function()
  after_each(h.cleanup)

  it("keeps a snapshot of some columns from answering for the whole file (and back)", function()
    local path = h.write_file(full)
    local some = assert(cpf.load(path, { cache = true, columns = { "nb_dossiers" } }))
    assert.are.equal(1, #some:columns())
    local all = assert(cpf.load(path, { cache = true }))
    assert.are.equal(4, #all:columns())
    assert.is_false(all:is_snapshot(), "the one-column snapshot is not reused")
    local again = assert(cpf.load(path, { cache = true }))
    assert.is_true(again:is_snapshot())
    assert.are.equal(4, #again:columns())
    local some_again = assert(cpf.load(path, { cache = true, columns = { "nb_dossiers" } }))
    assert.are.equal(1, #some_again:columns())
    os.remove(path .. ".cpfsnap")
  end)

  it("sees a CSV edited with its size and modification time put back", function()
    local path = h.write_file(full)
    local stamp = h.write_file("")
    assert.are.equal(0, select(3, h.run("touch -r " .. path .. " " .. stamp)))
    assert(cpf.load(path, { cache = true }))
    assert.is_true(assert(cpf.load(path, { cache = true })):is_snapshot())
    -- same size, one digit changed, the old time restored
    local edited = full:gsub("3;4;400", "3;5;400")
    assert.are.equal(#full, #edited)
    local f = assert(io.open(path, "r+b"))
    f:write(edited)
    f:close()
    assert.are.equal(0, select(3, h.run("touch -r " .. stamp .. " " .. path)))
    local ds = assert(cpf.load(path, { cache = true }))
    assert.is_false(ds:is_snapshot())
    assert.are.equal(7, ds:run { n = cpf.sum "nb_dossiers" }[1].n)
    os.remove(path .. ".cpfsnap")
  end)
end)

describe("nb_titulaires", function()
  after_each(h.cleanup)

  it("is refused in every aggregate that adds it across rows, with or without missing values", function()
    for _, text in ipairs { full, holes } do
      local ds = assert(cpf.load(h.write_file(text)))
      for _, a in ipairs {
        cpf.sum "nb_titulaires",
        cpf.ratio("nb_titulaires", "nb_dossiers"),
        cpf.ratio("nb_dossiers", "nb_titulaires"),
        cpf.wmean("nb_titulaires", "nb_dossiers"),
        cpf.wmean("montant_engage", "nb_titulaires"),
        cpf.share(cpf.sum "nb_titulaires"),
        cpf.share "nb_titulaires",
        cpf.filtered(cpf.ratio("nb_titulaires", "nb_dossiers"), { statut_dossier = "Validé" }),
        cpf.combine({ cpf.sum "nb_dossiers", cpf.ratio("nb_titulaires", "nb_dossiers") },
                    function(a, b) return (a or 0) + (b or 0) end),
      } do
        assert.are.equal(NOT_ADDITIVE, raised(function() ds:run { r = a } end))
      end
      assert.are.equal(NOT_ADDITIVE, raised(function() ds:run { "titulaires" } end))
      -- per-row statistics are allowed
      local r = ds:run { lo = cpf.min "nb_titulaires", hi = cpf.max "nb_titulaires",
                         m = cpf.mean "nb_titulaires", med = cpf.median "nb_titulaires",
                         d = cpf.distinct "nb_titulaires" }[1]
      assert.are.equal(3, r.hi)
    end
  end)

  it("is refused by the command line the same way", function()
    local path = h.write_file(full)
    for _, spec in ipairs { "ratio:nb_titulaires:nb_dossiers", "sum:nb_titulaires", "titulaires" } do
      local _, err, code = h.run(h.cpf_command("query " .. path .. " --measure " .. spec))
      assert.is_true(code == 1 or code == 2, spec) -- exit codes by kind: the request language (issue 9)
      assert.is_truthy(err:find("nb_titulaires is not additive across rows", 1, true), spec .. ": " .. err)
    end
  end)
end)

describe("outputs", function()
  after_each(h.cleanup)

  it("never overwrite an input", function()
    local path = h.write_file(full)
    local link = h.tmpname(".csv")
    assert.are.equal(0, select(3, h.run("ln " .. path .. " " .. link)))
    local none, err = cpf.convert(path, path)
    assert.is_nil(none)
    assert.are.equal(path .. ": is an input file: refusing to overwrite it", err)
    none, err = cpf.convert(path, link) -- another name of the same file
    assert.is_nil(none)
    assert.are.equal(link .. ": is an input file: refusing to overwrite it", err)
    local _, cerr, code = h.run(h.cpf_command("convert " .. path .. " " .. path))
    assert.are.equal(1, code)
    assert.are.equal("cpf: " .. path .. ": is an input file: refusing to overwrite it\n", cerr)
    for _, command in ipairs { "query " .. path .. " --by statut_dossier -o " .. link,
                               "describe " .. path .. " -o " .. path } do
      local _, qerr, qcode = h.run(h.cpf_command(command))
      assert.are.equal(1, qcode, command)
      assert.is_truthy(qerr:find(": is an input file: refusing to overwrite it", 1, true), qerr)
    end
    assert.are.equal(full, h.read_file(path))
  end)
end)

describe("misuse from Lua", function()
  local ds
  setup(function() ds = assert(cpf.load(h.fixture "q_small.csv")) end)
  teardown(h.cleanup)

  it("reduce skips missing values, takes a plain init value and refuses bad specs at the call", function()
    local seen_nil = false
    local r = ds:run { s = cpf.reduce { column = "duree_moyenne", init = 0,
      step = function(acc, v) if v == nil then seen_nil = true end return acc + (v or 0) end },
      ref = cpf.sum "duree_moyenne" }[1]
    assert.is_false(seen_nil)
    assert.are.equal(r.ref, r.s)
    assert.are.equal("reduce: 'init' is a table, which every group would share: give a function that returns a new one",
      raised(function() cpf.reduce { column = "x", init = {}, step = print } end))
    assert.are.equal("reduce: 'init' must be a function or a number, string or boolean, got userdata",
      raised(function() cpf.reduce { column = "x", init = io.stdout, step = print } end))
    assert.are.equal("reduce: 'column' must be a column name, got nil",
      raised(function() cpf.reduce { step = print } end))
    assert.are.equal("reduce: 'final' must be a function, got number",
      raised(function() cpf.reduce { column = "x", step = print, final = 1 } end))
  end)

  it("refuses NaN as a quantile or a bucket bound", function()
    assert.are.equal("bad argument #2 to 'quantile' (number in [0, 1] expected)",
      raised(function() cpf.quantile("montant_engage", 0 / 0) end))
    assert.are.equal("bad argument #2 to 'bucket' (bound 1 is NaN, a number expected)",
      raised(function() cpf.bucket("montant_engage", { 0 / 0 }) end))
    assert.are.equal("bad argument #2 to 'bucket' (bound 2 is string, a number expected)",
      raised(function() cpf.bucket("montant_engage", { 1, "2" }) end))
  end)

  it("refuses a NUL, a quote or a line break as the separator", function()
    local path = h.fixture "q_small.csv"
    assert.are.equal("load: option 'sep' cannot be a NUL byte (leave it out to detect the separator)",
      raised(function() cpf.load(path, { sep = "\0" }) end))
    assert.are.equal("load: option 'sep' cannot be the quote (leave it out to detect the separator)",
      raised(function() cpf.load(path, { sep = '"' }) end))
    assert.are.equal("load: option 'sep' cannot be a line break (leave it out to detect the separator)",
      raised(function() cpf.load(path, { sep = "\n" }) end))
  end)

  it("says at the call when a method is called with a dot", function()
    assert.are.equal("bad argument #1 to 'group_by' (dataset expected, got string: call it as ds:group_by(...))",
      raised(function() ds.group_by("annee") end))
    assert.are.equal("bad argument #1 to 'run' (dataset expected, got table: call it as ds:run(...))",
      raised(function() ds.run { n = cpf.count() } end))
    local q = ds:query()
    assert.are.equal("bad argument #1 to 'where' (query expected, got table: call it as q:where(...))",
      raised(function() q.where { statut_dossier = "Validé" } end))
    assert.are.equal("bad argument #1 to 'order_by' (query expected, got string: call it as q:order_by(...))",
      raised(function() q.order_by("-n") end))
    assert.are.equal("bad argument #1 to 'limit' (query expected, got number: call it as q:limit(...))",
      raised(function() q.limit(3) end))
    assert.are.equal("bad argument #1 to 'run' (query expected, got nil: call it as q:run(...))",
      raised(function() q.run() end))
  end)

  it("checks cpf.result's arguments at the call", function()
    assert.are.equal("bad argument #1 to 'result' (list of column names expected, got number)",
      raised(function() cpf.result(42) end))
    assert.are.equal("bad argument #1 to 'result' (list of column names: entry 2 is a number)",
      raised(function() cpf.result({ "a", 3 }) end))
    assert.are.equal("bad argument #2 to 'result' (row 1 is a number, a table expected)",
      raised(function() cpf.result({ "a" }, { 1 }) end))
    assert.are.equal("bad argument #3 to 'result' (key 'b' is not a column)",
      raised(function() cpf.result({ "a" }, {}, { "b" }) end))
    assert.are.equal(1, #cpf.result({ "a" }, { { a = 1 } }, { "a" }))
  end)
end)

describe("cpf.header", function()
  after_each(h.cleanup)

  it("gives the columns a CSV loads as, from its header alone", function()
    local cols = assert(cpf.header(h.fixture "q_small.csv"))
    assert.are.equal(7, #cols)
    assert.are.same({ name = "date_validation", label = "date validation", type = "month" }, cols[3])
    local path = h.write_file("\239\187\191a;Nb Dossiers\n1;2\n")
    assert.are.same({ { name = "a", label = "a", type = "auto" },
                      { name = "nb_dossiers", label = "Nb Dossiers", type = "integer" } }, cpf.header(path))
    assert.are.same({ name = "a", label = "a", type = "string" }, cpf.header(path, { types = { a = "string" } })[1])
  end)

  it("refuses what cannot be read twice, and reports header errors as cpf.load does", function()
    local fifo = h.tmpname(".fifo")
    assert.are.equal(0, select(3, h.run("mkfifo " .. fifo)))
    local none, err = cpf.header(fifo)
    assert.is_nil(none)
    assert.are.equal(fifo .. ": the header of a fifo cannot be read ahead of its rows", err)
    none, err = cpf.header("/nonexistent.csv")
    assert.is_nil(none)
    assert.are.equal("/nonexistent.csv: No such file or directory", err)
    local dup = h.write_file("nb_dossiers;nb_dossiers\n")
    none, err = cpf.header(dup)
    assert.is_nil(none)
    assert.are.equal(select(2, cpf.load(dup)), err)
  end)

  it("lets the command line name an unknown column read from a pipe", function()
    local _, err, code = h.run("cat spec/fixtures/q_small.csv | " .. h.cpf_command("query - --by nope"))
    assert.are.equal(1, code)
    assert.are.equal("cpf: -:1: unknown column 'nope' (--by nope)\n", err)
  end)
end)

describe("res:write to a path", function()
  after_each(h.cleanup)
  local function result() return cpf.result({ "a" }, { { a = 1 } }) end

  it("replaces only a regular file, and leaves no temporary behind", function()
    local dir = h.tmpname("-w")
    assert.are.equal(0, select(3, h.run("mkdir " .. dir .. " && mkfifo " .. dir .. "/fifo && echo keep > "
      .. dir .. "/target && ln -s target " .. dir .. "/link && mkdir " .. dir .. "/sub")))
    finally(function() os.execute("rm -rf " .. dir) end)
    for _, name in ipairs { "link", "sub" } do
      local ok, err = result():write(dir .. "/" .. name, "csv")
      assert.is_nil(ok, name)
      assert.are.equal(dir .. "/" .. name .. ": not a regular file: refusing to replace it", err)
    end
    assert.are.equal("keep\n", h.read_file(dir .. "/target"), "the symlink's target is untouched")
    assert.is_true(result():write(dir .. "/target", "csv"))
    assert.are.equal("a\n1\n", h.read_file(dir .. "/target"))
    assert.are.equal("fifo\nlink\nsub\ntarget\n", (h.run("ls " .. dir)))
    -- a device is written to, never renamed over (as root a rename would replace it)
    assert.is_true(result():write("/dev/null", "csv"))
    assert.are.equal("character special file", (h.run("stat -c %F /dev/null")):gsub("\n$", ""))
  end)

  it("removes its temporary when the format fails", function()
    local dir = h.tmpname("-w")
    assert.are.equal(0, select(3, h.run("mkdir " .. dir)))
    finally(function() os.execute("rm -rf " .. dir) end)
    cpf.formats.register("fails_midway", function(_, out) out:write("x\n") error("format broke", 0) end)
    assert.has_error(function() result():write(dir .. "/out.txt", "fails_midway") end, "format broke")
    assert.are.equal("", (h.run("ls -A " .. dir)))
  end)

  it("is what the command line's -o uses: a FIFO or a device is written to", function()
    local fifo, got = h.tmpname(".fifo"), h.tmpname(".out")
    assert.are.equal(0, select(3, h.run("mkfifo " .. fifo)))
    for _, command in ipairs { "query spec/fixtures/q_small.csv", "describe spec/fixtures/q_small.csv" } do
      local want = h.run(h.cpf_command(command))
      -- a reader on the FIFO's other end, as a pipeline would have (given up after a while if
      -- cpf never opens it: a failure, not a hang)
      local _, err, code = h.run("timeout 60 cat " .. fifo .. " > " .. got .. " & "
        .. h.cpf_command(command .. " -o " .. fifo) .. "; wait")
      assert.are.equal(0, code, err)
      assert.are.equal(want, h.read_file(got), command)
      _, err, code = h.run(h.cpf_command(command .. " -o /dev/null"))
      assert.are.equal(0, code, err)
    end
    local _, err, code = h.run(h.cpf_command("query spec/fixtures/q_small.csv -o /"))
    assert.are.equal(1, code)
    assert.are.equal("cpf: /: not a regular file: refusing to replace it\n", err)
  end)
end)

describe("errors as values", function()
  after_each(h.cleanup)

  it("a threaded load reports a file row whatever the message says (cancelled, progress callback)", function()
    local rows = { "statut_dossier;load cancelled by the progress callback" }
    for i = 1, 60000 do rows[#rows + 1] = ("Validé;%d"):format(i) end
    rows[50001] = "Validé;progress callback failed: cancelled"
    local path = h.write_file(table.concat(rows, "\n") .. "\n")
    local _, serial = cpf.load(path, { threads = 1, types = { load_cancelled_by_the_progress_callback = "integer" } })
    assert.are.equal(path .. ":50001:2: load_cancelled_by_the_progress_callback: expected an integer, "
      .. 'got "progress callback failed: cancelled"', serial)
    for _, threads in ipairs { 2, 3, 4 } do
      local none, err, kind = cpf.load(path, { threads = threads,
        types = { load_cancelled_by_the_progress_callback = "integer" } })
      assert.is_nil(none)
      assert.are.equal(serial, err, threads .. " threads")
      assert.are.equal("data", kind)
    end
  end)

  it("come with their kind: data, io, usage, cancelled, callback", function()
    local function kind_of(...) return (select(3, ...)) end
    assert.are.equal("data", kind_of(cpf.load(h.fixture "bad_integer.csv")))
    assert.are.equal("data", kind_of(cpf.load(h.fixture "duplicate_known.csv")))
    assert.are.equal("io", kind_of(cpf.load("/nonexistent.csv")))
    assert.are.equal("io", kind_of(cpf.load("spec")))
    assert.are.equal("usage", kind_of(cpf.load(h.fixture "q_small.csv", { columns = { "nope" } })))
    assert.are.equal("usage", kind_of(cpf.load(h.fixture "q_small.csv", { types = { nope = "integer" } })))
    assert.are.equal("cancelled",
      kind_of(cpf.load(h.fixture "q_small.csv", { progress = function() return false end })))
    assert.are.equal("callback", kind_of(cpf.load(h.fixture "q_small.csv", { progress = function() error("x") end })))
    assert.are.equal("data", kind_of(cpf.open(h.fixture "q_small.csv")))
    assert.are.equal("io", kind_of(cpf.open("/nonexistent.cpfsnap")))
    local ds = assert(cpf.load(h.fixture "q_small.csv"))
    assert.are.equal("io", kind_of(ds:save("/nonexistent/x.cpfsnap")))
    assert.are.equal("io", kind_of(ds:run { n = cpf.count() }:write("/nonexistent/x.csv", "csv")))
  end)
end)

describe("the command line on a FIFO", function()
  after_each(h.cleanup)

  it("reads it once, without blocking on a look for the snapshot header", function()
    local fifo = h.tmpname(".fifo")
    assert.are.equal(0, select(3, h.run("mkfifo " .. fifo)))
    local out, err, code = h.run("(cat spec/fixtures/q_small.csv > " .. fifo .. " &) ; timeout 20 "
      .. h.cpf_command("describe " .. fifo))
    assert.are.equal(0, code, err)
    assert.is_truthy(out:find("7 rows, 7 columns", 1, true), out)
  end)
end)

-- Snapshots: ds:save writes the column store as one file, cpf.open maps it back and uses the
-- columns in place. Same dataset, same query results; damaged files give nil, message.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

local same_dataset = h.same_dataset

local function bytes_of(path) return h.read_file(path) end
local write_bytes = h.write_bytes

describe("snapshots", function()
  local csv, ds, snap
  setup(function()
    csv = h.tmpname(".csv")
    assert(gen.write(csv, 20000, { seed = 21 }))
    ds = assert(cpf.load(csv))
    snap = h.tmpname(".cpfsnap")
    assert.is_true(ds:save(snap))
  end)
  teardown(h.cleanup)

  it("reopen as the same dataset, mapped", function()
    local s = assert(cpf.open(snap))
    assert.is_true(s:is_snapshot())
    assert.is_false(ds:is_snapshot())
    same_dataset(ds, s)
    local q = function(d)
      return d:where { annee = cpf.ge(2023) }:group_by("region_lieu_formation", "famille")
              :agg { "dossiers", "montant", "prix_moyen", "duree_moyenne", "taux_annulation" }:run()
    end
    assert.are.same(q(ds), q(s))
    s:close()
    s:close()
  end)

  it("keep every column type, missing values, scales and empty datasets", function()
    for _, name in ipairs { "codes_and_inference.csv", "missing_values.csv", "extra_decimals.csv",
                            "exponent_amount.csv", "header_only.csv", "labels_bom_lf.csv" } do
      local d = assert(cpf.load(h.fixture(name)))
      local p = h.tmpname(".cpfsnap")
      assert.is_true(d:save(p))
      same_dataset(d, assert(cpf.open(p)))
    end
  end)

  it("can be saved again from a mapped dataset", function()
    local s = assert(cpf.open(snap))
    local again = h.tmpname(".cpfsnap")
    assert.is_true(s:save(again))
    assert.are.equal(bytes_of(snap), bytes_of(again))
  end)

  it("refuse what is not a snapshot, with the reason", function()
    local _, err = cpf.open("spec/fixtures/no-such.cpfsnap")
    assert.are.equal("spec/fixtures/no-such.cpfsnap: cannot open: No such file or directory", err)
    _, err = cpf.open(csv)
    assert.are.equal(csv .. ": not a snapshot (no CPFSNAP header)", err)
    local tiny = h.write_file("CPF", ".cpfsnap")
    _, err = cpf.open(tiny)
    assert.are.equal(tiny .. ": not a snapshot: too short (3 bytes)", err)
    _, err = cpf.open("spec")
    assert.are.equal("spec: not a snapshot: not a regular file", err)
    -- a FIFO with no writer: refused at once (opening it used to wait for one)
    local fifo = h.tmpname(".cpfsnap")
    assert(os.execute("mkfifo " .. h.shell_quote(fifo)))
    _, err = cpf.open(fifo)
    assert.are.equal(fifo .. ": not a snapshot: not a regular file", err)
  end)

  it("refuse a truncated or extended file", function()
    local bytes = bytes_of(snap)
    local cut = h.tmpname(".cpfsnap")
    write_bytes(cut, bytes:sub(1, #bytes - 100))
    assert.are.equal(cut .. ": truncated", select(2, cpf.open(cut)))
    write_bytes(cut, bytes .. "x")
    assert.are.equal(cut .. ": trailing bytes after the end", select(2, cpf.open(cut)))
  end)

  it("detect damaged data through the checksums", function()
    local bytes = bytes_of(snap)
    local bad = h.tmpname(".cpfsnap")
    -- a byte in the middle of the column data
    local at = math.floor(#bytes / 2)
    write_bytes(bad, bytes:sub(1, at - 1) .. string.char((bytes:byte(at) + 1) % 256) .. bytes:sub(at + 1))
    -- the column table is sound: the file opens; the damaged column is refused at its first
    -- use (its checksum checked then), by every query that reads it, and by ds:verify()
    local opened = assert(cpf.open(bad))
    local none, err = opened:verify()
    assert.is_nil(none)
    local pattern = "^" .. bad:gsub("%p", "%%%0") .. ": column (%d+): checksum mismatch: the data is damaged$"
    local column = tonumber(err:match(pattern))
    assert.is_number(column, err)
    local name = opened:columns()[column].name
    assert.are.equal(err, h.error_of(function() return opened:group_by(name):run { n = cpf.count() } end))
    assert.are.equal(err, h.error_of(function() return opened:get(1, name) end))
    assert.are.equal(err, select(2, opened:verify())) -- remembered
    assert.are.same({ nil, err, "data" }, { opened:save(h.tmpname(".cpfsnap")) })
    opened:close()
    -- verify = false skips the checksums but not the checks that keep reading safe: the column
    -- can be queried, or a value outside its recorded range is refused when it is first used
    local d = assert(cpf.open(bad, { verify = false }))
    assert.are.equal(#ds, #d)
    local ok, e = d:verify()
    if ok then
      d:group_by("region_lieu_formation", "annee"):run { "dossiers" }
    else
      assert.is_truthy(e:match(": column %d+: a value outside the recorded range: the data is damaged$"), e)
    end
  end)

  it("never crash on random damage, whatever is changed", function()
    local bytes = bytes_of(snap)
    local state = 12345
    local function r(n) state = (state * 48271) % 2147483647 return state % n + 1 end
    local bad = h.tmpname(".cpfsnap")
    local opened = 0
    for _ = 1, 150 do
      local at = r(#bytes)
      local len = r(8)
      local junk = {}
      for k = 1, len do junk[k] = string.char(r(256) - 1) end
      local damaged = bytes:sub(1, at - 1) .. table.concat(junk) .. bytes:sub(at + len)
      if r(10) == 1 then damaged = damaged:sub(1, r(#damaged)) end
      write_bytes(bad, damaged)
      for _, verify in ipairs { true, false } do
        local d, err = cpf.open(bad, { verify = verify })
        if d then -- answers, or a damage found on first use: "path: column N: ..."
          opened = opened + 1
          local ok, use_err = pcall(function()
            for i = 1, #d, 997 do d:row(i) end
            d:group_by("statut_dossier", "annee"):run { "dossiers", "montant" }
          end)
          if not ok then assert.is_truthy(tostring(use_err):find(bad .. ": column %d+: ")) end
          d:close()
        else
          assert.is_string(err)
        end
      end
    end
    assert.is_true(opened > 0) -- some damage (in padding) leaves a valid file
  end)

  it("serve as a cache next to the CSV while it is unchanged", function()
    local path = h.tmpname(".csv")
    assert(gen.write(path, 3000, { seed = 4 }))
    local first = assert(cpf.load(path, { cache = true }))
    assert.is_false(first:is_snapshot())
    local second = assert(cpf.load(path, { cache = true }))
    assert.is_true(second:is_snapshot())
    same_dataset(first, second)
    -- other load options: not the same snapshot
    local typed = assert(cpf.load(path, { cache = true, types = { code_rs = "auto" } }))
    assert.is_false(typed:is_snapshot())
    -- the CSV changes: loaded again
    assert(gen.write(path, 2000, { seed = 5 }))
    local changed = assert(cpf.load(path, { cache = true }))
    assert.are.equal(2000, #changed)
    os.remove(path .. ".cpfsnap")
  end)

  it("share their pages between two processes that open the same file", function()
    local big = h.tmpname(".csv")
    assert(gen.write(big, 60000, { seed = 22 }))
    local file = h.tmpname(".cpfsnap")
    assert.is_true(assert(cpf.load(big)):save(file))
    local size = #h.read_file(file)
    -- a second process maps the file (verify reads every page) and waits on its stdin
    local child = assert(io.popen(h.interpreter .. " -e 'package.path=\"lua/?.lua;lua/?/init.lua;\"..package.path "
      .. "package.cpath=\"" .. (os.getenv("CPF_BUILD_DIR") or ("build/" .. h.lua_name)) .. "/?.so;\"..package.cpath "
      .. "local d = assert(require(\"cpf\").open(\"" .. file .. "\")) assert(d:verify()) "
      .. "io.stderr:write(\"ready\\n\") io.read()' 2>"
      .. file .. ".ready", "w"))
    for _ = 1, 200 do -- until the child has mapped it
      local f = io.open(file .. ".ready")
      local ready = f and f:read("*a") == "ready\n"
      if f then f:close() end
      if ready then break end
      os.execute("sleep 0.05")
    end
    local d = assert(cpf.open(file))
    assert(d:verify()) -- reads every page
    -- pages of this file's mapping that another process maps too (dirty when just written)
    local shared, in_file = 0, false
    for line in io.lines("/proc/self/smaps") do
      if line:match("^%x+%-%x+ ") then in_file = line:sub(-#file) == file end
      local kb = line:match("^Shared_%a+:%s*(%d+) kB")
      if in_file and kb then shared = shared + tonumber(kb) end
    end
    child:write("\n")
    child:close()
    os.remove(file .. ".ready")
    d:close()
    assert.is_true(shared * 1024 >= size * 0.9, ("%d kB shared for a %d-byte snapshot"):format(shared, size))
  end)

  it("written by cpf.convert serve as the cache", function()
    local path = h.tmpname(".csv")
    assert(gen.write(path, 2000, { seed = 8 }))
    local converted = assert(cpf.convert(path))
    assert.is_false(converted:is_snapshot())
    local cached = assert(cpf.load(path, { cache = true }))
    assert.is_true(cached:is_snapshot())
    same_dataset(converted, cached)
    local other = h.tmpname(".cpfsnap")
    assert(cpf.convert(path, other, { threads = 2 }))
    same_dataset(converted, assert(cpf.open(other)))
    local none, err = cpf.convert("spec/fixtures/bad_integer.csv", other)
    assert.is_nil(none)
    assert.are.equal('spec/fixtures/bad_integer.csv:3:2: nb_dossiers: expected an integer, got "deux"', err)
    os.remove(path .. ".cpfsnap")
  end)

  -- process B of the two-process specs: a Lua with this checkout's module paths
  -- Under the sanitizers the other process checks memory errors but not leaks: LeakSanitizer's
  -- thread scan at its exit reads a stale dynamic-TLS entry of glibc 2.36 (libcurl's libraries)
  -- and dies ("Tracer caught signal 11", depending on the heap's layout); the load and save it
  -- runs are leak-checked in this process by the other specs.
  local function lua_process(code)
    local prelude = "package.path=\"lua/?.lua;lua/?/init.lua;\"..package.path "
      .. "package.cpath=\"" .. (os.getenv("CPF_BUILD_DIR") or ("build/" .. h.lua_name))
      .. "/?.so;\"..package.cpath local cpf = require(\"cpf\") "
    local env = os.getenv("CPF_SANITIZED") and "ASAN_OPTIONS=detect_leaks=0 " or ""
    return h.run(env .. h.interpreter .. " -e " .. h.shell_quote(prelude .. code))
  end

  it("stay as they were for a process that has one open while another writes a new one over it", function()
    -- SQLite's guarantee for its mmap mode: cpf's writers (ds:save, cpf.convert, the cache)
    -- write a new file and rename it over the old one, never into a file that may be mapped
    local file = h.tmpname(".cpfsnap")
    local other = h.tmpname(".csv")
    assert(gen.write(other, 1500, { seed = 77 }))
    assert.is_true(ds:save(file))
    local a = assert(cpf.open(file))
    local function answer(d)
      local res = d:group_by("region_lieu_formation", "annee"):agg { "dossiers", "montant" }:run()
      local rows = {}
      for i, r in res:rows() do rows[i] = r end
      return rows
    end
    local before = answer(a)
    for _, code in ipairs {
      "assert(assert(cpf.load(\"" .. other .. "\")):save(\"" .. file .. "\"))",
      "assert(cpf.convert(\"" .. other .. "\", \"" .. file .. "\"))",
    } do
      local _, err, status = lua_process(code)
      assert.are.equal(0, status, err)
      assert.are.same(before, answer(a)) -- process A's mapping still holds the old file
      assert.are.equal(#ds, #a)
      local b = assert(cpf.open(file)) -- while a new open sees the new one
      assert.are.equal(1500, #b)
      assert.are_not.same(before, answer(b))
      b:close()
    end
    -- the cache: the CSV's snapshot rewritten by another process while this one has it open
    local csv2 = h.tmpname(".csv")
    assert(gen.write(csv2, 800, { seed = 78 }))
    local first = assert(cpf.load(csv2, { cache = true }))
    first:close()
    local cached = assert(cpf.load(csv2, { cache = true }))
    assert.is_true(cached:is_snapshot())
    local cached_before = answer(cached)
    assert(gen.write(csv2, 900, { seed = 79 }))
    local _, err, status = lua_process("assert(cpf.load(\"" .. csv2 .. "\", { cache = true }))")
    assert.are.equal(0, status, err)
    assert.are.same(cached_before, answer(cached))
    assert.are.equal(900, #assert(cpf.open(csv2 .. ".cpfsnap")))
    os.remove(csv2 .. ".cpfsnap")
  end)

  describe("ds:save refuses to replace what is not a regular file", function()
    local dir
    before_each(function()
      dir = h.tmpname(".d")
      assert(os.execute("mkdir " .. h.shell_quote(dir)))
    end)
    after_each(function() os.execute("rm -rf " .. h.shell_quote(dir)) end)

    local function stat(path) return (h.run("stat -c '%F %s %t:%T' " .. h.shell_quote(path))) end
    local function leftovers() return (h.run("ls -A " .. h.shell_quote(dir) .. " | grep '\\.tmp\\.' || true")) end
    local function refused(target)
      local ok, err = ds:save(target)
      assert.is_nil(ok)
      assert.are.equal(target .. ": not a regular file: refusing to replace it", err)
      assert.are.equal("", leftovers())
    end

    it("a symlink, to a file or dangling", function()
      local victim = dir .. "/victim"
      local f = assert(io.open(victim, "wb")) f:write("keep me") f:close()
      local link = dir .. "/x.cpfsnap"
      assert(os.execute("ln -s victim " .. h.shell_quote(link)))
      refused(link)
      assert.are.equal("victim\n", (h.run("readlink " .. h.shell_quote(link))))
      assert.are.equal("keep me", h.read_file(victim))
      local dangling = dir .. "/dangling.cpfsnap"
      assert(os.execute("ln -s nowhere " .. h.shell_quote(dangling)))
      refused(dangling)
      assert.are.equal("nowhere\n", (h.run("readlink " .. h.shell_quote(dangling))))
    end)

    it("a FIFO", function()
      local fifo = dir .. "/fifo"
      assert(os.execute("mkfifo " .. h.shell_quote(fifo)))
      refused(fifo)
      assert.are.equal("fifo 0 0:0\n", stat(fifo))
    end)

    it("a device", function()
      -- a node of our own with the numbers of /dev/null: on a broken build the rename would
      -- only replace this node, never the machine's /dev/null
      local dev = dir .. "/null"
      if not os.execute("mknod " .. h.shell_quote(dev) .. " c 1 3 2>/dev/null") then
        pending("mknod needs privileges this run does not have")
        return
      end
      refused(dev)
      assert.are.equal("character special file 0 1:3\n", stat(dev))
    end)

    it("a directory", function()
      local sub = dir .. "/sub.cpfsnap"
      assert(os.execute("mkdir " .. h.shell_quote(sub) .. " && touch " .. h.shell_quote(sub .. "/inside")))
      refused(sub)
      assert.are.equal("directory", stat(sub):match("^%a+"))
      assert.are.equal("inside\n", (h.run("ls " .. h.shell_quote(sub))))
    end)

    it("and never writes through a name planted where its temporary would go", function()
      -- the temporary used to be path.tmp.PID, opened with fopen: a symlink planted at that
      -- name had the snapshot written into its target
      local target = dir .. "/x.cpfsnap"
      local pid = h.read_file("/proc/self/stat"):match("^(%d+)")
      local victim = dir .. "/victim"
      local f = assert(io.open(victim, "wb")) f:write("keep me") f:close()
      assert(os.execute("ln -s victim " .. h.shell_quote(target .. ".tmp." .. pid)))
      assert.is_true(ds:save(target))
      assert.are.equal("keep me", h.read_file(victim))
      same_dataset(ds, assert(cpf.open(target)))
      -- a regular file is replaced; the new one has the mode a new file gets (0666 & ~umask)
      local plain = dir .. "/plain"
      f = assert(io.open(plain, "wb")) f:close()
      assert.is_true(ds:save(target))
      assert.are.equal((h.run("stat -c %a " .. h.shell_quote(plain))), (h.run("stat -c %a " .. h.shell_quote(target))))
      assert.are.equal("", leftovers():gsub("[^\n]*%.tmp%." .. pid .. "\n", ""))
    end)

    it("and reports a directory that does not exist", function()
      local ok, err = ds:save(dir .. "/no/such/x.cpfsnap")
      assert.is_nil(ok)
      assert.are.equal(dir .. "/no/such/x.cpfsnap: cannot write: No such file or directory", err)
    end)
  end)

  it("refuse bad arguments", function()
    assert.has_error(function() cpf.open() end, "bad argument #1 to 'open' (string expected, got nil)")
    assert.has_error(function() cpf.open("x", { check = true }) end, "open: unknown option 'check'")
  end)
end)

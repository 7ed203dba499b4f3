-- How the CSV is read: with pread through bounded buffers, never mapped (a file truncated under
-- a mapping kills the host with SIGBUS); a file that changes while it loads is an error; the
-- header must end within the first 1 MiB (so /dev/zero is refused, not read until memory runs
-- out); pipes and FIFOs are still read.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

local MiB = 1024 * 1024

describe("reading the CSV", function()
  after_each(h.cleanup)

  it("never maps the file", function()
    local path = h.write_file(h.read_file(h.fixture "labels_bom_lf.csv"))
    local mapped
    -- the last progress call comes before cpf.load closes the file: a mapping would still be there
    assert(cpf.load(path, { progress = function()
      mapped = false
      for line in io.lines("/proc/self/maps") do
        if line:find(path, 1, true) then mapped = true end
      end
    end }))
    assert.is_false(mapped)
  end)

  describe("a file that changes while it loads", function()
    local master -- ~40 MB, so that chunk 0 calls the progress callback before its end
    setup(function()
      local path = os.tmpname()
      assert(gen.write(path, 140000, { seed = 15 }))
      master = h.read_file(path)
      os.remove(path)
      assert.is_true(#master > 36 * MiB)
    end)
    teardown(function() master = nil collectgarbage() end)

    for _, threads in ipairs { 1, 2 } do
      it("is an error when the file is truncated, " .. threads .. " thread(s)", function()
        local path = h.write_file(master)
        local calls, first_done, first_total = 0, nil, nil
        local ds, err = cpf.load(path, { threads = threads, progress = function(done, total)
          calls = calls + 1
          if calls == 1 then
            first_done, first_total = done, total
            io.open(path, "w"):close()
          end
        end })
        assert.is_true(first_done < first_total, "the callback came before the end of the read")
        assert.is_nil(ds)
        assert.are.equal(path .. ": the file changed while it was read", err)
      end)
    end

    it("is an error when the file is rewritten in place with the same size", function()
      local path = h.write_file(master)
      local calls = 0
      local ds, err = cpf.load(path, { threads = 2, progress = function()
        calls = calls + 1
        if calls == 1 then
          local f = assert(io.open(path, "r+b"))
          f:seek("set", 100)
          f:write("X")
          f:close()
        end
      end })
      assert.is_nil(ds)
      assert.are.equal(path .. ": the file changed while it was read", err)
    end)

    it("loads the same file when nothing changes it, with a few MB of buffers", function()
      local path = h.write_file(master)
      local one = assert(cpf.load(path, { threads = 1 }))
      assert.are.equal(140000, #one)
      h.same_dataset(one, assert(cpf.load(path, { threads = 2 })), "2 threads")
    end)
  end)

  it("loads from a FIFO, in several chunks", function()
    local path = h.tmpname(".csv")
    assert(gen.write(path, 3000, { seed = 3 }))
    local fifo = h.tmpname(".fifo")
    local made = os.execute("mkfifo " .. fifo)
    assert.is_true(made == true or made == 0)
    -- the writer gives up after a minute if nobody reads, so a failure cannot hang the suite
    os.execute(("timeout 60 cat %s > %s &"):format(path, fifo))
    local from_fifo = assert(cpf.load(fifo, { threads = 3 }))
    h.same_dataset(assert(cpf.load(path)), from_fifo, "fifo")
  end)

  describe("the header line", function()
    -- ulimit: the code before the 1 MiB limit read /dev/zero until memory ran out
    local function bounded(command)
      local limited = "ulimit -v 3000000; exec timeout 60 " .. command
      return h.run("env -u LD_PRELOAD sh -c " .. h.shell_quote(limited))
    end

    it("must end within the first 1 MiB: /dev/zero is refused at once", function()
      local lua = ("-e 'package.path=\"lua/?.lua;lua/?/init.lua;\"..package.path "
        .. "package.cpath=\"build/%s/?.so;\"..package.cpath "
        .. "io.write((select(2, require(\"cpf\").load(\"/dev/zero\"))))'"):format(h.lua_name)
      local out, err, code = bounded(h.interpreter .. " " .. lua)
      assert.are.equal(0, code, err)
      assert.are.equal("/dev/zero:1: no header line in the first 1 MiB", out)
      local _, cli_err, cli_code = bounded(h.cpf_command("describe /dev/zero"))
      assert.are.equal(1, cli_code)
      assert.are.equal("cpf: /dev/zero:1: no header line in the first 1 MiB\n", cli_err)
    end)

    it("must end within the first 1 MiB of a regular file", function()
      -- the line break at byte 1 MiB (counted from 1): the last one allowed
      local label = ("b"):rep(MiB - 3)
      local ok = assert(cpf.load(h.write_file("a;" .. label .. "\n1;x\n")))
      assert.are.equal(1, #ok)
      assert.are.equal(label, ok:columns()[2].label)
      assert.are.equal("x", ok:row(1)[ok:columns()[2].name])
      local path = h.write_file("a;" .. label .. "b\n1;x\n")
      local ds, err = cpf.load(path)
      assert.is_nil(ds)
      assert.are.equal(path .. ":1: no header line in the first 1 MiB", err)
      -- and a first line of several MiB is refused without being read to its end
      path = h.write_file(("x"):rep(5 * MiB) .. "\n")
      assert.are.equal(path .. ":1: no header line in the first 1 MiB", select(2, cpf.load(path)))
    end)

    it("may take the whole file when it has no line break and fits in 1 MiB", function()
      local ds = assert(cpf.load(h.write_file("a;b")))
      assert.are.equal(0, #ds)
      assert.are.equal(2, #ds:columns())
    end)
  end)
end)

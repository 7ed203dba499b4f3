-- Records set aside (issue 30, point 4): cpf.load(path, {on_error = "skip"}) and --on-error skip
-- keep going past malformed records — a field count other than the header's, a value that does
-- not parse as its column's type, a quote libcsv refuses or one left open — and list each in
-- ds:rejects(): the physical line an editor shows, the record number, the column, the kind, the
-- message and the text (at most 1000 bytes). The dataset is the one the file gives without
-- those records, dictionaries included, on every thread count and parser; more than
-- max_rejects (default 1000) stops the load; the default stays "fail" with today's message;
-- snapshots keep the rejects, and a snapshot of the previous format asks to be rebuilt.
local h = require "spec.helpers"
local cpf = require "cpf"
local core = require "cpf.core"

local HEADER = "date_validation;statut_dossier;region_lieu_formation;nb_dossiers;montant_engage"

-- Good records and bad ones, each bad one with what ds:rejects() must say of it (line and
-- record counted by the spec as it writes the file).
local function build(nrecords, bad_every, crlf)
  local eol = crlf and "\r\n" or "\n"
  local lines, clean, rejects = { HEADER }, { HEADER }, {}
  local sums = { dossiers = 0, cents = 0 } -- of the good records
  local line, record = 2, 2
  local regions = { "Bretagne", "Corse", "Normandie", "", "\"Île-de-France\"" }
  for i = 1, nrecords do
    local good = ("202%d-%02d;%s;%s;%d;%d,%02d"):format(i % 5, i % 12 + 1, i % 3 == 0 and "Validé" or "Rejeté",
      regions[i % 5 + 1], i % 7 + 1, i * 137, i % 100)
    local k = bad_every and i % bad_every == 0 and math.floor(i / bad_every) % 6 or nil
    local bad, reject
    if k == 0 then
      bad = ("2021-03;Validé;Seul-%d"):format(i)
      reject = { kind = "fields", message = "too few fields: 3 (the header has 5)" }
    elseif k == 1 then
      bad = ("2021-03;Validé;Bretagne;%d;12,50;de trop"):format(i)
      reject = { kind = "fields", column = 6, message = "too many fields (the header has 5)" }
    elseif k == 2 then
      bad = ("2021-13;Validé;Valeur-unique-%d;1;2,00"):format(i)
      reject = { kind = "value", column = 1, name = "date_validation",
                 message = 'date_validation: expected a month YYYY-MM or YYYY-MM-DD, got "2021-13"' }
    elseif k == 3 then
      bad = ("2021-04;Validé;Autre-%d;un;2,00"):format(i)
      reject = { kind = "value", column = 4, name = "nb_dossiers",
                 message = 'nb_dossiers: expected an integer, got "un"' }
    elseif k == 4 then
      bad = ('2021-05;"Val"idé;Guillemet-%d;1;2,00'):format(i)
      reject = { kind = "quote", column = 2, name = "statut_dossier",
                 message = "malformed quoted field: text after its closing quote" }
    elseif k == 5 then
      -- a quoted field over two lines, then a bad amount: its line is where the record starts
      bad = ('2021-06;Validé;"Deux%slignes-%d";1;douze'):format(eol, i)
      reject = { kind = "value", column = 5, name = "montant_engage",
                 message = 'montant_engage: expected a number, got "douze"' }
    end
    if bad then
      reject.line, reject.record, reject.text, reject.length = line, record, bad, #bad
      rejects[#rejects + 1] = reject
      lines[#lines + 1] = bad
      line = line + select(2, bad:gsub("\n", "")) + 1
    else
      lines[#lines + 1] = good
      clean[#clean + 1] = good
      sums.dossiers, sums.cents = sums.dossiers + i % 7 + 1, sums.cents + i * 137 * 100 + i % 100
      line = line + 1
    end
    record = record + 1
  end
  return table.concat(lines, eol) .. eol, table.concat(clean, eol) .. eol, rejects, sums
end

local TYPES = { nb_dossiers = "integer", montant_engage = "decimal", date_validation = "month" }

describe("records set aside (on_error = \"skip\")", function()
  teardown(h.cleanup)

  it("lists every kind of malformed record and gives the dataset of the file without them", function()
    local text, clean_text, expected = build(60, 5)
    local path, clean = h.write_file(text, ".csv"), h.write_file(clean_text, ".csv")
    local ds = assert(cpf.load(path, { on_error = "skip", types = TYPES }))
    local want = assert(cpf.load(clean, { types = TYPES }))
    -- the same columns, dictionaries in code order (no value of a rejected record) and rows
    h.same_dataset(want, ds, "skip")
    assert.are.same(expected, ds:rejects())
    assert.are.equal(12, #ds:rejects())
    -- a value only a rejected record had is in no dictionary
    for _, v in ipairs(ds:dictionary("region_lieu_formation")) do
      assert.is_nil(v:find("Valeur-unique", 1, true), v)
    end
  end)

  it("gives the same dataset and rejects on 1, 2, 3 and 5 threads, CRLF or LF, and through libcsv", function()
    for _, crlf in ipairs { false, true } do
      local text, clean_text, expected = build(9000, 97, crlf)
      local path, clean = h.write_file(text, ".csv"), h.write_file(clean_text, ".csv")
      local want = assert(cpf.load(clean, { types = TYPES, threads = 1 }))
      assert.is_true(#text > 5 * 65536, "the file spans five chunks")
      for _, opts in ipairs { { threads = 1 }, { threads = 2 }, { threads = 3 }, { threads = 5 },
                              { threads = 3, parser = "libcsv" } } do
        opts.on_error, opts.types = "skip", TYPES
        local what = ("%s threads %d %s"):format(crlf and "CRLF" or "LF", opts.threads, opts.parser or "")
        local ds = assert(cpf.load(path, opts))
        h.same_dataset(want, ds, what)
        assert.are.same(expected, ds:rejects(), what)
      end
    end
  end)

  it("sums the same amounts as the good records the spec wrote", function()
    local text, _, _, sums = build(3000, 11)
    local ds = assert(cpf.load(h.write_file(text, ".csv"), { on_error = "skip", threads = 3 }))
    local res = ds:group_by():run { "dossiers", "montant" }
    assert.are.equal(sums.dossiers, res[1].dossiers)
    assert.are.equal(sums.cents, math.floor(res[1].montant * 100 + 0.5))
  end)

  it("sets aside a record whose quote stays open to the end of the file", function()
    local text = HEADER .. "\n2021-01;Validé;Corse;1;2,00\n2021-02;\"Validé;Corse;1;2,00\n2021-03;Validé;Corse;1;2,00\n"
    local ds = assert(cpf.load(h.write_file(text, ".csv"), { on_error = "skip" }))
    assert.are.equal(1, #ds)
    local r = ds:rejects()
    assert.are.equal(1, #r)
    assert.are.same({ 3, 3, 2, "quote", "unterminated quoted field: the file ends inside quotes" },
                    { r[1].line, r[1].record, r[1].column, r[1].kind, r[1].message })
  end)

  it("places the records of a file with CR line endings, and a refused quote ends at the next line break", function()
    for _, eol in ipairs { "\r", "\r\n", "\n" } do
      local text = table.concat({ "a;b;c", "1;x;2", "2;y;3", '3;"x"y;z', "4;w;5", "5;v", "6;u;7" }, eol) .. eol
      for _, opts in ipairs { { threads = 1 }, { threads = 3 }, { threads = 1, parser = "libcsv" } } do
        opts.on_error = "skip"
        local ds = assert(cpf.load(h.write_file(text, ".csv"), opts))
        local what = ("%q %s"):format(eol, opts.parser or opts.threads)
        assert.are.equal(4, #ds, what)
        assert.are.same({ 1, 2, 4, 6 }, { ds:get(1, "a"), ds:get(2, "a"), ds:get(3, "a"), ds:get(4, "a") }, what)
        local r = ds:rejects()
        assert.are.same({ 4, 4, "quote", '3;"x"y;z' }, { r[1].line, r[1].record, r[1].kind, r[1].text }, what)
        assert.are.same({ 6, 6, "fields", "5;v" }, { r[2].line, r[2].record, r[2].kind, r[2].text }, what)
        -- and its snapshot opens again
        local snap = h.tmpname(".cpfsnap")
        assert(ds:save(snap))
        assert.are.same(r, assert(cpf.open(snap)):rejects(), what)
      end
    end
  end)

  it("reads a snapshot's rejects rewritten in place within their bytes, never past them", function()
    local text = HEADER .. "\n2021-01;Validé;Corse;1;2,00\n2021-01;Validé\n2021-02;Validé;Corse;x;2,00\n"
    local ds = assert(cpf.load(h.write_file(text, ".csv"), { on_error = "skip" }))
    local snap = h.tmpname(".cpfsnap")
    assert(ds:save(snap))
    local opened = assert(cpf.open(snap))
    assert(opened:verify())
    -- the first entry's four sizes set to 2^32 - 1 under the mapping (an external tool's write)
    local bytes = h.read_file(snap)
    local at = bytes:find("too few fields", 1, true) - 1 - 56 -- the entry's header precedes its strings
    local f = assert(io.open(snap, "r+b"))
    f:seek("set", at + 36)
    f:write(("\255"):rep(16))
    f:close()
    local r = opened:rejects()
    assert.are.equal(2, #r)
    for _, e in ipairs(r) do
      assert.is_true(#e.text <= 1000 and #e.message <= 4096 and #(e.name or "") <= 4096)
    end
    -- concatenated (cpf.load of several files copies each part's rejects)
    local both = assert(require("cpf.core").concat({ opened, opened }, { "a", "b" }))
    assert.are.equal(4, #both:rejects())
  end)

  it("takes back the rescale of a decimal column that a rejected record caused", function()
    local good = HEADER .. "\n2021-01;Validé;Corse;1;2,50\n2021-02;Validé;Corse;2;12,25\n"
    local want = assert(cpf.load(h.write_file(good, ".csv")))
    for _, bad in ipairs { "1,5e3", "0,123456789", "0,1234" } do
      for _, threads in ipairs { 1, 2 } do
        local text = good .. ("2021-05;Validé;Corse;2;%s;de trop\n2021-03;Validé;Bretagne;3;7,75\n"):format(bad)
        local ds = assert(cpf.load(h.write_file(text, ".csv"), { on_error = "skip", threads = threads }))
        local clean = assert(cpf.load(h.write_file(good .. "2021-03;Validé;Bretagne;3;7,75\n", ".csv")))
        h.same_dataset(clean, ds, bad)
        assert.are.equal(want:column("montant_engage").type, ds:column("montant_engage").type, bad)
        assert.are.equal(1, #ds:rejects())
      end
    end
  end)

  it("keeps 1000 bytes of a long record's text and its full length", function()
    local long = "2021-01;Validé;" .. ("x"):rep(5000) .. ";1"
    local ds = assert(cpf.load(h.write_file(HEADER .. "\n" .. long .. "\n", ".csv"), { on_error = "skip" }))
    local r = ds:rejects()[1]
    assert.are.equal(long:sub(1, 1000), r.text)
    assert.are.equal(#long, r.length)
  end)

  it("fails by default with today's message, and past max_rejects with the first reject's place", function()
    local text = build(200, 9)
    local path = h.write_file(text, ".csv")
    for _, threads in ipairs { 1, 3 } do
      local ds, err, kind = cpf.load(path, { threads = threads })
      assert.is_nil(ds)
      assert.are.equal(path .. ":10:6: too many fields (the header has 5)", err)
      assert.are.equal("data", kind)
      ds, err, kind = cpf.load(path, { on_error = "skip", max_rejects = 5, threads = threads })
      assert.is_nil(ds)
      assert.are.equal(path .. ": more than 5 malformed records (max_rejects), the first on line 10: "
        .. "too many fields (the header has 5)", err)
      assert.are.equal("data", kind)
    end
    assert.are.equal(22, #assert(cpf.load(path, { on_error = "skip", max_rejects = 22 })):rejects())
    assert.is_nil((cpf.load(path, { on_error = "skip", max_rejects = 21 })))
    assert.is_nil((cpf.load(path, { on_error = "skip", max_rejects = 0 })))
  end)

  it("refuses a wrong on_error or max_rejects at the call", function()
    local path = h.write_file(HEADER .. "\n", ".csv")
    assert.are.equal([[load: option 'on_error' must be "fail" or "skip"]],
                     h.error_of(function() cpf.load(path, { on_error = "ignore" }) end))
    assert.are.equal("load: option 'max_rejects' must be a whole number from 0",
                     h.error_of(function() cpf.load(path, { max_rejects = -1 }) end))
    assert.are.equal("load: option 'max_rejects' must be a whole number from 0",
                     h.error_of(function() cpf.load(path, { max_rejects = 0 / 0 }) end))
  end)

  it("names each file's rejects in a load of several files", function()
    local a = h.write_file(HEADER .. "\n2021-01;Validé;Corse;1;2,00\n2021-01;Validé\n", ".csv")
    local b = h.write_file(HEADER .. "\n2021-02;Validé;Corse;x;2,00\n2021-01;Validé;Corse;1;2,00\n", ".csv")
    local ds = assert(cpf.load({ a, b }, { on_error = "skip" }))
    assert.are.equal(2, #ds)
    local r = ds:rejects()
    assert.are.same({ a, 3, "fields" }, { r[1].file, r[1].line, r[1].kind })
    assert.are.same({ b, 2, "value" }, { r[2].file, r[2].line, r[2].kind })
  end)

  describe("in snapshots", function()
    local text, _, expected = build(300, 7)
    local path, snap
    setup(function()
      path = h.write_file(text, ".csv")
      snap = h.tmpname(".cpfsnap")
    end)
    teardown(function() os.remove(snap) os.remove(path .. ".cpfsnap") end)

    it("keeps them through save and open, and cpf describe counts them", function()
      local ds = assert(cpf.load(path, { on_error = "skip", types = TYPES }))
      assert(ds:save(snap))
      local opened = assert(cpf.open(snap))
      assert.are.same(expected, opened:rejects())
      h.same_dataset(ds, opened, "snapshot")
      local out, err, code = h.run(h.cpf_command("describe " .. snap))
      assert.are.equal(0, code, err)
      assert.are.equal(snap .. ": 258 rows, 5 columns, 42 malformed records set aside", out:match("^[^\n]*"))
    end)

    it("asks to rebuild a snapshot of format 2; the cache rebuilds its own without a word", function()
      local ds = assert(cpf.load(path, { on_error = "skip", cache = true }))
      assert.are.same(expected, ds:rejects())
      ds:close()
      -- the cache as an older cpf wrote it: format 2
      local cache = path .. ".cpfsnap"
      local bytes = h.read_file(cache)
      h.write_bytes(cache, bytes:sub(1, 8) .. "\2\0\0\0" .. bytes:sub(13))
      local old, err, kind = cpf.open(cache)
      assert.is_nil(old)
      assert.are.equal(cache .. ": snapshot format 2: rebuild it with cpf convert", err)
      assert.are.equal("data", kind)
      ds = assert(cpf.load(path, { on_error = "skip", cache = true }))
      assert.are.same(expected, ds:rejects())
      assert.is_truthy(cpf.open(cache), "rebuilt")
      -- a cache made with on_error = "skip" never answers a load that fails on them
      local none, ferr = cpf.load(path, { cache = true })
      assert.is_nil(none)
      assert.are.equal(path .. ":8:6: too many fields (the header has 5)", ferr)
    end)

    if string.pack then
      it("refuses damaged rejects in a snapshot, checksums recomputed as an attacker would", function()
        local craft = require "spec.snapshot_craft"
        local ds = assert(cpf.load(path, { on_error = "skip" }))
        assert(ds:save(snap))
        local bytes = h.read_file(snap)
        local hd = craft.parse(bytes).header
        local cases = {
          { craft.with_bytes(bytes, hd.rejects_offset + 32, "\9\0\0\0"), "rejects: an unknown kind" },
          { craft.with_bytes(bytes, hd.rejects_offset + 44, "\255\255\0\0"),
            "rejects: a text longer than a reject holds" },
          { craft.with_bytes(bytes, hd.rejects_offset, "\0\0\0\0\0\0\0\0"), "rejects: a position outside the data" },
          { craft.with_header(bytes, "rejects_count", hd.rejects_count - 1), "rejects: bytes after the last entry" },
          { craft.with_header(bytes, "rejects_size", hd.rejects_size - 8), "rejects: an entry runs past their end" },
        }
        for i, case in ipairs(cases) do
          h.write_bytes(snap, case[1])
          local opened, err = cpf.open(snap)
          assert.is_nil(opened, "case " .. i)
          assert.are.equal(snap .. ": " .. case[2], err, "case " .. i)
        end
      end)
    end
  end)

  describe("on the command line", function()
    local path
    setup(function()
      path = h.write_file(HEADER .. "\n2021-01;Validé;Corse;1;2,00\n2021-01;Validé\n2021-02;Validé;Corse;x;2,00\n"
        .. "2021-01;Validé;Corse;2;3,00\n", ".csv")
    end)

    it("--on-error skip answers from the good records and lists the others on stderr", function()
      local out, err, code = h.run(h.cpf_command("query " .. path .. " --on-error skip --by annee --format csv"))
      assert.are.equal(0, code, err)
      assert.are.equal("annee,dossiers,montant\n2021,3,5\n", out)
      assert.are.equal("cpf: 2 malformed records set aside (--on-error skip):\n"
        .. "  " .. path .. ":3: too few fields: 2 (the header has 5)\n"
        .. "  " .. path .. ":4:4: nb_dossiers: expected an integer, got \"x\"\n", err)
    end)

    it("fails without it, and explains a wrong value", function()
      local _, err, code = h.run(h.cpf_command("query " .. path .. " --by annee"))
      assert.are.equal(1, code)
      assert.are.equal("cpf: " .. path .. ":3: too few fields: 2 (the header has 5)\n", err)
      _, err, code = h.run(h.cpf_command("query " .. path .. " --on-error ignore"))
      assert.are.equal(2, code)
      assert.are.equal("cpf: --on-error must be fail or skip, got 'ignore'\ntry 'cpf query --help'\n", err)
      _, err, code = h.run(h.cpf_command("query " .. path .. " --on-error skip --max-rejects 1"))
      assert.are.equal(1, code)
      assert.are.equal("cpf: " .. path .. ": more than 1 malformed records (max_rejects), the first on line 3: "
        .. "too few fields: 2 (the header has 5)\n", err)
    end)
  end)

  it("fails cleanly at sampled allocations of a load that sets records aside", function()
    local text, clean_text = build(400, 13)
    local path = h.write_file(text, ".csv")
    local want = assert(cpf.load(h.write_file(clean_text, ".csv"), { threads = 1 }))
    local n, step = 1, os.getenv("CPF_OOM_SWEEP") == "all" and 1 or 5
    while true do
      core.fail_allocation(n)
      local ok, ds, err, kind = pcall(cpf.load, path, { on_error = "skip", threads = 2 })
      local left = core.allocations_left()
      core.fail_allocation(0)
      assert.is_true(ok, tostring(ds))
      if left > 0 then
        h.same_dataset(want, ds, "all allocations succeed")
        break
      end
      if ds then
        h.same_dataset(want, ds, "allocation " .. n)
      else
        assert.are.same({ path .. ": out of memory", "memory" }, { err, kind }, "allocation " .. n)
      end
      n = n + step
    end
  end)
end)

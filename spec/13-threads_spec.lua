-- Parallel loading: the file is cut into chunks at guessed record boundaries (checked once
-- parsed), parsed on several threads and merged. The dataset must be the same whatever the
-- thread count.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

local same_dataset = h.same_dataset

-- Under the sanitizers (ten times slower) the thread counts are sampled: every one runs in the
-- plain runs, and any count above one shows a race to ThreadSanitizer.
local SANITIZED = os.getenv("CPF_SANITIZED") == "1"
local function counts(all, sample) return SANITIZED and sample or all end

-- Rows whose titles hold quotes, separators and line breaks (LF and CRLF), so that many chunk
-- cuts fall inside or next to a quoted field; plus amounts with varying decimals and an
-- unknown column whose type is only known at the end.
local function nasty_csv(rows, crlf)
  local eol = crlf and "\r\n" or "\n"
  local out = { "statut_dossier;libelle_formacode_principal;nb_dossiers;montant_engage;extra" .. eol }
  local state = 7
  local function r(n) state = (state * 48271) % 2147483647 return state % n end
  for i = 1, rows do
    local title = ({ "plain", '"with ; semicolon"', '"two\nlines"', '"crlf\r\ninside"', '"a ""quote"""',
                     '"\n"', '""', "  spaced  " })[r(8) + 1]
    local amount = ({ "12.5", "100", "0", "", "7.125", "1e3" })[r(6) + 1]
    if i < rows / 2 and amount == "1e3" then amount = "3.25" end -- doubles only in the second half
    local extra = i == rows - 3 and "x" or tostring(r(100))      -- text only near the end
    out[#out + 1] = ("Validé;%s;%d;%s;%s%s"):format(title, r(50), amount, extra, eol)
    if r(40) == 0 then out[#out + 1] = eol end                    -- blank lines
  end
  return table.concat(out)
end

describe("parallel load #threads", function()
  after_each(h.cleanup)

  it("gives the same dataset with 1, 2, 3, 5 and 8 threads on a generated file", function()
    local path = h.tmpname(".csv")
    assert(gen.write(path, 40000, { seed = 13 }))
    local one = assert(cpf.load(path, { threads = 1 }))
    for _, t in ipairs(counts({ 2, 3, 5, 8 }, { 3, 8 })) do
      same_dataset(one, assert(cpf.load(path, { threads = t })), t .. " threads")
    end
  end)

  it("gives the same dataset when lone CRs end some records and LFs others", function()
    local out = { "statut_dossier;nb_dossiers;extra\n" }
    for i = 1, 20000 do
      out[#out + 1] = ("Validé;%d;%s%s"):format(i % 50, i % 7 == 0 and '"a\rb"' or "x", i % 3 == 0 and "\r" or "\n")
    end
    local path = h.write_file(table.concat(out))
    local one = assert(cpf.load(path, { threads = 1 }))
    assert.are.equal(20000, #one)
    for _, t in ipairs(counts({ 2, 3, 5 }, { 3 })) do
      for _, parser in ipairs { "auto", "libcsv" } do
        same_dataset(one, assert(cpf.load(path, { threads = t, parser = parser })), t .. " threads, " .. parser)
      end
    end
  end)

  it("gives the same dataset on files with quoted line breaks everywhere, LF and CRLF", function()
    for _, crlf in ipairs { false, true } do
      local path = h.write_file(nasty_csv(30000, crlf))
      local one = assert(cpf.load(path, { threads = 1 }))
      assert.are.equal(30000, #one)
      assert.are.equal("number", one:column("montant_engage").type)
      assert.are.equal("string", one:column("extra").type)
      for _, t in ipairs(counts({ 2, 4, 7 }, { 2, 7 })) do
        same_dataset(one, assert(cpf.load(path, { threads = t })), ("%d threads, crlf %s"):format(t, tostring(crlf)))
        same_dataset(one, assert(cpf.load(path, { threads = t, parser = "libcsv" })), t .. " threads, libcsv")
      end
    end
  end)

  -- A record longer than a chunk: the boundary after it lies past the next chunk's target (the
  -- old boundary search then counted quotes over a negative length and crashed).
  local long_records = {
    ["a 300 000-byte field"] = "a;b\n1;x\n2;" .. ("y"):rep(300000) .. "\n3;z\n",
    ["a quoted field of 150 000 line breaks"] = 'a;b\n1;x\n2;"' .. ("\n"):rep(150000) .. '"\n3;z\n',
    ["a quoted field of 300 000 bytes with quotes and separators"] =
      'a;b\n1;x\n2;"' .. ('q"";\n'):rep(60000) .. '"\n3;z\n',
    -- longer than a thread's 4 MB read buffer: libcsv takes them piece by piece
    ["a 9 MB field"] = "a;b\n1;x\n2;" .. ("y"):rep(9 * 1024 * 1024) .. "\n3;z\n",
    ["a 10 MB quoted field with quotes, line breaks and CRLF"] =
      'a;b\n1;x\n2;"' .. ('ab"";\r\n\n'):rep(1024 * 1024) .. '"\n3;z\n',
  }
  for what, text in pairs(long_records) do
    it("loads a record longer than a chunk: " .. what, function()
      local path = h.write_file(text)
      local one = assert(cpf.load(path, { threads = 1 }))
      assert.are.equal(3, #one)
      assert.are.same({ 1, 2, 3 }, { one:get(1, "a"), one:get(2, "a"), one:get(3, "a") })
      assert.are.equal("x", one:get(1, "b"))
      assert.are.equal("z", one:get(3, "b"))
      for _, t in ipairs(counts({ 1, 2, 3, 4 }, { 1, 3 })) do
        for _, parser in ipairs { "auto", "libcsv" } do
          same_dataset(one, assert(cpf.load(path, { threads = t, parser = parser })),
            ("%s, %d threads, %s"):format(what, t, parser))
        end
      end
    end)
  end

  -- a subprocess: under the ThreadSanitizer run the preloaded runtime breaks /bin/sh
  it("loads records longer than a chunk from the command line (no crash) #no_tsan", function()
    local path = h.write_file(long_records["a 300 000-byte field"])
    local out, err, code = h.run(h.cpf_command("describe " .. path .. " --threads 3"))
    assert.are.equal(0, code, err)
    assert.is_truthy(out:find("3 rows, 2 columns", 1, true), out)
  end)

  it("keeps money exact when chunks end with different scales", function()
    local lines = { "montant_engage" }
    for i = 1, 20000 do lines[#lines + 1] = i == 19000 and "0.125" or "1.50" end
    local path = h.write_file(table.concat(lines, "\n") .. "\n")
    local one = assert(cpf.load(path, { threads = 1, sep = ";" }))
    local four = assert(cpf.load(path, { threads = 4, sep = ";" }))
    assert.are.equal(3, four:column("montant_engage").scale)
    same_dataset(one, four, "scales")
    assert.are.equal(29998.625, four:run { s = cpf.sum "montant_engage" }[1].s)
  end)

  it("reports the first error of the file, with its row, whatever the thread count", function()
    local text = nasty_csv(20000, false)
    -- a bad count on a late line: its row number depends on every line before it
    local lines = {}
    for line in text:gmatch("[^\n]*\n") do lines[#lines + 1] = line end
    local bad = #lines - 100
    while not lines[bad]:match("^Validé;plain;") do bad = bad - 1 end
    lines[bad] = lines[bad]:gsub("^Validé;plain;%d+;", "Validé;plain;deux;")
    local path = h.write_file(table.concat(lines))
    local _, e1 = cpf.load(path, { threads = 1 })
    assert.is_string(e1)
    assert.is_truthy(e1:find('nb_dossiers: expected an integer, got "deux"', 1, true))
    for _, t in ipairs { 2, 3, 6 } do
      local none, e = cpf.load(path, { threads = t })
      assert.is_nil(none)
      assert.are.equal(e1, e)
    end
  end)

  it("refuses a bad thread count", function()
    assert.has_error(function() cpf.load("x.csv", { threads = 0 }) end,
      "load: option 'threads' must be a whole number from 1 to 64")
    assert.has_error(function() cpf.load("x.csv", { threads = 1.5 }) end,
      "load: option 'threads' must be a whole number from 1 to 64")
  end)
end)

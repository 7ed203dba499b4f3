-- The column store and the dataset's lifetime: memory held, narrow widths, close / __gc /
-- __close, and every dataset method with its errors.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"

-- Smallest signed width holding [min, max], as the store promises for integers.
local function integer_width(min, max)
  if min >= -128 and max <= 127 then return 1 end
  if min >= -32768 and max <= 32767 then return 2 end
  if min >= -2147483648 and max <= 2147483647 then return 4 end
  return 8
end

-- Calls f and returns its error message without the "file:line: " position (as has_error
-- compares it); the calls below are not tail calls, so every Lua names the function.
local function error_of(f)
  local ok, err = pcall(f)
  assert(not ok, "no error raised")
  return (tostring(err):gsub("^[^\n]-:%d+: ", "", 1))
end

describe("the column store of a generated 50 k-row file", function()
  local path, ds

  setup(function()
    path = h.tmpname(".csv")
    assert(gen.write(path, 50000, { seed = 7 }))
    ds = assert(cpf.load(path))
  end)

  teardown(function()
    ds:close()
    h.cleanup()
  end)

  it("holds less than 0.6 × the size of the CSV", function()
    local size = #h.read_file(path)
    assert.is_true(ds:memory() < 0.6 * size,
      ("memory %d bytes for a %d-byte file (%.2f×)"):format(ds:memory(), size, ds:memory() / size))
  end)

  it("accounts for every column's bytes in ds:memory()", function()
    local sum = 0
    for _, c in ipairs(ds:columns()) do
      assert.is_true(c.bytes > 0, c.name)
      sum = sum + c.bytes
    end
    assert.is_true(sum <= ds:memory())
  end)

  it("stores strings with fewer than 256 distinct values in one byte per row", function()
    local rows, checked = #ds, 0
    for _, c in ipairs(ds:columns()) do
      if c.type == "string" then
        local distinct = 0
        for _, e in ipairs(ds:distinct(c.name)) do
          if e.value ~= nil then distinct = distinct + 1 end
        end
        if distinct < 256 then
          checked = checked + 1
          -- one code byte per row, plus the missing bitmap and a small dictionary
          assert.is_true(c.bytes >= rows and c.bytes < 2 * rows,
            ("%s: %d distinct values in %d bytes"):format(c.name, distinct, c.bytes))
        elseif distinct < 65536 then
          assert.is_true(c.bytes >= 2 * rows, c.name)
        end
      end
    end
    assert.is_true(checked >= 10, "too few low-cardinality columns: " .. checked)
  end)

  it("stores integers no wider than their range needs", function()
    local rows = #ds
    for _, c in ipairs(ds:columns()) do
      if c.type == "integer" then
        local values = ds:distinct(c.name)
        local min, max = math.huge, -math.huge
        for _, e in ipairs(values) do
          if e.value ~= nil then
            if e.value < min then min = e.value end
            if e.value > max then max = e.value end
          end
        end
        local width = integer_width(min, max)
        local bitmap = c.missing > 0 and math.floor(rows / 8) + 1 or 0
        assert.is_true(c.bytes >= rows * width and c.bytes <= rows * width + bitmap + 64,
          ("%s: [%s, %s] in %d bytes"):format(c.name, tostring(min), tostring(max), c.bytes))
      end
    end
  end)
end)

describe("a dataset's lifetime", function()
  local fixture = h.fixture "labels_bom_lf.csv"

  it("can be closed twice, then every method raises 'dataset is closed'", function()
    local ds = assert(cpf.load(fixture))
    local iterate = ds:rows()
    assert.is_false(ds:is_closed())
    ds:close()
    ds:close()
    assert.is_true(ds:is_closed())
    assert.are.equal("cpf dataset (closed)", tostring(ds))
    local calls = {
      function() return #ds end,
      function() return ds:get(1, "nb_dossiers") end,
      function() return ds:get(1, 1) end,
      function() return ds:row(1) end,
      function() return ds:rows() end,
      function() return ds:columns() end,
      function() return ds:column("nb_dossiers") end,
      function() return ds:distinct("statut_dossier") end,
      function() return ds:memory() end,
      function() return iterate() end, -- an iterator made before the close
    }
    for _, call in ipairs(calls) do
      assert.has_error(call, "dataset is closed")
    end
  end)

  it("survives collection after close and after being dropped", function()
    assert(cpf.load(fixture)):close() -- closed, and no reference kept
    for _ = 1, 20 do
      local ds = assert(cpf.load(fixture))
      assert.are.equal(3, #ds)
    end
    local weak = setmetatable({}, { __mode = "v" })
    weak[1] = assert(cpf.load(fixture))
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_nil(weak[1])
  end)

  if _VERSION == "Lua 5.4" then
    it("is closed at the end of the scope of a <close> variable", function()
      local chunk = assert(load([[
        local cpf, path = ...
        local kept, failed
        do
          local ds <close> = assert(cpf.load(path))
          kept = ds
          assert(not ds:is_closed())
        end
        local ok = pcall(function()
          local ds <close> = assert(cpf.load(path))
          failed = ds
          error("leaving by an error")
        end)
        assert(not ok)
        return kept, failed
      ]], "=close-chunk"))
      local kept, failed = chunk(cpf, fixture)
      assert.is_true(kept:is_closed())
      assert.is_true(failed:is_closed())
    end)
  else
    pending("a <close> variable closes the dataset (Lua 5.4 only)")
  end
end)

describe("dataset methods", function()
  local fixture = h.fixture "labels_bom_lf.csv"
  local ds

  teardown(h.cleanup)

  before_each(function() ds = assert(cpf.load(fixture)) end)
  after_each(function() ds:close() end)

  it("the length operator gives the number of rows", function()
    assert.are.equal(3, #ds)
  end)

  it("ds:get takes a column name or a column index", function()
    assert.are.equal(12, ds:get(3, "nb_dossiers"))
    assert.are.equal(12, ds:get(3, 6))
    assert.are.equal("2A", ds:get(2, "code_officiel_departement"))
    assert.are.equal("2A", ds:get(2, 10))
    assert.are.equal("2023-02", ds:get(2, 2))
    assert.is_nil(ds:get(2, "duree_moyenne"))
  end)

  it("ds:columns describes the columns in file order", function()
    local cols = ds:columns()
    assert.are.equal(11, #cols)
    assert.are.same({ name = "date_validation", label = "date validation", type = "month",
                      missing = 0, bytes = cols[2].bytes }, cols[2])
    assert.are.equal(2, cols[9].scale)
    assert.are.equal("decimal", cols[9].type)
    assert.are.equal(1, cols[8].missing)
    assert.are.same(cols[9], ds:column("montant_engage"))
    assert.is_nil(ds:column("nope"))
  end)

  it("ds:row gives a table by column name, without the missing values", function()
    assert.are.same({
      date_chargement = "2026-05-04", date_validation = "2023-02", statut_dossier = "Rejeté",
      type_referentiel = "RS", code_rncp = "-1", nb_dossiers = 1, prix_moyen = 990,
      montant_engage = 990, code_officiel_departement = "2A", nom_officiel_region = "Corse",
    }, ds:row(2))
  end)

  it("ds:rows iterates over every row in order", function()
    local seen = {}
    for i, row in ds:rows() do
      seen[#seen + 1] = i
      assert.are.same(ds:row(i), row)
    end
    assert.are.same({ 1, 2, 3 }, seen)
    local empty = assert(cpf.load(h.fixture "header_only.csv"))
    for _ in empty:rows() do error("a row in an empty dataset") end
  end)

  it("ds:distinct counts values of every type, missing ones as nil, by count descending", function()
    local path = h.write_file(table.concat({
      "statut_dossier;nb_dossiers;duree_moyenne;date validation;montant_engage",
      "Validé;2;10.5;2023-01;10.00",
      "Validé;2;;2023-01-01;10.00",
      "Rejeté;1;10.5;2023-02;",
      ";2;;2023-01;5.5",
      "Validé;;3;2023-03;10",
      "",
    }, "\n"))
    local d = assert(cpf.load(path))
    local function pairs_of(name)
      local t = {}
      for i, e in ipairs(d:distinct(name)) do t[i] = { e.value, e.count } end
      return t
    end
    -- ties are ordered by value, the missing value last
    assert.are.same({ { "Validé", 3 }, { "Rejeté", 1 }, { nil, 1 } }, pairs_of "statut_dossier")
    assert.are.same({ { 2, 3 }, { 1, 1 }, { nil, 1 } }, pairs_of "nb_dossiers")
    assert.are.same({ { 10.5, 2 }, { nil, 2 }, { 3, 1 } }, pairs_of "duree_moyenne")
    assert.are.same({ { "2023-01", 3 }, { "2023-02", 1 }, { "2023-03", 1 } }, pairs_of "date_validation")
    assert.are.same({ { 10, 3 }, { 5.5, 1 }, { nil, 1 } }, pairs_of "montant_engage")
    assert.are.same(d:distinct("nb_dossiers"), d:distinct(2))
    d:close()
  end)

  it("reads -0.0 and 0.0 as one value (+0.0) in ds:distinct, group_by and cpf.distinct", function()
    local path = h.write_file("statut_dossier;duree_moyenne\nA;0\nA;-0\nB;-0.0\nB;0.0\nB;1.5\n")
    local d = assert(cpf.load(path))
    local values = d:distinct "duree_moyenne"
    assert.are.same({ { value = 0, count = 4 }, { value = 1.5, count = 1 } }, values)
    assert.are.equal(math.huge, 1 / values[1].value)
    local groups = d:group_by("duree_moyenne"):run { n = cpf.count() }
    assert.are.same({ 2, 0, 4, 1.5, 1 }, { #groups, groups[1].duree_moyenne, groups[1].n,
      groups[2].duree_moyenne, groups[2].n })
    assert.are.equal(math.huge, 1 / groups[1].duree_moyenne)
    local by_status = d:group_by("statut_dossier"):run { k = cpf.distinct "duree_moyenne" }
    assert.are.same({ 1, 2 }, { by_status[1].k, by_status[2].k })
    d:close()
  end)

  it("tostring gives a short preview", function()
    assert.are.equal(table.concat({
      "cpf dataset: 3 rows × 11 columns, " .. cpf.human_bytes(ds:memory()),
      "  date_chargement (date) | date_validation (month) | statut_dossier (string) | "
        .. "type_referentiel (string) | code_rncp (string) | …",
      "  2026-05-04 | 2023-01 | Validé | RNCP | 35185",
      "  2026-05-04 | 2023-02 | Rejeté | RS | -1",
      "  2026-05-04 | 2024-12 | Clos - Réalisat… |  | -1",
    }, "\n"), tostring(ds))
    local four = assert(cpf.load(h.write_file("a;b\n1;x\n2;y\n3;z\n4;w\n")))
    assert.are.equal(table.concat({
      "cpf dataset: 4 rows × 2 columns, " .. cpf.human_bytes(four:memory()),
      "  a (integer) | b (string)",
      "  1 | x",
      "  2 | y",
      "  3 | z",
      "  … 1 more row",
    }, "\n"), tostring(four))
  end)

  it("names the row that is out of range", function()
    assert.has_error(function() local v = ds:get(0, "nb_dossiers") return v end,
      "row 0 is out of range (the dataset has 3 rows)")
    assert.has_error(function() local v = ds:get(4, "nb_dossiers") return v end,
      "row 4 is out of range (the dataset has 3 rows)")
    assert.has_error(function() local v = ds:row(0) return v end,
      "row 0 is out of range (the dataset has 3 rows)")
    assert.has_error(function() local v = ds:row(-1) return v end,
      "row -1 is out of range (the dataset has 3 rows)")
    assert.has_error(function() local v = ds:row(4) return v end,
      "row 4 is out of range (the dataset has 3 rows)")
  end)

  it("names the column that does not exist", function()
    assert.has_error(function() local v = ds:get(1, "nope") return v end, "unknown column 'nope'")
    assert.has_error(function() local v = ds:distinct("nope") return v end, "unknown column 'nope'")
    assert.has_error(function() local v = ds:get(1, 99) return v end,
      "column 99 does not exist (the dataset has 11 columns)")
    assert.has_error(function() local v = ds:get(1, 0) return v end,
      "column 0 does not exist (the dataset has 11 columns)")
    assert.has_error(function() local v = ds:distinct(99) return v end,
      "column 99 does not exist (the dataset has 11 columns)")
  end)

  it("raises on arguments of the wrong type", function()
    assert.are.equal("bad argument #1 to 'get' (number expected, got string)",
      error_of(function() local v = ds:get("one", "nb_dossiers") return v end))
    assert.are.equal("bad argument #1 to 'get' (number has no integer representation)",
      error_of(function() local v = ds:get(1.5, "nb_dossiers") return v end))
    assert.are.equal("bad argument #2 to 'get' (string expected, got table)",
      error_of(function() local v = ds:get(1, {}) return v end))
    assert.are.equal("bad argument #2 to 'get' (string expected, got no value)",
      error_of(function() local v = ds:get(1) return v end))
    assert.are.equal("bad argument #1 to 'row' (number expected, got no value)",
      error_of(function() local v = ds:row() return v end))
    assert.are.equal("bad argument #1 to 'distinct' (string expected, got boolean)",
      error_of(function() local v = ds:distinct(true) return v end))
    assert.are.equal("bad argument #1 to 'get' (cpf.dataset expected, got table)",
      error_of(function() local v = ds.get({}, 1, 1) return v end))
    assert.are.equal("bad argument #1 to 'close' (cpf.dataset expected, got no value)",
      error_of(function() local v = ds.close() return v end))
  end)
end)

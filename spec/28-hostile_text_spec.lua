-- Hostile text (issue 16): a CPF file whose text column holds control characters, padded and
-- only-whitespace values, bidirectional and zero-width characters, markup, formulas, separators,
-- quotes, line breaks and 4-byte UTF-8. Every value comes back exactly from the machine formats
-- and ds:distinct; the formats a person opens neither run it nor let it take their place.
local h = require "spec.helpers"
local cpf = require "cpf"

local HOSTILE = {
  "\1\2\3", "a\27[2Jb", "\27]0;title\7", "bell\7", "back\8space", "del\127", "nul\0byte", "\31unit",
  "tab\there", "cr\rhere", "lf\nhere", "crlf\r\nhere", "\tleading tab", "trailing tab\t",
  "   ", " ", " padded ", "  two  spaces  ",
  "\226\128\174gnp.exe", "zero\226\128\139width", "\239\187\191bom inside", "\226\129\166isolate\226\129\169",
  "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "a & b", "&amp;", "]]>", "<!--",
  "=1+2", "+1+2", "-x", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(\"http://x\")",
  ";", ",", '"', '""', 'a"b', "'quoted'", "a;b,c", "|pipe|", "back\\slash", "\\n",
  "\240\159\152\128", "\240\157\149\143", "e\204\129", "\206\169\226\137\136\195\167\226\136\154",
  "NULL", "null", "nil", "true", "{{7*7}}", "${jndi:ldap://x}", "%s%n",
  ("long "):rep(400),
}

-- The formula-like values csv-fr must prefix with ': text starting = + - @ tab or CR that no
-- number reading would take.
local FORMULA_LIKE = {
  ["=1+2"] = true, ["+1+2"] = true, ["-x"] = true, ["@SUM(A1)"] = true, ["\t=1"] = true, ["\r=1"] = true,
  ["=HYPERLINK(\"http://x\")"] = true, ["\tleading tab"] = true,
}

local function csv_field(v) return '"' .. v:gsub('"', '""') .. '"' end

local ds, res

local function values_of(list)
  local set = {}
  for _, v in ipairs(list) do set[v] = (set[v] or 0) + 1 end
  return set
end

describe("hostile text", function()
  setup(function()
    local lines = { "date_validation;libelle_formacode_principal;nb_dossiers;montant_engage" }
    -- concatenation, not string.format: Lua 5.1's %s stops at an embedded zero byte
    for i, v in ipairs(HOSTILE) do lines[#lines + 1] = "2024-01;" .. csv_field(v) .. (";%d;%d,50"):format(i, i) end
    ds = assert(cpf.load(h.write_file(table.concat(lines, "\r\n") .. "\r\n")))
    res = ds:group_by("libelle_formacode_principal"):agg { "dossiers", "montant" }:order_by("dossiers"):run()
  end)
  teardown(function() ds:close() h.cleanup() end)

  it("loads every value byte for byte", function()
    assert.are.equal(#HOSTILE, #ds)
    for i, row in ds:rows() do assert.are.equal(HOSTILE[i], row.libelle_formacode_principal, "row " .. i) end
    assert.are.equal(#HOSTILE, #res)
    for i, row in ipairs(res) do assert.are.equal(HOSTILE[i], row.libelle_formacode_principal) end
  end)

  it("ds:distinct gives each value once, as it is", function()
    local seen = {}
    for _, d in ipairs(ds:distinct "libelle_formacode_principal") do seen[#seen + 1] = d.value end
    assert.are.same(values_of(HOSTILE), values_of(seen))
  end)

  it("json and jsonl give every value back", function()
    local decoded = h.json_decode(res:format("json"))
    assert.are.equal(#HOSTILE, #decoded)
    for i, obj in ipairs(decoded) do assert.are.equal(HOSTILE[i], obj.object.libelle_formacode_principal) end
    local i = 0
    for line in res:format("jsonl"):gmatch("[^\n]+") do
      i = i + 1
      assert.are.equal(HOSTILE[i], h.json_decode(line).object.libelle_formacode_principal)
    end
    assert.are.equal(#HOSTILE, i)
  end)

  it("csv reads back into the same values with cpf's own loader", function()
    local path = h.tmpname(".csv")
    assert(res:write(path, "csv"))
    local back = assert(cpf.load(path))
    assert.are.equal(#HOSTILE, #back)
    for i, row in back:rows() do
      assert.are.equal(HOSTILE[i], row.libelle_formacode_principal, "row " .. i)
      assert.are.equal(i, row.dossiers)
    end
    back:close()
  end)

  it("tsv escapes tab, CR, LF and backslash, and unescapes to the same values", function()
    local text = res:format("tsv")
    local unescape = { t = "\t", r = "\r", n = "\n", ["\\"] = "\\" }
    local i = 0
    for line in text:gmatch("([^\n]*)\n") do
      i = i + 1
      if i > 1 then
        assert.is_nil(line:find("\r", 1, true))
        local field = line:match("^([^\t]*)\t")
        assert.are.equal(HOSTILE[i - 1], (field:gsub("\\(.)", unescape)), "row " .. (i - 1))
      end
    end
    assert.are.equal(#HOSTILE + 1, i)
  end)

  it("table holds no control byte but line feeds, and one line per row", function()
    local text = res:format("table")
    assert.is_nil(text:find("[%z\1-\9\11-\31\127]"))
    assert.are.equal(#HOSTILE + 2, select(2, text:gsub("\n", "")))
  end)

  it("print(ds) and cpf describe show no control byte of the data", function()
    assert.is_nil(tostring(ds):find("[%z\1-\9\11-\31\127]"))
    assert.truthy(tostring(ds):find("\\x01\\x02\\x03", 1, true))
    local path = h.tmpname(".cpfsnap")
    assert(ds:save(path))
    -- the table cuts the top values to its width: markdown keeps them whole, escaped alike
    for _, format in ipairs { "table", "markdown" } do
      local out, err, code = h.run(h.cpf_command(("describe %s --top 100 --format %s"):format(h.shell_quote(path),
        format)))
      assert.are.equal(0, code, err)
      assert.is_nil(out:find("[%z\1-\9\11-\31\127]"), format)
      if format == "markdown" then assert.truthy(out:find("a\\x1B[2Jb", 1, true)) end
    end
  end)

  it("csv-fr prefixes exactly the formula-like text with '", function()
    local path = h.tmpname(".csv")
    assert(res:write(path, "csv-fr"))
    local back = assert(cpf.load(path))
    for i, row in back:rows() do
      local v = HOSTILE[i]
      local expected = FORMULA_LIKE[v] and "'" .. v or v
      assert.are.equal(expected, row.libelle_formacode_principal, ("row %d %q"):format(i, v))
    end
    back:close()
  end)

  it("html and svg are well-formed, hold no element or attribute from the data and no control character", function()
    -- the markup of the same result with plain text: the elements and attributes allowed
    local plain = {}
    for i = 1, #HOSTILE do plain[i] = { libelle_formacode_principal = "v" .. i, dossiers = i, montant = i + 0.5 } end
    plain[1].libelle_formacode_principal = "two\nlines" -- a line break is <br>, in the data or not
    local plain_res = cpf.result(res:columns(), plain, res:keys())
    for _, name in ipairs { "html", "svg" } do
      local text = res:format(name)
      h.check_markup(text)
      assert.is_nil(text:find("[%z\1-\8\11\12\14-\31\127]"), name)
      assert.are.same(h.markup_names(plain_res:format(name)), h.markup_names(text), name)
    end
  end)
end)

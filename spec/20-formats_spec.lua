-- Output formats: the exact bytes of every built-in format on one small result (accents, quotes,
-- ';', '|', a line break, missing values, large and negative amounts), options, custom formats.
local h = require "spec.helpers"
local cpf = require "cpf"

local BIG = 9007199254740991 -- 2^53 - 1: exact on every Lua
local BOM = "\239\187\191"

local function sample()
  return cpf.result({ "region", "libelle", "dossiers", "montant", "part" }, {
    { region = "Île-de-France", libelle = 'Cours "avancé"', dossiers = 12, montant = 123456789012.34, part = 0.5 },
    { region = "Pays|Loire", libelle = "ligne 1\nligne 2", dossiers = 0, montant = -42.5 },
    { libelle = "Anglais; niveau B2", dossiers = BIG, montant = 0, part = 0.125 },
    { region = "Réunion", libelle = " espace ", dossiers = -3, montant = 1234.5, part = -0.25 },
  })
end

-- A month series with a gap, a negative value and values that hit the eighth blocks.
local function months()
  return cpf.result({ "mois", "montant" }, {
    { mois = "2023-01", montant = 16 }, { mois = "2023-02", montant = 5 },
    { mois = "2023-03", montant = 1.5 }, { mois = "2023-04", montant = 0.2 },
    { mois = "2023-05" }, { mois = "2023-06", montant = -3 },
  })
end

local function lines(t) return table.concat(t, "\n") .. "\n" end

-- The message of the error f raises, without its "file:line: " position.
local function error_of(f)
  local ok, err = pcall(f)
  assert(not ok, "no error raised")
  return (tostring(err):gsub("^[^\n]-:%d+: ", "", 1))
end

local NULL, json_decode, is_utf8, check_markup = h.JSON_NULL, h.json_decode, h.is_utf8, h.check_markup

describe("output formats", function()
  teardown(h.cleanup)

  describe("csv", function()
    it("writes RFC 4180, quoting only the fields that need it", function()
      assert.are.equal(lines {
        "region,libelle,dossiers,montant,part",
        'Île-de-France,"Cours ""avancé""",12,123456789012.34,0.5',
        'Pays|Loire,"ligne 1',
        'ligne 2",0,-42.5,',
        ",Anglais; niveau B2,9007199254740991,0,0.125",
        'Réunion," espace ",-3,1234.5,-0.25',
      }, sample():format("csv"))
    end)

    it("writes the French Excel flavour: BOM, ';' and a decimal comma (csv-fr)", function()
      local expected = BOM .. lines {
        "region;libelle;dossiers;montant;part",
        'Île-de-France;"Cours ""avancé""";12;123456789012,34;0,5',
        'Pays|Loire;"ligne 1',
        'ligne 2";0;-42,5;',
        ';"Anglais; niveau B2";9007199254740991;0;0,125',
        'Réunion;" espace ";-3;1234,5;-0,25',
      }
      assert.are.equal(expected, sample():format("csv", { sep = ";", bom = true, decimal = "," }))
      assert.are.equal(expected, sample():format("csv-fr"))
      -- the preset's options can still be changed
      assert.are.equal(expected:sub(4), sample():format("csv-fr", { bom = false }))
    end)

    it("takes CRLF line ends and another separator", function()
      local res = cpf.result({ "a", "b" }, { { a = "x\ty", b = 1.5 }, { a = "a|b" } })
      assert.are.equal("a\tb\r\n\"x\ty\"\t1.5\r\na|b\t\r\n", res:format("csv", { sep = "\t", eol = "\r\n" }))
      assert.are.equal('a|b\nx\ty|1.5\n"a|b"|\n', res:format("csv", { sep = "|" }))
    end)

    it("refuses a decimal comma with ',' as the separator, and bad options", function()
      assert.are.equal("csv: decimal ',' needs another separator than ',' (sep = ';')",
        error_of(function() sample():format("csv", { decimal = "," }) end))
      assert.are.equal("csv: option 'sep' must be one character other than '\"', CR and LF",
        error_of(function() sample():format("csv", { sep = ";;" }) end))
      assert.are.equal("csv: unknown option 'separator'",
        error_of(function() sample():format("csv", { separator = ";" }) end))
      assert.are.equal('csv: option \'eol\' must be "\\n" or "\\r\\n"',
        error_of(function() sample():format("csv", { eol = "\r" }) end))
      assert.are.equal("csv: option 'bom' must be true or false",
        error_of(function() sample():format("csv", { bom = 1 }) end))
    end)

    it("writes the same bytes under a French C locale", function()
      local before = os.setlocale(nil, "all")
      if not os.setlocale("fr_FR.UTF-8", "all") then
        pending("the fr_FR.UTF-8 locale is not installed (scripts/install-deps.sh)")
        return
      end
      local ok, outputs = pcall(function()
        local t = {}
        assert(("%.1f"):format(0.5) == "0,5" or jit, "the locale did not change printf")
        for _, name in ipairs { "csv", "csv-fr", "tsv", "json", "markdown", "table", "html" } do
          t[name] = sample():format(name)
        end
        t.svg = months():format("svg")
        t.tostring = tostring(sample())
        return t
      end)
      os.setlocale(before, "all")
      assert(ok, outputs)
      for _, name in ipairs { "csv", "csv-fr", "tsv", "json", "markdown", "table", "html" } do
        assert.are.equal(sample():format(name), outputs[name], name)
      end
      assert.are.equal(months():format("svg"), outputs.svg)
      assert.are.equal(tostring(sample()), outputs.tostring)
    end)
  end)

  it("tsv: tab, CR, LF and backslash inside values are written \\t \\r \\n \\\\, nothing is quoted", function()
    assert.are.equal(lines {
      "region\tlibelle\tdossiers\tmontant\tpart",
      'Île-de-France\tCours "avancé"\t12\t123456789012.34\t0.5',
      "Pays|Loire\tligne 1\\nligne 2\t0\t-42.5\t",
      "\tAnglais; niveau B2\t9007199254740991\t0\t0.125",
      "Réunion\t espace \t-3\t1234.5\t-0.25",
    }, sample():format("tsv"))
    local res = cpf.result({ "a\tb" }, { { ["a\tb"] = "x\ty\r\nz\rw\\n" } })
    assert.are.equal(BOM .. "a\\tb\r\nx\\ty\\r\\nz\\rw\\\\n\r\n", res:format("tsv", { bom = true, eol = "\r\n" }))
    assert.are.equal("a\n1,5\n", cpf.result({ "a" }, { { a = 1.5 } }):format("tsv", { decimal = "," }))
  end)

  describe("json", function()
    local expected_rows = {
      '{"region":"Île-de-France","libelle":"Cours \\"avancé\\"","dossiers":12,"montant":123456789012.34,"part":0.5}',
      '{"region":"Pays|Loire","libelle":"ligne 1\\nligne 2","dossiers":0,"montant":-42.5,"part":null}',
      '{"region":null,"libelle":"Anglais; niveau B2","dossiers":9007199254740991,"montant":0,"part":0.125}',
      '{"region":"Réunion","libelle":" espace ","dossiers":-3,"montant":1234.5,"part":-0.25}',
    }

    it("writes an array of objects, keys in column order, one per line", function()
      assert.are.equal("[\n" .. table.concat(expected_rows, ",\n") .. "\n]\n", sample():format("json"))
      assert.are.equal("[]\n", cpf.result({ "a" }, {}):format("json"))
    end)

    it("jsonl: one object per line", function()
      assert.are.equal(lines(expected_rows), sample():format("jsonl"))
      assert.are.equal("", cpf.result({ "a" }, {}):format("jsonl"))
    end)

    it("decodes back to the result with a strict reader", function()
      local res = sample()
      local decoded = json_decode(res:format("json"))
      assert.are.equal(#res, #decoded)
      for i, obj in ipairs(decoded) do
        assert.are.same(res:columns(), obj.keys)
        for _, name in ipairs(res:columns()) do
          local v = obj.object[name]
          if v == NULL then v = nil end
          assert.are.equal(res[i][name], v, ("row %d, %s"):format(i, name))
        end
      end
      for line in res:format("jsonl"):gmatch("[^\n]+") do assert.is_table(json_decode(line).object) end
    end)

    it("escapes control characters and always writes valid UTF-8", function()
      local res = cpf.result({ "t\"ext", "n" }, {
        { ["t\"ext"] = "\0\1\31\127 tab\t \\ / \226\128\168", n = 0 / 0 },
        { ["t\"ext"] = "bad \255 cut \195 overlong \192\175 surrogate \237\160\128 end", n = math.huge },
        { ["t\"ext"] = true, n = -math.huge },
      })
      local text = res:format("json")
      assert.are.equal(lines {
        "[",
        '{"t\\"ext":"\\u0000\\u0001\\u001f\127 tab\\t \\\\ / \\u2028","n":null},',
        '{"t\\"ext":"bad \239\191\189 cut \239\191\189 overlong \239\191\189\239\191\189 surrogate '
          .. '\239\191\189\239\191\189\239\191\189 end","n":null},',
        '{"t\\"ext":true,"n":null}',
        "]",
      }, text)
      assert.is_true(is_utf8(text))
      local decoded = json_decode(text)
      assert.are.equal("\0\1\31\127 tab\t \\ / \226\128\168", decoded[1].object['t"ext'])
    end)

    if math.type then
      it("writes 64-bit integers exactly on Lua 5.3/5.4", function()
        local res = cpf.result({ "n" }, { { n = math.tointeger(2 ^ 53) + 1 }, { n = math.maxinteger },
                                          { n = math.mininteger }, { n = 2.0 ^ 53 }, { n = 2.0 ^ 60 } })
        assert.are.equal(lines { '{"n":9007199254740993}', '{"n":9223372036854775807}',
                                 '{"n":-9223372036854775808}', '{"n":9007199254740992}',
                                 '{"n":1.152921504606847e+18}' }, res:format("jsonl"))
        assert.are.equal("n\n9007199254740993\n9223372036854775807\n-9223372036854775808\n"
          .. "9007199254740992\n1.152921504606847e+18\n", res:format("csv"))
      end)
    else
      pending("64-bit integers (Lua 5.3/5.4 only; LuaJIT numbers are doubles, exact up to 2^53)")
    end
  end)

  describe("numbers", function()
    it("are the shortest text that reads back as the same double", function()
      local cases = {
        { 0.1, "0.1" }, { 1 / 3, "0.3333333333333333" }, { 123456789012.34, "123456789012.34" },
        { 1234.5, "1234.5" }, { 3.0, "3" }, { -0.0, "0" }, { 1e-7, "1e-07" }, { 1e300, "1e+300" },
        { 2 ^ 53, "9007199254740992" }, { 2 ^ 60, "1.152921504606847e+18" }, { 0.1 + 0.2, "0.30000000000000004" },
        { -2.5e-310, "-2.5e-310" }, { 5e-324, "5e-324" },
      }
      for _, c in ipairs(cases) do assert.are.equal(c[2], cpf.formats.number_text(c[1])) end
      assert.is_nil(cpf.formats.number_text(0 / 0))
      assert.is_nil(cpf.formats.number_text(-math.huge))
    end)

    it("round-trip for random doubles, with no shorter text that would", function()
      local seed = 12345
      local function random() -- a small LCG, the same sequence on every run
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed
      end
      for _ = 1, 2000 do
        local v = (random() / 2147483648 - 0.5) * 10 ^ (random() % 40 - 20)
        local text = cpf.formats.number_text(v)
        assert.are.equal(v, tonumber(text), text)
        local digits = #(text:gsub("e.*", ""):gsub("[^%d]", ""):gsub("^0+", ""))
        if digits > 1 and v ~= math.floor(v) then
          local shorter = ("%." .. (digits - 1) .. "g"):format(v):gsub(",", ".")
          assert.are_not.equal(v, tonumber(shorter), text .. " could be " .. shorter)
        end
      end
    end)
  end)

  it("markdown: a GitHub table, numbers right-aligned, '|' escaped, line breaks as <br>", function()
    assert.are.equal(lines {
      "| region        | libelle            |         dossiers |         montant |    part |",
      "|---------------|--------------------|-----------------:|----------------:|--------:|",
      '| Île-de-France | Cours "avancé"     |               12 | 123456789012.34 |  0.5000 |',
      "| Pays\\|Loire   | ligne 1<br>ligne 2 |                0 |          -42.50 |         |",
      "|               | Anglais; niveau B2 | 9007199254740991 |            0.00 |  0.1250 |",
      "| Réunion       |  espace            |               -3 |         1234.50 | -0.2500 |",
    }, sample():format("markdown"))
    assert.are.equal(lines { "| a   |   n |", "|-----|----:|", "| x   |   1 |" }, -- 3 dashes at least
      cpf.result({ "a", "n" }, { { a = "x", n = 1 } }):format("markdown"))
  end)

  describe("table", function()
    local TABLE = lines {
      "region         libelle                     dossiers          montant     part",
      "-------------  ------------------  ----------------  ---------------  -------",
      'Île-de-France  Cours "avancé"                    12  123456789012.34   0.5000',
      "Pays|Loire     ligne 1\\nligne 2                   0           -42.50",
      "               Anglais; niveau B2  9007199254740991             0.00   0.1250",
      "Réunion         espace                           -3          1234.50  -0.2500",
    }

    it("aligns by display width, numbers to the right, under a rule", function()
      assert.are.equal(TABLE, sample():format("table"))
    end)

    it("is what tostring and print show", function()
      assert.are.equal(TABLE:sub(1, -2), tostring(sample()))
      local out = h.run(h.interpreter .. " -e " .. h.shell_quote(
        "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path "
        .. "package.cpath = 'build/" .. h.lua_name .. "/?.so;' .. package.cpath "
        .. "local cpf = require 'cpf' print(cpf.result({'a', 'n'}, {{a = 'é', n = 1.5}, {a = 'xyz', n = 10}}))"))
      assert.are.equal("a        n\n---  -----\né     1.50\nxyz  10.00\n", out)
    end)

    it("takes thousands, decimals, a decimal mark, a text for missing values and a cell width", function()
      assert.are.equal(lines {
        "region    libelle                dossiers              montant    part",
        "--------  --------  ---------------------  -------------------  ------",
        'Île-de-…  Cours "…                     12  123 456 789 012,340   0,500',
        "Pays|Lo…  ligne 1…                      0              -42,500       -",
        "-         Anglais…  9 007 199 254 740 991                0,000   0,125",
        "Réunion    espace                      -3            1 234,500  -0,250",
      }, sample():format("table", { thousands = " ", decimals = 3, decimal = ",", nil_text = "-", max_width = 8 }))
      local long = cpf.result({ "t" }, { { t = ("é"):rep(50) } })
      assert.are.equal("t\n" .. ("-"):rep(40) .. "\n" .. ("é"):rep(39) .. "…\n", long:format("table"))
      assert.are.equal("t\n" .. ("-"):rep(50) .. "\n" .. ("é"):rep(50) .. "\n",
                       long:format("table", { max_width = false }))
    end)

    it("counts East Asian wide characters as two columns and combining marks as none", function()
      assert.are.equal(3, require("cpf.format").display_width("Île"))
      assert.are.equal(4, require("cpf.format").display_width("日本"))
      assert.are.equal(1, require("cpf.format").display_width("e\204\129"))
      assert.are.equal(2, require("cpf.format").display_width("\255a"))
      local res = cpf.result({ "nom", "n" }, { { nom = "日本語", n = 1 }, { nom = "Ame\204\129lie", n = 22 } })
      assert.are.equal(lines { "nom      n", "------  --", "日本語   1", "Ame\204\129lie  22" }, res:format("table"))
      assert.are.equal("日本…", require("cpf.format.common").truncate("日本語です", 6))
    end)

    it("escapes control characters, bidi overrides and bytes that are not UTF-8, widths on what is shown", function()
      local res = cpf.result({ "t\27[1m", "n" }, {
        { ["t\27[1m"] = "a\27[2Jb", n = 1 }, { ["t\27[1m"] = "x\ty\r\nz\0", n = 2 },
        { ["t\27[1m"] = "\226\128\174exe.txt\194\155\127", n = 3 }, { ["t\27[1m"] = "\255\\é", n = 4 },
      })
      assert.are.equal(lines {
        "t\\x1B[1m                 n",
        "-----------------------  -",
        "a\\x1B[2Jb                1",
        "x\\ty\\r\\nz\\x00            2",
        "\\u202Eexe.txt\\u009B\\x7F  3",
        "\\xFF\\é                   4",
      }, res:format("table"))
      assert.are.equal(lines {
        "| t\\x1B[1m                |   n |",
        "|-------------------------|----:|",
        "| a\\x1B[2Jb               |   1 |",
        "| x\\ty<br>z\\x00           |   2 |",
        "| \\u202Eexe.txt\\u009B\\x7F |   3 |",
        "| \239\191\189\\é                     |   4 |",
      }, res:format("markdown"))
    end)

    it("adds a bar column in Unicode blocks or in ASCII", function()
      assert.are.equal(lines {
        "mois     montant",
        "-------  -------",
        "2023-01    16.00  ████",
        "2023-02     5.00  █▎",
        "2023-03     1.50  ▍",
        "2023-04     0.20",
        "2023-05",
        "2023-06    -3.00",
      }, months():format("table", { bar = "montant", bar_width = 4, ascii = false }))
      assert.are.equal(lines {
        "mois     montant",
        "-------  -------",
        "2023-01    16.00  ####",
        "2023-02     5.00  #",
        "2023-03     1.50",
        "2023-04     0.20",
        "2023-05",
        "2023-06    -3.00",
      }, months():format("table", { bar = "montant", bar_width = 4, ascii = true }))
      assert.are.equal(("█"):rep(20), cpf.bar(7, 7, { ascii = false }))
      assert.are.equal("█▎", cpf.bar(5, 16, { width = 4, ascii = false }))
      assert.are.equal("##", cpf.bar(5, 10, { width = 4, ascii = true }))
      assert.are.equal("", cpf.bar(nil, 10, { ascii = false }))
      assert.are.equal("table: option 'bar' names no column of the result ('nope')",
        error_of(function() months():format("table", { bar = "nope" }) end))
      assert.are.equal("table: option 'bar' needs a numeric column ('mois' holds string values)",
        error_of(function() months():format("table", { bar = "mois" }) end))
    end)

    it("draws ASCII bars when NO_COLOR is set or the locale is not UTF-8", function()
      local script = h.shell_quote("package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path "
        .. "package.cpath = 'build/" .. h.lua_name .. "/?.so;' .. package.cpath "
        .. "local cpf = require 'cpf' io.write(cpf.bar(5, 10, {width = 4}), '|', "
        .. "cpf.result({'n'}, {{n = 1}}):format('table', {bar = 'n', bar_width = 2}))")
      local function run(env)
        local out, err, code = h.run("env -u LC_ALL -u LC_CTYPE -u LANG -u NO_COLOR " .. env .. " "
          .. h.interpreter .. " -e " .. script)
        assert.are.equal(0, code, err)
        return out
      end
      assert.are.equal("██|n\n-\n1  ██\n", run("LANG=C.UTF-8"))
      assert.are.equal("██|n\n-\n1  ██\n", run("LC_ALL=fr_FR.utf8 LANG=C"))
      assert.are.equal("██|n\n-\n1  ██\n", run("LANG=C.UTF-8 NO_COLOR="))
      assert.are.equal("##|n\n-\n1  ##\n", run("LANG=C.UTF-8 NO_COLOR=1"))
      assert.are.equal("##|n\n-\n1  ##\n", run("LANG=C"))
      assert.are.equal("##|n\n-\n1  ##\n", run(""))
      assert.are.equal("##|n\n-\n1  ##\n", run("LC_CTYPE=POSIX LANG=C.UTF-8"))
    end)
  end)

  describe("html and svg", function()
    it("html: one self-contained page with the table and a bar chart", function()
      local page = sample():format("html", { title = "Formations <CPF> & co", chart = { x = "region", y = "montant" } })
      assert.are.equal(h.read_file(h.fixture "fmt_sample.html"), page)
      check_markup(page)
      assert.is_true(is_utf8(page))
      -- nothing to fetch: no scripts, links, images, imports or URLs besides the SVG namespace
      local without_ns = page:gsub('xmlns="http://www%.w3%.org/2000/svg"', "")
      for _, bad in ipairs { "http", "src=", "href", "<script", "<link", "@import", "url(" } do
        assert.is_nil(without_ns:find(bad, 1, true), bad)
      end
      assert.are.equal(4, select(2, page:gsub("<rect ", ""))) -- one bar per amount, 0 included
      assert.is_truthy(page:find("<td>Cours &quot;avancé&quot;</td>", 1, true))
      assert.is_truthy(page:find("<td>ligne 1<br>ligne 2</td>", 1, true))
      assert.is_truthy(page:find("<title>Formations &lt;CPF&gt; &amp; co</title>", 1, true))
    end)

    it("html: chart = false leaves the chart out; a result without numbers has none", function()
      local page = sample():format("html", { chart = false })
      assert.is_nil(page:find("<svg", 1, true))
      check_markup(page)
      local text_only = cpf.result({ "a" }, { { a = "x" } }):format("html")
      assert.is_nil(text_only:find("<svg", 1, true))
      assert.are.equal("html: option 'chart' field 'y' names no column of the result ('nope')",
        error_of(function() sample():format("html", { chart = { y = "nope" } }) end))
      assert.are.equal("html: chart y 'libelle' is not a numeric column",
        error_of(function() sample():format("html", { chart = { y = "libelle" } }) end))
    end)

    it("svg: horizontal bars of the first numeric column by the first column", function()
      local svg = sample():format("svg")
      assert.are.equal(h.read_file(h.fixture "fmt_sample_bars.svg"), svg)
      check_markup(svg)
      assert.are.equal(svg, sample():format("svg", { chart = { x = "region", y = "dossiers" } }))
    end)

    it("svg: a line for a month series, broken where a month has no value", function()
      local svg = months():format("svg", { title = "Montant par mois" })
      assert.are.equal(h.read_file(h.fixture "fmt_months_line.svg"), svg)
      check_markup(svg)
      assert.are.equal(1, select(2, svg:gsub("<path ", "")))
      assert.are.equal(5, select(2, svg:gsub("<circle ", "")))
      -- the same months in another order draw the same chart
      local shuffled = cpf.result({ "mois", "montant" }, {})
      local m = months()
      for _, i in ipairs { 4, 1, 6, 2, 5, 3 } do shuffled[#shuffled + 1] = m[i] end
      assert.are.equal(svg, shuffled:format("svg", { title = "Montant par mois" }))
      assert.are.equal("svg: the result has no numeric column to chart (chart = {x = column, y = column})",
        error_of(function() cpf.result({ "a" }, { { a = "x" } }):format("svg") end))
    end)
  end)

  describe("custom formats", function()
    it("are registered once and used by format and write", function()
      cpf.formats.register("pipes", function(res, out, opts)
        local cols = res:columns()
        out:write(table.concat(cols, opts.sep or "|"), "\n")
        for _, row in ipairs(res) do
          local t = {}
          for j, c in ipairs(cols) do t[j] = row[c] == nil and "" or tostring(row[c]) end
          out:write(table.concat(t, opts.sep or "|"), "\n")
        end
        out:write(#res, " rows, ", 1.5, "\n")
      end)
      local res = cpf.result({ "a", "b" }, { { a = "x", b = 1 }, { a = "y" } })
      assert.are.equal("a|b\nx|1\ny|\n2 rows, 1.5\n", res:format("pipes"))
      assert.are.equal("a/b\nx/1\ny/\n2 rows, 1.5\n", res:format("pipes", { sep = "/" }))
      local path = h.tmpname(".txt")
      assert.is_true(res:write(path, "pipes"))
      assert.are.equal("a|b\nx|1\ny|\n2 rows, 1.5\n", h.read_file(path))
      local names = cpf.formats.names()
      assert.are.same({ "csv", "csv-fr", "tsv", "json", "jsonl", "markdown", "table", "html", "svg", "pipes" }, names)
      -- registering it again replaces it
      cpf.formats.register("pipes", function(_, out) out:write("v2") end)
      assert.are.equal("v2", res:format("pipes"))
      assert.are.equal(10, #cpf.formats.names())
    end)

    it("cannot replace a built-in format, and need a name and a function", function()
      assert.are.equal("format 'csv' is built in and cannot be replaced; register yours under another name",
        error_of(function() cpf.formats.register("csv", function() end) end))
      assert.are.equal("bad argument #1 to 'register' (format name expected: letters, digits, '_', '.', '-'; "
        .. 'got "a b")',
        error_of(function() cpf.formats.register("a b", function() end) end))
      assert.are.equal("bad argument #2 to 'register' (function expected, got nil)",
        error_of(function() cpf.formats.register("x") end))
    end)
  end)

  describe("write and format", function()
    it("write a path through a temporary file renamed over the target", function()
      local dir = h.tmpname("-out")
      assert(os.execute("mkdir " .. h.shell_quote(dir)))
      finally(function() os.execute("rm -rf " .. h.shell_quote(dir)) end)
      local path = dir .. "/out.csv"
      local f = assert(io.open(path, "wb"))
      f:write("old content")
      f:close()
      assert.is_true(sample():write(path, "csv-fr"))
      assert.are.equal(sample():format("csv-fr"), h.read_file(path))
      local listing = h.run("ls -A " .. h.shell_quote(dir))
      assert.are.equal("out.csv\n", listing)

      -- a format that fails half-way leaves the old file and no temporary file
      cpf.formats.register("failing", function(_, out)
        out:write(("x"):rep(100000))
        error("failing: no more data", 0)
      end)
      assert.are.equal("failing: no more data", error_of(function() sample():write(path, "failing") end))
      assert.are.equal(sample():format("csv-fr"), h.read_file(path))
      assert.are.equal("out.csv\n", (h.run("ls -A " .. h.shell_quote(dir))))
    end)

    it("return nil and a message naming the target on an I/O failure", function()
      local dir = h.tmpname("-out")
      assert(os.execute("mkdir " .. h.shell_quote(dir)))
      finally(function() os.execute("rm -rf " .. h.shell_quote(dir)) end)
      local ok, err = sample():write(dir .. "/missing/out.csv", "csv")
      assert.is_nil(ok)
      assert.are.equal(dir .. "/missing/out.csv: cannot write: No such file or directory", err)
      ok, err = sample():write(dir, "csv")
      assert.is_nil(ok)
      assert.are.equal(dir .. ": not a regular file: refusing to replace it", err)
      assert.are.equal("", (h.run("ls -A " .. h.shell_quote(dir))))
    end)

    it("return nil and 'path: cannot write: Permission denied' in a directory nobody may write to", function()
      local dir = h.tmpname("-ro")
      assert(os.execute("mkdir " .. h.shell_quote(dir) .. " && chmod 555 " .. h.shell_quote(dir)))
      finally(function() os.execute("rm -rf " .. h.shell_quote(dir)) end)
      local ok, err = sample():write(dir .. "/out.csv", "csv")
      if ok then
        pending("running as root, who may write there anyway")
        return
      end
      assert.is_nil(ok)
      assert.are.equal(dir .. "/out.csv: cannot write: Permission denied", err)
    end)

    it("write to a file handle, or to any object with a write method", function()
      local path = h.tmpname(".json")
      local f = assert(io.open(path, "wb"))
      f:write("before\n")
      assert.is_true(sample():write(f, "jsonl"))
      f:write("after\n")
      f:close()
      assert.are.equal("before\n" .. sample():format("jsonl") .. "after\n", h.read_file(path))
      local buffer = { parts = {} }
      function buffer:write(s) self.parts[#self.parts + 1] = s return self end
      assert.is_true(sample():write(buffer, "markdown"))
      assert.are.equal(sample():format("markdown"), table.concat(buffer.parts))
      local read_only = assert(io.open(path, "rb"))
      local ok, err = sample():write(read_only, "csv")
      read_only:close()
      assert.is_nil(ok)
      assert.is_truthy(err:find("^cannot write: "), err)
    end)

    it("write to io.stdout", function()
      local out, err, code = h.run(h.interpreter .. " -e " .. h.shell_quote(
        "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path "
        .. "package.cpath = 'build/" .. h.lua_name .. "/?.so;' .. package.cpath "
        .. "local cpf = require 'cpf' "
        .. "assert(cpf.result({'a', 'b'}, {{a = 'é', b = 2}}):write(io.stdout, 'csv')) io.write('end')"))
      assert.are.equal(0, code, err)
      assert.are.equal("a,b\né,2\nend", out)
    end)

    it("raise on an unknown format or bad arguments", function()
      assert.are.equal("unknown format 'xlsx' (" .. table.concat(cpf.formats.names(), ", ") .. ")",
        error_of(function() sample():format("xlsx") end))
      assert.is_truthy(error_of(function() sample():format("xlsx") end)
        :find("^unknown format 'xlsx' %(csv, csv%-fr, tsv, json, jsonl, markdown, table, html, svg"))
      assert.are.equal("bad argument #1 to 'format' (format name expected, got nil)",
        error_of(function() sample():format() end))
      assert.are.equal("bad argument #2 to 'format' (table expected, got string)",
        error_of(function() sample():format("csv", ";") end))
      assert.are.equal("bad argument #1 to 'write' (path or file handle expected, got number)",
        error_of(function() sample():write(1, "csv") end))
      assert.are.equal("bad argument #2 to 'write' (format name expected, got nil)",
        error_of(function() sample():write("x.csv") end))
      assert.are.equal("bad argument #3 to 'write' (table expected, got boolean)",
        error_of(function() sample():write("x.csv", "csv", true) end))
      local closed = assert(io.open(h.tmpname(".csv"), "wb"))
      closed:close()
      assert.are.equal("bad argument #1 to 'write' (file is closed)",
        error_of(function() sample():write(closed, "csv") end))
      assert.are.equal("table: option 'decimals' must be a whole number from 0 to 9",
        error_of(function() sample():format("table", { decimals = 1.5 }) end))
      -- the position is the caller's
      local ok, err = pcall(function() sample():format("xlsx") end)
      assert.is_false(ok)
      assert.is_truthy(err:find("^spec/20%-formats_spec%.lua:%d+: unknown format"), err)
      ok, err = pcall(function() sample():write("x.csv", "csv", { nope = 1 }) end)
      assert.is_false(ok)
      assert.is_truthy(err:find("^spec/20%-formats_spec%.lua:%d+: csv: unknown option 'nope'"), err)
    end)

    it("give the same bytes every time", function()
      for _, name in ipairs(cpf.formats.names()) do
        if name ~= "pipes" and name ~= "failing" then
          assert.are.equal(sample():format(name), sample():format(name), name)
        end
      end
    end)
  end)
end)

describe("key columns in display formats", function()
  it("print a key column (a year) without thousands separators, the measures with them", function()
    local res = cpf.result({ "annee", "dossiers" },
      { { annee = 2023, dossiers = 12345 }, { annee = 2024, dossiers = 678 } }, { "annee" })
    assert.are.same({ "annee" }, res:keys())
    assert.are.equal("annee  dossiers\n-----  --------\n 2023    12 345\n 2024       678\n",
      res:format("table", { thousands = " " }))
    local plain = cpf.result({ "annee", "dossiers" }, { { annee = 2023, dossiers = 12345 } })
    assert.are.same({}, plain:keys())
    assert.are.equal("annee  dossiers\n-----  --------\n2 023    12 345\n", plain:format("table", { thousands = " " }))
  end)
end)

describe("csv written for people and for programs", function()
  teardown(h.cleanup)

  local formulas = cpf.result({ "v", "n" }, {
    { v = "=1+2", n = 1 }, { v = "@SUM(A1)", n = -2 }, { v = "-1", n = 3 }, { v = "-12,5" }, { v = "+x" },
    { v = "\tx" }, { v = "\rx" }, { v = "a=b" }, { v = "-" }, { v = "+3" },
  })

  it("csv-fr guards text a spreadsheet would run as a formula; numbers and number-like codes stay", function()
    assert.are.equal(BOM .. "v;n\n'=1+2;1\n'@SUM(A1);-2\n-1;3\n-12,5;\n'+x;\n'\tx;\n\"'\rx\";\na=b;\n'-;\n+3;\n",
      formulas:format("csv-fr"))
    assert.are.equal(BOM .. "v;n\n=1+2;1\n@SUM(A1);-2\n-1;3\n-12,5;\n+x;\n\"\tx\";\n\"\rx\";\na=b;\n-;\n+3;\n",
      formulas:format("csv-fr", { formula_guard = false }))
  end)

  it("csv stays an exact machine format unless asked to guard", function()
    assert.are.equal("v,n\n=1+2,1\n@SUM(A1),-2\n-1,3\n\"-12,5\",\n+x,\n\"\tx\",\n\"\rx\",\na=b,\n-,\n+3,\n",
      formulas:format("csv"))
    assert.are.equal("v\n'=1+2\n", cpf.result({ "v" }, { { v = "=1+2" } }):format("csv", { formula_guard = true }))
    assert.are.equal("csv: option 'formula_guard' must be true or false",
      h.error_of(function() return formulas:format("csv", { formula_guard = "yes" }) end))
  end)

  it("writes a lone missing value as \"\" so that the row survives a round trip", function()
    local one = cpf.result({ "v" }, { { v = "a" }, {}, { v = "b" } })
    assert.are.equal('v\na\n""\nb\n', one:format("csv"))
    local path = h.tmpname(".csv")
    assert(one:write(path, "csv"))
    local back = assert(cpf.load(path, { sep = "," }))
    assert.are.equal(3, #back)
    assert.are.same({ "a", nil, "b" }, { back:get(1, 1), back:get(2, 1), back:get(3, 1) })
    back:close()
    assert.are.equal("v,w\na,\n,\n", cpf.result({ "v", "w" }, { { v = "a" }, {} }):format("csv"))
  end)
end)

describe("svg and html with control characters in the data", function()
  it("replace each by U+FFFD, so that the image stays XML", function()
    local res = cpf.result({ "k", "n" }, { { k = "a\1b\127c\27d", n = 1 }, { k = "tab\there", n = 2 } }, { "k" })
    for _, fmt in ipairs { "svg", "html" } do
      local text = res:format(fmt)
      assert.is_nil(text:find("[%z\1-\8\11\12\14-\31\127]"), fmt)
      assert.is_truthy(text:find("a\239\191\189b\239\191\189c\239\191\189d", 1, true), fmt)
    end
  end)
end)

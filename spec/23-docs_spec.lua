-- The documentation keeps up with the code: every public function of cpf, every method of a
-- dataset, a query and a result is in the reference (doc/*.md) and in the LuaCATS file
-- meta/cpf.lua; the README keeps the set-up commands and its Lua examples run; links resolve.
local h = require "spec.helpers"
local cpf = require "cpf"
local gen = require "cpf.gen"
local query = require "cpf.query"

local q = h.shell_quote

-- README.md, then doc/*.md in name order.
local function doc_files()
  local files = { "README.md" }
  local p = assert(io.popen("ls doc/*.md"))
  for name in p:lines() do files[#files + 1] = name end
  p:close()
  return files
end

local FILES = doc_files()
local text_of = {}
local reference_parts = {}
for _, file in ipairs(FILES) do
  text_of[file] = h.read_file(file)
  if file:find("^doc/") then reference_parts[#reference_parts + 1] = text_of[file] end
end
local reference = table.concat(reference_parts, "\n")
local meta = h.read_file("meta/cpf.lua")

local function names(t)
  local out = {}
  for k, v in pairs(t) do
    if type(v) == "function" and not k:match("^__") then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end

-- The text outside fenced code blocks, and the fenced blocks of one language.
local function prose(text)
  return (text:gsub("\n```[^\n]*\n.-\n```", "\n"))
end
local function blocks(text, language)
  local out = {}
  for block in ("\n" .. text):gmatch("\n```" .. language .. "\n(.-\n)```") do out[#out + 1] = block end
  return out
end

-- The anchor GitHub gives a heading: lower case, punctuation but '-' and '_' dropped, spaces
-- as '-'. Bytes of UTF-8 sequences are kept.
local function anchor(heading)
  return (heading:lower():gsub("[^%w%s%-_\128-\255]", ""):gsub(" ", "-"))
end

local function anchors_of(text)
  local out = {}
  for heading in ("\n" .. prose(text)):gmatch("\n#+ ([^\n]+)") do out[anchor(heading)] = true end
  return out
end

describe("documentation", function()
  it("lists the reference files it reads", function()
    for _, name in ipairs { "api", "cli", "formats", "snapshots", "performance", "errors", "dataset" } do
      assert.is_truthy(text_of["doc/" .. name .. ".md"], "doc/" .. name .. ".md")
    end
  end)

  it("names every public function of cpf in the reference and in meta/cpf.lua", function()
    for _, name in ipairs(names(cpf)) do
      assert.is_truthy(reference:find("cpf." .. name, 1, true), "doc/: cpf." .. name)
      assert.is_truthy(meta:find("function cpf." .. name .. "(", 1, true), "meta: cpf." .. name)
    end
    for _, name in ipairs(names(cpf.formats)) do
      assert.is_truthy(reference:find("cpf.formats." .. name, 1, true), "doc/: cpf.formats." .. name)
    end
  end)

  it("names every method of a dataset, a query and a result", function()
    local ds = assert(cpf.load(h.fixture "labels_bom_lf.csv"))
    for _, group in ipairs {
      { prefix = "ds:", meta = "Dataset:", methods = getmetatable(ds).__index },
      { prefix = "q:", meta = "Query:", methods = query.Query },
      { prefix = "res:", meta = "Result:", methods = getmetatable(cpf.result({ "a" }, {})) },
    } do
      for _, name in ipairs(names(group.methods)) do
        assert.is_truthy(reference:find(group.prefix .. name, 1, true), "doc/: " .. group.prefix .. name)
        assert.is_truthy(meta:find("function " .. group.meta .. name .. "(", 1, true),
                         "meta: " .. group.meta .. name)
      end
    end
  end)

  it("keeps the two set-up commands in the README", function()
    local readme = text_of["README.md"]
    for _, line in ipairs {
      "bash scripts/demo.sh    # builds the module, generates a CPF file and prints a demo report on it\n",
      "bash scripts/test.sh    # the whole test suite (make test); ends with \"N passed, N failed\"\n",
    } do
      assert.is_truthy(readme:find("\n" .. line, 1, true), line)
      local script = line:match("^bash (%S+)")
      local f = io.open(script, "r")
      assert.is_truthy(f, script)
      f:close()
    end
  end)

  it("links only to files and headings that exist", function()
    for _, file in ipairs(FILES) do
      local dir = file:match("^(.*)/") or "."
      for target in prose(text_of[file]):gmatch("%]%(([^)%s]+)%)") do
        if not target:find("^%a+:") then
          local path, fragment = target:match("^([^#]*)#?(.*)$")
          local linked = path == "" and file or (dir == "." and path or dir .. "/" .. path)
          local f = io.open(linked, "rb")
          assert.is_truthy(f, file .. ": link to a missing file: " .. target)
          local text = f:read("*a")
          f:close()
          if fragment ~= "" then
            assert.is_truthy(anchors_of(text)[fragment], file .. ": link to a missing heading: " .. target)
          end
        end
      end
    end
  end)

  it("has Lua examples that compile", function()
    for _, file in ipairs(FILES) do
      for i, block in ipairs(blocks(text_of[file], "lua")) do
        local chunk, err = (loadstring or load)(block, ("=%s, Lua block %d"):format(file, i))
        assert.is_truthy(chunk, err)
      end
    end
  end)

  it("runs the README's Lua examples on a generated export", function()
    local dir = h.tmpname(".readme")
    assert(os.execute("mkdir " .. q(dir)))
    finally(function() os.execute("rm -rf " .. q(dir)) end)
    assert(gen.write(dir .. "/formations-engagees.csv", 3000, { seed = 5 }))
    -- the reference table the README joins (illustrative figures)
    h.write_bytes(dir .. "/population.csv", "code_officiel_departement;population\n01;657856\n2A;160000\n75;2100000\n")
    local script = dir .. "/readme.lua"
    h.write_bytes(script, table.concat(blocks(text_of["README.md"], "lua"), "\n"))

    local root = h.root
    local build = os.getenv("CPF_BUILD_DIR") or ("build/" .. h.lua_name)
    if not build:find("^/") then build = root .. "/" .. build end
    local setup = ("package.path = %q .. package.path; package.cpath = %q .. package.cpath"):format(
      root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;", build .. "/?.so;")
    local out, err, code = h.run(("cd %s && %s -e %s readme.lua"):format(q(dir), h.interpreter, q(setup)))
    assert.are.equal(0, code, err)
    assert.is_truthy(out:find("cpf dataset: 3000 rows", 1, true), out)
    for _, name in ipairs { "top.csv", "regions.csv", "formations.cpfsnap", "regions.html" } do
      local f = io.open(dir .. "/" .. name, "rb")
      assert.is_truthy(f, "the README's examples did not write " .. name)
      f:close()
    end
    assert.are.equal("\239\187\191", h.read_file(dir .. "/regions.csv"):sub(1, 3), "csv-fr starts with a BOM")
  end)
end)

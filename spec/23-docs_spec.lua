-- The documentation keeps up with the code: every public function of cpf, every method of a
-- dataset, a query and a result is in the reference (doc/*.md) and in the LuaCATS file
-- meta/cpf.lua.
local h = require "spec.helpers"
local cpf = require "cpf"
local query = require "cpf.query"

-- The reference: doc/*.md in name order (the README is a tour, not the reference).
local function reference_text()
  local parts = {}
  local p = assert(io.popen("ls doc/*.md"))
  for name in p:lines() do parts[#parts + 1] = h.read_file(name) end
  p:close()
  assert(#parts > 0, "no doc/*.md")
  return table.concat(parts, "\n")
end

local reference = reference_text()
local meta = h.read_file("meta/cpf.lua")

local function names(t)
  local out = {}
  for k, v in pairs(t) do
    if type(v) == "function" and not k:match("^__") then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end

describe("documentation", function()
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
        assert.is_truthy(meta:find("function " .. group.meta .. name .. "(", 1, true), "meta: " .. group.meta .. name)
      end
    end
  end)
end)

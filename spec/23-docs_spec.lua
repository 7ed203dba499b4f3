-- The documentation keeps up with the code: every public function of cpf, every method of a
-- dataset, a query and a result is in the README and in the LuaCATS file meta/cpf.lua.
local h = require "spec.helpers"
local cpf = require "cpf"
local query = require "cpf.query"

local readme = h.read_file("README.md")
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
  it("names every public function of cpf in the README and in meta/cpf.lua", function()
    for _, name in ipairs(names(cpf)) do
      assert.is_truthy(readme:find("cpf." .. name, 1, true), "README: cpf." .. name)
      assert.is_truthy(meta:find("function cpf." .. name .. "(", 1, true), "meta: cpf." .. name)
    end
    for _, name in ipairs(names(cpf.formats)) do
      assert.is_truthy(readme:find("cpf.formats." .. name, 1, true), "README: cpf.formats." .. name)
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
        assert.is_truthy(readme:find(group.prefix .. name, 1, true), "README: " .. group.prefix .. name)
        assert.is_truthy(meta:find("function " .. group.meta .. name .. "(", 1, true), "meta: " .. group.meta .. name)
      end
    end
  end)
end)

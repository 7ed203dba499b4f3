-- What each result column holds (issue 13, kinds): set by the measures and aggregates, settable
-- with agg:kind, kept by the operations that derive a result from another; the display formats
-- read it.
local h = require "spec.helpers"
local cpf = require "cpf"

describe("result kinds", function()
  local ds
  setup(function()
    local path = h.tmpname(".csv")
    assert(require("cpf.gen").write(path, 2000, { seed = 3 }))
    ds = assert(cpf.load(path))
  end)
  teardown(function() ds:close() h.cleanup() end)

  it("come from the CPF measures", function()
    local names = {}
    for name in pairs(cpf.measures) do names[#names + 1] = name end
    table.sort(names)
    local res = ds:group_by("annee"):agg(names):run()
    local expected = { annee = "key", dossiers = "count", montant = "money", prix_moyen = "money",
                       duree_moyenne = "number", taux_annulation = "rate", lignes = "count" }
    for _, f in ipairs(cpf.schema.funders) do
      expected["part_" .. f] = "money"
      expected["share_" .. f] = "rate"
      if f ~= "france_competences" then expected["dossiers_" .. f] = "count" end
    end
    assert.are.same(expected, res:kinds())
  end)

  it("come from what an aggregate computes, and agg:kind sets one", function()
    local res = ds:group_by("famille"):agg {
      { "rows", cpf.count() }, { "known", cpf.count "code_rncp" }, { "codes", cpf.distinct "code_rncp" },
      { "files", cpf.sum "nb_dossiers" }, { "amount", cpf.sum "montant engagé" }, { "top", cpf.max "montant_engage" },
      { "avg", cpf.mean "montant_engage" }, { "med", cpf.median "prix_moyen" }, { "hours", cpf.mean "duree_moyenne" },
      { "mean_files", cpf.mean "nb_dossiers" }, { "price", cpf.ratio("montant_engage", "nb_dossiers") },
      { "ratio", cpf.ratio("part_opco", "montant_engage") }, { "odd", cpf.ratio("nb_dossiers", "duree_moyenne") },
      { "share", cpf.share "nb_dossiers" }, { "filtered", cpf.filtered(cpf.sum "montant_engage", { annee = 2024 }) },
      { "combined", cpf.combine({ "dossiers", "lignes" }, function(a, b) return a and b and a - b end) },
      { "set", cpf.sum "nb_dossiers":kind("number") },
      { "rate", cpf.combine({ "dossiers", "lignes" }, function(a, b) return a and b and a / b end):kind("rate") },
    }:run()
    assert.are.same({ famille = "key", rows = "count", known = "count", codes = "count", files = "count",
                      amount = "money", top = "money", avg = "money", med = "money", hours = "number",
                      mean_files = "number", price = "money", ratio = "rate", odd = "number", share = "rate",
                      filtered = "money", combined = "number", set = "number", rate = "rate" }, res:kinds())
    assert.are.equal("bad argument #1 to 'kind' (count, money, rate, number or key expected, got euros)",
      h.error_of(function() return cpf.sum "x":kind("euros") end))
    -- kind returns a new aggregate: the first keeps its own
    local sum = cpf.sum "nb_dossiers"
    local _ = sum:kind("money")
    assert.are.same({ n = "count" }, ds:run({ n = sum }):kinds())
  end)

  it("are kept by sorted, head, pivot, funders and compare; cpf.result has none", function()
    local res = ds:group_by("annee", "famille"):agg { "dossiers", "montant" }:order_by("-montant"):run()
    local kinds = { annee = "key", famille = "key", dossiers = "count", montant = "money" }
    assert.are.same(kinds, res:sorted("dossiers"):kinds())
    assert.are.same(kinds, res:head(1):kinds())
    local pivot = res:pivot("famille", "annee", "montant")
    local expected = { famille = "key" }
    for i, c in ipairs(pivot:columns()) do if i > 1 then expected[c] = "money" end end
    assert.are.same(expected, pivot:kinds())
    assert.are.same({ annee = "key", financeur = "key", montant = "money", part = "rate", dossiers = "count" },
      ds:funders(ds:group_by("annee")):kinds())
    assert.are.same({ annee = "key", dossiers_old = "count", dossiers_new = "count", dossiers_diff = "count" },
      cpf.compare(ds, ds, "annee", "dossiers"):kinds())
    assert.are.same({}, cpf.result({ "a" }, { { a = 1 } }):kinds())
  end)

  it("are the same through the request language", function()
    local req = assert(require("cpf.request").parse {
      by = "annee", measure = "dossiers,sum:montant_engage,share_opco,count" })
    assert.are.same({ annee = "key", dossiers = "count", sum_montant_engage = "money", share_opco = "rate",
                      count = "count" }, assert(req:run(ds)):kinds())
  end)
end)

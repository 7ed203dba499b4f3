-- Column types: codes stay text, counts are integers, money is exact, months and dates,
-- inference for unknown columns, locale independence.
local h = require "spec.helpers"
local cpf = require "cpf"

local function types_of(ds)
  local t = {}
  for _, c in ipairs(ds:columns()) do t[c.name] = c.type end
  return t
end

describe("column types", function()
  it("keeps codes as strings with their leading zeros", function()
    local ds = assert(cpf.load(h.fixture "codes_and_inference.csv"))
    assert.are.same({ "01", "-1", "35185", "05012", "01004" },
      { ds:get(1, "code_officiel_departement"), ds:get(1, "code_rs"), ds:get(1, "code_rncp"),
        ds:get(1, "formacode_principal"), ds:get(1, "code_commune") })
    assert.are.equal("2A", ds:get(2, "code_officiel_departement"))
    assert.are.equal("00001", ds:get(3, "formacode_principal"))
  end)

  it("infers the types of unknown columns from all their values", function()
    local ds = assert(cpf.load(h.fixture "codes_and_inference.csv"))
    assert.are.same({
      code_officiel_departement = "string", code_rs = "string", code_rncp = "string",
      formacode_principal = "string", code_commune = "string", effectif = "integer",
      taux = "number", mois = "month", jour = "date", commentaire = "string",
    }, types_of(ds))
    assert.are.same({ 12, -3, 0 }, { ds:get(1, "effectif"), ds:get(2, "effectif"), ds:get(3, "effectif") })
    assert.are.same({ 0.5, 1, 2.25 }, { ds:get(1, "taux"), ds:get(2, "taux"), ds:get(3, "taux") })
    assert.are.equal("2024-02-29", ds:get(3, "jour"))
    assert.is_nil(ds:get(2, "commentaire"))
  end)

  if math.type then
    it("returns counts as Lua integers", function()
      local ds = assert(cpf.load(h.fixture "labels_bom_lf.csv"))
      assert.are.equal("integer", math.type(ds:get(3, "nb_dossiers")))
    end)
  end

  it("reads months written YYYY-MM and YYYY-MM-DD, and dates", function()
    local ds = assert(cpf.load(h.fixture "labels_bom_lf.csv"))
    assert.are.same({ "2023-01", "2023-02", "2024-12" },
      { ds:get(1, "date_validation"), ds:get(2, "date_validation"), ds:get(3, "date_validation") })
    assert.are.equal("2026-05-04", ds:get(1, "date_chargement"))
    local t = types_of(ds)
    assert.are.equal("month", t.date_validation)
    assert.are.equal("date", t.date_chargement)
  end)

  it("treats an empty field as missing, never as zero", function()
    local ds = assert(cpf.load(h.fixture "missing_values.csv"))
    local r1, r2 = ds:row(1), ds:row(2)
    assert.are.same({ statut_dossier = "Validé" }, r1)
    assert.are.same({ nb_dossiers = 3, duree_moyenne = 0, montant_engage = 0,
                      region_lieu_formation = "Bretagne" }, r2)
    local missing = {}
    for _, c in ipairs(ds:columns()) do missing[c.name] = c.missing end
    assert.are.same({ statut_dossier = 1, nb_dossiers = 1, duree_moyenne = 1, montant_engage = 1,
                      region_lieu_formation = 1 }, missing)
  end)

  it("reads a decimal comma when ';' separates the fields", function()
    local ds = assert(cpf.load(h.fixture "decimal_comma.csv"))
    assert.are.same({ 1200.5, 35.5, 2401 },
      { ds:get(1, "prix_moyen"), ds:get(1, "duree_moyenne"), ds:get(1, "montant_engage") })
    assert.are.equal(99.9, ds:get(2, "montant_engage"))
    local forced, err = cpf.load(h.fixture "decimal_comma.csv", { decimal = "." })
    assert.is_nil(forced)
    assert.are.equal('spec/fixtures/decimal_comma.csv:2:3: prix_moyen: expected a number, got "1200,50"', err)
  end)

  it("keeps money exact when a value has more decimals than cents", function()
    local ds = assert(cpf.load(h.fixture "extra_decimals.csv"))
    local col = ds:column("montant_engage")
    assert.are.equal("decimal", col.type)
    assert.are.equal(3, col.scale)
    assert.are.same({ 10.125, 0.001, 3 },
      { ds:get(1, "montant_engage"), ds:get(2, "montant_engage"), ds:get(3, "montant_engage") })
    assert.are.equal(2, ds:column("part_cec").scale)
  end)

  it("falls back to a double for exponent notation in a money column", function()
    local ds = assert(cpf.load(h.fixture "exponent_amount.csv"))
    assert.are.equal("number", ds:column("montant_engage").type)
    assert.are.same({ 1000, 2.5 }, { ds:get(1, "montant_engage"), ds:get(2, "montant_engage") })
    assert.are.same({ 15, 0.1 }, { ds:get(1, "duree_moyenne"), ds:get(2, "duree_moyenne") })
  end)

  it("parses numbers exactly and correctly rounded", function()
    local path = h.write_file("x;y\n0.1;1\n123456789.123;2\n1e-5;3\n-2.5E3;4\n"
      .. "0.30000000000000004;5\n12345678901234567890;6\n1.7976931348623157e308;7\n")
    local ds = assert(cpf.load(path, { types = { x = "number" } }))
    assert.are.same({ 0.1, 123456789.123, 1e-5, -2500, 0.30000000000000004, 12345678901234567890,
                      1.7976931348623157e308 },
      { ds:get(1, "x"), ds:get(2, "x"), ds:get(3, "x"), ds:get(4, "x"), ds:get(5, "x"),
        ds:get(6, "x"), ds:get(7, "x") })
  end)

  it("does not depend on the C locale (LC_ALL=fr_FR.UTF-8)", function()
    local old = os.setlocale(nil, "all")
    local set = os.setlocale("fr_FR.UTF-8", "all") or os.setlocale("fr_FR.utf8", "all")
    assert.is_truthy(set, "the fr_FR.UTF-8 locale is not installed (scripts/install-deps.sh makes it)")
    local ok, err = pcall(function()
      -- the locale is really French (LuaJIT formats numbers without the C library)
      if not jit then assert.are.equal("0,5", string.format("%.1f", 0.5)) end
      local path = h.write_file("prix_moyen;duree_moyenne;autre\n1200.50;35.5;1.5\n7;1.2345678901234567890123;1e-3\n")
      local ds = assert(cpf.load(path))
      assert.are.same({ 1200.5, 35.5, 1.5 },
                      { ds:get(1, "prix_moyen"), ds:get(1, "duree_moyenne"), ds:get(1, "autre") })
      assert.are.same({ 1.2345678901234567890123, 0.001 }, { ds:get(2, "duree_moyenne"), ds:get(2, "autre") })
    end)
    os.setlocale(old, "all")
    assert(ok, err)
  end)

  it("never calls localeconv on a loading thread, and still reads numbers under fr_FR", function()
    -- localeconv returns a static buffer that another thread may rewrite: the loader reads the
    -- locale's decimal point once, on the calling thread. A preloaded localeconv exits with 42
    -- when called from any other thread; "1e30" and "2.5e-30" take strtod's path (inexact in
    -- one IEEE operation), on the chunk threads (y, typed) and the merge threads (x, inferred).
    local shim_c = h.write_file([[
#define _GNU_SOURCE
#include <dlfcn.h>
#include <locale.h>
#include <sys/syscall.h>
#include <unistd.h>
struct lconv *localeconv(void) {
  struct lconv *(*real)(void);
  if (syscall(SYS_gettid) != getpid()) _exit(42);
  *(void **)&real = dlsym(RTLD_NEXT, "localeconv");
  return real();
}
]], ".c")
    local shim = h.tmpname(".so")
    local _, cc_err, cc_code =
      h.run(("env -u LD_PRELOAD cc -shared -fPIC -o %s %s -ldl"):format(shim, shim_c))
    assert.are.equal(0, cc_code, cc_err)
    local lines = { "a;x;y" }
    for i = 1, 40000 do lines[#lines + 1] = ("%d;1e30;%d.5e-30"):format(i, i) end
    local path = h.write_file(table.concat(lines, "\n") .. "\n")
    local child = h.write_file(([[
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = %q .. "/?.so;" .. package.cpath
assert(os.setlocale("fr_FR.UTF-8", "all") or os.setlocale("fr_FR.utf8", "all"), "no fr_FR locale")
local ds = assert(require("cpf").load(%q, { threads = 4, types = { y = "number" } }))
os.setlocale("C", "all")
assert(ds:column("x").type == "number", ds:column("x").type)
for i = 1, #ds do
  assert(ds:get(i, "x") == 1e30 and ds:get(i, "y") == tonumber(("%%d.5e-30"):format(i)), i)
end
io.write("ok ", #ds)
]]):format(os.getenv("CPF_BUILD_DIR") or ("build/" .. h.lua_name), path), ".lua")
    local preload = ((os.getenv("LD_PRELOAD") or "") .. " " .. shim):gsub("^ ", "")
    local out, err, code =
      h.run(("LD_PRELOAD=%s %s %s"):format(h.shell_quote(preload), h.interpreter, child))
    assert.are.equal(0, code, "exit " .. tostring(code) .. ": " .. err)
    assert.are.equal("ok 40000", out)
  end)

  it("lets opts.types force a column's type", function()
    local ds = assert(cpf.load(h.fixture "codes_and_inference.csv", { types = { effectif = "string" } }))
    assert.are.equal("string", ds:column("effectif").type)
    assert.are.equal("-3", ds:get(2, "effectif"))
  end)
end)

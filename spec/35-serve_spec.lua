-- cpf serve with the real programs: Debian's nginx and its Lua module on 127.0.0.1 and a free
-- port, curl as the client, headless Chromium for the dashboard. Answers equal the command
-- line's bytes; hostile requests get JSON 4xx and leave error.log empty; a replaced snapshot is
-- served without a failed request; the workers share the snapshot's pages. Run under Lua 5.4.
local h = require "spec.helpers"
local gen = require "cpf.gen"

local q = h.shell_quote

local function sh(command)
  local out, err, code = h.run(command)
  assert(code == 0, command .. "\nexit " .. tostring(code) .. ":\n" .. out .. err)
  return out
end

local function cli(args)
  local out, err, code = h.run("lua5.4 bin/cpf " .. args)
  assert(code == 0, args .. ": " .. err)
  return out
end

-- curl arguments for a query: each parameter url-encoded
local function curl_params(params)
  local t = {}
  for _, p in ipairs(params) do t[#t + 1] = "--data-urlencode " .. q(p[1] .. "=" .. p[2]) end
  return table.concat(t, " ")
end

-- the same question on the command line
local function cli_args(params)
  local t = {}
  for _, p in ipairs(params) do t[#t + 1] = "--" .. p[1] .. (p[2] == true and "" or "=" .. q(p[2])) end
  return table.concat(t, " ")
end

if _VERSION == "Lua 5.4" and not jit then
  describe("cpf serve #no_asan", function()
    local tmp, snap, base, pid, prefix, rows, ref_csv

    local function get(path, params, extra)
      local body = h.tmpname(".body")
      local out = sh(("curl -s -G -o %s -w '%%{http_code} %%{content_type}' %s %s %s"):format(
        q(body), extra or "", curl_params(params or {}), q(base .. path)))
      local status, ctype = out:match("^(%d+) (.*)$")
      local f = io.open(body, "rb") -- no file when there is no body (HEAD, 304)
      local text = f and f:read("*a") or ""
      if f then f:close() end
      return tonumber(status), text, ctype
    end

    lazy_setup(function()
      tmp = h.tmpname("-serve")
      sh("mkdir -p " .. q(tmp))
      local csv = tmp .. "/data.csv"
      rows = 50000
      assert(gen.write(csv, rows, { seed = 31 }))
      snap = tmp .. "/served.cpfsnap"
      cli(("convert %s %s"):format(q(csv), q(snap)))
      -- a reference table requests join by name (--ref pop=...): illustrative figures
      local lines = { "region_lieu_formation;habitants" }
      local d = assert(require("cpf").load(csv, { columns = { "region_lieu_formation" } }))
      for i, v in ipairs(d:distinct "region_lieu_formation") do
        if v.value then lines[#lines + 1] = v.value .. ";" .. i * 100000 end
      end
      d:close()
      ref_csv = tmp .. "/population.csv"
      local f = assert(io.open(ref_csv, "wb"))
      f:write(table.concat(lines, "\n") .. "\n")
      f:close()
      sh("make -s LUA=luajit")
      prefix = tmp .. "/prefix"
      -- a free port: the first that nothing answers on, from a pseudo-random start
      local port = 20000 + (os.time() % 20000)
      for _ = 1, 50 do
        local _, _, code = h.run(("curl -s -o /dev/null --max-time 1 http://127.0.0.1:%d/"):format(port))
        if code == 7 then break end -- connection refused: free
        port = port + 1
      end
      base = ("http://127.0.0.1:%d"):format(port)
      -- as root, nginx's workers run as nobody, who may not read a private checkout: --user
      local user = sh("id -u"):match("^0\n") and " --user root" or ""
      pid = sh(("lua5.4 bin/cpf serve %s --port %d --workers 2 --prefix %s --check-every 0.2%s --ref pop=%s "
        .. "--cors https://tableau.example >%s 2>&1 & echo $!"):format(q(snap), port, q(prefix), user, q(ref_csv),
        q(tmp .. "/serve.log")))
        :match("%d+")
      for _ = 1, 100 do
        local _, _, code = h.run("curl -s -o /dev/null " .. q(base .. "/health"))
        if code == 0 then break end
        os.execute("sleep 0.1")
      end
    end)

    lazy_teardown(function()
      if pid then os.execute("kill " .. pid .. " 2>/dev/null; sleep 0.3") end
      if tmp then os.execute("rm -rf " .. q(tmp)) end
      h.cleanup()
    end)

    it("runs nginx as its own process: the pid given is the master's", function()
      local status, body, ctype = get("/health")
      assert.are.equal(200, status, h.read_file(tmp .. "/serve.log"))
      assert.are.equal("application/json; charset=utf-8", ctype)
      assert.is_truthy(body:find('"rows": ' .. rows, 1, true), body)
      assert.are.equal(pid, h.read_file(prefix .. "/logs/nginx.pid"):match("%d+"))
      local conf = h.read_file(prefix .. "/conf/nginx.conf")
      assert.is_truthy(conf:find("listen 127.0.0.1:", 1, true), "binds 127.0.0.1 by default")
    end)

    it("answers 10 queries in 4 formats with the command line's bytes", function()
      local queries = {
        { { "by", "annee" }, { "measure", "dossiers,montant" } },
        { { "by", "region_lieu_formation" }, { "measure", "dossiers,prix_moyen,taux_annulation" },
          { "sort", "-dossiers" } },
        { { "where", "annee=2024" }, { "where", "region_lieu_formation=Provence-Alpes-Côte d'Azur" },
          { "by", "departement_lieu_formation" } },
        { { "where", "statut_dossier^=Clos" }, { "by", "famille,annee" }, { "measure", "lignes,montant" } },
        { { "where", "montant_engage>1000" }, { "by", "type_referentiel" },
          { "measure", "count,mean:montant_engage" } },
        { { "where", "code_rncp~^3" }, { "by", "mois" }, { "limit", "5" }, { "sort", "mois" } },
        { { "by", "libelle_formacode_principal" }, { "measure", "montant" }, { "sort", "-montant" },
          { "limit", "10" } },
        { { "measure", "dossiers,montant,prix_moyen,duree_moyenne" } },
        { { "by", "modalite_presence" }, { "measure", "share_opco,part_opco" } },
        { { "where", "date_validation>=2023-06" }, { "by", "annee" }, { "measure", "distinct:code_rncp" } },
      }
      local formats = { "json", "csv", "csv-fr", "markdown" }
      for i, params in ipairs(queries) do
        local format = formats[(i - 1) % #formats + 1]
        local with_format = { table.unpack(params) }
        with_format[#with_format + 1] = { "format", format }
        local status, body = get("/query", with_format)
        assert.are.equal(200, status, body)
        assert.are.equal(cli(("query %s %s"):format(q(snap), cli_args(with_format))), body, "query " .. i)
      end
      -- the same for the other formats and for describe
      for _, format in ipairs { "tsv", "html", "svg" } do
        local params = { { "by", "annee" }, { "format", format } }
        local _, body, ctype = get("/query", params)
        assert.are.equal(cli(("query %s %s"):format(q(snap), cli_args(params))), body, format)
        assert.is_truthy(ctype:find("charset=utf-8", 1, true), ctype)
      end
    end)

    it("describes the snapshot once, on a thread: 503 with Retry-After until it is ready, then the CLI's bytes",
      function()
        -- a new snapshot swapped in: each worker starts describing it, and answers meanwhile
        local swapped = tmp .. "/swapped.cpfsnap"
        cli(("convert %s %s"):format(q(tmp .. "/data.csv"), q(swapped)))
        sh(("mv %s %s && sleep 0.3"):format(q(swapped), q(snap))) -- the watch checks every 0.2 s
        local waiting, ready = 0, {}
        for _ = 1, 300 do
          local headers = h.tmpname(".headers")
          local status, body = get("/describe", { { "format", "csv" } }, "-D " .. q(headers))
          local head = h.read_file(headers)
          if status == 503 then
            waiting = waiting + 1
            assert.is_truthy(head:find("\r\nRetry%-After: 2\r\n"), head)
            assert.is_truthy(body:match('^{"error": "the description of this snapshot is being computed %(%d+ of 37 '
              .. 'columns done%): try again in a moment"}\n$'), body)
          else
            assert.are.equal(200, status, body)
            ready[#ready + 1] = body
            if #ready == 3 then break end
          end
          os.execute("sleep 0.05")
        end
        assert.are.equal(3, #ready, "the new snapshot's description was never ready")
        local expected = cli("describe " .. q(snap) .. " --format csv")
        for _, body in ipairs(ready) do assert.are.equal(expected, body) end
        local status, json_text = get("/describe", { { "format", "json" } })
        assert.are.equal(200, status)
        assert.are.equal(cli("describe " .. q(snap) .. " --format json"), json_text)
        print(("# /describe answered 503 %d time(s) while the new snapshot was described"):format(waiting))
      end)

    it("answers having, per, change, cumsum, rank and a declared join with the command line's bytes", function()
      local queries = {
        { { "by", "region_lieu_formation,annee" }, { "having", "dossiers>=3000" }, { "format", "csv" } },
        { { "by", "region_lieu_formation,code_rncp" }, { "sort", "region_lieu_formation,-montant" },
          { "limit", "2" }, { "per", "region_lieu_formation" }, { "format", "json" } },
        { { "by", "region_lieu_formation,annee" }, { "measure", "montant" }, { "change", "montant:annee" },
          { "format", "csv" } },
        { { "by", "mois" }, { "measure", "dossiers" }, { "cumsum", "dossiers:mois" }, { "rank", "dossiers" },
          { "format", "tsv" } },
      }
      for i, params in ipairs(queries) do
        local status, body = get("/query", params)
        assert.are.equal(200, status, body)
        assert.are.equal(cli(("query %s %s"):format(q(snap), cli_args(params))), body, "query " .. i)
      end
      local status, body = get("/query", { { "by", "region_lieu_formation" }, { "join", "pop:region_lieu_formation" },
                                           { "format", "csv" } })
      assert.are.equal(200, status, body)
      assert.are.equal(cli(("query %s --by region_lieu_formation --join %s --format csv")
        :format(q(snap), q(ref_csv .. ":region_lieu_formation"))), body)
      assert.is_truthy(body:find("habitants", 1, true), body)
      -- a request never names a file
      status, body = get("/query", { { "by", "region_lieu_formation" },
                                     { "join", ref_csv .. ":region_lieu_formation" } })
      assert.are.equal(400, status)
      assert.are.equal(('{"error": "join: no reference named \'%s\' (this server declares: pop)"}\n')
        :format(ref_csv:sub(1, 40)), body)
    end)

    it("takes every request field of the request table with the command line's bytes, and no other field", function()
      local request = require "cpf.request"
      local examples = { join = "pop:region_lieu_formation", bar = "dossiers", title = "Titre" }
      local companions = { title = { { "format", "html" } }, bar = { { "format", "table" } },
                           per = { { "limit", "2" } }, others = { { "limit", "2" } },
                           locale = { { "format", "markdown" } },
                           opt = { { "format", "markdown" } } }
      for _, f in ipairs(request.fields_of("http")) do
        local value = examples[f.name] or f.example
        assert.is_string(value, f.name)
        local key = f.name == "join" and "region_lieu_formation" or "annee"
        local params = { { f.name, value } }
        if f.name ~= "by" then params[#params + 1] = { "by", key } end
        for _, c in ipairs(companions[f.name] or {}) do params[#params + 1] = c end
        local status, body = get("/query", params)
        assert.are.equal(200, status, f.name .. ": " .. body)
        local cli_params = {}
        for i, p in ipairs(params) do cli_params[i] = p end
        if f.name == "join" then cli_params[1] = { "join", ref_csv .. ":region_lieu_formation" } end
        if f.shape == "flag" then cli_params[1] = { f.name, true } end -- --totals, no value
        local has_format = false
        for _, p in ipairs(params) do has_format = has_format or p[1] == "format" end
        if not has_format then cli_params[#cli_params + 1] = { "format", "json" } end
        -- an HTTP answer is UTF-8: bars are drawn with blocks, as on a UTF-8 terminal
        local env = f.name == "bar" and "LC_ALL=C.UTF-8 " or ""
        local expected = sh(("%slua5.4 bin/cpf query %s %s"):format(env, q(snap), cli_args(cli_params)))
        assert.are.equal(expected, body, f.name)
      end
      -- the load fields and the command line's own are no parameters: a request never says how to
      -- read a file, nor where to write
      for _, f in ipairs(request.fields) do
        if not request.takes("http", f) then
          local status, body = get("/query", { { f.name, "1" } })
          assert.are.equal(400, status, f.name)
          assert.is_truthy(body:find(('{"error": "unknown parameter \'%s\' ('):format(f.name), 1, true), body)
        end
      end
    end)

    it("is a library in a hand-written nginx.conf: two servers of new(opts) under their own prefixes", function()
      local dir = tmp .. "/library"
      sh("mkdir -p " .. q(dir .. "/logs") .. " " .. q(dir .. "/conf"))
      local port = tonumber(base:match(":(%d+)$")) + 1
      for _ = 1, 50 do
        local _, _, code = h.run(("curl -s -o /dev/null --max-time 1 http://127.0.0.1:%d/"):format(port))
        if code == 7 then break end
        port = port + 1
      end
      h.write_bytes(dir .. "/conf/servers.lua", "return {}\n")
      -- b serves a copy of the file, as another machine behind a proxy would
      local copy = dir .. "/copy.cpfsnap"
      sh(("cp %s %s"):format(q(snap), q(copy)))
      local root = h.root or "."
      local as_root = sh("id -u"):match("^0\n") and "user root;" or ""
      h.write_bytes(dir .. "/conf/nginx.conf", table.concat({
        'load_module "/usr/lib/nginx/modules/ndk_http_module.so";',
        'load_module "/usr/lib/nginx/modules/ngx_http_lua_module.so";', as_root,
        "worker_processes 1;", ('pid "%s/logs/nginx.pid";'):format(dir),
        ('error_log "%s/logs/error.log" warn;'):format(dir), "events { worker_connections 64; }", "http {",
        ('  access_log off; client_body_temp_path "%s/logs/body"; proxy_temp_path "%s/logs/proxy";'):format(dir, dir),
        ('  fastcgi_temp_path "%s/logs/f"; uwsgi_temp_path "%s/logs/u"; scgi_temp_path "%s/logs/s";')
          :format(dir, dir, dir),
        ('  lua_package_path "%s/conf/?.lua;%s/lua/?.lua;%s/lua/?/init.lua;;";'):format(dir, root, root),
        ('  lua_package_cpath "%s/build/luajit/?.so;;";'):format(root),
        "  init_worker_by_lua_block {",
        "    local servers, resty = require 'servers', require 'cpf.resty'",
        ("    servers.a = assert(resty.new { snapshot = %q, prefix = '/a', max_rows = 3 })"):format(snap),
        ("    servers.b = assert(resty.new { snapshot = %q, prefix = '/b/cpf' })"):format(copy),
        "    for _, s in pairs(servers) do assert(s:open()) assert(s:watch()) end",
        "  }",
        ("  server { listen 127.0.0.1:%d;"):format(port),
        "    location /a { content_by_lua_block { require('servers').a:handle() } }",
        "    location /b/cpf { content_by_lua_block { require('servers').b:handle() } }",
        "  }", "}", "" }, "\n"))
      local conf = dir .. "/conf/nginx.conf"
      sh(("nginx -p %s -c %s -e %s"):format(q(dir), q(conf), q(dir .. "/logs/error.log")))
      finally(function() os.execute(("nginx -p %s -c %s -s stop 2>/dev/null"):format(q(dir), q(conf))) end)
      local lib = ("http://127.0.0.1:%d"):format(port)
      local function at(url)
        local body = h.tmpname(".body")
        local code
        for _ = 1, 50 do
          code = sh(("curl -s -o %s -w '%%{http_code}' %s"):format(q(body), q(url)))
          if code ~= "000" then break end
          os.execute("sleep 0.1")
        end
        return code, h.read_file(body)
      end
      local code, body = at(lib .. "/b/cpf/query?by=annee&format=csv")
      assert.are.equal("200", code, body)
      assert.are.equal(cli(("query %s --by annee --format csv"):format(q(snap))), body)
      code, body = at(lib .. "/a/query?by=annee")
      assert.are.equal("400", code, body) -- this server's own max_rows
      assert.is_truthy(body:find("more than this server's limit of 3", 1, true), body)
      code = at(lib .. "/a/health")
      assert.are.equal("200", code)
      code, body = at(lib .. "/a/nope")
      assert.are.equal("404", code)
      assert.is_truthy(body:find("(/a/query, /a/describe, /a/health, /a/)", 1, true), body)
      -- a copy of the snapshot has the ETag of the original: any machine answers If-None-Match
      local function etag(url) return sh("curl -s -D - -o /dev/null " .. q(url)):match('ETag: ("[^"]+")') end
      assert.is_truthy(etag(base .. "/health"))
      assert.are.equal(etag(base .. "/health"), etag(lib .. "/b/cpf/health"))
    end)

    it("sends nosniff and an ETag from the snapshot, and 304 when it matches", function()
      local headers = sh("curl -s -D - -o /dev/null " .. q(base .. "/query?by=annee"))
      assert.is_truthy(headers:find("X-Content-Type-Options: nosniff", 1, true), headers)
      local etag = headers:match('ETag: ("[^"]+")')
      assert.is_truthy(etag, headers)
      local status = get("/query", { { "by", "annee" } }, "-H " .. q("If-None-Match: " .. etag))
      assert.are.equal(304, status)
      assert.are.equal(200, (get("/query", { { "by", "annee" } }, "-H 'If-None-Match: \"other\"'")))
      assert.are.equal(200, (get("/query", { { "by", "annee" } }, "-I")))
      -- a wrong request is said so, whatever its If-None-Match
      assert.are.equal(400, (get("/query", { { "by", "nope" } }, "-H " .. q("If-None-Match: " .. etag))))
    end)

    it("answers 2 000 requests from 8 concurrent clients, all 200 and right", function()
      local urls = { "/query?by=annee", "/query?by=famille&measure=dossiers,montant&format=csv",
                     "/query?by=region_lieu_formation&format=markdown", "/health" }
      local expected = {}
      for i, u in ipairs(urls) do
        local status, body = get(u)
        assert.are.equal(200, status)
        expected[i] = body
      end
      for c = 1, 8 do
        local config = {}
        for r = 1, 250 do
          local k = (c + r) % #urls + 1
          config[#config + 1] = ('url = "%s%s"\noutput = "%s/c%d-%d-%d"'):format(base, urls[k], tmp, c, r, k)
        end
        h.write_bytes(("%s/client%d.cfg"):format(tmp, c), table.concat(config, "\n") .. "\n")
      end
      local script = {}
      for c = 1, 8 do
        script[#script + 1] = ("curl -s -w '%%{http_code}\\n' -K %s/client%d.cfg > %s/codes%d &")
          :format(q(tmp), c, q(tmp), c)
      end
      script[#script + 1] = "wait"
      sh(table.concat(script, "\n"))
      local ok = 0
      for c = 1, 8 do
        for code in h.read_file(("%s/codes%d"):format(tmp, c)):gmatch("%d+") do
          assert.are.equal("200", code)
          ok = ok + 1
        end
        for r = 1, 250 do
          local k = (c + r) % #urls + 1
          assert.are.equal(expected[k], h.read_file(("%s/c%d-%d-%d"):format(tmp, c, r, k)))
        end
      end
      assert.are.equal(2000, ok)
    end)

    it("refuses hostile requests with a JSON 4xx, and logs no error", function()
      local hostile = {
        { "/query?by=nope", 400 }, { "/query?measure=nope", 400 }, { "/query?measure=sum:nope", 400 },
        { "/query?format=lua", 400 }, { "/query?format=../../etc/passwd", 400 }, { "/query?locale=de", 400 },
        { "/query?sep=,", 400 }, { "/query?threads=2", 400 }, { "/query?output=/tmp/x", 400 },
        { "/query?cache=1", 400 }, { "/query?opts=x", 400 }, { "/query?bar=dossiers&format=csv", 400 },
        { "/query?limit=-1", 400 }, { "/query?limit=abc", 400 }, { "/query?limit=1.5", 400 },
        { "/query?limit=1e9999", 400 }, { "/query?by=annee&by=mois", 400 }, { "/query?format=csv&format=json", 400 },
        { "/query?where", 400 }, { "/query?where=x", 400 }, { "/query?where==", 400 },
        { "/query?where=annee%3Eabc", 400 }, { "/query?where=statut_dossier~(", 400 },
        { "/query?where=code_rncp~" .. ("a"):rep(300), 400 }, { "/query?by=" .. ("x"):rep(5000), 400 },
        { "/query?sort=nope&by=annee", 400 }, { "/query?opt=x=1", 400 }, { "/query?plugin=/tmp/x.lua", 400 },
        { "/query?by=code_rncp,mois", 400 }, { "/query?where=nb_dossiers=1%00", 400 },
        { "/query?by=%FF%FE", 400 }, { "/query?" .. ("a=1&"):rep(120), 400 },
        { "/describe?by=annee", 400 }, { "/describe?format=xml", 400 }, { "/health?x=1", 400 },
        { "/etc/passwd", 404 }, { "/query/../../etc/passwd", 404 }, { "/query.lua", 404 }, { "/admin", 404 },
        { "/query?where=libelle_formacode_principal~.-.-.-.-", 400 }, { "/query?where=code_rncp~(%d)%1", 400 },
        { "/query?where=code_rncp~%25b()", 400 }, { "/query?where=code_rncp~[", 400 },
        { "/query?where=libelle_formacode_principal~%5E.%3F.%3F.%3F.%3F.%3F.%3F.%3F.%3F.%3F.%3F.%3F.%3F$", 400 },
        { "/query?where=code_rncp~a%3Fb%2A", 400 },
        { "/%2e%2e/%2e%2e/etc/passwd", 400 }, { "/query?by=" .. ("y"):rep(70000), 414 },
        { "/.cpf-400", 404 }, { "/.cpf-414", 404 }, -- nginx's internal locations: no way in
      }
      for _, t in ipairs(hostile) do
        local url = base .. t[1]
        local body_file = h.tmpname(".body")
        local out = sh(("curl -s -g -o %s -w '%%{http_code} %%{content_type}' %s"):format(q(body_file), q(url)))
        local body = h.read_file(body_file)
        assert.are.equal(t[2] .. " application/json; charset=utf-8", out, t[1]:sub(1, 80) .. ": " .. body)
        local doc = h.json_decode(body)
        assert.is_truthy(doc.object and type(doc.object.error) == "string", body)
        assert.is_nil(body:find(".lua:", 1, true), "no place in cpf's source: " .. body)
      end
      for _, method in ipairs { "POST", "PUT", "DELETE", "PATCH", "TRACE" } do
        local out = sh(("curl -s -o /dev/null -w '%%{http_code} %%{content_type}' -X %s %s")
          :format(method, q(base .. "/query?by=annee")))
        assert.are.equal("405 application/json; charset=utf-8", out, method) -- TRACE: nginx's own, in JSON
      end
      assert.are.equal("", h.read_file(prefix .. "/logs/error.log"))
    end)

    it("maps the snapshot's pages from the page cache in every worker, never copied", function()
      local workers = {}
      for w in sh("pgrep -P " .. pid):gmatch("%d+") do workers[#workers + 1] = w end
      assert.are.equal(2, #workers) -- and nothing else: no zombie left by cpf serve before its exec
      for _, w in ipairs(workers) do
        local smaps = h.read_file("/proc/" .. w .. "/smaps")
        local block = smaps:match(snap:gsub("%p", "%%%0") .. "\n(.-)\n%x+%-%x+ ")
          or smaps:match(snap:gsub("%p", "%%%0") .. "\n(.*)$")
        assert.is_truthy(block, "worker " .. w .. " has no mapping of the snapshot")
        local rss = tonumber(block:match("\nRss:%s+(%d+)") or block:match("^Rss:%s+(%d+)"))
        -- the page cache's pages, never a private copy: no anonymous page. (Each
        -- worker maps the pages of the columns it has read: a column is checked, and its pages
        -- touched, on first use, so the two need not map the same ones.)
        local anonymous = tonumber(block:match("\nAnonymous:%s+(%d+)"))
        assert.is_true(rss > 0 and anonymous == 0, ("worker %s: Rss %d kB, anonymous %d kB"):format(w, rss, anonymous))
      end
    end)

    it("serves a replaced snapshot without a failed request, then the new totals", function()
      local other = tmp .. "/other.csv"
      assert(gen.write(other, 30000, { seed = 32 }))
      local loop = {}
      for r = 1, 300 do
        loop[#loop + 1] = ('url = "%s/query?measure=lignes&format=csv"\noutput = "%s/swap-%d"'):format(base, tmp, r)
      end
      h.write_bytes(tmp .. "/swap.cfg", table.concat(loop, "\n") .. "\n")
      sh(("(curl -s -w '%%{http_code}\\n' -K %s > %s) & sleep 0.2; lua5.4 bin/cpf convert %s %s >/dev/null 2>&1; wait")
        :format(q(tmp .. "/swap.cfg"), q(tmp .. "/swap-codes"), q(other), q(snap)))
      local n = 0
      for code in h.read_file(tmp .. "/swap-codes"):gmatch("%d+") do
        assert.are.equal("200", code)
        n = n + 1
      end
      assert.are.equal(300, n)
      for r = 1, 300 do
        local body = h.read_file(tmp .. "/swap-" .. r)
        assert.is_truthy(body == "lignes\n" .. rows .. "\n" or body == "lignes\n30000\n", body)
      end
      os.execute("sleep 0.6") -- a check of every worker
      for _ = 1, 10 do
        local _, body = get("/query", { { "measure", "lignes" }, { "format", "csv" } })
        assert.are.equal("lignes\n30000\n", body)
      end
      assert.are.equal("", h.read_file(prefix .. "/logs/error.log"))
    end)

    it("says what to install when nginx or its Lua module is missing, and refuses bad options", function()
      local out, err, code = h.run("lua5.4 bin/cpf serve " .. q(snap) .. " --nginx /nonexistent/nginx")
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.are.equal("cpf: cpf serve needs nginx and its Lua module (/nonexistent/nginx not found): "
        .. "apt-get install nginx libnginx-mod-http-lua\n", err)
      for args, msg in pairs {
        ["--port 0"] = "--port must be from 1 to 65535",
        ["--host 'a;b'"] = "--host must be an address or a name, got 'a;b'",
        ["--workers 0"] = "--workers must be from 1 to 64",
        ["--user 'x y'"] = "--user must be a user name, got 'x y'",
        ["--prefix '/tmp/a\"b'"] = "--prefix: a path for nginx cannot hold quotes, backslashes, ';', '{', '}', '$' "
          .. "or control characters: '/tmp/a\"b'",
      } do
        out, err, code = h.run("lua5.4 bin/cpf serve " .. q(snap) .. " " .. args)
        assert.are.equal("", out)
        assert.are.equal(2, code, args)
        assert.are.equal("cpf: " .. msg .. "\ntry 'cpf serve --help'\n", err)
      end
    end)

    it("compresses text answers over 1 kB for clients that ask, and compares ETags weakly", function()
      local params = "?by=code_rncp&measure=dossiers&format=csv"
      local headers = sh("curl -s -D - -o /dev/null -H 'Accept-Encoding: gzip' " .. q(base .. "/query" .. params))
      assert.is_truthy(headers:find("Content-Encoding: gzip", 1, true), headers)
      local weak = headers:match('ETag: (W/"[^"]+")')
      assert.is_truthy(weak, headers)
      -- the weak tag, alone or in a list, names the same answer
      for _, value in ipairs { weak, '"x", ' .. weak, weak:sub(3), "*" } do
        local status = get("/query", { { "by", "code_rncp" }, { "measure", "dossiers" }, { "format", "csv" } },
          "-H " .. q("If-None-Match: " .. value))
        assert.are.equal(304, status, value)
      end
      -- the same bytes once decompressed; a small answer goes out plain
      local plain = sh("curl -s " .. q(base .. "/query" .. params))
      assert.are.equal(plain, sh("curl -s --compressed " .. q(base .. "/query" .. params)))
      assert.is_nil(sh("curl -s -D - -o /dev/null -H 'Accept-Encoding: gzip' " .. q(base .. "/health"))
        :find("Content-Encoding", 1, true))
    end)

    it("sends a large answer in pieces as it is written, with the command line's bytes", function()
      local params = { { "by", "mois,departement_lieu_formation" }, { "measure", "dossiers,montant" },
                       { "format", "csv" } }
      local status, body = get("/query", params)
      assert.are.equal(200, status, body)
      local lines = select(2, body:gsub("\n", "")) - 1
      assert.is_true(lines > 5000 and lines <= 10000, lines .. " rows: between the pieces' threshold and max_rows")
      assert.are.equal(cli(("query %s --by mois,departement_lieu_formation --measure dossiers,montant --format csv")
        :format(q(snap))), body)
      local headers = sh("curl -s -G -D - -o /dev/null " .. curl_params(params) .. " " .. q(base .. "/query"))
      assert.is_truthy(headers:find("Transfer-Encoding: chunked", 1, true), headers)
      assert.is_nil(headers:find("Content-Length", 1, true), headers)
    end)

    it("releases the dataset of an answer cut midway: a replaced snapshot is closed, never kept mapped", function()
      -- clients that go away while a large answer is being sent (head closes the pipe early)
      for _ = 1, 4 do
        sh("curl -s -N " .. q(base .. "/query?by=mois,departement_lieu_formation&measure=dossiers,montant&format=csv")
          .. " | head -c 100 > /dev/null")
      end
      -- the same snapshot renamed over itself, as cpf convert replaces one
      sh(("cp %s %s.new && mv %s.new %s"):format(q(snap), q(snap), q(snap), q(snap)))
      for _ = 1, 20 do
        get("/health")
        os.execute("sleep 0.1")
      end
      for w in sh("pgrep -P " .. pid):gmatch("%d+") do
        local maps = h.read_file("/proc/" .. w .. "/maps")
        assert.is_nil(maps:find(snap .. " (deleted)", 1, true), "worker " .. w .. " still maps the replaced file")
      end
    end)

    it("answers 304 before running the query, once the request's columns are known", function()
      local etag = sh("curl -s -D - -o /dev/null " .. q(base .. "/health")):match('ETag: ("[^"]+")')
      -- a value the run would refuse: without If-None-Match a 400, with it a 304 (no run)
      local params = { { "by", "annee" }, { "where", "nb_dossiers=abc" } }
      local status, body = get("/query", params)
      assert.are.equal(400, status, body)
      assert.are.equal(304, (get("/query", params, "-H " .. q("If-None-Match: " .. etag))))
    end)

    it("lets a page of the --cors origin read its answers: preflight and headers", function()
      local headers = sh("curl -s -D - -o /dev/null -X OPTIONS -H 'Origin: https://tableau.example' "
        .. "-H 'Access-Control-Request-Method: GET' " .. q(base .. "/query?by=annee"))
      assert.is_truthy(headers:match("^HTTP/1.1 204"), headers)
      assert.is_truthy(headers:find("Access-Control-Allow-Origin: https://tableau.example", 1, true), headers)
      assert.is_truthy(headers:find("Access-Control-Allow-Methods: GET, HEAD, OPTIONS", 1, true), headers)
      headers = sh("curl -s -D - -o /dev/null " .. q(base .. "/query?by=annee"))
      assert.is_truthy(headers:find("Access-Control-Allow-Origin: https://tableau.example", 1, true), headers)
      assert.is_truthy(headers:find("Access-Control-Expose-Headers: ETag, X-Cpf-Note", 1, true), headers)
      -- errors too: a page can read why
      headers = sh("curl -s -D - -o /dev/null " .. q(base .. "/query?by=nope"))
      assert.is_truthy(headers:find("Access-Control-Allow-Origin: https://tableau.example", 1, true), headers)
      local _, err, code = h.run("lua5.4 bin/cpf serve " .. q(snap) .. " --cors 'javascript:x'")
      assert.are.equal(2, code)
      assert.is_truthy(err:find("--cors must be an origin (https://host[:port]) or *, got 'javascript:x'", 1, true))
    end)

    it("sends the command line's notes of partial periods as X-Cpf-Note headers", function()
      local headers = h.tmpname(".headers")
      local function notes_of(params)
        sh(("curl -s -G -D %s -o /dev/null %s %s"):format(q(headers), curl_params(params), q(base .. "/query")))
        local notes = {}
        for line in h.read_file(headers):gmatch("[^\r\n]+") do
          notes[#notes + 1] = line:match("^[Xx]%-[Cc]pf%-[Nn]ote: (.*)$")
        end
        return notes
      end
      local _, err = h.run("lua5.4 bin/cpf query " .. q(snap) .. " --by annee --measure dossiers "
        .. "--change dossiers:annee --format csv")
      local expected = {}
      for line in err:gmatch("[^\n]+") do expected[#expected + 1] = (line:gsub("^cpf: ", "")) end
      assert.is_true(#expected >= 1)
      assert.are.same(expected, notes_of { { "by", "annee" }, { "measure", "dossiers" },
                                           { "change", "dossiers:annee" }, { "format", "csv" } })
      -- no change, no note
      assert.are.same({}, notes_of { { "by", "annee" }, { "measure", "dossiers" }, { "format", "csv" } })
      -- a --where value no row has: the command line's note (its bytes past ASCII %-escaped)
      _, err = h.run("lua5.4 bin/cpf query " .. q(snap) .. " --by annee --where statut_dossier=Valide --format csv")
      local note = err:gsub("^cpf: ", ""):gsub("\n$", ""):gsub("[^\32-\126]", function(c)
        return ("%%%02X"):format(c:byte())
      end)
      assert.are.same({ note },
        notes_of { { "by", "annee" }, { "where", "statut_dossier=Valide" }, { "format", "csv" } })
    end)

    it("started by root, stops before serving when the workers' user cannot read the data", function()
      local uid = sh("id -u"):match("%d+")
      if uid ~= "0" then pending("runs as root only") return end
      -- a snapshot in a folder only root can enter, as in root's home folder
      local hidden = h.tmpname("-hidden")
      os.execute("mkdir -m 700 " .. q(hidden))
      local inside = hidden .. "/x.cpfsnap"
      assert(os.execute(("cp %s %s"):format(q(snap), q(inside))))
      local out, err, code = h.run("lua5.4 bin/cpf serve " .. q(inside) .. " --port 1")
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.are.equal(("cpf: nginx's workers run as 'nobody', who cannot read %s (DATA): make it and its "
        .. "folders readable by 'nobody', move it, or give --user with a user who can read it\n"):format(inside), err)
      out, err, code = h.run("lua5.4 bin/cpf serve " .. q(inside) .. " --port 1 --user cpf-no-such-user")
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.are.equal("cpf: nginx's workers would run as 'cpf-no-such-user', which is not a user here: "
        .. "give --user NAME\n", err)
      os.execute("rm -rf " .. q(hidden))
    end)

    it("serves a dashboard page that headless Chromium renders with its charts", function()
      local status, page, ctype = get("/")
      assert.are.equal(200, status)
      assert.are.equal("text/html; charset=utf-8", ctype)
      assert.is_nil(page:find("<script", 1, true))
      assert.is_nil(page:find("http://", 1, true) and page:find('src="http', 1, true))
      local dom = sh(("chromium --headless --no-sandbox --disable-gpu --dump-dom %s 2>/dev/null")
        :format(q(base .. "/")))
      local charts, tables = 0, 0
      for _ in dom:gmatch("<svg ") do charts = charts + 1 end
      for _ in dom:gmatch("<table") do tables = tables + 1 end
      assert.are.equal(4, charts, dom:sub(1, 400))
      assert.are.equal(4, tables)
      assert.is_truthy(dom:find("Qui finance", 1, true))
    end)
  end)
else
  pending("cpf serve (run under Lua 5.4)")
end

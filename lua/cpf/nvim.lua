-- cpf.nvim — the Neovim front end behind :Cpf (plugin/cpf.lua registers the command; :help cpf).
-- CSV files load in the background (cpf.load_async, polled from a timer, progress in the message
-- area) so the editor stays responsive; queries use the request language (cpf.request: its
-- request fields are :Cpf query's options and completion), so :Cpf query gives the bytes
-- `cpf query` prints; results go to scratch buffers named cpf://...; errors are vim.notify
-- messages with cpf's own text.
local cpf = require "cpf"
local request = require "cpf.request"
local errors = require "cpf.errors"
local common = require "cpf.format.common"
local matching = require("cpf.request.complete").matching

local M = {}

-- The APIs of the running Neovim, chosen once: vim.uv and nvim_set_option_value where they
-- exist (0.10 deprecates the others), vim.loop and nvim_buf/win_set_option on 0.7 to 0.9.
local uv = vim.uv or vim.loop
local NEW_OPTIONS = vim.fn.has("nvim-0.10") == 1
local function set_buf_option(buf, name, value)
  if NEW_OPTIONS then vim.api.nvim_set_option_value(name, value, { buf = buf })
  else vim.api.nvim_buf_set_option(buf, name, value) end -- luacheck: ignore (deprecated in 0.10)
end
local function set_win_option(win, name, value)
  if NEW_OPTIONS then vim.api.nvim_set_option_value(name, value, { win = win })
  else vim.api.nvim_win_set_option(win, name, value) end -- luacheck: ignore (deprecated in 0.10)
end

local config = {
  buffer = "reuse",   -- "reuse": one cpf://KIND buffer per kind of output; "new": one per output
  format = "table",   -- the format of :Cpf query and :Cpf describe without --format
  poll_ms = 50,       -- how often a background load is polled (progress, then its answer)
  threads = nil,      -- loading threads (nil: one per core)
  focus = true,       -- a command's output window takes the cursor when it is shown at once
}

--- require("cpf.nvim").setup{ buffer = "reuse"|"new", format = "table"|"markdown", poll_ms = 50,
--- threads = N, focus = true|false }
function M.setup(opts)
  for k, v in pairs(opts or {}) do
    if config[k] == nil and k ~= "threads" then
      error(("cpf.nvim.setup: unknown option '%s'"):format(tostring(k)), 2)
    end
    config[k] = v
  end
  if config.buffer ~= "reuse" and config.buffer ~= "new" then
    error("cpf.nvim.setup: option 'buffer' must be \"reuse\" or \"new\"", 2)
  end
  if config.format ~= "table" and config.format ~= "markdown" then
    error("cpf.nvim.setup: option 'format' must be \"table\" or \"markdown\"", 2)
  end
  if type(config.poll_ms) ~= "number" or config.poll_ms < 1 or config.poll_ms ~= math.floor(config.poll_ms) then
    error("cpf.nvim.setup: option 'poll_ms' must be a whole number of milliseconds, at least 1", 2)
  end
  if config.threads ~= nil and (type(config.threads) ~= "number" or config.threads < 1 or config.threads > 64) then
    error("cpf.nvim.setup: option 'threads' must be a whole number from 1 to 64", 2)
  end
  if type(config.focus) ~= "boolean" then error("cpf.nvim.setup: option 'focus' must be true or false", 2) end
end

-- What :Cpf has open: the last opened dataset, the running load, the last result.
M.state = { path = nil, dataset = nil, job = nil, result = nil, buffers = {}, outputs = 0 }
local state = M.state

local ERROR, WARN, INFO = vim.log.levels.ERROR, vim.log.levels.WARN, vim.log.levels.INFO

local function notify(msg, level) vim.notify(errors.message(msg), level or ERROR) end

-- A path as typed: only a leading ~ is the home directory (vim.fn.expand would also read %, #,
-- $VARS, wildcards and `commands` in it)
local function path_of(word)
  local home = os.getenv("HOME")
  if home and (word == "~" or word:sub(1, 2) == "~/") then return home .. word:sub(2) end
  return word
end

-- ---------------------------------------------------------------- words of a command line

--- Splits a command line as a shell would: blanks separate words; '...' is literal; "..." keeps
--- its blanks, \" and \\ inside it are a quote and a backslash; outside quotes \x is x.
function M.split(line)
  local words, word, i, n = {}, nil, 1, #line
  while i <= n do
    local c = line:sub(i, i)
    if c:match("%s") then
      if word then words[#words + 1] = word word = nil end
    elseif c == "'" then
      local j = line:find("'", i + 1, true)
      if not j then return nil, "unterminated ' in the command line" end
      word = (word or "") .. line:sub(i + 1, j - 1)
      i = j
    elseif c == '"' then
      local parts, j = {}, i + 1
      while true do
        local d = line:sub(j, j)
        if d == "" then return nil, 'unterminated " in the command line' end
        if d == '"' then break end
        if d == "\\" and (line:sub(j + 1, j + 1) == '"' or line:sub(j + 1, j + 1) == "\\") then
          j = j + 1
          d = line:sub(j, j)
        end
        parts[#parts + 1] = d
        j = j + 1
      end
      word = (word or "") .. table.concat(parts)
      i = j
    elseif c == "\\" and i < n then
      word = (word or "") .. line:sub(i + 1, i + 1)
      i = i + 1
    else
      word = (word or "") .. c
    end
    i = i + 1
  end
  if word then words[#words + 1] = word end
  return words
end

-- ---------------------------------------------------------------- output buffers

local function set_lines(buf, text)
  local lines = {}
  for line in (text:gsub("\n$", "") .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  set_buf_option(buf, "modifiable", true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  set_buf_option(buf, "modifiable", false)
  set_buf_option(buf, "modified", false)
end

-- A window below the others showing buf, opened without entering it: the cursor, the mode and
-- what the user types stay where they are.
local function open_window(buf)
  if NEW_OPTIONS then return vim.api.nvim_open_win(buf, false, { split = "below", win = -1 }) end
  local back = vim.api.nvim_get_current_win()
  vim.cmd("noautocmd botright split")
  local win = vim.api.nvim_get_current_win()
  vim.api.nvim_win_set_buf(win, buf)
  vim.cmd(("noautocmd call win_gotoid(%d)"):format(back))
  return win
end

-- Whether the user is typing: in insert, replace, command-line or terminal mode, or with keys
-- waiting (typeahead); then a window must not take the cursor.
local function typing()
  local mode = vim.api.nvim_get_mode()
  return mode.blocking or not mode.mode:match("^n") or vim.fn.getchar(1) ~= 0
end

--- Shows text in a scratch buffer cpf://KIND (reused) or cpf://KIND/N (config.buffer = "new"),
--- in a window of its own; returns the buffer. The window takes the cursor only when `focus` is
--- true and the user is not typing: the output of a load that ends in the background never
--- does (a notification says where it is).
function M.show(kind, text, format, focus)
  state.outputs = state.outputs + 1
  local buf = config.buffer == "reuse" and state.buffers[kind]
  if not (buf and vim.api.nvim_buf_is_valid(buf)) then
    buf = vim.api.nvim_create_buf(true, true)
    local name = "cpf://" .. kind
    if config.buffer == "new" then name = name .. "/" .. state.outputs end
    vim.api.nvim_buf_set_name(buf, name)
    set_buf_option(buf, "buftype", "nofile")
    set_buf_option(buf, "bufhidden", "hide")
    set_buf_option(buf, "swapfile", false)
    state.buffers[kind] = buf
  end
  set_lines(buf, text)
  set_buf_option(buf, "filetype", format == "markdown" and "markdown" or "")
  local win = vim.fn.bufwinid(buf)
  if win == -1 then win = open_window(buf) end
  set_win_option(win, "wrap", false)
  if focus and config.focus and not typing() then
    vim.api.nvim_set_current_win(win)
  elseif vim.api.nvim_get_current_win() ~= win then
    vim.notify(("cpf: %s is in the window below (cpf://%s)"):format(kind, kind), INFO)
  end
  return buf
end

-- ---------------------------------------------------------------- opening data

local function stop_timer()
  if state.timer then
    state.timer:stop()
    state.timer:close()
    state.timer = nil
  end
end

local function set_dataset(path, ds)
  if state.dataset and state.dataset ~= ds then state.dataset:close() end
  state.path, state.dataset = path, ds
end

local function loaded_message(path, ds, started)
  local took = started and ("in %.1f s"):format(uv.hrtime() / 1e9 - started) or "(snapshot)"
  vim.api.nvim_echo({ { ("cpf: %s: %d rows × %d columns %s"):format(path, #ds, #ds:columns(), took) } }, false, {})
end

--- Opens a CSV in the background (progress in the message area) or a snapshot at once, as the
--- dataset later commands use; then calls then_fn(ds) if given. Returns true when started.
function M.open(path, then_fn)
  if not path or path == "" then notify("open needs a FILE") return false end
  path = path_of(path)
  if state.job then
    notify(("a load is running (%s): :Cpf cancel first"):format(state.job.path), WARN)
    return false
  end
  local job, err = cpf.load_async(path, { threads = config.threads })
  if not job then notify(err) return false end
  local finished, ds = job:poll()
  if finished and ds then -- a snapshot, or a valid cache: at once
    set_dataset(path, ds)
    loaded_message(path, ds)
    if then_fn then then_fn(ds, true) end
    return true
  end
  state.job = job
  local started = uv.hrtime() / 1e9
  local name = vim.fn.fnamemodify(path, ":t")
  state.timer = uv.new_timer()
  state.timer:start(0, config.poll_ms, vim.schedule_wrap(function()
    if state.job ~= job then return end
    local done, a, b, c = job:poll()
    if not done then
      vim.api.nvim_echo({ { ("cpf: loading %s  %3.0f%%  %s / %s  %d rows"):format(
        name, b > 0 and 100 * a / b or 0, cpf.human_bytes(a), cpf.human_bytes(b), c) } }, false, {})
      return
    end
    stop_timer()
    state.job = nil
    if not a then notify(b, c == "cancelled" and WARN or ERROR) return end
    set_dataset(path, a)
    loaded_message(path, a, started)
    if then_fn then then_fn(a, false) end -- in the background: its output takes no cursor
  end))
  return true
end

--- :Cpf fetch DIR [--url BASE] [--retries N] [--keep N]: the current extraction into the
--- history folder DIR in the background (cpf.fetch_async: its transfers, load and writing on
--- threads of their own, polled from a timer), progress in the message area; :Cpf cancel stops
--- it (a next :Cpf fetch resumes the download).
function M.fetch(words)
  local known, short = request.options_of("nvim", nil, "fetch")
  local dirs, opts = request.read_args(words, 1, known, short)
  if not dirs then notify(opts) return end
  if #dirs ~= 1 then notify("fetch needs one DIR (a history folder)") return end
  if state.fetching then notify("a fetch is running: wait for it or :Cpf cancel", WARN) return end
  local numbers = {}
  for _, name in ipairs { "retries", "keep" } do
    if opts[name] then
      numbers[name] = request.whole_number(opts[name])
      if not numbers[name] then notify(("--%s must be a whole number, got '%s'"):format(name, opts[name])) return end
    end
  end
  local dir = path_of(dirs[1])
  local ok, job = pcall(cpf.fetch_async, { dir = dir, url = opts.url, retries = numbers.retries, keep = numbers.keep })
  if not ok then notify(errors.strip(job)) return end
  state.fetching = job
  local timer = uv.new_timer()
  local function finish()
    timer:stop()
    timer:close()
    if state.fetching == job then state.fetching = nil end
  end
  timer:start(0, 100, vim.schedule_wrap(function()
    if state.fetching ~= job then finish() return end -- cancelled
    local finished, a, b, c, d = job:poll()
    if not finished then
      local text = ("cpf: fetch %s: %s"):format(vim.fn.fnamemodify(dir, ":t"), a)
      if a == "download" then
        text = text .. " " .. cpf.human_bytes(b) .. (c > 0 and (" of %s"):format(cpf.human_bytes(c)) or "")
          .. (d > 1 and (", attempt %d"):format(d) or "")
      end
      vim.api.nvim_echo({ { text } }, false, {})
      return
    end
    finish()
    if not a then notify("fetch: " .. b, c == "cancelled" and WARN or ERROR) return end
    if a.status == "unchanged" then
      notify(("%s already holds the current extraction (%s, %d rows)"):format(dir, a.date, a.rows), INFO)
    else
      notify(("wrote %s: the extraction of %s, %d rows"):format(a.snapshot, a.date, a.rows), INFO)
    end
  end))
end

--- Stops the running load, describe or fetch.
function M.cancel()
  if state.fetching then
    state.fetching:cancel()
    state.fetching = nil
    notify("fetch cancelled", WARN)
    return
  end
  if state.describing then
    state.describing.cancel()
    state.describing = nil
    notify("describe cancelled", WARN)
    return
  end
  if not state.job then notify("no load is running", WARN) return end
  state.job:cancel()
end

-- The dataset of FILE (opened first when it is not the open one) or the open one, given to
-- fn(ds, at_once): at_once is false when it comes from a load that ended in the background.
local function with_dataset(path, fn)
  if path and path_of(path) ~= state.path then return M.open(path, fn) end
  if state.job then
    notify(("a load is running (%s): wait for it or :Cpf cancel"):format(state.job.path), WARN)
    return
  end
  if not state.dataset then notify("no data is open: :Cpf open FILE first") return end
  fn(state.dataset, true)
end

-- ---------------------------------------------------------------- commands

-- What :Cpf query adds to a request: the user's default format, the environment's locale (as
-- the command line), and --join's references, files it loads.
local function settings()
  return { format = config.format, locale = common.environment_locale(),
           reference = request.file_reference }
end

--- :Cpf query [FILE] OPTIONS: the request fields of `cpf query` (not its data options).
function M.query(words)
  local files, opts, rest = request.read_args(words, 1, request.options_of("nvim", nil, "request"))
  if not files then notify(opts) return end
  if opts.help then notify(":help cpf-query for the options", INFO) return end
  for _, a in ipairs(rest) do files[#files + 1] = a end
  if #files > 1 then notify("query takes one FILE (several files: cpf.load{...} in a script)") return end
  local req, rerr = request.from_options(opts, settings())
  if not req then notify(rerr) return end
  with_dataset(files[1], function(ds, at_once)
    local path = state.path
    local res, err = req:run(ds, cpf.is_snapshot(path) and path or (path .. ":1"))
    if not res then notify(err) return end
    local text
    text, err = req:text(res)
    if not text then notify(err) return end
    state.result = res
    M.show("query", text, req.output.format, at_once)
    for _, note in ipairs(req:notes(res)) do notify(note, WARN) end
  end)
end

--- :Cpf describe [FILE]: in the background, so the editor stays responsive: a snapshot's on
--- a thread of its own (ds:describe_async, polled from a timer), another dataset's a column
--- at a time (a coroutine that yields between columns, resumed from a timer); :Cpf cancel
--- stops it.
function M.describe(words)
  if #words > 1 then notify("describe takes one FILE") return end
  with_dataset(words[1], function(ds)
    local out = assert(request.output { format = config.format })
    local path = state.path
    local job = ds:is_snapshot() and ds:describe_async() or nil
    local step -- -> false, columns done, columns | true, text | true, nil, message
    if job then
      step = function()
        local finished, res, err = job:poll()
        if finished and res then return true, out:description(ds, path, res) end
        return finished, res, err
      end
    else
      local co = coroutine.create(function()
        return out:describe(ds, path, nil, function(done, total) coroutine.yield(done, total) end)
      end)
      step = function()
        local ok, a, b = coroutine.resume(co)
        if not ok then return true, nil, errors.strip(a) end
        return coroutine.status(co) == "dead", a, b
      end
    end
    local running = { cancel = function() if job then job:cancel() end end }
    state.describing = running
    local timer = uv.new_timer()
    local function finish()
      timer:stop()
      timer:close()
      if state.describing == running then state.describing = nil end
    end
    timer:start(0, job and 50 or 1, vim.schedule_wrap(function()
      if state.describing ~= running then finish() return end -- cancelled
      -- an error (the dataset closed by another :Cpf open meanwhile) ends it: never a timer
      -- that raises again at every tick
      local ok, finished, a, b = pcall(step)
      if not ok then finish() notify(errors.strip(finished)) return end
      if not finished then
        vim.api.nvim_echo({ { ("cpf: describing %s  %d / %d columns"):format(vim.fn.fnamemodify(path, ":t"), a, b) } },
          false, {})
        return
      end
      finish()
      if not a then notify(b) return end
      M.show("describe", a, config.format, false)
    end))
  end)
end

--- :Cpf export FORMAT PATH: the last result of :Cpf query.
function M.export(words)
  if #words ~= 2 then notify("export needs FORMAT PATH") return end
  if not state.result then notify("no result yet: :Cpf query first") return end
  local path = path_of(words[2])
  local out, err = request.output { format = words[1] }
  if not out then notify(err) return end
  local ok
  ok, err = out:write(state.result, path)
  if not ok then notify(err) return end
  vim.notify(("cpf: wrote %s (%s, %d rows)"):format(path, words[1], #state.result), INFO)
end

-- The root of the checkout or rock this file is in (bin/cpf is there).
local function bin_cpf()
  local here = debug.getinfo(1, "S").source:sub(2)
  local root = here:match("^(.*)/lua/cpf/nvim%.lua$")
  if root and uv.fs_stat(root .. "/bin/cpf") then return root .. "/bin/cpf" end
  local tree = here:match("^(.*)/share/lua/[%d.]+/cpf/nvim%.lua$")
  if tree then
    local found = vim.fn.glob(tree .. "/lib/luarocks/rocks-*/cpf/*/bin/cpf", false, true)
    if #found > 0 then return found[#found] end
  end
end

--- :Cpf run SCRIPT [DATA...]: `cpf run` in a Neovim of its own (the same LuaJIT and core, no
--- other interpreter needed), so a long script never blocks the editor; without DATA, the open
--- file. Its output goes to cpf://run, its error to a message.
function M.run(words)
  if #words == 0 then notify("run needs a SCRIPT.lua") return end
  local cpf_path = bin_cpf()
  if not cpf_path then notify("bin/cpf not found beside the plugin") return end
  local args = { "run" }
  for i, w in ipairs(words) do args[#args + 1] = i == 1 and path_of(w) or w end
  if #words == 1 and state.path then args[#args + 1] = state.path end
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = ("%q"):format(a) end
  -- print writes to stdout, as under the command line (headless Neovim sends it to stderr)
  local lua = ("print = function(...) local t = {} for i = 1, select('#', ...) do "
    .. "t[i] = tostring((select(i, ...))) end io.stdout:write(table.concat(t, '\\t'), '\\n') end "
    .. "package.cpath = %q arg = { [0] = %q, %s } dofile(arg[0])")
    :format(package.cpath, cpf_path, table.concat(quoted, ", "))
  local out, errs = {}, {}
  local function collect(t) return function(_, data) for _, l in ipairs(data) do t[#t + 1] = l end end end
  local id = vim.fn.jobstart({ vim.v.progpath, "--headless", "--clean", "-c", "lua " .. lua }, {
    stdout_buffered = true, stderr_buffered = true,
    on_stdout = collect(out), on_stderr = collect(errs),
    on_exit = function(_, code)
      vim.schedule(function()
        if #out > 0 and out[#out] == "" then out[#out] = nil end
        if #out > 0 then M.show("run", table.concat(out, "\n"), "text") end
        local msg = table.concat(errs, "\n"):gsub("%s+$", "")
        if code ~= 0 then
          vim.notify(msg ~= "" and msg or ("cpf: run exited with %d"):format(code), ERROR)
        elseif msg ~= "" then
          vim.notify(msg, WARN)
        end
        state.run_exit = code
      end)
    end,
  })
  if id <= 0 then notify("cannot start " .. vim.v.progpath) end
end

local SUBCOMMANDS = { "open", "query", "describe", "run", "export", "fetch", "cancel" }

--- :Cpf SUBCOMMAND ARGS (the text after :Cpf).
function M.command(line)
  local words, err = M.split(line)
  if not words then notify(err) return end
  local sub = table.remove(words, 1)
  local ok, perr = pcall(function()
    if sub == "open" then
      if #words ~= 1 then notify("open needs one FILE") return end
      M.open(words[1])
    elseif sub == "query" then M.query(words)
    elseif sub == "describe" then M.describe(words)
    elseif sub == "run" then M.run(words)
    elseif sub == "export" then M.export(words)
    elseif sub == "fetch" then M.fetch(words)
    elseif sub == "cancel" then M.cancel()
    elseif sub == nil then notify("usage: :Cpf open|query|describe|run|export|fetch|cancel (:help cpf)")
    else notify(("unknown subcommand '%s' (%s)"):format(sub, table.concat(SUBCOMMANDS, ", "))) end
  end)
  -- a fault of cpf's own still reads as a message, not a traceback
  if not ok then notify(errors.strip(perr)) end
end

-- ---------------------------------------------------------------- completion

-- file names escaped as M.split reads them back (a blank, a quote or a backslash)
local function files(lead)
  local out = {}
  for i, f in ipairs(vim.fn.getcompletion(lead, "file")) do out[i] = (f:gsub("([%s'\"\\])", "\\%1")) end
  return out
end

--- Completion of :Cpf: subcommands, then per subcommand files, and for :Cpf query its options
--- and their values as the request table says (columns of the open dataset and virtual keys,
--- measures and aggregate forms, formats, locales, files).
function M.complete(lead, line, pos)
  local before = line:sub(1, pos)
  local words = M.split(before) or {}
  if before:match("%s$") then words[#words + 1] = "" end
  -- words[1] is the command itself
  if #words <= 2 then return matching(SUBCOMMANDS, lead) end
  local sub, n, prev = words[2], #words - 2, words[#words - 1]
  if sub == "open" or sub == "describe" or sub == "run" then return files(lead) end
  if sub == "fetch" then
    if lead:sub(1, 1) == "-" then return matching(request.option_names("nvim", "fetch"), lead) end
    return files(lead)
  end
  if sub == "export" then
    if n == 1 then return matching(cpf.formats.names(), lead) end
    return files(lead)
  end
  if sub == "query" then
    local option, value = lead:match("^(%-%-[%w%-]+=)(.*)$") -- --by=an: the option's value
    local inline = ""
    if option then prev, lead, inline = option:sub(1, -2), value, option end
    local name = prev:match("^%-%-([%w%-]+)$")
    local field = name and request.takes("nvim", name) and request.field[name]
    if field and field.shape ~= "flag" then
      local columns = state.dataset and not state.dataset:is_closed() and state.dataset:columns() or nil
      local found = request.complete(field, lead, columns)
      if not found then return matching(files(lead), "", inline) end
      return matching(found, "", inline)
    end
    if lead:sub(1, 1) == "-" then return matching(request.option_names("nvim", "request"), lead) end
    return files(lead)
  end
  return {}
end

return M

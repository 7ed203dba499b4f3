-- cpf.request.words — the command line's words, as cpf query and :Cpf query read them: options
-- (--name value, --name=value, flags, one-letter aliases, "--" and the rest) split from the
-- positionals, and the help of a list of fields as `cpf query --help` prints it; the helpers
-- built on the request table for each front end (front_helpers).
local words = {}

--- Splits command-line words from args[first] into positionals and options: `known` maps each
--- long option name to "flag", "value" (the last one wins) or "list" (every value, in order);
--- `short` maps one-letter options to long names. "--name=value" works for values; after
--- "--" everything goes to rest. Returns positionals, options, rest, or nil, message.
function words.read_args(args, first, known, short)
  local pos, opts, rest = {}, {}, nil
  short = short or {}
  local i = first
  while i <= #args do
    local a = args[i]
    local name, inline
    if a == "--" then
      rest = {}
      for j = i + 1, #args do rest[#rest + 1] = args[j] end
      break
    elseif a == "--help" or a == "-h" then
      opts.help = true
    elseif a:sub(1, 2) == "--" then
      name, inline = a:match("^%-%-([^=]+)=(.*)$")
      if not name then name = a:sub(3) end
      -- --on-error names the field on_error (a command's own --no-bom stays as it is)
      if not known[name] and known[(name:gsub("%-", "_"))] then name = name:gsub("%-", "_") end
    elseif a:match("^%-%a$") then
      name = short[a:sub(2)]
      if not name then return nil, ("unknown option '%s'"):format(a) end
    else
      pos[#pos + 1] = a
    end
    if name then
      local kind = known[name]
      local shown = inline and a:match("^[^=]*") or a
      if not kind then return nil, ("unknown option '%s'"):format(shown) end
      if kind == "flag" then
        if inline then return nil, ("option '%s' takes no value"):format(shown) end
        opts[name] = true
      else
        local v = inline
        if v == nil then
          i = i + 1
          v = args[i]
          if v == nil then return nil, ("option '%s' needs a value"):format(shown) end
        end
        if kind == "list" then
          opts[name] = opts[name] or {}
          opts[name][#opts[name] + 1] = v
        else
          opts[name] = v
        end
      end
    end
    i = i + 1
  end
  return pos, opts, rest or {}
end

-- ---------------------------------------------------------------- help

local HELP_WIDTH = 17 -- the option column, after two spaces

--- The help of fields (a list of entries of request.fields), as `cpf query --help` prints it:
--- the option and its placeholder, the help text beside it (below it when the option is wider
--- than its column).
function words.help(fields)
  local lines = {}
  local indent = (" "):rep(2 + HELP_WIDTH)
  for _, f in ipairs(fields) do
    local option = (f.short and "-" .. f.short .. ", " or "") .. "--" .. f.name:gsub("_", "-")
      .. (f.arg and " " .. f.arg or "")
    local first = true
    for line in (f.help .. "\n"):gmatch("([^\n]*)\n") do
      if first then
        if #option < HELP_WIDTH then
          lines[#lines + 1] = "  " .. option .. (" "):rep(HELP_WIDTH - #option) .. line
        else
          lines[#lines + 1] = "  " .. option
          lines[#lines + 1] = indent .. line
        end
        first = false
      else
        lines[#lines + 1] = indent .. line
      end
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

--- Adds to the request module the helpers built on its table of fields (request.fields_of,
--- request.help): what each front end's words, help and HTTP parameters are.
function words.front_helpers(request)
  --- The option kinds request.read_args takes for a front end's fields (request.fields_of; of
  --- one class only with `class`), with `extra` ({name = "flag" | "value" | "list"}) added:
  --- known, short.
  function request.options_of(front, extra, class)
    local known, short = {}, {}
    for _, f in ipairs(request.fields_of(front, class)) do
      known[f.name] = f.shape == "flag" and "flag" or f.shape == "one" and "value" or "list"
      if f.short then short[f.short] = f.name end
    end
    for k, v in pairs(extra or {}) do known[k] = v end
    return known, short
  end

  --- The data options of the command line's commands that load DATA ("data options:" and their
  --- help).
  function request.data_help()
    local fields = {}
    for _, f in ipairs(request.fields_of("cli")) do
      if f.class == "load" or f.help_section == "data" then fields[#fields + 1] = f end
    end
    return "data options:\n" .. request.help(fields)
  end

  --- The options a :Cpf query takes, as doc/cpf.txt lists them (a spec holds the two together).
  function request.field_list(front)
    local lines = {}
    for _, f in ipairs(request.fields_of(front, "request")) do
      lines[#lines + 1] = ("        --%s%s%s"):format(f.name, f.arg and " " .. f.arg or "",
        f.shape == "repeat" and " (repeatable)" or "")
    end
    return table.concat(lines, "\n") .. "\n"
  end

  --- The HTTP parameters of a query: name -> "one" (may not repeat) or "list" (repeatable).
  function request.http_parameters()
    local out = {}
    for _, f in ipairs(request.fields_of("http")) do out[f.name] = f.shape == "repeat" and "list" or "one" end
    return out
  end

  --- The options a front end completes (of one class only with `class`): "--where", "--by"...
  --- sorted.
  function request.option_names(front, class)
    local names = {}
    for _, f in ipairs(request.fields_of(front, class)) do names[#names + 1] = "--" .. f.name:gsub("_", "-") end
    table.sort(names)
    return names
  end
end

return words

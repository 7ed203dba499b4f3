-- cpf.errors — one error protocol for the Lua layer, as the C core has: an error is a value with
-- a kind (usage, data, io, memory, callback, cancelled) and a message, raised inside cpf and
-- turned into nil, message, kind at the edge of the module that promised values.
local errors = {}

--- The kinds of errors, as the C core names them: usage (the question or the call is wrong),
--- data (the data cannot answer it), io, memory, callback (a user function failed), cancelled.
errors.KINDS = { usage = true, data = true, io = true, memory = true, callback = true, cancelled = true }

local Error = {}
Error.__index = Error
function Error.__tostring(e) return e.msg end

--- A new error value: {kind =, msg =} plus the fields of `extra` (a front end's own, such as an
--- HTTP status).
function errors.new(kind, msg, extra)
  if not errors.KINDS[kind] then error(("cpf.errors: unknown kind '%s'"):format(tostring(kind)), 2) end
  local e = { kind = kind, msg = tostring(msg) }
  for k, v in pairs(extra or {}) do e[k] = v end
  return setmetatable(e, Error)
end

--- Raises an error value (without a position: the message is the whole text).
function errors.raise(kind, msg, extra) error(errors.new(kind, msg, extra), 0) end
--- Raises a usage error (a request or command line that is wrong) with msg.
function errors.usage(msg) errors.raise("usage", msg) end

--- Whether a raised value is one of cpf's error values.
function errors.is(e) return getmetatable(e) == Error end

--- A message without the position of cpf's own Lua source that raised it
--- (".../cpf/query.lua:123: "): a user reads what went wrong, not where in cpf. Positions in the
--- user's own files stay.
function errors.strip(msg)
  return (tostring(msg):gsub("^[^\n]-cpf/[%w_/]*%.lua:%d+: ", "", 1))
end

--- The message and kind of any raised value: an error value's own, or the stripped text of
--- another with `kind` (default "data": cpf's refusal while it builds or runs a query).
function errors.explain(e, kind)
  if errors.is(e) then return e.msg, e.kind end
  return errors.strip(e), kind or "data"
end

local unpack = table.unpack or unpack
local function pack(...) return { n = select("#", ...), ... } end

--- Calls fn(...) and returns its results, or nil, message, kind when it raised (errors.explain).
function errors.protect(fn, ...)
  local out = pack(pcall(fn, ...))
  if out[1] then return unpack(out, 2, out.n) end
  local msg, kind = errors.explain(out[2])
  return nil, msg, kind
end

--- A message as the command line and Neovim show it: "cpf: " and the text, its control
--- characters escaped (messages name files, columns and values of the data).
function errors.message(msg)
  -- the formats' helpers load with the first message: cpf.errors stays light for the engine
  return "cpf: " .. require("cpf.format.common").terminal_text(tostring(msg), true)
end

return errors

-- cpf.describe — a dataset's description (ds:describe, ds:describe_async; what cpf describe,
-- :Cpf describe and /describe show): a row per column, made from the column's summary that
-- the C core computes (core.describe_column, or core.describe_job on a thread of its own).
local core = require "cpf.core"
local result = require "cpf.result"
local common = require "cpf.format.common"

local M = {}

local function value_text(v)
  if type(v) == "number" then return common.number_text(v) or tostring(v) end
  return v
end

-- A column's row: c as ds:columns() gives it, d its summary.
local function row(c, d, top)
  local r = { column = c.name, label = c.label, type = c.type, missing = c.missing, distinct = d.distinct }
  if c.type == "string" then
    if top > 0 then
      local t = {}
      for k, e in ipairs(d.top) do
        t[k] = ("%s (%d)"):format(common.truncate((e.value:gsub("%s+", " ")), 32), e.count)
      end
      r.top = table.concat(t, ", ")
    end
  else
    r.min, r.max = value_text(d.min), value_text(d.max)
  end
  return r
end

local function description(rows, top)
  local names = { "column", "label", "type", "missing", "distinct", "min", "max" }
  if top > 0 then names[#names + 1] = "top" end
  return result.new(names, rows)
end

local function check_top(top, fname)
  top = top or 3
  if type(top) ~= "number" or top < 0 or top ~= math.floor(top) then
    error(("bad argument #1 to '%s' (whole number expected)"):format(fname), 4) -- ds:describe's caller
  end
  return top
end

--- ds:describe(top, progress): each column summed up in C, one pass over its rows; between two
--- columns, progress(done, total) — a caller that must stay responsive can do the same itself.
function M.describe(ds, top, progress)
  top = check_top(top, "describe")
  if progress ~= nil and type(progress) ~= "function" then
    error("bad argument #2 to 'describe' (function expected)", 3)
  end
  local rows = {}
  local cols = ds:columns()
  for i, c in ipairs(cols) do
    rows[i] = row(c, core.describe_column(ds, i, c.type == "string" and top or 0), top)
    if progress then progress(i, #cols) end
  end
  return description(rows, top)
end

local Job = {}
Job.__index = Job

-- false, columns_done, columns | true, description | true, nil, message, kind
local function answer(self, finished, summaries, ...)
  if not finished then return false, summaries, ... end
  if not self.answer then
    if not summaries then
      self.answer = { nil, ... }
    else
      local rows = {}
      for i, c in ipairs(self.columns) do rows[i] = row(c, summaries[i], self.top) end
      self.answer = { description(rows, self.top) }
    end
  end
  return true, self.answer[1], self.answer[2], self.answer[3]
end

function Job:poll() return answer(self, self.job:poll()) end
function Job:wait() return answer(self, self.job:wait()) end
function Job:cancel() self.job:cancel() end

--- ds:describe_async(top): the same description computed on a thread of its own, for a
--- dataset opened from a snapshot file (the thread opens it again: the dataset stays free for
--- queries and may be closed). A job: job:poll() -> false, columns_done, columns | true,
--- description | true, nil, message, kind; job:wait(); job:cancel().
function M.describe_async(ds, top)
  top = check_top(top, "describe_async")
  local cols = ds:columns()
  local job, err, kind = core.describe_job(ds, top)
  if not job then return nil, err, kind end
  return setmetatable({ job = job, columns = cols, top = top }, Job)
end

return M

-- cpf.history — a history folder: one snapshot per extraction of the CPF file (cpf fetch
-- writes them), DIR/cpf-YYYY-MM-DD.cpfsnap with DIR/cpf-YYYY-MM-DD.json (what the portal said
-- of it: modified, records_count, ETag), and DIR/cpf-latest.cpfsnap, a second name of the
-- newest. A history folder given where a data file is expected stands for its latest
-- extraction (data_path). cpf.history(DIR) opens one by date, "latest" or "previous".
local core = require "cpf.core"

local M = {}

M.LATEST = "cpf-latest.cpfsnap"

local DATE = "%d%d%d%d%-%d%d%-%d%d"

function M.snapshot_path(dir, date) return dir .. "/cpf-" .. date .. ".cpfsnap" end
function M.metadata_path(dir, date) return dir .. "/cpf-" .. date .. ".json" end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_file = read_file

--- Writes a small file through a temporary name renamed over it: a reader never sees half of
--- it. true, or nil, message.
function M.write_file(path, text)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(text)
  local closed, cerr = f:close()
  if not ok or not closed then
    os.remove(tmp)
    return nil, ("%s: %s"):format(path, tostring(werr or cerr))
  end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then os.remove(tmp) return nil, rerr end
  return true
end

--- The data file a path stands for: a history folder's latest extraction (a folder that holds
--- DIR/cpf-latest.cpfsnap), any other path itself (a folder then fails as a file would).
function M.data_path(path)
  if core.file_kind(path) ~= "directory" then return path end
  local latest = path:gsub("(.)/+$", "%1") .. "/" .. M.LATEST
  if core.file_kind(latest) == "regular" then return latest end
  return path
end

--- The extractions a history folder holds, oldest first: {date =, snapshot =, metadata =,
--- modified =, records_count =, etag =}; a date whose snapshot is missing is left out.
function M.extractions(dir)
  local json = require "cpf.format.json" -- the JSON reader, loaded on first use
  local out = {}
  for _, name in ipairs(core.list_dir(dir) or {}) do
    local date = name:match("^cpf%-(" .. DATE .. ")%.json$")
    if date and core.file_kind(M.snapshot_path(dir, date)) == "regular" then
      local meta = json.decode(read_file(M.metadata_path(dir, date)) or "") or {}
      out[#out + 1] = { date = date, snapshot = M.snapshot_path(dir, date), metadata = M.metadata_path(dir, date),
                        modified = meta.modified, records_count = meta.records_count, etag = meta.etag }
    end
  end
  table.sort(out, function(a, b) return a.date < b.date end)
  return out
end

--- The extraction `which` names: "latest" (the default), "previous" (the one before it) or a
--- date YYYY-MM-DD; nil, message, kind when the folder has no such extraction.
function M.find(dir, which)
  which = which or "latest"
  local all = M.extractions(dir)
  local dates = {}
  for i, e in ipairs(all) do dates[i] = e.date end
  local held = #dates > 0 and ("it holds %s"):format(table.concat(dates, ", ")) or "it holds none: cpf fetch " .. dir
  if which == "latest" or which == "previous" then
    local e = all[#all - (which == "previous" and 1 or 0)]
    if e then return e end
    return nil, ("%s: no %s extraction (%s)"):format(dir, which, held), "usage"
  end
  if type(which) ~= "string" or not which:match("^" .. DATE .. "$") then
    return nil, ("%s: '%s' is no extraction: latest, previous or a date YYYY-MM-DD"):format(dir, tostring(which)),
      "usage"
  end
  for _, e in ipairs(all) do if e.date == which then return e end end
  return nil, ("%s: no extraction of %s (%s)"):format(dir, which, held), "usage"
end

--- Records an extraction's metadata (what the portal said of it) beside its snapshot.
function M.record(dir, date, meta, etag)
  local json = require "cpf.format.json" -- as above
  return M.write_file(M.metadata_path(dir, date),
    ('{"extraction": %s, "modified": %s, "data_processed": %s, "records_count": %d, "etag": %s}\n')
      :format(json.string_text(date), json.string_text(meta.modified), json.string_text(meta.data_processed or ""),
        meta.records_count, json.string_text(etag or "")))
end

--- Makes DIR/cpf-latest.cpfsnap a second name of the newest extraction (a hard link renamed
--- in: a reader sees the old file or the new one). true, or nil, message.
function M.link_latest(dir)
  local all = M.extractions(dir)
  local newest = all[#all]
  if not newest then return true end
  local tmp = dir .. "/.cpf-latest.tmp"
  os.remove(tmp)
  local linked, err = core.hard_link(newest.snapshot, tmp)
  if not linked then return nil, err end
  local renamed, rerr = os.rename(tmp, dir .. "/" .. M.LATEST)
  if not renamed then os.remove(tmp) return nil, rerr end
  return true
end

--- Keeps the newest n extractions (n >= 1) and deletes the others' files: the dates deleted.
function M.keep(dir, n)
  local all, gone = M.extractions(dir), {}
  for i = 1, #all - n do
    os.remove(all[i].snapshot)
    os.remove(all[i].metadata)
    gone[#gone + 1] = all[i].date
  end
  return gone
end

-- ---------------------------------------------------------------- cpf.history(DIR)

local History = {}
History.__index = History

--- cpf.history(dir) -> a history: hist:extractions() (oldest first), hist:path(which),
--- hist:open(which) -> dataset, extraction (which: "latest", "previous" or a date), or nil,
--- message, kind. nil, message, kind for a path that is not a folder.
function M.open(dir)
  if type(dir) ~= "string" then
    error(("bad argument #1 to 'history' (string expected, got %s)"):format(type(dir)), 3)
  end
  local kind, err = core.file_kind(dir)
  if kind ~= "directory" then return nil, err or ("%s: not a folder"):format(dir), err and "io" or "usage" end
  return setmetatable({ dir = dir:gsub("(.)/+$", "%1") }, History)
end

function History:extractions() return M.extractions(self.dir) end

function History:path(which)
  local e, err, kind = M.find(self.dir, which)
  if not e then return nil, err, kind end
  return e.snapshot, e
end

function History:open(which)
  local path, e, kind = self:path(which)
  if not path then return nil, e, kind end
  local ds, err, okind = core.open_snapshot(path, true)
  if not ds then return nil, err, okind end
  return ds, e
end

return M

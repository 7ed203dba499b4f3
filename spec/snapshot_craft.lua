-- spec/snapshot_craft.lua — crafts hostile snapshots for the specs: parses a snapshot's header
-- and column table, changes one field (or bytes of the data) and recomputes every checksum, so
-- that the file passes them as an attacker's file would. Lua 5.3+ only (string.pack, integer
-- bit operations, which 5.1 cannot even parse): require it only where string.pack exists.
-- The layout mirrors csrc/snapshot_format.h (fuzz/snapshot_mutate.c does the same in C).
local craft = {}

-- name, byte offset, size (4 or 8; all are read as integers, 8-byte ones signed)
craft.header_fields = {
  { "magic", 0, 8 }, { "version", 8, 4 }, { "endian", 12, 4 }, { "rows", 16, 8 },
  { "ncols", 24, 8 }, { "table_offset", 32, 8 }, { "table_size", 40, 8 }, { "tag_offset", 48, 8 },
  { "tag_size", 56, 8 }, { "file_size", 64, 8 }, { "rejects_offset", 72, 8 }, { "rejects_size", 80, 8 },
  { "rejects_count", 88, 8 }, { "checksum", 96, 8 },
}
craft.header_size = 104

craft.column_fields = {
  { "type", 0, 4 }, { "width", 4, 4 }, { "scale", 8, 4 }, { "reserved", 12, 4 },
  { "missing", 16, 8 }, { "min", 24, 8 }, { "max", 32, 8 },
  { "name_offset", 40, 8 }, { "name_size", 48, 8 }, { "label_offset", 56, 8 }, { "label_size", 64, 8 },
  { "data_offset", 72, 8 }, { "data_size", 80, 8 }, { "bits_offset", 88, 8 }, { "bits_size", 96, 8 },
  { "dict_count", 104, 8 }, { "dict_bytes_offset", 112, 8 }, { "dict_bytes_size", 120, 8 },
  { "dict_offsets_offset", 128, 8 }, { "dict_offsets_size", 136, 8 }, { "checksum", 144, 8 },
}
craft.column_size = 152

craft.TYPE = { string = 0, integer = 1, number = 2, decimal = 3, month = 4, date = 5 }

local unpack, pack = string.unpack, string.pack

local function field_spec(fields, name)
  for _, f in ipairs(fields) do if f[1] == name then return f end end
  error("no field " .. name)
end

local function read_field(bytes, at, size)
  -- a mutated offset may be negative or near 2^63 (where at + size wraps): compared without
  -- overflow, since Lua 5.3's string.unpack raises on a position before the string
  if at < 0 or at > #bytes - size then return nil end
  if size == 4 then return (unpack("=I4", bytes, at + 1)) end
  return (unpack("=i8", bytes, at + 1))
end

local function put(bytes, at, s)
  return bytes:sub(1, at) .. s .. bytes:sub(at + #s + 1)
end

local function pack_field(size, value)
  if size == 4 then return pack("=I4", value & 0xffffffff) end
  return pack("=i8", value)
end

--- The header and every column's table entry as tables of field = integer (nil when the
--- table lies outside the file).
function craft.parse(bytes)
  local header = {}
  for _, f in ipairs(craft.header_fields) do header[f[1]] = read_field(bytes, f[2], f[3]) end
  local columns = {}
  local t = header.table_offset
  if t and header.ncols and header.ncols >= 0 and header.ncols <= 100000 and t >= 0 then
    for j = 1, header.ncols do
      local base = t + (j - 1) * craft.column_size
      if base < 0 or base > #bytes - craft.column_size then break end
      local c = { entry = base }
      for _, f in ipairs(craft.column_fields) do c[f[1]] = read_field(bytes, base + f[2], f[3]) end
      columns[j] = c
    end
  end
  return { header = header, columns = columns }
end

-- The checksum of csrc/snapshot.c (four multiply-xor lanes over 8-byte words), over n bytes of
-- s from offset `at` (0-based). Integer arithmetic wraps in Lua 5.3+, as uint64_t does in C.
local K = 0xff51afd7ed558ccd
function craft.checksum(seed, s, at, n)
  local a, b, c, d = seed ~ 0x9E3779B97F4A7C15, seed + n, ~seed, seed * 31 + 7
  local i = at + 1
  while n >= 32 do
    local w0, w1, w2, w3 = unpack("=i8i8i8i8", s, i)
    a = (a ~ w0) * K; b = (b ~ w1) * K; c = (c ~ w2) * K; d = (d ~ w3) * K
    a = a ~ (a >> 29); b = b ~ (b >> 29); c = c ~ (c >> 29); d = d ~ (d >> 29)
    i = i + 32
    n = n - 32
  end
  while n > 0 do
    a = (a ~ s:byte(i)) * K
    a = a ~ (a >> 29)
    i = i + 1
    n = n - 1
  end
  a = a ~ (b * 3) ~ (c * 5) ~ (d * 7)
  a = a * K
  return a ~ (a >> 32)
end

local function in_file(bytes, offset, size)
  return offset >= 0 and size >= 0 and offset <= #bytes and size <= #bytes - offset
end

-- The header's checksum recomputed (over the column table, the tag and the rejects), when
-- they lie in the file.
local function header_sealed(bytes, hd)
  if hd.table_offset and in_file(bytes, hd.table_offset, hd.table_size) and hd.tag_offset and
     in_file(bytes, hd.tag_offset, hd.tag_size) and hd.rejects_offset and
     in_file(bytes, hd.rejects_offset, hd.rejects_size) then
    local sum = craft.checksum(craft.checksum(0, bytes, hd.table_offset, hd.table_size), bytes,
                               hd.tag_offset, hd.tag_size)
    if hd.rejects_size > 0 then sum = craft.checksum(sum, bytes, hd.rejects_offset, hd.rejects_size) end
    bytes = put(bytes, 96, pack("=i8", sum))
  end
  return bytes
end

--- The bytes with every checksum recomputed from the table as it now stands: each column's
--- (name, label, data, bitmap, dictionary: what snapshot_open sums for that entry), then the
--- header's.
--- A range outside the file is left out (the open refuses it before any checksum).
function craft.reseal(bytes)
  local snap = craft.parse(bytes)
  for _, c in ipairs(snap.columns) do
    local ok = in_file(bytes, c.data_offset, c.data_size) and in_file(bytes, c.name_offset, c.name_size)
      and in_file(bytes, c.label_offset, c.label_size)
    local sum = 0
    if ok then
      sum = craft.checksum(0, bytes, c.name_offset, c.name_size)
      sum = craft.checksum(sum, bytes, c.label_offset, c.label_size)
      sum = craft.checksum(sum, bytes, c.data_offset, c.data_size)
    end
    if ok and c.bits_size ~= 0 then
      ok = in_file(bytes, c.bits_offset, c.bits_size)
      if ok then sum = craft.checksum(sum, bytes, c.bits_offset, c.bits_size) end
    end
    if ok and c.type == craft.TYPE.string then
      ok = in_file(bytes, c.dict_bytes_offset, c.dict_bytes_size) and
           in_file(bytes, c.dict_offsets_offset, c.dict_offsets_size)
      if ok then
        sum = craft.checksum(sum, bytes, c.dict_bytes_offset, c.dict_bytes_size)
        sum = craft.checksum(sum, bytes, c.dict_offsets_offset, c.dict_offsets_size)
      end
    end
    if ok then bytes = put(bytes, c.entry + 144, pack("=i8", sum)) end
  end
  return header_sealed(bytes, snap.header)
end

--- The bytes with header field `name` set to `value`, checksums recomputed (unless the field is
--- the checksum itself).
function craft.with_header(bytes, name, value)
  local f = field_spec(craft.header_fields, name)
  bytes = put(bytes, f[2], name == "magic" and pack("c8", value) or pack_field(f[3], value))
  return name == "checksum" and bytes or craft.reseal(bytes)
end

--- The bytes with field `name` of column j's table entry set to `value`, checksums recomputed
--- (unless the field is that column's checksum).
function craft.with_column(bytes, j, name, value)
  local f = field_spec(craft.column_fields, name)
  local c = assert(craft.parse(bytes).columns[j], "no column " .. j)
  bytes = put(bytes, c.entry + f[2], pack_field(f[3], value))
  if name ~= "checksum" then return craft.reseal(bytes) end
  -- only the header's checksum, over the table that now holds the changed column checksum
  return header_sealed(bytes, craft.parse(bytes).header)
end

--- The bytes with `s` written at byte offset `at` (0-based), checksums recomputed.
function craft.with_bytes(bytes, at, s)
  return craft.reseal(put(bytes, at, s))
end

return craft

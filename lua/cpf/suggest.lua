-- cpf.suggest — "did you mean": the known name closest to a mistyped one (an edit distance,
-- accents and case set aside), for the messages of unknown columns, measures, formats and the
-- --where values that match nothing. Plain Lua: no other module of cpf.
local suggest = {}

-- U+00C0..U+00FF as the letter without its accent (× and ÷ as themselves)
local LATIN1 = "AAAAAAACEEEEIIIIDNOOOOO\215OUUUUYTsaaaaaaaceeeeiiiidnooooo\247ouuuuyty"

-- a text's letters without accents or case, for comparing
local function fold(s)
  s = s:gsub("\195([\128-\191])", function(c)
    local i = c:byte() - 128 + 1
    return LATIN1:sub(i, i)
  end):gsub("\197[\146\147]", "oe")
  return s:lower()
end

-- The edit distance of a and b (insertions, deletions, substitutions and swaps of two
-- neighbours: "cvs" is one edit from "csv"), or limit + 1 as soon as it must exceed limit.
local function distance(a, b, limit)
  local la, lb = #a, #b
  if math.abs(la - lb) > limit then return limit + 1 end
  local before, prev, cur = {}, {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local best = i
    local ca = a:byte(i)
    for j = 1, lb do
      local cb = b:byte(j)
      local v = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca == cb and 0 or 1))
      if i > 1 and j > 1 and ca == b:byte(j - 1) and a:byte(i - 1) == cb then v = math.min(v, before[j - 2] + 1) end
      cur[j] = v
      if v < best then best = v end
    end
    if best > limit then return limit + 1 end
    before, prev, cur = prev, cur, before
  end
  return prev[lb]
end

--- The candidate closest to `word` (a list of strings), or nil when none is close: the same
--- letters without accents or case, or a few edits away (1 for a short word, up to 3).
function suggest.closest(word, candidates)
  if type(word) ~= "string" or word == "" then return nil end
  local w = fold(word)
  local limit = #w <= 4 and 1 or #w <= 8 and 2 or 3
  local best, best_d
  for _, c in ipairs(candidates) do
    if type(c) == "string" and c ~= word then
      local d = distance(w, fold(c), limit)
      if d <= limit and (not best_d or d < best_d) then best, best_d = c, d end
    end
  end
  return best
end

--- " (did you mean 'x'?)" for the closest candidate, or "".
function suggest.hint(word, candidates)
  local c = suggest.closest(word, candidates)
  return c and (" (did you mean '%s'?)"):format(c) or ""
end

return suggest

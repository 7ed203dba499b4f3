---@meta cpf
-- LuaCATS definitions of the cpf API, for editor completion (lua-language-server, Neovim):
-- add this folder to `Lua.workspace.library`. Not loaded at run time.

---@alias cpf.type "string"|"integer"|"number"|"decimal"|"month"|"date"|"auto"
---@alias cpf.value string|number|nil

---@class cpf.load_options
---@field sep? string one character; detected from the header by default
---@field decimal? "."|"," decimal mark of numbers
---@field types? table<string, cpf.type> column types by canonical name
---@field progress? true|fun(bytes_done: number, bytes_total: number, rows: number): boolean?
---@field threads? integer 1 to 64; one per core by default
---@field on_error? "fail"|"skip" "skip": malformed records set aside (ds:rejects()), not the load's end
---@field max_rejects? integer at most this many set aside (1000)
---@field columns? string[] load only these columns
---@field cache? boolean reuse csv .. ".cpfsnap" while the CSV is unchanged
---@field parser? "auto"|"libcsv"

---@class cpf.column_info
---@field name string canonical name
---@field label string header as written
---@field type cpf.type
---@field missing integer
---@field bytes integer
---@field scale? integer decimal columns: digits kept after the point

---@class cpf.condition
---@class cpf.key
---@field as fun(self: cpf.key, name: string): cpf.key
---@class cpf.aggregate
local Aggregate = {}
---The same aggregate with the kind of value it gives, for the display formats.
---@param kind "count"|"money"|"rate"|"number"|"key"
---@return cpf.aggregate
function Aggregate:kind(kind) end

---@class cpf.dataset
---@operator len: integer
local Dataset = {}
---@return cpf.column_info[]
function Dataset:columns() end
---@param name string
---@return cpf.column_info?
function Dataset:column(name) end
---@param i integer
---@param column string|integer
---@return cpf.value
function Dataset:get(i, column) end
---@param i integer
---@return table<string, cpf.value>
function Dataset:row(i) end
---@return fun(): integer, table<string, cpf.value>
function Dataset:rows() end
---@param column string|integer
---@return {value: cpf.value, count: integer}[]
function Dataset:distinct(column) end
---@param column string|integer
---@return string[]
function Dataset:dictionary(column) end
---@param top? integer the most frequent text values shown (default 3; 0: none)
---@return cpf.result
function Dataset:describe(top) end
---The same description on a thread of its own, for a dataset opened from a snapshot file.
---@param top? integer
---@return cpf.describe_job|nil job, string? err, "usage"|nil kind
function Dataset:describe_async(top) end
---@return integer bytes
function Dataset:memory() end
function Dataset:close() end
---@return boolean
function Dataset:is_closed() end
---@return boolean
function Dataset:is_snapshot() end

--- A snapshot's deferred checks of every column, now (each column is otherwise checked when first
--- read): true, or nil, "path: column N: ...", "data" for the first damaged one.
---@return boolean|nil ok
---@return string|nil message
---@return string|nil kind
function Dataset:verify() end

--- The records a load with on_error = "skip" set aside, in file order (a snapshot keeps them).
---@return {line: integer, record: integer, column: integer?, name: string?, kind: string, message: string, text: string, length: integer, file: string?}[]
function Dataset:rejects() end
---@param path string
---@return true|nil ok, string? err
function Dataset:save(path) end
---@return cpf.query
function Dataset:query() end
---@return cpf.query
function Dataset:where(target, value) end
---@return cpf.query
function Dataset:group_by(...) end
---@param spec table
---@return cpf.query
function Dataset:agg(spec) end
---@param spec table
---@return cpf.result
function Dataset:run(spec) end
---@param query? cpf.query
---@return cpf.result
function Dataset:funders(query) end

---@class cpf.query
local Query = {}
---@return cpf.query
function Query:where(target, value) end
---@return cpf.query
function Query:group_by(...) end
---@param spec table
---@return cpf.query
function Query:agg(spec) end
---@return cpf.query
function Query:order_by(...) end
---@param n integer
---@param opts? {per: string|string[], others: boolean} the first n rows (of each group with per); others: the rest folded into one "Autres" row
---@return cpf.query
function Query:limit(n, opts) end
---@return cpf.query with subtotal rows (two keys or more) and a total row, computed from their rows
function Query:totals() end
---@param conds table<string, any> conditions on the result's columns, applied after aggregation
---@return cpf.query
function Query:having(conds) end
---@param spec? table
---@return cpf.result
function Query:run(spec) end

---@class cpf.result
---@operator len: integer
local Result = {}
---@return string[]
function Result:columns() end
---@return cpf.value
function Result:get(i, name) end
---@return string[] names of the key columns
function Result:keys() end
---@return table<string, "count"|"money"|"rate"|"number"|"key"> what each column holds
function Result:kinds() end
---@return string[] the column specs the result was sorted by ("-montant")
function Result:order() end
---@return fun(): integer, table<string, cpf.value>
function Result:rows() end
---@return cpf.result
function Result:sorted(...) end
---@param opts? {per: string|string[]}
---@return cpf.result
function Result:head(n, opts) end
---@return table<string, {fr: string, en: string}> titles of the columns the result derived
function Result:labels() end
---@param conds table<string, any> {column = condition}, the constructors of q:where
---@return cpf.result
function Result:where(conds) end
---@param spec table {{"name", function(row) end [, kind [, {fr =, en =}]]}, ...} or {name = function(row) end}
---@return cpf.result
function Result:with(spec) end
---@param other cpf.result|cpf.dataset|table a result, a dataset or {[key] = value or row}
---@param on string|table<string, string> a column of both sides, or {left = "right"}
---@param opts? {how: "left"|"inner", columns: string[], many: boolean, suffix: string}
---@return cpf.result
function Result:join(other, on, opts) end
---@param opts {over: string, by: string|string[]|nil, lag: integer|nil}
---@return cpf.result with column_prec, column_evol and column_evol_pct
function Result:change(column, opts) end
---@param n integer the periods of the window
---@param opts {over: string, by: string|string[]|nil, fn: "sum"|"mean"|nil}
---@return cpf.result with column_glissant_N
function Result:rolling(column, n, opts) end
---@param opts? {within: string|string[]|nil}
---@return cpf.result with column_part
function Result:share(column, opts) end
---@param i integer
---@return "total"|"subtotal"|"others"|nil
function Result:row_kind(i) end
---@return {column: string, value: any}[] the periods the extraction covers only in part
function Result:partial() end
---@return string|nil "YYYY-MM-DD", the latest date_chargement of a result grouped by a period
function Result:extraction() end
---@param opts {over: string, by: string|string[]|nil}
---@return cpf.result with column_cumul
function Result:cumsum(column, opts) end
---@param opts? {by: string|string[]|nil, desc: boolean}
---@return cpf.result with column_rang
function Result:rank(column, opts) end
---@return cpf.result
function Result:pivot(row_key, column_key, measure) end
---@param format string
---@param opts? table
---@return string
function Result:format(format, opts) end
---@param target string|file*
---@param format string
---@param opts? table
---@return true|nil ok, string? err
function Result:write(target, format, opts) end

---@class cpf.load_job
---@field path string
local load_job = {}
---false, bytes_done, bytes_total, rows while loading; then true, dataset or true, nil, message, kind.
---@return boolean finished, cpf.dataset|integer|nil, string|integer|nil, string|integer|nil
function load_job:poll() end
---Blocks until the load ends; returns what poll returns then.
---@return boolean finished, cpf.dataset|nil ds, string? err, string? kind
function load_job:wait() end
---Stops the load at its next checkpoint; poll then answers "path: load cancelled", "cancelled".
function load_job:cancel() end

---@class cpf.describe_job
local describe_job = {}
---false, columns_done, columns while it runs; then true, result or true, nil, message, kind.
---@return boolean finished, cpf.result|integer|nil, string|integer|nil, string|nil
function describe_job:poll() end
---Blocks until the description is made; returns what poll returns then.
---@return boolean finished, cpf.result|nil res, string? err, string? kind
function describe_job:wait() end
---Stops at the next column; poll then answers "describe cancelled", "cancelled".
function describe_job:cancel() end

---@class cpf
---@field _VERSION string
---@field schema table
---@field measures table<string, cpf.aggregate>
---@field formats {register: fun(name: string, fn: fun(result: cpf.result, out: {write: function}, opts: table)), names: fun(): string[], number_text: fun(v: number): string}
local cpf = {}
---@param path string|string[]
---@param opts? cpf.load_options
---@return cpf.dataset|nil ds, string? err, "data"|"io"|"memory"|"cancelled"|"callback"|"usage"|nil kind
function cpf.load(path, opts) end
---@class cpf.report
local Report = {}
---@param name? "html"|"markdown"
---@return string
function Report:format(name) end
---@param path string .md or .markdown: markdown; else html
---@param name? "html"|"markdown"
---@return true|nil ok, string? err
function Report:write(path, name) end
---One page of several results: {title =, subtitle =, source =, dataset =, locale =, sections = {{title =, result =, chart =, note =, labels =}, ...}}
---@param spec table
---@return cpf.report
function cpf.report(spec) end
---A history folder: hist:extractions(), hist:path(which), hist:open(which).
---@param dir string
---@return table|nil history, string? err, string? kind
function cpf.history(dir) end
---The data file a path stands for: a history folder's latest extraction, else the path.
---@param path string
---@return string
function cpf.history_path(path) end
---What changed between two extractions, per key: M_prec, M, M_evol and change.
---@param old cpf.dataset
---@param new cpf.dataset
---@param opts? {where?: string|string[], by?: string, measure?: string}
---@return cpf.result|nil res, string? err, string? kind
function cpf.changes(old, new, opts) end
---Each validation month's files by status family, recent cohorts flagged.
---@param ds cpf.dataset
---@param opts? {where?: string|string[], recent_months?: integer}
---@return cpf.result|nil res, string? err, string? kind
function cpf.cohorts(ds, opts) end
---The current extraction from the portal into a history folder.
---@param opts {dir: string, url?: string, retries?: integer, backoff?: number, max_wait?: number, threads?: integer, progress?: fun(step: string, done: integer, total: integer, attempt: integer)}
---@return {status: "new"|"unchanged", date: string, snapshot: string, rows: integer, bytes?: integer, resumed?: integer, attempts?: integer}|nil answer, string? err, "io"|"data"|"cancelled"|nil kind
function cpf.fetch(opts) end
---The same as a job to poll: poll() -> false, step, done, total, attempt | true, answer | true, nil, message, kind.
---@param opts {dir: string, url?: string, retries?: integer, backoff?: number, max_wait?: number, threads?: integer}
---@return table job
function cpf.fetch_async(opts) end
---A background load: cpf's threads read the CSV, the job is polled from Lua.
---@param path string
---@param opts? cpf.load_options without progress
---@return cpf.load_job|nil job, string? err, "data"|"io"|"memory"|"usage"|nil kind
function cpf.load_async(path, opts) end
---@param path string
---@param opts? {sep?: string, types?: table<string, string>}
---@return {name: string, label: string, type: string}[]|nil columns, string? err
function cpf.header(path, opts) end
---@class cpf.source
---@field snapshot boolean
---@field path string
local Source = {}
---@return {name: string, label: string, type: string}[]
function Source:columns() end
---@param columns? string[]
---@return cpf.dataset|nil ds, string? err, string? kind
function Source:load(columns) end
function Source:close() end
---@param path string
---@param opts? cpf.load_options
---@return cpf.source|nil src, string? err, string? kind
function cpf.source(path, opts) end
---@param paths string[]
---@param opts? cpf.load_options
---@return cpf.dataset|nil ds, string? err, "data"|"io"|"memory"|"cancelled"|"callback"|"usage"|nil kind
function cpf.load_many(paths, opts) end
---@param path string
---@param opts? {verify?: boolean}
---@return cpf.dataset|nil ds, string? err, "data"|"io"|"memory"|"cancelled"|"callback"|"usage"|nil kind
function cpf.open(path, opts) end
---Whether the path names a snapshot (extension .cpfsnap, or first bytes CPFSNAP).
---@param path string
---@return boolean
function cpf.is_snapshot(path) end
---@param csv string
---@param out? string default csv .. ".cpfsnap"
---@param opts? cpf.load_options
---@return cpf.dataset|nil ds, string? err, "data"|"io"|"memory"|"cancelled"|"callback"|"usage"|nil kind
function cpf.convert(csv, out, opts) end
---@return cpf.result
function cpf.compare(old, new, keys, measures) end
---@param columns string[]
---@param rows table[]
---@param keys? string[] the key columns
---@param kinds? table<string, "count"|"money"|"rate"|"number"|"key"> what each column holds
---@return cpf.result
function cpf.result(columns, rows, keys, kinds) end
---@return string
function cpf.human_bytes(n) end
---@return string
function cpf.bar(value, max, opts) end
---@return cpf.condition
function cpf.eq(v) end
---@return cpf.condition
function cpf.gt(v) end
---@return cpf.condition
function cpf.ge(v) end
---@return cpf.condition
function cpf.lt(v) end
---@return cpf.condition
function cpf.le(v) end
---@return cpf.condition
function cpf.between(lo, hi) end
---@return cpf.condition
function cpf.one_of(list) end
---@return cpf.condition
function cpf.prefix(p) end
---@return cpf.condition
function cpf.match(pattern) end
---@return cpf.condition
function cpf.is_null() end
---@return cpf.condition
function cpf.not_null() end
---@return cpf.condition
function cpf.not_(c) end
---@return cpf.condition
function cpf.any(list) end
---@return cpf.key|cpf.condition
function cpf.family(column_or_family) end
---@return cpf.key
function cpf.year(column) end
---@return cpf.key
function cpf.month(column) end
---@return cpf.key "2024-S2"
function cpf.semester(column) end
---@return cpf.key "2024-T1"
function cpf.quarter(column) end
---@return cpf.key 1 to 12
function cpf.month_of_year(column) end
---@return cpf.key
function cpf.bucket(column, bounds) end
---@param fn fun(value: string): string|number|boolean|nil
---@return cpf.key
function cpf.key(column, fn, name) end
---@return cpf.aggregate
function cpf.count(column) end
---@return cpf.aggregate
function cpf.sum(column) end
---@return cpf.aggregate
function cpf.mean(column) end
---@return cpf.aggregate
function cpf.min(column) end
---@return cpf.aggregate
function cpf.max(column) end
---@return cpf.aggregate
function cpf.distinct(column) end
---@return cpf.aggregate
function cpf.median(column) end
---@return cpf.aggregate
function cpf.quantile(column, q) end
---@return cpf.aggregate
function cpf.ratio(a, b) end
---@return cpf.aggregate
function cpf.wmean(x, w) end
---@param inner cpf.aggregate|string an aggregate, or a column name (its sum)
---@return cpf.aggregate
function cpf.share(inner) end
---@param inner cpf.aggregate|string an aggregate or a measure name
---@param where table|fun(row: table): boolean
---@return cpf.aggregate
function cpf.filtered(inner, where) end
---@param parts (cpf.aggregate|string)[] aggregates or measure names
---@param fn fun(...): any
---@return cpf.aggregate
function cpf.combine(parts, fn) end
---@return cpf.aggregate
function cpf.reduce(spec) end

return cpf

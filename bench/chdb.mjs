// chdb.mjs: the chDB peer of the cpf benchmarks: ClickHouse in process,
// through the chdb package (its engine, libchdb, comes in @chdb/lib-*, an
// optional dependency npm picks for the platform). Arguments and modes:
// bench/peer_lib.mjs.
//   oneshot  new session + the region x year GROUP BY straight from the CSV
//            (the file() table function), to the result in JS.
//   warm     CREATE TABLE t ENGINE = Memory AS SELECT * FROM file(...) (the
//            "load" line), then each class of bench/classes.mjs on t; a timed
//            run is session.query(sql, 'TabSeparated'): the whole result as
//            one string in JS, ClickHouse's cheapest text answer (the answer
//            files are written from its JSONCompact output instead, which
//            keeps text and NULL apart). join_ref's reference table: CREATE
//            TABLE ref ENGINE = Memory, once, untimed.
// Lines: {"tool":"chdb","mode":M,"threads":N,"seconds":S,...}
import { START, now, parseArgs, readHeader, normalise, columnType, sqlString, quoteIdent, sqlColumns, emit,
  maxrssKb, warm, summarise, main, checkRef, REF_COLUMNS } from './peer_lib.mjs';
import { CLASSES, ONESHOT_SQL, EXPORT_SQL } from './classes.mjs';

// quantileExactInclusive: linear interpolation between the exact order
// statistics, R's type 7 (PERCENTILE.INC), as cpf.quantile.
// lagInFrame: the previous row of the window frame (the default frame, up to
// the current row, holds it), NULL on a partition's first row rather than
// the type's default; no QUALIFY: a window is filtered in an outer query.
const DIALECT = { quantile: (col, q) => `quantileExactInclusive(${q})(${col})`,
  lag: (col) => `lagInFrame(toNullable(${col}), 1, NULL)`, qualify: false };

// The session's settings:
// - max_threads: the thread count every engine gets.
// - aggregate_functions_null_for_empty: an aggregate over no row is NULL, as
//   in standard SQL, DuckDB and cpf (ClickHouse's sum() FILTER would give 0
//   for a group without a row of the status, class "filtered").
// - the CSV dialect of the export: ';' separator, '"' quote only (single
//   quotes are characters), fields kept as written (ClickHouse trims blanks
//   around unquoted fields by default; cpf and DuckDB keep them), an empty
//   field a NULL (Nullable columns take NULL as their default). The UTF-8 BOM
//   is skipped by ClickHouse's CSV reader.
const settings = (threads) => [
  `max_threads = ${threads}`,
  'aggregate_functions_null_for_empty = 1',
  "format_csv_delimiter = ';'",
  'format_csv_allow_single_quotes = 0',
  'format_csv_allow_double_quotes = 1',
  'input_format_csv_trim_whitespaces = 0',
  'input_format_csv_empty_as_default = 1',
];

// file() with the whole structure: the header's names, every column
// Nullable (empty fields are missing values), typed as cpf's schema says
// (columnType in bench/peer_lib.mjs: codes stay text) instead of inferred
// from a sample of the rows.
function csvSource(file, header) {
  const types = { text: 'String', integer: 'Int64', double: 'Float64' };
  const structure = header.map((name) => `${quoteIdent(name)} Nullable(${types[columnType(normalise(name))]})`)
    .join(', ');
  return `file(${sqlString(file)}, 'CSVWithNames', ${sqlString(structure)})`;
}

main('chdb', async () => {
  const opts = parseArgs('chdb');
  const { Session } = await import('chdb');
  const session = new Session();     // in-memory database in a temporary directory
  if (opts.probe) {
    const version = session.query('SELECT version()', 'TabSeparated').trim();
    emit({ tool: '_peer', engine: 'chdb', version });
    session.close();
    return;
  }
  for (const s of settings(opts.threads)) session.query(`SET ${s}`);
  const header = readHeader(opts.file);
  const c = sqlColumns(header);
  const source = csvSource(opts.file, header);
  const json = (sql) => JSON.parse(session.query(sql, 'JSONCompact'));

  if (opts.mode === 'export') { // the session's CSV dialect (';') on output too; NULL as an empty field
    session.query("SET format_csv_null_representation = ''");
    session.query(`${EXPORT_SQL(c, source)} INTO OUTFILE ${sqlString(opts.out)} TRUNCATE FORMAT CSVWithNames`);
    const seconds = now() - START;
    emit({ tool: 'chdb', mode: 'export', threads: opts.threads, seconds, out: opts.out, maxrss_kb: maxrssKb() });
    session.close();
    return;
  }
  if (opts.mode === 'oneshot') {
    const out = json(ONESHOT_SQL(c, source));
    const names = out.meta.map((m) => m.name);
    const rows = out.data.map((r) => Object.fromEntries(names.map((n, i) => [n, r[i]])));
    const seconds = now() - START;
    emit({ tool: 'chdb', mode: 'oneshot', threads: opts.threads, seconds, ...summarise(rows), maxrss_kb: maxrssKb() });
    session.close();
    return;
  }

  const t0 = now();
  session.query(`CREATE TABLE t ENGINE = Memory AS SELECT * FROM ${source}`);
  const loadSeconds = now() - t0;
  const count = session.query('SELECT count() FROM t', 'TabSeparated').trim();
  emit({ tool: 'chdb', mode: 'load', threads: opts.threads, seconds: loadSeconds, rows: Number(count),
    maxrss_kb: maxrssKb() });

  let refLoaded = false;
  await warm(opts, 'chdb', {
    answer(cls) {
      if (cls.ref && !refLoaded) {     // once, untimed: join_ref's reference table, both columns text
        const structure = REF_COLUMNS.map((name) => `${quoteIdent(name)} Nullable(String)`).join(', ');
        session.query(`CREATE TABLE ref ENGINE = Memory AS SELECT * FROM file(${sqlString(checkRef(opts.file))},`
          + ` 'CSVWithNames', ${sqlString(structure)})`);
        refLoaded = true;
      }
      const out = json(cls.sql(c, DIALECT, 't', 'ref'));
      return { names: out.meta.map((m) => m.name), rows: out.data };
    },
    run: (cls) => session.query(cls.sql(c, DIALECT, 't', 'ref'), 'TabSeparated'),
    // rows of the TSV answer (each ends with a line feed; text escapes its own)
    count: (text) => {
      let n = 0;
      for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
      return n;
    },
  }, CLASSES);
  session.close();
});

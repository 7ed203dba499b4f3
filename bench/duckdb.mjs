// duckdb.mjs: the DuckDB peer of the cpf benchmarks, through @duckdb/node-api
// (in-memory instance, `threads` set). Arguments and modes: bench/peer_lib.mjs.
//   oneshot  new instance + the region x year GROUP BY straight from the CSV
//            (read_csv), to the rows in JS.
//   warm     CREATE TABLE t AS SELECT * FROM read_csv(...) (the "load"
//            line), then each class of bench/classes.mjs on t; a timed run is
//            runAndReadAll: the result materialised, as DuckDB hands it to JS.
//            join_ref's reference table: CREATE TABLE ref, once, untimed.
//   export   new instance + COPY (rncp_month's query on read_csv) TO --out.
// Lines: {"tool":"duckdb","mode":M,"threads":N,"seconds":S,...}
import { START, now, parseArgs, readHeader, normalise, sqlString, sqlColumns, TEXT_COLUMNS, emit, maxrssKb,
  warm, summarise, main, checkRef, REF_COLUMNS } from './peer_lib.mjs';
import { CLASSES, ONESHOT_SQL, EXPORT_SQL } from './classes.mjs';

// Why these options:
// - delim/quote/escape/header: the Opendatasoft export (';', '"' doubled).
//   DuckDB strips the UTF-8 BOM itself and accepts LF or CRLF; quoted fields
//   with ';', '""' and line breaks parse with the defaults (rows are counted
//   to prove it). Empty fields are missing values (NULL), as in cpf.
// - types: the sniffer only samples the file (20480 rows by default), so it
//   may type codes as integers (losing the leading zeros of "01", failing on
//   "2A" met later) or "date validation" as DATE (failing on "YYYY-MM"). The
//   code and month columns stay text, as cpf keeps them. Only the columns
//   present are named: read_csv rejects types for absent columns.
function csvSource(file, header) {
  const types = header.filter((name) => TEXT_COLUMNS.includes(normalise(name)))
    .map((name) => `${sqlString(name)}: 'VARCHAR'`).join(', ');
  return `read_csv(${sqlString(file)}, delim=';', quote='"', escape='"', header=true` +
    (types ? `, types={${types}})` : ')');
}

// quantile_cont: linear interpolation between order statistics, R's type 7,
// as cpf.quantile; lag: the previous row of the window; QUALIFY filters on a
// window function in the query that computes it.
const DIALECT = { quantile: (col, q) => `quantile_cont(${col}, ${q})`, lag: (col) => `lag(${col})`, qualify: true };

// join_ref's reference table (bench/peer_lib.mjs, refPath), both columns text.
function refSource(file) {
  const columns = REF_COLUMNS.map((name) => `${sqlString(name)}: 'VARCHAR'`).join(', ');
  return `read_csv(${sqlString(checkRef(file))}, delim=';', quote='"', escape='"', header=true, columns={${columns}})`;
}

main('duckdb', async () => {
  const opts = parseArgs('duckdb');
  const { DuckDBInstance } = await import('@duckdb/node-api');
  if (opts.probe) {
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    const version = (await connection.runAndReadAll('SELECT version()')).getRowsJS()[0][0];
    emit({ tool: '_peer', engine: 'duckdb', version: String(version) });
    return;
  }
  const header = readHeader(opts.file);
  const c = sqlColumns(header);
  const source = csvSource(opts.file, header);
  const instance = await DuckDBInstance.create(':memory:', { threads: String(opts.threads) });
  const connection = await instance.connect();

  if (opts.mode === 'export') {
    await connection.run(`COPY (${EXPORT_SQL(c, source)}) TO ${sqlString(opts.out)} (HEADER, DELIMITER ',')`);
    const seconds = now() - START;
    emit({ tool: 'duckdb', mode: 'export', threads: opts.threads, seconds, out: opts.out, maxrss_kb: maxrssKb() });
    return;
  }
  if (opts.mode === 'oneshot') {
    const reader = await connection.runAndReadAll(ONESHOT_SQL(c, source));
    const rows = reader.getRowObjectsJS();
    const seconds = now() - START;
    emit({ tool: 'duckdb', mode: 'oneshot', threads: opts.threads, seconds, ...summarise(rows), maxrss_kb: maxrssKb() });
    return;
  }

  const t0 = now();
  await connection.run(`CREATE TABLE t AS SELECT * FROM ${source}`);
  const loadSeconds = now() - t0;
  const count = (await connection.runAndReadAll('SELECT count(*) FROM t')).getRowsJS()[0][0];
  emit({ tool: 'duckdb', mode: 'load', threads: opts.threads, seconds: loadSeconds, rows: Number(count),
    maxrss_kb: maxrssKb() });

  let refLoaded = false;
  await warm(opts, 'duckdb', {
    async answer(cls) {
      if (cls.ref && !refLoaded) {     // once, untimed
        await connection.run(`CREATE TABLE ref AS SELECT * FROM ${refSource(opts.file)}`);
        refLoaded = true;
      }
      const reader = await connection.runAndReadAll(cls.sql(c, DIALECT, 't', 'ref'));
      return { names: reader.columnNames(), rows: reader.getRowsJS() };
    },
    run: (cls) => connection.runAndReadAll(cls.sql(c, DIALECT, 't', 'ref')),
    count: (reader) => reader.currentRowCount,
  }, CLASSES);
});

// duckdb.mjs: the DuckDB peer for the cpf benchmarks -- the same "files,
// amount and average price by region and year" query, through @duckdb/node-api.
//
// Usage: node bench/duckdb.mjs FILE [--threads N] [--mode oneshot|load|warm]
//   oneshot  fresh in-memory instance, GROUP BY straight from the CSV; timed
//            from before the instance is created to the result rows in JS.
//   load     CREATE TABLE t AS SELECT * FROM read_csv(...), timed alone.
//   warm     load t (not timed), then the GROUP BY on t, 5 runs, median.
// Prints one JSON line:
//   {"tool":"duckdb","mode":M,"threads":N,"seconds":S,"rows":R,"groups":G,
//    "sum_dossiers":D,"sum_montant":A,"maxrss_kb":K}
// rows = data rows read (header excluded); sum_* are checksums over all groups.
import { openSync, readSync, closeSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';

function usage(message) {
  if (message) process.stderr.write(`duckdb.mjs: ${message}\n`);
  process.stderr.write('usage: node bench/duckdb.mjs FILE [--threads N] [--mode oneshot|load|warm]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { file: null, threads: 1, mode: 'oneshot' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--threads') opts.threads = Number(argv[++i]);
    else if (a === '--mode') opts.mode = argv[++i];
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else if (opts.file === null) opts.file = a;
    else usage(`unexpected argument ${a}`);
  }
  if (opts.file === null) usage('missing FILE');
  if (!Number.isInteger(opts.threads) || opts.threads < 1) usage('--threads wants a positive integer');
  if (!['oneshot', 'load', 'warm'].includes(opts.mode)) usage(`unknown mode ${opts.mode}`);
  return opts;
}

const sqlString = (s) => `'${String(s).replaceAll("'", "''")}'`;

// The header line, BOM stripped: picks the spelling of the columns (export
// labels like "date validation" or API names like "date_validation").
function readHeader(file) {
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(65536);
  const n = readSync(fd, buf, 0, buf.length, 0);
  closeSync(fd);
  let line = buf.subarray(0, n).toString('utf8').split('\n')[0];
  line = line.replace(/^\uFEFF/, '').replace(/\r$/, '');
  return line.split(';').map((name) => name.replace(/^"(.*)"$/, '$1'));
}

const normalise = (name) => name.toLowerCase().normalize('NFD').replace(/[\u0300-\u036f]/g, '')
  .replace(/[ .\-]/g, '_');

// Why these options:
// - delim/quote/escape/header: the Opendatasoft export (';', '"' doubled).
//   DuckDB strips the UTF-8 BOM itself and accepts LF or CRLF; quoted fields
//   with ';', '""' and line breaks parse with the defaults (rows are counted
//   to prove it).
// - types: the sniffer only samples the file (20480 rows by default), so it
//   may type codes as integers (losing the leading zeros of "01", failing on
//   "2A" met later) or "date validation" as DATE (failing on "YYYY-MM"). The
//   code and month columns stay text, as cpf keeps them. Only the columns
//   present are named: read_csv rejects types for absent columns.
const TEXT_COLUMNS = ['date_validation', 'code_rs', 'code_rncp', 'formacode_principal',
  'code_officiel_departement', 'code_officiel_region'];

function csvSource(file, header) {
  const types = header.filter((name) => TEXT_COLUMNS.includes(normalise(name)))
    .map((name) => `${sqlString(name)}: 'VARCHAR'`).join(', ');
  return `read_csv(${sqlString(file)}, delim=';', quote='"', escape='"', header=true` +
    (types ? `, types={${types}})` : ')');
}

const quoteIdent = (name) => `"${name.replaceAll('"', '""')}"`;

function findColumn(header, wanted) {
  const name = header.find((h) => normalise(h) === wanted);
  if (name === undefined) throw new Error(`no column ${wanted} in the header`);
  return quoteIdent(name);
}

function groupBy(source, header) {
  const region = findColumn(header, 'region_lieu_formation');
  const month = findColumn(header, 'date_validation');
  const dossiers = findColumn(header, 'nb_dossiers');
  const montant = findColumn(header, 'montant_engage');
  return `
  SELECT ${region} AS region,
         CAST(substr(${month}, 1, 4) AS INTEGER) AS annee,
         sum(${dossiers}) AS dossiers,
         sum(${montant}) AS montant,
         sum(${montant}) / sum(${dossiers}) AS prix,
         count(*) AS lignes
  FROM ${source}
  GROUP BY ALL`;
}

function summarise(rows) {
  let dossiers = 0, montant = 0, lignes = 0;
  for (const r of rows) {
    dossiers += Number(r.dossiers ?? 0);
    montant += Number(r.montant ?? 0);
    lignes += Number(r.lignes);
  }
  return { rows: lignes, groups: rows.length, sum_dossiers: dossiers, sum_montant: Math.round(montant * 100) / 100 };
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

async function openInstance(threads) {
  const instance = await DuckDBInstance.create(':memory:', { threads: String(threads) });
  const connection = await instance.connect();
  return { instance, connection };
}

async function query(connection, sql) {
  const reader = await connection.runAndReadAll(sql);
  return reader.getRowObjectsJS();
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const header = readHeader(opts.file);
  const source = csvSource(opts.file, header);
  const csvQuery = groupBy(source, header);
  const queryTable = groupBy('t', header);
  let seconds, summary;

  if (opts.mode === 'oneshot') {
    const t0 = now();
    const { connection } = await openInstance(opts.threads);
    const rows = await query(connection, csvQuery);
    seconds = now() - t0;
    summary = summarise(rows);
  } else if (opts.mode === 'load') {
    const { connection } = await openInstance(opts.threads);
    const t0 = now();
    await connection.run(`CREATE TABLE t AS SELECT * FROM ${source}`);
    seconds = now() - t0;
    summary = summarise(await query(connection, queryTable));
  } else {
    const { connection } = await openInstance(opts.threads);
    await connection.run(`CREATE TABLE t AS SELECT * FROM ${source}`);
    const times = [];
    let rows;
    for (let i = 0; i < 5; i++) {
      const t0 = now();
      rows = await query(connection, queryTable);
      times.push(now() - t0);
    }
    times.sort((a, b) => a - b);
    seconds = times[2];
    summary = summarise(rows);
  }

  const out = {
    tool: 'duckdb', mode: opts.mode, threads: opts.threads,
    seconds: Number(seconds.toFixed(6)),
    rows: summary.rows, groups: summary.groups,
    sum_dossiers: summary.sum_dossiers, sum_montant: summary.sum_montant,
    maxrss_kb: process.resourceUsage().maxRSS,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stderr.write(`duckdb.mjs: ${err && err.message ? err.message : err}\n`);
  process.exit(1);
});

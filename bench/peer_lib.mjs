// peer_lib.mjs: what the three peer drivers (bench/duckdb.mjs, bench/polars.mjs,
// bench/chdb.mjs) share: their command line, the CSV header and its column
// names, the column types, timing, the answer files and the JSON lines.
//
// Every driver takes the same arguments:
//   node bench/<engine>.mjs FILE [--mode oneshot|warm|export] [--threads N]
//        [--answers DIR] [--runs N] [--only CLASS,CLASS...] [--out PATH]
//   node bench/<engine>.mjs --probe
//     oneshot  fresh process: files, amount and average price by region and
//              year straight from the CSV; "seconds" from the script's first
//              line (the engine's package is imported inside the timing) to
//              the result in JS. bench/run.sh also times the whole process.
//     warm     load the CSV into the engine once (timed: one "load" line),
//              then every query class of bench/classes.mjs: one untimed run
//              (warm-up; its answer goes to DIR/<class>.<engine>.tsv with
//              --answers), then N timed runs (default 7), median and min.
//     export   fresh process: files and amount by code_rncp and month
//              (rncp_month) straight from the CSV, written to the CSV file
//              --out PATH by the engine's own writer (DuckDB COPY, polars
//              writeCSV, chDB INTO OUTFILE); "seconds" as for oneshot.
//     --probe  imports the engine's package and prints its version: run.sh
//              calls it first and reports a peer that fails it as missing.
import { openSync, readSync, closeSync, writeFileSync, existsSync } from 'node:fs';

// Wall clock in seconds (hrtime: monotonic, ns resolution).
export const now = () => Number(process.hrtime.bigint()) / 1e9;

// Taken when this module is evaluated: drivers import it first, before the
// engine's package (imported dynamically), so a one-shot's figure includes
// loading the engine as a user's script would.
export const START = now();

export function parseArgs(engine, argv = process.argv.slice(2)) {
  const usage = (message) => {
    if (message) process.stderr.write(`${engine}.mjs: ${message}\n`);
    process.stderr.write(`usage: node bench/${engine}.mjs FILE [--mode oneshot|warm|export] [--threads N]`
      + ' [--answers DIR] [--runs N] [--only CLASS,...] [--out PATH] | --probe\n');
    process.exit(2);
  };
  const opts = { file: null, mode: 'warm', threads: 2, answers: null, runs: 7, only: null, probe: false, out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--mode') opts.mode = argv[++i];
    else if (a === '--threads') opts.threads = Number(argv[++i]);
    else if (a === '--answers') opts.answers = argv[++i];
    else if (a === '--runs') opts.runs = Number(argv[++i]);
    else if (a === '--only') opts.only = new Set(String(argv[++i] ?? '').split(',').filter(Boolean));
    else if (a === '--probe') opts.probe = true;
    else if (a === '--out') opts.out = argv[++i];
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else if (opts.file === null) opts.file = a;
    else usage(`unexpected argument ${a}`);
  }
  if (opts.probe) return opts;
  if (opts.file === null) usage('missing FILE');
  if (!['oneshot', 'warm', 'export'].includes(opts.mode)) usage(`unknown mode ${opts.mode}`);
  if (opts.mode === 'export' && !opts.out) usage('--mode export wants --out PATH');
  if (!Number.isInteger(opts.threads) || opts.threads < 1) usage('--threads wants a positive integer');
  if (!Number.isInteger(opts.runs) || opts.runs < 1) usage('--runs wants a positive integer');
  return opts;
}

// ------------------------------------------------------------------ columns

// The header line, BOM stripped: gives the spelling of the columns (export
// labels like "date validation" or API names like "date_validation").
export function readHeader(file) {
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(65536);
  const n = readSync(fd, buf, 0, buf.length, 0);
  closeSync(fd);
  let line = buf.subarray(0, n).toString('utf8').split('\n')[0];
  line = line.replace(/^\uFEFF/, '').replace(/\r$/, '');
  return line.split(';').map((name) => name.replace(/^"(.*)"$/, '$1').replaceAll('""', '"'));
}

// cpf's header normalisation (lua/cpf/schema.lua): lowercase, accents
// stripped, runs of spaces, dots, hyphens and apostrophes -> "_"; and the
// older spelling of the one renamed column the classes read.
const ALIASES = { code_inventaire: 'code_rs' };
export function normalise(name) {
  const n = name.toLowerCase().normalize('NFD').replace(/[\u0300-\u036f]/g, '')
    .replace(/[ .\-'\u2019]+/g, '_');
  return ALIASES[n] ?? n;
}

// canonical name -> the header's spelling, for the columns the header has.
export function columnNames(header) {
  const names = {};
  for (const h of header) names[normalise(h)] ??= h;
  return new Proxy(names, {
    get(target, key) {
      if (typeof key === 'string' && !(key in target)) throw new Error(`no column ${key} in the header`);
      return target[key];
    },
  });
}

// The type each engine is told to read a column as, by canonical name, as
// cpf's schema has them: counts are integers, money, prices and durations
// doubles, everything else text. Text matters most: an engine that infers
// types from a sample would read the codes (code_rncp, code_rs, formacode,
// the department code) as integers, losing the leading zeros of "01" or
// failing on "2A" met later, and "date validation" ("YYYY-MM" or
// "YYYY-MM-DD") as a date. Unknown columns are text: nothing reads them.
export function columnType(canonical) {
  if (canonical.startsWith('nb_') || canonical === 'annee_validation') return 'integer';
  if (canonical.startsWith('part_') || ['prix_moyen', 'montant_engage', 'duree_moyenne'].includes(canonical)) {
    return 'double';
  }
  return 'text';
}

// The columns DuckDB is told are text (it infers the others from a sample).
export const TEXT_COLUMNS = ['date_validation', 'code_rs', 'code_rncp', 'formacode_principal',
  'code_officiel_departement', 'code_officiel_region'];

// The reference table of the warm class join_ref, beside the data file (bench/ref_rncp.lua
// writes it; bench/lib.lua's ref_path gives the same name): `code_rncp;libelle`, one row per
// code, both columns read as text by every engine. Loaded once per process, untimed, when the
// class first runs; a missing file fails that class only, saying how to write it.
export const refPath = (file) => file.replace(/\.csv$/, '') + '.ref-rncp.csv';
export const REF_COLUMNS = ['code_rncp', 'libelle'];
export function checkRef(file) {
  const ref = refPath(file);
  if (!existsSync(ref)) throw new Error(`no reference table ${ref}: write it with \`lua5.4 bench/ref_rncp.lua ${file}\``);
  return ref;
}

export const sqlString = (s) => `'${String(s).replaceAll("'", "''")}'`;
// Double quotes quote an identifier in DuckDB and in ClickHouse alike.
export const quoteIdent = (name) => `"${name.replaceAll('"', '""')}"`;

// canonical name -> quoted identifier, for the SQL peers.
export function sqlColumns(header) {
  const names = columnNames(header);
  return new Proxy({}, { get: (_, key) => quoteIdent(names[key]) });
}

// ------------------------------------------------------------------- timing

// n runs of an (async) function: median and min, in seconds, and the last
// run's value.
export async function timed(n, fn) {
  const times = [];
  let value;
  for (let i = 0; i < n; i++) {
    const t0 = now();
    value = await fn();
    times.push(now() - t0);
  }
  times.sort((a, b) => a - b);
  const m = Math.floor((n - 1) / 2);
  const median = n % 2 === 1 ? times[m] : (times[m] + times[m + 1]) / 2;
  return { median, min: times[0], value };
}

// Peak resident size of this process in kB (node's own runtime included).
export const maxrssKb = () => process.resourceUsage().maxRSS;

export function emit(line) {
  for (const k of ['seconds', 'min_seconds']) {
    if (typeof line[k] === 'number') line[k] = Number(line[k].toFixed(6));
  }
  process.stdout.write(JSON.stringify(line) + '\n');
}

// ------------------------------------------------------------------ answers

// One cell of an answer file; the same rules as bench/cpf_query.lua: \N for
// a missing value, text with backslash, tab, CR and LF escaped (a key or text
// column's strings as they are, even when they look like numbers), counts
// exact, money to the cent, the rest with 12 significant digits.
function cell(v, kind) {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'string') {
    // chDB's JSON quotes 64-bit integers: a number in a string
    if (kind === 'key' || kind === 'text' || !/^-?[0-9.eE+-]+$/.test(v)) {
      return v.replace(/[\\\t\r\n]/g, (c) => ({ '\\': '\\\\', '\t': '\\t', '\r': '\\r', '\n': '\\n' })[c]);
    }
    v = /^-?[0-9]+$/.test(v) ? BigInt(v) : Number(v);
  }
  if (typeof v === 'bigint') return kind === 'money' ? `${v}.00` : v.toString();
  if (typeof v === 'boolean') return String(v);
  if (kind === 'money') return v.toFixed(2);
  if (kind === 'real') return Number(v.toPrecision(12)).toString();
  if (Number.isInteger(v)) return v.toString();
  return Number(v.toPrecision(12)).toString();
}

// Writes DIR/<class>.<engine>.tsv from the answer's column names and rows
// (arrays in column order). The names must be the class's: a peer whose
// query names a column otherwise fails here rather than in the comparison.
export function writeAnswer(dir, cls, engine, names, rows) {
  const expected = cls.columns.map(([name]) => name);
  if (names.join(',') !== expected.join(',')) {
    throw new Error(`class ${cls.name}: columns ${names.join(',')}, expected ${expected.join(',')}`);
  }
  const lines = [cls.columns.map(([name, kind]) => `${name}:${kind}`).join('\t')];
  for (const row of rows) lines.push(row.map((v, i) => cell(v, cls.columns[i][1])).join('\t'));
  writeFileSync(`${dir}/${cls.name}.${engine}.tsv`, lines.join('\n') + '\n');
}

// ------------------------------------------------------------------ drivers

// The common warm loop: for each class, the untimed answer run, then the
// timed runs. `engine` gives load(), answer(cls) -> {names, rows} and
// run(cls) -> the engine's result as a user gets it, count(result) -> rows.
// A class that fails is reported by a "_failed_class" line and the others go
// on; the process then exits 1 so that run.sh counts the failure.
export async function warm(opts, engineName, engine, classes) {
  let failed = false;
  for (const cls of classes) {
    if (opts.only && !opts.only.has(cls.name)) continue;
    try {
      const answer = await engine.answer(cls);
      if (opts.answers) writeAnswer(opts.answers, cls, engineName, answer.names, answer.rows);
      const t = await timed(opts.runs, () => engine.run(cls));
      emit({
        tool: engineName, mode: 'warm', class: cls.name, threads: opts.threads,
        seconds: t.median, min_seconds: t.min, groups: engine.count(t.value), maxrss_kb: maxrssKb(),
      });
    } catch (err) {
      failed = true;
      process.stderr.write(`${engineName}.mjs: class ${cls.name}: ${err && err.message ? err.message : err}\n`);
      emit({ tool: '_failed_class', engine: engineName, class: cls.name,
        error: String(err && err.message ? err.message : err).split('\n')[0].slice(0, 300) });
    }
  }
  if (failed) process.exitCode = 1;
}

// Σ over the one-shot's rows: the totals check of bench/report.lua.
export function summarise(rows) {
  let dossiers = 0, montant = 0, lignes = 0;
  for (const r of rows) {
    dossiers += Number(r.dossiers ?? 0);
    montant += Number(r.montant ?? 0);
    lignes += Number(r.lignes);
  }
  return { rows: lignes, groups: rows.length, sum_dossiers: dossiers, sum_montant: Math.round(montant * 100) / 100 };
}

export function main(engineName, fn) {
  fn().catch((err) => {
    process.stderr.write(`${engineName}.mjs: ${err && err.message ? err.message : err}\n`);
    process.exit(1);
  });
}

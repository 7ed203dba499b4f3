// polars.mjs: the polars peer of the cpf benchmarks, through nodejs-polars
// (its native package named in bench/package.json: npm would skip it under
// node 20). Threads: POLARS_MAX_THREADS, set before the package is imported
// (polars reads it once, when its thread pool starts). Arguments and modes:
// bench/peer_lib.mjs.
//   oneshot  scanCSV (lazy: only the columns the query needs are parsed) +
//            the region x year groupBy, collected into a DataFrame.
//   warm     readCSV into a DataFrame (the "load" line), then each class of
//            bench/classes.mjs as a lazy query on it; a timed run is
//            collectSync(): the result as a DataFrame in JS. join_ref's
//            reference table: readCSV, once, untimed.
// Lines: {"tool":"polars","mode":M,"threads":N,"seconds":S,...}
import { START, now, parseArgs, readHeader, columnNames, normalise, columnType, emit, maxrssKb, warm,
  summarise, main, checkRef, REF_COLUMNS } from './peer_lib.mjs';
import { CLASSES, oneshotPolars, exportPolars } from './classes.mjs';

main('polars', async () => {
  const opts = parseArgs('polars');
  process.env.POLARS_MAX_THREADS = String(opts.threads);
  const { default: pl } = await import('nodejs-polars');
  if (opts.probe) {
    // a DataFrame proves the native library loads, not only the JS wrapper
    const df = pl.DataFrame({ a: [1, 2] });
    emit({ tool: '_peer', engine: 'polars', version: String(pl.version), check: df.height });
    return;
  }
  const header = readHeader(opts.file);
  const c = columnNames(header);
  // The whole schema, by the header's names (BOM stripped: polars strips it
  // too): polars infers types from the first 100 rows by default, which would
  // read the codes as integers (see columnType in bench/peer_lib.mjs).
  const types = { text: pl.Utf8, integer: pl.Int64, double: pl.Float64 };
  const schema = {};
  for (const name of header) schema[name] = types[columnType(normalise(name))];
  // ';' separator, '"' quote doubled inside quotes; an empty field is a
  // missing value (missingIsNull / not missingUtf8IsEmptyString), as in cpf.
  const csvOptions = { sep: ';', quoteChar: '"', hasHeader: true, schema };

  if (opts.mode === 'export') {
    exportPolars(pl, pl.scanCSV(opts.file, csvOptions), c).collectSync().writeCSV(opts.out);
    const seconds = now() - START;
    emit({ tool: 'polars', mode: 'export', threads: opts.threads, seconds, out: opts.out, maxrss_kb: maxrssKb() });
    return;
  }
  if (opts.mode === 'oneshot') {
    const lf = pl.scanCSV(opts.file, csvOptions);
    const df = oneshotPolars(pl, lf, c).collectSync();
    const rows = df.toRecords();
    const seconds = now() - START;
    emit({ tool: 'polars', mode: 'oneshot', threads: opts.threads, seconds, ...summarise(rows), maxrss_kb: maxrssKb() });
    return;
  }

  const t0 = now();
  // rechunk: one contiguous buffer per column, what a query on a loaded frame
  // wants (python's read_csv does it by default, the node binding does not)
  const df = pl.readCSV(opts.file, { ...csvOptions, rechunk: true, numThreads: opts.threads, missingIsNull: true });
  const loadSeconds = now() - t0;
  emit({ tool: 'polars', mode: 'load', threads: opts.threads, seconds: loadSeconds, rows: df.height,
    maxrss_kb: maxrssKb() });

  // join_ref's reference table, read once, untimed, before the class's first run; both columns text
  let ref = null;
  const run = (cls) => cls.polars(pl, df.lazy(), c, ref && ref.lazy()).collectSync();
  await warm(opts, 'polars', {
    answer(cls) {
      if (cls.ref && !ref) {
        ref = pl.readCSV(checkRef(opts.file), { sep: ';', quoteChar: '"', hasHeader: true, missingIsNull: true,
          schema: Object.fromEntries(REF_COLUMNS.map((name) => [name, pl.Utf8])) });
      }
      const res = run(cls);
      const names = res.columns;
      const columns = names.map((name) => res.getColumn(name).toArray());
      const rows = [];
      for (let i = 0; i < res.height; i++) rows.push(columns.map((col) => col[i]));
      return { names, rows };
    },
    run,
    count: (res) => res.height,
  }, CLASSES);
});

// classes.mjs: the warm query classes of the side-by-side benchmark, as the
// peers run them: one SQL text for DuckDB and chDB (only the quantile and lag
// functions are spelled per dialect, and DuckDB filters a window with QUALIFY
// where ClickHouse needs a subquery) and one polars expression. The cpf side of
// each class is in bench/cpf_query.lua, under the same name, with the same
// result columns in the same order.
//
// Rows come in cpf's default order, so that answers compare row by row: by
// the keys ascending (text in byte order: both SQL engines and polars compare
// strings by their bytes), missing values last; top10 by amount descending.
//
// Each class: name; columns, [name, kind] in result order (kinds: key, count,
// money, real, text; bench/report.lua compares values by kind); sql(c, d,
// from, ref), with c the quoted identifiers by canonical name, d the dialect,
// from the table, ref the reference table's name; polars(pl, lf, c, ref),
// with lf the LazyFrame, c the header's spellings by canonical name and ref
// the reference table as a LazyFrame. A class with `ref: true` reads the
// reference table (bench/peer_lib.mjs, refPath): the driver loads it once,
// untimed, before the class's first run.

import { sqlString } from './peer_lib.mjs';

export const CLOS = 'Clos - Réalisation Totale'; // the most frequent status of the export
export const PREFIX = '37';                      // ~9 % of the rows: code_rncp starting with it
export const AMOUNT = 1000;                      // montant_engage > 1000: about half of the rows
export const MIN_FILES = 100;                    // having: code_rncp x month groups of >= 100 files
export const TOP = 3;                            // top3_per_region: the first 3 rows of each region

// The CPF measures (cpf.measures, doc/api.md): dossiers = Σ nb_dossiers,
// montant = Σ montant_engage, prix_moyen = Σ montant_engage / Σ nb_dossiers
// (no value, rather than a division by zero, when there are no files).
const DOSSIERS = (c) => `sum(${c.nb_dossiers}) AS dossiers`;
const MONTANT = (c) => `sum(${c.montant_engage}) AS montant`;
const PRIX = (c) => `sum(${c.montant_engage}) / nullif(sum(${c.nb_dossiers}), 0) AS prix_moyen`;
// cpf.year / cpf.month of "date validation" ("YYYY-MM" or "YYYY-MM-DD")
const YEAR = (c) => `CAST(substr(${c.date_validation}, 1, 4) AS INTEGER) AS annee`;
const MONTH = (c) => `substr(${c.date_validation}, 1, 7) AS mois`;
const REGION = (c) => `${c.region_lieu_formation} AS region_lieu_formation`;
const ASC = (...keys) => keys.map((k) => `${k} ASC NULLS LAST`).join(', ');

const regionYearSql = (c, from, where = '') => `
  SELECT ${REGION(c)}, ${YEAR(c)}, ${DOSSIERS(c)}, ${MONTANT(c)}, ${PRIX(c)}
  FROM ${from} ${where}
  GROUP BY ALL ORDER BY ${ASC('region_lieu_formation', 'annee')}`;

// polars: the same measures and keys as expressions.
const P = {
  region: (pl, c) => pl.col(c.region_lieu_formation).alias('region_lieu_formation'),
  year: (pl, c) => pl.col(c.date_validation).str.slice(0, 4).cast(pl.Int32).alias('annee'),
  month: (pl, c) => pl.col(c.date_validation).str.slice(0, 7).alias('mois'),
  dossiers: (pl, c) => pl.col(c.nb_dossiers).sum().alias('dossiers'),
  montant: (pl, c) => pl.col(c.montant_engage).sum().alias('montant'),
  prix: (pl, c) => pl.when(pl.col(c.nb_dossiers).sum().neq(0))
    .then(pl.col(c.montant_engage).sum().div(pl.col(c.nb_dossiers).sum())).otherwise(pl.lit(null))
    .alias('prix_moyen'),
};
// sort(by, descending, nullsLast)
const ascending = (lf, keys) => lf.sort(keys, false, true);
const regionYearPolars = (pl, lf, c) => ascending(
  lf.groupBy([P.region(pl, c), P.year(pl, c)])
    .agg(P.dossiers(pl, c), P.montant(pl, c), P.prix(pl, c)),
  ['region_lieu_formation', 'annee']);

const BY_REGION_YEAR = [['region_lieu_formation', 'key'], ['annee', 'key'], ['dossiers', 'count'],
  ['montant', 'money'], ['prix_moyen', 'real']];

const byCodeMonth = (code) => ({
  columns: [[code, 'key'], ['mois', 'key'], ['dossiers', 'count'], ['montant', 'money']],
  sql: (c, d, from) => `
    SELECT ${c[code]} AS ${code}, ${MONTH(c)}, ${DOSSIERS(c)}, ${MONTANT(c)}
    FROM ${from} GROUP BY ALL ORDER BY ${ASC(code, 'mois')}`,
  polars: (pl, lf, c) => ascending(
    lf.groupBy([pl.col(c[code]).alias(code), P.month(pl, c)]).agg(P.dossiers(pl, c), P.montant(pl, c)),
    [code, 'mois']),
});

// code_rncp x month, files and amount, unordered: the base of having and join_ref.
const BY_CODE_MONTH = [['code_rncp', 'key'], ['mois', 'key'], ['dossiers', 'count'], ['montant', 'money']];
const codeMonthSql = (c, from) => `
  SELECT ${c.code_rncp} AS code_rncp, ${MONTH(c)}, ${DOSSIERS(c)}, ${MONTANT(c)} FROM ${from} GROUP BY ALL`;
const codeMonthPolars = (pl, lf, c) => lf.groupBy([pl.col(c.code_rncp).alias('code_rncp'), P.month(pl, c)])
  .agg(P.dossiers(pl, c), P.montant(pl, c));
// top3_per_region's order: region, amount descending, code
const TOP_ORDER = ['region_lieu_formation ASC NULLS LAST', 'montant DESC NULLS LAST', 'code_rncp ASC NULLS LAST'];

// A condition, then files, amount and average price by region and year.
const filteredRegionYear = (sqlWhere, polarsWhere) => ({
  columns: BY_REGION_YEAR,
  sql: (c, d, from) => regionYearSql(c, from, `WHERE ${sqlWhere(c)}`),
  polars: (pl, lf, c) => regionYearPolars(pl, lf.filter(polarsWhere(pl, c)), c),
});
const eqWhere = [(c) => `${c.statut_dossier} = ${sqlString(CLOS)}`, (pl, c) => pl.col(c.statut_dossier).eq(pl.lit(CLOS))];
const prefixWhere = [(c) => `${c.code_rncp} LIKE ${sqlString(PREFIX + '%')}`,
  (pl, c) => pl.col(c.code_rncp).str.startsWith(PREFIX)];
const gtWhere = [(c) => `${c.montant_engage} > ${AMOUNT}`, (pl, c) => pl.col(c.montant_engage).gt(AMOUNT)];

export const CLASSES = [
  { name: 'region_year', columns: BY_REGION_YEAR,
    sql: (c, d, from) => regionYearSql(c, from), polars: regionYearPolars },
  { name: 'rncp_month', ...byCodeMonth('code_rncp') },
  { name: 'rs_month', ...byCodeMonth('code_rs') },
  { name: 'eq_filter', ...filteredRegionYear(...eqWhere) },
  // cpf: a Lua function of the value; the peers: their prefix test
  { name: 'prefix_fn', ...filteredRegionYear(...prefixWhere) },
  { name: 'gt_filter', ...filteredRegionYear(...gtWhere) },
  // cpf: a Lua function of the amount; the peers run gt_filter's query again
  { name: 'gt_fn', ...filteredRegionYear(...gtWhere) },
  { name: 'quantiles', columns: [['region_lieu_formation', 'key'], ['mediane', 'real'], ['p90', 'real']],
    sql: (c, d, from) => `
      SELECT ${REGION(c)}, ${d.quantile(c.montant_engage, 0.5)} AS mediane,
             ${d.quantile(c.montant_engage, 0.9)} AS p90
      FROM ${from} GROUP BY ALL ORDER BY ${ASC('region_lieu_formation')}`,
    polars: (pl, lf, c) => ascending(lf.groupBy(P.region(pl, c)).agg(
      pl.col(c.montant_engage).median().alias('mediane'),
      pl.col(c.montant_engage).quantile(0.9, 'linear').alias('p90')), ['region_lieu_formation']) },
  { name: 'median_all', columns: [['mediane', 'real']],
    sql: (c, d, from) => `SELECT ${d.quantile(c.montant_engage, 0.5)} AS mediane FROM ${from}`,
    polars: (pl, lf, c) => lf.select(pl.col(c.montant_engage).median().alias('mediane')) },
  { name: 'distinct', columns: [['region_lieu_formation', 'key'], ['certifications', 'count']],
    sql: (c, d, from) => `
      SELECT ${REGION(c)}, count(DISTINCT ${c.code_rncp}) AS certifications
      FROM ${from} GROUP BY ALL ORDER BY ${ASC('region_lieu_formation')}`,
    // nUnique counts a missing value as one more: SQL's count(DISTINCT) and cpf do not
    polars: (pl, lf, c) => ascending(lf.groupBy(P.region(pl, c))
      .agg(pl.col(c.code_rncp).dropNulls().nUnique().alias('certifications')), ['region_lieu_formation']) },
  { name: 'top10', columns: [['libelle_formacode_principal', 'key'], ['dossiers', 'count'], ['montant', 'money']],
    sql: (c, d, from) => `
      SELECT ${c.libelle_formacode_principal} AS libelle_formacode_principal, ${DOSSIERS(c)}, ${MONTANT(c)}
      FROM ${from} GROUP BY ALL ORDER BY montant DESC NULLS LAST LIMIT 10`,
    polars: (pl, lf, c) => lf.groupBy(pl.col(c.libelle_formacode_principal).alias('libelle_formacode_principal'))
      .agg(P.dossiers(pl, c), P.montant(pl, c)).sort('montant', true, true).limit(10) },
  // cpf.filtered: an aggregate over the rows of one status, beside the unfiltered ones; a group
  // without such a row has no value (cpf, SQL's FILTER), not 0
  { name: 'filtered', columns: [...BY_REGION_YEAR.slice(0, 4), ['dossiers_clos', 'count'], ['montant_clos', 'money']],
    sql: (c, d, from) => `
      SELECT ${REGION(c)}, ${YEAR(c)}, ${DOSSIERS(c)}, ${MONTANT(c)},
             sum(${c.nb_dossiers}) FILTER (WHERE ${eqWhere[0](c)}) AS dossiers_clos,
             sum(${c.montant_engage}) FILTER (WHERE ${eqWhere[0](c)}) AS montant_clos
      FROM ${from} GROUP BY ALL ORDER BY ${ASC('region_lieu_formation', 'annee')}`,
    polars: (pl, lf, c) => {
      const clos = eqWhere[1](pl, c);
      // when(any).then(sum): a group with no such row gets null, as in SQL, not polars' 0
      const onClos = (col, name) => pl.when(clos.any()).then(pl.col(col).filter(clos).sum())
        .otherwise(pl.lit(null)).alias(name);
      return ascending(lf.groupBy([P.region(pl, c), P.year(pl, c)]).agg(P.dossiers(pl, c), P.montant(pl, c),
        onClos(c.nb_dossiers, 'dossiers_clos'), onClos(c.montant_engage, 'montant_clos')),
      ['region_lieu_formation', 'annee']);
    } },
  { name: 'three_keys', columns: [['region_lieu_formation', 'key'], ['modalite_presence', 'key'], ['annee', 'key'],
    ['dossiers', 'count'], ['montant', 'money']],
    sql: (c, d, from) => `
      SELECT ${REGION(c)}, ${c.modalite_presence} AS modalite_presence, ${YEAR(c)}, ${DOSSIERS(c)}, ${MONTANT(c)}
      FROM ${from} GROUP BY ALL ORDER BY ${ASC('region_lieu_formation', 'modalite_presence', 'annee')}`,
    polars: (pl, lf, c) => ascending(lf.groupBy([P.region(pl, c),
      pl.col(c.modalite_presence).alias('modalite_presence'), P.year(pl, c)])
      .agg(P.dossiers(pl, c), P.montant(pl, c)), ['region_lieu_formation', 'modalite_presence', 'annee']) },
  // Results from results (doc/api.md): a condition on an aggregate (HAVING), top n per group, a
  // join to a reference table, the change from the previous period (LAG), a running total.
  { name: 'having', columns: BY_CODE_MONTH,
    sql: (c, d, from) => `${codeMonthSql(c, from)} HAVING sum(${c.nb_dossiers}) >= ${MIN_FILES}
      ORDER BY ${ASC('code_rncp', 'mois')}`,
    polars: (pl, lf, c) => ascending(codeMonthPolars(pl, lf, c).filter(pl.col('dossiers').gtEq(MIN_FILES)),
      ['code_rncp', 'mois']) },
  // row_number over the region, by amount descending, ties by code (cpf's order_by, then
  // limit(3, {per})); the rows in the same order
  { name: 'top3_per_region', columns: [['region_lieu_formation', 'key'], ['code_rncp', 'key'], ['dossiers', 'count'],
    ['montant', 'money']],
    sql: (c, d, from) => {
      // (DuckDB refuses QUALIFY with GROUP BY ALL: the keys by position)
      const grouped = `SELECT ${REGION(c)}, ${c.code_rncp} AS code_rncp, ${DOSSIERS(c)}, ${MONTANT(c)}
        FROM ${from} GROUP BY ${d.qualify ? '1, 2' : 'ALL'}`;
      const rank = `row_number() OVER (PARTITION BY region_lieu_formation ORDER BY ${TOP_ORDER.slice(1).join(', ')})`;
      const order = `ORDER BY ${TOP_ORDER.join(', ')}`;
      return d.qualify ? `${grouped} QUALIFY ${rank} <= ${TOP} ${order}`
        : `SELECT region_lieu_formation, code_rncp, dossiers, montant
           FROM (SELECT *, ${rank} AS rang FROM (${grouped})) WHERE rang <= ${TOP} ${order}`;
    },
    polars: (pl, lf, c) => lf.groupBy([P.region(pl, c), pl.col(c.code_rncp).alias('code_rncp')])
      .agg(P.dossiers(pl, c), P.montant(pl, c))
      .sort(['region_lieu_formation', 'montant', 'code_rncp'], [false, true, false], true)
      // the row's position within its region, in that order
      .filter(pl.intRange(0, pl.len()).over('region_lieu_formation').lt(TOP)) },
  // rncp_month, then LEFT JOIN the reference table on code_rncp: its libelle
  { name: 'join_ref', ref: true, columns: [...BY_CODE_MONTH, ['libelle', 'text']],
    sql: (c, d, from, ref) => `
      SELECT code_rncp, mois, dossiers, montant, libelle
      FROM (${codeMonthSql(c, from)}) AS g LEFT JOIN ${ref} USING (code_rncp)
      ORDER BY ${ASC('code_rncp', 'mois')}`,
    polars: (pl, lf, c, ref) => ascending(codeMonthPolars(pl, lf, c).join(ref, { on: 'code_rncp', how: 'left' }),
      ['code_rncp', 'mois']) },
  // cpf res:change: the previous row's amount within the region, years ascending (the previous
  // year present, gaps not filled); a row without a year has none; the relative change has no
  // value when the previous amount is missing or 0
  { name: 'yoy_change', columns: [['region_lieu_formation', 'key'], ['annee', 'key'], ['montant', 'money'],
    ['montant_prec', 'money'], ['montant_evol', 'money'], ['montant_evol_pct', 'real']],
    sql: (c, d, from) => `
      SELECT region_lieu_formation, annee, montant, montant_prec, montant - montant_prec AS montant_evol,
             (montant - montant_prec) / nullif(montant_prec, 0) AS montant_evol_pct
      FROM (SELECT region_lieu_formation, annee, montant,
                   CASE WHEN annee IS NULL THEN NULL ELSE ${d.lag('montant')}
                     OVER (PARTITION BY region_lieu_formation ORDER BY annee ASC NULLS LAST) END AS montant_prec
            FROM (SELECT ${REGION(c)}, ${YEAR(c)}, ${MONTANT(c)} FROM ${from} GROUP BY ALL)) AS g
      ORDER BY ${ASC('region_lieu_formation', 'annee')}`,
    polars: (pl, lf, c) => {
      const prec = pl.col('montant_prec');
      const evol = pl.col('montant').minus(prec);
      return ascending(lf.groupBy([P.region(pl, c), P.year(pl, c)]).agg(P.montant(pl, c)),
        ['region_lieu_formation', 'annee'])
        .withColumns(pl.when(pl.col('annee').isNull()).then(pl.lit(null))
          .otherwise(pl.col('montant').shift(1).over('region_lieu_formation')).alias('montant_prec'))
        .withColumns(evol.alias('montant_evol'),
          pl.when(prec.eq(0)).then(pl.lit(null)).otherwise(evol.div(prec)).alias('montant_evol_pct'));
    } },
  // cpf res:cumsum: the running total in month order; the row without a month (sorted last) has none
  { name: 'cumsum_month', columns: [['mois', 'key'], ['dossiers', 'count'], ['dossiers_cumul', 'count']],
    sql: (c, d, from) => `
      SELECT mois, dossiers,
             CASE WHEN mois IS NULL THEN NULL ELSE sum(dossiers) OVER (ORDER BY mois ASC NULLS LAST
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) END AS dossiers_cumul
      FROM (SELECT ${MONTH(c)}, ${DOSSIERS(c)} FROM ${from} GROUP BY ALL) AS g
      ORDER BY ${ASC('mois')}`,
    polars: (pl, lf, c) => ascending(lf.groupBy(P.month(pl, c)).agg(P.dossiers(pl, c)), ['mois'])
      .withColumns(pl.when(pl.col('mois').isNull()).then(pl.lit(null)).otherwise(pl.col('dossiers').cumSum())
        .alias('dossiers_cumul')) },
];

// The one-shot query: files, amount and average price by region and year,
// and the row count (the totals check of bench/report.lua).
// The export class: rncp_month's query, its rows written to a CSV file by the engine.
export const EXPORT_SQL = (c, from) => byCodeMonth('code_rncp').sql(c, null, from);
export const exportPolars = (pl, lf, c) => byCodeMonth('code_rncp').polars(pl, lf, c);

export const ONESHOT_SQL = (c, from) => `
  SELECT ${REGION(c)}, ${YEAR(c)}, ${DOSSIERS(c)}, ${MONTANT(c)}, ${PRIX(c)}, count(*) AS lignes
  FROM ${from} GROUP BY ALL`;
export const oneshotPolars = (pl, lf, c) => lf.groupBy([P.region(pl, c), P.year(pl, c)])
  .agg(P.dossiers(pl, c), P.montant(pl, c), P.prix(pl, c), pl.len().alias('lignes'));

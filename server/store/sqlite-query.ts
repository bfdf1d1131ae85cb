import type Database from 'better-sqlite3';
import { TidelineError } from '../../shared/errors';
import type { DocFilter, DocQuery, OrderValue } from './store';

/*
 * SQL for `SqliteStore.query` / `count` and the app's expression indexes.
 *
 * Every app index has the shape
 *
 *   CREATE INDEX ix_products_price ON docs (collection, json_extract(body, '$.price'), id)
 *     WHERE collection = 'products' AND deleted = 0
 *
 * and every query names its collection as a literal and says `deleted = 0`:
 * - the partial WHERE keeps an index to its collection's live documents (a
 *   write to another collection never touches it, tombstones are not in it);
 *   the query's literal terms are the index's own, so SQLite sees at once
 *   that the index applies (a bound `collection = ?` cannot prove it);
 * - the leading `collection` column gives the planner an equality on the
 *   index, so `collection = 'products' AND price < 20` matches two index
 *   columns against one of the primary key `(collection, id)`: the planner
 *   picks the index with no statistics (no ANALYZE) whatever the data;
 * - the trailing `id` makes the index's order (value, id), the order of a
 *   page: `ORDER BY value, id LIMIT n` reads n entries and never sorts.
 * A descending page is read backwards ((value DESC, id DESC)) and the last
 * group of equal values is read again forwards, so ties stay in ascending id
 * order without a sort either (see `runQuery`).
 *
 * json_extract returns a JSON number as INTEGER or REAL, a string as TEXT,
 * true/false as 1/0 and an object or array as its JSON TEXT. An expression
 * has no affinity and neither has a bound parameter, so `expr < ?` compares
 * exactly the values the index holds, in the index's order (NULL < numbers <
 * text); that is why no CAST or typed column appears anywhere.
 */

export type SqlParam = string | number;

/** A statement and its parameters; the LIMIT is always the last parameter. */
export interface SqlStatement {
  sql: string;
  params: SqlParam[];
}

/**
 * One part of a page, run in turn until the limit is met. `desc` parts are
 * read in (value DESC, id DESC) order and fixed up by `tie` (see `runQuery`).
 */
export type QueryPart =
  | { kind: 'plain'; statement: SqlStatement }
  | { kind: 'desc'; statement: SqlStatement; tie: (value: SqlParam) => SqlStatement };

const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** The SQL expression for a top-level document field; names are checked against the schema by the caller. */
export function fieldExpr(field: string): string {
  if (!FIELD_NAME.test(field)) throw new TidelineError('BAD_REQUEST', `'${field}' is not a queryable field name`);
  return `json_extract(body, '$.${field}')`;
}

export function sqlString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** A JSON scalar as json_extract returns it: booleans are 1 and 0. */
function sqlValue(v: OrderValue): SqlParam | null {
  return typeof v === 'boolean' ? (v ? 1 : 0) : v;
}

/**
 * The least string greater than every string that starts with `prefix`, in
 * SQLite's BINARY order (UTF-8 bytes, which is code point order): the last
 * code point plus one, dropping trailing U+10FFFF. Null when there is none.
 */
export function prefixEnd(prefix: string): string | null {
  const points = [...prefix].map((c) => c.codePointAt(0)!);
  while (points.length > 0 && points[points.length - 1] === 0x10ffff) points.pop();
  if (points.length === 0) return null;
  const last = points.pop()!;
  // Surrogate code points are not characters: U+D7FF is followed by U+E000.
  points.push(last === 0xd7ff ? 0xe000 : last + 1);
  return String.fromCodePoint(...points);
}

/** The name of the app index on `fields` (one, or a compound's in order) of `collection`. */
export function appIndexName(collection: string, fields: readonly string[]): string {
  return `ix_${collection}_${fields.join('_and_')}`.replace(/[^A-Za-z0-9_]/g, '_');
}

/** The CREATE statement of that index, exactly as SQLite keeps it in sqlite_schema (for comparison). */
export function appIndexSql(collection: string, fields: readonly string[]): string {
  const columns = [...fields.map(fieldExpr), 'id'].join(', ');
  return `CREATE INDEX ${appIndexName(collection, fields)} ON docs (${columns}) WHERE collection = ${sqlString(collection)} AND deleted = 0`;
}

/**
 * Reads (collection, fields) back from an app index's SQL: the shape above,
 * or the older `ON docs (json_extract(...)) WHERE collection = '...'`.
 * Null for anything else.
 */
export function parseAppIndexSql(sql: string): { collection: string; fields: string[]; current: boolean } | null {
  const m = /^CREATE INDEX \S+ ON docs \((.*)\) WHERE collection = '((?:[^']|'')*)'( AND deleted = 0)?$/.exec(sql);
  if (!m) return null;
  const collection = m[2]!.replace(/''/g, "'");
  const fields = [...m[1]!.matchAll(/json_extract\(body, '\$\.([A-Za-z0-9_]+)'\)/g)].map((f) => f[1]!);
  if (fields.length === 0) return null;
  return { collection, fields, current: sql === appIndexSql(collection, fields) };
}

const SQL_OPS = { eq: '=', ne: '!=', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;

/**
 * The WHERE terms of a collection's live documents, of an owner, matching
 * filters. Ranges compare within one kind of value, as the memory store
 * does: a number bound stops below the first text (`expr < ''`), a text
 * bound starts at the first one (`expr >= ''`); both ends are index bounds.
 */
export function whereOf(
  collection: string,
  owner: string | undefined,
  filters: readonly DocFilter[],
): { where: string[]; params: SqlParam[] } {
  const where = [`collection = ${sqlString(collection)}`, 'deleted = 0'];
  const params: SqlParam[] = [];
  if (owner !== undefined) {
    where.push('owner = ?');
    params.push(owner);
  }
  for (const f of filters) {
    // `id` is the primary key's column (a search, not a scan); other fields live in the JSON body.
    const isId = f.field === 'id';
    const expr = isId ? 'id' : fieldExpr(f.field);
    const value = isId ? String(f.value) : (sqlValue(f.value) as SqlParam);
    if (f.op === 'prefix') {
      // A range, not LIKE, so the index serves it.
      const start = String(value);
      const end = prefixEnd(start);
      where.push(end === null ? `${expr} >= ?` : `${expr} >= ? AND ${expr} < ?`);
      params.push(start, ...(end === null ? [] : [end]));
      continue;
    }
    where.push(`${expr} ${SQL_OPS[f.op]} ?`);
    params.push(value);
    if (isId) continue;
    if (typeof value === 'number' && (f.op === 'gt' || f.op === 'gte')) where.push(`${expr} < ''`);
    if (typeof value === 'string' && (f.op === 'lt' || f.op === 'lte')) where.push(`${expr} >= ''`);
  }
  return { where, params };
}

/** The primary key's index `(collection, id)`. */
export const PRIMARY_KEY_INDEX = 'sqlite_autoindex_docs_1';

/**
 * The index a query reads, named in `INDEXED BY` so that the choice is ours,
 * made from the query's shape alone, and never the planner's guess from
 * statistics (which ANALYZE would change): the index whose leading fields
 * have the most equality filters, then one whose next field has a range
 * (or prefix), then one that gives the order. An `id` filter, or no useful
 * index with an `id` order, reads the primary key. Null (the planner
 * chooses) for a field no index serves, as in tests on unindexed fields.
 */
export function chooseIndex(
  collection: string,
  filters: readonly DocFilter[],
  orderField: string,
  indexes: readonly (readonly string[])[],
): string | null {
  if (filters.some((f) => f.field === 'id' && f.op !== 'ne')) return PRIMARY_KEY_INDEX;
  const eqs = new Set(filters.filter((f) => f.op === 'eq').map((f) => f.field));
  const ranged = new Set(filters.filter((f) => f.op !== 'eq' && f.op !== 'ne').map((f) => f.field));
  let best: { fields: readonly string[]; score: number } | null = null;
  for (const fields of indexes) {
    let e = 0;
    while (e < fields.length && eqs.has(fields[e]!)) e++;
    const next = fields[e];
    const range = next !== undefined && ranged.has(next);
    const ordered = orderField === 'id' ? e === fields.length : next === orderField;
    const score = e * 4 + (range ? 2 : 0) + (ordered ? 1 : 0);
    if (score > 0 && (best === null || score > best.score)) best = { fields, score };
  }
  if (best === null) return orderField === 'id' ? PRIMARY_KEY_INDEX : null;
  return appIndexName(collection, best.fields);
}

/** The statement of `count`: the same WHERE and index choice as a query, with no order. */
export function countStatement(
  q: Omit<DocQuery, 'limit' | 'orderBy' | 'after'>,
  indexes: readonly (readonly string[])[] = [],
): SqlStatement {
  const index = chooseIndex(q.collection, q.filters, '', indexes);
  const { where, params } = whereOf(q.collection, q.owner, q.filters);
  const from = index === null ? 'docs' : `docs INDEXED BY ${index}`;
  return { sql: `SELECT COUNT(*) AS n FROM ${from} WHERE ${where.join(' AND ')}`, params };
}

/**
 * The parts of a page of `q`, each a range from the position (never an OR
 * around it), so an index seeks to the position instead of scanning up to it:
 *
 * - by id: one statement on the primary key;
 * - ascending on a field: the rest of the position's group of equal values
 *   (`value = v AND id > after`), then the greater values (`value > v`), or,
 *   from a missing value, the rest of the missing ones and then every value;
 * - descending: the rest of the position's group, the lesser values, then the
 *   documents without one (they sort last descending).
 */
export function queryParts(q: DocQuery, indexes: readonly (readonly string[])[] = []): QueryPart[] {
  const desc = q.orderBy?.direction === 'desc';
  const pinned = q.filters.some((f) => f.field === q.orderBy?.field && f.op === 'eq');
  const orderField = pinned ? 'id' : (q.orderBy?.field ?? 'id');
  const limit = Math.max(0, Math.floor(q.limit));
  const index = chooseIndex(q.collection, q.filters, orderField, indexes);
  const from = index === null ? 'docs' : `docs INDEXED BY ${index}`;
  const select = (extra: string[], extraParams: SqlParam[], order: string, columns = 'body'): SqlStatement => {
    const { where, params } = whereOf(q.collection, q.owner, q.filters);
    return {
      sql: `SELECT ${columns} FROM ${from} WHERE ${[...where, ...extra].join(' AND ')} ORDER BY ${order} LIMIT ?`,
      params: [...params, ...extraParams, limit],
    };
  };
  const plain = (statement: SqlStatement): QueryPart => ({ kind: 'plain', statement });
  const after = q.after;
  if (orderField === 'id') {
    // With an equality on the order field every match has its value: the order is the ids' (ascending
    // in both directions), said outright because SQLite does not see that an expression is constant.
    if (pinned) return [plain(after === undefined ? select([], [], 'id') : select(['id > ?'], [after.id], 'id'))];
    const order = desc ? 'id DESC' : 'id';
    return [
      plain(after === undefined ? select([], [], order) : select([desc ? 'id < ?' : 'id > ?'], [after.id], order)),
    ];
  }
  const expr = fieldExpr(orderField);
  const v = after === undefined ? undefined : sqlValue(after.value);
  const ties = (value: SqlParam, afterId?: string): SqlStatement =>
    afterId === undefined
      ? select([`${expr} = ?`], [value], 'id')
      : select([`${expr} = ?`, 'id > ?'], [value, afterId], 'id');
  const missing = (afterId?: string): QueryPart =>
    plain(
      afterId === undefined
        ? select([`${expr} IS NULL`], [], 'id')
        : select([`${expr} IS NULL`, 'id > ?'], [afterId], 'id'),
    );
  if (!desc) {
    const ascending = (extra: string[], extraParams: SqlParam[]): QueryPart =>
      plain(select(extra, extraParams, `${expr}, id`));
    if (after === undefined) return [ascending([], [])];
    if (v === null || v === undefined) return [missing(after.id), ascending([`${expr} IS NOT NULL`], [])];
    return [plain(ties(v, after.id)), ascending([`${expr} > ?`], [v])];
  }
  const descending = (extra: string[], extraParams: SqlParam[]): QueryPart => ({
    kind: 'desc',
    statement: select(extra, extraParams, `${expr} DESC, id DESC`, `body, ${expr} AS v`),
    tie: (value) => ties(value),
  });
  if (after === undefined) return [descending([`${expr} IS NOT NULL`], []), missing()];
  if (v === null || v === undefined) return [missing(after.id)];
  return [plain(ties(v, after.id)), descending([`${expr} < ?`], [v]), missing()];
}

/** Runs a statement with its LIMIT set to `limit`. */
export type RunStatement = (statement: SqlStatement, limit: number) => Array<{ body: string; v?: unknown }>;

/**
 * The bodies of a page: each part in turn, until `limit`. A `desc` part
 * reads (value DESC, id DESC), so within each group of equal values the ids
 * come in reverse: complete groups are turned around; the last group read
 * may be cut by the limit and have only its greatest ids, so it is read
 * again forwards from the index (`value = b ORDER BY id`), which gives its
 * least ids, the ones the page needs. Two index reads, no sort.
 */
export function runQuery(parts: readonly QueryPart[], limit: number, run: RunStatement): string[] {
  const max = Math.max(0, Math.floor(limit));
  const out: string[] = [];
  for (const part of parts) {
    const want = max - out.length;
    if (want <= 0) break;
    const rows = run(part.statement, want);
    if (part.kind === 'plain') {
      for (const r of rows) out.push(r.body);
      continue;
    }
    const cut = rows.length === want;
    const boundary = cut ? rows[rows.length - 1]!.v : undefined;
    const whole = cut ? rows.filter((r) => r.v !== boundary) : rows;
    let i = 0;
    while (i < whole.length) {
      let j = i;
      while (j < whole.length && whole[j]!.v === whole[i]!.v) j++;
      for (let k = j - 1; k >= i; k--) out.push(whole[k]!.body);
      i = j;
    }
    if (cut) {
      for (const r of run(part.tie(boundary as SqlParam), max - out.length)) out.push(r.body);
    }
  }
  return out;
}

/**
 * Prepared statements by SQL text, least recently used dropped past `max`.
 * The SQL of a query depends on its shape (collection, fields, operators,
 * order), not on its values, so a busy node prepares each shape once.
 */
export class StatementCache {
  private readonly statements = new Map<string, Database.Statement<SqlParam[], unknown>>();

  constructor(
    private readonly db: Database.Database,
    private readonly max = 256,
  ) {}

  get<R>(sql: string): Database.Statement<SqlParam[], R> {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare<SqlParam[], unknown>(sql);
      if (this.statements.size >= this.max) {
        const oldest = this.statements.keys().next();
        if (!oldest.done) this.statements.delete(oldest.value);
      }
    } else {
      this.statements.delete(sql);
    }
    this.statements.set(sql, statement);
    return statement as Database.Statement<SqlParam[], R>;
  }
}

import { TidelineError } from '../../shared/errors';
import type { DocFilter, DocQuery, OrderValue } from './store';

/*
 * SQL for `PgStore.query` / `count` and the app's expression indexes: the
 * PostgreSQL twin of sqlite-query.ts, with the same results (the acceptance
 * suite runs on both).
 *
 * A body is kept as its JSON text (as SQLite keeps it, so sizes and bytes
 * agree); a field is read as `(body::jsonb -> 'f')`. SQLite's json_extract
 * order (NULL < numbers and booleans as 1/0 < text, objects and arrays as
 * their JSON text) is spelled as three expressions, each a column of the app
 * index, so one ORDER BY serves every kind of value:
 *
 *   k: 0 missing or null, 1 number or boolean, 2 text (and object/array)
 *   n: the number (booleans 1 and 0), else 0
 *   t: the text in code point order (COLLATE "C"), else ''
 *
 * and every app index has the shape
 *
 *   CREATE INDEX ix_products_price ON docs (k(price), n(price), t(price), id)
 *     WHERE collection = 'products' AND NOT deleted
 *
 * whose partial WHERE matches the literal terms every query starts with, so
 * the planner may use it. Unlike on SQLite the plan is the planner's (there
 * is no INDEXED BY); with ANALYZE'd statistics it picks these indexes for
 * selective filters and for ordered pages.
 *
 * Objects and arrays order by PostgreSQL's JSON text, which has spaces that
 * `JSON.stringify` has not: a page ordered by a field holding objects may
 * order them differently from SQLite (no filter ever matches them).
 */

export type PgParam = string | number | boolean | string[] | null;

export interface PgStatement {
  sql: string;
  params: PgParam[];
}

const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

function checkField(field: string): string {
  if (!FIELD_NAME.test(field)) throw new TidelineError('BAD_REQUEST', `'${field}' is not a queryable field name`);
  return field;
}

const json = (field: string): string => `(body::jsonb -> '${checkField(field)}')`;

/** The kind of a field's value: 0 missing or null, 1 number or boolean, 2 text, object or array. */
export function kindExpr(field: string): string {
  return `(CASE jsonb_typeof(${json(field)}) WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 WHEN 'string' THEN 2 WHEN 'object' THEN 2 WHEN 'array' THEN 2 ELSE 0 END)`;
}

/** A field's number (booleans as 1 and 0), else 0. */
export function numberExpr(field: string): string {
  const j = json(field);
  return `(CASE jsonb_typeof(${j}) WHEN 'number' THEN (${j})::float8 WHEN 'boolean' THEN (CASE WHEN (${j})::boolean THEN 1::float8 ELSE 0::float8 END) ELSE 0::float8 END)`;
}

/** A field's text in code point order (objects and arrays: their JSON text), else ''. */
export function textExpr(field: string): string {
  const j = json(field);
  return `((CASE jsonb_typeof(${j}) WHEN 'string' THEN (body::jsonb ->> '${field}') WHEN 'object' THEN (${j})::text WHEN 'array' THEN (${j})::text ELSE '' END) COLLATE "C")`;
}

/** The three order columns of a field, as one row value. */
const keyOf = (field: string): string => `${kindExpr(field)}, ${numberExpr(field)}, ${textExpr(field)}`;

/** An order value (or filter bound) as the (k, n, t) the expressions above give. */
export function keyValue(v: OrderValue): [number, number, string] {
  if (v === null) return [0, 0, ''];
  if (typeof v === 'boolean') return [1, v ? 1 : 0, ''];
  if (typeof v === 'number') return [1, v, ''];
  return [2, 0, v];
}

export function pgString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** The name of the app index on `fields` of `collection` (the same names as on SQLite). */
export function pgIndexName(collection: string, fields: readonly string[]): string {
  return `ix_${collection}_${fields.join('_and_')}`.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 63);
}

/** The CREATE statement of that index in `schema`. */
export function pgIndexSql(schema: string, collection: string, fields: readonly string[]): string {
  const columns = [...fields.map(keyOf), 'id'].join(', ');
  return `CREATE INDEX IF NOT EXISTS ${pgIndexName(collection, fields)} ON ${schema}.docs (${columns}) WHERE collection = ${pgString(collection)} AND NOT deleted`;
}

/** Adds parameters and returns their placeholders. */
class Params {
  readonly values: PgParam[] = [];
  add(...values: PgParam[]): string {
    return values
      .map((v) => {
        this.values.push(v);
        return `$${this.values.length}`;
      })
      .join(', ');
  }
}

const OPS = { eq: '=', ne: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;

/**
 * The WHERE terms of a collection's live documents, of an owner, matching
 * filters, with the memory store's meaning: only scalar values match; a
 * range compares within one kind (text with text, numbers and booleans with
 * numbers); `eq`/`ne` compare the JSON values themselves.
 */
function whereOf(p: Params, collection: string, owner: string | undefined, filters: readonly DocFilter[]): string[] {
  const where = [`collection = ${pgString(collection)}`, 'NOT deleted'];
  if (owner !== undefined) where.push(`owner = ${p.add(owner)}`);
  for (const f of filters) {
    if (f.field === 'id') {
      const value = String(f.value);
      if (f.op === 'prefix') where.push(`id LIKE ${p.add(likePrefix(value))}`);
      else where.push(`id ${OPS[f.op]} ${p.add(value)}`);
      continue;
    }
    const j = json(f.field);
    if (f.op === 'eq' || f.op === 'ne') {
      where.push(`jsonb_typeof(${j}) IN ('number', 'boolean', 'string')`);
      where.push(
        `${j} ${OPS[f.op]} to_jsonb(${p.add(f.value)}::${typeof f.value === 'string' ? 'text' : typeof f.value === 'number' ? 'float8' : 'boolean'})`,
      );
      continue;
    }
    if (f.op === 'prefix' || typeof f.value === 'string') {
      where.push(`jsonb_typeof(${j}) = 'string'`);
      if (f.op === 'prefix') where.push(`${textExpr(f.field)} LIKE ${p.add(likePrefix(String(f.value)))}`);
      else where.push(`${textExpr(f.field)} ${OPS[f.op]} ${p.add(f.value)}`);
      continue;
    }
    const [, n] = keyValue(f.value);
    where.push(`${kindExpr(f.field)} = 1`);
    where.push(`${numberExpr(f.field)} ${OPS[f.op]} ${p.add(n)}`);
  }
  return where;
}

/** A LIKE pattern for "starts with", its wildcards escaped (backslash is LIKE's default escape). */
function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The statement of `count`. */
export function pgCountStatement(schema: string, q: Omit<DocQuery, 'limit' | 'orderBy' | 'after'>): PgStatement {
  const p = new Params();
  const where = whereOf(p, q.collection, q.owner, q.filters);
  return { sql: `SELECT COUNT(*)::int AS n FROM ${schema}.docs WHERE ${where.join(' AND ')}`, params: p.values };
}

/**
 * The statement of a page of `q`: ordered by (k, n, t) of the order field
 * then id (ids ascending among equal values in both directions, missing
 * values first ascending and last descending), resuming strictly after
 * `q.after`.
 */
export function pgQueryStatement(schema: string, q: DocQuery): PgStatement {
  const p = new Params();
  const where = whereOf(p, q.collection, q.owner, q.filters);
  const desc = q.orderBy?.direction === 'desc';
  const pinned = q.filters.some((f) => f.field === q.orderBy?.field && f.op === 'eq');
  const orderField = pinned ? 'id' : (q.orderBy?.field ?? 'id');
  const limit = Math.max(0, Math.floor(q.limit));
  let order: string;
  if (orderField === 'id') {
    const down = desc && !pinned;
    order = down ? 'id DESC' : 'id';
    if (q.after !== undefined) where.push(`id ${down ? '<' : '>'} ${p.add(q.after.id)}`);
  } else {
    const key = keyOf(orderField);
    order = desc
      ? `${kindExpr(orderField)} DESC, ${numberExpr(orderField)} DESC, ${textExpr(orderField)} DESC, id`
      : `${key}, id`;
    if (q.after !== undefined) {
      const at = p.add(...keyValue(q.after.value));
      const id = p.add(q.after.id);
      where.push(
        desc ? `((${key}) < (${at}) OR ((${key}) = (${at}) AND id > ${id}))` : `(${key}, id) > (${at}, ${id})`,
      );
    }
  }
  return {
    sql: `SELECT body FROM ${schema}.docs WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT ${p.add(limit)}`,
    params: p.values,
  };
}

import { timingSafeEqual } from 'node:crypto';
import express from 'express';
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import { z } from 'zod';
import { TidelineError } from '../../shared/errors';
import type { ErrorCode } from '../../shared/errors';
import type { Doc } from '../../shared/json';
import { readsAll } from '../../shared/schema/define-schema';
import type { AppSchema } from '../../shared/schema/define-schema';
import type { AppliedLsnWaiters } from '../cluster/applied-lsn';
import type { AsyncStore } from '../store/async-store';
import { orderValueOf } from '../store/store';
import type { DocQuery, OrderValue } from '../store/store';
import { isSystem, SYSTEM, SYSTEM_USER_ID } from '../sync/server-write';
import type { UserPrincipal } from '../sync/server-write';

const OPS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'prefix'] as const;
export const MAX_LIMIT = 1000;
/** Ids per multi-get. */
export const MAX_IDS = 1000;
const MAX_FILTERS = 16;
/** A cursor holds one order value and one id (at most 256 characters). */
export const MAX_CURSOR_LENGTH = 4096;

const filterText = z.string().max(1024, 'a filter is at most 1024 characters');
const filterSchema = z
  .union([filterText, z.array(filterText).max(MAX_FILTERS, `at most ${MAX_FILTERS} filters`)])
  .optional();

/**
 * Read your writes: `minLsn` (an LSN a write returned) asks for results at
 * least that new; `waitMs` shortens how long a replica may wait for it.
 */
const freshness = {
  minLsn: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  waitMs: z.coerce.number().int().min(0).max(600_000).optional(),
};

const querySchema = z.object({
  /** Repeatable `field:op:value`; the value is read as JSON when it parses (numbers, booleans), else as a string. */
  filter: filterSchema,
  orderBy: z.string().max(64).optional(),
  order: z.enum(['asc', 'desc']).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_LIMIT).optional(),
  /** From the previous page's `nextCursor`. */
  cursor: z.string().min(1).max(MAX_CURSOR_LENGTH, `a cursor is at most ${MAX_CURSOR_LENGTH} characters`).optional(),
});

const countSchema = z.object({ filter: filterSchema, ...freshness });

const idText = z.string().min(1).max(256);
/** `ids=a,b,c` (comma-separated), or `id=a&id=b` (one whole id each, for ids that hold commas). */
const getManySchema = z.strictObject({
  ids: z.union([z.string().max(300_000), z.array(z.string().max(300_000)).max(MAX_IDS)]).optional(),
  id: z.union([idText, z.array(idText).max(MAX_IDS)]).optional(),
  ...freshness,
});

/**
 * The opaque cursor: the last document's position (order value, id) and the
 * order it belongs to, base64url JSON. It names a position, not a snapshot.
 */
const cursorSchema = z.strictObject({
  o: z.string().nullable(),
  d: z.enum(['asc', 'desc']),
  v: z.union([z.string(), z.number(), z.boolean(), z.null()]),
  i: idText,
});

function encodeCursor(q: DocQuery, last: { value: OrderValue; id: string }): string {
  const body: z.infer<typeof cursorSchema> = {
    o: q.orderBy?.field ?? null,
    d: q.orderBy?.direction ?? 'asc',
    v: last.value,
    i: last.id,
  };
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}

function decodeCursor(q: DocQuery, cursor: string): { value: OrderValue; id: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    raw = undefined;
  }
  const parsed = cursorSchema.safeParse(raw);
  if (!parsed.success) throw new TidelineError('BAD_REQUEST', 'the cursor is not one this server made');
  const c = parsed.data;
  if (c.o !== (q.orderBy?.field ?? null) || c.d !== (q.orderBy?.direction ?? 'asc')) {
    throw new TidelineError('BAD_REQUEST', 'the cursor belongs to a query with another orderBy or order', {
      hint: 'send the same orderBy and order as the request that returned the cursor',
    });
  }
  return { value: c.v, id: c.i };
}

function parseValue(raw: string): string | number | boolean {
  try {
    const v: unknown = JSON.parse(raw);
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') return v;
  } catch {
    // not JSON: a plain string
  }
  return raw;
}

/** Who reads: a user (their scope), the system (everything: the admin token), or nobody signed in (public collections). */
export type Reader = UserPrincipal | typeof SYSTEM | null;

/** Turns query-string input into a `DocQuery` on indexed fields only; throws BAD_REQUEST / FORBIDDEN. */
export function parseDocQuery(schema: AppSchema, collection: string, input: unknown, user: Reader): DocQuery {
  const userId = user === null ? null : isSystem(user) ? SYSTEM_USER_ID : user.userId;
  const def = Object.hasOwn(schema.collections, collection) ? schema.collections[collection] : undefined;
  if (!def) throw new TidelineError('BAD_REQUEST', `unknown collection '${collection}'`);
  if (def.read === 'owner' && userId === null) {
    throw new TidelineError(
      'UNAUTHORIZED',
      `'${collection}' is owner-only: send "Authorization: Bearer <client token>"`,
    );
  }
  const parsed = querySchema.safeParse(input);
  if (!parsed.success) throw badQuery(parsed.error);
  const raw = parsed.data.filter === undefined ? [] : [parsed.data.filter].flat();
  const filters = raw.map((f) => {
    const [field = '', op = '', ...rest] = f.split(':');
    if (!(OPS as readonly string[]).includes(op) || rest.length === 0) {
      throw new TidelineError('BAD_REQUEST', `filter '${f}' must be field:op:value with op one of ${OPS.join(', ')}`);
    }
    return { field, op: op as (typeof OPS)[number], value: parseValue(rest.join(':')) };
  });
  const indexed = queryableFields(
    def.indexes,
    filters.filter((f) => f.op === 'eq').map((f) => f.field),
  );
  const checkField = (field: string): string => {
    if (!indexed.has(field)) {
      throw new TidelineError('BAD_REQUEST', `'${field}' is not an indexed field of '${collection}'`, {
        hint: `indexed: ${['id', ...def.indexes].join(', ')} (a compound index's later field needs equality filters on the earlier ones)`,
      });
    }
    return field;
  };
  for (const f of filters) checkField(f.field);
  const q: DocQuery = { collection, filters, limit: parsed.data.limit ?? 100 };
  if (parsed.data.orderBy)
    q.orderBy = { field: checkField(parsed.data.orderBy), direction: parsed.data.order ?? 'asc' };
  if (def.read === 'owner' && user !== null && !isSystem(user) && !readsAll(def, user.roles)) q.owner = user.userId;
  if (parsed.data.cursor !== undefined) q.after = decodeCursor(q, parsed.data.cursor);
  return q;
}

/**
 * The fields a query may filter or order on, each served by an index: `id`
 * (the primary key), every single-field index, and each field of a compound
 * index 'a+b' whose earlier fields all have an equality filter (`a` alone;
 * `b` after `a:eq:…`).
 */
export function queryableFields(indexes: readonly string[], eqFields: readonly string[]): Set<string> {
  const out = new Set(['id']);
  const eqs = new Set(eqFields);
  for (const index of indexes) {
    for (const field of index.split('+')) {
      out.add(field);
      if (!eqs.has(field)) break;
    }
  }
  return out;
}

function badQuery(error: z.ZodError): TidelineError {
  const issue = error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  return new TidelineError('BAD_REQUEST', `${where}${issue?.message ?? 'bad query'}`);
}

/** The ids of a multi-get request, or null when it is not one; bounded by MAX_IDS. */
function parseIds(input: unknown): string[] | null {
  if (typeof input !== 'object' || input === null || !('ids' in input || 'id' in input)) return null;
  const parsed = getManySchema.safeParse(input);
  if (!parsed.success) throw badQuery(parsed.error);
  const whole = parsed.data.id === undefined ? [] : [parsed.data.id].flat();
  const listed = (parsed.data.ids === undefined ? [] : [parsed.data.ids].flat()).flatMap((s) => s.split(','));
  const ids = [...whole, ...listed];
  if (ids.length === 0 || ids.length > MAX_IDS) {
    throw new TidelineError('BAD_REQUEST', `a multi-get takes 1-${MAX_IDS} ids`);
  }
  const bad = ids.find((id) => id.length === 0 || id.length > 256);
  if (bad !== undefined) throw new TidelineError('BAD_REQUEST', 'an id is 1-256 characters');
  return ids;
}

const SYSTEM_READER: Reader = SYSTEM;

function bearerIs(header: string | undefined, expected: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice('Bearer '.length));
  const want = Buffer.from(expected);
  return given.length === want.length && timingSafeEqual(given, want);
}

/**
 * What `/query` reads of a store: the SQLite store through `asyncStoreOf`,
 * or a PostgreSQL node's `PgStore`.
 */
export type QueryStore = Pick<AsyncStore, 'meta' | 'query' | 'count' | 'getMany'>;

/** One page of `q` and the cursor of the next (null on the last page): for the route and in-process callers. */
export async function queryPage(
  store: QueryStore,
  q: DocQuery,
): Promise<{ headLsn: number; docs: Doc[]; nextCursor: string | null }> {
  // The head first: the documents read after it are at least that new, also on a store other nodes write.
  const headLsn = (await store.meta()).headLsn;
  // One more than asked tells whether a next page exists.
  const docs = await store.query({ ...q, limit: q.limit + 1 });
  const more = docs.length > q.limit;
  const page = more ? docs.slice(0, q.limit) : docs;
  const last = page[page.length - 1];
  const field = q.orderBy?.field ?? 'id';
  const nextCursor =
    more && last !== undefined ? encodeCursor(q, { value: orderValueOf(last, field), id: last.id }) : null;
  return { headLsn, docs: page, nextCursor };
}

/**
 * Read-only queries on indexed fields, served by the primary and every
 * replica alike, so read load spreads across nodes:
 * - `GET /query/:collection?filter=price:lt:20&orderBy=price&order=desc&limit=50`
 *   answers `{ headLsn, docs, nextCursor }`; pass `cursor=<nextCursor>` for
 *   the next page (keyset paging on (order value, id), any depth).
 * - `GET /query/:collection/count?filter=...` answers `{ headLsn, count }`.
 * - `GET /query/:collection?ids=a,b,c` (or `id=a&id=b`) answers `{ headLsn, docs }`:
 *   the live documents with those ids, in that order, missing ones left out.
 * A client token reads the user's scope; the admin token reads everything
 * (backend code); no token reads public collections only.
 */
export function queryRoutes(deps: {
  store: QueryStore;
  schema: AppSchema;
  userOf: (req: Request) => { userId: string; roles: readonly string[] } | null;
  /** `Authorization: Bearer <admin token>` reads as the system: every document of every collection. */
  adminToken?: string;
  /** Checks a client token before `userOf` (the bearer middleware); skipped for the admin token. */
  authenticate?: RequestHandler;
  /**
   * Read your writes (`minLsn`); without it `minLsn` is checked against the
   * head only: on a primary, and on a PostgreSQL node, whose head is the
   * cluster's (every LSN any node acknowledged is at or below it).
   */
  freshness?: Freshness;
}): Router {
  const router = express.Router();
  const admins = new WeakSet<Request>();
  router.use((req: Request, res: Response, next: NextFunction) => {
    const { adminToken, authenticate } = deps;
    if (adminToken !== undefined && bearerIs(req.headers.authorization, adminToken)) {
      admins.add(req);
      next();
    } else if (authenticate) authenticate(req, res, next);
    else next();
  });
  const readerOf = (req: Request): Reader => (admins.has(req) ? SYSTEM_READER : deps.userOf(req));
  const fail = (res: Response, err: unknown): void => {
    const e = err instanceof TidelineError ? err : new TidelineError('INTERNAL', 'query failed');
    const primary = e.code === 'NOT_PRIMARY' || e.code === 'NOT_READY' ? (deps.freshness?.primaryUrl() ?? null) : null;
    res.status(STATUS[e.code] ?? 400).json({ error: { ...e.toWire(), ...(primary ? { primary } : {}) } });
  };
  /**
   * Validates the request (`prepare`, which throws on bad input before any
   * wait), waits until this node has applied `minLsn` when asked, then reads.
   */
  const answer = (req: Request, res: Response, prepare: () => () => Promise<object>): void => {
    let read: () => Promise<object>;
    let fresh: z.infer<z.ZodObject<typeof freshness>>;
    try {
      read = prepare();
      const parsed = z.object(freshness).safeParse(req.query);
      if (!parsed.success) throw badQuery(parsed.error);
      fresh = parsed.data;
    } catch (err) {
      fail(res, err);
      return;
    }
    const { minLsn, waitMs } = fresh;
    const run = async (): Promise<void> => {
      if (minLsn !== undefined && (await deps.store.meta()).headLsn < minLsn) {
        await awaitLsn(deps.store, deps.freshness, minLsn, waitMs);
      }
      res.json(await read());
    };
    run().catch((err: unknown) => fail(res, err));
  };
  router.get('/:collection/count', (req: Request, res: Response) =>
    answer(req, res, () => {
      const collection = String(req.params['collection']);
      const parsed = countSchema.safeParse(req.query);
      if (!parsed.success) throw badQuery(parsed.error);
      const { limit: _limit, ...q } = parseDocQuery(
        deps.schema,
        collection,
        { filter: parsed.data.filter },
        readerOf(req),
      );
      return async () => {
        const headLsn = (await deps.store.meta()).headLsn;
        return { headLsn, count: await deps.store.count(q) };
      };
    }),
  );
  router.get('/:collection', (req: Request, res: Response) =>
    answer(req, res, () => {
      const collection = String(req.params['collection']);
      const user = readerOf(req);
      const ids = parseIds(req.query);
      if (ids !== null) {
        // The collection and owner checks of a query with no filters.
        const q = parseDocQuery(deps.schema, collection, {}, user);
        return async () => {
          const headLsn = (await deps.store.meta()).headLsn;
          return { headLsn, docs: await deps.store.getMany(collection, ids, q.owner) };
        };
      }
      const { minLsn: _minLsn, waitMs: _waitMs, ...input } = req.query;
      const q = parseDocQuery(deps.schema, collection, input, user);
      return () => queryPage(deps.store, q);
    }),
  );
  return router;
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  UNAUTHORIZED: 401,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  NOT_PRIMARY: 503,
  NOT_READY: 503,
};

/** What `/query` needs of the node for `minLsn`. */
export interface Freshness {
  role: () => 'primary' | 'replica';
  /** Where the primary is, for a NOT_PRIMARY or NOT_READY answer (null when unknown). */
  primaryUrl: () => string | null;
  waiters: AppliedLsnWaiters;
  /** The longest a replica waits (`--read-wait-ms`); a request's `waitMs` may only shorten it. */
  maxWaitMs: number;
}

/**
 * Resolves once this node's head reaches `minLsn`. A primary answers at
 * once: its head is at or past every LSN it acknowledged, so a greater one
 * was never acknowledged here (a write lost in a failover, or not an LSN of
 * this cluster) and waiting cannot help. So does a PostgreSQL node (no
 * `freshness`): the head it reads is the one every node commits through.
 * A replica waits, woken as it applies the log, at most `min(waitMs,
 * maxWaitMs)`, then fails with the retryable NOT_READY (the route adds the
 * primary's URL).
 */
async function awaitLsn(
  store: QueryStore,
  freshness: Freshness | undefined,
  minLsn: number,
  waitMs?: number,
): Promise<void> {
  const head = async (): Promise<number> => (await store.meta()).headLsn;
  if (freshness === undefined || freshness.role() === 'primary') {
    throw new TidelineError(
      'BAD_REQUEST',
      `minLsn ${minLsn} is past this ${freshness === undefined ? "cluster's" : "primary's"} head ${await head()}: no write at that LSN was acknowledged here`,
      { hint: 'send the lsn a write on this cluster returned; a write lost in a failover has to be made again' },
    );
  }
  const timeout = Math.min(waitMs ?? freshness.maxWaitMs, freshness.maxWaitMs);
  if (await freshness.waiters.wait(minLsn, timeout)) return;
  // NOT_READY: this node cannot answer yet; the primary can (error.primary), or a retry here once it caught up.
  throw new TidelineError(
    'NOT_READY',
    `this replica has applied up to LSN ${await head()}, not yet ${minLsn} (waited ${timeout} ms): retry, or read from the primary`,
    { retryable: true, hint: 'retry, or read from the primary (error.primary)' },
  );
}

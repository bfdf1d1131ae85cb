import express from 'express';
import type { Request, Response, Router } from 'express';
import { z } from 'zod';
import { TidelineError } from '../../shared/errors';
import { readsAll } from '../../shared/schema/define-schema';
import type { AppSchema } from '../../shared/schema/define-schema';
import type { DocQuery, Store } from '../store/store';

const OPS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'prefix'] as const;
const MAX_LIMIT = 1000;

const querySchema = z.object({
  /** Repeatable `field:op:value`; the value is read as JSON when it parses (numbers, booleans), else as a string. */
  filter: z.union([z.string(), z.array(z.string())]).optional(),
  orderBy: z.string().optional(),
  order: z.enum(['asc', 'desc']).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_LIMIT).optional(),
});

function parseValue(raw: string): string | number | boolean {
  try {
    const v: unknown = JSON.parse(raw);
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') return v;
  } catch {
    // not JSON: a plain string
  }
  return raw;
}

/** Turns query-string input into a `DocQuery` on indexed fields only; throws BAD_REQUEST / FORBIDDEN. */
export function parseDocQuery(
  schema: AppSchema,
  collection: string,
  input: unknown,
  user: { userId: string; roles: readonly string[] } | null,
): DocQuery {
  const userId = user?.userId ?? null;
  const def = Object.hasOwn(schema.collections, collection) ? schema.collections[collection] : undefined;
  if (!def) throw new TidelineError('BAD_REQUEST', `unknown collection '${collection}'`);
  if (def.read === 'owner' && userId === null) {
    throw new TidelineError(
      'UNAUTHORIZED',
      `'${collection}' is owner-only: send "Authorization: Bearer <client token>"`,
    );
  }
  const parsed = querySchema.safeParse(input);
  if (!parsed.success) throw new TidelineError('BAD_REQUEST', parsed.error.issues[0]?.message ?? 'bad query');
  const indexed = new Set(['id', ...def.indexes]);
  const checkField = (field: string): string => {
    if (!indexed.has(field)) {
      throw new TidelineError('BAD_REQUEST', `'${field}' is not an indexed field of '${collection}'`, {
        hint: `indexed: ${[...indexed].join(', ')}`,
      });
    }
    return field;
  };
  const raw = parsed.data.filter === undefined ? [] : [parsed.data.filter].flat();
  const filters = raw.map((f) => {
    const [field = '', op = '', ...rest] = f.split(':');
    if (!(OPS as readonly string[]).includes(op) || rest.length === 0) {
      throw new TidelineError('BAD_REQUEST', `filter '${f}' must be field:op:value with op one of ${OPS.join(', ')}`);
    }
    return { field: checkField(field), op: op as (typeof OPS)[number], value: parseValue(rest.join(':')) };
  });
  const q: DocQuery = { collection, filters, limit: parsed.data.limit ?? 100 };
  if (parsed.data.orderBy)
    q.orderBy = { field: checkField(parsed.data.orderBy), direction: parsed.data.order ?? 'asc' };
  if (def.read === 'owner' && user !== null && !readsAll(def, user.roles)) q.owner = user.userId;
  return q;
}

/**
 * `GET /query/:collection?filter=price:lt:20&orderBy=price&order=desc&limit=50`:
 * read-only queries on indexed fields, served by the primary and every
 * replica alike, so read load spreads across nodes.
 */
export function queryRoutes(deps: {
  store: Store;
  schema: AppSchema;
  userOf: (req: Request) => { userId: string; roles: readonly string[] } | null;
}): Router {
  const router = express.Router();
  router.get('/:collection', (req: Request, res: Response) => {
    try {
      const collection = String(req.params['collection']);
      const q = parseDocQuery(deps.schema, collection, req.query, deps.userOf(req));
      const meta = deps.store.meta();
      res.json({ headLsn: meta.headLsn, docs: deps.store.query(q) });
    } catch (err) {
      const e = err instanceof TidelineError ? err : new TidelineError('INTERNAL', 'query failed');
      const status = e.code === 'UNAUTHORIZED' ? 401 : e.code === 'INTERNAL' ? 500 : 400;
      res.status(status).json({ error: e.toWire() });
    }
  });
  return router;
}

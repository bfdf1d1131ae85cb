import { TidelineError } from '../shared/errors';
import type { AppSchema } from '../shared/schema/define-schema';
import type { PgStore } from './store/pg-store';
import { DROP_FLAG } from './schema-check';
import type { SchemaCheckReport } from './schema-check';

/** What the check needs of the PostgreSQL store. */
export type PgCheckedStore = Pick<
  PgStore,
  | 'countByCollection'
  | 'ensureIndexes'
  | 'appSchema'
  | 'recordAppSchema'
  | 'meta'
  | 'query'
  | 'getDoc'
  | 'transact'
  | 'compact'
>;

/**
 * `checkStoredData` (schema-check.ts) for a node on PostgreSQL, before it
 * takes a connection: documents of a collection the schema lacks refuse the
 * start unless `dropUnknownCollections` (then they are tombstoned and the
 * log compacted, so clients resync from a snapshot); the schema's indexes are
 * made (`ensureIndexes`, idempotent, so nodes starting together agree); a
 * change of the app schema's name or version is reported. Unlike SQLite, an
 * index the schema no longer asks for is left in place: other nodes of the
 * cluster may still run the previous schema during a rolling deploy.
 */
export async function checkPgStoredData(
  store: PgCheckedStore,
  schema: AppSchema,
  options: { dropUnknownCollections: boolean; now: number },
): Promise<SchemaCheckReport> {
  const messages: string[] = [];
  const unknown = (await store.countByCollection()).filter(
    (c) => c.live > 0 && !Object.hasOwn(schema.collections, c.collection),
  );
  if (unknown.length > 0) {
    const listed = unknown.map((c) => `'${c.collection}' (${c.live} document${c.live === 1 ? '' : 's'})`).join(', ');
    if (!options.dropUnknownCollections) {
      throw new TidelineError(
        'BAD_REQUEST',
        `the PostgreSQL store holds documents of collections that schema '${schema.name}' (version ${schema.version}) does not define: ${listed}`,
        {
          hint:
            `put the collection(s) back in the schema, or start one node once with ${DROP_FLAG} ` +
            '(createServer: dropUnknownCollections: true) to delete those documents; clients then resync from a ' +
            'snapshot. Take a pg_dump first if you may want them back.',
        },
      );
    }
    const removed = await dropCollections(
      store,
      unknown.map((c) => c.collection),
      options.now,
    );
    const { horizon } = await store.meta();
    messages.push(
      `dropped collections not in schema '${schema.name}': ${listed} (${removed} tombstones written, log compacted to ${horizon}: clients resync from a snapshot)`,
    );
  }
  await store.ensureIndexes(
    Object.fromEntries(Object.entries(schema.collections).map(([name, def]) => [name, def.indexes])),
  );
  const before = await store.appSchema();
  if (before === null) {
    messages.push(`serving schema '${schema.name}' version ${schema.version}`);
  } else if (before.name !== schema.name || before.version !== schema.version) {
    messages.push(
      `schema changed: this PostgreSQL store was served with '${before.name}' version ${before.version}, now '${schema.name}' version ${schema.version}`,
    );
  }
  await store.recordAppSchema({ name: schema.name, version: schema.version });
  return { messages };
}

/** Tombstones every live document of `collections` in one transaction, then compacts the whole log. */
async function dropCollections(store: PgCheckedStore, collections: readonly string[], now: number): Promise<number> {
  // Read before the transaction: inside it only `tx` may be used (async-store.ts).
  const doomed: Array<{ collection: string; id: string; owner: string | null }> = [];
  for (const collection of collections) {
    for (const doc of await store.query({ collection, filters: [], limit: Number.MAX_SAFE_INTEGER })) {
      doomed.push({ collection, id: doc.id, owner: (await store.getDoc(collection, doc.id))?.owner ?? null });
    }
  }
  const removed = await store.transact(async (tx) => {
    let n = 0;
    for (const d of doomed) {
      // Another node starting with the same flag may have dropped it already: a tombstone needs a live document.
      const current = await tx.getDoc(d.collection, d.id);
      if (current === undefined || current.doc === null) continue;
      await tx.append({ collection: d.collection, id: d.id, doc: null, owner: d.owner }, null, now);
      n++;
    }
    return n;
  });
  await store.compact((await store.meta()).headLsn);
  return removed;
}

import { TidelineError } from '../shared/errors';
import type { AppSchema } from '../shared/schema/define-schema';
import type { Role } from './cluster/cluster-node';
import type { SqliteStore } from './store/sqlite-store';

/** What the check needs of the store: the SQLite store's start-up block, and transactions and compaction. */
export type CheckedStore = Pick<
  SqliteStore,
  | 'countByCollection'
  | 'appIndexes'
  | 'dropAppIndex'
  | 'ensureIndexes'
  | 'appSchema'
  | 'recordAppSchema'
  | 'meta'
  | 'query'
  | 'getDoc'
  | 'transact'
  | 'compact'
>;

export interface SchemaCheckOptions {
  /** Delete the documents of collections the schema does not define (primary only), instead of refusing to start. */
  dropUnknownCollections: boolean;
  role: Role;
  now: number;
}

/** What the check found and did, one line each, for the operator. */
export interface SchemaCheckReport {
  messages: string[];
}

/** The documented way forward, also in the README ("Changing your schema"). */
export const DROP_FLAG = '--drop-unknown-collections';

/**
 * Compares the stored data with the app schema before the server takes any
 * connection, so that a client is never sent documents of a collection its
 * schema lacks (its local store refuses them, and it would retry for ever):
 *
 * - documents of a collection the schema does not define: refuse to start,
 *   naming the collections and their counts, unless `dropUnknownCollections`.
 *   Then the primary writes a tombstone for each live one and compacts the
 *   whole log, so that no change of those collections is ever sent again:
 *   clients and replicas resync from a snapshot. A replica drops nothing (its
 *   log is its primary's); it catches up from the primary's snapshot.
 * - expression indexes for fields no longer indexed are dropped, new ones
 *   created, and both reported. Indexes are local to a node, never replicated.
 * - the schema's name and version are kept in the store's meta; a change is
 *   reported.
 */
export function checkStoredData(
  store: CheckedStore,
  schema: AppSchema,
  options: SchemaCheckOptions,
): SchemaCheckReport {
  const messages: string[] = [];
  const unknown = store.countByCollection().filter((c) => schema.collections[c.collection] === undefined);
  if (unknown.length > 0) {
    const listed = unknown.map(describeCount).join(', ');
    if (!options.dropUnknownCollections) {
      throw new TidelineError(
        'BAD_REQUEST',
        `the data directory holds documents of collections that schema '${schema.name}' (version ${schema.version}) does not define: ${listed}`,
        {
          hint:
            `put the collection(s) back in the schema, or start once with ${DROP_FLAG} ` +
            '(createServer: dropUnknownCollections: true) to delete those documents; clients and replicas then ' +
            'resync from a snapshot. Take a backup first if you may want them back.',
        },
      );
    }
    if (options.role === 'primary') {
      const removed = dropCollections(
        store,
        unknown.map((c) => c.collection),
        options.now,
      );
      messages.push(
        `dropped collections not in schema '${schema.name}': ${listed} (${removed} tombstones written, log compacted to ${store.meta().horizon}: clients resync from a snapshot)`,
      );
    } else {
      messages.push(
        `collections not in the schema (${listed}) are left to the primary to drop; this replica catches up from it`,
      );
    }
  }
  const before = store.appSchema();
  const indexes = syncIndexes(store, schema);
  messages.push(...indexes.dropped);
  // Where no schema was recorded yet, every index is created: not news.
  if (before !== null) messages.push(...indexes.created);
  if (before === null) {
    messages.push(`serving schema '${schema.name}' version ${schema.version}`);
  } else if (before.name !== schema.name || before.version !== schema.version) {
    messages.push(
      `schema changed: this data directory was served with '${before.name}' version ${before.version}, now '${schema.name}' version ${schema.version}`,
    );
  }
  store.recordAppSchema({ name: schema.name, version: schema.version });
  return { messages };
}

function describeCount(c: { collection: string; live: number; deleted: number }): string {
  const live = `${c.live} document${c.live === 1 ? '' : 's'}`;
  return c.deleted > 0
    ? `'${c.collection}' (${live}, ${c.deleted} deleted not yet compacted)`
    : `'${c.collection}' (${live})`;
}

/** Tombstones every live document of `collections` in one transaction, then compacts the whole log. */
function dropCollections(store: CheckedStore, collections: readonly string[], now: number): number {
  let removed = 0;
  store.transact((tx) => {
    for (const collection of collections) {
      for (const doc of store.query({ collection, filters: [], limit: Number.MAX_SAFE_INTEGER })) {
        const owner = store.getDoc(collection, doc.id)?.owner ?? null;
        tx.append({ collection, id: doc.id, doc: null, owner }, null, now);
        removed++;
      }
    }
  });
  // Compaction removes the tombstones and every earlier change of those collections from the log.
  store.compact(store.meta().headLsn);
  return removed;
}

/** Drops the expression indexes the schema no longer asks for, creates the new ones, and says which. */
function syncIndexes(store: CheckedStore, schema: AppSchema): { dropped: string[]; created: string[] } {
  const wanted = new Set<string>();
  for (const [collection, def] of Object.entries(schema.collections)) {
    for (const field of def.indexes) wanted.add(`${collection}\u0000${field}`);
  }
  const before = store.appIndexes();
  const dropped: string[] = [];
  const created: string[] = [];
  for (const ix of before) {
    if (wanted.has(`${ix.collection}\u0000${ix.field}`)) continue;
    store.dropAppIndex(ix.name);
    dropped.push(`dropped the index on ${ix.collection}.${ix.field} (no longer in the schema)`);
  }
  store.ensureIndexes(Object.fromEntries(Object.entries(schema.collections).map(([name, def]) => [name, def.indexes])));
  const had = new Set(before.map((ix) => `${ix.collection}\u0000${ix.field}`));
  for (const ix of store.appIndexes()) {
    if (!had.has(`${ix.collection}\u0000${ix.field}`)) created.push(`created an index on ${ix.collection}.${ix.field}`);
  }
  return { dropped, created };
}

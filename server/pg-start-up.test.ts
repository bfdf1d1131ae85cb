import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidelineError } from '../shared/errors';
import { defineSchema } from '../shared/schema/define-schema';
import { checkPgStoredData } from './pg-schema-check';
import { seedEmptyAsyncStore } from './seed';
import { openPgStore } from './store/pg-store';
import type { PgStore } from './store/pg-store';
import { createTestDatabase } from './store/pg-test-db';
import type { TestDatabase } from './store/pg-test-db';

/** What a node on PostgreSQL does before it takes connections: the schema check and the seed. */

const TS = 1_700_000_000_000;
const v1 = defineSchema({
  name: 'shop',
  version: 1,
  collections: {
    products: { read: 'public', write: 'any', indexes: ['price'] },
    legacy: { read: 'public', write: 'any', indexes: [] },
  },
  mutators: {},
});
const v2 = defineSchema({
  name: 'shop',
  version: 2,
  collections: { products: { read: 'public', write: 'any', indexes: ['price', 'category+price'] } },
  mutators: {},
});

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

let n = 0;
async function twoNodes(): Promise<{ a: PgStore; b: PgStore; schema: string; done: () => Promise<void> }> {
  const schema = `start${++n}`;
  const a = await openPgStore({ url: db.url, schema, poolSize: 3 });
  const b = await openPgStore({ url: db.url, schema, poolSize: 3 });
  return {
    a,
    b,
    schema,
    done: async () => {
      await a.dropSchema();
      await b.close();
    },
  };
}

const products = Array.from({ length: 50 }, (_, i) => ({
  collection: 'products',
  doc: { id: `p${i}`, price: i, category: i % 2 ? 'a' : 'b' },
}));

describe('seedEmptyAsyncStore on PostgreSQL', () => {
  it('seeds an empty store once when two nodes start on it together', async () => {
    const { a, b, done } = await twoNodes();
    try {
      const counts = await Promise.all([
        seedEmptyAsyncStore(a, v1, products, TS),
        seedEmptyAsyncStore(b, v1, products, TS),
      ]);
      expect([...counts].sort((x, y) => x - y)).toEqual([0, 50]);
      expect((await a.meta()).headLsn).toBe(50);
      expect(await seedEmptyAsyncStore(a, v1, products, TS)).toBe(0);
    } finally {
      await done();
    }
  });
});

describe('checkPgStoredData', () => {
  it('makes the indexes, records the schema and reports a new version', async () => {
    const { a, b, schema, done } = await twoNodes();
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      const first = await checkPgStoredData(a, v1, { dropUnknownCollections: false, now: TS });
      expect(first.messages).toEqual(["serving schema 'shop' version 1"]);
      await seedEmptyAsyncStore(a, v1, products, TS);
      await a.transact(async (tx) => {
        await tx.append({ collection: 'legacy', id: 'l1', doc: { id: 'l1' }, owner: null }, null, TS);
      });
      // The schema without `legacy`: refused, naming it, until the operator says to drop it.
      await expect(checkPgStoredData(b, v2, { dropUnknownCollections: false, now: TS })).rejects.toThrow(
        /does not define: 'legacy' \(1 document\)/,
      );
      const report = await checkPgStoredData(b, v2, { dropUnknownCollections: true, now: TS });
      expect(report.messages).toEqual([
        "dropped collections not in schema 'shop': 'legacy' (1 document) (1 tombstones written, log compacted to 52: clients resync from a snapshot)",
        "schema changed: this PostgreSQL store was served with 'shop' version 1, now 'shop' version 2",
      ]);
      expect(await a.getDoc('legacy', 'l1')).toBeUndefined();
      expect((await a.meta()).horizon).toBe(52);
      const indexes = await admin.query<{ indexname: string }>(
        `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE 'ix_%' ORDER BY indexname`,
        [schema],
      );
      expect(indexes.rows.map((r) => r.indexname)).toEqual(['ix_products_category_and_price', 'ix_products_price']);
      // Started again with the same schema: nothing to say.
      expect((await checkPgStoredData(a, v2, { dropUnknownCollections: false, now: TS })).messages).toEqual([]);
    } finally {
      await admin.end();
      await done();
    }
  });

  it('refuses with a TidelineError whose hint names the flag', async () => {
    const { a, done } = await twoNodes();
    try {
      await a.transact((tx) => tx.append({ collection: 'legacy', id: 'x', doc: { id: 'x' }, owner: null }, null, TS));
      const err: unknown = await checkPgStoredData(a, v2, { dropUnknownCollections: false, now: TS }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TidelineError);
      expect((err as TidelineError).hint).toMatch(/--drop-unknown-collections/);
    } finally {
      await done();
    }
  });
});

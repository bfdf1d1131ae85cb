import { afterAll, beforeAll } from 'vitest';
import { openPgStore } from './pg-store';
import type { PgStore } from './pg-store';
import { createTestDatabase } from './pg-test-db';
import type { TestDatabase } from './pg-test-db';
import { runAsyncStoreTests } from './store-acceptance-async';

// One database for this file; each store of the suite gets a schema of its own in it.
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

let n = 0;
runAsyncStoreTests(
  'PgStore',
  async () => {
    const schema = `s${++n}`;
    const opened: PgStore[] = [await openPgStore({ url: db.url, schema, poolSize: 2, snapshotPoolSize: 2 })];
    return {
      store: opened[0]!,
      reopen: async () => {
        const store = await openPgStore({ url: db.url, schema, poolSize: 2, snapshotPoolSize: 2 });
        opened.push(store);
        return store;
      },
      cleanup: async () => {
        await opened[opened.length - 1]!.dropSchema();
        await Promise.all(opened.map((s) => s.close()));
      },
      index: (collections) => opened[opened.length - 1]!.ensureIndexes(collections),
    };
  },
  { durable: true, indexable: true },
);

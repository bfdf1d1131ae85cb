import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore } from './memory-store';
import { openSqliteStore } from './sqlite-store';
import type { SqliteStore } from './sqlite-store';
import type { StoreTx } from './store';
import { runAsyncStoreTests } from './store-acceptance-async';
import { asyncStoreOf } from './sync-store-adapter';

/*
 * The async acceptance suite on the synchronous stores behind `asyncStoreOf`:
 * the same suite that PgStore runs (pg-store.test.ts), so all three stores
 * are held to one contract through the interface the server will call.
 */

runAsyncStoreTests(
  'SqliteStore (async adapter)',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'tideline-async-store-'));
    const path = join(dir, 'data', 'tideline.db');
    const opened: SqliteStore[] = [openSqliteStore(path)];
    return Promise.resolve({
      store: asyncStoreOf(opened[0]!),
      reopen: () => {
        const store = openSqliteStore(path);
        opened.push(store);
        return Promise.resolve(asyncStoreOf(store));
      },
      cleanup: () => {
        for (const store of opened) store.close();
        rmSync(dir, { recursive: true, force: true });
        return Promise.resolve();
      },
      index: (collections) => {
        opened[opened.length - 1]!.ensureIndexes(collections);
        return Promise.resolve();
      },
    });
  },
  { durable: true, indexable: true },
);

runAsyncStoreTests(
  'MemoryStore (async adapter)',
  () => {
    let current = new MemoryStore({ serverId: 'memory-test' });
    return Promise.resolve({
      store: asyncStoreOf(current),
      reopen: () => {
        current = new MemoryStore({ data: current.data });
        return Promise.resolve(asyncStoreOf(current));
      },
      cleanup: () => {
        current.close();
        return Promise.resolve();
      },
    });
  },
  { durable: true, indexable: false },
);

describe('asyncStoreOf', () => {
  const stores = {
    sqlite: () => {
      const dir = mkdtempSync(join(tmpdir(), 'tideline-async-store-'));
      const store = openSqliteStore(join(dir, 'tideline.db'));
      return { store, cleanup: () => (store.close(), rmSync(dir, { recursive: true, force: true })) };
    },
    memory: () => {
      const store = new MemoryStore();
      return { store, cleanup: () => store.close() };
    },
  };
  for (const [name, make] of Object.entries(stores)) {
    it(`${name}: a read made while a transaction is open waits for its end and never sees its writes`, async () => {
      const { store, cleanup } = make();
      try {
        const s = asyncStoreOf(store);
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        let appended!: () => void;
        const wrote = new Promise<void>((resolve) => (appended = resolve));
        const aborted = s.transact(async (tx) => {
          await tx.append({ collection: 'notes', id: 'n1', doc: { id: 'n1' }, owner: null }, null, 1);
          appended();
          await gate;
          throw new Error('abort');
        });
        await wrote;
        const meta = s.meta();
        const doc = s.getDoc('notes', 'n1');
        release();
        await expect(aborted).rejects.toThrow('abort');
        expect((await meta).headLsn).toBe(0);
        expect(await doc).toBeUndefined();
      } finally {
        cleanup();
      }
    });
  }
});

describe('asyncStoreOf on a store with heldTx (SQLite)', () => {
  it('a tx call that throws fails the whole transaction, even when fn catches it; nothing is kept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tideline-async-store-'));
    const store = openSqliteStore(join(dir, 'tideline.db'));
    try {
      // The same store, but its held transaction's `usage` fails as a disk error would.
      const failing = new Proxy(store, {
        get(target, key) {
          if (key === 'heldTx') {
            return (): StoreTx => ({
              ...target.heldTx(),
              usage: () => {
                throw new Error('disk I/O error');
              },
            });
          }
          const value: unknown = Reflect.get(target, key);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      const s = asyncStoreOf(failing);
      const put = (id: string) => ({ collection: 'notes', id, doc: { id }, owner: null });
      await expect(
        s.transact(async (tx) => {
          await tx.append(put('n1'), null, 1);
          await tx.usage('notes', 'alice').catch(() => undefined);
          await tx.append(put('n2'), null, 1);
          return 'committed?';
        }),
      ).rejects.toThrow('disk I/O error');
      expect((await s.meta()).headLsn).toBe(0);
      expect(await s.getDoc('notes', 'n1')).toBeUndefined();
      // The store goes on: the next transaction commits.
      await s.transact(async (tx) => void (await tx.append(put('n3'), null, 1)));
      expect((await s.meta()).headLsn).toBe(1);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

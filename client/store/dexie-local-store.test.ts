import 'fake-indexeddb/auto';
import Dexie from 'dexie';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { consecutiveRun, DexieLocalStore, openDexie } from './dexie-local-store';
import { localStoreTestSchema, runLocalStoreTests } from './local-store-acceptance';

let databases = 0;

runLocalStoreTests('DexieLocalStore on fake-indexeddb', async () => {
  const name = `local-store-test-${++databases}-${randomUUID()}`;
  const open = async (): Promise<DexieLocalStore> => {
    const db = openDexie(localStoreTestSchema, name);
    await db.open();
    return new DexieLocalStore(db, localStoreTestSchema, () => randomUUID());
  };
  const opened = [await open()];
  return {
    store: opened[0] as DexieLocalStore,
    reopen: async () => {
      const store = await open();
      opened.push(store);
      return store;
    },
    cleanup: async () => {
      for (const store of opened) store.close();
      await Dexie.delete(name);
    },
  };
});

describe('DexieLocalStore transaction modes', () => {
  it('runs a read-only scope as a readonly IndexedDB transaction over only its tables, and the default as readwrite over all', async () => {
    const name = `local-store-modes-${randomUUID()}`;
    const db = openDexie(localStoreTestSchema, name);
    await db.open();
    const store = new DexieLocalStore(db, localStoreTestSchema, () => randomUUID());
    const seen = (): { mode: string | undefined; tables: string[] } => {
      const trans = Dexie.currentTransaction;
      return { mode: trans?.mode, tables: [...(trans?.storeNames ?? [])].sort() };
    };
    try {
      expect(await store.transaction(async () => seen(), { mode: 'r', tables: ['outbox', 'meta'] })).toEqual({
        mode: 'readonly',
        tables: ['_meta', '_outbox'],
      });
      expect(
        await store.transaction(async () => seen(), { mode: 'rw', tables: ['docs', 'shadow', 'outbox', 'meta'] }),
      ).toEqual({ mode: 'readwrite', tables: ['_meta', '_outbox', '_shadow', 'carts', 'notes', 'products'] });
      expect(await store.transaction(async () => seen())).toEqual({
        mode: 'readwrite',
        tables: db.tables.map((t) => t.name).sort(),
      });
    } finally {
      db.close();
      await Dexie.delete(name);
    }
  });
});

describe('consecutiveRun', () => {
  it('names the range only when the seqs are exactly its integers', () => {
    expect(consecutiveRun([3, 1, 2])).toEqual({ from: 1, to: 3 });
    expect(consecutiveRun([1, 3])).toBeNull();
    expect(consecutiveRun([1, 1, 2])).toBeNull();
    expect(consecutiveRun([1, 2, 2])).toBeNull();
    expect(consecutiveRun([1.5, 2.5])).toBeNull();
    expect(consecutiveRun([7])).toBeNull();
    expect(consecutiveRun([])).toBeNull();
  });
});

describe('DexieLocalStore addShadows failures', () => {
  const entry = (id: string, doc: unknown): never => ({ key: `notes/${id}`, collection: 'notes', id, doc }) as never;
  for (const [what, bad] of [
    ['an invalid key', { key: Number.NaN, collection: 'notes', id: 'x', doc: null }],
    ['a value IndexedDB cannot store', entry('x', { id: 'x', f: () => 1 })],
  ] as const) {
    it(`aborts the whole transaction for ${what}, also beside a key that already has an entry`, async () => {
      const name = `local-store-addshadows-${randomUUID()}`;
      const db = openDexie(localStoreTestSchema, name);
      await db.open();
      const store = new DexieLocalStore(db, localStoreTestSchema, () => randomUUID());
      try {
        await store.transaction((tx) => tx.putShadow(entry('a', { id: 'a', v: 1 })));
        const attempt = store.transaction(async (tx) => {
          await tx.putDoc('notes', { id: 'n', text: 'must roll back' });
          await tx.addShadows([entry('a', { id: 'a', v: 2 }), bad as never, entry('b', null)]);
        });
        await expect(attempt).rejects.toBeDefined();
        const after = await store.transaction(async (tx) => ({
          doc: await tx.getDoc('notes', 'n'),
          shadow: (await tx.shadow()).map((e) => [e.key, e.doc]),
        }));
        expect(after).toEqual({ doc: undefined, shadow: [['notes/a', { id: 'a', v: 1 }]] });
      } finally {
        db.close();
        await Dexie.delete(name);
      }
    });
  }
});

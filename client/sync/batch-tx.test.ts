import 'fake-indexeddb/auto';
import Dexie from 'dexie';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Doc } from '../../shared/json';
import { defineSchema } from '../../shared/schema/define-schema';
import { DexieLocalStore, openDexie } from '../store/dexie-local-store';
import { MemoryLocalStore } from '../store/memory-local-store';
import { BatchTx, builtinTarget } from './batch-tx';
import { SyncEngine } from './engine';
import type { LocalStore, LocalTx } from './local-store';

const schema = defineSchema({
  name: 'batch-tx-test',
  version: 1,
  collections: { notes: { read: 'public', write: 'any', indexes: ['n'] } },
  mutators: {},
});
const note = (id: string, n = 1): Doc => ({ id, n });

const opened: Dexie[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) {
    db.close();
    await Dexie.delete(db.name);
  }
});

async function stores(): Promise<Array<[string, LocalStore]>> {
  const db = openDexie(schema, `batch-tx-${randomUUID()}`);
  await db.open();
  opened.push(db);
  return [
    ['memory', new MemoryLocalStore(schema, () => 'c1')],
    ['dexie', new DexieLocalStore(db, schema, () => 'c1')],
  ];
}

/** Counts the calls of `inner`'s methods, to see what reaches the store. */
function counted(inner: LocalTx, calls: string[]): LocalTx {
  const tx = {} as Record<keyof LocalTx, unknown>;
  for (const method of Object.keys(inner) as Array<keyof LocalTx>) {
    tx[method] = (...args: unknown[]) => {
      calls.push(method);
      return (inner[method] as (...a: unknown[]) => Promise<unknown>)(...args);
    };
  }
  return tx as unknown as LocalTx;
}

describe('BatchTx', () => {
  it('serves reads of what the batch wrote, holds every write until flush, then sends them in bulk', async () => {
    for (const [name, store] of await stores()) {
      await store.transaction((tx) => tx.putDoc('notes', note('old', 1)));
      const calls: string[] = [];
      await store.transaction(async (inner) => {
        const batch = new BatchTx(counted(inner, calls));
        await batch.prefetch([
          { collection: 'notes', id: 'old' },
          { collection: 'notes', id: 'new' },
        ]);
        const tx = batch.tx;
        expect(await tx.getDoc('notes', 'old'), name).toEqual(note('old', 1));
        expect(await tx.hasShadow('notes/old')).toBe(false);
        await tx.putShadow({ key: 'notes/old', collection: 'notes', id: 'old', doc: note('old', 1) });
        await tx.putDoc('notes', note('old', 2));
        await tx.deleteDoc('notes', 'gone');
        await tx.putDoc('notes', note('new', 3));
        expect(await tx.getDoc('notes', 'old')).toEqual(note('old', 2));
        expect(await tx.getDoc('notes', 'gone')).toBeUndefined();
        expect(await tx.hasShadow('notes/old')).toBe(true);
        // A copy: changing what a read returned changes nothing stored.
        const got = await tx.getDoc('notes', 'new');
        got!['n'] = 99;
        expect(await tx.getDoc('notes', 'new')).toEqual(note('new', 3));
        await tx.putOutbox({ seq: 1, name: 'put', args: {}, reads: [], writes: [] });
        await tx.setMeta({ ...(await tx.meta()), nextSeq: 2 });
        const beforeFlush = [...calls];
        expect(beforeFlush.filter((c) => /put|set|apply|delete/i.test(c))).toEqual([]);
        // Nothing reached the store yet.
        expect(await inner.getDoc('notes', 'old')).toEqual(note('old', 1));
        await batch.flush();
        expect(calls.slice(beforeFlush.length).sort()).toEqual(
          ['applyDocs', 'bulkPutOutbox', 'addShadows', 'setMeta'].sort(),
        );
      });
      const after = await store.transaction(async (tx) => ({
        old: await tx.getDoc('notes', 'old'),
        fresh: await tx.getDoc('notes', 'new'),
        shadow: await tx.shadow(),
        outbox: (await tx.outbox()).map((e) => e.seq),
        nextSeq: (await tx.meta()).nextSeq,
      }));
      expect(after, name).toEqual({
        old: note('old', 2),
        fresh: note('new', 3),
        shadow: [{ key: 'notes/old', collection: 'notes', id: 'old', doc: note('old', 1) }],
        outbox: [1],
        nextSeq: 2,
      });
    }
  });

  it('adds shadows without reading them: one the store holds is kept, and the first of a batch wins', async () => {
    for (const [name, store] of await stores()) {
      const older = { key: 'notes/k', collection: 'notes', id: 'k', doc: note('k', 1) };
      await store.transaction(async (tx) => {
        await tx.putDoc('notes', note('k', 2));
        await tx.putShadow(older);
      });
      const calls: string[] = [];
      await store.transaction(async (inner) => {
        const batch = new BatchTx(counted(inner, calls));
        const tx = batch.tx;
        expect(await tx.shadowedKeys(['notes/k', 'notes/j'])).toEqual([]);
        await tx.bulkPutShadow([{ ...older, doc: note('k', 2) }]);
        await tx.bulkPutShadow([{ key: 'notes/j', collection: 'notes', id: 'j', doc: null }]);
        await tx.bulkPutShadow([{ key: 'notes/j', collection: 'notes', id: 'j', doc: note('j', 5) }]);
        expect((await tx.shadowedKeys(['notes/k', 'notes/j'])).sort()).toEqual(['notes/j', 'notes/k']);
        await batch.flush();
      });
      expect(
        calls.filter((c) => /shadow/i.test(c)),
        name,
      ).toEqual(['addShadows']);
      const shadow = await store.transaction((tx) => tx.shadow());
      expect(
        shadow.sort((a, b) => a.key.localeCompare(b.key)),
        name,
      ).toEqual([{ key: 'notes/j', collection: 'notes', id: 'j', doc: null }, older]);
    }
  });

  it('reads each key from the store once, and leaves a failed read-ahead to the mutations that need it', async () => {
    const store = new MemoryLocalStore(schema, () => 'c1');
    await store.transaction(async (inner) => {
      const calls: string[] = [];
      let failing = true;
      const flaky: LocalTx = {
        ...counted(inner, calls),
        getDocs: async (refs) => {
          calls.push('getDocs');
          if (failing && refs.some((r) => r.id === 'x')) throw new Error('read failed');
          return inner.getDocs(refs);
        },
        getDoc: async (c, id) => {
          calls.push('getDoc');
          return inner.getDoc(c, id);
        },
      };
      const batch = new BatchTx(flaky);
      await batch.prefetch([{ collection: 'notes', id: 'z' }]);
      calls.length = 0;
      expect(await batch.tx.getDoc('notes', 'z')).toBeUndefined();
      expect(calls).toEqual([]);
      // The read-ahead of x and y fails as one request: each is read again, once, when a mutation needs it.
      await batch.prefetch([
        { collection: 'notes', id: 'x' },
        { collection: 'notes', id: 'y' },
      ]);
      failing = false;
      calls.length = 0;
      expect(await batch.tx.getDoc('notes', 'y')).toBeUndefined();
      expect(await batch.tx.getDoc('notes', 'x')).toBeUndefined();
      expect(await batch.tx.getDoc('notes', 'x')).toBeUndefined();
      expect(await batch.tx.getDocs([{ collection: 'notes', id: 'y' }])).toEqual([undefined]);
      expect(calls).toEqual(['getDoc', 'getDoc']);
      await expect(batch.tx.outbox()).rejects.toThrow(/not available/);
    });
  });

  it('names the document of a built-in mutation, and nothing for anything else', () => {
    expect(builtinTarget(schema, { collection: 'notes', doc: { id: 'a' } })).toEqual({ collection: 'notes', id: 'a' });
    expect(builtinTarget(schema, { collection: 'notes', id: 'b', field: 'n', by: 1 })).toEqual({
      collection: 'notes',
      id: 'b',
    });
    expect(builtinTarget(schema, { collection: 'todos', id: 'b' })).toBeNull();
    expect(builtinTarget(schema, { collection: 'notes', doc: { text: 'no id' } })).toBeNull();
    expect(builtinTarget(schema, [1, 2])).toBeNull();
    expect(builtinTarget(schema, 'notes/a')).toBeNull();
  });
});

describe('SyncEngine: a batch on each store', () => {
  it('runs later mutations of a batch on what earlier ones wrote, and stores the same as one at a time', async () => {
    for (const [name, store] of await stores()) {
      const engine = new SyncEngine({
        schema,
        local: store,
        servers: ['http://primary.test'],
        connect: () => {
          throw new Error('not connected in this test');
        },
        token: 'token',
        user: { userId: 'u1', roles: [] },
        clock: { now: () => 0, setTimeout: () => 0, clearTimeout: () => undefined },
        random: () => 0.5,
      });
      const results = await Promise.all([
        engine.mutate('put', { collection: 'notes', doc: note('a', 1) }),
        engine.mutate('inc', { collection: 'notes', id: 'a', field: 'n', by: 2 }),
        engine.mutate('patch', { collection: 'notes', id: 'a', set: { text: 'hi' } }),
        engine.mutate('put', { collection: 'notes', doc: note('b', 5) }),
        engine.mutate('delete', { collection: 'notes', id: 'b' }),
        engine.mutate('inc', { collection: 'notes', id: 'a', field: 'n', by: 4 }),
      ]);
      expect(
        results.map((r) => r.seq),
        name,
      ).toEqual([1, 2, 3, 4, 5, 6]);
      const stored = await store.transaction(async (tx) => ({
        a: await tx.getDoc('notes', 'a'),
        b: await tx.getDoc('notes', 'b'),
        shadow: (await tx.shadow()).map((e) => [e.key, e.doc]).sort(),
        outbox: (await tx.outbox()).map((e) => [e.seq, e.name, e.writes]),
      }));
      expect(stored, name).toEqual({
        a: { id: 'a', n: 7, text: 'hi' },
        b: undefined,
        // Both were absent before the batch: their confirmed versions are null.
        shadow: [
          ['notes/a', null],
          ['notes/b', null],
        ],
        outbox: [
          [1, 'put', ['notes/a']],
          [2, 'inc', ['notes/a']],
          [3, 'patch', ['notes/a']],
          [4, 'put', ['notes/b']],
          [5, 'delete', ['notes/b']],
          [6, 'inc', ['notes/a']],
        ],
      });
    }
  });
});

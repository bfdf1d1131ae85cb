import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Doc } from '../../shared/json';
import type { WireError } from '../../shared/protocol/wire-error';
import { defineSchema } from '../../shared/schema/define-schema';
import type { LocalStore, LocalTx, OutboxEntry, RejectionRecord, ShadowEntry } from '../sync/local-store';

/** The schema the suite's documents belong to; every harness builds its store for it. */
export const localStoreTestSchema = defineSchema({
  name: 'local-store-acceptance',
  version: 1,
  collections: {
    notes: { read: 'public', write: 'any', indexes: ['createdAt'] },
    products: { read: 'public', write: { role: 'staff' }, indexes: ['price', 'category+price'] },
    carts: { read: 'owner', write: 'owner', indexes: ['owner'] },
  },
  mutators: {},
});

export interface LocalStoreHarness {
  store: LocalStore;
  /**
   * Opens the same data again, as a reloaded page would. The suite closes
   * the current store first. Leave it out for stores that cannot outlive
   * their object; the durability tests are then not defined.
   */
  reopen?: () => Promise<LocalStore>;
  /** Closes whatever store is still open and deletes its data. */
  cleanup: () => Promise<void> | void;
}

const note = (id: string, text = `note ${id}`): Doc => ({ id, text, createdAt: 1 });
const entry = (seq: number, name = 'put'): OutboxEntry => ({
  seq,
  name,
  args: { collection: 'notes', doc: note(`n${seq}`) },
  reads: [`notes/n${seq}`],
  writes: [`notes/n${seq}`],
});
const shadowOf = (collection: string, id: string, doc: Doc | null): ShadowEntry => ({
  key: `${collection}/${id}`,
  collection,
  id,
  doc,
});
const rejected: WireError = { code: 'REJECTED', message: 'stock cannot go below 0', retryable: false };
const rejection = (seq: number): RejectionRecord => ({
  seq,
  name: 'checkout',
  args: { orderId: `o${seq}` },
  error: rejected,
  at: 1_700_000_000_000 + seq,
});

class Boom extends Error {}

/** Shadow entries come in no promised order: sort them to compare. */
const byKey = (entries: readonly ShadowEntry[]): ShadowEntry[] =>
  [...entries].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));

type Write = { collection: string; id: string; doc: Doc | null };
const key = (w: { collection: string; id: string }): string => `${w.collection}/${w.id}`;

/** Reads every key in `keys` (`collection/id`) into a plain record; absent documents are left out. */
async function docsAt(tx: LocalTx, keys: Iterable<string>): Promise<Record<string, Doc>> {
  const out: Record<string, Doc> = {};
  for (const k of keys) {
    const [collection, id] = k.split('/') as [string, string];
    const doc = await tx.getDoc(collection, id);
    if (doc !== undefined) out[k] = doc;
  }
  return out;
}

/** Everything a transaction can see, read in one transaction. */
async function contents(tx: LocalTx) {
  return {
    notes: [await tx.getDoc('notes', 'n1'), await tx.getDoc('notes', 'n2'), await tx.getDoc('notes', 'n3')],
    product: await tx.getDoc('products', 'p1'),
    shadow: await tx.shadow(),
    outbox: await tx.outbox(),
    meta: await tx.meta(),
    staged: await tx.staged(),
  };
}

/**
 * The contract of `LocalStore` (see its doc comment), run by every
 * implementation. `make` returns a fresh, empty store over
 * `localStoreTestSchema` for each test.
 */
export function runLocalStoreTests(name: string, make: () => Promise<LocalStoreHarness>): void {
  describe(`LocalStore acceptance: ${name}`, async () => {
    // Probed once so the durability tests are either defined or absent, never skipped.
    const probe = await make();
    const durable = probe.reopen !== undefined;
    await probe.cleanup();

    let harness: LocalStoreHarness;
    let store: LocalStore;

    beforeEach(async () => {
      harness = await make();
      store = harness.store;
    });
    afterEach(async () => {
      await harness.cleanup();
    });

    const reopen = async (): Promise<LocalStore> => {
      if (!harness.reopen) throw new Error('this harness cannot reopen');
      store.close();
      store = await harness.reopen();
      return store;
    };

    describe('meta', () => {
      it('starts at checkpoint 0 and seq 1 with a new client id', async () => {
        const meta = await store.transaction((tx) => tx.meta());
        expect(typeof meta.clientId).toBe('string');
        expect(meta.clientId.length).toBeGreaterThan(0);
        expect(meta).toEqual({
          clientId: meta.clientId,
          checkpoint: 0,
          checkpointTerm: 0,
          nextSeq: 1,
          lastSyncedAt: null,
        });
      });

      it('keeps the client id from one transaction to the next', async () => {
        const first = await store.transaction((tx) => tx.meta());
        const second = await store.transaction((tx) => tx.meta());
        expect(second.clientId).toBe(first.clientId);
      });

      it('gives each new store its own client id', async () => {
        const other = await make();
        try {
          const a = await store.transaction((tx) => tx.meta());
          const b = await other.store.transaction((tx) => tx.meta());
          expect(a.clientId).not.toBe(b.clientId);
        } finally {
          await other.cleanup();
        }
      });

      it('returns what setMeta wrote, in the same transaction and after', async () => {
        const inside = await store.transaction(async (tx) => {
          const meta = await tx.meta();
          await tx.setMeta({ ...meta, checkpoint: 42, nextSeq: 7, lastSyncedAt: 1_700_000_000_000 });
          return tx.meta();
        });
        expect(inside).toMatchObject({ checkpoint: 42, nextSeq: 7, lastSyncedAt: 1_700_000_000_000 });
        expect(await store.transaction((tx) => tx.meta())).toEqual(inside);
      });

      it('does not share the returned object with the store', async () => {
        const meta = await store.transaction((tx) => tx.meta());
        meta.checkpoint = 99;
        expect((await store.transaction((tx) => tx.meta())).checkpoint).toBe(0);
      });
    });

    describe('transactions', () => {
      it('return what fn returns', async () => {
        expect(await store.transaction(async () => 'result')).toBe('result');
      });

      it('keep nothing when fn throws, and pass the error on', async () => {
        await store.transaction(async (tx) => {
          await tx.putDoc('notes', note('n1', 'before'));
          await tx.setMeta({ ...(await tx.meta()), checkpoint: 5 });
        });
        const before = await store.transaction(contents);
        const beforeRejections = await store.rejections();

        const boom = new Boom('fn failed');
        await expect(
          store.transaction(async (tx) => {
            await tx.putDoc('notes', note('n1', 'changed'));
            await tx.putDoc('notes', note('n2'));
            await tx.putDoc('products', { id: 'p1', price: 3 });
            await tx.putShadow(shadowOf('notes', 'n1', note('n1', 'before')));
            await tx.putOutbox(entry(1));
            await tx.setMeta({ ...(await tx.meta()), checkpoint: 6, nextSeq: 2 });
            await tx.stage([{ collection: 'notes', doc: note('n3') }]);
            await tx.addRejection(rejection(1));
            throw boom;
          }),
        ).rejects.toBe(boom);

        expect(await store.transaction(contents)).toEqual(before);
        expect(await store.rejections()).toEqual(beforeRejections);
      });

      it('keep nothing of a delete or a clear when fn throws', async () => {
        await store.transaction(async (tx) => {
          await tx.putDoc('notes', note('n1'));
          await tx.putShadow(shadowOf('notes', 'n1', null));
          await tx.putOutbox(entry(1));
          await tx.stage([{ collection: 'notes', doc: note('n2') }]);
        });
        const before = await store.transaction(contents);
        await expect(
          store.transaction(async (tx) => {
            await tx.deleteDoc('notes', 'n1');
            await tx.deleteOutbox([1]);
            await tx.clearShadow();
            await tx.clearStaging();
            await tx.clearDocs();
            throw new Boom('after clearing');
          }),
        ).rejects.toBeInstanceOf(Boom);
        expect(await store.transaction(contents)).toEqual(before);
      });

      it('keep nothing of a bulk apply, a shadow delete, a restaging or an outbox change when fn throws', async () => {
        await store.transaction(async (tx) => {
          await tx.putDoc('notes', note('n1', 'before'));
          await tx.putDoc('notes', note('n2', 'before'));
          await tx.putDoc('products', { id: 'p1', price: 1 });
          await tx.putShadow(shadowOf('notes', 'n1', note('n1', 'confirmed')));
          await tx.putShadow(shadowOf('notes', 'n2', null));
          await tx.putOutbox(entry(1));
          await tx.putOutbox(entry(2));
          await tx.stage([{ collection: 'notes', doc: note('n3', 'staged') }]);
          await tx.setMeta({ ...(await tx.meta()), checkpoint: 5, nextSeq: 3 });
          await tx.addRejection(rejection(1));
        });
        const before = await store.transaction(contents);
        const beforeRejections = await store.rejections();

        await expect(
          store.transaction(async (tx) => {
            await tx.applyDocs([
              { collection: 'notes', id: 'n1', doc: null },
              { collection: 'notes', id: 'n2', doc: note('n2', 'overwritten') },
              { collection: 'notes', id: 'n3', doc: note('n3', 'new') },
              { collection: 'products', id: 'p1', doc: null },
              ...Array.from({ length: 200 }, (_, i) => ({ collection: 'notes', id: `bulk${i}`, doc: note(`b${i}`) })),
            ]);
            await tx.deleteShadow(['notes/n1']);
            await tx.putShadow(shadowOf('notes', 'n3', null));
            await tx.deleteOutbox([1]);
            await tx.putOutbox(entry(3));
            await tx.clearStaging();
            await tx.stage([{ collection: 'notes', doc: note('n4') }]);
            await tx.setMeta({ ...(await tx.meta()), checkpoint: 9, nextSeq: 4 });
            await tx.addRejection(rejection(2));
            throw new Boom('after the bulk apply');
          }),
        ).rejects.toBeInstanceOf(Boom);

        expect(await store.transaction(contents)).toEqual(before);
        expect(await store.rejections()).toEqual(beforeRejections);
        expect(await store.transaction((tx) => tx.getDoc('notes', 'bulk0'))).toBeUndefined();
      });

      it('keep nothing when a store call itself fails part-way through a bulk apply', async () => {
        await store.transaction((tx) => tx.putDoc('notes', note('n1', 'before')));
        const before = await store.transaction(contents);
        await expect(
          store.transaction(async (tx) => {
            await tx.putOutbox(entry(1));
            await tx.applyDocs([
              { collection: 'notes', id: 'n1', doc: note('n1', 'changed') },
              { collection: 'notes', id: 'n2', doc: note('n2') },
              { collection: 'no_such_collection', id: 'x', doc: { id: 'x' } },
            ]);
          }),
        ).rejects.toThrow();
        expect(await store.transaction(contents)).toEqual(before);
      });

      it('change documents and the outbox together: every transaction sees both or neither', async () => {
        const observe = () =>
          store.transaction(async (tx) => {
            const doc = await tx.getDoc('notes', 'n1');
            const outbox = await tx.outbox();
            const meta = await tx.meta();
            return { doc: doc !== undefined, outbox: outbox.map((e) => e.seq), nextSeq: meta.nextSeq };
          });
        // A local mutation as the engine writes it: the document, then its outbox entry, then the next seq.
        const mutate = (fail: boolean) =>
          store.transaction(async (tx) => {
            const meta = await tx.meta();
            await tx.putDoc('notes', note('n1'));
            await tx.getDoc('notes', 'n2');
            await tx.putOutbox(entry(meta.nextSeq));
            await tx.outbox();
            await tx.setMeta({ ...meta, nextSeq: meta.nextSeq + 1 });
            if (fail) throw new Boom('crash after the outbox write');
          });
        const seen = await Promise.allSettled([
          observe(),
          mutate(true),
          observe(),
          observe(),
          mutate(false),
          observe(),
          observe(),
        ]);
        const views = seen.flatMap((r) => (r.status === 'fulfilled' && r.value ? [r.value] : []));
        expect(seen.map((r) => r.status)).toEqual([
          'fulfilled',
          'rejected',
          'fulfilled',
          'fulfilled',
          'fulfilled',
          'fulfilled',
          'fulfilled',
        ]);
        for (const view of views) {
          expect([
            { doc: false, outbox: [], nextSeq: 1 },
            { doc: true, outbox: [1], nextSeq: 2 },
          ]).toContainEqual(view);
        }
        expect(await observe()).toEqual({ doc: true, outbox: [1], nextSeq: 2 });
      });

      it('leave the store usable after a failed one', async () => {
        await expect(store.transaction(() => Promise.reject(new Boom('nope')))).rejects.toBeInstanceOf(Boom);
        await store.transaction((tx) => tx.putDoc('notes', note('n1')));
        expect(await store.transaction((tx) => tx.getDoc('notes', 'n1'))).toEqual(note('n1'));
      });

      it('see their own writes', async () => {
        const seen = await store.transaction(async (tx) => {
          await tx.putDoc('notes', note('n1'));
          await tx.putOutbox(entry(4));
          return { doc: await tx.getDoc('notes', 'n1'), outbox: await tx.outbox() };
        });
        expect(seen).toEqual({ doc: note('n1'), outbox: [entry(4)] });
      });

      it('do not interleave: concurrent read-increment-writes all count', async () => {
        const increments = 50;
        await Promise.all(
          Array.from({ length: increments }, () =>
            store.transaction(async (tx) => {
              const meta = await tx.meta();
              await tx.putDoc('notes', { id: 'counter', n: meta.nextSeq });
              await tx.setMeta({ ...meta, nextSeq: meta.nextSeq + 1 });
            }),
          ),
        );
        const { meta, counter } = await store.transaction(async (tx) => ({
          meta: await tx.meta(),
          counter: await tx.getDoc('notes', 'counter'),
        }));
        expect(meta.nextSeq).toBe(1 + increments);
        expect(counter).toEqual({ id: 'counter', n: increments });
      });

      it('do not see the writes of a concurrent transaction that fails', async () => {
        const results = await Promise.allSettled([
          store.transaction(async (tx) => {
            await tx.setMeta({ ...(await tx.meta()), nextSeq: 100 });
            await tx.putDoc('notes', note('n1'));
            await tx.getDoc('notes', 'n1');
            throw new Boom('rolled back');
          }),
          store.transaction(async (tx) => {
            await tx.getDoc('notes', 'n2');
            await tx.getDoc('notes', 'n3');
            expect(await tx.getDoc('notes', 'n1')).toBeUndefined();
            const meta = await tx.meta();
            await tx.setMeta({ ...meta, nextSeq: meta.nextSeq + 1 });
            return meta.nextSeq;
          }),
        ]);
        expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled']);
        expect(results[1]).toEqual({ status: 'fulfilled', value: 1 });
        expect((await store.transaction((tx) => tx.meta())).nextSeq).toBe(2);
      });
    });

    describe('documents', () => {
      it('put, get and delete by collection and id', async () => {
        await store.transaction(async (tx) => {
          await tx.putDoc('notes', note('n1'));
          await tx.putDoc('products', { id: 'n1', price: 5, category: 'tools', tags: ['a', 'b'], meta: { x: null } });
        });
        const read = await store.transaction(async (tx) => ({
          note: await tx.getDoc('notes', 'n1'),
          product: await tx.getDoc('products', 'n1'),
          missing: await tx.getDoc('notes', 'n2'),
          otherCollection: await tx.getDoc('carts', 'n1'),
        }));
        expect(read).toEqual({
          note: note('n1'),
          product: { id: 'n1', price: 5, category: 'tools', tags: ['a', 'b'], meta: { x: null } },
          missing: undefined,
          otherCollection: undefined,
        });

        await store.transaction(async (tx) => {
          await tx.deleteDoc('notes', 'n1');
          await tx.deleteDoc('notes', 'never-there');
        });
        expect(await store.transaction((tx) => tx.getDoc('notes', 'n1'))).toBeUndefined();
        expect(await store.transaction((tx) => tx.getDoc('products', 'n1'))).toEqual(read.product);
      });

      it('getDocs reads many documents of several collections, in the order asked', async () => {
        await store.transaction(async (tx) => {
          await tx.putDoc('notes', note('n1'));
          await tx.putDoc('notes', note('n2'));
          await tx.putDoc('products', { id: 'p1', price: 3 });
        });
        const got = await store.transaction(async (tx) => ({
          some: await tx.getDocs([
            { collection: 'notes', id: 'n2' },
            { collection: 'products', id: 'p1' },
            { collection: 'notes', id: 'missing' },
            { collection: 'notes', id: 'n1' },
            { collection: 'products', id: 'n1' },
            { collection: 'notes', id: 'n2' },
          ]),
          none: await tx.getDocs([]),
        }));
        expect(got.some).toEqual([note('n2'), { id: 'p1', price: 3 }, undefined, note('n1'), undefined, note('n2')]);
        expect(got.none).toEqual([]);
        // Sees the transaction's own writes, and hands out copies.
        await store.transaction(async (tx) => {
          await tx.putDoc('notes', note('n3'));
          const [n3] = await tx.getDocs([{ collection: 'notes', id: 'n3' }]);
          expect(n3).toEqual(note('n3'));
          if (n3) n3['text'] = 'changed';
        });
        expect(await store.transaction((tx) => tx.getDoc('notes', 'n3'))).toEqual(note('n3'));
      });

      it('put replaces the whole document', async () => {
        await store.transaction((tx) => tx.putDoc('notes', { id: 'n1', text: 'a', color: 'red' }));
        await store.transaction((tx) => tx.putDoc('notes', { id: 'n1', text: 'b' }));
        expect(await store.transaction((tx) => tx.getDoc('notes', 'n1'))).toEqual({ id: 'n1', text: 'b' });
      });

      it('store a copy, and hand out copies', async () => {
        const doc: Doc = { id: 'n1', text: 'a', tags: ['x'] };
        await store.transaction(async (tx) => {
          await tx.putDoc('notes', doc);
          doc['text'] = 'changed after put';
        });
        const got = await store.transaction((tx) => tx.getDoc('notes', 'n1'));
        expect(got).toEqual({ id: 'n1', text: 'a', tags: ['x'] });
        if (got) got['text'] = 'changed after get';
        expect(await store.transaction((tx) => tx.getDoc('notes', 'n1'))).toEqual({ id: 'n1', text: 'a', tags: ['x'] });
      });

      it('clearDocs removes every document of every collection, and nothing else', async () => {
        await store.transaction(async (tx) => {
          await tx.putDoc('notes', note('n1'));
          await tx.putDoc('products', { id: 'p1', price: 1 });
          await tx.putDoc('carts', { id: 'c1', owner: 'alice' });
          await tx.putShadow(shadowOf('notes', 'n1', null));
          await tx.putOutbox(entry(1));
          await tx.stage([{ collection: 'notes', doc: note('n2') }]);
          await tx.setMeta({ ...(await tx.meta()), checkpoint: 3 });
        });
        await store.transaction((tx) => tx.clearDocs());
        const after = await store.transaction(async (tx) => ({
          docs: [await tx.getDoc('notes', 'n1'), await tx.getDoc('products', 'p1'), await tx.getDoc('carts', 'c1')],
          shadow: await tx.shadow(),
          outbox: await tx.outbox(),
          staged: await tx.staged(),
          checkpoint: (await tx.meta()).checkpoint,
        }));
        expect(after).toEqual({
          docs: [undefined, undefined, undefined],
          shadow: [shadowOf('notes', 'n1', null)],
          outbox: [entry(1)],
          staged: [{ collection: 'notes', doc: note('n2') }],
          checkpoint: 3,
        });
        await store.transaction((tx) => tx.putDoc('notes', note('n1')));
        expect(await store.transaction((tx) => tx.getDoc('notes', 'n1'))).toEqual(note('n1'));
      });
    });

    describe('bulk apply', () => {
      it('applies many writes in one call, in order: the last write of a key wins, null deletes', async () => {
        const existing: Write[] = [
          ...Array.from({ length: 100 }, (_, i) => ({ collection: 'notes', id: `n${i}`, doc: note(`n${i}`, 'old') })),
          { collection: 'products', id: 'p1', doc: { id: 'p1', price: 1 } },
          { collection: 'carts', id: 'c1', doc: { id: 'c1', owner: 'alice' } },
        ];
        await store.transaction(async (tx) => {
          for (const w of existing) if (w.doc) await tx.putDoc(w.collection, w.doc);
        });
        const writes: Write[] = [];
        for (let i = 0; i < 300; i++) writes.push({ collection: 'notes', id: `a${i}`, doc: note(`a${i}`) });
        for (let i = 0; i < 50; i++) writes.push({ collection: 'notes', id: `n${i}`, doc: note(`n${i}`, 'new') });
        for (let i = 50; i < 100; i++) writes.push({ collection: 'notes', id: `n${i}`, doc: null });
        writes.push(
          // a tombstone of a document that is not there
          { collection: 'notes', id: 'ghost', doc: null },
          // written then deleted, deleted then written back, written three times
          { collection: 'notes', id: 'x1', doc: note('x1') },
          { collection: 'products', id: 'p2', doc: { id: 'p2', price: 2 } },
          { collection: 'notes', id: 'x1', doc: null },
          { collection: 'notes', id: 'n60', doc: note('n60', 'back') },
          { collection: 'notes', id: 'x2', doc: note('x2', 'v1') },
          { collection: 'carts', id: 'c1', doc: null },
          { collection: 'notes', id: 'x2', doc: note('x2', 'v2') },
          { collection: 'products', id: 'p1', doc: { id: 'p1', price: 10, category: 'tools' } },
          { collection: 'notes', id: 'x2', doc: note('x2', 'v3') },
          // same id in two collections: two documents
          { collection: 'products', id: 'a0', doc: { id: 'a0', price: 3 } },
          { collection: 'products', id: 'p2', doc: null },
          { collection: 'products', id: 'p2', doc: { id: 'p2', price: 4 } },
        );

        const expected = new Map<string, Doc>();
        for (const w of [...existing, ...writes]) {
          if (w.doc) expected.set(key(w), w.doc);
          else expected.delete(key(w));
        }
        const keys = new Set([...existing, ...writes].map(key));

        await store.transaction((tx) => tx.applyDocs(writes));
        const after = await store.transaction((tx) => docsAt(tx, keys));
        expect(after).toEqual(Object.fromEntries(expected));
        // Spot checks of the model itself, so a wrong model cannot pass unnoticed.
        expect(after).toMatchObject({
          'notes/n0': note('n0', 'new'),
          'notes/n60': note('n60', 'back'),
          'notes/x2': note('x2', 'v3'),
          'products/p2': { id: 'p2', price: 4 },
          'products/a0': { id: 'a0', price: 3 },
          'notes/a0': note('a0'),
        });
        for (const gone of ['notes/n50', 'notes/n99', 'notes/x1', 'notes/ghost', 'carts/c1']) {
          expect(after[gone]).toBeUndefined();
        }
      });

      it("sees the transaction's earlier writes and is seen by its later reads", async () => {
        const inside = await store.transaction(async (tx) => {
          await tx.putDoc('notes', note('n1'));
          await tx.putDoc('notes', note('n2'));
          await tx.applyDocs([
            { collection: 'notes', id: 'n1', doc: null },
            { collection: 'notes', id: 'n2', doc: note('n2', 'bulk') },
            { collection: 'notes', id: 'n3', doc: note('n3') },
          ]);
          await tx.deleteDoc('notes', 'n3');
          return docsAt(tx, ['notes/n1', 'notes/n2', 'notes/n3']);
        });
        expect(inside).toEqual({ 'notes/n2': note('n2', 'bulk') });
        expect(await store.transaction((tx) => docsAt(tx, ['notes/n1', 'notes/n2', 'notes/n3']))).toEqual(inside);
      });

      it('stores copies, and an empty list changes nothing', async () => {
        const doc: Doc = { id: 'n1', text: 'a', tags: ['x'] };
        await store.transaction(async (tx) => {
          await tx.applyDocs([{ collection: 'notes', id: 'n1', doc }]);
          doc['text'] = 'changed after apply';
          await tx.applyDocs([]);
        });
        expect(await store.transaction((tx) => tx.getDoc('notes', 'n1'))).toEqual({ id: 'n1', text: 'a', tags: ['x'] });
      });

      it('touches neither the shadow, the outbox, the staging nor the meta', async () => {
        await store.transaction(async (tx) => {
          await tx.putShadow(shadowOf('notes', 'n1', note('n1', 'confirmed')));
          await tx.putOutbox(entry(1));
          await tx.stage([{ collection: 'notes', doc: note('n2') }]);
          await tx.setMeta({ ...(await tx.meta()), checkpoint: 4 });
        });
        const before = await store.transaction(contents);
        await store.transaction((tx) =>
          tx.applyDocs([
            { collection: 'notes', id: 'n1', doc: null },
            { collection: 'notes', id: 'n2', doc: note('n2', 'applied') },
          ]),
        );
        const after = await store.transaction(contents);
        expect(after).toEqual({ ...before, notes: [undefined, note('n2', 'applied'), undefined] });
      });
    });

    describe('shadow', () => {
      it('puts, answers has, lists and clears entries', async () => {
        const a = shadowOf('notes', 'n1', note('n1'));
        const b = shadowOf('products', 'p1', null);
        await store.transaction(async (tx) => {
          expect(await tx.hasShadow(a.key)).toBe(false);
          await tx.putShadow(a);
          await tx.putShadow(b);
          expect(await tx.hasShadow(a.key)).toBe(true);
        });
        const listed = await store.transaction(async (tx) => ({
          all: await tx.shadow(),
          hasA: await tx.hasShadow('notes/n1'),
          hasB: await tx.hasShadow('products/p1'),
          hasOther: await tx.hasShadow('notes/p1'),
        }));
        expect(byKey(listed.all)).toEqual([a, b]);
        expect(listed).toMatchObject({ hasA: true, hasB: true, hasOther: false });

        await store.transaction((tx) => tx.clearShadow());
        const cleared = await store.transaction(async (tx) => ({
          all: await tx.shadow(),
          hasA: await tx.hasShadow(a.key),
        }));
        expect(cleared).toEqual({ all: [], hasA: false });
      });

      it('shadowEntries returns the entries of the keys asked for, leaving out absent ones', async () => {
        const a = shadowOf('notes', 'n1', note('n1'));
        const b = shadowOf('notes', 'n2', null);
        const c = shadowOf('products', 'p1', { id: 'p1', price: 1 });
        await store.transaction(async (tx) => {
          for (const e of [a, b, c]) await tx.putShadow(e);
        });
        const got = await store.transaction(async (tx) => ({
          some: await tx.shadowEntries(['products/p1', 'notes/missing', 'notes/n1']),
          none: await tx.shadowEntries([]),
          absent: await tx.shadowEntries(['notes/n3', 'carts/c1']),
          all: await tx.shadowEntries([a.key, b.key, c.key]),
        }));
        expect(byKey(got.some)).toEqual([a, c]);
        expect(got.none).toEqual([]);
        expect(got.absent).toEqual([]);
        // A null shadow (the document was absent when confirmed) is an entry, not a missing one.
        expect(byKey(got.all)).toEqual([a, b, c]);
      });

      it('addShadows adds entries for keys without one, keeps existing ones, and the transaction goes on', async () => {
        const old = shadowOf('notes', 'a', { id: 'a', v: 1 });
        await store.transaction((tx) => tx.putShadow(old));
        await store.transaction(async (tx) => {
          await tx.addShadows([shadowOf('notes', 'a', { id: 'a', v: 2 }), shadowOf('notes', 'b', null)]);
          await tx.addShadows([]);
          await tx.putOutbox({ seq: 1, name: 'put', args: {}, reads: [], writes: [] });
        });
        const shadow = await store.transaction((tx) => tx.shadow());
        expect(shadow.sort((x, y) => x.key.localeCompare(y.key))).toEqual([old, shadowOf('notes', 'b', null)]);
        expect((await store.transaction((tx) => tx.outbox())).map((e) => e.seq)).toEqual([1]);
      });

      it('bulkPutShadow puts many entries (the last of a key wins); shadowedKeys answers which keys have one', async () => {
        const a = shadowOf('notes', 'n1', note('n1'));
        const b = shadowOf('notes', 'n2', null);
        const c = shadowOf('products', 'p1', { id: 'p1', price: 1 });
        const a2 = shadowOf('notes', 'n1', note('n1', 'second'));
        await store.transaction(async (tx) => {
          await tx.bulkPutShadow([a, b, c, a2]);
          await tx.bulkPutShadow([]);
          expect((await tx.shadowedKeys(['notes/n1', 'notes/n9'])).sort()).toEqual(['notes/n1']);
        });
        const got = await store.transaction(async (tx) => ({
          all: byKey(await tx.shadow()),
          keys: (await tx.shadowedKeys(['products/p1', 'notes/missing', 'notes/n2', 'notes/n1'])).sort(),
          none: await tx.shadowedKeys([]),
          absent: await tx.shadowedKeys(['carts/c1']),
        }));
        // A null shadow (the document was absent when confirmed) counts as an entry.
        expect(got).toEqual({
          all: [a2, b, c],
          keys: ['notes/n1', 'notes/n2', 'products/p1'],
          none: [],
          absent: [],
        });
        await expect(
          store.transaction(async (tx) => {
            await tx.bulkPutShadow([shadowOf('notes', 'n5', null)]);
            throw new Boom('after bulkPutShadow');
          }),
        ).rejects.toThrow(Boom);
        expect(await store.transaction((tx) => tx.shadowedKeys(['notes/n5']))).toEqual([]);
      });

      it('deleteShadow removes the keys given, ignores absent ones, and keeps the rest', async () => {
        const entries = ['n1', 'n2', 'n3', 'n4'].map((id) => shadowOf('notes', id, note(id)));
        const p1 = shadowOf('products', 'p1', null);
        await store.transaction(async (tx) => {
          for (const e of [...entries, p1]) await tx.putShadow(e);
        });
        await store.transaction(async (tx) => {
          await tx.deleteShadow(['notes/n3', 'notes/missing', 'notes/n1']);
          await tx.deleteShadow([]);
          // Seen at once in the same transaction.
          expect(await tx.hasShadow('notes/n1')).toBe(false);
          expect(byKey(await tx.shadowEntries(['notes/n1', 'notes/n2']))).toEqual([entries[1]]);
        });
        const after = await store.transaction(async (tx) => ({
          all: byKey(await tx.shadow()),
          has: [await tx.hasShadow('notes/n1'), await tx.hasShadow('notes/n2'), await tx.hasShadow('notes/n3')],
        }));
        expect(after).toEqual({ all: [entries[1], entries[3], p1], has: [false, true, false] });
      });

      it('clearShadow and deleteShadow touch no document, outbox entry or staged document', async () => {
        await store.transaction(async (tx) => {
          await tx.putDoc('notes', note('n1', 'visible'));
          await tx.putShadow(shadowOf('notes', 'n1', note('n1', 'confirmed')));
          await tx.putShadow(shadowOf('notes', 'n2', null));
          await tx.putOutbox(entry(1));
          await tx.stage([{ collection: 'notes', doc: note('n3') }]);
        });
        const before = await store.transaction(contents);
        await store.transaction((tx) => tx.deleteShadow(['notes/n1']));
        expect(await store.transaction(contents)).toEqual({ ...before, shadow: [shadowOf('notes', 'n2', null)] });
        await store.transaction((tx) => tx.clearShadow());
        expect(await store.transaction(contents)).toEqual({ ...before, shadow: [] });
      });

      it('keeps one entry per key, the last put', async () => {
        await store.transaction(async (tx) => {
          await tx.putShadow(shadowOf('notes', 'n1', null));
          await tx.putShadow(shadowOf('notes', 'n1', note('n1')));
        });
        expect(await store.transaction((tx) => tx.shadow())).toEqual([shadowOf('notes', 'n1', note('n1'))]);
      });
    });

    describe('outbox', () => {
      it('lists entries in seq order, whatever order they were put in', async () => {
        await store.transaction(async (tx) => {
          for (const seq of [3, 10, 1]) await tx.putOutbox(entry(seq));
        });
        await store.transaction(async (tx) => {
          await tx.putOutbox(entry(2));
          await tx.putOutbox(entry(11));
        });
        const seqs = (await store.transaction((tx) => tx.outbox())).map((e) => e.seq);
        expect(seqs).toEqual([1, 2, 3, 10, 11]);
      });

      it('keeps one entry per seq, the last put', async () => {
        await store.transaction(async (tx) => {
          await tx.putOutbox(entry(1));
          await tx.putOutbox({ ...entry(1), reads: ['notes/n1', 'products/p1'], writes: [] });
        });
        expect(await store.transaction((tx) => tx.outbox())).toEqual([
          { ...entry(1), reads: ['notes/n1', 'products/p1'], writes: [] },
        ]);
      });

      it('deletes the seqs given, and ignores seqs it does not hold', async () => {
        await store.transaction(async (tx) => {
          for (const seq of [1, 2, 3, 4]) await tx.putOutbox(entry(seq));
        });
        await store.transaction((tx) => tx.deleteOutbox([3, 1, 99]));
        expect((await store.transaction((tx) => tx.outbox())).map((e) => e.seq)).toEqual([2, 4]);
        await store.transaction((tx) => tx.deleteOutbox([]));
        expect(await store.transaction((tx) => tx.outbox())).toEqual([entry(2), entry(4)]);
      });

      it('deletes a run of consecutive seqs (the settled ones) and nothing around it', async () => {
        await store.transaction(async (tx) => {
          for (const seq of [1, 2, 3, 4, 5, 7]) await tx.putOutbox(entry(seq));
        });
        await store.transaction((tx) => tx.deleteOutbox([4, 2, 3]));
        expect((await store.transaction((tx) => tx.outbox())).map((e) => e.seq)).toEqual([1, 5, 7]);
        await store.transaction((tx) => tx.deleteOutbox([5, 6]));
        expect((await store.transaction((tx) => tx.outbox())).map((e) => e.seq)).toEqual([1, 7]);
        await store.transaction((tx) => tx.deleteOutbox([1, 1]));
        expect((await store.transaction((tx) => tx.outbox())).map((e) => e.seq)).toEqual([7]);
      });
    });

    describe('outbox reads without a full scan', () => {
      it('counts the entries, and lists the first ones above a seq, in seq order', async () => {
        expect(await store.transaction((tx) => tx.outboxCount())).toBe(0);
        await store.transaction(async (tx) => {
          for (const seq of [7, 2, 5, 3, 9]) await tx.putOutbox(entry(seq));
        });
        const read = await store.transaction(async (tx) => ({
          count: await tx.outboxCount(),
          all: (await tx.outboxAfter(0, 100)).map((e) => e.seq),
          afterThree: (await tx.outboxAfter(3, 2)).map((e) => e.seq),
          afterFour: await tx.outboxAfter(4, 1),
          afterLast: await tx.outboxAfter(9, 10),
        }));
        expect(read).toEqual({
          count: 5,
          all: [2, 3, 5, 7, 9],
          afterThree: [5, 7],
          afterFour: [entry(5)],
          afterLast: [],
        });
      });
    });

    describe('transaction scopes', () => {
      const everything = ['docs', 'shadow', 'outbox', 'meta', 'rejections', 'staging'] as const;

      it('reads everything in a read-only transaction, the meta row of a new store included, and keeps its id', async () => {
        const read = await store.transaction(contents, { mode: 'r', tables: everything });
        expect(read.meta).toMatchObject({ checkpoint: 0, nextSeq: 1 });
        expect(await store.transaction((tx) => tx.meta(), { mode: 'r', tables: ['meta'] })).toEqual(read.meta);
        expect(await store.transaction((tx) => tx.meta())).toEqual(read.meta);
      });

      it('refuses writes in a read-only transaction, and keeps nothing of it', async () => {
        await store.transaction((tx) => tx.putDoc('notes', note('n1', 'before')));
        const before = await store.transaction(contents);
        const writes: Array<(tx: LocalTx) => Promise<unknown>> = [
          (tx) => tx.putDoc('notes', note('n1', 'after')),
          (tx) => tx.putOutbox(entry(1)),
          (tx) => tx.putShadow(shadowOf('notes', 'n1', null)),
          async (tx) => tx.setMeta({ ...(await tx.meta()), nextSeq: 5 }),
          (tx) => tx.stage([{ collection: 'notes', doc: note('s1') }]),
          (tx) => tx.addRejection(rejection(1)),
        ];
        for (const write of writes) {
          await expect(store.transaction(write, { mode: 'r', tables: everything })).rejects.toBeInstanceOf(Error);
        }
        expect(await store.transaction(contents)).toEqual(before);
        expect(await store.rejections()).toEqual([]);
      });

      it('refuses a table outside the scope, and keeps nothing of the transaction', async () => {
        const before = await store.transaction(contents);
        await expect(
          store.transaction(
            async (tx) => {
              await tx.putDoc('notes', note('n1'));
              await tx.putOutbox(entry(1));
              await tx.stage([{ collection: 'notes', doc: note('s1') }]);
            },
            { mode: 'rw', tables: ['docs', 'shadow', 'outbox', 'meta'] },
          ),
        ).rejects.toBeInstanceOf(Error);
        expect(await store.transaction(contents)).toEqual(before);
      });

      it('commits what a scoped read-write transaction wrote, and it is visible to a read-only one', async () => {
        await store.transaction(
          async (tx) => {
            await tx.putDoc('notes', note('n1'));
            await tx.putOutbox(entry(1));
            await tx.setMeta({ ...(await tx.meta()), nextSeq: 2 });
          },
          { mode: 'rw', tables: ['docs', 'shadow', 'outbox', 'meta'] },
        );
        const read = await store.transaction(
          async (tx) => ({
            doc: await tx.getDoc('notes', 'n1'),
            count: await tx.outboxCount(),
            nextSeq: (await tx.meta()).nextSeq,
          }),
          { mode: 'r', tables: ['docs', 'outbox', 'meta'] },
        );
        expect(read).toEqual({ doc: note('n1'), count: 1, nextSeq: 2 });
      });
    });

    describe('rejections', () => {
      it('lists the rejections of committed transactions only', async () => {
        expect(await store.rejections()).toEqual([]);
        await store.transaction(async (tx) => {
          await tx.addRejection(rejection(1));
          await tx.addRejection(rejection(2));
        });
        await expect(
          store.transaction(async (tx) => {
            await tx.addRejection(rejection(3));
            throw new Boom('rolled back');
          }),
        ).rejects.toBeInstanceOf(Boom);
        await store.transaction((tx) => tx.addRejection(rejection(4)));
        expect(await store.rejections()).toEqual([rejection(1), rejection(2), rejection(4)]);
      });
    });

    describe('staging', () => {
      it('keeps the order of the documents across stage() calls and transactions', async () => {
        const docs = Array.from({ length: 9 }, (_, i) => ({
          collection: i % 2 === 0 ? 'notes' : 'products',
          doc: { id: `d${i}`, n: i },
        }));
        await store.transaction(async (tx) => {
          await tx.stage(docs.slice(0, 3));
          await tx.stage(docs.slice(3, 4));
        });
        await store.transaction(async (tx) => {
          await tx.stage([]);
          await tx.stage(docs.slice(4, 8));
        });
        await store.transaction((tx) => tx.stage(docs.slice(8)));
        expect(await store.transaction((tx) => tx.staged())).toEqual(docs);
      });

      it('clearStaging empties only the staging', async () => {
        await store.transaction(async (tx) => {
          await tx.putDoc('notes', note('n1'));
          await tx.putShadow(shadowOf('notes', 'n1', null));
          await tx.putOutbox(entry(1));
          await tx.setMeta({ ...(await tx.meta()), checkpoint: 8 });
          await tx.stage([
            { collection: 'notes', doc: note('n2') },
            { collection: 'products', doc: { id: 'p1', price: 1 } },
          ]);
        });
        const before = await store.transaction(contents);
        await store.transaction((tx) => tx.clearStaging());
        expect(await store.transaction(contents)).toEqual({ ...before, staged: [] });
      });

      it('stages copies, and hands out copies', async () => {
        const doc: Doc = { id: 'n1', tags: ['a'] };
        await store.transaction(async (tx) => {
          await tx.stage([{ collection: 'notes', doc }]);
          doc['tags'] = ['changed after stage'];
          const [staged] = await tx.staged();
          if (staged) staged.doc['tags'] = ['changed after staged'];
        });
        expect(await store.transaction((tx) => tx.staged())).toEqual([
          { collection: 'notes', doc: { id: 'n1', tags: ['a'] } },
        ]);
      });

      it('keeps the same document twice if it is staged twice', async () => {
        const first = { collection: 'notes', doc: note('n1', 'first') };
        const second = { collection: 'notes', doc: note('n1', 'second') };
        await store.transaction(async (tx) => {
          await tx.stage([first]);
          await tx.stage([second]);
        });
        expect(await store.transaction((tx) => tx.staged())).toEqual([first, second]);
      });

      it('clears, and stages in order again after a clear', async () => {
        await store.transaction((tx) => tx.stage([{ collection: 'notes', doc: note('old') }]));
        await store.transaction(async (tx) => {
          await tx.clearStaging();
          expect(await tx.staged()).toEqual([]);
          await tx.stage([{ collection: 'notes', doc: note('b') }]);
          await tx.stage([{ collection: 'notes', doc: note('a') }]);
        });
        expect((await store.transaction((tx) => tx.staged())).map((s) => s.doc.id)).toEqual(['b', 'a']);
      });
    });

    if (durable) {
      describe('durability', () => {
        it('keeps everything committed across a reopen, with the same client id', async () => {
          const before = await store.transaction(async (tx) => {
            await tx.putDoc('notes', note('n1'));
            await tx.putDoc('notes', note('n2'));
            await tx.putDoc('products', { id: 'p1', price: 2, category: 'tools' });
            await tx.deleteDoc('notes', 'n2');
            await tx.putShadow(shadowOf('notes', 'n2', note('n2')));
            await tx.putOutbox(entry(2));
            await tx.putOutbox(entry(1));
            await tx.stage([{ collection: 'notes', doc: note('n3') }]);
            await tx.stage([{ collection: 'products', doc: { id: 'p2', price: 1 } }]);
            await tx.addRejection(rejection(1));
            const meta = await tx.meta();
            await tx.setMeta({ ...meta, checkpoint: 12, nextSeq: 3, lastSyncedAt: 1_700_000_000_000 });
            return contents(tx);
          });
          expect(before.meta).toMatchObject({ checkpoint: 12, nextSeq: 3 });

          await reopen();
          expect(await store.transaction(contents)).toEqual(before);
          expect(await store.rejections()).toEqual([rejection(1)]);
        });

        it('keeps a fresh client id once a transaction that read it committed', async () => {
          const { clientId } = await store.transaction((tx) => tx.meta());
          await reopen();
          expect((await store.transaction((tx) => tx.meta())).clientId).toBe(clientId);
          await reopen();
          expect((await store.transaction((tx) => tx.meta())).clientId).toBe(clientId);
        });

        it('keeps nothing of a failed transaction across a reopen', async () => {
          await store.transaction((tx) => tx.putDoc('notes', note('n1')));
          await expect(
            store.transaction(async (tx) => {
              await tx.putDoc('notes', note('n2'));
              await tx.putOutbox(entry(1));
              throw new Boom('rolled back');
            }),
          ).rejects.toBeInstanceOf(Boom);
          await reopen();
          const after = await store.transaction(async (tx) => ({
            n1: await tx.getDoc('notes', 'n1'),
            n2: await tx.getDoc('notes', 'n2'),
            outbox: await tx.outbox(),
          }));
          expect(after).toEqual({ n1: note('n1'), n2: undefined, outbox: [] });
        });

        it('keeps the staging order across a reopen, and appends after it', async () => {
          await store.transaction((tx) => tx.stage([{ collection: 'notes', doc: note('s1') }]));
          await reopen();
          await store.transaction((tx) => tx.stage([{ collection: 'notes', doc: note('s2') }]));
          expect((await store.transaction((tx) => tx.staged())).map((s) => s.doc.id)).toEqual(['s1', 's2']);
        });
      });
    }
  });
}

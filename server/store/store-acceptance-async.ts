import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TidelineError } from '../../shared/errors';
import type { WireErrorShape } from '../../shared/errors';
import type { JsonObject } from '../../shared/json';
import type { Write } from '../../shared/mutators/types';
import type { Doc } from '../../shared/json';
import { MAX_ERROR_MESSAGE_CHARS } from '../../shared/mutators/run-mutation';
import type { Change } from '../../shared/protocol/change';
import { logEntryBytes, orderValueOf, REJECTION_WINDOW, scopeDocBytes, SERVER_ORIGIN_PREFIX } from './store';
import type { DocFilter, DocQuery, OrderValue, OutcomeEntry } from './store';
import type {
  AsyncSnapshotCursor as SnapshotCursor,
  AsyncStore as Store,
  AsyncStoreTx as StoreTx,
} from './async-store';

export interface StoreHarness {
  store: Store;
  /**
   * Opens the same data again, as a restarted process would. The suite closes
   * the current store first. Leave it out for stores that cannot outlive
   * their object; the durability tests are then not defined.
   */
  reopen?: () => Promise<Store>;
  /** Closes whatever store is still open and removes its files. */
  cleanup: () => Promise<void>;
  /**
   * Creates the store's indexes on these fields ('a+b' compound), as a server
   * does for its schema; a store with none leaves it out. The query tests run
   * with and without them: indexes change plans, never results.
   */
  index?: (collections: Record<string, string[]>) => Promise<void>;
}

/** The indexes of the indexed run of the query tests. */
const QUERY_INDEXES: Record<string, string[]> = { products: ['n', 's', 'v', 'n+s'], carts: ['n'] };

const TS = 1_700_000_000_000;

const put = (collection: string, id: string, fields: JsonObject = {}, owner: string | null = null): Write => ({
  collection,
  id,
  doc: { ...fields, id },
  owner,
});
const del = (collection: string, id: string, owner: string | null = null): Write => ({
  collection,
  id,
  doc: null,
  owner,
});

const outOfStock: WireErrorShape = {
  code: 'REJECTED',
  message: 'products/p1: out of stock (rule stock)',
  retryable: false,
};

const forbidden: WireErrorShape = { code: 'FORBIDDEN', message: 'notes/x belongs to another user', retryable: false };

/**
 * The contract of `Store` (see its doc comment), run by every implementation.
 * `makeStore` returns a fresh, empty store for each test.
 */
export function runAsyncStoreTests(
  name: string,
  makeStore: () => Promise<StoreHarness>,
  /** Whether harnesses have `reopen` and `index`: the durability and indexed tests are then defined, never skipped. */
  features: { durable: boolean; indexable: boolean },
): void {
  const { durable, indexable } = features;

  describe(`Store acceptance: ${name}`, () => {
    let harness: StoreHarness;
    let store: Store;

    beforeEach(async () => {
      harness = await makeStore();
      store = harness.store;
    });
    afterEach(async () => await harness.cleanup());

    const appendAll = async (writes: Write[], origin: { clientId: string; seq: number } | null = null) =>
      await store.transact((tx) => Promise.all(writes.map((w) => tx.append(w, origin, TS))));

    describe('replication', () => {
      it('keeps a term history that promotion extends', async () => {
        expect(await store.terms()).toEqual([{ term: 1, startLsn: 0 }]);
        await appendAll([put('notes', 'a'), put('notes', 'b')]);
        await store.setTerm(2);
        expect(await store.terms()).toEqual([
          { term: 1, startLsn: 0 },
          { term: 2, startLsn: 2 },
        ]);
        expect((await appendAll([put('notes', 'c')]))[0]?.term).toBe(2);
      });

      it('applies replicated changes as they are, raising client seqs', async () => {
        const source = await appendAll([put('notes', 'a', { v: 1 })], { clientId: 'c1', seq: 4 });
        const follower = await makeStore();
        try {
          await follower.store.applyReplicated(source);
          expect((await follower.store.meta()).headLsn).toBe(1);
          expect(await follower.store.readChanges(0, 10)).toEqual(source);
          expect((await follower.store.getDoc('notes', 'a'))?.doc).toEqual({ id: 'a', v: 1 });
          expect(await follower.store.transact(async (tx) => await tx.lastSeq('c1'))).toBe(4);
        } finally {
          await follower.cleanup();
        }
      });

      it('refuses replicated changes that do not continue the log, keeping nothing', async () => {
        const source = await appendAll([put('notes', 'a'), put('notes', 'b'), put('notes', 'c')]);
        const follower = await makeStore();
        try {
          await expect((async () => await follower.store.applyReplicated([source[0]!, source[2]!]))()).rejects.toThrow(
            TidelineError,
          );
          expect((await follower.store.meta()).headLsn).toBe(0);
          expect(await follower.store.getDoc('notes', 'a')).toBeUndefined();
          await follower.store.applyReplicated(source.slice(0, 2));
          await expect((async () => await follower.store.applyReplicated(source.slice(0, 1)))()).rejects.toThrow(
            TidelineError,
          );
          expect((await follower.store.meta()).headLsn).toBe(2);
        } finally {
          await follower.cleanup();
        }
      });

      it('exports a snapshot that another store imports whole', async () => {
        await appendAll([put('notes', 'a'), put('items', 'i', {}, 'u1')], { clientId: 'c1', seq: 1 });
        await appendAll([del('notes', 'a')]);
        await store.setTerm(3);
        await appendAll([put('notes', 'b')], { clientId: 'c2', seq: 7 });
        await store.transact(async (tx) => {
          await tx.recordOutcome('c1', 1, null);
          await tx.recordOutcome('c2', 7, null);
        });
        const snapshot = await store.exportSnapshot();
        expect(snapshot.asOf).toBe(4);
        expect(snapshot.docs.map((d) => `${d.collection}/${d.id}`)).toEqual(['items/i', 'notes/b']);
        const target = await makeStore();
        try {
          await target.store.transact(async (tx) => await tx.append(put('notes', 'stale'), null, TS));
          await target.store.importSnapshot(snapshot);
          expect(await target.store.meta()).toMatchObject({ headLsn: 4, horizon: 4, term: 3 });
          expect(await target.store.terms()).toEqual(await store.terms());
          expect(await target.store.getDoc('notes', 'stale')).toBeUndefined();
          expect(await target.store.scanScope({ userId: 'u1' })).toEqual(await store.scanScope({ userId: 'u1' }));
          expect(await target.store.transact(async (tx) => [await tx.lastSeq('c1'), await tx.lastSeq('c2')])).toEqual([
            1, 7,
          ]);
          expect(await target.store.readChanges(4, 10)).toEqual([]);
          await target.store.applyReplicated(await appendAll([put('notes', 'after')]));
          expect((await target.store.getDoc('notes', 'after'))?.lsn).toBe(5);
        } finally {
          await target.cleanup();
        }
      });

      it('adopts a primary term history', async () => {
        await store.adoptTerms([
          { term: 1, startLsn: 0 },
          { term: 4, startLsn: 10 },
        ]);
        expect((await store.meta()).term).toBe(4);
        expect(await store.terms()).toHaveLength(2);
      });
    });

    describe('a new store', () => {
      it('is empty at term 1 with a server id', async () => {
        const meta = await store.meta();
        expect(meta.serverId).toEqual(expect.any(String));
        expect(meta.serverId.length).toBeGreaterThan(0);
        expect(meta).toMatchObject({ term: 1, headLsn: 0, horizon: 0 });
        expect(await store.readChanges(0, 100)).toEqual([]);
        expect(await store.scanScope({ userId: 'u1' })).toEqual([]);
        expect(await store.logStats()).toEqual({ count: 0, oldestTs: null });
        expect(await store.getDoc('products', 'p1')).toBeUndefined();
      });
    });

    describe('append', () => {
      it('gives consecutive LSNs from 1, within and across transactions', async () => {
        const first = await appendAll([put('products', 'p1'), put('products', 'p2')]);
        const second = await appendAll([put('products', 'p3')]);
        expect([...first, ...second].map((c) => c.lsn)).toEqual([1, 2, 3]);
        expect((await store.meta()).headLsn).toBe(3);
      });

      it('returns the change it stored, with the term, origin and ts', async () => {
        const [change] = await store.transact(async (tx) => [
          await tx.append(put('carts', 'c1', { items: [1, 2] }, 'u1'), { clientId: 'k1', seq: 7 }, TS + 5),
        ]);
        const expected = {
          lsn: 1,
          term: 1,
          collection: 'carts',
          id: 'c1',
          doc: { id: 'c1', items: [1, 2] },
          owner: 'u1',
          clientId: 'k1',
          seq: 7,
          ts: TS + 5,
        };
        expect(change).toEqual(expected);
        expect(await store.readChanges(0, 10)).toEqual([expected]);
      });

      it('records changes without an origin', async () => {
        await appendAll([put('products', 'p1')]);
        expect((await store.readChanges(0, 10))[0]).toMatchObject({ clientId: null, seq: null });
      });

      it('makes the change the current version of the document', async () => {
        await appendAll([put('products', 'p1', { stock: 3 })]);
        await appendAll([put('products', 'p1', { stock: 2 })]);
        expect(await store.getDoc('products', 'p1')).toEqual({
          collection: 'products',
          id: 'p1',
          doc: { id: 'p1', stock: 2 },
          owner: null,
          lsn: 2,
        });
      });

      it('keeps a delete as a tombstone with its LSN and owner', async () => {
        await appendAll([put('carts', 'c1', {}, 'u1')]);
        const [change] = await appendAll([del('carts', 'c1', 'u1')]);
        expect(change).toMatchObject({ lsn: 2, doc: null, owner: 'u1' });
        expect(await store.getDoc('carts', 'c1')).toEqual({
          collection: 'carts',
          id: 'c1',
          doc: null,
          owner: 'u1',
          lsn: 2,
        });
        expect(await store.readChanges(1, 10)).toEqual([change]);
      });

      it('refuses a document whose id differs from the key it is written under', async () => {
        const write: Write = { collection: 'products', id: 'p1', doc: { id: 'p2' }, owner: null };
        await expect((async () => await appendAll([write]))()).rejects.toThrow(TidelineError);
        expect((await store.meta()).headLsn).toBe(0);
      });

      it('keeps stored documents apart from the objects callers hold', async () => {
        const write = put('products', 'p1', { tags: ['a'] });
        await appendAll([write]);
        (write.doc?.['tags'] as string[]).push('mutated after append');
        const read = await store.getDoc('products', 'p1');
        (read?.doc?.['tags'] as string[]).push('mutated after read');
        ((await store.readChanges(0, 1))[0]?.doc?.['tags'] as string[]).push('mutated after readChanges');
        ((await store.scanScope({ userId: 'u1' }))[0]?.doc['tags'] as string[]).push('mutated after scanScope');
        expect((await store.getDoc('products', 'p1'))?.doc).toEqual({ id: 'p1', tags: ['a'] });
        expect((await store.readChanges(0, 1))[0]?.doc).toEqual({ id: 'p1', tags: ['a'] });
      });
    });

    describe('transact', () => {
      it('returns what fn returns', async () => {
        expect(await store.transact(() => Promise.resolve(42))).toBe(42);
      });

      it('lets reads see the transaction’s own writes', async () => {
        await store.transact(async (tx) => {
          expect(await tx.getDoc('products', 'p1')).toBeUndefined();
          await tx.append(put('products', 'p1', { stock: 1 }), { clientId: 'k1', seq: 1 }, TS);
          expect((await tx.getDoc('products', 'p1'))?.doc).toEqual({ id: 'p1', stock: 1 });
          await tx.recordOutcome('k1', 1, null);
          expect(await tx.lastSeq('k1')).toBe(1);
          await tx.recordOutcome('k1', 2, outOfStock);
          expect(await tx.rejection('k1', 2)).toEqual(outOfStock);
        });
      });

      it('keeps nothing when fn throws, propagates the error, and gives the LSNs back', async () => {
        await appendAll([put('products', 'p1', { stock: 1 })], { clientId: 'k1', seq: 1 });
        await store.transact(async (tx) => await tx.recordOutcome('k1', 1, null));
        const before = await store.meta();
        const boom = new Error('boom');
        await expect(
          (async () =>
            await store.transact(async (tx) => {
              await tx.append(put('products', 'p1', { stock: 0 }), { clientId: 'k1', seq: 2 }, TS);
              await tx.append(put('products', 'p2'), { clientId: 'k1', seq: 2 }, TS);
              await tx.append(del('products', 'p1'), { clientId: 'k1', seq: 3 }, TS);
              await tx.recordOutcome('k1', 2, null);
              await tx.recordOutcome('k1', 3, outOfStock);
              throw boom;
            }))(),
        ).rejects.toThrow(boom);
        expect(await store.meta()).toEqual(before);
        expect((await store.getDoc('products', 'p1'))?.doc).toEqual({ id: 'p1', stock: 1 });
        expect(await store.getDoc('products', 'p2')).toBeUndefined();
        expect((await store.readChanges(0, 10)).map((c) => c.lsn)).toEqual([1]);
        expect((await store.logStats()).count).toBe(1);
        await store.transact(async (tx) => {
          expect(await tx.lastSeq('k1')).toBe(1);
          expect(await tx.rejection('k1', 3)).toBeUndefined();
        });
        const [next] = await appendAll([put('products', 'p3')]);
        expect(next?.lsn).toBe(2);
      });

      it('refuses a transaction object used after its transaction ended', async () => {
        let escaped: StoreTx | undefined;
        await store.transact((tx) => {
          escaped = tx;
          return Promise.resolve();
        });
        await expect((async () => await escaped?.append(put('products', 'p1'), null, TS))()).rejects.toThrow(
          TidelineError,
        );
        await expect((async () => await escaped?.getDoc('products', 'p1'))()).rejects.toThrow(TidelineError);
        expect((await store.meta()).headLsn).toBe(0);
      });
    });

    describe('client outcomes', () => {
      it('starts every client at seq 0', async () => {
        expect(await store.transact(async (tx) => await tx.lastSeq('new-client'))).toBe(0);
      });

      it('records the last seq per client, and keeps rejections for duplicate answers', async () => {
        await store.transact(async (tx) => {
          await tx.recordOutcome('k1', 1, null);
          await tx.recordOutcome('k1', 2, outOfStock);
          await tx.recordOutcome('k2', 1, null);
        });
        await store.transact(async (tx) => await tx.recordOutcome('k1', 3, null));
        await store.transact(async (tx) => {
          expect(await tx.lastSeq('k1')).toBe(3);
          expect(await tx.lastSeq('k2')).toBe(1);
          expect(await tx.rejection('k1', 1)).toBeUndefined();
          expect(await tx.rejection('k1', 2)).toEqual(outOfStock);
          expect(await tx.rejection('k1', 3)).toBeUndefined();
          expect(await tx.rejection('k2', 2)).toBeUndefined();
        });
      });

      it('keeps a rejection message short, on every way in: commit, log, replication', async () => {
        const huge: WireErrorShape = {
          code: 'INVALID_ARGS',
          message: `bad id '${'x'.repeat(900_000)}'`,
          retryable: false,
        };
        const entry = await store.transact(async (tx) => await tx.appendOutcome('k1', 1, huge, TS));
        await store.transact(async (tx) => await tx.recordOutcome('k1', 2, huge));
        const short = (e: WireErrorShape | null | undefined): void => {
          expect(e?.code).toBe('INVALID_ARGS');
          expect(e?.message.length).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_CHARS);
          expect(e?.message.startsWith("bad id 'xxx")).toBe(true);
        };
        short(entry.error);
        await store.transact(async (tx) => {
          for (const seq of [1, 2]) short(await tx.rejection('k1', seq));
        });
        const page = await store.readLog(0, 10);
        short(page.outcomes[0]?.error);
        const follower = await makeStore();
        try {
          // A primary of an older version may still send a long one.
          await follower.store.applyReplicated([], [{ ...entry, error: huge }]);
          short((await follower.store.readLog(0, 10)).outcomes[0]?.error);
          await follower.store.transact(async (tx) => short(await tx.rejection('k1', 1)));
        } finally {
          await follower.cleanup();
        }
      });

      it(`keeps rejections of a client's newest ${REJECTION_WINDOW} seqs only`, async () => {
        const last = REJECTION_WINDOW + 5;
        await store.transact(async (tx) => {
          for (let seq = 1; seq <= last; seq++) await tx.recordOutcome('k1', seq, outOfStock);
          await tx.recordOutcome('k2', 1, forbidden);
        });
        await store.transact(async (tx) => {
          expect(await Promise.all([1, 5].map((seq) => tx.rejection('k1', seq)))).toEqual([undefined, undefined]);
          expect(await Promise.all([6, last].map((seq) => tx.rejection('k1', seq)))).toEqual([outOfStock, outOfStock]);
          expect(await tx.rejection('k2', 1)).toEqual(forbidden);
        });
        // Applied writes move the window too, and a rolled-back transaction gives back what it dropped.
        await expect(
          (async () =>
            await store.transact(async (tx) => {
              await tx.recordOutcome('k1', last + 10, null);
              expect(await tx.rejection('k1', 15)).toBeUndefined();
              throw new Error('boom');
            }))(),
        ).rejects.toThrow('boom');
        expect(await store.transact(async (tx) => await tx.rejection('k1', 15))).toEqual(outOfStock);
        await store.transact(async (tx) => await tx.recordOutcome('k1', last + 10, null));
        await store.transact(async (tx) => {
          expect(await tx.rejection('k1', 15)).toBeUndefined();
          expect(await tx.rejection('k1', 16)).toEqual(outOfStock);
        });
      });

      it('forgets the rejections a client settled (below its pendingFrom), and only its own', async () => {
        await store.transact(async (tx) => {
          for (const seq of [1, 2, 3, 5]) await tx.recordOutcome('k1', seq, outOfStock);
          await tx.recordOutcome('k2', 1, forbidden);
        });
        await store.transact(async (tx) => await tx.forgetRejections('k1', 3));
        await store.transact(async (tx) => {
          expect(await Promise.all([1, 2, 3, 5].map((seq) => tx.rejection('k1', seq)))).toEqual([
            undefined,
            undefined,
            outOfStock,
            outOfStock,
          ]);
          expect(await tx.lastSeq('k1')).toBe(5);
          expect(await tx.rejection('k2', 1)).toEqual(forbidden);
        });
        await store.transact(async (tx) => await tx.forgetRejections('k1', 1_000_000));
        expect(await store.transact((tx) => Promise.all([3, 5].map((seq) => tx.rejection('k1', seq))))).toEqual([
          undefined,
          undefined,
        ]);
      });

      it('binds a client id to a user, keeping its last seq, and undoes a binding with its transaction', async () => {
        await store.transact(async (tx) => await tx.recordOutcome('k1', 4, null));
        expect(
          await store.transact(async (tx) => [await tx.clientUser('k1'), await tx.clientUser('new-client')]),
        ).toEqual([null, null]);
        await store.transact(async (tx) => {
          await tx.bindClient('k1', 'alice');
          await tx.bindClient('k2', 'bob');
        });
        await expect(
          (async () =>
            await store.transact(async (tx) => {
              await tx.bindClient('k3', 'carol');
              throw new Error('rolled back');
            }))(),
        ).rejects.toThrow('rolled back');
        await store.transact(async (tx) => await tx.recordOutcome('k2', 1, null));
        await store.transact(async (tx) => {
          expect([await tx.clientUser('k1'), await tx.clientUser('k2'), await tx.clientUser('k3')]).toEqual([
            'alice',
            'bob',
            null,
          ]);
          expect([await tx.lastSeq('k1'), await tx.lastSeq('k2'), await tx.lastSeq('k3')]).toEqual([4, 1, 0]);
        });
        // A snapshot carries every binding, also of a client with nothing settled yet.
        await store.transact(async (tx) => await tx.bindClient('k4', 'dave'));
        expect((await store.exportSnapshot()).clients.map((c) => [c.clientId, c.userId]).sort()).toEqual([
          ['k1', 'alice'],
          ['k2', 'bob'],
          ['k4', 'dave'],
        ]);
      });

      it('keeps rejections past compaction', async () => {
        await appendAll([put('products', 'p1')]);
        await store.transact(async (tx) => await tx.recordOutcome('k1', 1, outOfStock));
        await appendAll([put('products', 'p2')]);
        await store.compact(2);
        expect(await store.transact(async (tx) => await tx.rejection('k1', 1))).toEqual(outOfStock);
      });
    });

    describe('usage (quotas)', () => {
      const size = (w: Write): number => new TextEncoder().encode(JSON.stringify(w.doc)).length;
      const usage = async (collection: string, user: string) =>
        await store.transact(async (tx) => await tx.usage(collection, user));
      const bind = async (clientId: string, user: string) =>
        await store.transact(async (tx) => await tx.bindClient(clientId, user));

      it('counts a new document against its owner, else the user its origin is bound to, else nobody', async () => {
        await bind('ka', 'alice');
        const cart = put('carts', 'alice/cart', { lines: ['é'] }, 'alice');
        const note = put('notes', 'n1', { text: 'héllo ✓' });
        await appendAll([cart, note], { clientId: 'ka', seq: 1 });
        await appendAll([put('notes', 'by-system')], { clientId: `${SERVER_ORIGIN_PREFIX}x`, seq: 1 });
        await appendAll([put('notes', 'seeded')]);
        expect(await usage('carts', 'alice')).toEqual({ docs: 1, bytes: size(cart) });
        expect(await usage('notes', 'alice')).toEqual({ docs: 1, bytes: size(note) });
        expect(await usage('notes', 'bob')).toEqual({ docs: 0, bytes: 0 });
        expect(
          await store.transact(async (tx) => [
            await tx.docAuthor('notes', 'n1'),
            await tx.docAuthor('notes', 'seeded'),
          ]),
        ).toEqual(['alice', null]);
      });

      it("keeps the author through another user's overwrite, and frees the room on delete", async () => {
        await bind('ka', 'alice');
        await bind('kb', 'bob');
        await appendAll([put('notes', 'n1', { text: 'a' })], { clientId: 'ka', seq: 1 });
        const edited = put('notes', 'n1', { text: 'a much longer text, by bob' });
        await appendAll([edited], { clientId: 'kb', seq: 1 });
        expect(await usage('notes', 'alice')).toEqual({ docs: 1, bytes: size(edited) });
        expect(await usage('notes', 'bob')).toEqual({ docs: 0, bytes: 0 });
        await appendAll([del('notes', 'n1')], { clientId: 'kb', seq: 2 });
        expect(await usage('notes', 'alice')).toEqual({ docs: 0, bytes: 0 });
        expect(await store.transact(async (tx) => await tx.docAuthor('notes', 'n1'))).toBeNull();
        // Created again over the tombstone: a new document, its writer's.
        const again = put('notes', 'n1');
        await appendAll([again], { clientId: 'kb', seq: 3 });
        expect(await usage('notes', 'bob')).toEqual({ docs: 1, bytes: size(again) });
      });

      it('rolls usage back with its transaction', async () => {
        await bind('ka', 'alice');
        await appendAll([put('notes', 'n1')], { clientId: 'ka', seq: 1 });
        await expect(
          (async () =>
            await store.transact(async (tx) => {
              await tx.append(put('notes', 'n2'), { clientId: 'ka', seq: 2 }, TS);
              await tx.append(del('notes', 'n1'), { clientId: 'ka', seq: 2 }, TS);
              throw new Error('abort');
            }))(),
        ).rejects.toThrow('abort');
        expect(await usage('notes', 'alice')).toEqual({ docs: 1, bytes: size(put('notes', 'n1')) });
      });

      it('keeps the same usage on a replica that knows the bindings, and rebuilds it from a snapshot', async () => {
        await bind('ka', 'alice');
        await appendAll([put('notes', 'n1'), put('items', 'bob/i', { x: 1 }, 'bob')], { clientId: 'ka', seq: 1 });
        await appendAll([put('notes', 'n2', { t: 'x' })], { clientId: 'ka', seq: 2 });
        await appendAll([del('notes', 'n1')], { clientId: 'ka', seq: 3 });
        const expected = { notes: await usage('notes', 'alice'), items: await usage('items', 'bob') };
        expect(expected.notes.docs).toBe(1);
        const replica = await makeStore();
        const snapshotTarget = await makeStore();
        try {
          await replica.store.transact(async (tx) => await tx.bindClient('ka', 'alice'));
          await replica.store.applyReplicated(await store.readChanges(0, 100));
          const onReplica = async (s: Store, c: string, u: string) =>
            await s.transact(async (tx) => await tx.usage(c, u));
          expect(await onReplica(replica.store, 'notes', 'alice')).toEqual(expected.notes);
          expect(await onReplica(replica.store, 'items', 'bob')).toEqual(expected.items);
          // The snapshot carries authors; the importing store knows no bindings and counts the same.
          await snapshotTarget.store.transact(async (tx) => await tx.append(put('notes', 'stale'), null, TS));
          await snapshotTarget.store.importSnapshot(await store.exportSnapshot());
          expect(await onReplica(snapshotTarget.store, 'notes', 'alice')).toEqual(expected.notes);
          expect(await onReplica(snapshotTarget.store, 'items', 'bob')).toEqual(expected.items);
          // A snapshot from a node that kept no authors: owner-only documents count against their owners.
          const bare = await store.exportSnapshot();
          await snapshotTarget.store.importSnapshot({ ...bare, docs: bare.docs.map(({ author: _a, ...d }) => d) });
          expect(await onReplica(snapshotTarget.store, 'items', 'bob')).toEqual(expected.items);
          expect(await onReplica(snapshotTarget.store, 'notes', 'alice')).toEqual({ docs: 0, bytes: 0 });
        } finally {
          await replica.cleanup();
          await snapshotTarget.cleanup();
        }
      });
    });

    describe('readChanges', () => {
      beforeEach(async () => {
        for (let i = 1; i <= 10; i++) await appendAll([put('products', `p${i}`, { n: i })]);
      });

      it('pages through the log in LSN order', async () => {
        const seen: number[] = [];
        let after = 0;
        for (;;) {
          const page = await store.readChanges(after, 3);
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(3);
          seen.push(...page.map((c) => c.lsn));
          after = page[page.length - 1]?.lsn ?? after;
        }
        expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      });

      it('returns the changes after `after` only, with their documents', async () => {
        const page = await store.readChanges(7, 100);
        expect(page.map((c) => c.lsn)).toEqual([8, 9, 10]);
        expect(page[0]?.doc).toEqual({ id: 'p8', n: 8 });
      });

      it('returns nothing at or past the head, or for a limit of 0', async () => {
        expect(await store.readChanges(10, 5)).toEqual([]);
        expect(await store.readChanges(11, 5)).toEqual([]);
        expect(await store.readChanges(0, 0)).toEqual([]);
      });
    });

    describe('outcomes in the log', () => {
      const noteBy = async (id: string, clientId: string, seq: number) =>
        await store.transact(async (tx) => {
          const c = await tx.append(put('notes', id), { clientId, seq }, TS);
          await tx.recordOutcome(clientId, seq, null);
          return c;
        });

      it('gives a mutation that wrote nothing the next LSN, and settles its seq', async () => {
        await noteBy('a', 'k1', 1);
        const rejected = await store.transact(async (tx) => await tx.appendOutcome('k1', 2, outOfStock, TS));
        const noop = await store.transact(async (tx) => await tx.appendOutcome('k1', 3, null, TS + 1));
        expect(rejected).toEqual({ lsn: 2, term: 1, clientId: 'k1', seq: 2, error: outOfStock, ts: TS });
        expect(noop).toEqual({ lsn: 3, term: 1, clientId: 'k1', seq: 3, error: null, ts: TS + 1 });
        expect((await store.meta()).headLsn).toBe(3);
        expect(await store.logStats()).toEqual({ count: 3, oldestTs: TS });
        await store.transact(async (tx) => {
          expect(await tx.lastSeq('k1')).toBe(3);
          expect(await tx.rejection('k1', 2)).toEqual(outOfStock);
          expect(await tx.rejection('k1', 3)).toBeUndefined();
        });
        // Document changes alone skip the outcome LSNs.
        expect((await store.readChanges(0, 10)).map((c) => c.lsn)).toEqual([1]);
      });

      it('gives the LSN back when the transaction throws', async () => {
        await expect(
          (async () =>
            await store.transact(async (tx) => {
              await tx.appendOutcome('k1', 1, outOfStock, TS);
              throw new Error('boom');
            }))(),
        ).rejects.toThrow('boom');
        expect((await store.meta()).headLsn).toBe(0);
        expect(await store.readLog(0, 10)).toEqual({ changes: [], outcomes: [], to: 0 });
        expect(await store.transact(async (tx) => [await tx.lastSeq('k1'), await tx.rejection('k1', 1)])).toEqual([
          0,
          undefined,
        ]);
      });

      it('reads both kinds in one LSN range, paging without holes', async () => {
        await noteBy('a', 'k1', 1);
        await store.transact(async (tx) => await tx.appendOutcome('k2', 1, outOfStock, TS));
        await noteBy('b', 'k2', 2);
        await store.transact(async (tx) => await tx.appendOutcome('k1', 2, null, TS));
        await noteBy('c', 'k1', 3);
        const first = await store.readLog(0, 2);
        expect(first.to).toBe(2);
        expect(first.changes.map((c) => c.lsn)).toEqual([1]);
        expect(first.outcomes).toEqual([{ lsn: 2, term: 1, clientId: 'k2', seq: 1, error: outOfStock, ts: TS }]);
        const rest = await store.readLog(2, 100);
        expect(rest.to).toBe(5);
        expect(rest.changes.map((c) => c.lsn)).toEqual([3, 5]);
        expect(rest.outcomes.map((o) => o.lsn)).toEqual([4]);
        expect(await store.readLog(5, 100)).toEqual({ changes: [], outcomes: [], to: 5 });
      });

      it('never ends a page inside a mutation', async () => {
        await appendAll([put('notes', 'x')]);
        await appendAll([put('notes', 'a'), put('notes', 'b'), put('notes', 'c')], { clientId: 'k1', seq: 1 });
        await appendAll([put('notes', 'd')], { clientId: 'k1', seq: 2 });
        const page = await store.readLog(0, 2);
        expect(page.to).toBe(4);
        expect(page.changes.map((c) => c.id)).toEqual(['x', 'a', 'b', 'c']);
        expect((await store.readLog(4, 1)).changes.map((c) => c.id)).toEqual(['d']);
        // Changes without an origin (seed, admin) are not one mutation: the limit holds.
        await appendAll([put('notes', 'e'), put('notes', 'f')]);
        expect((await store.readLog(5, 1)).to).toBe(6);
        // A mutation of many writes comes whole, however small the page.
        const big = await appendAll(
          Array.from({ length: 150 }, (_, i) => put('notes', `big${i}`)),
          { clientId: 'k2', seq: 1 },
        );
        await appendAll([put('notes', 'g')], { clientId: 'k2', seq: 2 });
        const whole = await store.readLog(7, 1);
        expect(whole.changes).toEqual(big);
        expect(whole.to).toBe(157);
        expect(whole.outcomes).toEqual([]);
      });

      it('compacts outcome entries with the changes', async () => {
        await noteBy('a', 'k1', 1);
        await store.transact(async (tx) => await tx.appendOutcome('k1', 2, outOfStock, TS));
        await noteBy('b', 'k1', 3);
        expect(await store.compact(2)).toEqual({ removedChanges: 2, removedTombstones: 0, horizon: 2 });
        expect((await store.readLog(2, 10)).changes.map((c) => c.lsn)).toEqual([3]);
        expect((await store.logStats()).count).toBe(1);
        expect(await store.transact(async (tx) => await tx.rejection('k1', 2))).toEqual(outOfStock);
      });

      it('replicates outcomes: a follower answers for every seq as its primary does', async () => {
        await noteBy('a', 'k1', 1);
        const r = await store.transact(async (tx) => await tx.appendOutcome('k1', 2, outOfStock, TS));
        const n = await store.transact(async (tx) => await tx.appendOutcome('k2', 5, null, TS));
        const page = await store.readLog(0, 100);
        const follower = await makeStore();
        try {
          await follower.store.applyReplicated(page.changes, page.outcomes);
          expect((await follower.store.meta()).headLsn).toBe(3);
          expect(await follower.store.readLog(0, 100)).toEqual(page);
          await follower.store.transact(async (tx) => {
            expect(await tx.lastSeq('k1')).toBe(2);
            expect(await tx.rejection('k1', 2)).toEqual(outOfStock);
            expect(await tx.lastSeq('k2')).toBe(5);
          });
          expect(r.lsn).toBe(2);
          expect(n.lsn).toBe(3);
        } finally {
          await follower.cleanup();
        }
      });

      it('refuses replicated entries that leave a hole, whatever their kind, keeping nothing', async () => {
        await noteBy('a', 'k1', 1);
        await store.transact(async (tx) => await tx.appendOutcome('k1', 2, outOfStock, TS));
        await noteBy('b', 'k1', 3);
        const page = await store.readLog(0, 100);
        const follower = await makeStore();
        try {
          await expect((async () => await follower.store.applyReplicated(page.changes, []))()).rejects.toThrow(
            TidelineError,
          );
          expect((await follower.store.meta()).headLsn).toBe(0);
          expect(await follower.store.transact(async (tx) => await tx.lastSeq('k1'))).toBe(0);
        } finally {
          await follower.cleanup();
        }
      });

      it('carries recent rejections in a snapshot', async () => {
        await noteBy('a', 'k1', 1);
        await store.transact(async (tx) => await tx.appendOutcome('k1', 2, outOfStock, TS));
        await store.transact(async (tx) => await tx.appendOutcome('k2', 1, forbidden, TS));
        const snapshot = await store.exportSnapshot();
        expect(snapshot.rejections).toEqual([
          { clientId: 'k1', seq: 2, error: outOfStock },
          { clientId: 'k2', seq: 1, error: forbidden },
        ]);
        const target = await makeStore();
        try {
          await target.store.importSnapshot(snapshot);
          await target.store.transact(async (tx) => {
            expect(await tx.lastSeq('k1')).toBe(2);
            expect(await tx.rejection('k1', 2)).toEqual(outOfStock);
            expect(await tx.rejection('k2', 1)).toEqual(forbidden);
          });
        } finally {
          await target.cleanup();
        }
      });

      it('leaves rejections older than the window out of a snapshot', async () => {
        await store.transact(async (tx) => await tx.appendOutcome('k1', 1, outOfStock, TS));
        await store.transact(async (tx) => await tx.appendOutcome('k1', REJECTION_WINDOW + 1, outOfStock, TS));
        expect((await store.exportSnapshot()).rejections.map((r) => r.seq)).toEqual([REJECTION_WINDOW + 1]);
      });
    });

    for (const indexed of indexable ? [false, true] : [false]) {
      describe(indexed ? 'query (indexed)' : 'query', () => {
        beforeEach(async () => {
          if (indexed) await harness.index?.(QUERY_INDEXES);
        });

        /** Every page of `q`, `size` at a time, resuming after the last document of each. */
        const allPages = async (
          q: Omit<DocQuery, 'limit'>,
          size: number,
          between?: (page: number) => Promise<void>,
        ): Promise<Doc[]> => {
          const out: Doc[] = [];
          let after: { value: OrderValue; id: string } | undefined;
          for (let page = 0; page < 10_000; page++) {
            const docs = await store.query({ ...q, limit: size, ...(after ? { after } : {}) });
            out.push(...docs);
            const last = docs[docs.length - 1];
            if (docs.length < size || last === undefined) return out;
            after = { value: orderValueOf(last, q.orderBy?.field ?? 'id'), id: last.id };
            await between?.(page);
          }
          throw new Error('paging did not end');
        };
        const ids = (docs: Doc[]): string[] => docs.map((d) => d.id);
        const idOf = (i: number): string => `d${String(i).padStart(4, '0')}`;

        describe('on 2,500 documents', () => {
          // Values repeat (ties are ordered by id), and every 50th document has none (null sorts first ascending).
          const nOf = (i: number): number | undefined => (i % 50 === 0 ? undefined : i % 37);
          beforeEach(async () => {
            await store.transact(async (tx) => {
              for (let i = 0; i < 2500; i++) {
                const n = nOf(i);
                await tx.append(put('products', idOf(i), n === undefined ? {} : { n }), null, TS);
              }
              await tx.append(put('notes', 'other-collection', { n: 1 }), null, TS);
            });
          });
          const expected = (direction: 'asc' | 'desc'): string[] => {
            const all = Array.from({ length: 2500 }, (_, i) => ({ id: idOf(i), n: nOf(i) ?? null }));
            const rank = (n: number | null): number => (n === null ? -1 : n);
            const sign = direction === 'asc' ? 1 : -1;
            return all
              .sort((a, b) => sign * (rank(a.n) - rank(b.n)) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
              .map((d) => d.id);
          };

          it('pages by id past 1,000 documents, each exactly once, in order', async () => {
            const got = ids(await allPages({ collection: 'products', filters: [] }, 1000));
            expect(got).toEqual(Array.from({ length: 2500 }, (_, i) => idOf(i)));
          });

          it('pages by id descending', async () => {
            const got = ids(
              await allPages({ collection: 'products', filters: [], orderBy: { field: 'id', direction: 'desc' } }, 333),
            );
            expect(got).toEqual(Array.from({ length: 2500 }, (_, i) => idOf(2499 - i)));
          });

          it('pages on a field with ties and missing values, both directions', async () => {
            for (const direction of ['asc', 'desc'] as const) {
              const got = ids(
                await allPages({ collection: 'products', filters: [], orderBy: { field: 'n', direction } }, 97),
              );
              expect(got).toEqual(expected(direction));
            }
          });

          it('pages with filters', async () => {
            const q = {
              collection: 'products',
              filters: [{ field: 'n', op: 'gte' as const, value: 30 }],
              orderBy: { field: 'n', direction: 'desc' as const },
            };
            const got = ids(await allPages(q, 50));
            expect(got).toEqual(expected('desc').filter((id) => (nOf(Number(id.slice(1))) ?? -1) >= 30));
            expect(await store.count(q)).toBe(got.length);
          });

          it('returns every document that stays unchanged exactly once while others are written between pages', async () => {
            const q = { collection: 'products', filters: [], orderBy: { field: 'n', direction: 'asc' as const } };
            const touched = new Set<string>();
            const got = ids(
              await allPages(q, 200, async (page) => {
                // New documents on both sides of the position, one moved and one deleted.
                const moved = idOf(page * 7 + 1);
                const gone = idOf(page * 7 + 3);
                touched.add(moved).add(gone);
                await store.transact(async (tx) => {
                  await tx.append(put('products', `new-${page}-a`, { n: 0 }), null, TS);
                  await tx.append(put('products', `new-${page}-b`, { n: 36 }), null, TS);
                  await tx.append(put('products', moved, { n: 1000 + page }), null, TS);
                  await tx.append(del('products', gone), null, TS);
                });
              }),
            );
            // The guarantee: every document present and unchanged throughout comes exactly once, in order.
            const stable = expected('asc').filter((id) => !touched.has(id));
            expect(got.filter((id) => !touched.has(id) && !id.startsWith('new-'))).toEqual(stable);
            // Documents written ahead of the position are seen (once); a moved one may come twice.
            const ahead = got.filter((id) => /^new-\d+-b$/.test(id));
            expect(new Set(ahead).size).toBe(ahead.length);
            expect(ahead.length).toBe(touched.size / 2);
          });

          it('counts the documents a query matches, without a limit', async () => {
            expect(await store.count({ collection: 'products', filters: [] })).toBe(2500);
            expect(await store.count({ collection: 'products', filters: [{ field: 'n', op: 'eq', value: 5 }] })).toBe(
              Array.from({ length: 2500 }, (_, i) => nOf(i)).filter((n) => n === 5).length,
            );
            expect(await store.count({ collection: 'nothing-here', filters: [] })).toBe(0);
          });
        });

        it('filters on id through its own column: eq, gt and prefix', async () => {
          await appendAll([put('products', 'a1'), put('products', 'a2'), put('products', 'b1'), put('notes', 'a1')]);
          const by = async (op: 'eq' | 'gt' | 'prefix', value: string): Promise<string[]> =>
            ids(await store.query({ collection: 'products', filters: [{ field: 'id', op, value }], limit: 10 }));
          expect(await by('eq', 'a2')).toEqual(['a2']);
          expect(await by('gt', 'a1')).toEqual(['a2', 'b1']);
          expect(await by('prefix', 'a')).toEqual(['a1', 'a2']);
          expect(await by('eq', 'zz')).toEqual([]);
        });

        it('leaves tombstones and other owners out of query, count and getMany', async () => {
          await appendAll([put('carts', 'c1', {}, 'u1'), put('carts', 'c2', {}, 'u2'), put('carts', 'c3', {}, 'u1')]);
          await appendAll([del('carts', 'c3', 'u1')]);
          expect(ids(await store.query({ collection: 'carts', filters: [], limit: 10, owner: 'u1' }))).toEqual(['c1']);
          expect(await store.count({ collection: 'carts', filters: [], owner: 'u1' })).toBe(1);
          expect(await store.count({ collection: 'carts', filters: [] })).toBe(2);
          expect(ids(await store.getMany('carts', ['c1', 'c2', 'c3'], 'u1'))).toEqual(['c1']);
          expect(ids(await store.getMany('carts', ['c3', 'c2', 'c1']))).toEqual(['c2', 'c1']);
        });

        it('gets many by id in the order asked, each once, leaving out missing ones and other collections', async () => {
          await appendAll([put('products', 'p1', { n: 1 }), put('products', 'p2', { n: 2 }), put('notes', 'p3')]);
          const docs = await store.getMany('products', ['p2', 'nope', 'p1', 'p2', 'p3']);
          expect(docs).toEqual([
            { id: 'p2', n: 2 },
            { id: 'p1', n: 1 },
          ]);
          expect(await store.getMany('products', [])).toEqual([]);
        });

        it('compares within one kind of value in ranges: numbers with numbers, text with text', async () => {
          await appendAll([
            put('products', 'a', { v: 5 }),
            put('products', 'b', { v: '5' }),
            put('products', 'c', { v: 'abc' }),
            put('products', 'd', { v: 20 }),
            put('products', 'e', { v: null }),
            put('products', 'f'),
          ]);
          const by = async (op: DocFilter['op'], value: string | number): Promise<string[]> =>
            ids(await store.query({ collection: 'products', filters: [{ field: 'v', op, value }], limit: 10 }));
          expect(await by('gt', 4)).toEqual(['a', 'd']);
          expect(await by('gte', 0)).toEqual(['a', 'd']);
          expect(await by('lt', 100)).toEqual(['a', 'd']);
          expect(await by('lt', 'b')).toEqual(['b', 'c']);
          expect(await by('lte', 'abc')).toEqual(['b', 'c']);
          expect(await by('gt', '4')).toEqual(['b', 'c']);
          expect(await by('eq', 5)).toEqual(['a']);
          expect(await by('eq', '5')).toEqual(['b']);
          // A document without the field (or with null) matches no filter on it, not even `ne`.
          expect(await by('ne', 5)).toEqual(['b', 'c', 'd']);
          expect(await store.count({ collection: 'products', filters: [{ field: 'v', op: 'gt', value: 4 }] })).toBe(2);
        });

        it('prefix matches every string that starts with it, whatever follows, and nothing else', async () => {
          const values: Array<[string, string | number]> = [
            ['a1', 'ab'],
            ['a2', 'abc'],
            ['a3', 'ab\u{1F600}'],
            ['a4', 'ab\uffff'],
            ['a5', 'ab\u{10FFFF}z'],
            ['b1', 'ac'],
            ['b2', 'a'],
            ['b3', 'AB'],
            ['n1', 12],
            ['n2', '12'],
          ];
          await appendAll(values.map(([id, s]) => put('products', id, { s })));
          const by = async (value: string, direction?: 'asc' | 'desc'): Promise<string[]> =>
            ids(
              await store.query({
                collection: 'products',
                filters: [{ field: 's', op: 'prefix', value }],
                limit: 20,
                ...(direction ? { orderBy: { field: 's', direction } } : {}),
              }),
            );
          expect(await by('ab')).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
          expect(await by('ab', 'asc')).toEqual(['a1', 'a2', 'a4', 'a3', 'a5']);
          expect(await by('ab', 'desc')).toEqual(['a5', 'a3', 'a4', 'a2', 'a1']);
          expect(await by('ab\uffff')).toEqual(['a4']);
          expect(await by('ab\u{10FFFF}')).toEqual(['a5']);
          expect(await by('1')).toEqual(['n2']);
          expect(await by('')).toEqual(['a1', 'a2', 'a3', 'a4', 'a5', 'b1', 'b2', 'b3', 'n2']);
        });

        it('orders by a field it filters equal in id order, in both directions and across pages', async () => {
          await appendAll(Array.from({ length: 30 }, (_, i) => put('products', idOf(i), { n: i % 3, s: `s${i % 4}` })));
          const want = Array.from({ length: 30 }, (_, i) => i)
            .filter((i) => i % 3 === 1)
            .map(idOf);
          for (const direction of ['asc', 'desc'] as const) {
            const q = {
              collection: 'products',
              filters: [{ field: 'n', op: 'eq' as const, value: 1 }],
              orderBy: { field: 'n', direction },
            };
            expect(ids(await allPages(q, 3))).toEqual(want);
          }
        });

        it('orders one value of a field by another (a compound index), ties by id, across pages, both directions', async () => {
          await appendAll(
            Array.from({ length: 60 }, (_, i) =>
              put('products', idOf(i), i % 10 === 0 ? { n: i % 2 } : { n: i % 2, s: `s${i % 7}` }),
            ),
          );
          const rows = Array.from({ length: 60 }, (_, i) => ({
            id: idOf(i),
            n: i % 2,
            s: i % 10 === 0 ? null : `s${i % 7}`,
          }));
          for (const direction of ['asc', 'desc'] as const) {
            const sign = direction === 'asc' ? 1 : -1;
            const rank = (s: string | null): string => s ?? '';
            const want = rows
              .filter((r) => r.n === 0 && (r.s === null || r.s < 's5'))
              .sort(
                (a, b) => sign * (rank(a.s) < rank(b.s) ? -1 : rank(a.s) > rank(b.s) ? 1 : 0) || (a.id < b.id ? -1 : 1),
              )
              .map((r) => r.id);
            const q = {
              collection: 'products',
              filters: [{ field: 'n', op: 'eq' as const, value: 0 }],
              orderBy: { field: 's', direction },
            };
            const got = ids(await allPages(q, 4)).filter((id) => {
              const r = rows.find((x) => x.id === id)!;
              return r.s === null || r.s < 's5';
            });
            expect(got).toEqual(want);
            const ranged = {
              ...q,
              filters: [...q.filters, { field: 's', op: 'lt' as const, value: 's5' }],
            };
            expect(ids(await allPages(ranged, 4))).toEqual(
              want.filter((id) => rows.find((x) => x.id === id)!.s !== null),
            );
          }
        });
      });
    }

    describe('server origins (keyed server writes)', () => {
      const origin = `${SERVER_ORIGIN_PREFIX}key-a`;

      it('records the LSN a server write ended at and its commit time, for changes and outcome entries', async () => {
        await appendAll([put('notes', 'n0')]);
        await store.transact(async (tx) => {
          await tx.append(put('notes', 'n1'), { clientId: origin, seq: 1 }, TS);
          await tx.append(put('notes', 'n2'), { clientId: origin, seq: 1 }, TS);
          await tx.recordOutcome(origin, 1, null);
          expect(await tx.serverOrigin(origin)).toEqual({ lsn: 3, ts: TS });
        });
        const other = `${SERVER_ORIGIN_PREFIX}key-b`;
        await store.transact(async (tx) => await tx.appendOutcome(other, 1, outOfStock, TS + 5));
        await store.transact(async (tx) => {
          expect(await tx.serverOrigin(origin)).toEqual({ lsn: 3, ts: TS });
          expect(await tx.serverOrigin(other)).toEqual({ lsn: 4, ts: TS + 5 });
          expect(await tx.rejection(other, 1)).toEqual(outOfStock);
          expect(await tx.serverOrigin('client-1')).toBeUndefined();
        });
      });

      it('keeps no record of a rolled-back server write', async () => {
        await expect(
          (async () =>
            await store.transact(async (tx) => {
              await tx.append(put('notes', 'n1'), { clientId: origin, seq: 1 }, TS);
              throw new Error('abort');
            }))(),
        ).rejects.toThrow('abort');
        expect(await store.transact(async (tx) => await tx.serverOrigin(origin))).toBeUndefined();
      });

      it('records server origins of replicated entries, as the primary did', async () => {
        const primary = store;
        await primary.transact(async (tx) => {
          await tx.append(put('notes', 'n1'), { clientId: origin, seq: 1 }, TS);
          await tx.recordOutcome(origin, 1, null);
          await tx.appendOutcome(`${SERVER_ORIGIN_PREFIX}key-b`, 1, outOfStock, TS + 1);
        });
        const page = await primary.readLog(0, 10);
        const follower = await makeStore();
        try {
          await follower.store.applyReplicated(page.changes, page.outcomes);
          await follower.store.transact(async (tx) => {
            expect(await tx.serverOrigin(origin)).toEqual({ lsn: 1, ts: TS });
            expect(await tx.lastSeq(origin)).toBe(1);
            expect(await tx.serverOrigin(`${SERVER_ORIGIN_PREFIX}key-b`)).toEqual({ lsn: 2, ts: TS + 1 });
            expect(await tx.rejection(`${SERVER_ORIGIN_PREFIX}key-b`, 1)).toEqual(outOfStock);
          });
        } finally {
          await follower.cleanup();
        }
      });

      it('prunes records older than a time, with their clients and rejections rows, a bounded batch at a time', async () => {
        const keyed = (n: number): string => `${SERVER_ORIGIN_PREFIX}k${n}`;
        for (let n = 0; n < 5; n++) {
          await store.transact(async (tx) => await tx.appendOutcome(keyed(n), 1, n === 0 ? outOfStock : null, TS + n));
        }
        await store.transact(async (tx) => await tx.recordOutcome('client-1', 1, null));
        expect(await store.pruneServerOrigins(TS + 3, 2)).toBe(2);
        expect(await store.pruneServerOrigins(TS + 3, 2)).toBe(1);
        expect(await store.pruneServerOrigins(TS + 3, 2)).toBe(0);
        await store.transact(async (tx) => {
          for (let n = 0; n < 3; n++) {
            expect(await tx.serverOrigin(keyed(n))).toBeUndefined();
            expect(await tx.lastSeq(keyed(n))).toBe(0);
          }
          expect(await tx.rejection(keyed(0), 1)).toBeUndefined();
          expect(await tx.serverOrigin(keyed(3))).toEqual({ lsn: 4, ts: TS + 3 });
          expect(await tx.lastSeq(keyed(4))).toBe(1);
          expect(await tx.lastSeq('client-1')).toBe(1);
        });
      });
    });

    describe('scanScope', () => {
      it('returns public documents and the user’s own, without tombstones, ordered by collection then id', async () => {
        await appendAll([
          put('products', 'p2', { name: 'b' }),
          put('products', 'p1', { name: 'a' }),
          put('carts', 'c-u1', { items: [] }, 'u1'),
          put('carts', 'c-u2', { items: [] }, 'u2'),
          put('orders', 'o-u1', {}, 'u1'),
          put('orders', 'o-gone', {}, 'u1'),
          put('products', 'p-gone'),
        ]);
        await appendAll([del('orders', 'o-gone', 'u1'), del('products', 'p-gone')]);
        expect(await store.scanScope({ userId: 'u1' })).toEqual([
          { collection: 'carts', doc: { id: 'c-u1', items: [] } },
          { collection: 'orders', doc: { id: 'o-u1' } },
          { collection: 'products', doc: { id: 'p1', name: 'a' } },
          { collection: 'products', doc: { id: 'p2', name: 'b' } },
        ]);
        expect((await store.scanScope({ userId: 'u3' })).map((r) => r.doc.id)).toEqual(['p1', 'p2']);
        expect((await store.scanScope({ userId: 'u3', allOf: ['orders'] })).map((r) => r.doc.id)).toEqual([
          'o-u1',
          'p1',
          'p2',
        ]);
      });

      it('orders the collection before the id, and strings by code point', async () => {
        const astral = 'x\u{1F600}';
        const highBmp = 'x\uFFFF';
        await appendAll([
          put('b', 'a'),
          put('a', 'z'),
          put('ab', 'a'),
          put('a', astral),
          put('a', highBmp),
          put('a', 'x'),
        ]);
        const keys = (await store.scanScope({ userId: 'u1' })).map((r) => `${r.collection}/${r.doc.id}`);
        expect(keys).toEqual(['a/x', `a/${highBmp}`, `a/${astral}`, 'a/z', 'ab/a', 'b/a']);
      });
    });

    describe('readLog byte budget', () => {
      const text = (n: number): string => 'x'.repeat(n);
      const noteOf = async (id: string, clientId: string, seq: number, size: number) =>
        await appendAll([put('notes', id, { text: text(size) })], { clientId, seq });
      const pageBytes = (page: { changes: Change[]; outcomes: OutcomeEntry[] }): number =>
        page.changes.reduce((sum, c) => sum + logEntryBytes({ ...c, body: JSON.stringify(c.doc) }), 0) +
        page.outcomes.reduce((sum, o) => sum + logEntryBytes(o), 0);

      it('ends a page before the entry that would pass the budget, covering the log without holes', async () => {
        for (let i = 1; i <= 10; i++) await noteOf(`n${i}`, 'k1', i, 1000);
        await store.transact(async (tx) => await tx.appendOutcome('k1', 11, outOfStock, TS));
        const one = logEntryBytes({
          ...(await store.readLog(0, 1)).changes[0]!,
          body: JSON.stringify({ id: 'n1', text: text(1000) }),
        });
        const budget = Math.floor(one * 3.5);
        const pages = [];
        for (let after = 0; after < (await store.meta()).headLsn; after = pages[pages.length - 1]!.to) {
          pages.push(await store.readLog(after, 1000, budget));
        }
        expect(pages.map((p) => p.changes.length + p.outcomes.length)).toEqual([3, 3, 3, 2]);
        for (const p of pages) expect(pageBytes(p)).toBeLessThanOrEqual(budget);
        expect(pages.flatMap((p) => [...p.changes.map((c) => c.lsn), ...p.outcomes.map((o) => o.lsn)])).toEqual(
          Array.from({ length: 11 }, (_, i) => i + 1),
        );
        // The count limit still holds under a large budget.
        expect((await store.readLog(0, 2, 10 * budget)).to).toBe(2);
      });

      it('moves a mutation that would pass the budget to the next page, whole, where it may pass it alone', async () => {
        await noteOf('a', 'k1', 1, 1000);
        await noteOf('b', 'k1', 2, 1000);
        const big = await appendAll(
          [
            put('notes', 'c1', { text: text(1000) }),
            put('notes', 'c2', { text: text(1000) }),
            put('notes', 'c3', { text: text(1000) }),
          ],
          { clientId: 'k2', seq: 1 },
        );
        await noteOf('d', 'k1', 3, 1000);
        const one = pageBytes(await store.readLog(0, 1));
        const budget = Math.floor(one * 2.5);
        const first = await store.readLog(0, 100, budget);
        expect(first.changes.map((c) => c.id)).toEqual(['a', 'b']);
        expect(first.to).toBe(2);
        const second = await store.readLog(2, 100, budget);
        expect(second.changes).toEqual(big);
        expect(second.to).toBe(5);
        expect(pageBytes(second)).toBeGreaterThan(budget);
        expect((await store.readLog(5, 100, budget)).changes.map((c) => c.id)).toEqual(['d']);
        // The budget cut inside the mutation (after c1) gives the same pages.
        expect((await store.readLog(0, 100, Math.floor(one * 3.2))).to).toBe(2);
      });

      it('gives one entry larger than the budget a page of its own', async () => {
        await noteOf('huge', 'k1', 1, 5000);
        await noteOf('small', 'k1', 2, 10);
        const page = await store.readLog(0, 100, 1000);
        expect(page.changes.map((c) => c.id)).toEqual(['huge']);
        expect((await store.readLog(1, 100, 1000)).changes.map((c) => c.id)).toEqual(['small']);
      });
    });

    describe('openSnapshot', () => {
      const seed = async (): Promise<void> => {
        await appendAll([
          put('products', 'p1', { name: 'a' }),
          put('products', 'p2', { name: 'b' }),
          put('products', 'p3', { name: 'c' }),
          put('carts', 'c-u1', { items: [] }, 'u1'),
          put('carts', 'c-u2', { items: [] }, 'u2'),
          put('orders', 'o-u1', {}, 'u1'),
          put('orders', 'o-u2', {}, 'u2'),
          put('products', 'p-gone'),
        ]);
        await appendAll([del('products', 'p-gone')]);
      };
      const drain = async (cursor: SnapshotCursor, maxDocs: number, maxBytes = Infinity) => {
        const pages: Array<{ docs: Array<{ collection: string; doc: Doc }>; done: boolean }> = [];
        do pages.push(await cursor.next(maxDocs, maxBytes));
        while (!pages[pages.length - 1]!.done);
        return pages;
      };

      it('pages through what scanScope returns, in order, telling when it is done', async () => {
        await seed();
        for (const scope of [{ userId: 'u1' }, { userId: 'u3' }, { userId: 'u3', allOf: ['orders'] }]) {
          const cursor = await store.openSnapshot(scope, 'k1');
          try {
            const pages = await drain(cursor, 2);
            expect(pages.flatMap((p) => p.docs)).toEqual(await store.scanScope(scope));
            expect(pages.every((p, i) => p.done === (i === pages.length - 1))).toBe(true);
            expect(pages.slice(0, -1).every((p) => p.docs.length === 2)).toBe(true);
            expect(await cursor.next(2, Infinity)).toEqual({ docs: [], done: true });
          } finally {
            await cursor.close();
          }
        }
        // Exactly a page's worth: the page that holds the last document says done.
        const cursor = await store.openSnapshot({ userId: 'u3' }, 'k1');
        try {
          expect(await cursor.next(3, Infinity)).toEqual({ docs: await store.scanScope({ userId: 'u3' }), done: true });
        } finally {
          await cursor.close();
        }
        const empty = await store.openSnapshot({ userId: 'u9' }, 'k1');
        await store.transact(async (tx) => await tx.append(del('products', 'p1'), null, TS));
        await store.transact(async (tx) => await tx.append(del('products', 'p2'), null, TS));
        await store.transact(async (tx) => await tx.append(del('products', 'p3'), null, TS));
        const none = await store.openSnapshot({ userId: 'u9' }, 'k1');
        try {
          expect(await none.next(10, Infinity)).toEqual({ docs: [], done: true });
          expect((await empty.next(10, Infinity)).docs.map((d) => d.doc.id)).toEqual(['p1', 'p2', 'p3']);
        } finally {
          await none.close();
          await empty.close();
        }
      });

      it('bounds a page by bytes, a document larger than the budget coming alone', async () => {
        await appendAll([
          put('notes', 'a', { text: 'x'.repeat(100) }),
          put('notes', 'b', { text: 'x'.repeat(100) }),
          put('notes', 'c', { text: 'x'.repeat(5000) }),
          put('notes', 'd', { text: 'x'.repeat(100) }),
        ]);
        const cursor = await store.openSnapshot({ userId: 'u1' }, 'k1');
        try {
          const budget = 2 * scopeDocBytes('notes', JSON.stringify({ text: 'x'.repeat(100), id: 'a' })) + 10;
          const pages = await drain(cursor, 100, budget);
          expect(pages.map((p) => p.docs.map((d) => d.doc.id))).toEqual([['a', 'b'], ['c'], ['d']]);
        } finally {
          await cursor.close();
        }
      });

      it('reads every page, the head and the client’s outcomes as of when it opened, while commits go on', async () => {
        await seed();
        await store.transact(async (tx) => {
          await tx.append(put('orders', 'o-k1', {}, 'u1'), { clientId: 'k1', seq: 1 }, TS);
          await tx.recordOutcome('k1', 1, null);
        });
        await store.transact(async (tx) => await tx.appendOutcome('k1', 2, outOfStock, TS));
        const head = (await store.meta()).headLsn;
        const before = await store.scanScope({ userId: 'u1' });
        const cursor = await store.openSnapshot({ userId: 'u1' }, 'k1');
        try {
          const first = await cursor.next(2, Infinity);
          expect(first.docs).toEqual(before.slice(0, 2));
          // Between pages: changes to documents on later pages, a new one, a delete, and more of k1's mutations.
          await store.transact(async (tx) => {
            await tx.append(put('products', 'p1', { name: 'changed' }), { clientId: 'k1', seq: 3 }, TS);
            await tx.append(put('orders', 'o-new', {}, 'u1'), { clientId: 'k1', seq: 3 }, TS);
            await tx.recordOutcome('k1', 3, null);
          });
          await store.transact(async (tx) => await tx.append(del('products', 'p2'), null, TS));
          await store.transact(async (tx) => await tx.appendOutcome('k1', 4, forbidden, TS));
          await store.transact(async (tx) => await tx.forgetRejections('k1', 3));
          expect((await store.meta()).headLsn).toBeGreaterThan(head);
          const rest = await drain(cursor, 2);
          expect([...first.docs, ...rest.flatMap((p) => p.docs)]).toEqual(before);
          expect(cursor.asOf).toBe(head);
          expect(cursor.lastSeq).toBe(2);
          expect(await cursor.rejection(2)).toEqual(outOfStock);
          expect(await cursor.rejection(1)).toBeUndefined();
          expect(await cursor.rejection(4)).toBeUndefined();
        } finally {
          await cursor.close();
        }
        // The store itself moved on.
        expect(await store.scanScope({ userId: 'u1' })).not.toEqual(before);
        expect(await store.transact(async (tx) => [await tx.lastSeq('k1'), await tx.rejection('k1', 2)])).toEqual([
          4,
          undefined,
        ]);
      });

      it('is closed for good: reads after close throw, a second close does nothing, and the store goes on', async () => {
        await seed();
        for (let i = 0; i < 20; i++) {
          const cursor = await store.openSnapshot({ userId: 'u1' }, 'k1');
          await cursor.next(1, Infinity);
          await cursor.close();
          await cursor.close();
          await expect((async () => await cursor.next(1, Infinity))()).rejects.toThrow(TidelineError);
          await appendAll([put('notes', `after-${i}`)]);
        }
        expect((await store.scanScope({ userId: 'u1' })).filter((d) => d.collection === 'notes')).toHaveLength(20);
      });
    });

    describe('compact', () => {
      beforeEach(async () => {
        await appendAll([put('products', 'p1'), put('products', 'p2'), put('carts', 'c1', {}, 'u1')]); // 1..3
        await store.transact(async (tx) => await tx.append(put('products', 'p3'), null, TS + 1)); // 4
        await appendAll([del('products', 'p1'), del('carts', 'c1', 'u1')]); // 5, 6
        await appendAll([put('products', 'p4'), del('products', 'p2')]); // 7, 8
      });

      it('drops changes and tombstones up to the LSN and raises the horizon', async () => {
        expect(await store.compact(6)).toEqual({ removedChanges: 6, removedTombstones: 2, horizon: 6 });
        expect(await store.meta()).toMatchObject({ headLsn: 8, horizon: 6 });
        expect(await store.getDoc('products', 'p1')).toBeUndefined();
        expect(await store.getDoc('carts', 'c1')).toBeUndefined();
        expect(await store.getDoc('products', 'p2')).toMatchObject({ doc: null, lsn: 8 });
        expect(await store.getDoc('products', 'p3')).toMatchObject({ doc: { id: 'p3' }, lsn: 4 });
        expect((await store.readChanges(6, 100)).map((c) => c.lsn)).toEqual([7, 8]);
        expect(await store.logStats()).toEqual({ count: 2, oldestTs: TS });
        expect((await store.scanScope({ userId: 'u1' })).map((r) => r.doc.id)).toEqual(['p3', 'p4']);
      });

      it('never lowers the horizon', async () => {
        await store.compact(5);
        expect(await store.compact(3)).toEqual({ removedChanges: 0, removedTombstones: 0, horizon: 5 });
        expect(await store.compact(5)).toEqual({ removedChanges: 0, removedTombstones: 0, horizon: 5 });
        expect((await store.meta()).horizon).toBe(5);
      });

      it('never moves the horizon past the head, and the head survives an empty log', async () => {
        expect(await store.compact(1000)).toEqual({ removedChanges: 8, removedTombstones: 3, horizon: 8 });
        expect(await store.meta()).toMatchObject({ headLsn: 8, horizon: 8 });
        expect(await store.logStats()).toEqual({ count: 0, oldestTs: null });
        expect(await store.readChanges(8, 10)).toEqual([]);
        const [next] = await appendAll([put('products', 'p5')]);
        expect(next?.lsn).toBe(9);
        expect((await store.readChanges(8, 10)).map((c) => c.lsn)).toEqual([9]);
      });

      it('reports the oldest remaining change for automatic compaction', async () => {
        expect(await store.logStats()).toEqual({ count: 8, oldestTs: TS });
        await store.compact(3);
        expect(await store.logStats()).toEqual({ count: 5, oldestTs: TS + 1 });
      });

      // (The synchronous suite also checks that compact rolls back with a transaction it runs in: an
      // AsyncStore runs store calls outside any transaction, so there is nothing of the kind to check.)
    });

    describe('setTerm', () => {
      it('stamps new changes with the new term and leaves old ones alone', async () => {
        await appendAll([put('products', 'p1')]);
        await store.setTerm(3);
        await appendAll([put('products', 'p2')]);
        expect((await store.meta()).term).toBe(3);
        expect((await store.readChanges(0, 10)).map((c) => [c.lsn, c.term])).toEqual([
          [1, 1],
          [2, 3],
        ]);
      });

      it('refuses to lower the term', async () => {
        await store.setTerm(4);
        await expect((async () => await store.setTerm(2))()).rejects.toThrow(TidelineError);
        await store.setTerm(4);
        expect((await store.meta()).term).toBe(4);
      });
    });

    describe('lineage and bindings across replication', () => {
      it('has a cluster id from creation, its own, which it can be given', async () => {
        const other = await makeStore();
        try {
          const id = await store.clusterId();
          expect(id).toMatch(/^[0-9a-f-]{36}$/);
          expect(await other.store.clusterId()).not.toBe(id);
          await other.store.setClusterId(id!);
          expect(await other.store.clusterId()).toBe(id);
        } finally {
          await other.cleanup();
        }
        if (harness.reopen) {
          const id = await store.clusterId();
          await store.close();
          store = await harness.reopen();
          expect(await store.clusterId()).toBe(id);
        }
      });

      it('binds client ids with replicated entries, and a snapshot carries every binding', async () => {
        await store.transact(async (tx) => {
          await tx.bindClient('k1', 'alice');
          await tx.bindClient('k3', 'carol');
          await tx.append(put('notes', 'a'), { clientId: 'k1', seq: 1 }, TS);
          await tx.recordOutcome('k1', 1, null);
          await tx.appendOutcome('k2', 1, null, TS);
        });
        expect(await store.bindingsOf(['k1', 'k2', 'k1', 'nobody'])).toEqual({ k1: 'alice' });
        const page = await store.readLog(0, 100);
        const follower = await makeStore();
        const fromSnapshot = await makeStore();
        try {
          await follower.store.applyReplicated(page.changes, page.outcomes, await store.bindingsOf(['k1', 'k2']));
          await follower.store.transact(async (tx) => {
            expect([await tx.clientUser('k1'), await tx.clientUser('k2'), await tx.clientUser('k3')]).toEqual([
              'alice',
              null,
              null,
            ]);
            expect(await tx.lastSeq('k1')).toBe(1);
          });
          // Bindings alone (a page with no entries of theirs) are applied too, and undone with a refused page.
          await expect(
            (async () => await follower.store.applyReplicated([{ ...page.changes[0]!, lsn: 9 }], [], { k5: 'eve' }))(),
          ).rejects.toThrow(TidelineError);
          expect(await follower.store.transact(async (tx) => await tx.clientUser('k5'))).toBeNull();
          await fromSnapshot.store.importSnapshot(await store.exportSnapshot());
          await fromSnapshot.store.transact(async (tx) => {
            expect([await tx.clientUser('k1'), await tx.clientUser('k2'), await tx.clientUser('k3')]).toEqual([
              'alice',
              null,
              'carol',
            ]);
            expect([await tx.lastSeq('k1'), await tx.lastSeq('k2'), await tx.lastSeq('k3')]).toEqual([1, 1, 0]);
          });
        } finally {
          await follower.cleanup();
          await fromSnapshot.cleanup();
        }
      });

      it("ends with the primary's rejection rows for replicated outcomes at or below the last seq", async () => {
        // The replica counts k1 settled up to 5 (a hello settled a gap while it led), with its own row for seq 2.
        await store.transact(async (tx) => {
          await tx.recordOutcome('k1', 2, forbidden);
          await tx.recordOutcome('k1', 5, null);
        });
        const primary = await makeStore();
        try {
          await primary.store.transact(async (tx) => {
            await tx.appendOutcome('k1', 1, outOfStock, TS);
            await tx.appendOutcome('k1', 2, null, TS);
          });
          const page = await primary.store.readLog(0, 100);
          await store.applyReplicated(page.changes, page.outcomes);
          const rows = async (s: Store): Promise<unknown> =>
            await s.transact(async (tx) => [
              (await tx.rejection('k1', 1)) ?? null,
              (await tx.rejection('k1', 2)) ?? null,
            ]);
          expect(await rows(store)).toEqual(await rows(primary.store));
          expect(await rows(store)).toEqual([outOfStock, null]);
          // Its last seq never goes down: seqs 3..5 stay settled here.
          expect(await store.transact(async (tx) => await tx.lastSeq('k1'))).toBe(5);
        } finally {
          await primary.cleanup();
        }
      });
    });

    if (durable) {
      describe('after close and reopen', () => {
        const reopen = async (): Promise<Store> => {
          await store.close();
          if (!harness.reopen) throw new Error('the harness lost its reopen');
          store = await harness.reopen();
          return store;
        };

        it('keeps documents, changes, outcomes and meta', async () => {
          await store.setTerm(2);
          await store.transact(async (tx) => {
            await tx.append(put('products', 'p1', { stock: 5 }), { clientId: 'k1', seq: 1 }, TS);
            await tx.append(put('carts', 'c1', {}, 'u1'), { clientId: 'k1', seq: 1 }, TS);
            await tx.recordOutcome('k1', 1, null);
            await tx.recordOutcome('k1', 2, outOfStock);
          });
          await appendAll([del('carts', 'c1', 'u1')]);
          const meta = await store.meta();
          const changes = await store.readChanges(0, 100);

          await reopen();
          expect(await store.meta()).toEqual(meta);
          expect(await store.readChanges(0, 100)).toEqual(changes);
          expect(await store.getDoc('products', 'p1')).toMatchObject({ doc: { id: 'p1', stock: 5 }, lsn: 1 });
          expect(await store.getDoc('carts', 'c1')).toMatchObject({ doc: null, owner: 'u1', lsn: 3 });
          await store.transact(async (tx) => {
            expect(await tx.lastSeq('k1')).toBe(2);
            expect(await tx.rejection('k1', 2)).toEqual(outOfStock);
          });
          const [next] = await appendAll([put('products', 'p2')]);
          expect(next).toMatchObject({ lsn: 4, term: 2 });
        });

        it('keeps usage and authors', async () => {
          await appendAll([put('carts', 'u1/c', { n: 1 }, 'u1')]);
          const before = await store.transact(async (tx) => await tx.usage('carts', 'u1'));
          expect(before.docs).toBe(1);
          await reopen();
          expect(
            await store.transact(async (tx) => [await tx.usage('carts', 'u1'), await tx.docAuthor('carts', 'u1/c')]),
          ).toEqual([before, 'u1']);
        });

        it('keeps the head and horizon when compaction emptied the log', async () => {
          await appendAll([put('products', 'p1'), put('products', 'p2')]);
          await store.compact(2);
          await reopen();
          expect(await store.meta()).toMatchObject({ headLsn: 2, horizon: 2 });
          expect((await appendAll([put('products', 'p3')]))[0]?.lsn).toBe(3);
        });

        it('keeps nothing of a rolled-back transaction', async () => {
          await appendAll([put('products', 'p1')]);
          await expect(
            (async () =>
              await store.transact(async (tx) => {
                // Only `tx` inside `fn` (see AsyncStore): a call on the store itself would wait for this transaction.
                await tx.append(put('products', 'p2'), null, TS);
                throw new Error('abort');
              }))(),
          ).rejects.toThrow('abort');
          await reopen();
          expect(await store.meta()).toMatchObject({ headLsn: 1, term: 1 });
          expect(await store.getDoc('products', 'p2')).toBeUndefined();
          expect((await appendAll([put('products', 'p3')]))[0]?.lsn).toBe(2);
        });
      });
    }
  });
}

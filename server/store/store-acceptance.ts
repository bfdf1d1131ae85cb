import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TidelineError } from '../../shared/errors';
import type { WireErrorShape } from '../../shared/errors';
import type { JsonObject } from '../../shared/json';
import type { Write } from '../../shared/mutators/types';
import type { Doc } from '../../shared/json';
import { MAX_ERROR_MESSAGE_CHARS } from '../../shared/mutators/run-mutation';
import type { Change } from '../../shared/protocol/change';
import { logEntryBytes, orderValueOf, REJECTION_WINDOW, scopeDocBytes, SERVER_ORIGIN_PREFIX } from './store';
import type { DocFilter, DocQuery, OrderValue, OutcomeEntry, SnapshotCursor, Store, StoreTx } from './store';

export interface StoreHarness {
  store: Store;
  /**
   * Opens the same data again, as a restarted process would. The suite closes
   * the current store first. Leave it out for stores that cannot outlive
   * their object; the durability tests are then not defined.
   */
  reopen?: () => Store;
  /** Closes whatever store is still open and removes its files. */
  cleanup: () => void;
  /**
   * Creates the store's indexes on these fields ('a+b' compound), as a server
   * does for its schema; a store with none leaves it out. The query tests run
   * with and without them: indexes change plans, never results.
   */
  index?: (collections: Record<string, string[]>) => void;
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
export function runStoreTests(name: string, makeStore: () => StoreHarness): void {
  // Probed once so the durability tests are either defined or absent, never skipped.
  const probe = makeStore();
  const durable = probe.reopen !== undefined;
  const indexable = probe.index !== undefined;
  probe.cleanup();

  describe(`Store acceptance: ${name}`, () => {
    let harness: StoreHarness;
    let store: Store;

    beforeEach(() => {
      harness = makeStore();
      store = harness.store;
    });
    afterEach(() => harness.cleanup());

    const appendAll = (writes: Write[], origin: { clientId: string; seq: number } | null = null) =>
      store.transact((tx) => writes.map((w) => tx.append(w, origin, TS)));

    describe('replication', () => {
      it('keeps a term history that promotion extends', () => {
        expect(store.terms()).toEqual([{ term: 1, startLsn: 0 }]);
        appendAll([put('notes', 'a'), put('notes', 'b')]);
        store.setTerm(2);
        expect(store.terms()).toEqual([
          { term: 1, startLsn: 0 },
          { term: 2, startLsn: 2 },
        ]);
        expect(appendAll([put('notes', 'c')])[0]?.term).toBe(2);
      });

      it('applies replicated changes as they are, raising client seqs', () => {
        const source = appendAll([put('notes', 'a', { v: 1 })], { clientId: 'c1', seq: 4 });
        const follower = makeStore();
        try {
          follower.store.applyReplicated(source);
          expect(follower.store.meta().headLsn).toBe(1);
          expect(follower.store.readChanges(0, 10)).toEqual(source);
          expect(follower.store.getDoc('notes', 'a')?.doc).toEqual({ id: 'a', v: 1 });
          expect(follower.store.transact((tx) => tx.lastSeq('c1'))).toBe(4);
        } finally {
          follower.cleanup();
        }
      });

      it('refuses replicated changes that do not continue the log, keeping nothing', () => {
        const source = appendAll([put('notes', 'a'), put('notes', 'b'), put('notes', 'c')]);
        const follower = makeStore();
        try {
          expect(() => follower.store.applyReplicated([source[0]!, source[2]!])).toThrow(TidelineError);
          expect(follower.store.meta().headLsn).toBe(0);
          expect(follower.store.getDoc('notes', 'a')).toBeUndefined();
          follower.store.applyReplicated(source.slice(0, 2));
          expect(() => follower.store.applyReplicated(source.slice(0, 1))).toThrow(TidelineError);
          expect(follower.store.meta().headLsn).toBe(2);
        } finally {
          follower.cleanup();
        }
      });

      it('exports a snapshot that another store imports whole', () => {
        appendAll([put('notes', 'a'), put('items', 'i', {}, 'u1')], { clientId: 'c1', seq: 1 });
        appendAll([del('notes', 'a')]);
        store.setTerm(3);
        appendAll([put('notes', 'b')], { clientId: 'c2', seq: 7 });
        store.transact((tx) => {
          tx.recordOutcome('c1', 1, null);
          tx.recordOutcome('c2', 7, null);
        });
        const snapshot = store.exportSnapshot();
        expect(snapshot.asOf).toBe(4);
        expect(snapshot.docs.map((d) => `${d.collection}/${d.id}`)).toEqual(['items/i', 'notes/b']);
        const target = makeStore();
        try {
          target.store.transact((tx) => tx.append(put('notes', 'stale'), null, TS));
          target.store.importSnapshot(snapshot);
          expect(target.store.meta()).toMatchObject({ headLsn: 4, horizon: 4, term: 3 });
          expect(target.store.terms()).toEqual(store.terms());
          expect(target.store.getDoc('notes', 'stale')).toBeUndefined();
          expect(target.store.scanScope({ userId: 'u1' })).toEqual(store.scanScope({ userId: 'u1' }));
          expect(target.store.transact((tx) => [tx.lastSeq('c1'), tx.lastSeq('c2')])).toEqual([1, 7]);
          expect(target.store.readChanges(4, 10)).toEqual([]);
          target.store.applyReplicated(appendAll([put('notes', 'after')]));
          expect(target.store.getDoc('notes', 'after')?.lsn).toBe(5);
        } finally {
          target.cleanup();
        }
      });

      it('adopts a primary term history', () => {
        store.adoptTerms([
          { term: 1, startLsn: 0 },
          { term: 4, startLsn: 10 },
        ]);
        expect(store.meta().term).toBe(4);
        expect(store.terms()).toHaveLength(2);
      });
    });

    describe('a new store', () => {
      it('is empty at term 1 with a server id', () => {
        const meta = store.meta();
        expect(meta.serverId).toEqual(expect.any(String));
        expect(meta.serverId.length).toBeGreaterThan(0);
        expect(meta).toMatchObject({ term: 1, headLsn: 0, horizon: 0 });
        expect(store.readChanges(0, 100)).toEqual([]);
        expect(store.scanScope({ userId: 'u1' })).toEqual([]);
        expect(store.logStats()).toEqual({ count: 0, oldestTs: null });
        expect(store.getDoc('products', 'p1')).toBeUndefined();
      });
    });

    describe('append', () => {
      it('gives consecutive LSNs from 1, within and across transactions', () => {
        const first = appendAll([put('products', 'p1'), put('products', 'p2')]);
        const second = appendAll([put('products', 'p3')]);
        expect([...first, ...second].map((c) => c.lsn)).toEqual([1, 2, 3]);
        expect(store.meta().headLsn).toBe(3);
      });

      it('returns the change it stored, with the term, origin and ts', () => {
        const [change] = store.transact((tx) => [
          tx.append(put('carts', 'c1', { items: [1, 2] }, 'u1'), { clientId: 'k1', seq: 7 }, TS + 5),
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
        expect(store.readChanges(0, 10)).toEqual([expected]);
      });

      it('records changes without an origin', () => {
        appendAll([put('products', 'p1')]);
        expect(store.readChanges(0, 10)[0]).toMatchObject({ clientId: null, seq: null });
      });

      it('makes the change the current version of the document', () => {
        appendAll([put('products', 'p1', { stock: 3 })]);
        appendAll([put('products', 'p1', { stock: 2 })]);
        expect(store.getDoc('products', 'p1')).toEqual({
          collection: 'products',
          id: 'p1',
          doc: { id: 'p1', stock: 2 },
          owner: null,
          lsn: 2,
        });
      });

      it('keeps a delete as a tombstone with its LSN and owner', () => {
        appendAll([put('carts', 'c1', {}, 'u1')]);
        const [change] = appendAll([del('carts', 'c1', 'u1')]);
        expect(change).toMatchObject({ lsn: 2, doc: null, owner: 'u1' });
        expect(store.getDoc('carts', 'c1')).toEqual({ collection: 'carts', id: 'c1', doc: null, owner: 'u1', lsn: 2 });
        expect(store.readChanges(1, 10)).toEqual([change]);
      });

      it('refuses a document whose id differs from the key it is written under', () => {
        const write: Write = { collection: 'products', id: 'p1', doc: { id: 'p2' }, owner: null };
        expect(() => appendAll([write])).toThrow(TidelineError);
        expect(store.meta().headLsn).toBe(0);
      });

      it('keeps stored documents apart from the objects callers hold', () => {
        const write = put('products', 'p1', { tags: ['a'] });
        appendAll([write]);
        (write.doc?.['tags'] as string[]).push('mutated after append');
        const read = store.getDoc('products', 'p1');
        (read?.doc?.['tags'] as string[]).push('mutated after read');
        (store.readChanges(0, 1)[0]?.doc?.['tags'] as string[]).push('mutated after readChanges');
        (store.scanScope({ userId: 'u1' })[0]?.doc['tags'] as string[]).push('mutated after scanScope');
        expect(store.getDoc('products', 'p1')?.doc).toEqual({ id: 'p1', tags: ['a'] });
        expect(store.readChanges(0, 1)[0]?.doc).toEqual({ id: 'p1', tags: ['a'] });
      });
    });

    describe('transact', () => {
      it('returns what fn returns', () => {
        expect(store.transact(() => 42)).toBe(42);
      });

      it('lets reads see the transaction’s own writes', () => {
        store.transact((tx) => {
          expect(tx.getDoc('products', 'p1')).toBeUndefined();
          tx.append(put('products', 'p1', { stock: 1 }), { clientId: 'k1', seq: 1 }, TS);
          expect(tx.getDoc('products', 'p1')?.doc).toEqual({ id: 'p1', stock: 1 });
          tx.recordOutcome('k1', 1, null);
          expect(tx.lastSeq('k1')).toBe(1);
          tx.recordOutcome('k1', 2, outOfStock);
          expect(tx.rejection('k1', 2)).toEqual(outOfStock);
        });
      });

      it('keeps nothing when fn throws, propagates the error, and gives the LSNs back', () => {
        appendAll([put('products', 'p1', { stock: 1 })], { clientId: 'k1', seq: 1 });
        store.transact((tx) => tx.recordOutcome('k1', 1, null));
        const before = store.meta();
        const boom = new Error('boom');
        expect(() =>
          store.transact((tx) => {
            tx.append(put('products', 'p1', { stock: 0 }), { clientId: 'k1', seq: 2 }, TS);
            tx.append(put('products', 'p2'), { clientId: 'k1', seq: 2 }, TS);
            tx.append(del('products', 'p1'), { clientId: 'k1', seq: 3 }, TS);
            tx.recordOutcome('k1', 2, null);
            tx.recordOutcome('k1', 3, outOfStock);
            throw boom;
          }),
        ).toThrow(boom);
        expect(store.meta()).toEqual(before);
        expect(store.getDoc('products', 'p1')?.doc).toEqual({ id: 'p1', stock: 1 });
        expect(store.getDoc('products', 'p2')).toBeUndefined();
        expect(store.readChanges(0, 10).map((c) => c.lsn)).toEqual([1]);
        expect(store.logStats().count).toBe(1);
        store.transact((tx) => {
          expect(tx.lastSeq('k1')).toBe(1);
          expect(tx.rejection('k1', 3)).toBeUndefined();
        });
        const [next] = appendAll([put('products', 'p3')]);
        expect(next?.lsn).toBe(2);
      });

      it('refuses an async fn and keeps nothing it wrote', () => {
        expect(() =>
          store.transact(async (tx) => {
            tx.append(put('products', 'p1'), null, TS);
          }),
        ).toThrow();
        expect(store.meta().headLsn).toBe(0);
        expect(store.getDoc('products', 'p1')).toBeUndefined();
      });

      it('refuses a transaction object used after its transaction ended', () => {
        let escaped: StoreTx | undefined;
        store.transact((tx) => {
          escaped = tx;
        });
        expect(() => escaped?.append(put('products', 'p1'), null, TS)).toThrow(TidelineError);
        expect(() => escaped?.getDoc('products', 'p1')).toThrow(TidelineError);
        expect(store.meta().headLsn).toBe(0);
      });
    });

    describe('client outcomes', () => {
      it('starts every client at seq 0', () => {
        expect(store.transact((tx) => tx.lastSeq('new-client'))).toBe(0);
      });

      it('records the last seq per client, and keeps rejections for duplicate answers', () => {
        store.transact((tx) => {
          tx.recordOutcome('k1', 1, null);
          tx.recordOutcome('k1', 2, outOfStock);
          tx.recordOutcome('k2', 1, null);
        });
        store.transact((tx) => tx.recordOutcome('k1', 3, null));
        store.transact((tx) => {
          expect(tx.lastSeq('k1')).toBe(3);
          expect(tx.lastSeq('k2')).toBe(1);
          expect(tx.rejection('k1', 1)).toBeUndefined();
          expect(tx.rejection('k1', 2)).toEqual(outOfStock);
          expect(tx.rejection('k1', 3)).toBeUndefined();
          expect(tx.rejection('k2', 2)).toBeUndefined();
        });
      });

      it('keeps a rejection message short, on every way in: commit, log, replication', () => {
        const huge: WireErrorShape = {
          code: 'INVALID_ARGS',
          message: `bad id '${'x'.repeat(900_000)}'`,
          retryable: false,
        };
        const entry = store.transact((tx) => tx.appendOutcome('k1', 1, huge, TS));
        store.transact((tx) => tx.recordOutcome('k1', 2, huge));
        const short = (e: WireErrorShape | null | undefined): void => {
          expect(e?.code).toBe('INVALID_ARGS');
          expect(e?.message.length).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_CHARS);
          expect(e?.message.startsWith("bad id 'xxx")).toBe(true);
        };
        short(entry.error);
        store.transact((tx) => [1, 2].forEach((seq) => short(tx.rejection('k1', seq))));
        const page = store.readLog(0, 10);
        short(page.outcomes[0]?.error);
        const follower = makeStore();
        try {
          // A primary of an older version may still send a long one.
          follower.store.applyReplicated([], [{ ...entry, error: huge }]);
          short(follower.store.readLog(0, 10).outcomes[0]?.error);
          follower.store.transact((tx) => short(tx.rejection('k1', 1)));
        } finally {
          follower.cleanup();
        }
      });

      it(`keeps rejections of a client's newest ${REJECTION_WINDOW} seqs only`, () => {
        const last = REJECTION_WINDOW + 5;
        store.transact((tx) => {
          for (let seq = 1; seq <= last; seq++) tx.recordOutcome('k1', seq, outOfStock);
          tx.recordOutcome('k2', 1, forbidden);
        });
        store.transact((tx) => {
          expect([1, 5].map((seq) => tx.rejection('k1', seq))).toEqual([undefined, undefined]);
          expect([6, last].map((seq) => tx.rejection('k1', seq))).toEqual([outOfStock, outOfStock]);
          expect(tx.rejection('k2', 1)).toEqual(forbidden);
        });
        // Applied writes move the window too, and a rolled-back transaction gives back what it dropped.
        expect(() =>
          store.transact((tx) => {
            tx.recordOutcome('k1', last + 10, null);
            expect(tx.rejection('k1', 15)).toBeUndefined();
            throw new Error('boom');
          }),
        ).toThrow('boom');
        expect(store.transact((tx) => tx.rejection('k1', 15))).toEqual(outOfStock);
        store.transact((tx) => tx.recordOutcome('k1', last + 10, null));
        store.transact((tx) => {
          expect(tx.rejection('k1', 15)).toBeUndefined();
          expect(tx.rejection('k1', 16)).toEqual(outOfStock);
        });
      });

      it('forgets the rejections a client settled (below its pendingFrom), and only its own', () => {
        store.transact((tx) => {
          for (const seq of [1, 2, 3, 5]) tx.recordOutcome('k1', seq, outOfStock);
          tx.recordOutcome('k2', 1, forbidden);
        });
        store.transact((tx) => tx.forgetRejections('k1', 3));
        store.transact((tx) => {
          expect([1, 2, 3, 5].map((seq) => tx.rejection('k1', seq))).toEqual([
            undefined,
            undefined,
            outOfStock,
            outOfStock,
          ]);
          expect(tx.lastSeq('k1')).toBe(5);
          expect(tx.rejection('k2', 1)).toEqual(forbidden);
        });
        store.transact((tx) => tx.forgetRejections('k1', 1_000_000));
        expect(store.transact((tx) => [3, 5].map((seq) => tx.rejection('k1', seq)))).toEqual([undefined, undefined]);
      });

      it('binds a client id to a user, keeping its last seq, and undoes a binding with its transaction', () => {
        store.transact((tx) => tx.recordOutcome('k1', 4, null));
        expect(store.transact((tx) => [tx.clientUser('k1'), tx.clientUser('new-client')])).toEqual([null, null]);
        store.transact((tx) => {
          tx.bindClient('k1', 'alice');
          tx.bindClient('k2', 'bob');
        });
        expect(() =>
          store.transact((tx) => {
            tx.bindClient('k3', 'carol');
            throw new Error('rolled back');
          }),
        ).toThrow('rolled back');
        store.transact((tx) => tx.recordOutcome('k2', 1, null));
        store.transact((tx) => {
          expect([tx.clientUser('k1'), tx.clientUser('k2'), tx.clientUser('k3')]).toEqual(['alice', 'bob', null]);
          expect([tx.lastSeq('k1'), tx.lastSeq('k2'), tx.lastSeq('k3')]).toEqual([4, 1, 0]);
        });
        // A snapshot carries every binding, also of a client with nothing settled yet.
        store.transact((tx) => tx.bindClient('k4', 'dave'));
        expect(
          store
            .exportSnapshot()
            .clients.map((c) => [c.clientId, c.userId])
            .sort(),
        ).toEqual([
          ['k1', 'alice'],
          ['k2', 'bob'],
          ['k4', 'dave'],
        ]);
      });

      it('keeps rejections past compaction', () => {
        appendAll([put('products', 'p1')]);
        store.transact((tx) => tx.recordOutcome('k1', 1, outOfStock));
        appendAll([put('products', 'p2')]);
        store.compact(2);
        expect(store.transact((tx) => tx.rejection('k1', 1))).toEqual(outOfStock);
      });
    });

    describe('usage (quotas)', () => {
      const size = (w: Write): number => new TextEncoder().encode(JSON.stringify(w.doc)).length;
      const usage = (collection: string, user: string) => store.transact((tx) => tx.usage(collection, user));
      const bind = (clientId: string, user: string) => store.transact((tx) => tx.bindClient(clientId, user));

      it('counts a new document against its owner, else the user its origin is bound to, else nobody', () => {
        bind('ka', 'alice');
        const cart = put('carts', 'alice/cart', { lines: ['é'] }, 'alice');
        const note = put('notes', 'n1', { text: 'héllo ✓' });
        appendAll([cart, note], { clientId: 'ka', seq: 1 });
        appendAll([put('notes', 'by-system')], { clientId: `${SERVER_ORIGIN_PREFIX}x`, seq: 1 });
        appendAll([put('notes', 'seeded')]);
        expect(usage('carts', 'alice')).toEqual({ docs: 1, bytes: size(cart) });
        expect(usage('notes', 'alice')).toEqual({ docs: 1, bytes: size(note) });
        expect(usage('notes', 'bob')).toEqual({ docs: 0, bytes: 0 });
        expect(store.transact((tx) => [tx.docAuthor('notes', 'n1'), tx.docAuthor('notes', 'seeded')])).toEqual([
          'alice',
          null,
        ]);
      });

      it("keeps the author through another user's overwrite, and frees the room on delete", () => {
        bind('ka', 'alice');
        bind('kb', 'bob');
        appendAll([put('notes', 'n1', { text: 'a' })], { clientId: 'ka', seq: 1 });
        const edited = put('notes', 'n1', { text: 'a much longer text, by bob' });
        appendAll([edited], { clientId: 'kb', seq: 1 });
        expect(usage('notes', 'alice')).toEqual({ docs: 1, bytes: size(edited) });
        expect(usage('notes', 'bob')).toEqual({ docs: 0, bytes: 0 });
        appendAll([del('notes', 'n1')], { clientId: 'kb', seq: 2 });
        expect(usage('notes', 'alice')).toEqual({ docs: 0, bytes: 0 });
        expect(store.transact((tx) => tx.docAuthor('notes', 'n1'))).toBeNull();
        // Created again over the tombstone: a new document, its writer's.
        const again = put('notes', 'n1');
        appendAll([again], { clientId: 'kb', seq: 3 });
        expect(usage('notes', 'bob')).toEqual({ docs: 1, bytes: size(again) });
      });

      it('rolls usage back with its transaction', () => {
        bind('ka', 'alice');
        appendAll([put('notes', 'n1')], { clientId: 'ka', seq: 1 });
        expect(() =>
          store.transact((tx) => {
            tx.append(put('notes', 'n2'), { clientId: 'ka', seq: 2 }, TS);
            tx.append(del('notes', 'n1'), { clientId: 'ka', seq: 2 }, TS);
            throw new Error('abort');
          }),
        ).toThrow('abort');
        expect(usage('notes', 'alice')).toEqual({ docs: 1, bytes: size(put('notes', 'n1')) });
      });

      it('keeps the same usage on a replica that knows the bindings, and rebuilds it from a snapshot', () => {
        bind('ka', 'alice');
        appendAll([put('notes', 'n1'), put('items', 'bob/i', { x: 1 }, 'bob')], { clientId: 'ka', seq: 1 });
        appendAll([put('notes', 'n2', { t: 'x' })], { clientId: 'ka', seq: 2 });
        appendAll([del('notes', 'n1')], { clientId: 'ka', seq: 3 });
        const expected = { notes: usage('notes', 'alice'), items: usage('items', 'bob') };
        expect(expected.notes.docs).toBe(1);
        const replica = makeStore();
        const snapshotTarget = makeStore();
        try {
          replica.store.transact((tx) => tx.bindClient('ka', 'alice'));
          replica.store.applyReplicated(store.readChanges(0, 100));
          const onReplica = (s: Store, c: string, u: string) => s.transact((tx) => tx.usage(c, u));
          expect(onReplica(replica.store, 'notes', 'alice')).toEqual(expected.notes);
          expect(onReplica(replica.store, 'items', 'bob')).toEqual(expected.items);
          // The snapshot carries authors; the importing store knows no bindings and counts the same.
          snapshotTarget.store.transact((tx) => tx.append(put('notes', 'stale'), null, TS));
          snapshotTarget.store.importSnapshot(store.exportSnapshot());
          expect(onReplica(snapshotTarget.store, 'notes', 'alice')).toEqual(expected.notes);
          expect(onReplica(snapshotTarget.store, 'items', 'bob')).toEqual(expected.items);
          // A snapshot from a node that kept no authors: owner-only documents count against their owners.
          const bare = store.exportSnapshot();
          snapshotTarget.store.importSnapshot({ ...bare, docs: bare.docs.map(({ author: _a, ...d }) => d) });
          expect(onReplica(snapshotTarget.store, 'items', 'bob')).toEqual(expected.items);
          expect(onReplica(snapshotTarget.store, 'notes', 'alice')).toEqual({ docs: 0, bytes: 0 });
        } finally {
          replica.cleanup();
          snapshotTarget.cleanup();
        }
      });
    });

    describe('readChanges', () => {
      beforeEach(() => {
        for (let i = 1; i <= 10; i++) appendAll([put('products', `p${i}`, { n: i })]);
      });

      it('pages through the log in LSN order', () => {
        const seen: number[] = [];
        let after = 0;
        for (;;) {
          const page = store.readChanges(after, 3);
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(3);
          seen.push(...page.map((c) => c.lsn));
          after = page[page.length - 1]?.lsn ?? after;
        }
        expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      });

      it('returns the changes after `after` only, with their documents', () => {
        const page = store.readChanges(7, 100);
        expect(page.map((c) => c.lsn)).toEqual([8, 9, 10]);
        expect(page[0]?.doc).toEqual({ id: 'p8', n: 8 });
      });

      it('returns nothing at or past the head, or for a limit of 0', () => {
        expect(store.readChanges(10, 5)).toEqual([]);
        expect(store.readChanges(11, 5)).toEqual([]);
        expect(store.readChanges(0, 0)).toEqual([]);
      });
    });

    describe('outcomes in the log', () => {
      const noteBy = (id: string, clientId: string, seq: number) =>
        store.transact((tx) => {
          const c = tx.append(put('notes', id), { clientId, seq }, TS);
          tx.recordOutcome(clientId, seq, null);
          return c;
        });

      it('gives a mutation that wrote nothing the next LSN, and settles its seq', () => {
        noteBy('a', 'k1', 1);
        const rejected = store.transact((tx) => tx.appendOutcome('k1', 2, outOfStock, TS));
        const noop = store.transact((tx) => tx.appendOutcome('k1', 3, null, TS + 1));
        expect(rejected).toEqual({ lsn: 2, term: 1, clientId: 'k1', seq: 2, error: outOfStock, ts: TS });
        expect(noop).toEqual({ lsn: 3, term: 1, clientId: 'k1', seq: 3, error: null, ts: TS + 1 });
        expect(store.meta().headLsn).toBe(3);
        expect(store.logStats()).toEqual({ count: 3, oldestTs: TS });
        store.transact((tx) => {
          expect(tx.lastSeq('k1')).toBe(3);
          expect(tx.rejection('k1', 2)).toEqual(outOfStock);
          expect(tx.rejection('k1', 3)).toBeUndefined();
        });
        // Document changes alone skip the outcome LSNs.
        expect(store.readChanges(0, 10).map((c) => c.lsn)).toEqual([1]);
      });

      it('gives the LSN back when the transaction throws', () => {
        expect(() =>
          store.transact((tx) => {
            tx.appendOutcome('k1', 1, outOfStock, TS);
            throw new Error('boom');
          }),
        ).toThrow('boom');
        expect(store.meta().headLsn).toBe(0);
        expect(store.readLog(0, 10)).toEqual({ changes: [], outcomes: [], to: 0 });
        expect(store.transact((tx) => [tx.lastSeq('k1'), tx.rejection('k1', 1)])).toEqual([0, undefined]);
      });

      it('reads both kinds in one LSN range, paging without holes', () => {
        noteBy('a', 'k1', 1);
        store.transact((tx) => tx.appendOutcome('k2', 1, outOfStock, TS));
        noteBy('b', 'k2', 2);
        store.transact((tx) => tx.appendOutcome('k1', 2, null, TS));
        noteBy('c', 'k1', 3);
        const first = store.readLog(0, 2);
        expect(first.to).toBe(2);
        expect(first.changes.map((c) => c.lsn)).toEqual([1]);
        expect(first.outcomes).toEqual([{ lsn: 2, term: 1, clientId: 'k2', seq: 1, error: outOfStock, ts: TS }]);
        const rest = store.readLog(2, 100);
        expect(rest.to).toBe(5);
        expect(rest.changes.map((c) => c.lsn)).toEqual([3, 5]);
        expect(rest.outcomes.map((o) => o.lsn)).toEqual([4]);
        expect(store.readLog(5, 100)).toEqual({ changes: [], outcomes: [], to: 5 });
      });

      it('never ends a page inside a mutation', () => {
        appendAll([put('notes', 'x')]);
        appendAll([put('notes', 'a'), put('notes', 'b'), put('notes', 'c')], { clientId: 'k1', seq: 1 });
        appendAll([put('notes', 'd')], { clientId: 'k1', seq: 2 });
        const page = store.readLog(0, 2);
        expect(page.to).toBe(4);
        expect(page.changes.map((c) => c.id)).toEqual(['x', 'a', 'b', 'c']);
        expect(store.readLog(4, 1).changes.map((c) => c.id)).toEqual(['d']);
        // Changes without an origin (seed, admin) are not one mutation: the limit holds.
        appendAll([put('notes', 'e'), put('notes', 'f')]);
        expect(store.readLog(5, 1).to).toBe(6);
        // A mutation of many writes comes whole, however small the page.
        const big = appendAll(
          Array.from({ length: 150 }, (_, i) => put('notes', `big${i}`)),
          { clientId: 'k2', seq: 1 },
        );
        appendAll([put('notes', 'g')], { clientId: 'k2', seq: 2 });
        const whole = store.readLog(7, 1);
        expect(whole.changes).toEqual(big);
        expect(whole.to).toBe(157);
        expect(whole.outcomes).toEqual([]);
      });

      it('compacts outcome entries with the changes', () => {
        noteBy('a', 'k1', 1);
        store.transact((tx) => tx.appendOutcome('k1', 2, outOfStock, TS));
        noteBy('b', 'k1', 3);
        expect(store.compact(2)).toEqual({ removedChanges: 2, removedTombstones: 0, horizon: 2 });
        expect(store.readLog(2, 10).changes.map((c) => c.lsn)).toEqual([3]);
        expect(store.logStats().count).toBe(1);
        expect(store.transact((tx) => tx.rejection('k1', 2))).toEqual(outOfStock);
      });

      it('replicates outcomes: a follower answers for every seq as its primary does', () => {
        noteBy('a', 'k1', 1);
        const r = store.transact((tx) => tx.appendOutcome('k1', 2, outOfStock, TS));
        const n = store.transact((tx) => tx.appendOutcome('k2', 5, null, TS));
        const page = store.readLog(0, 100);
        const follower = makeStore();
        try {
          follower.store.applyReplicated(page.changes, page.outcomes);
          expect(follower.store.meta().headLsn).toBe(3);
          expect(follower.store.readLog(0, 100)).toEqual(page);
          follower.store.transact((tx) => {
            expect(tx.lastSeq('k1')).toBe(2);
            expect(tx.rejection('k1', 2)).toEqual(outOfStock);
            expect(tx.lastSeq('k2')).toBe(5);
          });
          expect(r.lsn).toBe(2);
          expect(n.lsn).toBe(3);
        } finally {
          follower.cleanup();
        }
      });

      it('refuses replicated entries that leave a hole, whatever their kind, keeping nothing', () => {
        noteBy('a', 'k1', 1);
        store.transact((tx) => tx.appendOutcome('k1', 2, outOfStock, TS));
        noteBy('b', 'k1', 3);
        const page = store.readLog(0, 100);
        const follower = makeStore();
        try {
          expect(() => follower.store.applyReplicated(page.changes, [])).toThrow(TidelineError);
          expect(follower.store.meta().headLsn).toBe(0);
          expect(follower.store.transact((tx) => tx.lastSeq('k1'))).toBe(0);
        } finally {
          follower.cleanup();
        }
      });

      it('carries recent rejections in a snapshot', () => {
        noteBy('a', 'k1', 1);
        store.transact((tx) => tx.appendOutcome('k1', 2, outOfStock, TS));
        store.transact((tx) => tx.appendOutcome('k2', 1, forbidden, TS));
        const snapshot = store.exportSnapshot();
        expect(snapshot.rejections).toEqual([
          { clientId: 'k1', seq: 2, error: outOfStock },
          { clientId: 'k2', seq: 1, error: forbidden },
        ]);
        const target = makeStore();
        try {
          target.store.importSnapshot(snapshot);
          target.store.transact((tx) => {
            expect(tx.lastSeq('k1')).toBe(2);
            expect(tx.rejection('k1', 2)).toEqual(outOfStock);
            expect(tx.rejection('k2', 1)).toEqual(forbidden);
          });
        } finally {
          target.cleanup();
        }
      });

      it('leaves rejections older than the window out of a snapshot', () => {
        store.transact((tx) => tx.appendOutcome('k1', 1, outOfStock, TS));
        store.transact((tx) => tx.appendOutcome('k1', REJECTION_WINDOW + 1, outOfStock, TS));
        expect(store.exportSnapshot().rejections.map((r) => r.seq)).toEqual([REJECTION_WINDOW + 1]);
      });
    });

    for (const indexed of indexable ? [false, true] : [false]) {
      describe(indexed ? 'query (indexed)' : 'query', () => {
        beforeEach(() => {
          if (indexed) harness.index?.(QUERY_INDEXES);
        });

        /** Every page of `q`, `size` at a time, resuming after the last document of each. */
        const allPages = (q: Omit<DocQuery, 'limit'>, size: number, between?: (page: number) => void): Doc[] => {
          const out: Doc[] = [];
          let after: { value: OrderValue; id: string } | undefined;
          for (let page = 0; page < 10_000; page++) {
            const docs = store.query({ ...q, limit: size, ...(after ? { after } : {}) });
            out.push(...docs);
            const last = docs[docs.length - 1];
            if (docs.length < size || last === undefined) return out;
            after = { value: orderValueOf(last, q.orderBy?.field ?? 'id'), id: last.id };
            between?.(page);
          }
          throw new Error('paging did not end');
        };
        const ids = (docs: Doc[]): string[] => docs.map((d) => d.id);
        const idOf = (i: number): string => `d${String(i).padStart(4, '0')}`;

        describe('on 2,500 documents', () => {
          // Values repeat (ties are ordered by id), and every 50th document has none (null sorts first ascending).
          const nOf = (i: number): number | undefined => (i % 50 === 0 ? undefined : i % 37);
          beforeEach(() => {
            store.transact((tx) => {
              for (let i = 0; i < 2500; i++) {
                const n = nOf(i);
                tx.append(put('products', idOf(i), n === undefined ? {} : { n }), null, TS);
              }
              tx.append(put('notes', 'other-collection', { n: 1 }), null, TS);
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

          it('pages by id past 1,000 documents, each exactly once, in order', () => {
            const got = ids(allPages({ collection: 'products', filters: [] }, 1000));
            expect(got).toEqual(Array.from({ length: 2500 }, (_, i) => idOf(i)));
          });

          it('pages by id descending', () => {
            const got = ids(
              allPages({ collection: 'products', filters: [], orderBy: { field: 'id', direction: 'desc' } }, 333),
            );
            expect(got).toEqual(Array.from({ length: 2500 }, (_, i) => idOf(2499 - i)));
          });

          it('pages on a field with ties and missing values, both directions', () => {
            for (const direction of ['asc', 'desc'] as const) {
              const got = ids(
                allPages({ collection: 'products', filters: [], orderBy: { field: 'n', direction } }, 97),
              );
              expect(got).toEqual(expected(direction));
            }
          });

          it('pages with filters', () => {
            const q = {
              collection: 'products',
              filters: [{ field: 'n', op: 'gte' as const, value: 30 }],
              orderBy: { field: 'n', direction: 'desc' as const },
            };
            const got = ids(allPages(q, 50));
            expect(got).toEqual(expected('desc').filter((id) => (nOf(Number(id.slice(1))) ?? -1) >= 30));
            expect(store.count(q)).toBe(got.length);
          });

          it('returns every document that stays unchanged exactly once while others are written between pages', () => {
            const q = { collection: 'products', filters: [], orderBy: { field: 'n', direction: 'asc' as const } };
            const touched = new Set<string>();
            const got = ids(
              allPages(q, 200, (page) => {
                // New documents on both sides of the position, one moved and one deleted.
                const moved = idOf(page * 7 + 1);
                const gone = idOf(page * 7 + 3);
                touched.add(moved).add(gone);
                store.transact((tx) => {
                  tx.append(put('products', `new-${page}-a`, { n: 0 }), null, TS);
                  tx.append(put('products', `new-${page}-b`, { n: 36 }), null, TS);
                  tx.append(put('products', moved, { n: 1000 + page }), null, TS);
                  tx.append(del('products', gone), null, TS);
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

          it('counts the documents a query matches, without a limit', () => {
            expect(store.count({ collection: 'products', filters: [] })).toBe(2500);
            expect(store.count({ collection: 'products', filters: [{ field: 'n', op: 'eq', value: 5 }] })).toBe(
              Array.from({ length: 2500 }, (_, i) => nOf(i)).filter((n) => n === 5).length,
            );
            expect(store.count({ collection: 'nothing-here', filters: [] })).toBe(0);
          });
        });

        it('filters on id through its own column: eq, gt and prefix', () => {
          appendAll([put('products', 'a1'), put('products', 'a2'), put('products', 'b1'), put('notes', 'a1')]);
          const by = (op: 'eq' | 'gt' | 'prefix', value: string): string[] =>
            ids(store.query({ collection: 'products', filters: [{ field: 'id', op, value }], limit: 10 }));
          expect(by('eq', 'a2')).toEqual(['a2']);
          expect(by('gt', 'a1')).toEqual(['a2', 'b1']);
          expect(by('prefix', 'a')).toEqual(['a1', 'a2']);
          expect(by('eq', 'zz')).toEqual([]);
        });

        it('leaves tombstones and other owners out of query, count and getMany', () => {
          appendAll([put('carts', 'c1', {}, 'u1'), put('carts', 'c2', {}, 'u2'), put('carts', 'c3', {}, 'u1')]);
          appendAll([del('carts', 'c3', 'u1')]);
          expect(ids(store.query({ collection: 'carts', filters: [], limit: 10, owner: 'u1' }))).toEqual(['c1']);
          expect(store.count({ collection: 'carts', filters: [], owner: 'u1' })).toBe(1);
          expect(store.count({ collection: 'carts', filters: [] })).toBe(2);
          expect(ids(store.getMany('carts', ['c1', 'c2', 'c3'], 'u1'))).toEqual(['c1']);
          expect(ids(store.getMany('carts', ['c3', 'c2', 'c1']))).toEqual(['c2', 'c1']);
        });

        it('gets many by id in the order asked, each once, leaving out missing ones and other collections', () => {
          appendAll([put('products', 'p1', { n: 1 }), put('products', 'p2', { n: 2 }), put('notes', 'p3')]);
          const docs = store.getMany('products', ['p2', 'nope', 'p1', 'p2', 'p3']);
          expect(docs).toEqual([
            { id: 'p2', n: 2 },
            { id: 'p1', n: 1 },
          ]);
          expect(store.getMany('products', [])).toEqual([]);
        });

        it('compares within one kind of value in ranges: numbers with numbers, text with text', () => {
          appendAll([
            put('products', 'a', { v: 5 }),
            put('products', 'b', { v: '5' }),
            put('products', 'c', { v: 'abc' }),
            put('products', 'd', { v: 20 }),
            put('products', 'e', { v: null }),
            put('products', 'f'),
          ]);
          const by = (op: DocFilter['op'], value: string | number): string[] =>
            ids(store.query({ collection: 'products', filters: [{ field: 'v', op, value }], limit: 10 }));
          expect(by('gt', 4)).toEqual(['a', 'd']);
          expect(by('gte', 0)).toEqual(['a', 'd']);
          expect(by('lt', 100)).toEqual(['a', 'd']);
          expect(by('lt', 'b')).toEqual(['b', 'c']);
          expect(by('lte', 'abc')).toEqual(['b', 'c']);
          expect(by('gt', '4')).toEqual(['b', 'c']);
          expect(by('eq', 5)).toEqual(['a']);
          expect(by('eq', '5')).toEqual(['b']);
          // A document without the field (or with null) matches no filter on it, not even `ne`.
          expect(by('ne', 5)).toEqual(['b', 'c', 'd']);
          expect(store.count({ collection: 'products', filters: [{ field: 'v', op: 'gt', value: 4 }] })).toBe(2);
        });

        it('prefix matches every string that starts with it, whatever follows, and nothing else', () => {
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
          appendAll(values.map(([id, s]) => put('products', id, { s })));
          const by = (value: string, direction?: 'asc' | 'desc'): string[] =>
            ids(
              store.query({
                collection: 'products',
                filters: [{ field: 's', op: 'prefix', value }],
                limit: 20,
                ...(direction ? { orderBy: { field: 's', direction } } : {}),
              }),
            );
          expect(by('ab')).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
          expect(by('ab', 'asc')).toEqual(['a1', 'a2', 'a4', 'a3', 'a5']);
          expect(by('ab', 'desc')).toEqual(['a5', 'a3', 'a4', 'a2', 'a1']);
          expect(by('ab\uffff')).toEqual(['a4']);
          expect(by('ab\u{10FFFF}')).toEqual(['a5']);
          expect(by('1')).toEqual(['n2']);
          expect(by('')).toEqual(['a1', 'a2', 'a3', 'a4', 'a5', 'b1', 'b2', 'b3', 'n2']);
        });

        it('orders by a field it filters equal in id order, in both directions and across pages', () => {
          appendAll(Array.from({ length: 30 }, (_, i) => put('products', idOf(i), { n: i % 3, s: `s${i % 4}` })));
          const want = Array.from({ length: 30 }, (_, i) => i)
            .filter((i) => i % 3 === 1)
            .map(idOf);
          for (const direction of ['asc', 'desc'] as const) {
            const q = {
              collection: 'products',
              filters: [{ field: 'n', op: 'eq' as const, value: 1 }],
              orderBy: { field: 'n', direction },
            };
            expect(ids(allPages(q, 3))).toEqual(want);
          }
        });

        it('orders one value of a field by another (a compound index), ties by id, across pages, both directions', () => {
          appendAll(
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
            const got = ids(allPages(q, 4)).filter((id) => {
              const r = rows.find((x) => x.id === id)!;
              return r.s === null || r.s < 's5';
            });
            expect(got).toEqual(want);
            const ranged = {
              ...q,
              filters: [...q.filters, { field: 's', op: 'lt' as const, value: 's5' }],
            };
            expect(ids(allPages(ranged, 4))).toEqual(want.filter((id) => rows.find((x) => x.id === id)!.s !== null));
          }
        });
      });
    }

    describe('server origins (keyed server writes)', () => {
      const origin = `${SERVER_ORIGIN_PREFIX}key-a`;

      it('records the LSN a server write ended at and its commit time, for changes and outcome entries', () => {
        appendAll([put('notes', 'n0')]);
        store.transact((tx) => {
          tx.append(put('notes', 'n1'), { clientId: origin, seq: 1 }, TS);
          tx.append(put('notes', 'n2'), { clientId: origin, seq: 1 }, TS);
          tx.recordOutcome(origin, 1, null);
          expect(tx.serverOrigin(origin)).toEqual({ lsn: 3, ts: TS });
        });
        const other = `${SERVER_ORIGIN_PREFIX}key-b`;
        store.transact((tx) => tx.appendOutcome(other, 1, outOfStock, TS + 5));
        store.transact((tx) => {
          expect(tx.serverOrigin(origin)).toEqual({ lsn: 3, ts: TS });
          expect(tx.serverOrigin(other)).toEqual({ lsn: 4, ts: TS + 5 });
          expect(tx.rejection(other, 1)).toEqual(outOfStock);
          expect(tx.serverOrigin('client-1')).toBeUndefined();
        });
      });

      it('keeps no record of a rolled-back server write', () => {
        expect(() =>
          store.transact((tx) => {
            tx.append(put('notes', 'n1'), { clientId: origin, seq: 1 }, TS);
            throw new Error('abort');
          }),
        ).toThrow('abort');
        expect(store.transact((tx) => tx.serverOrigin(origin))).toBeUndefined();
      });

      it('records server origins of replicated entries, as the primary did', () => {
        const primary = store;
        primary.transact((tx) => {
          tx.append(put('notes', 'n1'), { clientId: origin, seq: 1 }, TS);
          tx.recordOutcome(origin, 1, null);
          tx.appendOutcome(`${SERVER_ORIGIN_PREFIX}key-b`, 1, outOfStock, TS + 1);
        });
        const page = primary.readLog(0, 10);
        const follower = makeStore();
        try {
          follower.store.applyReplicated(page.changes, page.outcomes);
          follower.store.transact((tx) => {
            expect(tx.serverOrigin(origin)).toEqual({ lsn: 1, ts: TS });
            expect(tx.lastSeq(origin)).toBe(1);
            expect(tx.serverOrigin(`${SERVER_ORIGIN_PREFIX}key-b`)).toEqual({ lsn: 2, ts: TS + 1 });
            expect(tx.rejection(`${SERVER_ORIGIN_PREFIX}key-b`, 1)).toEqual(outOfStock);
          });
        } finally {
          follower.cleanup();
        }
      });

      it('prunes records older than a time, with their clients and rejections rows, a bounded batch at a time', () => {
        const keyed = (n: number): string => `${SERVER_ORIGIN_PREFIX}k${n}`;
        for (let n = 0; n < 5; n++) {
          store.transact((tx) => tx.appendOutcome(keyed(n), 1, n === 0 ? outOfStock : null, TS + n));
        }
        store.transact((tx) => tx.recordOutcome('client-1', 1, null));
        expect(store.pruneServerOrigins(TS + 3, 2)).toBe(2);
        expect(store.pruneServerOrigins(TS + 3, 2)).toBe(1);
        expect(store.pruneServerOrigins(TS + 3, 2)).toBe(0);
        store.transact((tx) => {
          for (let n = 0; n < 3; n++) {
            expect(tx.serverOrigin(keyed(n))).toBeUndefined();
            expect(tx.lastSeq(keyed(n))).toBe(0);
          }
          expect(tx.rejection(keyed(0), 1)).toBeUndefined();
          expect(tx.serverOrigin(keyed(3))).toEqual({ lsn: 4, ts: TS + 3 });
          expect(tx.lastSeq(keyed(4))).toBe(1);
          expect(tx.lastSeq('client-1')).toBe(1);
        });
      });
    });

    describe('scanScope', () => {
      it('returns public documents and the user’s own, without tombstones, ordered by collection then id', () => {
        appendAll([
          put('products', 'p2', { name: 'b' }),
          put('products', 'p1', { name: 'a' }),
          put('carts', 'c-u1', { items: [] }, 'u1'),
          put('carts', 'c-u2', { items: [] }, 'u2'),
          put('orders', 'o-u1', {}, 'u1'),
          put('orders', 'o-gone', {}, 'u1'),
          put('products', 'p-gone'),
        ]);
        appendAll([del('orders', 'o-gone', 'u1'), del('products', 'p-gone')]);
        expect(store.scanScope({ userId: 'u1' })).toEqual([
          { collection: 'carts', doc: { id: 'c-u1', items: [] } },
          { collection: 'orders', doc: { id: 'o-u1' } },
          { collection: 'products', doc: { id: 'p1', name: 'a' } },
          { collection: 'products', doc: { id: 'p2', name: 'b' } },
        ]);
        expect(store.scanScope({ userId: 'u3' }).map((r) => r.doc.id)).toEqual(['p1', 'p2']);
        expect(store.scanScope({ userId: 'u3', allOf: ['orders'] }).map((r) => r.doc.id)).toEqual(['o-u1', 'p1', 'p2']);
      });

      it('orders the collection before the id, and strings by code point', () => {
        const astral = 'x\u{1F600}';
        const highBmp = 'x\uFFFF';
        appendAll([put('b', 'a'), put('a', 'z'), put('ab', 'a'), put('a', astral), put('a', highBmp), put('a', 'x')]);
        const keys = store.scanScope({ userId: 'u1' }).map((r) => `${r.collection}/${r.doc.id}`);
        expect(keys).toEqual(['a/x', `a/${highBmp}`, `a/${astral}`, 'a/z', 'ab/a', 'b/a']);
      });
    });

    describe('readLog byte budget', () => {
      const text = (n: number): string => 'x'.repeat(n);
      const noteOf = (id: string, clientId: string, seq: number, size: number) =>
        appendAll([put('notes', id, { text: text(size) })], { clientId, seq });
      const pageBytes = (page: { changes: Change[]; outcomes: OutcomeEntry[] }): number =>
        page.changes.reduce((sum, c) => sum + logEntryBytes({ ...c, body: JSON.stringify(c.doc) }), 0) +
        page.outcomes.reduce((sum, o) => sum + logEntryBytes(o), 0);

      it('ends a page before the entry that would pass the budget, covering the log without holes', () => {
        for (let i = 1; i <= 10; i++) noteOf(`n${i}`, 'k1', i, 1000);
        store.transact((tx) => tx.appendOutcome('k1', 11, outOfStock, TS));
        const one = logEntryBytes({
          ...store.readLog(0, 1).changes[0]!,
          body: JSON.stringify({ id: 'n1', text: text(1000) }),
        });
        const budget = Math.floor(one * 3.5);
        const pages = [];
        for (let after = 0; after < store.meta().headLsn; after = pages[pages.length - 1]!.to) {
          pages.push(store.readLog(after, 1000, budget));
        }
        expect(pages.map((p) => p.changes.length + p.outcomes.length)).toEqual([3, 3, 3, 2]);
        for (const p of pages) expect(pageBytes(p)).toBeLessThanOrEqual(budget);
        expect(pages.flatMap((p) => [...p.changes.map((c) => c.lsn), ...p.outcomes.map((o) => o.lsn)])).toEqual(
          Array.from({ length: 11 }, (_, i) => i + 1),
        );
        // The count limit still holds under a large budget.
        expect(store.readLog(0, 2, 10 * budget).to).toBe(2);
      });

      it('moves a mutation that would pass the budget to the next page, whole, where it may pass it alone', () => {
        noteOf('a', 'k1', 1, 1000);
        noteOf('b', 'k1', 2, 1000);
        const big = appendAll(
          [
            put('notes', 'c1', { text: text(1000) }),
            put('notes', 'c2', { text: text(1000) }),
            put('notes', 'c3', { text: text(1000) }),
          ],
          { clientId: 'k2', seq: 1 },
        );
        noteOf('d', 'k1', 3, 1000);
        const one = pageBytes(store.readLog(0, 1));
        const budget = Math.floor(one * 2.5);
        const first = store.readLog(0, 100, budget);
        expect(first.changes.map((c) => c.id)).toEqual(['a', 'b']);
        expect(first.to).toBe(2);
        const second = store.readLog(2, 100, budget);
        expect(second.changes).toEqual(big);
        expect(second.to).toBe(5);
        expect(pageBytes(second)).toBeGreaterThan(budget);
        expect(store.readLog(5, 100, budget).changes.map((c) => c.id)).toEqual(['d']);
        // The budget cut inside the mutation (after c1) gives the same pages.
        expect(store.readLog(0, 100, Math.floor(one * 3.2)).to).toBe(2);
      });

      it('gives one entry larger than the budget a page of its own', () => {
        noteOf('huge', 'k1', 1, 5000);
        noteOf('small', 'k1', 2, 10);
        const page = store.readLog(0, 100, 1000);
        expect(page.changes.map((c) => c.id)).toEqual(['huge']);
        expect(store.readLog(1, 100, 1000).changes.map((c) => c.id)).toEqual(['small']);
      });
    });

    describe('openSnapshot', () => {
      const seed = (): void => {
        appendAll([
          put('products', 'p1', { name: 'a' }),
          put('products', 'p2', { name: 'b' }),
          put('products', 'p3', { name: 'c' }),
          put('carts', 'c-u1', { items: [] }, 'u1'),
          put('carts', 'c-u2', { items: [] }, 'u2'),
          put('orders', 'o-u1', {}, 'u1'),
          put('orders', 'o-u2', {}, 'u2'),
          put('products', 'p-gone'),
        ]);
        appendAll([del('products', 'p-gone')]);
      };
      const drain = (cursor: SnapshotCursor, maxDocs: number, maxBytes = Infinity) => {
        const pages: Array<{ docs: Array<{ collection: string; doc: Doc }>; done: boolean }> = [];
        do pages.push(cursor.next(maxDocs, maxBytes));
        while (!pages[pages.length - 1]!.done);
        return pages;
      };

      it('pages through what scanScope returns, in order, telling when it is done', () => {
        seed();
        for (const scope of [{ userId: 'u1' }, { userId: 'u3' }, { userId: 'u3', allOf: ['orders'] }]) {
          const cursor = store.openSnapshot(scope, 'k1');
          try {
            const pages = drain(cursor, 2);
            expect(pages.flatMap((p) => p.docs)).toEqual(store.scanScope(scope));
            expect(pages.every((p, i) => p.done === (i === pages.length - 1))).toBe(true);
            expect(pages.slice(0, -1).every((p) => p.docs.length === 2)).toBe(true);
            expect(cursor.next(2, Infinity)).toEqual({ docs: [], done: true });
          } finally {
            cursor.close();
          }
        }
        // Exactly a page's worth: the page that holds the last document says done.
        const cursor = store.openSnapshot({ userId: 'u3' }, 'k1');
        try {
          expect(cursor.next(3, Infinity)).toEqual({ docs: store.scanScope({ userId: 'u3' }), done: true });
        } finally {
          cursor.close();
        }
        const empty = store.openSnapshot({ userId: 'u9' }, 'k1');
        store.transact((tx) => tx.append(del('products', 'p1'), null, TS));
        store.transact((tx) => tx.append(del('products', 'p2'), null, TS));
        store.transact((tx) => tx.append(del('products', 'p3'), null, TS));
        const none = store.openSnapshot({ userId: 'u9' }, 'k1');
        try {
          expect(none.next(10, Infinity)).toEqual({ docs: [], done: true });
          expect(empty.next(10, Infinity).docs.map((d) => d.doc.id)).toEqual(['p1', 'p2', 'p3']);
        } finally {
          none.close();
          empty.close();
        }
      });

      it('bounds a page by bytes, a document larger than the budget coming alone', () => {
        appendAll([
          put('notes', 'a', { text: 'x'.repeat(100) }),
          put('notes', 'b', { text: 'x'.repeat(100) }),
          put('notes', 'c', { text: 'x'.repeat(5000) }),
          put('notes', 'd', { text: 'x'.repeat(100) }),
        ]);
        const cursor = store.openSnapshot({ userId: 'u1' }, 'k1');
        try {
          const budget = 2 * scopeDocBytes('notes', JSON.stringify({ text: 'x'.repeat(100), id: 'a' })) + 10;
          const pages = drain(cursor, 100, budget);
          expect(pages.map((p) => p.docs.map((d) => d.doc.id))).toEqual([['a', 'b'], ['c'], ['d']]);
        } finally {
          cursor.close();
        }
      });

      it('reads every page, the head and the client’s outcomes as of when it opened, while commits go on', () => {
        seed();
        store.transact((tx) => {
          tx.append(put('orders', 'o-k1', {}, 'u1'), { clientId: 'k1', seq: 1 }, TS);
          tx.recordOutcome('k1', 1, null);
        });
        store.transact((tx) => tx.appendOutcome('k1', 2, outOfStock, TS));
        const head = store.meta().headLsn;
        const before = store.scanScope({ userId: 'u1' });
        const cursor = store.openSnapshot({ userId: 'u1' }, 'k1');
        try {
          const first = cursor.next(2, Infinity);
          expect(first.docs).toEqual(before.slice(0, 2));
          // Between pages: changes to documents on later pages, a new one, a delete, and more of k1's mutations.
          store.transact((tx) => {
            tx.append(put('products', 'p1', { name: 'changed' }), { clientId: 'k1', seq: 3 }, TS);
            tx.append(put('orders', 'o-new', {}, 'u1'), { clientId: 'k1', seq: 3 }, TS);
            tx.recordOutcome('k1', 3, null);
          });
          store.transact((tx) => tx.append(del('products', 'p2'), null, TS));
          store.transact((tx) => tx.appendOutcome('k1', 4, forbidden, TS));
          store.transact((tx) => tx.forgetRejections('k1', 3));
          expect(store.meta().headLsn).toBeGreaterThan(head);
          const rest = drain(cursor, 2);
          expect([...first.docs, ...rest.flatMap((p) => p.docs)]).toEqual(before);
          expect(cursor.asOf).toBe(head);
          expect(cursor.lastSeq).toBe(2);
          expect(cursor.rejection(2)).toEqual(outOfStock);
          expect(cursor.rejection(1)).toBeUndefined();
          expect(cursor.rejection(4)).toBeUndefined();
        } finally {
          cursor.close();
        }
        // The store itself moved on.
        expect(store.scanScope({ userId: 'u1' })).not.toEqual(before);
        expect(store.transact((tx) => [tx.lastSeq('k1'), tx.rejection('k1', 2)])).toEqual([4, undefined]);
      });

      it('is closed for good: reads after close throw, a second close does nothing, and the store goes on', () => {
        seed();
        for (let i = 0; i < 20; i++) {
          const cursor = store.openSnapshot({ userId: 'u1' }, 'k1');
          cursor.next(1, Infinity);
          cursor.close();
          cursor.close();
          expect(() => cursor.next(1, Infinity)).toThrow(TidelineError);
          appendAll([put('notes', `after-${i}`)]);
        }
        expect(store.scanScope({ userId: 'u1' }).filter((d) => d.collection === 'notes')).toHaveLength(20);
      });
    });

    describe('compact', () => {
      beforeEach(() => {
        appendAll([put('products', 'p1'), put('products', 'p2'), put('carts', 'c1', {}, 'u1')]); // 1..3
        store.transact((tx) => tx.append(put('products', 'p3'), null, TS + 1)); // 4
        appendAll([del('products', 'p1'), del('carts', 'c1', 'u1')]); // 5, 6
        appendAll([put('products', 'p4'), del('products', 'p2')]); // 7, 8
      });

      it('drops changes and tombstones up to the LSN and raises the horizon', () => {
        expect(store.compact(6)).toEqual({ removedChanges: 6, removedTombstones: 2, horizon: 6 });
        expect(store.meta()).toMatchObject({ headLsn: 8, horizon: 6 });
        expect(store.getDoc('products', 'p1')).toBeUndefined();
        expect(store.getDoc('carts', 'c1')).toBeUndefined();
        expect(store.getDoc('products', 'p2')).toMatchObject({ doc: null, lsn: 8 });
        expect(store.getDoc('products', 'p3')).toMatchObject({ doc: { id: 'p3' }, lsn: 4 });
        expect(store.readChanges(6, 100).map((c) => c.lsn)).toEqual([7, 8]);
        expect(store.logStats()).toEqual({ count: 2, oldestTs: TS });
        expect(store.scanScope({ userId: 'u1' }).map((r) => r.doc.id)).toEqual(['p3', 'p4']);
      });

      it('never lowers the horizon', () => {
        store.compact(5);
        expect(store.compact(3)).toEqual({ removedChanges: 0, removedTombstones: 0, horizon: 5 });
        expect(store.compact(5)).toEqual({ removedChanges: 0, removedTombstones: 0, horizon: 5 });
        expect(store.meta().horizon).toBe(5);
      });

      it('never moves the horizon past the head, and the head survives an empty log', () => {
        expect(store.compact(1000)).toEqual({ removedChanges: 8, removedTombstones: 3, horizon: 8 });
        expect(store.meta()).toMatchObject({ headLsn: 8, horizon: 8 });
        expect(store.logStats()).toEqual({ count: 0, oldestTs: null });
        expect(store.readChanges(8, 10)).toEqual([]);
        const [next] = appendAll([put('products', 'p5')]);
        expect(next?.lsn).toBe(9);
        expect(store.readChanges(8, 10).map((c) => c.lsn)).toEqual([9]);
      });

      it('reports the oldest remaining change for automatic compaction', () => {
        expect(store.logStats()).toEqual({ count: 8, oldestTs: TS });
        store.compact(3);
        expect(store.logStats()).toEqual({ count: 5, oldestTs: TS + 1 });
      });

      it('rolls back with the transaction it runs in', () => {
        expect(() =>
          store.transact(() => {
            store.compact(6);
            throw new Error('abort');
          }),
        ).toThrow('abort');
        expect(store.meta().horizon).toBe(0);
        expect(store.readChanges(0, 100)).toHaveLength(8);
        expect(store.getDoc('products', 'p1')).toMatchObject({ doc: null, lsn: 5 });
      });
    });

    describe('setTerm', () => {
      it('stamps new changes with the new term and leaves old ones alone', () => {
        appendAll([put('products', 'p1')]);
        store.setTerm(3);
        appendAll([put('products', 'p2')]);
        expect(store.meta().term).toBe(3);
        expect(store.readChanges(0, 10).map((c) => [c.lsn, c.term])).toEqual([
          [1, 1],
          [2, 3],
        ]);
      });

      it('refuses to lower the term', () => {
        store.setTerm(4);
        expect(() => store.setTerm(2)).toThrow(TidelineError);
        store.setTerm(4);
        expect(store.meta().term).toBe(4);
      });
    });

    describe('lineage and bindings across replication', () => {
      it('has a cluster id from creation, its own, which it can be given', () => {
        const other = makeStore();
        try {
          const id = store.clusterId();
          expect(id).toMatch(/^[0-9a-f-]{36}$/);
          expect(other.store.clusterId()).not.toBe(id);
          other.store.setClusterId(id!);
          expect(other.store.clusterId()).toBe(id);
        } finally {
          other.cleanup();
        }
        if (harness.reopen) {
          const id = store.clusterId();
          store.close();
          store = harness.reopen();
          expect(store.clusterId()).toBe(id);
        }
      });

      it('binds client ids with replicated entries, and a snapshot carries every binding', () => {
        store.transact((tx) => {
          tx.bindClient('k1', 'alice');
          tx.bindClient('k3', 'carol');
          tx.append(put('notes', 'a'), { clientId: 'k1', seq: 1 }, TS);
          tx.recordOutcome('k1', 1, null);
          tx.appendOutcome('k2', 1, null, TS);
        });
        expect(store.bindingsOf(['k1', 'k2', 'k1', 'nobody'])).toEqual({ k1: 'alice' });
        const page = store.readLog(0, 100);
        const follower = makeStore();
        const fromSnapshot = makeStore();
        try {
          follower.store.applyReplicated(page.changes, page.outcomes, store.bindingsOf(['k1', 'k2']));
          follower.store.transact((tx) => {
            expect([tx.clientUser('k1'), tx.clientUser('k2'), tx.clientUser('k3')]).toEqual(['alice', null, null]);
            expect(tx.lastSeq('k1')).toBe(1);
          });
          // Bindings alone (a page with no entries of theirs) are applied too, and undone with a refused page.
          expect(() => follower.store.applyReplicated([{ ...page.changes[0]!, lsn: 9 }], [], { k5: 'eve' })).toThrow(
            TidelineError,
          );
          expect(follower.store.transact((tx) => tx.clientUser('k5'))).toBeNull();
          fromSnapshot.store.importSnapshot(store.exportSnapshot());
          fromSnapshot.store.transact((tx) => {
            expect([tx.clientUser('k1'), tx.clientUser('k2'), tx.clientUser('k3')]).toEqual(['alice', null, 'carol']);
            expect([tx.lastSeq('k1'), tx.lastSeq('k2'), tx.lastSeq('k3')]).toEqual([1, 1, 0]);
          });
        } finally {
          follower.cleanup();
          fromSnapshot.cleanup();
        }
      });

      it("ends with the primary's rejection rows for replicated outcomes at or below the last seq", () => {
        // The replica counts k1 settled up to 5 (a hello settled a gap while it led), with its own row for seq 2.
        store.transact((tx) => {
          tx.recordOutcome('k1', 2, forbidden);
          tx.recordOutcome('k1', 5, null);
        });
        const primary = makeStore();
        try {
          primary.store.transact((tx) => {
            tx.appendOutcome('k1', 1, outOfStock, TS);
            tx.appendOutcome('k1', 2, null, TS);
          });
          const page = primary.store.readLog(0, 100);
          store.applyReplicated(page.changes, page.outcomes);
          const rows = (s: Store): unknown =>
            s.transact((tx) => [tx.rejection('k1', 1) ?? null, tx.rejection('k1', 2) ?? null]);
          expect(rows(store)).toEqual(rows(primary.store));
          expect(rows(store)).toEqual([outOfStock, null]);
          // Its last seq never goes down: seqs 3..5 stay settled here.
          expect(store.transact((tx) => tx.lastSeq('k1'))).toBe(5);
        } finally {
          primary.cleanup();
        }
      });
    });

    if (durable) {
      describe('after close and reopen', () => {
        const reopen = (): Store => {
          store.close();
          if (!harness.reopen) throw new Error('the harness lost its reopen');
          store = harness.reopen();
          return store;
        };

        it('keeps documents, changes, outcomes and meta', () => {
          store.setTerm(2);
          store.transact((tx) => {
            tx.append(put('products', 'p1', { stock: 5 }), { clientId: 'k1', seq: 1 }, TS);
            tx.append(put('carts', 'c1', {}, 'u1'), { clientId: 'k1', seq: 1 }, TS);
            tx.recordOutcome('k1', 1, null);
            tx.recordOutcome('k1', 2, outOfStock);
          });
          appendAll([del('carts', 'c1', 'u1')]);
          const meta = store.meta();
          const changes = store.readChanges(0, 100);

          reopen();
          expect(store.meta()).toEqual(meta);
          expect(store.readChanges(0, 100)).toEqual(changes);
          expect(store.getDoc('products', 'p1')).toMatchObject({ doc: { id: 'p1', stock: 5 }, lsn: 1 });
          expect(store.getDoc('carts', 'c1')).toMatchObject({ doc: null, owner: 'u1', lsn: 3 });
          store.transact((tx) => {
            expect(tx.lastSeq('k1')).toBe(2);
            expect(tx.rejection('k1', 2)).toEqual(outOfStock);
          });
          const [next] = appendAll([put('products', 'p2')]);
          expect(next).toMatchObject({ lsn: 4, term: 2 });
        });

        it('keeps usage and authors', () => {
          appendAll([put('carts', 'u1/c', { n: 1 }, 'u1')]);
          const before = store.transact((tx) => tx.usage('carts', 'u1'));
          expect(before.docs).toBe(1);
          reopen();
          expect(store.transact((tx) => [tx.usage('carts', 'u1'), tx.docAuthor('carts', 'u1/c')])).toEqual([
            before,
            'u1',
          ]);
        });

        it('keeps the head and horizon when compaction emptied the log', () => {
          appendAll([put('products', 'p1'), put('products', 'p2')]);
          store.compact(2);
          reopen();
          expect(store.meta()).toMatchObject({ headLsn: 2, horizon: 2 });
          expect(appendAll([put('products', 'p3')])[0]?.lsn).toBe(3);
        });

        it('keeps nothing of a rolled-back transaction', () => {
          appendAll([put('products', 'p1')]);
          expect(() =>
            store.transact((tx) => {
              tx.append(put('products', 'p2'), null, TS);
              store.setTerm(9);
              throw new Error('abort');
            }),
          ).toThrow('abort');
          reopen();
          expect(store.meta()).toMatchObject({ headLsn: 1, term: 1 });
          expect(store.getDoc('products', 'p2')).toBeUndefined();
          expect(appendAll([put('products', 'p3')])[0]?.lsn).toBe(2);
        });
      });
    }
  });
}

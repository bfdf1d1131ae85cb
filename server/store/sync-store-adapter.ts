import { TidelineError } from '../../shared/errors';
import type { AsyncSnapshotCursor, AsyncStore, AsyncStoreTx } from './async-store';
import type { Store, StoreTx } from './store';

/** A synchronous store that can hold one transaction open across awaits (SqliteStore, MemoryStore). */
export interface HoldingStore extends Store {
  holdTransaction(): (commit: boolean) => void;
  /**
   * The held transaction's operations, run on it directly (no savepoint per
   * call); when absent, each call is a nested `transact`. A call that throws
   * may leave part of its writes: the adapter's `transact` then rolls the
   * whole transaction back (its function rejects).
   */
  heldTx?(): StoreTx;
}

/**
 * Serves a synchronous store (SQLite, memory) as an `AsyncStore`.
 *
 * A transaction holds the store's own transaction open across `fn`'s awaits
 * (`holdTransaction`), and each `tx` call runs as one synchronous `transact`
 * nested in it. Since an open SQLite transaction is seen by every later call
 * on the same connection, every call on the adapter takes one queue: a
 * transaction runs alone, and a read waits until it commits, so nothing
 * outside a transaction sees its writes before they are durable.
 *
 * A store with `heldTx` (SQLite) runs each `tx` call straight on the held
 * transaction; one without (memory) nests a `transact` per call. Either way
 * a call that throws fails the whole transaction, as a failed statement
 * aborts a PostgreSQL transaction. Every `tx` call of the SQLite store
 * resolves at once, so a transaction with only `tx` awaits in it begins and
 * ends within one turn of the event loop: no socket or timer callback runs
 * while it is open, and the replication hub's synchronous reads of the same
 * connection never see uncommitted writes.
 */
export function asyncStoreOf(store: HoldingStore): AsyncStore {
  let queue: Promise<unknown> = Promise.resolve();
  // Runs `fn` after everything queued before it, whether that succeeded or not.
  const serial = <T>(fn: () => T | Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };

  const transact = <T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T> =>
    serial(async () => {
      const end = store.holdTransaction();
      const held = store.heldTx?.();
      let active = true;
      // A call that throws fails the transaction: nothing it did may commit, even if `fn` catches it.
      const failure: { error: Error | null } = { error: null };
      const op =
        <A extends unknown[], R>(call: (tx: StoreTx, ...args: A) => R) =>
        // Async only in its result: the synchronous call runs at once, so calls keep their order.
        async (...args: A): Promise<R> => {
          if (!active) throw new TidelineError('INTERNAL', 'a store transaction was used after it ended');
          if (held === undefined) return store.transact((tx) => call(tx, ...args));
          try {
            return call(held, ...args);
          } catch (err) {
            failure.error ??= err instanceof Error ? err : new TidelineError('INTERNAL', String(err));
            throw err;
          }
        };
      const tx: AsyncStoreTx = {
        getDoc: op((t, collection: string, id: string) => t.getDoc(collection, id)),
        lastSeq: op((t, clientId: string) => t.lastSeq(clientId)),
        rejection: op((t, clientId: string, seq: number) => t.rejection(clientId, seq)),
        append: op((t, ...a: Parameters<StoreTx['append']>) => t.append(...a)),
        recordOutcome: op((t, ...a: Parameters<StoreTx['recordOutcome']>) => t.recordOutcome(...a)),
        appendOutcome: op((t, ...a: Parameters<StoreTx['appendOutcome']>) => t.appendOutcome(...a)),
        forgetRejections: op((t, clientId: string, below: number) => t.forgetRejections(clientId, below)),
        serverOrigin: op((t, origin: string) => t.serverOrigin(origin)),
        clientUser: op((t, clientId: string) => t.clientUser(clientId)),
        bindClient: op((t, clientId: string, userId: string) => t.bindClient(clientId, userId)),
        usage: op((t, collection: string, userId: string) => t.usage(collection, userId)),
        docAuthor: op((t, collection: string, id: string) => t.docAuthor(collection, id)),
      };
      let result: T;
      try {
        result = await fn(tx);
        if (failure.error !== null) throw failure.error;
      } catch (err) {
        active = false;
        end(false);
        throw err;
      }
      active = false;
      end(true);
      return result;
    });

  return {
    meta: () => serial(() => store.meta()),
    getDoc: (collection, id) => serial(() => store.getDoc(collection, id)),
    transact,
    readChanges: (after, limit) => serial(() => store.readChanges(after, limit)),
    readLog: (after, limit, maxBytes) => serial(() => store.readLog(after, limit, maxBytes)),
    scanScope: (scope) => serial(() => store.scanScope(scope)),
    openSnapshot: (scope, clientId) =>
      serial((): AsyncSnapshotCursor => {
        const cursor = store.openSnapshot(scope, clientId);
        // The cursor reads its own connection (or a copy), so its pages need not queue.
        return {
          asOf: cursor.asOf,
          lastSeq: cursor.lastSeq,
          rejection: (seq) => settle(() => cursor.rejection(seq)),
          next: (maxDocs, maxBytes) => settle(() => cursor.next(maxDocs, maxBytes)),
          close: () => settle(() => cursor.close()),
        };
      }),
    query: (q) => serial(() => store.query(q)),
    count: (q) => serial(() => store.count(q)),
    getMany: (collection, ids, owner) => serial(() => store.getMany(collection, ids, owner)),
    pruneServerOrigins: (before, limit) => serial(() => store.pruneServerOrigins(before, limit)),
    logStats: () => serial(() => store.logStats()),
    compact: (upTo) => serial(() => store.compact(upTo)),
    setTerm: (term) => serial(() => store.setTerm(term)),
    terms: () => serial(() => store.terms()),
    adoptTerms: (terms) => serial(() => store.adoptTerms(terms)),
    applyReplicated: (changes, outcomes, bindings) => serial(() => store.applyReplicated(changes, outcomes, bindings)),
    bindingsOf: (clientIds) => serial(() => store.bindingsOf(clientIds)),
    clusterId: () => serial(() => store.clusterId()),
    setClusterId: (clusterId) => serial(() => store.setClusterId(clusterId)),
    exportSnapshot: () => serial(() => store.exportSnapshot()),
    importSnapshot: (snapshot) => serial(() => store.importSnapshot(snapshot)),
    close: () => serial(() => store.close()),
  };
}

/** A synchronous call as a promise: its throw becomes a rejection. */
async function settle<T>(fn: () => T): Promise<T> {
  return fn();
}

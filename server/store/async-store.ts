import type { WireErrorShape } from '../../shared/errors';
import type { Doc } from '../../shared/json';
import type { Write } from '../../shared/mutators/types';
import type { Change } from '../../shared/protocol/change';
import type {
  DocQuery,
  LogPage,
  OutcomeEntry,
  ReplicaSnapshot,
  Scope,
  ScopeDoc,
  ServerOriginRecord,
  StoreMeta,
  StoredDoc,
  TermStart,
  Usage,
} from './store';

/*
 * The asynchronous face of a store: the same contract as `Store` (store.ts,
 * read its doc comment: atomic and durable `transact`, consecutive LSNs,
 * exactly once per (clientId, seq), readLog pages that never end inside a
 * mutation, consistent snapshots, compaction), with every call a promise so
 * that a store across the network (PostgreSQL) can stand behind it.
 *
 * What differs from `Store`, and why:
 * - `transact(fn)` takes an async `fn`: the transaction stays open until the
 *   promise `fn` returns settles, commits when it resolves, rolls back when it
 *   rejects. Calls on one `AsyncStoreTx` run in the order they are made, even
 *   when the caller does not await each one (`Promise.all(writes.map(tx.append))`
 *   gives consecutive LSNs in array order). Inside `fn`, use only `tx`: a call
 *   on the store itself may wait for this very transaction to end (the sync
 *   adapter serializes the whole store) and never sees its writes.
 * - `meta()` is a read: on a shared store another node may have moved the head.
 * - A snapshot cursor's `rejection`, `next` and `close` are async.
 * - The store-specific extras of `SqliteStore` (backups, app indexes, schema
 *   records) are not here; each store keeps its own.
 */

/** `StoreTx`, asynchronously: see its doc comments in store.ts. */
export interface AsyncStoreTx {
  getDoc(collection: string, id: string): Promise<StoredDoc | undefined>;
  lastSeq(clientId: string): Promise<number>;
  rejection(clientId: string, seq: number): Promise<WireErrorShape | undefined>;
  append(write: Write, origin: { clientId: string; seq: number } | null, ts: number): Promise<Change>;
  recordOutcome(clientId: string, seq: number, rejection: WireErrorShape | null): Promise<void>;
  appendOutcome(clientId: string, seq: number, rejection: WireErrorShape | null, ts: number): Promise<OutcomeEntry>;
  forgetRejections(clientId: string, below: number): Promise<void>;
  serverOrigin(origin: string): Promise<ServerOriginRecord | undefined>;
  clientUser(clientId: string): Promise<string | null>;
  bindClient(clientId: string, userId: string): Promise<void>;
  usage(collection: string, userId: string): Promise<Usage>;
  docAuthor(collection: string, id: string): Promise<string | null>;
}

/** `SnapshotCursor`, asynchronously: one consistent point, paged; `close` it on every path. */
export interface AsyncSnapshotCursor {
  readonly asOf: number;
  readonly lastSeq: number;
  rejection(seq: number): Promise<WireErrorShape | undefined>;
  next(maxDocs: number, maxBytes: number): Promise<{ docs: ScopeDoc[]; done: boolean }>;
  close(): Promise<void>;
}

/** `Store`, asynchronously (see above and store.ts for the contract every implementation keeps). */
export interface AsyncStore {
  meta(): Promise<StoreMeta>;
  getDoc(collection: string, id: string): Promise<StoredDoc | undefined>;
  transact<T>(fn: (tx: AsyncStoreTx) => Promise<T>): Promise<T>;
  readChanges(after: number, limit: number): Promise<Change[]>;
  readLog(after: number, limit: number, maxBytes?: number): Promise<LogPage>;
  scanScope(scope: Scope): Promise<Array<{ collection: string; doc: Doc }>>;
  openSnapshot(scope: Scope, clientId: string): Promise<AsyncSnapshotCursor>;
  query(q: DocQuery): Promise<Doc[]>;
  count(q: Omit<DocQuery, 'limit' | 'orderBy' | 'after'>): Promise<number>;
  getMany(collection: string, ids: readonly string[], owner?: string): Promise<Doc[]>;
  pruneServerOrigins(before: number, limit: number): Promise<number>;
  logStats(): Promise<{ count: number; oldestTs: number | null }>;
  compact(upTo: number): Promise<{ removedChanges: number; removedTombstones: number; horizon: number }>;
  setTerm(term: number): Promise<void>;
  terms(): Promise<TermStart[]>;
  adoptTerms(terms: readonly TermStart[]): Promise<void>;
  applyReplicated(
    changes: readonly Change[],
    outcomes?: readonly OutcomeEntry[],
    bindings?: Readonly<Record<string, string>>,
  ): Promise<void>;
  bindingsOf(clientIds: Iterable<string>): Promise<Record<string, string>>;
  clusterId(): Promise<string | null>;
  setClusterId(clusterId: string): Promise<void>;
  exportSnapshot(): Promise<ReplicaSnapshot>;
  importSnapshot(snapshot: ReplicaSnapshot): Promise<void>;
  close(): Promise<void>;
}

import type { WireErrorShape } from '../../shared/errors';
import type { Doc } from '../../shared/json';
import type { Write } from '../../shared/mutators/types';
import type { Change } from '../../shared/protocol/change';

/** The current version of one document; `doc: null` is a tombstone kept until compaction passes its LSN. */
export interface StoredDoc {
  collection: string;
  id: string;
  doc: Doc | null;
  owner: string | null;
  lsn: number;
}

export interface StoreMeta {
  /** Random id of this store, fixed at creation. */
  serverId: string;
  /** The primary's epoch; starts at 1. */
  term: number;
  /** LSN of the newest change; 0 when empty. */
  headLsn: number;
  /** Changes with `lsn <= horizon` have been compacted away; a checkpoint below it needs a snapshot. */
  horizon: number;
}

/** A term and where it began: its first change has LSN `startLsn + 1`. */
export interface TermStart {
  term: number;
  startLsn: number;
}

/** A node's whole state at one LSN, for a replica that is behind the horizon (or new). */
export interface ReplicaSnapshot {
  asOf: number;
  terms: TermStart[];
  /** Live documents only: a snapshot has no tombstones. */
  docs: StoredDoc[];
  /** Every client's last seq, so exactly-once holds after this node is promoted. */
  clients: Array<{ clientId: string; lastSeq: number }>;
}

/** A read-only query on one collection: filters and sort on indexed fields. */
export interface DocQuery {
  collection: string;
  filters: Array<{
    field: string;
    op: 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte' | 'prefix';
    value: string | number | boolean;
  }>;
  orderBy?: { field: string; direction: 'asc' | 'desc' };
  limit: number;
  /** Only documents of this owner (owner-only collections). */
  owner?: string;
}

/** Who may see a document: every user when `owner` is null, else only that owner. */
export interface Scope {
  userId: string;
  /** Owner-only collections this user may read in full (by role). */
  allOf?: readonly string[];
}

/** What one write transaction can do. Reads see the transaction's own writes. */
export interface StoreTx {
  getDoc(collection: string, id: string): StoredDoc | undefined;
  /** Highest seq of this client with a recorded outcome; 0 for a new client. */
  lastSeq(clientId: string): number;
  /** The stored rejection of (clientId, seq), if that mutation was rejected. */
  rejection(clientId: string, seq: number): WireErrorShape | undefined;
  /**
   * Appends one change with the next LSN (head + 1) and the current term, and
   * makes it the document's current version (a tombstone for `doc: null`).
   */
  append(write: Write, origin: { clientId: string; seq: number } | null, ts: number): Change;
  /** Records the outcome of (clientId, seq): lastSeq becomes seq; a rejection is kept for duplicate answers. */
  recordOutcome(clientId: string, seq: number, rejection: WireErrorShape | null): void;
}

/**
 * Durable storage of one node: documents with tombstones, the change log by
 * LSN, each client's last seq, and meta.
 *
 * Contract, checked by `runStoreTests` for every implementation:
 * - `transact` is atomic: when `fn` throws, nothing it wrote is kept and the
 *   error propagates. When `transact` returns, the transaction is durable
 *   (it survives `kill -9` of the process).
 * - LSNs are consecutive: each `append` gets `headLsn + 1`, and a rolled-back
 *   transaction gives its LSNs back.
 * - `readChanges(after, limit)` returns the changes with `lsn > after` in LSN
 *   order, at most `limit`, and only those above the horizon: callers must
 *   check `after >= horizon` first (else a snapshot is needed).
 * - `scanScope` returns, at one consistent point, every live document
 *   (of a public collection, owned by the user, or in `scope.allOf`)
 *   (no tombstones) that the scope may read, ordered by (collection, id).
 * - `compact(upTo)` drops changes with `lsn <= upTo` and tombstones with
 *   `lsn <= upTo`, and raises the horizon to `upTo` (never lowers it, never
 *   past the head).
 * - All methods are synchronous: the embedded store runs in-process, and a
 *   whole group commit is one call.
 */
export interface Store {
  meta(): StoreMeta;
  getDoc(collection: string, id: string): StoredDoc | undefined;
  transact<T>(fn: (tx: StoreTx) => T): T;
  readChanges(after: number, limit: number): Change[];
  scanScope(scope: Scope): Array<{ collection: string; doc: Doc }>;
  /** Live documents matching `q`, sorted (then by id), at most `q.limit`. The caller checks that fields are indexed. */
  query(q: DocQuery): Doc[];
  /** Number of changes in the log and the ts of the oldest, for automatic compaction. */
  logStats(): { count: number; oldestTs: number | null };
  compact(upTo: number): { removedChanges: number; removedTombstones: number; horizon: number };
  /**
   * Raises the term (promotion); the new term starts at the current head and
   * is appended to `terms()`. Terms only rise.
   */
  setTerm(term: number): void;
  /** The term history, oldest first; a new store has `[{ term: 1, startLsn: 0 }]`. */
  terms(): TermStart[];
  /**
   * A replica adopts its primary's term history (its own log is a prefix of
   * the primary's, which the handshake checked). The last entry's term becomes
   * this store's term.
   */
  adoptTerms(terms: readonly TermStart[]): void;
  /**
   * Replica: applies the primary's changes as they are (LSN, term, ts), in
   * one transaction. They must continue this log: the first LSN is head + 1
   * and LSNs are consecutive; otherwise nothing is applied and it throws.
   * Each change's (clientId, seq) raises that client's last seq.
   */
  applyReplicated(changes: readonly Change[]): void;
  /** Every live document, the terms and every client's last seq, at one consistent point. */
  exportSnapshot(): ReplicaSnapshot;
  /**
   * Replaces everything (documents, log, clients, rejections, terms) with a
   * snapshot: afterwards head = horizon = `asOf` and the log is empty.
   */
  importSnapshot(snapshot: ReplicaSnapshot): void;
  close(): void;
}

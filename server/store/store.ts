import type { WireErrorShape } from '../../shared/errors';
import { boundedError } from '../../shared/mutators/run-mutation';
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

/**
 * The outcome of a mutation that wrote no document: a rejection (`error`
 * set) or a no-op. It takes an LSN of its own in the log, shared with
 * document changes, so that replicas receive it in order and a promoted
 * replica can answer for every seq its primary settled (guarantee 7), and so
 * that a `minSyncReplicas` wait covers it like any change.
 */
export interface OutcomeEntry {
  lsn: number;
  term: number;
  clientId: string;
  seq: number;
  error: WireErrorShape | null;
  ts: number;
}

/** Log entries `after < lsn <= to` of both kinds, each list in LSN order. */
export interface LogPage {
  changes: Change[];
  outcomes: OutcomeEntry[];
  /** The last LSN the page covers; `after` when it is empty. */
  to: number;
}

/** A rejection kept for a client's seq, for duplicate answers and catch-up reports. */
export interface StoredRejection {
  clientId: string;
  seq: number;
  error: WireErrorShape;
}

/**
 * A live document in a snapshot, with the user it counts against for quotas
 * (its author; see `StoreTx.usage`). `author` left out (a snapshot from a node
 * that kept none) counts an owner-only document against its owner.
 */
export interface SnapshotDoc extends StoredDoc {
  author?: string | null | undefined;
}

/** What one user holds of one collection: the live documents they authored, and those documents' bytes. */
export interface Usage {
  docs: number;
  /** The sum of the documents' sizes as UTF-8 JSON (`jsonByteLength`). */
  bytes: number;
}

/**
 * Who a new document counts against: its owner (owner-only collections), else
 * the user its origin client id is bound to, else nobody (a system write, a
 * seed, an unbound origin). Both stores apply this one rule on the primary
 * and on replicas alike, so usage agrees across nodes.
 */
export const authorOf = (owner: string | null, originUser: string | null): string | null => owner ?? originUser;

/** A node's whole state at one LSN, for a replica that is behind the horizon (or new). */
export interface ReplicaSnapshot {
  asOf: number;
  terms: TermStart[];
  /** Live documents only: a snapshot has no tombstones. */
  docs: SnapshotDoc[];
  /**
   * Every client's last seq, so exactly-once holds after this node is promoted,
   * and the user each bound client id belongs to (`userId`, left out when
   * unbound), so a promoted node refuses a hello of another user with it.
   */
  clients: Array<{ clientId: string; lastSeq: number; userId?: string }>;
  /**
   * Rejections of each client's newest `REJECTION_WINDOW` seqs, so the node
   * answers for them after a promotion as its primary would.
   */
  rejections: StoredRejection[];
}

/**
 * How many of a client's newest seqs keep their rejection in a snapshot. A
 * client retries only what is still in its outbox, and is told of at most
 * this many rejections on reconnect.
 */
export const REJECTION_WINDOW = 10_000;

/**
 * What a store keeps of a rejection: its message cut to `MAX_ERROR_MESSAGE_CHARS`,
 * on every path in (a commit, a replicated entry, a snapshot), so no input
 * echoed in a message is stored, replicated or replayed at length. A store
 * keeps a client's rejections only for its newest `REJECTION_WINDOW` seqs.
 */
export const storedRejection = (error: WireErrorShape): WireErrorShape => boundedError(error);

/**
 * Server writes with an idempotency key take the origin
 * `(SERVER_ORIGIN_PREFIX + hash of the key, seq 1)`: a client id can never
 * start with it (`[A-Za-z0-9_-]` only), so exactly-once for server writes
 * rides on the same `clients` and `rejections` rows, and the same log
 * replication, as for clients. The store also remembers, per such origin, the
 * LSN its outcome ended at and its commit time, for the duplicate answer and
 * for retention (`pruneServerOrigins`).
 */
export const SERVER_ORIGIN_PREFIX = '~idem:';

export const isServerOrigin = (clientId: string): boolean => clientId.startsWith(SERVER_ORIGIN_PREFIX);

/** What the store keeps of one keyed server write: where its outcome ended in the log, and when it committed. */
export interface ServerOriginRecord {
  lsn: number;
  ts: number;
}

/** A value of an indexed field as the query sorts it; null for a missing field. */
export type OrderValue = string | number | boolean | null;

/** A document's value of an order field as both stores sort it: missing is null, a non-scalar its JSON text. */
export function orderValueOf(doc: Doc, field: string): OrderValue {
  const v = doc[field];
  if (v === undefined || v === null) return null;
  return typeof v === 'object' ? JSON.stringify(v) : v;
}

/** One query filter on an indexed field (or `id`, which the primary key serves). */
export interface DocFilter {
  field: string;
  op: 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte' | 'prefix';
  value: string | number | boolean;
}

/** A read-only query on one collection: filters and sort on indexed fields. */
export interface DocQuery {
  collection: string;
  filters: DocFilter[];
  orderBy?: { field: string; direction: 'asc' | 'desc' };
  limit: number;
  /** Only documents of this owner (owner-only collections). */
  owner?: string;
  /**
   * Keyset paging: only documents strictly after this position in the
   * query's order ((order value, id), ids ascending among equal values).
   * `value` is ignored without `orderBy`.
   */
  after?: { value: OrderValue; id: string };
}

/** Who may see a document: every user when `owner` is null, else only that owner. */
export interface Scope {
  userId: string;
  /** Owner-only collections this user may read in full (by role). */
  allOf?: readonly string[];
}

/** One document of a client snapshot, as the sync protocol sends it. */
export interface ScopeDoc {
  collection: string;
  doc: Doc;
}

/**
 * A client snapshot read page by page from one consistent point, `asOf`:
 * every page, `lastSeq` and `rejection` answer as of `asOf` however many
 * commits land between pages. It holds a read transaction (SQLite: it pins
 * the WAL), so the caller must `close` it: when done, when its session goes,
 * on any error. `close` is idempotent; `next` after `close` throws.
 */
export interface SnapshotCursor {
  /** The head LSN the snapshot shows. */
  readonly asOf: number;
  /** The client's last seq as of `asOf` (0 for a new client). */
  readonly lastSeq: number;
  /** The client's stored rejection of `seq` as of `asOf`. */
  rejection(seq: number): WireErrorShape | undefined;
  /**
   * The next documents in (collection, id) order: at most `maxDocs`, and no
   * more than `maxBytes` (`scopeDocBytes`) unless one document alone is larger
   * (it then comes alone). `done` when no document is left after these.
   */
  next(maxDocs: number, maxBytes: number): { docs: ScopeDoc[]; done: boolean };
  close(): void;
}

/** What a document costs a snapshot page: its JSON text plus the collection and framing. */
export const scopeDocBytes = (collection: string, body: string): number =>
  Buffer.byteLength(body) + collection.length + 24;

/**
 * What a log entry costs a catch-up page, about its size on the wire: the
 * document's JSON text (or the rejection's message) plus its keys and framing.
 * Both stores measure with it, so their pages end at the same LSNs.
 */
export function logEntryBytes(e: {
  collection?: string;
  id?: string;
  body?: string | null;
  clientId: string | null;
  error?: WireErrorShape | null;
}): number {
  const text = (e.body ?? '') + (e.error ? e.error.message + e.error.code : '');
  return Buffer.byteLength(text) + (e.collection?.length ?? 0) + (e.id?.length ?? 0) + (e.clientId?.length ?? 0) + 128;
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
  /**
   * Records the outcome of (clientId, seq) of a mutation whose changes were
   * appended with that origin: lastSeq becomes seq.
   */
  recordOutcome(clientId: string, seq: number, rejection: WireErrorShape | null): void;
  /**
   * Records the outcome of a mutation that wrote nothing (a rejection, kept
   * for duplicate answers, or a no-op): lastSeq becomes seq, and the outcome
   * is appended to the log with the next LSN and the current term.
   */
  appendOutcome(clientId: string, seq: number, rejection: WireErrorShape | null, ts: number): OutcomeEntry;
  /**
   * Drops the client's rejections of seqs below `below`: its hello's
   * `pendingFrom` says it settled them. A retry of one then answers
   * `duplicate` with no error, which a client that settled it ignores.
   */
  forgetRejections(clientId: string, below: number): void;
  /** The record of a keyed server write (`SERVER_ORIGIN_PREFIX` origin), if it committed and was not pruned. */
  serverOrigin(origin: string): ServerOriginRecord | undefined;
  /**
   * The user a client id is bound to (by its first hello on a primary), or
   * null when it is not bound yet: a new id, a row from before bindings
   * existed, or one learned only through replication (bindings do not
   * replicate; the next hello binds it).
   */
  clientUser(clientId: string): string | null;
  /** Binds a client id to a user (creating its row with last seq 0 when new). Leaves its last seq alone. */
  bindClient(clientId: string, userId: string): void;
  /** What `userId` holds of `collection` (quotas); zeros for a user who holds nothing there. */
  usage(collection: string, userId: string): Usage;
  /** The user a live document counts against (see `authorOf`); null for a missing, deleted or uncounted one. */
  docAuthor(collection: string, id: string): string | null;
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
 * - The log holds document changes and outcome entries; LSNs are shared and
 *   consecutive across both kinds.
 * - `readChanges(after, limit)` returns the document changes with
 *   `lsn > after` in LSN order, at most `limit`, and only those above the
 *   horizon: callers must check `after >= horizon` first (else a snapshot is
 *   needed).
 * - `readLog(after, limit, maxBytes)` returns entries of both kinds with
 *   `lsn > after`: about `limit` of them, never ending inside a mutation
 *   (when the last entry is a change made by a client, every later change of
 *   the same (clientId, seq) is included), so a reader never sees half a
 *   mutation. Their `logEntryBytes` add up to at most `maxBytes` (default:
 *   no bound): a mutation that would pass it is left for the next page, unless
 *   it is the page's first entry, which then comes whole, over the budget.
 * - `scanScope` returns, at one consistent point, every live document
 *   (of a public collection, owned by the user, or in `scope.allOf`)
 *   (no tombstones) that the scope may read, ordered by (collection, id).
 * - `openSnapshot(scope, clientId)` pages through what `scanScope` would
 *   return at the moment it is opened, with the client's last seq and
 *   rejections of that moment, while commits go on (`SnapshotCursor`).
 * - A change or outcome entry whose origin is a server origin
 *   (`SERVER_ORIGIN_PREFIX`) records that origin's LSN and ts, on the
 *   primary and through `applyReplicated` alike (`serverOrigin`).
 * - Every live document has an author, fixed when it is created (`authorOf`:
 *   its owner, else the user `clientUser` binds its origin to, else null) and
 *   kept by later versions whoever writes them; a delete clears it. `usage`
 *   counts each author's live documents and their bytes per collection, kept
 *   in the same transaction by `append` and `applyReplicated`, and rebuilt
 *   from the documents by `importSnapshot`. Rows exist only for users who
 *   hold something.
 * - `compact(upTo)` drops log entries with `lsn <= upTo` and tombstones with
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
  readLog(after: number, limit: number, maxBytes?: number): LogPage;
  scanScope(scope: Scope): Array<{ collection: string; doc: Doc }>;
  /** A snapshot of `scope` for `clientId`, read page by page from this moment (see `SnapshotCursor`). */
  openSnapshot(scope: Scope, clientId: string): SnapshotCursor;
  /**
   * Live documents matching `q`, sorted (then by id), at most `q.limit`,
   * after `q.after` when given. The caller checks that fields are indexed.
   * Filters and order on `id` use the primary key (no scan).
   */
  query(q: DocQuery): Doc[];
  /** How many live documents match `q`'s collection, owner and filters (its order, limit and `after` are ignored). */
  count(q: Omit<DocQuery, 'limit' | 'orderBy' | 'after'>): number;
  /**
   * The live documents of `collection` with these ids (of `owner` only, when
   * given), in the order of `ids`, each once; ids with no live document are
   * left out. The caller bounds `ids`.
   */
  getMany(collection: string, ids: readonly string[], owner?: string): Doc[];
  /**
   * Forgets keyed server writes that committed before `before` (ms): their
   * records and their `clients` and `rejections` rows, at most `limit` of
   * them per call (so one call never holds the write lock long). Returns how
   * many were forgotten. A key retried after that commits again.
   */
  pruneServerOrigins(before: number, limit: number): number;
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
   * Replica: applies the primary's log entries as they are (LSN, term, ts),
   * in one transaction. Taken together in LSN order they must continue this
   * log: the first LSN is head + 1 and LSNs are consecutive; otherwise
   * nothing is applied and it throws. Each entry's (clientId, seq) raises
   * that client's last seq; an outcome's rejection row is kept (or, for a
   * no-op, dropped) as the primary did, also for a seq at or below the
   * client's last seq here (within the newest `REJECTION_WINDOW` seqs).
   * `bindings` (client id → user) bind client ids as on the primary.
   */
  applyReplicated(
    changes: readonly Change[],
    outcomes?: readonly OutcomeEntry[],
    bindings?: Readonly<Record<string, string>>,
  ): void;
  /**
   * The users these client ids are bound to (see `StoreTx.clientUser`), for
   * those that are bound: what a primary sends with the log entries of those
   * clients, so that its replicas hold the same bindings.
   */
  bindingsOf(clientIds: Iterable<string>): Record<string, string>;
  /**
   * The id of the cluster whose history this store holds: made with a new
   * store, kept in a backup, adopted by a replica from its primary on its
   * first sync. Null for a store from before cluster ids (schema version < 6)
   * that has neither led nor followed since.
   */
  clusterId(): string | null;
  /** Sets the cluster id (a primary making one for an old store, a replica adopting its primary's). */
  setClusterId(clusterId: string): void;
  /** Every live document, the terms, every client's last seq and recent rejections, at one consistent point. */
  exportSnapshot(): ReplicaSnapshot;
  /**
   * Replaces everything (documents, log, clients, rejections, terms) with a
   * snapshot: afterwards head = horizon = `asOf` and the log is empty.
   */
  importSnapshot(snapshot: ReplicaSnapshot): void;
  close(): void;
}

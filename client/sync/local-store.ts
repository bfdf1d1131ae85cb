import type { Doc, JsonValue } from '../../shared/json';
import type { WireError } from '../../shared/protocol/wire-error';

/** A mutation waiting for the primary's answer, with what it last read and wrote locally. */
export interface OutboxEntry {
  seq: number;
  name: string;
  args: JsonValue;
  /** Keys (`collection/id`) its last local run read and wrote; a confirmed change to any of them triggers a rebase. */
  reads: string[];
  writes: string[];
}

/** The confirmed version (null: absent) of a document that pending mutations have overwritten locally. */
export interface ShadowEntry {
  key: string;
  collection: string;
  id: string;
  doc: Doc | null;
}

export interface LocalMeta {
  clientId: string;
  /** Highest LSN applied. */
  checkpoint: number;
  /** Term of the primary whose log the checkpoint belongs to (0 before the first sync). */
  checkpointTerm: number;
  /** The seq the next mutation gets. */
  nextSeq: number;
  /** When the last message from the primary was applied (ms since the epoch). */
  lastSyncedAt: number | null;
}

export interface RejectionRecord {
  seq: number;
  name: string;
  args: JsonValue;
  error: WireError;
  at: number;
}

/**
 * One atomic unit of work on the local replica. Documents here are the
 * visible (optimistic) versions: confirmed data with pending mutations
 * applied on top.
 */
export interface LocalTx {
  getDoc(collection: string, id: string): Promise<Doc | undefined>;
  /**
   * Many documents at once, in the order asked (undefined: absent). The bulk
   * read a mutation's prefetch uses: one call per round, not one per document.
   */
  getDocs(refs: ReadonlyArray<{ collection: string; id: string }>): Promise<Array<Doc | undefined>>;
  putDoc(collection: string, doc: Doc): Promise<void>;
  deleteDoc(collection: string, id: string): Promise<void>;
  /** Removes every document of every collection (a snapshot replaces them). */
  clearDocs(): Promise<void>;
  /**
   * Writes many documents (null deletes), in order: the last write of a key
   * wins. The bulk path for catch-up pages and snapshots.
   */
  applyDocs(writes: ReadonlyArray<{ collection: string; id: string; doc: Doc | null }>): Promise<void>;

  shadow(): Promise<ShadowEntry[]>;
  hasShadow(key: string): Promise<boolean>;
  /** The shadow entries of these keys (absent keys are left out). */
  shadowEntries(keys: readonly string[]): Promise<ShadowEntry[]>;
  deleteShadow(keys: readonly string[]): Promise<void>;
  putShadow(entry: ShadowEntry): Promise<void>;
  /** Many `putShadow`s in one request (a batch of local writes). */
  bulkPutShadow(entries: readonly ShadowEntry[]): Promise<void>;
  /**
   * Puts each entry whose key has no shadow entry yet and keeps the ones
   * that exist (they hold an older confirmed version): a local write batch
   * adds the shadows of what it overwrote without reading which exist.
   */
  addShadows(entries: readonly ShadowEntry[]): Promise<void>;
  /** Which of these keys have a shadow entry (in no promised order). */
  shadowedKeys(keys: readonly string[]): Promise<string[]>;
  clearShadow(): Promise<void>;

  /** In seq order. */
  outbox(): Promise<OutboxEntry[]>;
  /** How many mutations are queued, without reading them. */
  outboxCount(): Promise<number>;
  /** The first `limit` entries with a seq above `seq`, in seq order (a push's batch, the oldest pending). */
  outboxAfter(seq: number, limit: number): Promise<OutboxEntry[]>;
  putOutbox(entry: OutboxEntry): Promise<void>;
  /** Many `putOutbox`es in one request (a batch of local writes). */
  bulkPutOutbox(entries: readonly OutboxEntry[]): Promise<void>;
  deleteOutbox(seqs: readonly number[]): Promise<void>;

  meta(): Promise<LocalMeta>;
  setMeta(meta: LocalMeta): Promise<void>;

  addRejection(record: RejectionRecord): Promise<void>;

  /** Snapshot pages are staged here until the last one arrives. */
  stage(docs: ReadonlyArray<{ collection: string; doc: Doc }>): Promise<void>;
  staged(): Promise<Array<{ collection: string; doc: Doc }>>;
  clearStaging(): Promise<void>;
}

/** The parts of the replica a transaction may touch ('docs': every collection's documents). */
export type LocalTable = 'docs' | 'shadow' | 'outbox' | 'meta' | 'rejections' | 'staging';

/** Which table each `LocalTx` method uses, and whether it writes: what a scoped transaction allows. */
export const TX_METHODS: Readonly<Record<keyof LocalTx, { table: LocalTable; writes: boolean }>> = {
  getDoc: { table: 'docs', writes: false },
  getDocs: { table: 'docs', writes: false },
  putDoc: { table: 'docs', writes: true },
  deleteDoc: { table: 'docs', writes: true },
  clearDocs: { table: 'docs', writes: true },
  applyDocs: { table: 'docs', writes: true },
  shadow: { table: 'shadow', writes: false },
  hasShadow: { table: 'shadow', writes: false },
  shadowEntries: { table: 'shadow', writes: false },
  deleteShadow: { table: 'shadow', writes: true },
  putShadow: { table: 'shadow', writes: true },
  bulkPutShadow: { table: 'shadow', writes: true },
  shadowedKeys: { table: 'shadow', writes: false },
  addShadows: { table: 'shadow', writes: true },
  clearShadow: { table: 'shadow', writes: true },
  outbox: { table: 'outbox', writes: false },
  outboxCount: { table: 'outbox', writes: false },
  outboxAfter: { table: 'outbox', writes: false },
  putOutbox: { table: 'outbox', writes: true },
  bulkPutOutbox: { table: 'outbox', writes: true },
  deleteOutbox: { table: 'outbox', writes: true },
  // meta() of a new store creates the row; stores do that before a read-only transaction needs it.
  meta: { table: 'meta', writes: false },
  setMeta: { table: 'meta', writes: true },
  addRejection: { table: 'rejections', writes: true },
  stage: { table: 'staging', writes: true },
  staged: { table: 'staging', writes: false },
  clearStaging: { table: 'staging', writes: true },
};

/**
 * What a transaction locks. IndexedDB runs read-only transactions on the
 * same tables side by side and read-write ones on disjoint tables side by
 * side, so naming only what is needed lets a local write run beside a read
 * of the outbox, and queries of the app beside both.
 */
export interface TxScope {
  mode: 'r' | 'rw';
  tables: readonly LocalTable[];
}

export const ALL_TABLES: readonly LocalTable[] = ['docs', 'shadow', 'outbox', 'meta', 'rejections', 'staging'];

/** Using a table outside the transaction's scope, or writing in a read-only one: a bug in the caller. */
export class TxScopeError extends Error {
  constructor(method: string, scope: TxScope) {
    super(`${method}() is outside this transaction's scope (${scope.mode}: ${scope.tables.join(', ')})`);
    this.name = 'TxScopeError';
  }
}

/**
 * The client's durable replica.
 *
 * Contract (checked by `runLocalStoreTests` for every implementation):
 * - `transaction` is atomic and isolated: either everything `fn` wrote is
 *   kept or, when `fn` throws, nothing is, and the error propagates.
 *   Transactions do not interleave where their scopes overlap and one of
 *   them writes. `fn` must await only the tx's methods.
 * - `meta()` works in a read-only transaction too, on a new store as well.
 * - `meta()` of a new store returns `{ clientId: <new random id>,
 *   checkpoint: 0, checkpointTerm: 0, nextSeq: 1, lastSyncedAt: null }` and keeps that id.
 * - Data written in a committed transaction survives closing and reopening.
 */
export interface LocalStore {
  /**
   * Runs `fn` in one transaction over `scope` (default: read-write over
   * everything). A method outside the scope, or a write in a read-only one,
   * throws (`TxScopeError` in the memory store; Dexie's own error in IndexedDB).
   */
  transaction<T>(fn: (tx: LocalTx) => Promise<T>, scope?: TxScope): Promise<T>;
  rejections(): Promise<RejectionRecord[]>;
  close(): void;
}

export const docKey = (collection: string, id: string): string => `${collection}/${id}`;

/**
 * A `LocalTx` was asked for a collection this app's schema does not have:
 * the server holds data of a newer (or other) schema than the app. No retry
 * mends that, so the engine stops with a clear error instead of looping.
 */
export class UnknownCollectionError extends Error {
  constructor(readonly collection: string) {
    super(
      `the server sent documents of collection '${collection}', which this app's schema does not have: ` +
        'the app is older than the server (reload or update it), or it points at the wrong server',
    );
    this.name = 'UnknownCollectionError';
  }
}

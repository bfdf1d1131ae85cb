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
  /** Which of these keys have a shadow entry (in no promised order). */
  shadowedKeys(keys: readonly string[]): Promise<string[]>;
  /** Puts many shadow entries; the last entry of a key wins. */
  putShadows(entries: readonly ShadowEntry[]): Promise<void>;
  clearShadow(): Promise<void>;

  /** In seq order. */
  outbox(): Promise<OutboxEntry[]>;
  putOutbox(entry: OutboxEntry): Promise<void>;
  deleteOutbox(seqs: readonly number[]): Promise<void>;

  meta(): Promise<LocalMeta>;
  setMeta(meta: LocalMeta): Promise<void>;

  addRejection(record: RejectionRecord): Promise<void>;

  /** Snapshot pages are staged here until the last one arrives. */
  stage(docs: ReadonlyArray<{ collection: string; doc: Doc }>): Promise<void>;
  staged(): Promise<Array<{ collection: string; doc: Doc }>>;
  clearStaging(): Promise<void>;
}

/**
 * The client's durable replica.
 *
 * Contract (checked by `runLocalStoreTests` for every implementation):
 * - `transaction` is atomic and isolated: either everything `fn` wrote is
 *   kept or, when `fn` throws, nothing is, and the error propagates.
 *   Transactions do not interleave. `fn` must await only the tx's methods.
 * - `meta()` of a new store returns `{ clientId: <new random id>,
 *   checkpoint: 0, checkpointTerm: 0, nextSeq: 1, lastSyncedAt: null }` and keeps that id.
 * - Data written in a committed transaction survives closing and reopening.
 */
export interface LocalStore {
  transaction<T>(fn: (tx: LocalTx) => Promise<T>): Promise<T>;
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

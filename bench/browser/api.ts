/**
 * What the bench page exposes as `window.bench`, called by bench/browser/run.ts
 * with `page.evaluate`. Every time is `performance.timeOrigin +
 * performance.now()` in the page that took it (milliseconds since the epoch,
 * sub-millisecond resolution), so times taken in two pages of one machine
 * compare directly.
 */
export interface OpenArgs {
  server: string;
  token: string;
  dbName: string;
  /** Wait until the replica is live with an empty outbox before resolving. */
  waitSynced: boolean;
}

/** A run of puts issued as `batches` batches of `size`, each batch's puts issued together in one task. */
export interface BatchRun {
  startedAt: number;
  endedAt: number;
  /** The duration of each batch, from its first `put` to the last one resolving. */
  batchMs: number[];
}

export interface BenchApi {
  /** Opens the Tideline replica; resolves with the time it took. */
  open(args: OpenArgs): Promise<number>;
  /**
   * Opens a fresh replica and resolves once `count` documents are in its
   * `docs` table: the time from calling `open()` to the end of the IndexedDB
   * transaction that stored the last of them.
   */
  initialSync(args: OpenArgs & { count: number; timeoutMs: number }): Promise<number>;
  /** `count` sequential `mutate.put`s, each awaited: the duration of each. */
  singlePuts(prefix: string, count: number): Promise<number[]>;
  /** Documents `<prefix>-<from>` onwards, as `batches` batches of `size` puts. */
  putBatches(prefix: string, from: number, batches: number, size: number): Promise<BatchRun>;
  /** One `mutate.put`: when it was issued. */
  putOne(prefix: string, i: number): Promise<number>;
  /**
   * Resolves when documents `<prefix>-<from>` .. `<prefix>-<from + count - 1>`
   * have all been stored by a committed transaction of this replica, with the
   * time the last of those transactions completed.
   */
  persisted(prefix: string, from: number, count: number, timeoutMs: number): Promise<number>;
  /** Raw Dexie `bulkPut` of the same documents into a fresh database with the same indexes, as batches: docs/s. */
  floor(batches: number, size: number): Promise<number>;
  goOffline(): void;
  goOnline(): number;
  /** The connection state and outbox size, as the client reports them. */
  status(): { state: string; pending: number };
  close(): void;
}

declare global {
  interface Window {
    bench: BenchApi;
  }
}

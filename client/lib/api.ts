import type { Dexie } from 'dexie';
import type { Observable, Table } from 'dexie';
import type { Clock } from '../../shared/clock';
import type { MutatorArgs } from '../../shared/mutators/types';
import type { AppSchema, CollectionName, DocOf } from '../../shared/schema/define-schema';
import type { EngineEvent, MutationState, SyncEngine, SyncStatus } from '../sync/engine';
import type { RejectionRecord } from '../sync/local-store';
import type { TransportFactory } from '../sync/transport';

/** Where a token comes from: called at open (when no `token` is given) and when the server says it expired. */
export type GetToken = () => string | Promise<string>;

/** A token, a way to get one, or both (the token first, `getToken` for fresh ones). */
export type AuthOptions = { token: string; getToken?: GetToken } | { token?: undefined; getToken: GetToken };

export type OpenOptions = AuthOptions & {
  /** Server base URLs, primary first; the client moves to the next on failure or NOT_PRIMARY. */
  servers: string[];
  /** IndexedDB name; defaults to `<app name>-<user id>` so users never share a replica. */
  dbName?: string;
  /**
   * Start syncing at once (default true). In a browser with Web Locks, only
   * the tab holding the lock for this database syncs (client/lib/leader.ts).
   */
  sync?: boolean;
  clock?: Clock;
  connect?: TransportFactory;
  requestTimeoutMs?: number;
};

/** A typed view of one collection of the local replica. */
export interface Collection<D> {
  get(id: string): Promise<D | undefined>;
  /** The Dexie table, for indexed queries: `where('price').between(10, 20)`. */
  readonly table: Table<D, string>;
}

/** What `db.mutate.<name>(args)` resolves to, once the mutation is applied locally and queued. */
export interface MutationHandle {
  /** The mutation's number in this replica's outbox; `db.mutationState(seq)` tells where it stands. */
  seq: number;
  /**
   * Resolves when the primary has applied it; rejects with a `TidelineError`
   * carrying the primary's code and message when it was rejected, with the
   * engine's error when syncing has failed (the mutation stays queued), or a
   * `TidelineClientError` (TIMEOUT, CLOSED). Default timeout: none.
   */
  // Function properties, not methods: `const { confirmed } = await db.mutate.x(args)` is fine.
  confirmed: (options?: { timeoutMs?: number }) => Promise<void>;
  /** Resolves with the final state, confirmed or rejected; rejects as `confirmed` does otherwise. */
  settled: (options?: { timeoutMs?: number }) => Promise<MutationState>;
}

/** The fields of `D` whose values are numbers (any field of an untyped document). */
export type NumericField<D> = string extends keyof D
  ? string
  : { [K in keyof D]-?: D[K] extends number ? K : never }[keyof D] & string;

/** The built-in mutators, typed by the collection they write. */
export interface BuiltinMutate<S extends AppSchema> {
  /** Replaces a whole document (creates it if absent). */
  put<C extends CollectionName<S>>(args: { collection: C; doc: DocOf<S, C> }): Promise<MutationHandle>;
  /** Sets and removes fields; concurrent patches of different fields both survive. */
  patch<C extends CollectionName<S>>(args: {
    collection: C;
    id: string;
    set?: Partial<Omit<DocOf<S, C>, 'id' | 'owner'>>;
    unset?: Array<Exclude<keyof DocOf<S, C>, 'id' | 'owner'> & string>;
  }): Promise<MutationHandle>;
  delete<C extends CollectionName<S>>(args: { collection: C; id: string }): Promise<MutationHandle>;
  /** Adds to a numeric field; concurrent increments all count. */
  inc<C extends CollectionName<S>>(args: {
    collection: C;
    id: string;
    field: NumericField<DocOf<S, C>>;
    by: number;
  }): Promise<MutationHandle>;
}

/** The app's mutators, each taking the input type of its `args` schema. */
export type AppMutate<S extends AppSchema> = {
  [K in keyof S['mutators'] & string]: (args: MutatorArgs<S['mutators'][K]>) => Promise<MutationHandle>;
};

export type Mutate<S extends AppSchema> = BuiltinMutate<S> & Omit<AppMutate<S>, keyof BuiltinMutate<S>>;

export interface Tideline<S extends AppSchema> {
  readonly schema: S;
  readonly db: Dexie;
  readonly engine: SyncEngine;
  readonly userId: string;
  collection<C extends CollectionName<S>>(name: C): Collection<DocOf<S, C>>;
  mutate: Mutate<S>;
  /** A Dexie live query: re-runs `fn` whenever the tables it read change, in this tab or another. */
  liveQuery<T>(fn: () => Promise<T>): Observable<T>;
  /** The sync status; in a tab that does not hold the connection, that of the tab that does. */
  status(): SyncStatus;
  /** Whether this tab runs the sync engine: with Web Locks only one tab per database does; without them, always (when syncing). */
  isLeader(): boolean;
  /** Calls back on every status change, rejection and applied message (another tab's, when it holds the connection); returns an unsubscribe function. */
  on(listener: (e: EngineEvent) => void): () => void;
  /** Every rejection this replica has recorded, oldest first. */
  rejections(): Promise<RejectionRecord[]>;
  /** Where mutation `seq` stands: pending, confirmed, rejected (code, message), or unknown. */
  mutationState(seq: number): Promise<MutationState>;
  /**
   * Resolves when the outbox is empty and the connection is live (caught up
   * to the server's head). Rejects with the engine's error if it has failed,
   * with TIMEOUT after `timeoutMs` (default 30 s; Infinity waits for ever),
   * or CLOSED if the database closes first.
   */
  whenSynced(options?: { timeoutMs?: number }): Promise<void>;
  /** Drops the server connection and stays offline (mutations queue locally) until `goOnline()`. */
  goOffline(): void;
  goOnline(): void;
  /** Connects at once when waiting to retry (backoff) or after a failure; otherwise does nothing. */
  reconnectNow(): void;
  close(): void;
}

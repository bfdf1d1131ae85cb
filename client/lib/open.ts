import { liveQuery } from 'dexie';
import type Dexie from 'dexie';
import type { Observable, Table } from 'dexie';
import { systemClock } from '../../shared/clock';
import type { Clock } from '../../shared/clock';
import type { Doc, JsonValue } from '../../shared/json';
import type { AppSchema } from '../../shared/schema/define-schema';
import { DexieLocalStore, openDexie } from '../store/dexie-local-store';
import { SyncEngine } from '../sync/engine';
import type { EngineEvent, SyncStatus } from '../sync/engine';
import type { RejectionRecord } from '../sync/local-store';
import { socketTransport } from '../sync/socket-transport';
import type { TransportFactory } from '../sync/transport';
import { browserLocks, shareSyncAcrossTabs } from './leader';
import type { SharedSync } from './leader';
import { tokenClaims } from './token-claims';

export interface OpenOptions {
  /** Server base URLs, primary first; the client moves to the next on failure or NOT_PRIMARY. */
  servers: string[];
  token: string;
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
}

/** A typed view of one collection of the local replica. */
export interface Collection {
  get(id: string): Promise<Doc | undefined>;
  /** The Dexie table, for indexed queries: `where('price').between(10, 20)`. */
  readonly table: Table<Doc, string>;
}

type BuiltinArgs = {
  put: { collection: string; doc: Doc };
  patch: { collection: string; id: string; set?: Record<string, JsonValue>; unset?: string[] };
  delete: { collection: string; id: string };
  inc: { collection: string; id: string; field: string; by: number };
};

export type Mutate<S extends AppSchema> = {
  [K in keyof BuiltinArgs]: (args: BuiltinArgs[K]) => Promise<{ seq: number }>;
} & {
  [K in keyof S['mutators']]: (args: JsonValue) => Promise<{ seq: number }>;
};

export interface Tideline<S extends AppSchema> {
  readonly schema: S;
  readonly db: Dexie;
  readonly engine: SyncEngine;
  readonly userId: string;
  collection(name: keyof S['collections'] & string): Collection;
  mutate: Mutate<S>;
  /** A Dexie live query: re-runs `fn` whenever the tables it read change, in this tab or another. */
  liveQuery<T>(fn: () => Promise<T>): Observable<T>;
  /** The sync status; in a tab that does not hold the connection, that of the tab that does. */
  status(): SyncStatus;
  /** Whether this tab runs the sync engine: with Web Locks only one tab per database does; without them, always (when syncing). */
  isLeader(): boolean;
  /** Calls back on every status change and rejection (another tab's, when it holds the connection); returns an unsubscribe function. */
  on(listener: (e: EngineEvent) => void): () => void;
  rejections(): Promise<RejectionRecord[]>;
  close(): void;
}

function randomId(): string {
  return crypto.randomUUID().replace(/-/g, '');
}

/** Opens a Tideline database: a Dexie replica of the user's scope, kept in sync with the servers. */
export async function open<S extends AppSchema>(schema: S, options: OpenOptions): Promise<Tideline<S>> {
  const user = tokenClaims(options.token);
  const dbName = options.dbName ?? `${schema.name}-${user.userId}`;
  const db = openDexie(schema, dbName);
  await db.open();
  const local = new DexieLocalStore(db, schema, randomId);
  const engine = new SyncEngine({
    schema,
    local,
    servers: options.servers,
    connect: options.connect ?? socketTransport,
    token: options.token,
    user,
    clock: options.clock ?? systemClock,
    random: Math.random,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
  });
  const mutate = new Proxy(
    {},
    {
      get: (_target, name) => (typeof name === 'string' ? (args: JsonValue) => engine.mutate(name, args) : undefined),
    },
  ) as Mutate<S>;
  const sync = options.sync ?? true;
  const locks = sync ? browserLocks() : null;
  let shared: SharedSync | null = null;
  if (locks) shared = await shareSyncAcrossTabs({ locks, dbName, db, engine });
  else if (sync) await engine.start();
  return {
    schema,
    db,
    engine,
    userId: user.userId,
    collection(name) {
      const table = db.table<Doc, string>(name);
      return { table, get: (id) => table.get(id) };
    },
    mutate,
    liveQuery: (fn) => liveQuery(fn),
    status: () => shared?.status() ?? engine.status(),
    isLeader: () => shared?.isLeader() ?? sync,
    on: (listener) => shared?.on(listener) ?? engine.on(listener),
    rejections: () => local.rejections(),
    close() {
      shared?.close();
      engine.stop();
      db.close();
    },
  };
}

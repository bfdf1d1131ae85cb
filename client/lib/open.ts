import { liveQuery } from 'dexie';
import { systemClock } from '../../shared/clock';
import { TidelineError } from '../../shared/errors';
import type { Doc, JsonValue } from '../../shared/json';
import type { AppSchema, CollectionName, DocOf } from '../../shared/schema/define-schema';
import { DexieLocalStore, openDexie } from '../store/dexie-local-store';
import { SyncEngine } from '../sync/engine';
import type { MutationState } from '../sync/engine';
import { socketTransport } from '../sync/socket-transport';
import type { Collection, GetToken, MutationHandle, Mutate, OpenOptions, Tideline } from './api';
import { browserLocks, shareSyncAcrossTabs } from './leader';
import type { ConnectionControl, SharedSync } from './leader';
import { tokenClaims } from './token-claims';
import { waitForEvent } from './wait-for-event';
import type { EventSource } from './wait-for-event';

export type * from './api';

const DEFAULT_SYNC_TIMEOUT_MS = 30_000;

function randomId(): string {
  return crypto.randomUUID().replace(/-/g, '');
}

/** Asks `getToken` for a token and checks it names the same user: a replica never changes hands. */
async function freshToken(getToken: GetToken, userId: string | null): Promise<string> {
  const token = await getToken();
  const claims = tokenClaims(token);
  if (userId !== null && claims.userId !== userId) {
    throw new TidelineError('UNAUTHORIZED', `getToken returned a token for '${claims.userId}', not '${userId}'`);
  }
  return token;
}

/** Opens a Tideline database: a Dexie replica of the user's scope, kept in sync with the servers. */
export async function open<S extends AppSchema>(schema: S, options: OpenOptions): Promise<Tideline<S>> {
  const { getToken } = options;
  const token = options.token ?? (await freshToken(options.getToken, null));
  const user = tokenClaims(token);
  const dbName = options.dbName ?? `${schema.name}-${user.userId}`;
  const clock = options.clock ?? systemClock;
  const db = openDexie(schema, dbName);
  await db.open();
  const local = new DexieLocalStore(db, schema, randomId);
  const engine = new SyncEngine({
    schema,
    local,
    servers: options.servers,
    connect: options.connect ?? socketTransport,
    token,
    ...(getToken === undefined ? {} : { refreshToken: () => freshToken(getToken, user.userId) }),
    user,
    clock,
    random: Math.random,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
  });
  const sync = options.sync ?? true;
  const locks = sync ? browserLocks() : null;
  let shared: SharedSync | null = null;
  if (locks) shared = await shareSyncAcrossTabs({ locks, dbName, engine });
  else if (sync) await engine.start();

  function collection<C extends CollectionName<S>>(name: C): Collection<DocOf<S, C>> {
    const table = db.table<DocOf<S, C>, string>(name);
    return { table, get: (id) => table.get(id) };
  }

  const closeListeners = new Set<() => void>();
  const events: EventSource = {
    on: (listener) => shared?.on(listener) ?? engine.on(listener),
    status: () => shared?.status() ?? engine.status(),
    onClose: (listener) => {
      closeListeners.add(listener);
      return () => closeListeners.delete(listener);
    },
  };
  const control = (c: ConnectionControl): void => {
    if (shared) shared.control(c);
    else engine[c]();
  };

  /** A wait ends with the engine's error once it has stopped for good (state `failed`). */
  const throwIfFailed = (): void => {
    const s = events.status();
    if (s.state === 'failed' && s.lastError) throw new TidelineError(s.lastError.code, s.lastError.message);
  };

  /** Waits until `seq` is confirmed or rejected (a pending one re-checks after each applied message). */
  const settled = (seq: number, timeoutMs = Infinity): Promise<MutationState> =>
    waitForEvent(
      events,
      clock,
      timeoutMs,
      `mutation ${seq} to settle`,
      async () => {
        const state = await engine.mutationState(seq);
        if (state.status !== 'pending') return state;
        // It stays queued, but nothing will settle it until the app acts (a new token, a new app version).
        throwIfFailed();
        return undefined;
      },
      // A mutation settles only when the server's answer is applied; a failure shows in the status.
      (e) => e.type === 'applied' || (e.type === 'status' && e.status.state === 'failed'),
    );

  const handle = (seq: number): MutationHandle => ({
    seq,
    settled: (opts) => settled(seq, opts?.timeoutMs),
    confirmed: async (opts) => {
      const state = await settled(seq, opts?.timeoutMs);
      if (state.status === 'rejected') throw new TidelineError(state.code, state.message);
      if (state.status === 'unknown') throw new TidelineError('NOT_FOUND', `no mutation ${seq} in this replica`);
    },
  });

  // The one place the typed API meets the engine's untyped one: `Mutate<S>` only narrows what callers pass.
  const mutate = new Proxy(
    {},
    {
      get: (_target, name) =>
        typeof name === 'string'
          ? async (args: JsonValue) => {
              const { seq } = await engine.mutate(name, args);
              // In a tab without the connection: the tab holding it pushes what this one queued.
              shared?.queued(seq);
              return handle(seq);
            }
          : undefined,
    },
  ) as Mutate<S>;

  return {
    schema,
    db,
    engine,
    userId: user.userId,
    collection,
    mutate,
    liveQuery: (fn) => liveQuery(fn),
    status: events.status,
    isLeader: () => shared?.isLeader() ?? sync,
    on: events.on,
    rejections: () => local.rejections(),
    mutationState: (seq) => engine.mutationState(seq),
    whenSynced: (opts) =>
      waitForEvent(events, clock, opts?.timeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS, 'the replica to sync', () => {
        throwIfFailed();
        const s = events.status();
        return s.state === 'live' && s.pending === 0 ? true : undefined;
      }).then(() => undefined),
    goOffline: () => control('goOffline'),
    goOnline: () => control('goOnline'),
    reconnectNow: () => control('reconnectNow'),
    close() {
      shared?.close();
      engine.stop();
      db.close();
      for (const l of [...closeListeners]) l();
    },
  };
}

export type { Doc };

import type { EngineEvent, SyncEngine, SyncStatus } from '../sync/engine';

/**
 * One tab per replica holds the server connection.
 *
 * Tabs of one browser profile share one IndexedDB replica, and with it one
 * client id; the server keeps one connection per client id and closes the
 * older one, so two tabs syncing at once would keep knocking each other off.
 * The tab holding the Web Lock `tideline:<dbName>` is the leader: it runs the
 * sync engine until it closes, and then the browser hands the lock to the
 * next tab waiting for it, which starts its own engine. Nothing is lost in
 * the handover: the outbox is in IndexedDB.
 *
 * Every tab mutates locally (the outbox is shared). A follower that queued
 * mutations says so on `BroadcastChannel('tideline:<dbName>')` with the
 * highest seq it wrote; the leader pushes them, reading the store only for a
 * seq its engine has not seen. Nothing is lost if that message is: the
 * leader's engine reads what is unsent at every connection and push, and the
 * leader compares the replica's next seq with its own every `recheckMs`.
 * (It used to watch the outbox with a live query, which re-read every key of
 * the outbox after each write.) The leader broadcasts its engine's events on
 * the same channel; followers show its status and rejections as their own.
 *
 *                 lock free                    leader tab closes (or close())
 *   open() ───────────────────▶ leader ◀──────────────────────── follower
 *      │                                                            ▲
 *      └────────────────────────── lock held elsewhere ─────────────┘
 */

/**
 * The page's Web Locks, or null outside a browser page (Node, whose newer
 * versions have `navigator.locks` too: there each client has its own replica
 * and syncs by itself). Insecure origins (plain http other than localhost or
 * 127.0.0.1) have no Web Locks either, and then every tab syncs: serve the
 * app over https.
 */
export function browserLocks(): LockManager | null {
  if (typeof window === 'undefined' || typeof navigator === 'undefined' || typeof BroadcastChannel === 'undefined') {
    return null;
  }
  return (navigator as Partial<Navigator>).locks ?? null;
}

export interface Leadership {
  /** Whether this tab holds the lock now. */
  isLeader(): boolean;
  /**
   * Resolves when this tab takes the lock: at once if it holds it already;
   * never if released first. Rejects if the browser refuses the request.
   */
  readonly elected: Promise<void>;
  /** Lets the lock go, or stops waiting for it. */
  release(): void;
}

/**
 * Asks for the lock `name` and holds it until `release()` or the tab closes.
 * Resolves once it knows whether the lock was free, so the caller knows its
 * role at once; a tab that did not get it queues for it.
 */
export async function claimLeadership(locks: LockManager, name: string): Promise<Leadership> {
  let leader = false;
  let released = false;
  let letGo = (): void => {};
  const held = new Promise<void>((resolve) => (letGo = resolve));
  let markElected = (): void => {};
  let markFailed = (_err: unknown): void => {};
  const elected = new Promise<void>((resolve, reject) => {
    markElected = resolve;
    markFailed = reject;
  });
  const abort = new AbortController();

  // The lock is held for as long as the callback's promise is pending.
  const hold = (): Promise<void> => {
    if (released) return Promise.resolve();
    leader = true;
    markElected();
    return held;
  };
  // release() aborts the wait; any other failure means this tab can never take over.
  const waitFailed = (err: unknown): void => {
    if (!(err instanceof DOMException && err.name === 'AbortError')) markFailed(err);
  };

  const free = await new Promise<boolean>((resolve, reject) => {
    locks
      .request(name, { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        return lock === null ? undefined : hold();
      })
      .catch(reject);
  });
  if (!free) {
    locks.request(name, { signal: abort.signal }, hold).catch(waitFailed);
  }

  return {
    isLeader: () => leader,
    elected,
    release() {
      if (released) return;
      released = true;
      leader = false;
      abort.abort();
      letGo();
    },
  };
}

/** The public connection controls (`db.goOffline()` and the others), run by whichever tab holds the connection. */
export type ConnectionControl = 'goOffline' | 'goOnline' | 'reconnectNow';

const CONTROLS: ReadonlySet<unknown> = new Set(['goOffline', 'goOnline', 'reconnectNow']);

/**
 * What the leader broadcasts (its engine's events), a new follower's request
 * for the current status, a follower's connection control for the leader,
 * and a follower's news that it queued mutations up to `seq`.
 */
type TabMessage =
  EngineEvent | { type: 'ask' } | { type: 'control'; control: ConnectionControl } | { type: 'queued'; seq: number };

const MESSAGE_TYPES: ReadonlySet<unknown> = new Set(['status', 'rejected', 'applied', 'ask', 'control', 'queued']);

/** Same-origin tabs of this app are the only senders; this guards against another version of it. */
function isTabMessage(data: unknown): data is TabMessage {
  return typeof data === 'object' && data !== null && 'type' in data && MESSAGE_TYPES.has(data.type);
}

/** The sync engine as every tab sees it: the leader's own, or the leader's as broadcast to a follower. */
export interface SharedSync {
  /** Whether this tab runs the engine (holds the connection). */
  isLeader(): boolean;
  status(): SyncStatus;
  /** Engine events: the leader's own; in a follower, the leader's as they arrive. */
  on(listener: (e: EngineEvent) => void): () => void;
  /** Runs a connection control on the engine of the tab holding the connection (this one or another). */
  control(control: ConnectionControl): void;
  /** This tab queued mutations up to `seq`: the tab holding the connection pushes them. */
  queued(seq: number): void;
  /** Stops the engine if this tab leads, and lets another tab take over. */
  close(): void;
}

/** What the tabs need of the sync engine (tests pass a double). */
export type TabEngine = Pick<SyncEngine, 'on' | 'status' | 'start' | 'stop' | 'outboxChanged' | ConnectionControl>;

/** What the tabs use of `BroadcastChannel` (tests pass an in-process double). */
export interface TabChannel {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((msg: MessageEvent<unknown>) => void) | null;
}

export interface ShareOptions {
  locks: LockManager;
  /** The IndexedDB database name; the lock and the channel are named after it. */
  dbName: string;
  engine: TabEngine;
  /** Opens the channel to the other tabs: a `BroadcastChannel` unless given. */
  openChannel?: (name: string) => TabChannel;
  /**
   * How often the leader checks the replica for mutations another tab queued
   * without its message arriving (one read of the meta row). Default 2 s.
   */
  recheckMs?: number;
}

export const DEFAULT_RECHECK_MS = 2_000;

const broadcastChannel = (name: string): TabChannel => new BroadcastChannel(name);

/**
 * Runs `engine` in whichever tab holds the lock for `dbName`. Resolves when
 * this tab's role is known; a leader has started its engine by then.
 */
export async function shareSyncAcrossTabs({
  locks,
  dbName,
  engine,
  openChannel = broadcastChannel,
  recheckMs = DEFAULT_RECHECK_MS,
}: ShareOptions): Promise<SharedSync> {
  const name = `tideline:${dbName}`;
  const listeners = new Set<(e: EngineEvent) => void>();
  const emit = (e: EngineEvent): void => {
    for (const l of listeners) l(e);
  };
  let leaderStatus: SyncStatus | null = null;
  let takeoverFailed: SyncStatus | null = null;
  let recheck: ReturnType<typeof setInterval> | null = null;
  /** The highest seq this follower queued that it has not told the leader yet (0: none). */
  let unannounced = 0;
  let closed = false;

  const leadership = await claimLeadership(locks, name);
  // Opened once the lock request is in, so a refused request (a sandboxed frame) leaves no channel open.
  const channel = openChannel(name);

  const stopEngineEvents = engine.on((e) => {
    if (!leadership.isLeader()) return;
    emit(e);
    channel.postMessage(e);
  });
  channel.onmessage = (msg: MessageEvent<unknown>) => {
    const data = msg.data;
    if (!isTabMessage(data)) return;
    if (leadership.isLeader()) {
      if (data.type === 'ask') channel.postMessage({ type: 'status', status: engine.status() });
      if (data.type === 'control' && CONTROLS.has(data.control)) engine[data.control]();
      if (data.type === 'queued' && Number.isSafeInteger(data.seq)) {
        // This fails only when the database is closing; the next check or connection pushes the entry anyway.
        engine.outboxChanged(data.seq).catch(() => undefined);
      }
      return;
    }
    if (data.type === 'ask' || data.type === 'control' || data.type === 'queued') return;
    if (data.type === 'status') {
      leaderStatus = data.status;
      takeoverFailed = null;
    }
    emit(data);
  };

  const lead = async (): Promise<void> => {
    if (closed) return;
    // A follower's message may be lost (sent as this tab took over, say): compare the next seq now and then.
    recheck = setInterval(() => {
      engine.outboxChanged().catch(() => undefined);
    }, recheckMs);
    emit({ type: 'status', status: engine.status() });
    await engine.start();
    // close() may have come while start() read the replica.
    if (closed) engine.stop();
  };

  /** Stops syncing here and lets another tab take the lock; followers keep the last status they saw until it speaks. */
  const stepDown = (): void => {
    stopEngineEvents();
    if (recheck !== null) clearInterval(recheck);
    recheck = null;
    engine.stop();
    leadership.release();
  };

  if (leadership.isLeader()) {
    try {
      await lead();
    } catch (err) {
      // open() fails: let another tab lead.
      stepDown();
      channel.close();
      throw err;
    }
  } else {
    channel.postMessage({ type: 'ask' });
    leadership.elected.then(lead).catch((err: unknown) => {
      // Taking over failed (the replica could not be read): let another tab try, and say so in the status bar.
      stepDown();
      const message = err instanceof Error ? err.message : String(err);
      const status: SyncStatus = {
        ...engine.status(),
        state: 'failed',
        lastError: { code: 'INTERNAL', message: `could not take over syncing: ${message}`, retryable: true },
      };
      takeoverFailed = status;
      emit({ type: 'status', status });
    });
  }

  return {
    isLeader: () => leadership.isLeader(),
    status: () => takeoverFailed ?? (leadership.isLeader() ? engine.status() : (leaderStatus ?? engine.status())),
    on(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    control(control) {
      if (leadership.isLeader()) engine[control]();
      else channel.postMessage({ type: 'control', control });
    },
    queued(seq) {
      // The leader's own engine kicked its push already.
      if (closed || leadership.isLeader()) return;
      // One message for the mutations of one batch: they settle in the same run of microtasks.
      if (unannounced === 0) {
        queueMicrotask(() => {
          const upTo = unannounced;
          unannounced = 0;
          if (!closed) channel.postMessage({ type: 'queued', seq: upTo });
        });
      }
      unannounced = Math.max(unannounced, seq);
    },
    close() {
      if (closed) return;
      closed = true;
      stepDown();
      channel.close();
    },
  };
}

import type { Clock } from '../../shared/clock';
import { TidelineError } from '../../shared/errors';
import type { JsonValue } from '../../shared/json';
import { jsonByteLength } from '../../shared/json';
import type { Change } from '../../shared/protocol/change';
import { changesSchema, snapshotSchema } from '../../shared/protocol/changes';
import type { PageAck, Rejected } from '../../shared/protocol/changes';
import { helloAckSchema } from '../../shared/protocol/hello';
import { DEFAULT_LIMITS } from '../../shared/protocol/limits';
import type { Limits } from '../../shared/protocol/limits';
import { pushAckSchema } from '../../shared/protocol/push';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { wireErrorSchema } from '../../shared/protocol/wire-error';
import type { WireError } from '../../shared/protocol/wire-error';
import type { AppSchema } from '../../shared/schema/define-schema';
import { applyLocal } from './apply-local';
import type { LocalRunDeps } from './apply-local';
import type { RunOutcome } from '../../shared/mutators/run-mutation';
import { backoffDelay } from './backoff';
import { BatchTx, builtinTarget } from './batch-tx';
import { integrateConfirmed, swapInSnapshot } from './integrate';
import type { Integrated } from './integrate';
import { UnknownCollectionError } from './local-store';
import type { LocalStore, LocalTx, OutboxEntry, RejectionRecord, TxScope } from './local-store';
import { PendingCount } from './pending-count';
import type { Transport, TransportFactory } from './transport';

/**
 * The client's sync engine. It takes its transport, store and clock as
 * inputs and imports neither socket.io nor Dexie.
 *
 *              start()
 *   stopped ───────────▶ connecting ──connected──▶ handshaking ──hello ok──▶ syncing
 *      ▲                    ▲                          │                      │ caught up
 *      │ stop()             │ timer, reconnectNow()    │ hello refused        ▼
 *      │                 backoff ◀──── disconnect, timeout, gap ──────────── live
 *      │                                               │
 *      └──── failed ◀── UNAUTHORIZED / PROTOCOL_MISMATCH (needs a new token or app)
 *
 *   goOffline(): any state ──▶ offline ──goOnline()──▶ connecting
 *
 * UNAUTHORIZED (at hello, on a push, or the server closing the session with
 * `fatal` UNAUTHORIZED when the token expires) first asks `refreshToken` once
 * for a fresh token and connects again at once; only if that token is refused
 * too does the engine fail. A successful hello re-arms the refresh.
 *
 * Every message from the server is handled in arrival order on one chain;
 * messages from an older connection (an older `generation`) are ignored.
 */
export type ConnectionState =
  'stopped' | 'offline' | 'connecting' | 'handshaking' | 'syncing' | 'live' | 'backoff' | 'failed';

export interface SyncStatus {
  state: ConnectionState;
  /** Live or catching up: the primary is reachable. */
  online: boolean;
  /** Mutations waiting for the primary's answer. */
  pending: number;
  lastSyncedLsn: number;
  lastSyncedAt: number | null;
  /** Why the last connection failed, if it did. */
  lastError: WireError | null;
  server: string | null;
}

export interface SyncEngineOptions {
  schema: AppSchema;
  local: LocalStore;
  servers: readonly string[];
  connect: TransportFactory;
  token: string;
  /** Asked for a fresh token once when the server refuses the current one or ends the session for it. */
  refreshToken?: () => Promise<string>;
  user: { userId: string; roles: readonly string[] };
  clock: Clock;
  /** In [0, 1); the simulation passes a seeded one. */
  random: () => number;
  limits?: Limits;
  requestTimeoutMs?: number;
  backoff?: { baseMs: number; maxMs: number };
}

/**
 * What the server's messages changed locally. `changed` maps each collection
 * to the ids of its documents that may have changed (a superset: a rebase
 * lists what it re-ran). After a snapshot (`snapshot: true`) documents not
 * listed may have been deleted: re-read whole collections.
 */
export interface AppliedEvent {
  type: 'applied';
  checkpoint: number;
  changed: Record<string, string[]>;
  snapshot: boolean;
}

export type EngineEvent =
  { type: 'status'; status: SyncStatus } | { type: 'rejected'; rejection: RejectionRecord } | AppliedEvent;

/**
 * Where one mutation stands, read from the local replica (so every tab sees
 * the same): `pending` while it is in the outbox; `rejected` with the
 * primary's code and message while its rejection record is kept (the local
 * store keeps them); `confirmed` once the primary applied it; `unknown` for a
 * seq this replica never issued.
 */
export type MutationState =
  | { status: 'pending' }
  | { status: 'confirmed' }
  | { status: 'rejected'; code: WireError['code']; message: string }
  | { status: 'unknown' };

const byCollection = (keys: readonly string[]): Record<string, string[]> => {
  const out: Record<string, string[]> = {};
  for (const key of keys) {
    // Collection names never hold a '/', ids may.
    const slash = key.indexOf('/');
    (out[key.slice(0, slash)] ??= []).push(key.slice(slash + 1));
  }
  return out;
};

interface InboxItem {
  gen: number;
  kind: 'changes' | 'snapshot';
  raw: unknown;
  ack: ((res: PageAck) => void) | undefined;
}

const STATE_DEPENDENT = new Set(['REJECTED', 'NOT_FOUND']);

/** What each kind of local transaction locks (see TxScope): reads never lock for writing. */
const SCOPES = {
  /** A batch of local mutations. */
  write: { mode: 'rw', tables: ['docs', 'shadow', 'outbox', 'meta'] },
  /** Confirmed changes from the primary (a rebase may re-run pending mutations, rejections are recorded). */
  integrate: { mode: 'rw', tables: ['docs', 'shadow', 'outbox', 'meta', 'rejections'] },
  handshake: { mode: 'rw', tables: ['staging', 'outbox', 'meta'] },
  counts: { mode: 'r', tables: ['outbox', 'meta'] },
  meta: { mode: 'r', tables: ['meta'] },
  push: { mode: 'r', tables: ['outbox'] },
} as const satisfies Record<string, TxScope>;

/**
 * Mutations written in one local transaction at most; more waiting go in the
 * next. It bounds the work a store failure throws away, not what callers may
 * issue (nothing is refused for it).
 */
export const MAX_LOCAL_BATCH = 1_000;

/**
 * A mutation whose local run throws (a store failure while it ran) is dropped
 * from its batch and the rest retried without it; after this many in one
 * batch the store is taken to be failing and the rest of the batch fails too.
 */
const MAX_BATCH_RETRIES = 3;

interface QueuedMutation {
  name: string;
  args: JsonValue;
  resolve: (r: { seq: number }) => void;
  reject: (err: unknown) => void;
}

/** What became of one mutation of a batch: stored with its seq, or refused. */
type BatchResult =
  { item: QueuedMutation; seq: number; entry: OutboxEntry } | { item: QueuedMutation; error: TidelineError };

/**
 * Most stored entries kept in memory for the next pushes (see
 * `SyncEngine.written`); past it they are dropped and pushes read the
 * outbox, as they do for what other tabs queued.
 */
const MAX_WRITTEN_IN_MEMORY = 2_000;

/** Thrown inside a batch's transaction to abort it and name the mutation whose run failed. */
class MutationRunFailed extends Error {
  constructor(
    readonly item: QueuedMutation,
    readonly failure: unknown,
  ) {
    super('a mutation of the batch failed');
  }
}

export class SyncEngine {
  private state: ConnectionState = 'stopped';
  private generation = 0;
  private transport: Transport | null = null;
  private serverIndex = 0;
  private attempt = 0;
  private timer: unknown = null;
  private chain: Promise<void> = Promise.resolve();
  private pushing = false;
  private pushAgain = false;
  /** Highest seq sent on this connection; the next push starts after it. */
  private sentUpTo = 0;
  /**
   * What this engine's own batches stored, in seq order, that may not be sent
   * yet: the next push takes them from here when they follow `sentUpTo`
   * without a gap, instead of reading the outbox back in a transaction of
   * its own (a write then reaches the server one IndexedDB round trip
   * sooner). Anything else (another tab's entries, a reconnect that resends
   * more) is read from the outbox.
   */
  private written: OutboxEntry[] = [];
  private helloHead = 0;
  /** Term of the primary this connection is synced with; stamped on the checkpoint. */
  private sessionTerm = 0;
  private readonly pending = new PendingCount();
  /** Mutations waiting for the next local batch, and whether a flush is scheduled or running. */
  private queued: QueuedMutation[] = [];
  private flushing = false;
  /** The seq the next mutation gets, as far as this engine knows (another tab may have taken it). */
  private knownNextSeq = 0;
  private inbox: InboxItem[] = [];
  /** The snapshot the current connection is sending: its asOf and the page expected next (-1: complete). */
  private snapshotIn: { gen: number; asOf: number; next: number } | null = null;
  /** This replica's client id, known once the local store has been read. */
  clientId: string | null = null;
  private checkpoint = 0;
  private lastSyncedAt: number | null = null;
  private lastError: WireError | null = null;
  private token: string;
  /** Whether the current token came from `refreshToken` and has not yet been accepted by a hello. */
  private tokenRefreshed = false;
  /** The `fatal` message of the current connection, if the server sent one before closing it. */
  private fatalError: WireError | null = null;
  private readonly listeners = new Set<(e: EngineEvent) => void>();
  private readonly deps: LocalRunDeps;
  private readonly limits: Limits;

  constructor(private readonly opts: SyncEngineOptions) {
    this.limits = opts.limits ?? DEFAULT_LIMITS;
    this.token = opts.token;
    this.deps = {
      schema: opts.schema,
      ctx: { userId: opts.user.userId, roles: opts.user.roles, side: 'client' },
      limits: this.limits,
    };
  }

  on(listener: (e: EngineEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(): SyncStatus {
    return {
      state: this.state,
      online: this.state === 'syncing' || this.state === 'live',
      pending: this.pending.current,
      lastSyncedLsn: this.checkpoint,
      lastSyncedAt: this.lastSyncedAt,
      lastError: this.lastError,
      server: this.transport ? (this.opts.servers[this.serverIndex] ?? null) : null,
    };
  }

  /** Loads the persisted state and starts connecting (unless `goOffline()` was called). */
  async start(): Promise<void> {
    await this.refreshCounts();
    if (this.state !== 'stopped' && this.state !== 'failed') return;
    this.connectNow();
  }

  /** Drops the connection and stays off it until `goOnline()`; mutations queue meanwhile. */
  goOffline(): void {
    this.generation++;
    this.clearTimer();
    this.transport?.close();
    this.transport = null;
    this.setState('offline');
  }

  /** Connects again after `goOffline()`; in any other state it does nothing. */
  goOnline(): void {
    if (this.state !== 'offline') return;
    this.attempt = 0;
    this.connectNow();
  }

  /**
   * Connects at once instead of waiting out the backoff timer (the browser said
   * it is online again), or tries again after a failure (a new token is in).
   * A connection being made or up is left alone, and so is `offline`.
   */
  reconnectNow(): void {
    if (this.state !== 'backoff' && this.state !== 'failed') return;
    this.attempt = 0;
    this.connectNow();
  }

  /** Where mutation `seq` stands (see MutationState). */
  async mutationState(seq: number): Promise<MutationState> {
    const { queued, nextSeq } = await this.opts.local.transaction(
      async (tx) => ({
        queued: (await tx.outboxAfter(seq - 1, 1))[0]?.seq === seq,
        nextSeq: (await tx.meta()).nextSeq,
      }),
      SCOPES.counts,
    );
    if (queued) return { status: 'pending' };
    if (!Number.isSafeInteger(seq) || seq < 1 || seq >= nextSeq) return { status: 'unknown' };
    const rejection = (await this.opts.local.rejections()).find((r) => r.seq === seq);
    if (rejection) return { status: 'rejected', code: rejection.error.code, message: rejection.error.message };
    return { status: 'confirmed' };
  }

  stop(): void {
    this.generation++;
    this.clearTimer();
    this.transport?.close();
    this.transport = null;
    this.setState('stopped');
  }

  /** Waits until every message received so far has been applied. */
  async settled(): Promise<void> {
    let current: Promise<void>;
    do {
      current = this.chain;
      await current;
    } while (current !== this.chain);
  }

  /**
   * Applies a mutation locally at once and queues it for the primary. Throws,
   * storing nothing, when the mutation is invalid whatever the data (bad
   * arguments, unknown mutator, forbidden, too large).
   *
   * Mutations called in the same task (without awaiting in between), and
   * those called while a batch is being written, are written together in one
   * local transaction, in call order, with consecutive seqs. Each still
   * stands alone: one that is invalid rejects and leaves no trace while the
   * others are stored; a store failure that aborts the transaction rejects
   * every mutation of the batch, and none is stored.
   */
  mutate(name: string, args: JsonValue): Promise<{ seq: number }> {
    return new Promise((resolve, reject) => {
      // Taken as it is now: the batch runs in a microtask, and the app may reuse its object meanwhile.
      let copy: JsonValue;
      try {
        copy = structuredClone(args);
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        reject(new TidelineError('INVALID_ARGS', `mutation args must be plain JSON values: ${why}`));
        return;
      }
      this.queued.push({ name, args: copy, resolve, reject });
      if (this.flushing) return;
      this.flushing = true;
      // A microtask: every call made in this task is queued by then.
      queueMicrotask(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.queued.length > 0) {
        const batch = this.queued.splice(0, MAX_LOCAL_BATCH);
        await this.writeBatch(batch);
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Writes `batch` in one local transaction, settling each caller's promise. */
  private async writeBatch(batch: QueuedMutation[]): Promise<void> {
    let live = batch;
    for (let retries = 0; live.length > 0; retries++) {
      let results: BatchResult[];
      let stamp: number;
      let firstSeq: number;
      try {
        ({ results, stamp, firstSeq } = await this.opts.local.transaction(async (tx) => {
          const stamp = this.pending.stamp();
          return { ...(await this.runBatch(tx, live)), stamp };
        }, SCOPES.write));
      } catch (err) {
        if (err instanceof MutationRunFailed && retries < MAX_BATCH_RETRIES && live.length > 1) {
          err.item.reject(err.failure);
          live = live.filter((item) => item !== err.item);
          continue;
        }
        const cause = err instanceof MutationRunFailed ? err.failure : err;
        for (const item of live) item.reject(cause);
        return;
      }
      let stored = 0;
      const entries: OutboxEntry[] = [];
      // knownNextSeq means "counted up to": seqs before it are in the pending count. A batch that starts
      // past it stepped over what another tab stored meanwhile, which this count lacks; raising it then
      // would make that tab's 'queued' message and the recheck look stale, and the count would go below
      // zero once those entries settle. It is raised by the next recount instead.
      const counted = firstSeq <= this.knownNextSeq;
      for (const r of results) {
        if ('seq' in r) {
          stored++;
          entries.push(r.entry);
          if (counted) this.knownNextSeq = Math.max(this.knownNextSeq, r.seq + 1);
        }
      }
      this.remember(entries);
      // Count them now (one read): their confirmation may come before that tab's message or the recheck.
      // A tab without the connection (a stopped engine) shows the leader's count and needs none.
      if (!counted && this.state !== 'stopped') this.outboxChanged().catch(() => undefined);
      if (stored > 0) {
        this.pending.add(stamp, stored);
        this.emitStatus();
        this.kickPush();
      }
      for (const r of results) {
        if ('seq' in r) r.item.resolve({ seq: r.seq });
        else r.item.reject(r.error);
      }
      return;
    }
  }

  /** Runs the batch; `firstSeq` is the replica's next seq when it started. */
  private async runBatch(
    store: LocalTx,
    batch: readonly QueuedMutation[],
  ): Promise<{ results: BatchResult[]; firstSeq: number }> {
    // Reads are served once per key and writes sent at the end in bulk (see BatchTx).
    const buffered = new BatchTx(store);
    const targets = batch.map((m) => builtinTarget(this.opts.schema, m.args));
    await buffered.prefetch(targets.filter((t): t is NonNullable<typeof t> => t !== null));
    const tx = buffered.tx;
    const meta = await tx.meta();
    let nextSeq = meta.nextSeq;
    const results: BatchResult[] = [];
    for (const item of batch) {
      const entry: OutboxEntry = { seq: nextSeq, name: item.name, args: item.args, reads: [], writes: [] };
      let outcome: RunOutcome;
      try {
        outcome = await applyLocal(tx, this.deps, entry);
      } catch (err) {
        // It may have written part of its effects: only aborting the transaction undoes them.
        throw new MutationRunFailed(item, err);
      }
      if (!outcome.ok && !STATE_DEPENDENT.has(outcome.error.code)) {
        // A failed run writes nothing (applyLocal writes only a successful run's effects).
        results.push({ item, error: new TidelineError(outcome.error.code, outcome.error.message) });
        continue;
      }
      await tx.putOutbox(entry);
      results.push({ item, seq: entry.seq, entry });
      nextSeq++;
    }
    if (nextSeq !== meta.nextSeq) await tx.setMeta({ ...meta, nextSeq });
    await buffered.flush();
    return { results, firstSeq: meta.nextSeq };
  }

  /**
   * Another tab sharing this replica may have queued mutations (up to `seq`,
   * when that tab said so): recount and push them. Reads one meta row when
   * the seq is not known, and nothing when this engine knows of it already,
   * so the tab holding the connection can call this as often as it likes.
   * (Only that tab runs `start`; see client/lib.)
   */
  async outboxChanged(seq?: number): Promise<void> {
    if (seq !== undefined && seq < this.knownNextSeq) return;
    if (seq === undefined) {
      const { nextSeq } = await this.opts.local.transaction((tx) => tx.meta(), SCOPES.meta);
      if (nextSeq <= this.knownNextSeq) return;
    }
    await this.refreshCounts();
    this.emitStatus();
    this.kickPush();
  }

  private async refreshCounts(): Promise<void> {
    let stamp = 0;
    const { pending, meta } = await this.opts.local
      .transaction(async (tx) => {
        stamp = this.pending.countStamp();
        return { pending: await tx.outboxCount(), meta: await tx.meta() };
      }, SCOPES.counts)
      .catch((err: unknown) => {
        this.pending.abandon(stamp);
        throw err;
      });
    this.pending.counted(stamp, pending);
    this.knownNextSeq = Math.max(this.knownNextSeq, meta.nextSeq);
    this.clientId = meta.clientId;
    this.checkpoint = meta.checkpoint;
    this.lastSyncedAt = meta.lastSyncedAt;
  }

  // ---- connection lifecycle ----

  private connectNow(): void {
    this.clearTimer();
    const gen = ++this.generation;
    const url = this.opts.servers[this.serverIndex % this.opts.servers.length]!;
    const transport = this.opts.connect(url);
    this.transport = transport;
    this.fatalError = null;
    this.setState('connecting');
    transport.open({
      connected: () => {
        if (gen === this.generation) this.enqueue(gen, () => this.handshake(gen, transport));
      },
      disconnected: (reason) => {
        if (gen !== this.generation) return;
        const fatal = this.fatalError;
        if (fatal?.code === 'UNAUTHORIZED') this.refused(fatal);
        else this.retryLater({ code: 'INTERNAL', message: `disconnected: ${reason}`, retryable: true });
      },
      changes: (raw, ack) => this.receive(gen, { kind: 'changes', raw, ack }),
      snapshot: (raw, ack) => this.receive(gen, { kind: 'snapshot', raw, ack }),
      fatal: (msg) => {
        if (gen !== this.generation) return;
        const parsed = wireErrorSchema.safeParse(msg);
        this.lastError = parsed.success ? parsed.data : { code: 'BAD_REQUEST', message: 'fatal', retryable: true };
        this.fatalError = this.lastError;
      },
    });
  }

  /** Drops the connection and schedules the next attempt, with exponential backoff and full jitter. */
  private retryLater(error: WireError): void {
    this.generation++;
    this.transport?.close();
    this.transport = null;
    this.lastError = error;
    if (this.state === 'stopped' || this.state === 'failed' || this.state === 'offline') return;
    const pointed = error.primary === undefined ? -1 : this.opts.servers.indexOf(error.primary);
    if (pointed >= 0) this.serverIndex = pointed;
    else if (error.code === 'NOT_PRIMARY' || this.attempt > 0) {
      this.serverIndex = (this.serverIndex + 1) % this.opts.servers.length;
    }
    const { baseMs, maxMs } = this.opts.backoff ?? { baseMs: 250, maxMs: 5_000 };
    const delay = backoffDelay(this.attempt++, baseMs, maxMs, this.opts.random);
    this.setState('backoff');
    this.clearTimer();
    this.timer = this.opts.clock.setTimeout(() => {
      this.timer = null;
      if (this.state === 'backoff') this.connectNow();
    }, delay);
  }

  /**
   * The server refused the session (hello or push) or closed it with an error:
   * reconnect later if retrying can help, fetch a fresh token once for an
   * UNAUTHORIZED, otherwise fail.
   */
  private refused(error: WireError): void {
    if (error.retryable || error.code === 'NOT_PRIMARY') {
      this.retryLater(error);
      return;
    }
    const refresh = this.opts.refreshToken;
    if (error.code !== 'UNAUTHORIZED' || !refresh || this.tokenRefreshed) {
      this.fail(error);
      return;
    }
    this.tokenRefreshed = true;
    // Nothing else happens on this connection meanwhile: it is closed and its generation is over.
    this.generation++;
    this.transport?.close();
    this.transport = null;
    this.lastError = error;
    this.setState('connecting');
    const gen = this.generation;
    refresh().then(
      (token) => {
        if (gen !== this.generation || this.state !== 'connecting') return;
        this.token = token;
        this.connectNow();
      },
      (err: unknown) => {
        if (gen !== this.generation || this.state !== 'connecting') return;
        const message = err instanceof Error ? err.message : String(err);
        this.fail({ code: 'UNAUTHORIZED', message: `getToken failed: ${message}`, retryable: false });
      },
    );
  }

  private fail(error: WireError): void {
    this.generation++;
    this.transport?.close();
    this.transport = null;
    this.lastError = error;
    this.setState('failed');
  }

  private async handshake(gen: number, transport: Transport): Promise<void> {
    this.setState('handshaking');
    let stamp = 0;
    const { meta, oldest, pending } = await this.opts.local
      .transaction(async (tx) => {
        stamp = this.pending.countStamp();
        // A snapshot staged by an older connection will never be finished: this one starts afresh.
        await tx.clearStaging();
        return { meta: await tx.meta(), oldest: (await tx.outboxAfter(0, 1))[0], pending: await tx.outboxCount() };
      }, SCOPES.handshake)
      .catch((err: unknown) => {
        this.pending.abandon(stamp);
        throw err;
      });
    // Counted afresh at each connection: what other tabs queued is pushed below whether or not they said so.
    this.pending.counted(stamp, pending);
    this.knownNextSeq = Math.max(this.knownNextSeq, meta.nextSeq);
    const raw = await transport.request(
      'hello',
      {
        protocol: PROTOCOL_VERSION,
        clientId: meta.clientId,
        token: this.token,
        checkpoint: meta.checkpoint,
        checkpointTerm: meta.checkpointTerm,
        pendingFrom: oldest?.seq ?? meta.nextSeq,
      },
      this.opts.requestTimeoutMs ?? 15_000,
    );
    if (gen !== this.generation) return;
    const ack = helloAckSchema.parse(raw);
    if (!ack.ok) {
      this.refused(ack.error);
      return;
    }
    this.tokenRefreshed = false;
    this.sentUpTo = ack.lastSeq;
    this.helloHead = ack.headLsn;
    this.sessionTerm = ack.term;
    this.lastError = null;
    this.setState('syncing');
    this.kickPush();
  }

  // ---- incoming ----

  /** Runs `task` after everything received before it; a failure restarts the connection. */
  private enqueue(gen: number, task: () => Promise<void>): void {
    this.chain = this.chain.then(async () => {
      if (gen !== this.generation) return;
      try {
        await task();
      } catch (err) {
        if (gen !== this.generation) return;
        const message = err instanceof Error ? err.message : String(err);
        if (err instanceof UnknownCollectionError) this.fail({ code: 'BAD_REQUEST', message, retryable: false });
        else this.retryLater({ code: 'INTERNAL', message, retryable: true });
      }
    });
  }

  /**
   * Queues a message from the server. Consecutive `changes` messages are
   * applied together in one local transaction, so a client that falls behind
   * a busy stream rebases once per batch instead of once per message.
   */
  private receive(gen: number, item: Omit<InboxItem, 'gen'>): void {
    this.inbox.push({ ...item, gen });
    this.enqueue(gen, () => this.drainInbox());
  }

  private async drainInbox(): Promise<void> {
    while (this.inbox.length > 0) {
      const gen = this.generation;
      this.inbox = this.inbox.filter((i) => i.gen === gen);
      const first = this.inbox[0];
      if (!first) return;
      if (first.kind === 'snapshot') {
        this.inbox.shift();
        await this.onSnapshot(gen, first.raw, first.ack);
        continue;
      }
      let n = 0;
      while (n < this.inbox.length && this.inbox[n]!.kind === 'changes') n++;
      const run = this.inbox.splice(0, n);
      await this.onChanges(gen, run);
    }
  }

  private async onChanges(gen: number, items: readonly InboxItem[]): Promise<void> {
    const msgs = items.map((i) => changesSchema.parse(i.raw));
    const now = this.opts.clock.now();
    const result = await this.opts.local.transaction(async (tx) => {
      const stamp = this.pending.stamp();
      const meta = await tx.meta();
      let checkpoint = meta.checkpoint;
      let lastSeq: number | undefined;
      let applied = 0;
      const fresh: Change[] = [];
      const rejected: Rejected = [];
      for (const msg of msgs) {
        if (msg.from > checkpoint) break; // a gap: apply what came before it
        fresh.push(...msg.changes.filter((c) => c.lsn > checkpoint));
        checkpoint = Math.max(checkpoint, msg.to);
        if (msg.lastSeq !== undefined) lastSeq = Math.max(lastSeq ?? 0, msg.lastSeq);
        rejected.push(...(msg.rejected ?? []));
        applied++;
      }
      const integrated = await integrateConfirmed(tx, this.deps, fresh, lastSeq, rejected, now);
      await tx.setMeta({
        ...meta,
        checkpoint,
        checkpointTerm: this.sessionTerm || meta.checkpointTerm,
        lastSyncedAt: now,
      });
      return { integrated, checkpoint, applied, stamp };
    }, SCOPES.integrate);
    // What committed locally counts even if the connection has moved on meanwhile.
    this.afterApply(result.integrated, result.checkpoint, now, false, result.stamp);
    if (gen !== this.generation) return;
    for (const item of items.slice(0, result.applied)) item.ack?.({ ok: true });
    if (result.applied < msgs.length) {
      // A message went missing: reconnect and catch up from the checkpoint.
      const from = msgs[result.applied]!.from;
      this.retryLater({ code: 'BAD_REQUEST', message: `gap before LSN ${from}`, retryable: true });
      return;
    }
    const caughtUp = items.some((item, i) => !item.ack && msgs[i]!.to >= this.helloHead);
    if (caughtUp && this.state === 'syncing') {
      this.attempt = 0;
      this.setState('live');
    }
  }

  private async onSnapshot(gen: number, raw: unknown, ack: ((res: PageAck) => void) | undefined): Promise<void> {
    const msg = snapshotSchema.parse(raw);
    // Pages of one snapshot arrive in order, and a later snapshot on the same connection has a later
    // asOf: any other page is a duplicate delivery. Ack it, since the server may wait, but apply nothing.
    const current = this.snapshotIn?.gen === gen ? this.snapshotIn : null;
    const expected =
      msg.page === 0
        ? current === null || msg.asOf > current.asOf
        : current !== null && msg.asOf === current.asOf && msg.page === current.next;
    if (!expected) {
      if (gen === this.generation) ack?.({ ok: true });
      return;
    }
    this.snapshotIn = { gen, asOf: msg.asOf, next: msg.done ? -1 : msg.page + 1 };
    const now = this.opts.clock.now();
    const result = await this.opts.local.transaction(async (tx) => {
      const stamp = this.pending.stamp();
      if (msg.page === 0) await tx.clearStaging();
      await tx.stage(msg.docs);
      if (!msg.done) return null;
      const meta = await tx.meta();
      const integrated = await swapInSnapshot(tx, this.deps, await tx.staged(), msg.lastSeq, msg.rejected, now);
      await tx.clearStaging();
      await tx.setMeta({ ...meta, checkpoint: msg.asOf, checkpointTerm: this.sessionTerm, lastSyncedAt: now });
      return { integrated, checkpoint: msg.asOf, stamp };
    });
    // What committed locally counts even if the connection has moved on meanwhile.
    if (result) this.afterApply(result.integrated, result.checkpoint, now, true, result.stamp);
    if (gen !== this.generation) return;
    ack?.({ ok: true });
  }

  private afterApply(
    integrated: Integrated,
    checkpoint: number,
    now: number,
    snapshot: boolean,
    /** The applying transaction's place among those that change the outbox (see PendingCount). */
    stamp: number,
  ): void {
    this.checkpoint = checkpoint;
    this.lastSyncedAt = now;
    this.pending.add(stamp, -integrated.settled.length);
    for (const rejection of integrated.rejections) this.emit({ type: 'rejected', rejection });
    this.emit({ type: 'applied', checkpoint, changed: byCollection(integrated.changed), snapshot });
    this.emitStatus();
  }

  // ---- outgoing ----

  private kickPush(): void {
    if (this.state !== 'syncing' && this.state !== 'live') return;
    if (this.pushing) {
      this.pushAgain = true;
      return;
    }
    void this.pushLoop(this.generation);
  }

  /** One push in flight; what queued meanwhile goes in the next one. */
  private async pushLoop(gen: number): Promise<void> {
    this.pushing = true;
    try {
      for (;;) {
        this.pushAgain = false;
        if (gen !== this.generation || !this.transport) return;
        // Only what this connection has not sent yet: the outbox may be long while offline writes drain.
        const sentUpTo = this.sentUpTo;
        const unsent =
          this.unsentInMemory() ??
          (await this.opts.local.transaction(
            (tx) => tx.outboxAfter(sentUpTo, this.limits.maxMutationsPerPush),
            SCOPES.push,
          ));
        // The read may outlive this connection: a push of it must not go out on the next one (before its hello).
        if (gen !== this.generation || !this.transport) return;
        const batch = this.nextBatch(unsent);
        if (batch.length === 0) {
          if (this.pushAgain) continue;
          return;
        }
        const raw = await this.transport.request('push', { mutations: batch }, this.opts.requestTimeoutMs ?? 15_000);
        if (gen !== this.generation) return;
        const ack = pushAckSchema.parse(raw);
        if (!ack.ok && ack.error.code === 'RATE_LIMITED' && ack.error.retryAfterMs !== undefined) {
          // Over the server's rate: nothing of the push was applied. Waiting out the hint and sending from
          // the same seq again (sentUpTo is unchanged) keeps the order and the connection.
          const delay = ack.error.retryAfterMs;
          await new Promise<void>((resolve) => this.opts.clock.setTimeout(resolve, delay));
          continue;
        }
        if (!ack.ok) {
          // As for hello: a refusal that no retry can mend (a push the server will never take)
          // stops the engine with the error, instead of reconnecting forever; an expired token is
          // replaced once through refreshToken.
          this.refused(ack.error);
          return;
        }
        const gap = ack.results.find(
          (r) => r.status === 'rejected' && r.error.code === 'BAD_REQUEST' && r.error.retryable,
        );
        if (gap?.status === 'rejected') {
          this.retryLater(gap.error);
          return;
        }
        this.sentUpTo = Math.max(this.sentUpTo, ...batch.map((m) => m.seq));
      }
    } catch (err) {
      if (gen === this.generation) {
        const message = err instanceof Error ? err.message : String(err);
        this.retryLater({ code: 'INTERNAL', message: `push failed: ${message}`, retryable: true });
      }
    } finally {
      this.pushing = false;
      if (this.pushAgain) this.kickPush();
    }
  }

  /** Keeps the entries a batch stored for the next push (see `written`). */
  private remember(entries: readonly OutboxEntry[]): void {
    if (entries.length === 0) return;
    if (this.written.length + entries.length > MAX_WRITTEN_IN_MEMORY) {
      // Nobody is pushing them (offline, or a slow server): the outbox has them.
      this.written = [];
      return;
    }
    // The args are the engine's own copy (taken by mutate), never changed after.
    for (const e of entries) this.written.push({ seq: e.seq, name: e.name, args: e.args, reads: [], writes: [] });
  }

  /** The unsent entries that follow `sentUpTo` without a gap, from memory; null when they must be read. */
  private unsentInMemory(): OutboxEntry[] | null {
    let drop = 0;
    while (drop < this.written.length && this.written[drop]!.seq <= this.sentUpTo) drop++;
    if (drop > 0) this.written = this.written.slice(drop);
    // Every seq this engine knows of is sent (another tab's queued ones raise knownNextSeq when they are seen).
    if (this.written.length === 0 && this.sentUpTo + 1 >= this.knownNextSeq) return [];
    if (this.written[0]?.seq !== this.sentUpTo + 1) return null;
    let n = 1;
    while (
      n < this.written.length &&
      n < this.limits.maxMutationsPerPush &&
      this.written[n]!.seq === this.written[n - 1]!.seq + 1
    )
      n++;
    return this.written.slice(0, n);
  }

  private nextBatch(outbox: readonly OutboxEntry[]): Array<{ seq: number; name: string; args: JsonValue }> {
    const batch: Array<{ seq: number; name: string; args: JsonValue }> = [];
    let bytes = 64;
    for (const e of outbox) {
      if (e.seq <= this.sentUpTo) continue;
      const m = { seq: e.seq, name: e.name, args: e.args };
      const size = jsonByteLength(m) + 1;
      if (
        batch.length > 0 &&
        (batch.length >= this.limits.maxMutationsPerPush || bytes + size > this.limits.maxMessageBytes)
      ) {
        break;
      }
      batch.push(m);
      bytes += size;
    }
    return batch;
  }

  // ---- plumbing ----

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.emitStatus();
  }

  private emitStatus(): void {
    this.emit({ type: 'status', status: this.status() });
  }

  private emit(e: EngineEvent): void {
    for (const l of this.listeners) l(e);
  }

  private clearTimer(): void {
    if (this.timer !== null) this.opts.clock.clearTimeout(this.timer);
    this.timer = null;
  }
}

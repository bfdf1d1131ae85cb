import type { Clock } from '../../shared/clock';
import { TidelineError, toWireError } from '../../shared/errors';
import type { WireErrorShape } from '../../shared/errors';
import { jsonByteLength } from '../../shared/json';
import type { RunOutcome } from '../../shared/mutators/run-mutation';
import type { Change } from '../../shared/protocol/change';
import type { Changes, Snapshot } from '../../shared/protocol/changes';
import { helloSchema } from '../../shared/protocol/hello';
import type { Hello, HelloAck } from '../../shared/protocol/hello';
import type { Limits } from '../../shared/protocol/limits';
import { pushSchema } from '../../shared/protocol/push';
import type { Mutation, MutationResult, PushAck } from '../../shared/protocol/push';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { fullyReadable } from '../../shared/schema/define-schema';
import type { AppSchema } from '../../shared/schema/define-schema';
import { sharedPrefixEnd } from '../cluster/terms';
import type { AsyncSnapshotCursor, AsyncStore, AsyncStoreTx } from '../store/async-store';
import { LogTail } from '../store/log-tail';
import type { LogPage, OutcomeEntry } from '../store/store';
import { asyncStoreOf } from '../store/sync-store-adapter';
import type { HoldingStore } from '../store/sync-store-adapter';
import { quotaError } from './quota';
import { runMutationAsync } from './run-async';
import { checkServerWrite, contextOf, isSystem } from './server-write';
import type { ServerPrincipal, ServerWrite, ServerWriteOptions, ServerWriteResult } from './server-write';
import { KeyedBudgets, limited, PushBudget } from './rate-limit';
import type { PushRates } from './rate-limit';
import { FanoutView, inScope } from './fanout-view';
import type { VisibleList } from './fanout-view';
import { newSession } from './session';
import { SnapshotGate } from './snapshot-gate';
import type { ChangesChannel, Session, SessionSink } from './session';

export interface Principal {
  userId: string;
  roles: readonly string[];
}

export interface SyncCoreOptions {
  /**
   * The store. A synchronous one (SQLite, memory) is served through
   * `asyncStoreOf`; pass that adapter yourself to share it (and its queue)
   * with other readers of the same store.
   */
  store: AsyncStore | HoldingStore;
  /**
   * Several nodes write this store (PostgreSQL): every commit, this node's
   * and the others', reaches the live sessions by reading the log in LSN
   * order (a `LogTail`), never from memory, and `wake()` says another node
   * committed. Absent: this node is the store's only writer, and a commit
   * is fanned out from what it wrote.
   */
  sharedLog?: boolean;
  schema: AppSchema;
  clock: Clock;
  limits: Limits;
  /**
   * Checks a client token for `hello`; throws a TidelineError (UNAUTHORIZED) when it is bad. Optional: a
   * caller whose check is asynchronous (JWKS) uses `checkHello`, verifies, then `admit` instead.
   */
  verifyToken?: (token: string) => Principal;
  /** Runs the group commit soon, after the pushes that arrived together have queued. */
  schedule: (fn: () => void) => void;
  /** Changes per catch-up page. */
  pageSize?: number;
  /** Documents per snapshot page. */
  snapshotPageSize?: number;
  /** Bytes per catch-up page (`logEntryBytes`); a single mutation over it comes whole on its own page. */
  pageBytes?: number;
  /** Bytes per snapshot page (`scopeDocBytes`); a single document over it comes alone. */
  snapshotPageBytes?: number;
  /** Snapshots streamed at once; the others wait their turn, first come first served. */
  maxConcurrentSnapshots?: number;
  /** Called after every commit with its log entries, each list in LSN order (replication, metrics). */
  onCommit?: (changes: readonly Change[], outcomes: readonly OutcomeEntry[]) => void;
  /** Whether this node takes writes now; when not, clients are sent to `primaryUrl`. */
  role?: () => { primary: true } | { primary: false; primaryUrl: string | null };
  /**
   * Resolves once enough replicas have applied `lsn` (`minSyncReplicas`).
   * Acks and fan-out of a commit wait for it, so nothing a client saw or was
   * told is lost when a caught-up replica is promoted.
   */
  replicated?: (lsn: number) => Promise<void>;
  /**
   * How long a keyed server write's idempotency key is remembered (default
   * 24 hours, Stripe's window): far longer than any retry loop runs, while
   * the records stay bounded by one period of server writes.
   */
  serverWriteRetentionMs?: number;
  /** Push rate limits (token buckets) per user and per connection; absent: none. */
  pushRates?: { user: PushRates; connection: PushRates };
  /** Most connections past hello of one user; 0 or absent: no limit. */
  maxConnectionsPerUser?: number;
  /** Most mutations one group commit takes (default DEFAULT_COMMIT_BUDGET's; 0: no bound); at least one push always goes. */
  maxCommitMutations?: number;
  /** Most push bytes (JSON) one group commit takes (default DEFAULT_COMMIT_BUDGET's; 0: no bound). */
  maxCommitBytes?: number;
}

/**
 * What one group commit takes at most. A commit and the fan-out of its
 * changes run synchronously: nothing else runs on the node meanwhile, so
 * their size bounds how long another user's push, an ack or a page waits,
 * and how much one commit holds in memory. The fan-out dominates when the
 * writer has many sessions (1,000 puts to 32 sessions of one user are about
 * 10 MB of JSON to encode); 1,000 mutations still commit in one fsync what 20
 * clients pushing 50 each send together.
 */
export const DEFAULT_COMMIT_BUDGET = { mutations: 1000, bytes: 1024 * 1024 };

/** What waits for the next group commit: a client's push, or one server-side write. */
type Queued =
  | { kind: 'push'; session: Session; mutations: Mutation[]; bytes: number; resolve: (ack: PushAck) => void }
  | {
      kind: 'server';
      write: ServerWrite;
      resolve: (result: ServerWriteResult) => void;
      fail: (error: WireErrorShape) => void;
    };

/** Server writes share one lane of the fair queue (a user id is never empty). */
const SERVER_LANE = '';

const laneOf = (item: Queued): string => (item.kind === 'push' ? item.session.auth!.userId : SERVER_LANE);
const costOf = (item: Queued): { mutations: number; bytes: number } =>
  item.kind === 'push' ? { mutations: item.mutations.length, bytes: item.bytes } : { mutations: 1, bytes: 0 };

type QueuedResult = MutationResult[] | ServerWriteResult;

const failQueued = (item: Queued, error: WireErrorShape): void =>
  item.kind === 'push' ? item.resolve({ ok: false, error }) : item.fail(error);

/** Keyed server writes forgotten per group commit at most, so pruning never holds a commit up for long. */
const PRUNE_BATCH = 1000;
const PRUNE_EVERY_MS = 60_000;

/** What one client's mutations came to in a commit, or since its pendingFrom. */
interface ClientOutcome {
  lastSeq: number;
  rejected: Array<{ seq: number; error: WireErrorShape }>;
}

/**
 * Client ids work as bearer secrets (a connection with an id can settle and
 * push that client's mutations), so a change tells its origin only to the
 * client that made it.
 */
const ownOrigin = (c: Change, clientId: string): Change =>
  c.clientId === clientId || c.clientId === null ? c : { ...c, clientId: null, seq: null };

/** How long a shared-log tail waits to read again after a failed read. */
const TAIL_RETRY_MS = 1000;

/** Default bytes per catch-up page (`--catch-up-page-bytes`). */
export const DEFAULT_PAGE_BYTES = 4 * 1024 * 1024;
/** Default bytes per snapshot page (`--snapshot-page-bytes`). */
export const DEFAULT_SNAPSHOT_PAGE_BYTES = 4 * 1024 * 1024;
/** Default snapshots streamed at once per node (`--max-concurrent-snapshots`). */
export const DEFAULT_MAX_CONCURRENT_SNAPSHOTS = 4;

/** Reads a client's settled seqs: the store now, or a snapshot cursor as of its point. */
interface OutcomeReader {
  lastSeq: number;
  rejection(seq: number): Promise<WireErrorShape | undefined>;
}

/** A client with more unanswered mutations than this learns only the newest rejections. */
const MAX_REPORTED_REJECTIONS = 10_000;
/**
 * ... and only the newest that fit in this many bytes (of JSON), so one hello replays a bounded message.
 * The rest are still stored: a retry of such a seq gets `duplicate` with its error.
 */
export const MAX_REPORTED_REJECTION_BYTES = 256 * 1024;

/**
 * How far a hello's `pendingFrom - 1` may run past the client's last seq
 * known here; a larger claim is refused (BAD_REQUEST). The blind settle
 * exists for acked work a failover with minSyncReplicas 0 lost, which is at
 * most the replication lag, far below this. The bound is the rejection
 * window (REJECTION_WINDOW): nothing past it is answered for anyway, and it
 * keeps a wild claim (`pendingFrom: 1000000`) from silently turning the
 * owner's later writes into `duplicate`s. Only the id's owner can make such a
 * claim at all (client ids are bound to users).
 */
export const MAX_SETTLE_GAP = 10_000;

/**
 * The primary's side of /sync, with no I/O of its own: it takes a store,
 * a clock and, per connection, a `SessionSink`.
 *
 * Invariants:
 * - Pushes that arrive before the next scheduled flush commit together in one
 *   store transaction (group commit), up to a budget of mutations and bytes
 *   taken round-robin over users; the rest go in the next flush, after I/O
 *   has run. Acks, and the fan-out of their changes, go out only after
 *   `transact` returned, that is once durable, in commit order.
 * - A session is either catching up (its pump reads the log, page by page,
 *   each page acked) or live (commits are sent to it directly). The switch
 *   happens synchronously right after the pump reads the head, so no commit
 *   falls between the two.
 * - Every message to a session is in LSN order and holds only its scope.
 */
export class SyncCore {
  private readonly sessions = new Set<Session>();
  private readonly byClient = new Map<string, Session>();
  /**
   * What waits for a group commit, one FIFO lane per user (server writes share one). Map order is the
   * round-robin order: a lane served goes to the back.
   */
  private readonly lanes = new Map<string, Queued[]>();
  /** The authenticated sessions of each user, for `maxConnectionsPerUser`. */
  private readonly userSessions = new Map<string, Set<Session>>();
  private readonly userBudgets: KeyedBudgets | null;
  private readonly connectionBudgets = new WeakMap<Session, PushBudget>();
  /** When the next group commit also forgets expired server-write keys. */
  private nextPrune = 0;
  /** Post-commit work (waiting for replicas, fan-out, acks) runs in commit order on this chain. */
  private delivered: Promise<void> = Promise.resolve();
  private flushScheduled = false;
  /** Hellos checked so far: orders the connections of one client. */
  private hellos = 0;
  private readonly pageSize: number;
  private readonly snapshotPageSize: number;
  private readonly pageBytes: number;
  private readonly snapshotPageBytes: number;
  private readonly snapshotGate: SnapshotGate;
  /** The store, as promises. */
  readonly store: AsyncStore;
  /**
   * The last LSN fanned out to live sessions: a catching-up session goes live
   * only once it has read this far (`pump`), so no fan-out falls between its
   * last page and its switch.
   */
  private fannedOut = 0;
  /** Reads the head once; flushes and pumps wait for it. */
  private readonly ready: Promise<void>;
  /** With `sharedLog`: the tail that fans out every node's commits in LSN order. */
  private readonly tail: LogTail | null = null;
  /** The pending retry of a failed tail read, if any. */
  private tailRetry: unknown = null;
  /** Group commits run one at a time, in this chain. */
  private committing: Promise<void> = Promise.resolve();

  constructor(private readonly opts: SyncCoreOptions) {
    this.store = isHolding(opts.store) ? asyncStoreOf(opts.store) : opts.store;
    this.pageSize = opts.pageSize ?? 1000;
    this.snapshotPageSize = opts.snapshotPageSize ?? 500;
    this.pageBytes = opts.pageBytes ?? DEFAULT_PAGE_BYTES;
    this.snapshotPageBytes = opts.snapshotPageBytes ?? DEFAULT_SNAPSHOT_PAGE_BYTES;
    this.snapshotGate = new SnapshotGate(Math.max(1, opts.maxConcurrentSnapshots ?? DEFAULT_MAX_CONCURRENT_SNAPSHOTS));
    this.userBudgets = opts.pushRates && limited(opts.pushRates.user) ? new KeyedBudgets(opts.pushRates.user) : null;
    const head = this.store.meta().then((meta) => {
      this.fannedOut = meta.headLsn;
      return meta.headLsn;
    });
    if (opts.sharedLog) {
      const tail = new LogTail({
        source: { readLog: (after, limit, maxBytes) => this.readTail(after, limit, maxBytes) },
        from: 0,
        pageSize: this.pageSize,
        pageBytes: this.pageBytes,
        onPage: (page) => this.fanOutPage(page),
        // A failed read (the database away) is retried a second later, or at the next commit or NOTIFY;
        // live sessions keep their cursors, and the acks that wait for the fan-out wait with it. One retry
        // timer at a time: each failed pass starting its own would multiply them while the database is away.
        onError: () => {
          if (this.tailRetry !== null) return;
          this.tailRetry = opts.clock.setTimeout(() => {
            this.tailRetry = null;
            this.tail?.wake();
          }, TAIL_RETRY_MS);
        },
      });
      this.tail = tail;
      this.ready = head.then((at) => tail.startAt(at));
    } else {
      this.ready = head.then(() => undefined);
    }
  }

  /** Resolves once the core has read the store's head (it works before, waiting for it where needed). */
  start(): Promise<void> {
    return this.ready;
  }

  /** Another node committed (`sharedLog`): read the log and fan out what is new. */
  wake(): void {
    if (this.tail) void this.ready.then(() => this.tail?.wake());
  }

  /** Stops following the shared log. */
  close(): void {
    this.tail?.stop();
    if (this.tailRetry !== null) this.opts.clock.clearTimeout(this.tailRetry);
    this.tailRetry = null;
  }

  /** The last LSN this node has fanned out to its live sessions. */
  get fannedOutLsn(): number {
    return this.fannedOut;
  }

  connect(sink: SessionSink): Session {
    const session = newSession(sink);
    this.sessions.add(session);
    return session;
  }

  disconnect(session: Session): void {
    session.closed = true;
    this.snapshotGate.leave(session);
    this.sessions.delete(session);
    if (session.auth && this.byClient.get(session.auth.clientId) === session) {
      this.byClient.delete(session.auth.clientId);
    }
    if (session.auth) {
      const mine = this.userSessions.get(session.auth.userId);
      mine?.delete(session);
      if (mine?.size === 0) this.userSessions.delete(session.auth.userId);
    }
  }

  /** The user's connections past hello (`maxConnectionsPerUser` counts these). */
  connectionsOf(userId: string): number {
    return this.userSessions.get(userId)?.size ?? 0;
  }

  get connectedClients(): number {
    return this.byClient.size;
  }

  /** A hello whose token the `verifyToken` option checks synchronously (the simulation; tests). */
  hello(session: Session, raw: unknown): Promise<HelloAck> {
    const checked = this.checkHello(session, raw);
    if (!checked.ok) return Promise.resolve(checked);
    let principal: Principal;
    try {
      if (!this.opts.verifyToken) throw new TidelineError('INTERNAL', 'no synchronous token check is configured');
      principal = this.opts.verifyToken(checked.hello.token);
    } catch (err) {
      return Promise.resolve({ ok: false, error: toWireError(err) });
    }
    return this.admit(session, checked.hello, principal);
  }

  /**
   * The checks of a hello that need no token. The socket layer calls it, then
   * verifies the token (which may fetch signing keys), then calls `admit`.
   * The order of these calls is the order of hellos: of two connections of one
   * client, the one that said hello last wins, however long each check took.
   */
  checkHello(session: Session, raw: unknown): { ok: true; hello: Hello } | { ok: false; error: WireErrorShape } {
    const fail = (error: WireErrorShape): { ok: false; error: WireErrorShape } => ({ ok: false, error });
    const parsed = helloSchema.safeParse(raw);
    if (!parsed.success) return fail(badRequest('hello', parsed.error.issues[0]?.message));
    const msg = parsed.data;
    if (msg.protocol !== PROTOCOL_VERSION) {
      return fail({
        code: 'PROTOCOL_MISMATCH',
        message: `server speaks protocol ${PROTOCOL_VERSION}, client ${msg.protocol}`,
        retryable: false,
      });
    }
    if (session.auth) return fail(badRequest('hello', 'hello was already done on this connection'));
    const notPrimary = this.notPrimary();
    if (notPrimary) return fail(notPrimary);
    session.helloOrder = ++this.hellos;
    return { ok: true, hello: msg };
  }

  /** Starts the session of a checked hello as the user its verified token names. */
  async admit(session: Session, msg: Hello, principal: Principal): Promise<HelloAck> {
    const fail = (error: WireErrorShape): HelloAck => ({ ok: false, error });
    // Checked first (and again below): verifying the token may have taken a while.
    if (session.closed) return fail(badRequest('hello', 'the connection closed during hello'));
    if (session.auth) return fail(badRequest('hello', 'hello was already done on this connection'));
    const { store } = this;
    // The owner check and the binding are one transaction, before anything else is done or told: a client
    // id belongs to the user of its first hello, so a hello of another user with it kicks no session, learns
    // no last seq or rejection, and settles nothing, even when two first hellos of one id race (checked and
    // bound in two steps, both would pass the check).
    // Everything below pendingFrom was settled by some primary. Outcomes replicate with the log, so
    // this node knows them unless it lost them: a failover with minSyncReplicas 0 can drop acked work.
    // Then the client's next seq would be out of order forever; settling the gap lets it go on.
    // At most MAX_SETTLE_GAP seqs are settled blind, and only by the id's owner. The client settled
    // everything below pendingFrom, so the rejections kept for those seqs can go. (A hello refused
    // later, superseded or over the connection limit, has still done this: it is the owner's own word.)
    let bound: { refused: WireErrorShape } | { lastSeq: number };
    let meta: Awaited<ReturnType<AsyncStore['meta']>>;
    let terms: Awaited<ReturnType<AsyncStore['terms']>>;
    try {
      bound = await store.transact(async (tx) => {
        const user = await tx.clientUser(msg.clientId);
        if (user !== null && user !== principal.userId) {
          return {
            refused: { code: 'FORBIDDEN', message: 'this client id belongs to another user', retryable: false },
          };
        }
        let last = await tx.lastSeq(msg.clientId);
        if (msg.pendingFrom - 1 - last > MAX_SETTLE_GAP) {
          return {
            refused: {
              code: 'BAD_REQUEST',
              message: `pendingFrom ${msg.pendingFrom} is more than ${MAX_SETTLE_GAP} seqs past this client's last settled seq ${last}`,
              retryable: false,
            },
          };
        }
        if (user === null) await tx.bindClient(msg.clientId, principal.userId);
        if (last < msg.pendingFrom - 1) {
          await tx.recordOutcome(msg.clientId, msg.pendingFrom - 1, null);
          last = msg.pendingFrom - 1;
        }
        await tx.forgetRejections(msg.clientId, msg.pendingFrom);
        return { lastSeq: last };
      });
      if ('refused' in bound) return fail(bound.refused);
      meta = await store.meta();
      terms = await store.terms();
    } catch (err) {
      if (!session.closed) session.sink.close(toWireError(err));
      this.disconnect(session);
      throw err;
    }
    // From here to the end, no await: the checks below and the registration happen in one turn.
    if (session.closed) return fail(badRequest('hello', 'the connection closed during hello'));
    if (session.auth) return fail(badRequest('hello', 'hello was already done on this connection'));
    const notPrimary = this.notPrimary();
    if (notPrimary) return fail(notPrimary);
    const newer = this.byClient.get(msg.clientId);
    if (newer && newer.helloOrder > session.helloOrder) {
      return fail({ code: 'BAD_REQUEST', message: 'superseded by a newer connection', retryable: false });
    }
    const previous = this.byClient.get(msg.clientId);
    // A connection that replaces one of the same client id takes its slot.
    const maxConnections = this.opts.maxConnectionsPerUser ?? 0;
    const mine = this.userSessions.get(principal.userId);
    const held = (mine?.size ?? 0) - (previous !== undefined && mine?.has(previous) ? 1 : 0);
    if (maxConnections > 0 && held >= maxConnections) {
      return fail({
        code: 'RATE_LIMITED',
        message: `user ${principal.userId} has ${held} connections; the limit is ${maxConnections}`,
        retryable: true,
      });
    }
    if (previous) {
      // One connection per client id: the older one is a dead link or a second tab that lost its lock.
      previous.sink.close({ code: 'BAD_REQUEST', message: 'superseded by a newer connection', retryable: false });
      this.disconnect(previous);
    }
    session.auth = {
      clientId: msg.clientId,
      userId: principal.userId,
      roles: principal.roles,
      pendingFrom: msg.pendingFrom,
      allOf: fullyReadable(this.opts.schema, principal.roles),
    };
    session.cursor = msg.checkpoint;
    session.live = false;
    this.byClient.set(msg.clientId, session);
    let sessionsOfUser = this.userSessions.get(principal.userId);
    if (!sessionsOfUser) this.userSessions.set(principal.userId, (sessionsOfUser = new Set()));
    sessionsOfUser.add(session);
    // A checkpoint past the point where this primary's history forked from the client's holds lost changes.
    const shared = sharedPrefixEnd(terms, meta.headLsn, msg.checkpointTerm);
    session.needsSnapshot = msg.checkpoint > shared;
    this.opts.schedule(() => void this.pump(session));
    return {
      ok: true,
      serverId: meta.serverId,
      term: meta.term,
      headLsn: meta.headLsn,
      horizon: meta.horizon,
      lastSeq: bound.lastSeq,
      userId: principal.userId,
    };
  }

  /** Validates a push and queues it for the next group commit; resolves with the ack. */
  push(session: Session, raw: unknown): Promise<PushAck> {
    const fail = (error: WireErrorShape): Promise<PushAck> => Promise.resolve({ ok: false, error });
    if (!session.auth) return fail({ code: 'UNAUTHORIZED', message: 'send hello first', retryable: false });
    if (session.closed) return fail({ code: 'BAD_REQUEST', message: 'this connection was closed', retryable: true });
    const notPrimary = this.notPrimary();
    if (notPrimary) return fail(notPrimary);
    // A sender over its rate is refused before its push is validated and measured: that work, on a
    // flood of refused pushes, would cost the node what the limit is there to save. (The count is only
    // read here; the push is validated before anything uses it.)
    const claimed = isRecord(raw) && Array.isArray(raw['mutations']) ? raw['mutations'].length : 1;
    const spent = this.overRate(
      session,
      Math.min(Math.max(claimed, 1), this.opts.limits.maxMutationsPerPush),
      0,
      false,
    );
    if (spent) return fail(spent);
    const parsed = pushSchema.safeParse(raw);
    if (!parsed.success) return fail(badRequest('push', parsed.error.issues[0]?.message));
    const { mutations } = parsed.data;
    const { maxMutationsPerPush, maxMessageBytes } = this.opts.limits;
    if (mutations.length > maxMutationsPerPush) {
      return fail({
        code: 'TOO_LARGE',
        message: `${mutations.length} mutations in one push; the limit is ${maxMutationsPerPush}`,
        retryable: false,
      });
    }
    const size = jsonByteLength(parsed.data);
    if (size > maxMessageBytes) {
      return fail({
        code: 'TOO_LARGE',
        message: `push is ${size} bytes; the limit is ${maxMessageBytes}`,
        retryable: false,
      });
    }
    // Checked whole before anything runs: one by one, the mutations before a skip would commit (per-client order).
    const skip = mutations.findIndex((m, i) => i > 0 && m.seq !== mutations[i - 1]!.seq + 1);
    if (skip > 0) {
      const seqs = mutations.map((m) => m.seq);
      const shown = seqs.length > 20 ? `${seqs.slice(0, 20).join(', ')}, …` : seqs.join(', ');
      return fail({
        code: 'BAD_REQUEST',
        message: `the seqs of a push must rise by 1: seq ${seqs[skip]} follows seq ${seqs[skip - 1]} (seqs ${shown}); nothing was applied`,
        retryable: false,
      });
    }
    if (session.pushing) {
      return fail({ code: 'RATE_LIMITED', message: 'one push in flight per client', retryable: true });
    }
    const overLimit = this.overRate(session, mutations.length, size, true);
    if (overLimit) return fail(overLimit);
    session.pushing = true;
    return new Promise((resolve) => {
      const done = (ack: PushAck): void => {
        session.pushing = false;
        resolve(ack);
      };
      this.enqueue({ kind: 'push', session, mutations, bytes: size, resolve: done });
    });
  }

  /**
   * Checks a push against its user's and its connection's budgets and (with
   * `take`) takes from both, or, over either, takes nothing and answers
   * RATE_LIMITED with how long to wait. Checked before queueing: a flood
   * costs its sender time, not the node memory and commits.
   */
  private overRate(session: Session, mutations: number, bytes: number, take: boolean): WireErrorShape | null {
    const rates = this.opts.pushRates;
    if (!rates) return null;
    const now = this.opts.clock.now();
    const user = this.userBudgets?.get(session.auth!.userId, now) ?? null;
    let connection = this.connectionBudgets.get(session) ?? null;
    if (!connection && limited(rates.connection)) {
      connection = new PushBudget(rates.connection, now);
      this.connectionBudgets.set(session, connection);
    }
    const userWait = user?.wait(mutations, bytes, now) ?? 0;
    const connectionWait = connection?.wait(mutations, bytes, now) ?? 0;
    const wait = Math.max(userWait, connectionWait);
    if (wait > 0) {
      const whose = userWait >= connectionWait ? `user ${session.auth!.userId}` : 'this connection';
      return {
        code: 'RATE_LIMITED',
        message: `push rate limit of ${whose} reached (${mutations} mutations, ${bytes} bytes); nothing was applied, retry in ${wait} ms`,
        retryable: true,
        retryAfterMs: wait,
      };
    }
    if (take) {
      user?.take(mutations, bytes, now);
      connection?.take(mutations, bytes, now);
    }
    return null;
  }

  /**
   * A server-side write: runs `name(args)` as `principal` in the same group
   * commit as client pushes, with the same access checks, schemas, rules and
   * fan-out, and resolves once durable (and replicated, with
   * `minSyncReplicas`). With an idempotency key, a retry commits nothing new
   * and answers `duplicate`. Throws (rejects) a TidelineError when no outcome
   * can be given: NOT_PRIMARY, BAD_REQUEST or TOO_LARGE input, INTERNAL.
   */
  submit(
    principal: ServerPrincipal,
    name: string,
    args: unknown,
    options: ServerWriteOptions = {},
  ): Promise<ServerWriteResult> {
    const notPrimary = this.notPrimary();
    if (notPrimary) return Promise.reject(errorOf(notPrimary));
    let write: ServerWrite;
    try {
      write = checkServerWrite(principal, name, args, options, this.opts.limits.maxMessageBytes);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new TidelineError('BAD_REQUEST', 'bad server write'));
    }
    return new Promise((resolve, reject) => {
      this.enqueue({ kind: 'server', write, resolve, fail: (error) => reject(errorOf(error)) });
    });
  }

  private enqueue(item: Queued): void {
    const key = laneOf(item);
    const lane = this.lanes.get(key);
    if (lane) lane.push(item);
    else this.lanes.set(key, [item]);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.opts.schedule(() => this.flush());
  }

  /**
   * Takes the next group commit's items: round-robin over the users' lanes,
   * one item per lane per round, until the budget is spent (the first item
   * always goes, whatever its size). One user's forty queued pushes thus do
   * not sit ahead of another user's one.
   */
  private takeBatch(): Queued[] {
    const maxMutations = this.opts.maxCommitMutations ?? DEFAULT_COMMIT_BUDGET.mutations;
    const maxBytes = this.opts.maxCommitBytes ?? DEFAULT_COMMIT_BUDGET.bytes;
    const batch: Queued[] = [];
    let mutations = 0;
    let bytes = 0;
    while (this.lanes.size > 0) {
      for (const key of [...this.lanes.keys()]) {
        const lane = this.lanes.get(key)!;
        const cost = costOf(lane[0]!);
        const over =
          (maxMutations > 0 && mutations + cost.mutations > maxMutations) ||
          (maxBytes > 0 && bytes + cost.bytes > maxBytes);
        if (batch.length > 0 && over) {
          return batch; // this lane is now first in line for the next commit
        }
        batch.push(lane.shift()!);
        mutations += cost.mutations;
        bytes += cost.bytes;
        this.lanes.delete(key);
        if (lane.length > 0) this.lanes.set(key, lane);
      }
    }
    return batch;
  }

  /**
   * Commits the next batch (see `takeBatch`) in one transaction, then fans out
   * and acks. What is left waits for a later flush, scheduled now: with
   * setImmediate, sockets are read between two commits, so acks go out and
   * newly arrived pushes join the lanes.
   */
  flush(): void {
    this.flushScheduled = false;
    if (this.lanes.size === 0) return;
    // One group commit at a time: the next waits for this one, then takes what queued meanwhile.
    // A throw past the commit (a sink, `onCommit`) must not leave the chain rejected: every later flush
    // would be skipped and every push would wait forever.
    this.committing = this.committing.then(() => this.commitNext()).catch(() => undefined);
  }

  private async commitNext(): Promise<void> {
    await this.ready.catch(() => undefined);
    if (this.lanes.size === 0) return;
    const stepDown = this.notPrimary();
    if (stepDown) {
      const all = [...this.lanes.values()].flat();
      this.lanes.clear();
      for (const item of all) failQueued(item, stepDown);
      return;
    }
    const batch = this.takeBatch();
    if (this.lanes.size > 0) this.scheduleFlush();
    const { store } = this;
    const now = this.opts.clock.now();
    const log: LogPage = { changes: [], outcomes: [], to: 0 };
    const outcomes = new Map<string, ClientOutcome>();
    let results: QueuedResult[];
    let head: number;
    try {
      await this.pruneServerWrites(now);
      results = await store.transact(async (tx) => {
        const out: QueuedResult[] = [];
        for (const item of batch) {
          if (item.kind === 'server') {
            out.push(await this.applyServerWrite(tx, item.write, now, log));
            continue;
          }
          const results: MutationResult[] = [];
          for (const m of item.mutations) results.push(await this.applyOne(tx, item.session, m, now, log, outcomes));
          out.push(results);
        }
        return out;
      });
      // A batch that wrote nothing (duplicates) still answers as of the head.
      head = log.to > 0 ? log.to : (await store.meta()).headLsn;
    } catch (err) {
      const error = toWireError(err);
      for (const item of batch) failQueued(item, error);
      return;
    }
    const { changes } = log;
    const wrote = log.to > 0;
    if (wrote) this.opts.onCommit?.(changes, log.outcomes);
    const acks = (): void =>
      batch.forEach((item, i) => {
        const result = results[i]!;
        if (item.kind === 'push') item.resolve({ ok: true, results: result as MutationResult[] });
        else item.resolve(result as ServerWriteResult);
      });
    if (this.tail) {
      // Fanned out from the log, with what other nodes committed before it, in LSN order; then acked.
      this.tail.wake();
      void this.tail.reached(head).then(acks);
      return;
    }
    const deliver = (): void => {
      if (wrote) this.fanOut(firstLsn(log) - 1, head, changes, outcomes);
      acks();
    };
    const { replicated } = this.opts;
    if (!replicated) {
      deliver();
      return;
    }
    // Even a batch of duplicates waits: what they answer for may not be on a replica yet.
    this.delivered = this.delivered
      .then(() => replicated(head))
      .then(deliver, (err: unknown) => {
        // Stepped down before the replicas had it: the commit may be rolled back, so no ack and no fan-out.
        for (const item of batch) failQueued(item, toWireError(err));
      });
  }

  /** The NOT_PRIMARY error when this node does not take writes now. */
  private notPrimary(): WireErrorShape | null {
    const role = this.opts.role?.();
    if (!role || role.primary) return null;
    const error: WireErrorShape & { primary?: string } = {
      code: 'NOT_PRIMARY',
      message: role.primaryUrl
        ? `this node is a replica; the primary is ${role.primaryUrl}`
        : 'this node is not the primary',
      retryable: true,
    };
    if (role.primaryUrl) error.primary = role.primaryUrl;
    return error;
  }

  /** Closes every client connection with NOT_PRIMARY (this node stepped down). */
  closeAll(): void {
    const error = this.notPrimary() ?? { code: 'NOT_PRIMARY', message: 'this node stepped down', retryable: true };
    for (const session of [...this.sessions]) {
      session.sink.close(error);
      this.disconnect(session);
    }
  }

  private async applyOne(
    tx: AsyncStoreTx,
    session: Session,
    m: Mutation,
    now: number,
    log: LogPage,
    outcomes: Map<string, ClientOutcome>,
  ): Promise<MutationResult> {
    const auth = session.auth!;
    const last = await tx.lastSeq(auth.clientId);
    if (m.seq <= last) {
      const error = await tx.rejection(auth.clientId, m.seq);
      return error ? { seq: m.seq, status: 'duplicate', error } : { seq: m.seq, status: 'duplicate' };
    }
    if (m.seq !== last + 1) {
      // Not recorded: the client must send the missing seqs first (per-client order).
      return {
        seq: m.seq,
        status: 'rejected',
        error: { code: 'BAD_REQUEST', message: `seq ${m.seq} out of order; expected ${last + 1}`, retryable: true },
      };
    }
    const ran = await runMutationAsync(
      this.opts.schema,
      m.name,
      m.args,
      { userId: auth.userId, roles: auth.roles, side: 'server' },
      tx,
      this.opts.limits,
    );
    // Quotas are the primary's alone: a client cannot know what its user holds on other devices.
    const outcome = await withQuota(ran, this.opts.schema, auth.userId, tx);
    const clientOutcome = outcomes.get(auth.clientId) ?? { lastSeq: 0, rejected: [] };
    clientOutcome.lastSeq = m.seq;
    outcomes.set(auth.clientId, clientOutcome);
    if (!outcome.ok) {
      // In the log, so replicas learn it and a promoted one still reports it. The client is told what was
      // stored (the message cut short if it echoed long input), so a later duplicate answer says the same.
      const entry = await tx.appendOutcome(auth.clientId, m.seq, outcome.error, now);
      const error = entry.error ?? outcome.error;
      clientOutcome.rejected.push({ seq: m.seq, error });
      log.outcomes.push(entry);
      log.to = entry.lsn;
      return { seq: m.seq, status: 'rejected', error };
    }
    if (outcome.writes.length === 0) {
      // A mutation that wrote nothing (say, a patch to the same values) still settles its seq, everywhere.
      const entry = await tx.appendOutcome(auth.clientId, m.seq, null, now);
      log.outcomes.push(entry);
      log.to = entry.lsn;
      return { seq: m.seq, status: 'applied', lsn: entry.lsn };
    }
    for (const write of outcome.writes) {
      const change = await tx.append(write, { clientId: auth.clientId, seq: m.seq }, now);
      log.changes.push(change);
      log.to = change.lsn;
    }
    await tx.recordOutcome(auth.clientId, m.seq, null);
    return { seq: m.seq, status: 'applied', lsn: log.to };
  }

  /**
   * One server-side write, inside the group commit. It takes the origin
   * (serverOrigin, seq 1), so the dedupe, the rejection kept for the
   * duplicate answer and their replication are those of a client's seq.
   */
  private async applyServerWrite(
    tx: AsyncStoreTx,
    w: ServerWrite,
    now: number,
    log: LogPage,
  ): Promise<ServerWriteResult> {
    const { origin } = w;
    if ((await tx.lastSeq(origin)) >= 1) {
      const record = await tx.serverOrigin(origin);
      const error = await tx.rejection(origin, 1);
      return {
        status: 'duplicate',
        ...(record !== undefined ? { lsn: record.lsn } : {}),
        ...(error !== undefined ? { error } : {}),
      };
    }
    const ran = await runMutationAsync(this.opts.schema, w.name, w.args, contextOf(w.principal), tx, this.opts.limits);
    const { principal } = w;
    // A user's server write counts against that user, as their client's would: its origin is bound to them.
    // The system principal's writes are not checked (an owner-only document still counts against its owner).
    if (!isSystem(principal) && (await tx.clientUser(origin)) === null) await tx.bindClient(origin, principal.userId);
    const outcome = isSystem(principal) ? ran : await withQuota(ran, this.opts.schema, principal.userId, tx);
    if (!outcome.ok || outcome.writes.length === 0) {
      // In the log, so a replica promoted later still answers a retry with this outcome.
      const entry = await tx.appendOutcome(origin, 1, outcome.ok ? null : outcome.error, now);
      log.outcomes.push(entry);
      log.to = entry.lsn;
      return outcome.ok ? { status: 'applied', lsn: entry.lsn } : { status: 'rejected', error: outcome.error };
    }
    for (const write of outcome.writes) {
      const change = await tx.append(write, { clientId: origin, seq: 1 }, now);
      log.changes.push(change);
      log.to = change.lsn;
    }
    await tx.recordOutcome(origin, 1, null);
    return { status: 'applied', lsn: log.to };
  }

  /** Forgets expired idempotency keys, a bounded batch at a time, before a group commit. */
  private async pruneServerWrites(now: number): Promise<void> {
    if (now < this.nextPrune) return;
    const retention = this.opts.serverWriteRetentionMs ?? 24 * 3600 * 1000;
    // Moved on first, so a slow prune is not started again by the commits that wait for it.
    this.nextPrune = now + PRUNE_EVERY_MS;
    const pruned = await this.store.pruneServerOrigins(now - retention, PRUNE_BATCH);
    // A full batch means more are due: the next commit goes on.
    this.nextPrune = pruned === PRUNE_BATCH ? now : now + PRUNE_EVERY_MS;
  }

  /**
   * Sends a commit to every live session, in its scope. Sessions that get the
   * same bytes (same `from`/`to`, same visible changes, none of them their
   * own, no outcome of theirs) share one message object, handed once to
   * their sinks' channel, which encodes it once: at thousands of sessions the
   * per-socket encoding was most of the fan-out's time.
   */
  private fanOut(
    batchFrom: number,
    head: number,
    changes: readonly Change[],
    outcomes: Map<string, ClientOutcome>,
  ): void {
    this.fannedOut = Math.max(this.fannedOut, head);
    const view = new FanoutView(changes);
    // By list, then by `from` (`to` is the head for every session sent to here).
    const groups = new Map<VisibleList, Map<number, FanoutGroup>>();
    for (const session of this.sessions) {
      if (!session.live || session.closed || !session.auth) continue;
      // Its pump already read past this batch while the batch waited for replicas.
      if (session.cursor >= head) continue;
      if (session.cursor > batchFrom) {
        // Its pump read into this batch before it went live: it gets only the rest.
        this.sendRest(session, head, changes, outcomes);
        continue;
      }
      const { userId, clientId, allOf } = session.auth;
      const outcome = outcomes.get(clientId);
      const visible = view.visibleTo(userId, allOf);
      // Nothing for this client: send nothing, and leave the cursor where its last message ended, so
      // that the next message starts at the client's checkpoint and covers the LSNs skipped here.
      if (visible.changes.length === 0 && outcome === undefined) continue;
      const from = session.cursor;
      const to = Math.max(head, session.cursor);
      session.cursor = to;
      if (outcome !== undefined || view.madeAny(clientId)) {
        // Its own changes (with their origin) or outcomes: a message of its own.
        const msg: Changes = { from, to, changes: view.visibleWithOrigin(userId, clientId, allOf) };
        if (outcome !== undefined) {
          msg.lastSeq = outcome.lastSeq;
          if (outcome.rejected.length > 0) msg.rejected = outcome.rejected;
        }
        session.sink.sendChanges(msg);
        continue;
      }
      let byFrom = groups.get(visible);
      if (byFrom === undefined) groups.set(visible, (byFrom = new Map<number, FanoutGroup>()));
      let group = byFrom.get(from);
      if (group === undefined) {
        group = { msg: { from, to, changes: [...visible.changes] }, sinks: [] };
        byFrom.set(from, group);
      }
      group.sinks.push(session.sink);
    }
    for (const byFrom of groups.values()) for (const { msg, sinks } of byFrom.values()) sendToAll(sinks, msg);
  }

  /** A live session whose cursor is inside a fanned-out batch: the batch's entries after its cursor. */
  private sendRest(
    session: Session,
    head: number,
    changes: readonly Change[],
    outcomes: Map<string, ClientOutcome>,
  ): void {
    const { userId, clientId, allOf } = session.auth!;
    const rest = changes.filter((c) => c.lsn > session.cursor && inScope(c, userId, allOf));
    const outcome = outcomes.get(clientId);
    if (rest.length === 0 && outcome === undefined) return;
    const msg: Changes = { from: session.cursor, to: head, changes: rest.map((c) => ownOrigin(c, clientId)) };
    // A seq settled at or below the cursor was told with the page that held it; telling it again is harmless.
    if (outcome !== undefined) {
      msg.lastSeq = outcome.lastSeq;
      if (outcome.rejected.length > 0) msg.rejected = outcome.rejected;
    }
    session.cursor = head;
    session.sink.sendChanges(msg);
  }

  /**
   * The tail's read. Another node may have compacted past this node's tail
   * (it compacts up to what it has fanned out, and this node may lag behind
   * it: a lost NOTIFY, a stall): `readLog` below the horizon then starts at
   * the horizon, and an empty page says nothing of what is gone. LSNs are
   * dense (one per change or outcome), so a page with fewer entries than its
   * range, or an empty one, is checked against the horizon, and the page is
   * made to cover the hole up to it: `fanOutPage` sees the hole.
   */
  private async readTail(after: number, limit: number, maxBytes?: number): Promise<LogPage> {
    const page = await this.store.readLog(after, limit, maxBytes);
    const entries = page.changes.length + page.outcomes.length;
    if (entries > 0 && entries === page.to - after) return page;
    const { horizon } = await this.store.meta();
    return horizon > page.to ? { ...page, to: horizon } : page;
  }

  /**
   * `sharedLog`: one page of the shared log, read by the tail in LSN order,
   * goes to the live sessions like a local commit: each client's own
   * outcomes come from the page's entries.
   */
  private fanOutPage(page: LogPage): void {
    const from = this.fannedOut;
    if (page.changes.length + page.outcomes.length < page.to - from) {
      // A hole: part of (from, to] was compacted away before this node read it. Its live sessions behind
      // `to` cannot be sent what is gone: they catch up again (a snapshot, their cursor being below the horizon).
      for (const session of this.sessions) {
        if (!session.live || session.closed || session.cursor >= page.to) continue;
        session.live = false;
        this.opts.schedule(() => void this.pump(session));
      }
      this.fannedOut = Math.max(this.fannedOut, page.to);
      return;
    }
    this.fanOut(from, page.to, page.changes, outcomesByClient(page));
  }

  /** Brings one session from its checkpoint to the head, then marks it live. */
  private async pump(session: Session): Promise<void> {
    const { store } = this;
    try {
      await this.ready;
      if (session.closed || !session.auth) return;
      // The outcomes below the checkpoint are told again with the last page, for a client that lost them
      // with a connection. Every entry of what they settle is at or below the head read after them (the
      // fence), so the last page must reach it: then the page and what it tells agree.
      const { clientId: self, pendingFrom } = session.auth;
      // One transaction (on PostgreSQL, one take of the head lock) for the last seq and every rejection read.
      const told = await store.transact(async (tx) => {
        const lastSeq = await tx.lastSeq(self);
        return this.outcomesSince({ lastSeq, rejection: (seq) => tx.rejection(self, seq) }, pendingFrom);
      });
      const fence = (await store.meta()).headLsn;
      for (;;) {
        if (session.closed || !session.auth) return;
        const { userId, clientId } = session.auth;
        const meta = await store.meta();
        if (
          session.needsSnapshot ||
          session.cursor < meta.horizon ||
          session.cursor > meta.headLsn ||
          (session.cursor === 0 && meta.headLsn > 0)
        ) {
          session.needsSnapshot = false;
          await this.sendSnapshot(session);
          continue;
        }
        const page = await store.readLog(session.cursor, this.pageSize, this.pageBytes);
        const { to } = page;
        if (session.closed) return;
        // Compacted past the cursor since the horizon was read (LSNs are dense, so a hole shows): a snapshot.
        if (page.changes.length + page.outcomes.length < to - session.cursor) {
          session.needsSnapshot = true;
          continue;
        }
        // Nothing a client applies may be lost to a failover (it would read an older state after a
        // newer one, and settle outcomes the new primary lacks): each page waits for the replicas.
        if (this.opts.replicated) await this.opts.replicated(to);
        if (session.closed) return;
        const msg: Changes = {
          from: session.cursor,
          to,
          changes: page.changes
            .filter((c) => inScope(c, userId, session.auth!.allOf))
            .map((c) => ownOrigin(c, clientId)),
        };
        // A page that holds the client's own outcomes settles them with their effects, or the
        // client would re-run mutations already applied in the confirmed data (a double count).
        const own = outcomesByClient(page).get(clientId);
        session.cursor = to;
        // Caught up with every fan-out so far, in this same turn: the session goes live, and every later
        // fan-out reaches it (one that overlaps its cursor sends only the rest). Else one more page.
        if (to >= fence && to >= this.fannedOut) {
          msg.lastSeq = Math.max(told.lastSeq, own?.lastSeq ?? 0);
          const rejected = mergeRejections(told.rejected, own?.rejected ?? []);
          if (rejected.length > 0) msg.rejected = rejected;
          session.live = true;
          session.sink.sendChanges(msg);
          return;
        }
        if (own !== undefined) {
          msg.lastSeq = own.lastSeq;
          if (own.rejected.length > 0) msg.rejected = own.rejected;
        }
        await session.sink.sendPage(msg);
      }
    } catch (err) {
      if (!session.closed) session.sink.close(toWireError(err));
      this.disconnect(session);
    }
  }

  /**
   * Streams the scope page by page from a store snapshot cursor: the pages,
   * `asOf` and the settled seqs all come from one point however many commits
   * land between pages (a snapshot that shows a mutation's effect reports its
   * seq settled: no double count). Only one page is read at a time, each once
   * the client acked the one before, and at most `maxConcurrentSnapshots`
   * stream at once; the cursor is closed however this ends.
   */
  private async sendSnapshot(session: Session): Promise<void> {
    const { store } = this;
    const auth = session.auth!;
    if (session.closed || !(await this.snapshotGate.enter(session))) return;
    let cursor: AsyncSnapshotCursor | undefined;
    try {
      // What the snapshot tells (data and settled seqs) must already be on the replicas minSyncReplicas asks for.
      while (await this.awaitReplicated((await store.meta()).headLsn));
      if (session.closed) return;
      // Opened at once after the wait: it reads as of the head that was just replicated.
      const open = await store.openSnapshot({ userId: auth.userId, allOf: auth.allOf }, auth.clientId);
      cursor = open;
      const { asOf, lastSeq } = open;
      const { rejected } = await this.outcomesSince(open, auth.pendingFrom);
      for (let page = 0; ; page++) {
        if (session.closed) return;
        const { docs, done } = await open.next(this.snapshotPageSize, this.snapshotPageBytes);
        // Nothing more to read: the read transaction is freed before the wait for the last ack.
        if (done) await open.close();
        const msg: Snapshot = { asOf, page, docs, done, lastSeq, rejected: done ? rejected : [] };
        await session.sink.sendSnapshot(msg);
        if (done) break;
      }
      session.cursor = asOf;
    } finally {
      await cursor?.close();
      this.snapshotGate.release();
    }
  }

  /**
   * With minSyncReplicas, waits until `head` is replicated; returns whether
   * more was committed meanwhile (the caller reads again). Without it, false
   * at once. Snapshots tell a client which of its mutations settled, so they
   * must not run ahead of replication.
   */
  private async awaitReplicated(head: number): Promise<boolean> {
    const { replicated } = this.opts;
    if (!replicated) return false;
    await replicated(head);
    return (await this.store.meta()).headLsn !== head;
  }

  /** The client's last seq, and its rejections from `from` on (bounded: a client's outbox is). */
  private async outcomesSince(reader: OutcomeReader, from: number): Promise<ClientOutcome> {
    const { lastSeq } = reader;
    const rejected: ClientOutcome['rejected'] = [];
    let bytes = 0;
    // Newest first, so a byte cap keeps the newest; reversed into seq order at the end.
    for (let seq = lastSeq; seq >= Math.max(from, lastSeq - MAX_REPORTED_REJECTIONS + 1, 1); seq--) {
      const error = await reader.rejection(seq);
      if (!error) continue;
      bytes += jsonByteLength({ seq, error }) + 1;
      if (bytes > MAX_REPORTED_REJECTION_BYTES) break;
      rejected.push({ seq, error });
    }
    return { lastSeq, rejected: rejected.reverse() };
  }

  /** Drops the log up to `upTo` (default: the head); sessions behind it will get snapshots. */
  async compact(upTo?: number): Promise<{ removedChanges: number; removedTombstones: number; horizon: number }> {
    const head = (await this.store.meta()).headLsn;
    // On a shared log, never past what this node has fanned out: its live sessions still need the rest.
    const limit = this.tail ? Math.min(head, this.fannedOut) : head;
    return this.store.compact(Math.min(upTo ?? limit, limit));
  }
}

/** Each client's outcomes in one log page: the highest seq settled in it and its rejections. */
function outcomesByClient(page: LogPage): Map<string, ClientOutcome> {
  const outcomes = new Map<string, ClientOutcome>();
  const of = (clientId: string): ClientOutcome => {
    let o = outcomes.get(clientId);
    if (o === undefined) outcomes.set(clientId, (o = { lastSeq: 0, rejected: [] }));
    return o;
  };
  for (const c of page.changes)
    if (c.clientId !== null && c.seq !== null) of(c.clientId).lastSeq = Math.max(of(c.clientId).lastSeq, c.seq);
  // Outcome entries come in LSN order, and a client's seqs rise with its LSNs: rejections stay in seq order.
  for (const e of page.outcomes) {
    const o = of(e.clientId);
    o.lastSeq = Math.max(o.lastSeq, e.seq);
    if (e.error !== null) o.rejected.push({ seq: e.seq, error: e.error });
  }
  return outcomes;
}

/** `outcome`, or its rejection with QUOTA_EXCEEDED when its writes would take `writer` past a quota. */
async function withQuota(
  outcome: RunOutcome,
  schema: AppSchema,
  writer: string,
  tx: AsyncStoreTx,
): Promise<RunOutcome> {
  if (!outcome.ok) return outcome;
  const error = await quotaError(schema, outcome.writes, writer, tx);
  return error === null ? outcome : { ok: false, error };
}

/** The first LSN a commit's log entries took. */
function firstLsn(log: LogPage): number {
  return Math.min(log.changes[0]?.lsn ?? Infinity, log.outcomes[0]?.lsn ?? Infinity);
}

/** Two lists of rejections in seq order, each seq once. */
function mergeRejections(a: ClientOutcome['rejected'], b: ClientOutcome['rejected']): ClientOutcome['rejected'] {
  if (b.length === 0) return a;
  const bySeq = new Map<number, WireErrorShape>();
  for (const r of [...a, ...b]) bySeq.set(r.seq, r.error);
  return [...bySeq.entries()].sort(([x], [y]) => x - y).map(([seq, error]) => ({ seq, error }));
}

function isHolding(store: AsyncStore | HoldingStore): store is HoldingStore {
  return 'holdTransaction' in store;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function errorOf(e: WireErrorShape): TidelineError {
  return new TidelineError(e.code, e.message, { retryable: e.retryable });
}

function badRequest(what: string, detail: string | undefined): WireErrorShape {
  return new TidelineError('BAD_REQUEST', `malformed ${what}: ${detail ?? 'invalid'}`).toWire();
}

/** Sessions that get one message, byte for byte. */
interface FanoutGroup {
  msg: Changes;
  sinks: SessionSink[];
}

/** Hands `msg` to each channel once for its sinks; a sink without a channel gets its own `sendChanges`. */
function sendToAll(sinks: readonly SessionSink[], msg: Changes): void {
  const channel = sinks[0]?.channel;
  if (sinks.length > 1 && channel !== undefined && sinks.every((s) => s.channel === channel)) {
    channel.sendToMany(sinks, msg);
    return;
  }
  const byChannel = new Map<ChangesChannel, SessionSink[]>();
  for (const sink of sinks) {
    if (sink.channel === undefined) {
      sink.sendChanges(msg);
      continue;
    }
    const list = byChannel.get(sink.channel);
    if (list) list.push(sink);
    else byChannel.set(sink.channel, [sink]);
  }
  for (const [channel, list] of byChannel) {
    if (list.length === 1) list[0]!.sendChanges(msg);
    else channel.sendToMany(list, msg);
  }
}

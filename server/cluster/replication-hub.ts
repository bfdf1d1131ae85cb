import { timingSafeEqual } from 'node:crypto';
import type { Namespace, Socket } from 'socket.io';
import { z } from 'zod';
import type { Clock } from '../../shared/clock';
import { TidelineError } from '../../shared/errors';
import type { Change } from '../../shared/protocol/change';
import { followSchema, replAckSchema } from '../../shared/protocol/replication';
import type { FollowAck, ReplChanges, ReplSnapshot } from '../../shared/protocol/replication';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import type { OutcomeEntry, Store } from '../store/store';
import { DEFAULT_PAGE_BYTES } from '../sync/sync-core';
import { ensureClusterId, identityAt, lineageRefusal } from './lineage';
import { sharedPrefixEnd } from './terms';

/** What the primary knows of one replica. */
export interface ReplicaInfo {
  replicaId: string;
  url: string | null;
  connected: boolean;
  appliedLsn: number;
  lagLsn: number;
  lagMs: number;
  live: boolean;
}

interface ReplicaSession {
  socket: Socket;
  replicaId: string;
  url: string | null;
  cursor: number;
  live: boolean;
  appliedLsn: number;
  closed: boolean;
}

export interface HubOptions {
  store: Store;
  clock: Clock;
  /** Whether this node is the primary now; followers of a non-primary are told where to go. */
  role: () => { primary: true } | { primary: false; primaryUrl: string | null };
  /**
   * A follower claims a higher term than ours. A claim, not proof: anyone
   * with the cluster secret can send it, so the hub never steps down on it.
   * The node may take it as a hint to ask its peers now (a primary learns of
   * a higher term only from a peer's status).
   */
  onHigherTerm: (term: number) => void;
  pageSize?: number;
  /**
   * Bytes per catch-up page (default DEFAULT_PAGE_BYTES, the clients' `--catch-up-page-bytes`): without it a
   * page of 2,000 large changes would be hundreds of MB on both nodes at once. One mutation is never split.
   */
  pageBytes?: number;
  snapshotPageSize?: number;
}

const ACK_TIMEOUT_MS = 60_000;

/**
 * The primary's side of /replication. Each replica catches up from its
 * checkpoint (or through a snapshot), then gets every commit as it happens.
 * Its acks report what it has applied durably; `waitFor(lsn, k)` resolves when
 * k replicas have applied `lsn` (semi-synchronous replication).
 */
export class ReplicationHub {
  private readonly sessions = new Map<string, ReplicaSession>();
  private readonly known = new Map<string, { url: string | null; appliedLsn: number }>();
  /** Commit times of recent LSNs, to measure lag in milliseconds. */
  private readonly commitTimes: Array<{ lsn: number; ts: number }> = [];
  private waiters: Array<{ lsn: number; k: number; resolve: () => void; reject: (err: Error) => void }> = [];
  private readonly pageSize: number;
  private readonly pageBytes: number;
  private readonly snapshotPageSize: number;

  constructor(private readonly opts: HubOptions) {
    this.pageSize = opts.pageSize ?? 2000;
    this.pageBytes = opts.pageBytes ?? DEFAULT_PAGE_BYTES;
    this.snapshotPageSize = opts.snapshotPageSize ?? 2000;
  }

  attach(nsp: Namespace, clusterSecret: string): void {
    nsp.use((socket, next) => {
      const auth: unknown = socket.handshake.auth;
      const secret = typeof auth === 'object' && auth !== null && 'secret' in auth ? auth.secret : undefined;
      if (typeof secret === 'string' && secret.length > 0 && sameSecret(secret, clusterSecret)) return next();
      next(new Error('UNAUTHORIZED: wrong or missing cluster secret'));
    });
    nsp.on('connection', (socket: Socket) => {
      socket.on('follow', (raw: unknown, ack: unknown) => {
        if (typeof ack !== 'function') return;
        (ack as (res: FollowAck) => void)(this.follow(socket, raw));
      });
      socket.on('disconnect', () => {
        for (const [id, s] of this.sessions) {
          if (s.socket === socket) {
            s.closed = true;
            this.sessions.delete(id);
          }
        }
        this.settleWaiters();
      });
    });
  }

  private follow(socket: Socket, raw: unknown): FollowAck {
    // The version first: a follower of another version has other fields, and must hear why it is refused.
    const version = z.object({ protocol: z.number().int() }).safeParse(raw);
    if (version.success && version.data.protocol !== PROTOCOL_VERSION) {
      const { protocol } = version.data;
      return {
        ok: false,
        error: {
          code: 'PROTOCOL_MISMATCH',
          message:
            `this primary speaks replication protocol ${PROTOCOL_VERSION}, the replica ${protocol}: ` +
            'run the same Tideline version on every node',
          retryable: false,
        },
      };
    }
    const parsed = followSchema.safeParse(raw);
    if (!parsed.success) {
      return { ok: false, error: new TidelineError('BAD_REQUEST', 'malformed follow').toWire() };
    }
    const msg = parsed.data;
    const role = this.opts.role();
    if (!role.primary) {
      const error = { code: 'NOT_PRIMARY' as const, message: 'this node is not the primary', retryable: true };
      return { ok: false, error: role.primaryUrl ? { ...error, primary: role.primaryUrl } : error };
    }
    const { store } = this.opts;
    const meta = store.meta();
    if (msg.term > meta.term) {
      // Refused without stepping down: a follower of a newer primary should look for it elsewhere.
      this.opts.onHigherTerm(msg.term);
      return {
        ok: false,
        error: {
          code: 'NOT_PRIMARY',
          message: `this node is the primary of term ${meta.term}, not of the follower's term ${msg.term}`,
          retryable: true,
        },
      };
    }
    const terms = store.terms();
    const shared = Math.min(msg.checkpoint, sharedPrefixEnd(terms, meta.headLsn, msg.checkpointTerm));
    const diverged = msg.checkpoint > shared;
    const clusterId = ensureClusterId(store);
    const refusal = lineageRefusal(clusterId, msg, !diverged, diverged ? null : identityAt(store, msg.checkpoint));
    if (refusal) return { ok: false, error: refusal };
    this.sessions.get(msg.replicaId)?.socket.disconnect(true);
    const session: ReplicaSession = {
      socket,
      replicaId: msg.replicaId,
      url: msg.url,
      cursor: diverged ? -1 : msg.checkpoint,
      live: false,
      appliedLsn: diverged ? shared : msg.checkpoint,
      closed: false,
    };
    this.sessions.set(msg.replicaId, session);
    this.known.set(msg.replicaId, { url: msg.url, appliedLsn: session.appliedLsn });
    // Its checkpoint may already cover commits that wait for it (its last ack was lost with the old connection).
    this.settleWaiters();
    setImmediate(() => void this.pump(session));
    const ack: FollowAck = {
      ok: true,
      primaryId: meta.serverId,
      clusterId,
      term: meta.term,
      headLsn: meta.headLsn,
      horizon: meta.horizon,
      terms,
    };
    if (diverged) ack.forkLsn = shared;
    return ack;
  }

  /** Called after every commit with its log entries (each list in LSN order, together without holes). */
  onCommit(changes: readonly Change[], outcomes: readonly OutcomeEntry[] = []): void {
    const first = Math.min(changes[0]?.lsn ?? Infinity, outcomes[0]?.lsn ?? Infinity);
    if (first === Infinity) return;
    const to = Math.max(changes[changes.length - 1]?.lsn ?? 0, outcomes[outcomes.length - 1]?.lsn ?? 0);
    this.commitTimes.push({ lsn: to, ts: this.opts.clock.now() });
    if (this.commitTimes.length > 10_000) this.commitTimes.splice(0, this.commitTimes.length - 10_000);
    const from = first - 1;
    let users: Record<string, string> | null = null;
    for (const s of this.sessions.values()) {
      if (!s.live || s.closed || s.cursor !== from) continue;
      s.cursor = to;
      users ??= this.bindingsOf(changes, outcomes);
      this.send(s, 'repl:changes', { from, to, changes: [...changes], outcomes: [...outcomes], users }).catch(() =>
        s.socket.disconnect(true),
      );
    }
  }

  private async pump(s: ReplicaSession): Promise<void> {
    const { store } = this.opts;
    try {
      for (;;) {
        if (s.closed) return;
        const meta = store.meta();
        if (s.cursor < meta.horizon || s.cursor > meta.headLsn) {
          await this.sendSnapshot(s);
          continue;
        }
        const page = store.readLog(s.cursor, this.pageSize, this.pageBytes);
        const { to } = page;
        if (to <= s.cursor) {
          s.live = true;
          return;
        }
        const msg: ReplChanges = {
          from: s.cursor,
          to,
          changes: page.changes,
          outcomes: page.outcomes,
          users: this.bindingsOf(page.changes, page.outcomes),
        };
        s.cursor = to;
        if (to >= meta.headLsn) {
          // Caught up: later commits reach it from onCommit, in order behind this page.
          s.live = true;
          this.send(s, 'repl:changes', msg).catch(() => s.socket.disconnect(true));
          return;
        }
        await this.send(s, 'repl:changes', msg);
      }
    } catch {
      s.socket.disconnect(true);
    }
  }

  /**
   * The bindings of the clients whose entries a message carries. A binding
   * made by a hello with no mutation after it reaches replicas only with a
   * snapshot: until then the client id has no seq, rejection or document
   * there to reveal, so a promoted replica that lacks it gives nothing away.
   */
  private bindingsOf(changes: readonly Change[], outcomes: readonly OutcomeEntry[]): Record<string, string> {
    const ids = new Set<string>();
    for (const c of changes) if (c.clientId !== null) ids.add(c.clientId);
    for (const o of outcomes) ids.add(o.clientId);
    return ids.size === 0 ? {} : this.opts.store.bindingsOf(ids);
  }

  private async sendSnapshot(s: ReplicaSession): Promise<void> {
    const snapshot = this.opts.store.exportSnapshot();
    const pages = Math.max(1, Math.ceil(snapshot.docs.length / this.snapshotPageSize));
    for (let page = 0; page < pages; page++) {
      if (s.closed) return;
      const done = page === pages - 1;
      const msg: ReplSnapshot = {
        asOf: snapshot.asOf,
        page,
        done,
        terms: snapshot.terms,
        docs: snapshot.docs.slice(page * this.snapshotPageSize, (page + 1) * this.snapshotPageSize),
        clients: done ? snapshot.clients : [],
        rejections: done ? snapshot.rejections : [],
      };
      await this.send(s, 'repl:snapshot', msg);
    }
    s.cursor = snapshot.asOf;
  }

  private async send(s: ReplicaSession, event: string, msg: ReplChanges | ReplSnapshot): Promise<void> {
    const res: unknown = await s.socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, msg);
    const ack = replAckSchema.parse(res);
    if (ack.appliedLsn > s.appliedLsn) {
      s.appliedLsn = ack.appliedLsn;
      this.known.set(s.replicaId, { url: s.url, appliedLsn: ack.appliedLsn });
      this.settleWaiters();
    }
  }

  /** Resolves once `k` connected replicas have applied `lsn`. */
  waitFor(lsn: number, k: number): Promise<void> {
    if (k <= 0 || this.countAtLeast(lsn) >= k) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ lsn, k, resolve, reject }));
  }

  private countAtLeast(lsn: number): number {
    let n = 0;
    for (const s of this.sessions.values()) if (!s.closed && s.appliedLsn >= lsn) n++;
    return n;
  }

  private settleWaiters(): void {
    if (this.waiters.length === 0) return;
    this.waiters = this.waiters.filter((w) => {
      if (this.countAtLeast(w.lsn) < w.k) return true;
      w.resolve();
      return false;
    });
  }

  /** Replicas with an unmet wait: whether `minSyncReplicas` is being held up. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Tells every follower to go (this node stepped down). */
  disconnectAll(): void {
    for (const s of this.sessions.values()) s.socket.disconnect(true);
    // Commits still waiting for replicas will never be acked by this node: fail them.
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(new TidelineError('NOT_PRIMARY', 'this node stepped down', { retryable: true }));
  }

  replicas(): ReplicaInfo[] {
    const head = this.opts.store.meta().headLsn;
    const now = this.opts.clock.now();
    return [...this.known].map(([replicaId, k]) => {
      const s = this.sessions.get(replicaId);
      const applied = s?.appliedLsn ?? k.appliedLsn;
      const firstMissing = this.commitTimes.find((c) => c.lsn > applied);
      return {
        replicaId,
        url: k.url,
        connected: s !== undefined && !s.closed,
        live: s?.live ?? false,
        appliedLsn: applied,
        lagLsn: Math.max(0, head - applied),
        lagMs: firstMissing ? Math.max(0, now - firstMissing.ts) : 0,
      };
    });
  }
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

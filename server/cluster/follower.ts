import { io } from 'socket.io-client';
import type { Socket } from 'socket.io-client';
import type { Clock } from '../../shared/clock';
import type { WireError } from '../../shared/protocol/wire-error';
import { followAckSchema, replChangesSchema, replSnapshotSchema } from '../../shared/protocol/replication';
import type { ReplAck, ReplSnapshot } from '../../shared/protocol/replication';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { mergeByLsn } from '../store/log';
import type { Store } from '../store/store';
import { identityAt, lineageAdvice } from './lineage';
import { writeRollbackFile } from './rollback';
import { termAt } from './terms';

/** `refused`: the primary refused this node's data for good (another cluster, a diverged history, another version). */
export type FollowerState = 'connecting' | 'catching-up' | 'live' | 'refused' | 'stopped';

export interface FollowerOptions {
  store: Store;
  clock: Clock;
  primaryUrl: string;
  clusterSecret: string;
  replicaId: string;
  /** This node's own URL, reported to the primary. */
  selfUrl: string | null;
  dataDir: string;
  /** Called after changes were applied, with the new head (read scaling, status). */
  onApplied?: (head: number) => void;
  /** The primary refused us for good (wrong secret, protocol); or told us where the primary is. */
  onError?: (error: WireError) => void;
  onRollback?: (path: string) => void;
  /** Where the operator is told what went wrong and what to do; default console.error. */
  log?: (line: string) => void;
}

/**
 * The replica's side of /replication: follows the primary's log in LSN order
 * into its own store and acks what it applied (the ack is what the primary's
 * `minSyncReplicas` waits for, so it goes only after the store transaction).
 *
 *   connecting ──follow ok──▶ catching-up ──first live page──▶ live
 *        ▲                          │                            │
 *        └──────── disconnect (Socket.IO reconnects) ────────────┘
 *        │
 *        └──follow refused for good (LINEAGE_MISMATCH, PROTOCOL_MISMATCH)──▶ refused
 *
 * A refused follower stays refused (an operator must replace its data, or
 * its version, and restart it): it serves no reads meanwhile.
 */
export class Follower {
  private socket: Socket | null = null;
  private staged: ReplSnapshot[] = [];
  /**
   * Messages are handled in order on this chain, behind the follow handshake:
   * a snapshot may arrive in the same packet as the follow ack, and must not
   * be applied before the rollback file of a diverged tail is written.
   */
  private chain: Promise<void> = Promise.resolve();
  state: FollowerState = 'connecting';
  lastError: WireError | null = null;
  /** For a refused follower: what the operator should do. */
  advice: string | null = null;
  primaryTerm = 0;

  constructor(private readonly opts: FollowerOptions) {}

  start(): void {
    const socket = io(`${this.opts.primaryUrl.replace(/\/$/, '')}/replication`, {
      transports: ['websocket'],
      auth: { secret: this.opts.clusterSecret },
      reconnectionDelay: 200,
      reconnectionDelayMax: 2000,
    });
    this.socket = socket;
    socket.on('connect', () => this.enqueue(() => this.follow(socket)));
    socket.on('connect_error', (err: Error) => {
      if (this.state === 'refused') return;
      this.state = 'connecting';
      this.lastError = {
        code: err.message.startsWith('UNAUTHORIZED') ? 'UNAUTHORIZED' : 'INTERNAL',
        message: err.message,
        retryable: true,
      };
      // A refused handshake is not retried by Socket.IO; try again later in case the secret is being rotated.
      if (!socket.active) this.opts.clock.setTimeout(() => this.socket === socket && socket.connect(), 2000);
    });
    socket.on('disconnect', () => {
      if (this.state !== 'stopped' && this.state !== 'refused') this.state = 'connecting';
    });
    socket.on('repl:changes', (raw: unknown, ack: unknown) => this.enqueue(() => this.onChanges(socket, raw, ack)));
    socket.on('repl:snapshot', (raw: unknown, ack: unknown) => this.enqueue(() => this.onSnapshot(socket, raw, ack)));
  }

  private enqueue(task: () => void | Promise<void>): void {
    this.chain = this.chain.then(task).catch((err: unknown) => {
      this.lastError = { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err), retryable: true };
      this.socket?.disconnect();
      this.socket?.connect();
    });
  }

  stop(): void {
    this.state = 'stopped';
    this.socket?.removeAllListeners();
    this.socket?.disconnect();
    this.socket = null;
  }

  private async follow(socket: Socket): Promise<void> {
    const { store } = this.opts;
    const meta = store.meta();
    const terms = store.terms();
    try {
      const res: unknown = await socket.timeout(10_000).emitWithAck('follow', {
        protocol: PROTOCOL_VERSION,
        replicaId: this.opts.replicaId,
        url: this.opts.selfUrl,
        term: meta.term,
        checkpoint: meta.headLsn,
        checkpointTerm: termAt(terms, meta.headLsn) || meta.term,
        clusterId: store.clusterId(),
        checkpointEntry: identityAt(store, meta.headLsn),
      });
      const ack = followAckSchema.parse(res);
      if (!ack.ok) {
        this.lastError = ack.error;
        if (!ack.error.retryable) this.refuse(ack.error);
        this.opts.onError?.(ack.error);
        socket.disconnect();
        if (ack.error.retryable) this.opts.clock.setTimeout(() => this.socket === socket && socket.connect(), 1000);
        return;
      }
      // Our data is of its cluster (checked by the primary), or we had none: from now on we are of its cluster.
      if (store.clusterId() !== ack.clusterId) store.setClusterId(ack.clusterId);
      this.primaryTerm = ack.term;
      if (ack.forkLsn !== undefined) {
        // Our tail was never on the new primary: keep it for the operator; a snapshot follows.
        const log = store.readLog(ack.forkLsn, Number.MAX_SAFE_INTEGER);
        const tail = mergeByLsn(log.changes, log.outcomes);
        const path = writeRollbackFile(this.opts.dataDir, tail, this.opts.clock.now());
        if (path) this.opts.onRollback?.(path);
      } else {
        store.adoptTerms(ack.terms);
      }
      this.lastError = null;
      // Already at the primary's head: the hub goes live without sending anything.
      this.state = ack.forkLsn === undefined && ack.headLsn === meta.headLsn ? 'live' : 'catching-up';
    } catch (err) {
      this.lastError = { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err), retryable: true };
      socket.disconnect();
      this.opts.clock.setTimeout(() => this.socket === socket && socket.connect(), 1000);
    }
  }

  /** The primary will not take our data: stop, say so, and tell the operator what to do. */
  private refuse(error: WireError): void {
    this.state = 'refused';
    const { primaryUrl, dataDir } = this.opts;
    this.advice =
      error.code === 'LINEAGE_MISMATCH'
        ? lineageAdvice(dataDir, primaryUrl)
        : 'this replica serves no reads until it runs the same Tideline version as its primary and is restarted';
    const log = this.opts.log ?? ((line: string) => console.error(line));
    log(`ERROR: the primary at ${primaryUrl} refused to be followed: ${error.code}: ${error.message}`);
    log(`       ${this.advice}`);
  }

  private onChanges(socket: Socket, raw: unknown, ack: unknown): void {
    const reply = typeof ack === 'function' ? (ack as (r: ReplAck) => void) : null;
    const parsed = replChangesSchema.safeParse(raw);
    const { store } = this.opts;
    if (!parsed.success) {
      socket.disconnect();
      return;
    }
    const head = store.meta().headLsn;
    if (parsed.data.from > head) {
      // A gap: reconnect and catch up from our checkpoint.
      socket.disconnect();
      socket.connect();
      return;
    }
    const { changes, outcomes, users } = parsed.data;
    store.applyReplicated(
      changes.filter((c) => c.lsn > head),
      outcomes.filter((o) => o.lsn > head),
      users,
    );
    this.state = 'live';
    const applied = store.meta().headLsn;
    reply?.({ appliedLsn: applied });
    this.opts.onApplied?.(applied);
  }

  private onSnapshot(socket: Socket, raw: unknown, ack: unknown): void {
    const reply = typeof ack === 'function' ? (ack as (r: ReplAck) => void) : null;
    const parsed = replSnapshotSchema.safeParse(raw);
    if (!parsed.success) {
      socket.disconnect();
      return;
    }
    const msg = parsed.data;
    if (msg.page === 0) this.staged = [];
    this.staged.push(msg);
    const { store } = this.opts;
    if (msg.done) {
      store.importSnapshot({
        asOf: msg.asOf,
        terms: msg.terms,
        docs: this.staged.flatMap((p) => p.docs),
        clients: msg.clients.map(({ clientId, lastSeq, userId }) =>
          userId === undefined ? { clientId, lastSeq } : { clientId, lastSeq, userId },
        ),
        rejections: msg.rejections,
      });
      this.staged = [];
      // As after a page of changes: with nothing committed since the snapshot, no page follows to say so.
      this.state = 'live';
      this.opts.onApplied?.(msg.asOf);
    }
    // Until the last page is in, nothing of the snapshot is applied: report nothing new.
    reply?.({ appliedLsn: msg.done ? msg.asOf : 0 });
  }
}

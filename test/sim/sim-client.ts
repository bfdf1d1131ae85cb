import { SyncEngine } from '../../client/sync/engine';
import type { ConnectionState, EngineEvent } from '../../client/sync/engine';
import { storeSchema } from '../../shared/apps/store';
import { fullyReadable } from '../../shared/schema/define-schema';
import type { JsonValue } from '../../shared/json';
import type { Rng } from './random';
import { confirmedOf, LocalStoreFault, ObservedLocalStore } from './observed-local-store';
import type { Committed, LocalFaults } from './observed-local-store';
import type { ServerHistory } from './server-history';
import { diffViews } from './server-history';
import type { SimNetwork } from './sim-network';
import type { VirtualClock } from './virtual-clock';
import { expectedVisible, numberAt } from './visible-view';
import { COUNTERS } from './workload';

export interface QueuedMutation {
  seq: number;
  name: string;
  args: JsonValue;
}

export interface ClientDeps {
  clock: VirtualClock;
  net: SimNetwork;
  history: ServerHistory;
  rng: Rng;
  localFaults: LocalFaults;
  /** The driver's step count, to place a failure in the run. */
  step: () => number;
  log: (line: () => string) => void;
  /** Records a broken invariant; the message is prefixed with the seed later. */
  fail: (message: string) => void;
}

/** How often each integration path ran, over the client's committed transactions. */
export interface PathCounts {
  snapshot: number;
  rebase: number;
  fastPath: number;
  /** Gaps the engine detected (after the network dropped a live message) and then caught up past. */
  gapRecovered: number;
}

/** Broken-invariant reports per client and kind, at most; the first ones say enough. */
const MAX_REPORTS = 3;

/**
 * One simulated browser: a persisted local replica (observed) that outlives
 * engines (a page reload or a crash makes a new engine on the same replica),
 * the current `SyncEngine`, and what the checks watch: the mutations it
 * queued, every committed local transaction, and every rejection it was told about.
 */
export class SimClient {
  readonly local: ObservedLocalStore;
  readonly clientId: string;
  /** The owner-only collections its roles let it read in full. */
  readonly allOf: readonly string[];
  engine: SyncEngine;
  readonly queued: QueuedMutation[] = [];
  /** seq → the codes of each rejection the engine reported for it. */
  readonly rejectedReports = new Map<number, string[]>();
  readonly paths: PathCounts = { snapshot: 0, rebase: 0, fastPath: 0, gapRecovered: 0 };
  lastCheckpoint = 0;
  applied = 0;
  mutateErrors = 0;
  restarts = 0;
  crashes = 0;
  private state: ConnectionState = 'stopped';
  private closed = false;
  /** Bumped by every stop, reopen and crash, so a reopen scheduled by a crash can tell it came too late. */
  private life = 0;
  private unsubscribe: () => void = () => undefined;
  /** The LSN a detected gap ends at; recovered once the checkpoint reaches it. */
  private gapAt: number | null = null;
  private readonly counterHigh = new Map<string, number>();
  private readonly reports = new Map<string, number>();

  constructor(
    readonly name: string,
    readonly userId: string,
    readonly roles: readonly string[],
    seed: number,
    private readonly deps: ClientDeps,
  ) {
    this.clientId = `sim-${name}-${seed}`;
    this.allOf = fullyReadable(storeSchema, roles);
    this.local = new ObservedLocalStore(
      storeSchema,
      () => this.clientId,
      deps.rng.fork(),
      deps.localFaults,
      (state) => this.onCommitted(state),
      () => void deps.clock.setTimeout(() => this.afterCrash('inside a transaction'), 0),
    );
    this.engine = this.newEngine();
  }

  /** Starts the current engine, unless the tab is closed (a stop came before the first start). */
  start(): void {
    if (this.closed) return;
    const engine = this.engine;
    engine.start().catch((err: unknown) => {
      if (engine === this.engine && !(err instanceof LocalStoreFault))
        this.deps.fail(`client ${this.name}: start threw ${String(err)}`);
    });
  }

  /** Like closing the tab: the engine stops; the replica stays. */
  stop(): void {
    this.deps.log(() => `${this.name} STOP`);
    this.life++;
    this.closed = true;
    this.engine.stop();
    this.unsubscribe();
  }

  /** Like reopening the tab: a new engine on the same replica. */
  restart(): void {
    this.deps.log(() => `${this.name} RESTART`);
    this.restarts++;
    this.reopen();
  }

  private reopen(): void {
    this.life++;
    this.engine.stop();
    this.unsubscribe();
    this.closed = false;
    this.engine = this.newEngine();
    this.start();
  }

  /**
   * The tab's process dies between two transactions (or inside one, when the
   * store says so): no goodbye to the server, nothing more from this engine.
   * It comes back on the same replica after `downMs`, unless the tab was
   * closed or reopened meanwhile.
   */
  crash(downMs: number): void {
    if (this.closed) return;
    this.local.crash();
    this.afterCrash('between transactions', downMs);
  }

  private afterCrash(where: string, downMs = 0): void {
    if (this.closed) return;
    this.crashes++;
    this.deps.log(() => `${this.name} CRASH ${where}`);
    this.deps.net.cut(this.name, 'client crashed');
    this.closed = true;
    this.engine.stop();
    this.unsubscribe();
    const life = ++this.life;
    this.deps.clock.setTimeout(() => {
      if (life === this.life) this.reopen();
    }, downMs);
  }

  get connectionState(): ConnectionState {
    return this.state;
  }

  mutate(name: string, args: JsonValue): void {
    if (this.closed) return;
    const engine = this.engine;
    engine.mutate(name, args).then(
      ({ seq }) => {
        this.deps.log(() => `${this.name} queued ${seq}:${name} ${JSON.stringify(args)}`);
        this.queued.push({ seq, name, args });
      },
      (err: unknown) => {
        // An injected store failure: the user saw an error and nothing was stored.
        if (err instanceof LocalStoreFault) return;
        // The workload only makes mutations that are valid whatever the data: none may be refused locally.
        this.mutateErrors++;
        this.deps.fail(`client ${this.name}: mutate ${name} ${JSON.stringify(args)} threw ${String(err)}`);
      },
    );
  }

  private newEngine(): SyncEngine {
    const { clock, net, rng } = this.deps;
    const engine = new SyncEngine({
      schema: storeSchema,
      local: this.local.open(),
      servers: ['sim://primary'],
      connect: net.factoryFor(this.name),
      token: `user:${this.userId}:${this.roles.join(',')}`,
      user: { userId: this.userId, roles: this.roles },
      clock,
      random: () => rng.float(),
      requestTimeoutMs: 2_000,
      backoff: { baseMs: 50, maxMs: 2_000 },
    });
    this.unsubscribe = engine.on((e) => this.onEvent(e));
    return engine;
  }

  private onEvent(e: EngineEvent): void {
    switch (e.type) {
      case 'status': {
        const { state, lastError } = e.status;
        if (state === 'backoff' && this.state !== 'backoff' && lastError?.message.startsWith('gap')) {
          if (this.deps.net.droppedOnCurrent(this.name)) {
            // "gap before LSN <from>": recovered once the checkpoint reaches the message past the gap.
            const from = Number(/(\d+)/.exec(lastError.message)?.[1] ?? this.lastCheckpoint + 1);
            this.gapAt = Math.max(this.gapAt ?? 0, from);
          } else {
            this.report(
              'gap',
              `client ${this.name} saw a gap in the change stream (${lastError.message}) though no message was lost`,
            );
          }
        }
        if (state !== this.state)
          this.deps.log(() => `${this.name} ${this.state} → ${state}${lastError ? ` (${lastError.message})` : ''}`);
        this.state = state;
        return;
      }
      case 'rejected': {
        const codes = this.rejectedReports.get(e.rejection.seq) ?? [];
        codes.push(e.rejection.error.code);
        this.rejectedReports.set(e.rejection.seq, codes);
        this.deps.log(() => `${this.name} rejected ${e.rejection.seq}:${e.rejection.name} ${e.rejection.error.code}`);
        return;
      }
      case 'applied':
        this.applied++;
        return;
    }
  }

  /**
   * After every committed local transaction that wrote:
   * - monotonic reads: checkpoints never go back, and the confirmed data
   *   (visible documents with the shadow's confirmed versions put back) is
   *   exactly what the user could read on the primary at that checkpoint;
   * - local first: the visible data is that confirmed data with the
   *   outbox re-run on it in seq order (computed independently), and no
   *   increment-only counter ever shows less than it showed before.
   */
  private onCommitted(state: Committed): void {
    const { meta } = state;
    if (state.paths.snapshot) this.paths.snapshot++;
    if (state.paths.rebase) this.paths.rebase++;
    if (state.paths.fastPath) this.paths.fastPath++;
    const where = () => `(step ${this.deps.step()}, local tx ${this.local.transactions})`;
    if (meta.checkpoint < this.lastCheckpoint) {
      this.report(
        'checkpoint',
        `client ${this.name} checkpoint went back from ${this.lastCheckpoint} to ${meta.checkpoint} ${where()}`,
      );
    }
    this.lastCheckpoint = Math.max(this.lastCheckpoint, meta.checkpoint);
    if (this.gapAt !== null && meta.checkpoint >= this.gapAt) {
      this.gapAt = null;
      this.paths.gapRecovered++;
    }
    const truth = this.deps.history.viewAt(meta.checkpoint, this.userId, this.allOf, meta.checkpointTerm);
    const confirmedDiff = diffViews(confirmedOf(state.visible, state.shadow), truth);
    if (confirmedDiff !== null) {
      this.report(
        'confirmed',
        `client ${this.name} at checkpoint ${meta.checkpoint} (term ${meta.checkpointTerm}) shows data the primary never had then ${where()}: ${confirmedDiff}`,
      );
    }
    // Pending: what the log up to the checkpoint does not settle yet. Seqs commit in order, so
    // everything up to the client's newest seq with a change at or below the checkpoint is settled.
    const settled = this.deps.history.settledSeq(this.clientId, meta.checkpoint, meta.checkpointTerm);
    const pending = state.outbox.filter((e) => e.seq > settled);
    const ctx = { userId: this.userId, roles: this.roles, side: 'client' as const };
    const expected = expectedVisible(storeSchema, ctx, truth, pending);
    const visibleDiff = diffViews(state.visible, expected);
    if (visibleDiff !== null) {
      const stale = state.outbox.filter((e) => e.seq <= settled).map((e) => `${e.seq}:${e.name}`);
      this.report(
        'visible',
        `client ${this.name} shows what is not the confirmed data + pending seqs ${pending.map((e) => e.seq).join(',') || 'none'} at checkpoint ${meta.checkpoint} ${where()}${stale.length > 0 ? ` (its outbox still holds ${stale.join(' ')}, settled at or below the checkpoint)` : ''}: ${visibleDiff}`,
      );
    }
    for (const counter of COUNTERS) {
      const key = `${counter.collection}/${counter.id}`;
      const value = numberAt(state.visible, counter);
      const high = this.counterHigh.get(key) ?? 0;
      if (value !== null && value < high) {
        this.report(
          'counter',
          `client ${this.name} showed ${key}.${counter.field} = ${high}, then ${value} (an increment-only counter went down) at checkpoint ${meta.checkpoint} ${where()}`,
        );
      }
      if (value !== null) this.counterHigh.set(key, Math.max(high, value));
    }
  }

  private report(kind: string, message: string): void {
    const n = this.reports.get(kind) ?? 0;
    this.reports.set(kind, n + 1);
    if (n < MAX_REPORTS) this.deps.fail(message);
  }
}

import { SyncEngine } from '../../client/sync/engine';
import type { ConnectionState, EngineEvent } from '../../client/sync/engine';
import { storeSchema } from '../../shared/apps/store';
import { fullyReadable } from '../../shared/schema/define-schema';
import type { JsonValue } from '../../shared/json';
import type { Rng } from './random';
import { ObservedLocalStore } from './observed-local-store';
import type { ServerHistory } from './server-history';
import { diffViews } from './server-history';
import type { SimNetwork } from './sim-network';
import type { VirtualClock } from './virtual-clock';

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
  log: (line: () => string) => void;
  /** Records a broken invariant; the message is prefixed with the seed later. */
  fail: (message: string) => void;
}

/**
 * One simulated browser: a `MemoryLocalStore` (observed) that outlives engines (a page
 * reload makes a new engine on the same replica), the current `SyncEngine`,
 * and what the checks watch: the mutations it queued, every checkpoint it
 * reported and every rejection it was told about.
 */
export class SimClient {
  readonly local = new ObservedLocalStore(storeSchema, () => this.clientId);
  readonly clientId: string;
  /** The owner-only collections its roles let it read in full. */
  readonly allOf: readonly string[];
  engine: SyncEngine;
  readonly queued: QueuedMutation[] = [];
  /** seq → how many times the engine reported it rejected. */
  readonly rejectedReports = new Map<number, number>();
  lastCheckpoint = 0;
  applied = 0;
  gaps = 0;
  mutateErrors = 0;
  restarts = 0;
  private state: ConnectionState = 'stopped';
  private closed = false;
  private unsubscribe: () => void = () => undefined;

  constructor(
    readonly name: string,
    readonly userId: string,
    readonly roles: readonly string[],
    seed: number,
    private readonly deps: ClientDeps,
  ) {
    this.clientId = `sim-${name}-${seed}`;
    this.allOf = fullyReadable(storeSchema, roles);
    this.engine = this.newEngine();
  }

  /** Starts the current engine, unless the tab is closed (a stop came before the first start). */
  start(): void {
    if (this.closed) return;
    this.engine.start().catch((err: unknown) => this.deps.fail(`client ${this.name}: start threw ${String(err)}`));
  }

  /** Like closing the tab: the engine stops; the replica stays. */
  stop(): void {
    this.deps.log(() => `${this.name} STOP`);
    this.closed = true;
    this.engine.stop();
    this.unsubscribe();
  }

  /** Like reopening the tab: a new engine on the same replica. */
  restart(): void {
    this.deps.log(() => `${this.name} RESTART`);
    this.restarts++;
    this.closed = false;
    this.engine = this.newEngine();
    this.start();
  }

  get connectionState(): ConnectionState {
    return this.state;
  }

  mutate(name: string, args: JsonValue): void {
    this.engine.mutate(name, args).then(
      ({ seq }) => {
        this.deps.log(() => `${this.name} queued ${seq}:${name} ${JSON.stringify(args)}`);
        this.queued.push({ seq, name, args });
      },
      (err: unknown) => {
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
      local: this.local,
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
          this.gaps++;
          this.deps.fail(
            `client ${this.name} saw a gap in the change stream (${lastError.message}) though no message was lost`,
          );
        }
        if (state !== this.state)
          this.deps.log(() => `${this.name} ${this.state} → ${state}${lastError ? ` (${lastError.message})` : ''}`);
        this.state = state;
        return;
      }
      case 'rejected':
        this.rejectedReports.set(e.rejection.seq, (this.rejectedReports.get(e.rejection.seq) ?? 0) + 1);
        this.deps.log(() => `${this.name} rejected ${e.rejection.seq}:${e.rejection.name} ${e.rejection.error.code}`);
        return;
      case 'applied':
        this.onApplied(e.checkpoint);
        return;
    }
  }

  /**
   * Monotonic reads: checkpoints never go back, and at each one the client's
   * confirmed data (visible documents with the shadow's confirmed versions
   * put back) is exactly what its user could read on the primary at that LSN.
   */
  private onApplied(checkpoint: number): void {
    this.applied++;
    if (checkpoint < this.lastCheckpoint) {
      this.deps.fail(`client ${this.name} checkpoint went back from ${this.lastCheckpoint} to ${checkpoint}`);
    }
    this.lastCheckpoint = Math.max(this.lastCheckpoint, checkpoint);
    const diff = diffViews(this.local.confirmed(), this.deps.history.viewAt(checkpoint, this.userId, this.allOf));
    if (diff !== null) {
      this.deps.fail(`client ${this.name} at checkpoint ${checkpoint} shows data the primary never had then: ${diff}`);
    }
  }
}

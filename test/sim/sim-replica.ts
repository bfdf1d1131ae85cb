import type { MemoryStore } from '../../server/store/memory-store';
import type { Rng } from './random';
import type { VirtualClock } from './virtual-clock';

/**
 * A replica following the primary's log into its own `MemoryStore`, as
 * `ReplicationHub` (primary side) and `Follower` (replica side) do over
 * `/replication`, without the sockets: after each commit, and after a seeded
 * delay, it reads a page of the primary's log from its own head (a snapshot
 * when it is below the horizon) and applies it with `applyReplicated` in one
 * transaction, then the next page after another delay. `waitFor(lsn)` is the hub's `waitFor(lsn, 1)`: what the primary's
 * `minSyncReplicas = 1` waits on before acks and fan-out.
 *
 * When the primary is lost the replica stops following and `waitFor`
 * promises of the dead primary never settle, as their sockets are gone.
 */
export class SimReplica {
  private waiters: Array<{ lsn: number; resolve: () => void }> = [];
  private scheduled = false;
  private stopped = false;
  shipped = 0;

  constructor(
    private readonly primary: MemoryStore,
    readonly store: MemoryStore,
    private readonly clock: VirtualClock,
    private readonly rng: Rng,
    private readonly maxLagMs: number,
  ) {}

  get head(): number {
    return this.store.meta().headLsn;
  }

  /** The primary committed: ship its log soon. */
  onCommit(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    this.clock.setTimeout(
      () => {
        this.scheduled = false;
        this.pull();
      },
      this.rng.int(0, this.maxLagMs),
    );
  }

  waitFor(lsn: number): Promise<void> {
    if (this.head >= lsn) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({ lsn, resolve });
      this.onCommit();
    });
  }

  /** The primary is gone: this node will be promoted and follows no one. */
  stop(): void {
    this.stopped = true;
    this.waiters = [];
  }

  private pull(): void {
    if (this.stopped) return;
    const meta = this.primary.meta();
    if (this.head < meta.horizon) {
      this.store.importSnapshot(this.primary.exportSnapshot());
    }
    // Document changes and outcome entries, as `repl:changes` carries them; a page never splits a mutation.
    const page = this.primary.readLog(this.head, this.rng.int(1, 12));
    if (page.to > this.head) {
      // With the bindings of the page's clients, as `repl:changes.users` carries them.
      const ids = [
        ...page.changes.flatMap((c) => (c.clientId === null ? [] : [c.clientId])),
        ...page.outcomes.map((o) => o.clientId),
      ];
      this.store.applyReplicated(page.changes, page.outcomes, this.primary.bindingsOf(ids));
      this.shipped += page.changes.length + page.outcomes.length;
    }
    if (this.head < this.primary.meta().headLsn) this.onCommit();
    const head = this.head;
    this.waiters = this.waiters.filter((w) => {
      if (w.lsn > head) return true;
      w.resolve();
      return false;
    });
  }
}

import type { AsyncStore } from '../../server/store/async-store';
import type { MemoryStore } from '../../server/store/memory-store';
import { asyncStoreOf } from '../../server/store/sync-store-adapter';
import type { SyncCore } from '../../server/sync/sync-core';
import type { Rng } from './random';
import type { SimNode } from './sim-network';
import type { VirtualClock } from './virtual-clock';

/** How the nodes hear of each other's commits: PostgreSQL's NOTIFY, and a node's own timer. */
export interface WakeFaults {
  /** A NOTIFY reaches another node after up to this long. */
  maxLagMs: number;
  /** A NOTIFY is lost on its way to one node. */
  drop: number;
  /** Each node reads the log this often while it is behind (`TAIL_POLL_MS`); 0: never. */
  pollMs: number;
}

export interface SimNodesDeps {
  /** The one store every node writes; the poll reads its head to know when there is nothing left to find. */
  memory: MemoryStore;
  clock: VirtualClock;
  rng: Rng;
  wake: WakeFaults;
  /** A core with `sharedLog` on `store`; `alive` false drops what it scheduled; `onCommit` after each commit. */
  makeCore: (store: AsyncStore, alive: () => boolean, onCommit: () => void) => SyncCore;
  log: (line: () => string) => void;
}

interface NodeState extends SimNode {
  alive: boolean;
  poll: unknown;
}

/**
 * Two stateless nodes over one store (`two-nodes` mode), as `pg-app.ts`
 * runs them on PostgreSQL: each a `SyncCore` with `sharedLog` on the same
 * `asyncStoreOf(memory)` (one adapter, so one queue: one transaction at a
 * time across nodes, as the head row lock makes it on PostgreSQL). A commit
 * on one node wakes the other after a seeded delay, or never (a lost
 * NOTIFY); a node behind the store's head reads the log every `pollMs`, as
 * a real node's timer does forever (here it stops once the node has caught
 * up, and any commit starts it again, so the run can end idle).
 *
 * Each client has a home node; each new connection goes there or, half the
 * time, to a node picked at random among the live ones. A node can be
 * killed (its connections reset, the store goes on) and a new one started
 * in its place, at the store's head.
 */
export class SimNodes {
  readonly store: AsyncStore;
  private readonly nodes: NodeState[] = [];
  private readonly homes = new Map<string, number>();
  private started = 0;

  constructor(private readonly deps: SimNodesDeps) {
    this.store = asyncStoreOf(deps.memory);
    this.nodes.push(this.start(), this.start());
  }

  /** The node a new connection of `client` reaches. */
  route(client: string): SimNode {
    const { rng } = this.deps;
    const home = this.homes.get(client) ?? this.homes.size % this.nodes.length;
    this.homes.set(client, home);
    const alive = this.nodes.filter((n) => n.alive);
    const homeNode = this.nodes[home]!;
    return homeNode.alive && rng.chance(0.5) ? homeNode : rng.pick(alive);
  }

  /** A live node other than `node`, or null. */
  elsewhere(node: string): SimNode | null {
    const others = this.nodes.filter((n) => n.alive && n.node !== node);
    return others.length === 0 ? null : this.deps.rng.pick(others);
  }

  /** How the nodes hear of each other's commits in this run. */
  get wake(): WakeFaults {
    return this.deps.wake;
  }

  /** The least any live node has fanned out. */
  minFannedOut(): number {
    return Math.min(...this.nodes.filter((n) => n.alive).map((n) => n.core.fannedOutLsn));
  }

  /** A live node, at random. */
  any(): SimNode {
    return this.deps.rng.pick(this.nodes.filter((n) => n.alive));
  }

  /** The names of the nodes now running. */
  get names(): string[] {
    return this.nodes.filter((n) => n.alive).map((n) => n.node);
  }

  /** Kills node `index` (kill -9): it schedules nothing more and stops tailing. Returns its name. */
  kill(index: number): string {
    const n = this.nodes[index]!;
    n.alive = false;
    n.core.close();
    this.deps.clock.clearTimeout(n.poll);
    return n.node;
  }

  /** Starts a new node in slot `index` (after `kill`); it reads the head itself. Returns its name. */
  restart(index: number): string {
    const n = this.start();
    this.nodes[index] = n;
    return n.node;
  }

  private start(): NodeState {
    const name = `node ${String.fromCharCode(65 + this.started++)}`;
    const state = { alive: true, poll: null as unknown };
    const core = this.deps.makeCore(
      this.store,
      () => state.alive,
      () => this.committed(n),
    );
    // `state` becomes the node itself, so the callbacks above see it killed.
    const n: NodeState = Object.assign(state, { node: name, core });
    void core.start();
    return n;
  }

  /**
   * `from` committed (a commit that was under way when it was killed still
   * lands, and PostgreSQL still notifies): NOTIFY the other nodes, each
   * after its own delay or not at all, and start every node's poll.
   */
  private committed(from: NodeState): void {
    const { rng, clock, wake, log } = this.deps;
    for (const n of this.nodes) {
      if (n === from || !n.alive) continue;
      if (rng.chance(wake.drop)) {
        log(() => `[${clock.now()}] NOTIFY from ${from.node} to ${n.node} LOST`);
        continue;
      }
      clock.setTimeout(() => n.alive && n.core.wake(), rng.int(0, wake.maxLagMs));
    }
    for (const n of this.nodes) this.armPoll(n);
  }

  private armPoll(n: NodeState): void {
    const { clock, wake, memory } = this.deps;
    if (wake.pollMs <= 0 || !n.alive || n.poll !== null) return;
    n.poll = clock.setTimeout(() => {
      n.poll = null;
      if (!n.alive) return;
      n.core.wake();
      if (n.core.fannedOutLsn < memory.meta().headLsn) this.armPoll(n);
    }, wake.pollMs);
  }
}

import { z } from 'zod';
import type { Clock } from '../../shared/clock';
import type { Store } from '../store/store';
import { Follower } from './follower';
import { listRollbackFiles } from './rollback';

export type Role = 'primary' | 'replica';

export interface ClusterNodeOptions {
  store: Store;
  clock: Clock;
  dataDir: string;
  clusterSecret: string;
  /** Other nodes of the cluster, to find a primary with a higher term. */
  peers: readonly string[];
  /** Called when this node stops being the primary: close client and replica connections. */
  onStepDown: () => void;
}

const peerInfoSchema = z.object({ role: z.enum(['primary', 'replica']), term: z.number().int(), url: z.string() });
export type PeerInfo = z.infer<typeof peerInfoSchema>;

export const CLUSTER_SECRET_HEADER = 'x-tideline-cluster-secret';

/**
 * The role of this node and its changes:
 *
 *   replica ──promote()──▶ primary (term + 1)
 *      ▲                        │
 *      └── stepDown(url) ◀──────┘  a peer is primary with a higher term
 *
 * A primary with peers asks them every second; a node with a lower term
 * never takes writes once it has seen a higher one.
 */
export class ClusterNode {
  role: Role = 'primary';
  primaryUrl: string | null = null;
  follower: Follower | null = null;
  selfUrl: string | null = null;
  private watcher: unknown = null;
  private stopped = false;

  constructor(private readonly opts: ClusterNodeOptions) {}

  view(): { primary: true } | { primary: false; primaryUrl: string | null } {
    return this.role === 'primary' ? { primary: true } : { primary: false, primaryUrl: this.primaryUrl };
  }

  info(): PeerInfo {
    return { role: this.role, term: this.opts.store.meta().term, url: this.selfUrl ?? '' };
  }

  rollbackFiles(): string[] {
    return listRollbackFiles(this.opts.dataDir);
  }

  /** Follows `primaryUrl` as a read-only replica. */
  follow(primaryUrl: string): void {
    this.follower?.stop();
    this.role = 'replica';
    this.primaryUrl = primaryUrl;
    this.follower = new Follower({
      store: this.opts.store,
      clock: this.opts.clock,
      primaryUrl,
      clusterSecret: this.opts.clusterSecret,
      replicaId: this.opts.store.meta().serverId,
      selfUrl: this.selfUrl,
      dataDir: this.opts.dataDir,
      onError: (error) => {
        // The node we follow is no longer the primary but knows who is.
        if (error.code === 'NOT_PRIMARY' && error.primary && error.primary !== this.primaryUrl)
          this.follow(error.primary);
      },
    });
    this.follower.start();
  }

  /** Makes this replica the primary of a new, higher term. */
  promote(): { term: number; headLsn: number } {
    if (this.role === 'primary') throw new Error('this node is already the primary');
    this.follower?.stop();
    this.follower = null;
    const { term, headLsn } = this.opts.store.meta();
    const next = term + 1;
    this.opts.store.setTerm(next);
    this.role = 'primary';
    this.primaryUrl = null;
    this.watchPeers();
    return { term: next, headLsn };
  }

  /** A primary with a higher term exists: stop taking writes and follow it. */
  stepDown(primaryUrl: string | null): void {
    if (this.role === 'primary') {
      this.role = 'replica';
      this.opts.onStepDown();
    }
    this.primaryUrl = primaryUrl;
    if (primaryUrl) this.follow(primaryUrl);
    else {
      // Told of a higher term by a follower, not who holds it: ask the peers.
      void this.higherPrimary().then((higher) => {
        if (higher && this.role === 'replica' && this.follower === null) this.follow(higher.url);
      });
    }
  }

  /** Asks every peer; returns the primary with the highest term above ours, if any. */
  async higherPrimary(): Promise<PeerInfo | null> {
    const myTerm = this.opts.store.meta().term;
    let best: PeerInfo | null = null;
    for (const peer of this.opts.peers) {
      try {
        const res = await fetch(`${peer.replace(/\/$/, '')}/cluster/info`, {
          headers: { [CLUSTER_SECRET_HEADER]: this.opts.clusterSecret },
          signal: AbortSignal.timeout(1000),
        });
        if (!res.ok) continue;
        const info = peerInfoSchema.parse(await res.json());
        if (info.role === 'primary' && info.term > myTerm && (!best || info.term > best.term)) best = info;
      } catch {
        // An unreachable peer tells us nothing.
      }
    }
    return best;
  }

  /** While primary, checks the peers every second for a higher term. */
  watchPeers(): void {
    if (this.opts.peers.length === 0 || this.watcher !== null) return;
    const tick = (): void => {
      if (this.role !== 'primary' || this.stopped) {
        this.watcher = null;
        return;
      }
      void this.higherPrimary().then((higher) => {
        if (higher && this.role === 'primary') this.stepDown(higher.url);
        this.watcher = this.role === 'primary' && !this.stopped ? this.opts.clock.setTimeout(tick, 1000) : null;
      });
    };
    this.watcher = this.opts.clock.setTimeout(tick, 1000);
  }

  stop(): void {
    this.stopped = true;
    if (this.watcher !== null) this.opts.clock.clearTimeout(this.watcher);
    this.watcher = null;
    this.follower?.stop();
  }
}

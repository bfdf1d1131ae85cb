import { z } from 'zod';
import type { Clock } from '../../shared/clock';
import type { Store } from '../store/store';
import { Follower } from './follower';
import { ensureClusterId } from './lineage';
import { readRoleRecord, writeRoleRecord } from './role-record';
import { listRollbackFiles } from './rollback';

export type Role = 'primary' | 'replica';

export interface ClusterNodeOptions {
  store: Store;
  clock: Clock;
  dataDir: string;
  clusterSecret: string;
  /** Other nodes of the cluster (the command line's `--primary` among them), to find a primary with a higher term. */
  peers: readonly string[];
  /** Called when this node stops being the primary: close client and replica connections. */
  onStepDown: () => void;
  /** Called with the new head each time the follower applied changes or a snapshot (read-your-writes waiters). */
  onApplied?: (head: number) => void;
  /** Operator messages (a primary that refused this node's data); default console.error. */
  log?: (line: string) => void;
}

const peerInfoSchema = z.object({
  role: z.enum(['primary', 'replica']),
  term: z.number().int(),
  url: z.string(),
  /** Lets a node recognise itself behind any of its URLs; absent from nodes older than this field. */
  serverId: z.string().optional(),
});
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
 * never takes writes once it has seen a higher one. A node never follows
 * itself, whatever URL a peer's `NOT_PRIMARY` points at.
 *
 * The role survives restarts through `role.json` (see role-record.ts):
 * promote() records "primary of term T" after raising the term, and every
 * step down overwrites it. At start, `decideStartRole()` puts a node that led
 * its current term back as the primary (after asking its peers for a higher
 * term), and otherwise obeys the command line.
 */
export class ClusterNode {
  role: Role = 'primary';
  primaryUrl: string | null = null;
  follower: Follower | null = null;
  selfUrl: string | null = null;
  private watcher: unknown = null;
  private stopped = false;
  /** URLs known to reach this very node (listen URL, public URL, any a peer showed to be us). */
  private readonly ownUrls = new Set<string>();
  /** Whether role.json says primary: a step down must overwrite it. */
  private recordSaysPrimary = false;
  /** Whether the peers are being asked about a follower's claim of a higher term. */
  private claimCheck = false;

  constructor(private readonly opts: ClusterNodeOptions) {}

  view(): { primary: true } | { primary: false; primaryUrl: string | null } {
    return this.role === 'primary' ? { primary: true } : { primary: false, primaryUrl: this.primaryUrl };
  }

  info(): PeerInfo {
    const { term, serverId } = this.opts.store.meta();
    return { role: this.role, term, url: this.selfUrl ?? '', serverId };
  }

  /** Remembers that `url` reaches this node, so it is never followed. */
  knowOwnUrl(url: string): void {
    this.ownUrls.add(normalizeUrl(url));
  }

  isSelf(url: string): boolean {
    return this.ownUrls.has(normalizeUrl(url));
  }

  /**
   * The role at start, before the node listens or takes a write.
   *
   * - Its data says it was promoted to its current term (role.json): it is the
   *   primary of that term, whatever `--primary` the command line still
   *   carries, unless a peer (the old `--primary` included) is primary of a
   *   higher term; then it follows that one.
   * - Else with `--primary URL`: a replica of it.
   * - Else a primary, which with peers first asks them for a higher term, as
   *   a restarted old primary must.
   */
  async decideStartRole(commandLinePrimary: string | null): Promise<void> {
    const { term } = this.opts.store.meta();
    const record = readRoleRecord(this.opts.dataDir);
    this.recordSaysPrimary = record?.role === 'primary';
    const ledThisTerm = record?.role === 'primary' && record.term === term;
    if (commandLinePrimary && !ledThisTerm) {
      if (this.isSelf(commandLinePrimary)) throw new Error(`--primary ${commandLinePrimary} is this node itself`);
      this.becomeReplica(commandLinePrimary);
      return;
    }
    if (this.opts.peers.length > 0) {
      // Not a single write before we know no higher term exists.
      const higher = await this.higherPrimary();
      if (higher) {
        this.becomeReplica(higher.url);
        return;
      }
    }
    this.role = 'primary';
    this.primaryUrl = null;
    // A store from before cluster ids gets one as it starts to lead; its replicas adopt it.
    ensureClusterId(this.opts.store);
  }

  rollbackFiles(): string[] {
    return listRollbackFiles(this.opts.dataDir);
  }

  /** Follows `primaryUrl` as a read-only replica; a URL of this node itself is refused (nothing changes). */
  follow(primaryUrl: string): void {
    if (this.isSelf(primaryUrl)) return;
    this.follower?.stop();
    this.becomeReplica(primaryUrl);
    const follower = new Follower({
      store: this.opts.store,
      clock: this.opts.clock,
      primaryUrl,
      clusterSecret: this.opts.clusterSecret,
      replicaId: this.opts.store.meta().serverId,
      selfUrl: this.selfUrl,
      dataDir: this.opts.dataDir,
      onApplied: (head) => this.opts.onApplied?.(head),
      ...(this.opts.log ? { log: this.opts.log } : {}),
      onError: (error) => {
        // The node we follow is no longer the primary but knows who is (or thinks it is us).
        if (error.code === 'NOT_PRIMARY' && error.primary && error.primary !== this.primaryUrl)
          void this.redirect(follower, error.primary);
      },
    });
    this.follower = follower;
    follower.start();
  }

  /** Follows a `NOT_PRIMARY` redirect unless it points back at this node under a URL we did not know. */
  private async redirect(from: Follower, url: string): Promise<void> {
    if (this.isSelf(url)) return;
    const info = await this.peerInfo(url);
    if (info?.serverId !== undefined && info.serverId === this.opts.store.meta().serverId) {
      this.knowOwnUrl(url);
      return;
    }
    // Something else changed our course while we asked.
    if (this.stopped || this.follower !== from) return;
    this.follow(url);
  }

  /** A replica from now on: a promotion on record no longer holds. */
  private becomeReplica(primaryUrl: string | null): void {
    this.role = 'replica';
    this.primaryUrl = primaryUrl;
    if (this.recordSaysPrimary) {
      writeRoleRecord(this.opts.dataDir, {
        role: 'replica',
        term: this.opts.store.meta().term,
        at: new Date(this.opts.clock.now()).toISOString(),
      });
      this.recordSaysPrimary = false;
    }
  }

  /** Makes this replica the primary of a new, higher term. */
  promote(): { term: number; headLsn: number } {
    if (this.role === 'primary') throw new Error('this node is already the primary');
    this.follower?.stop();
    this.follower = null;
    const { term, headLsn } = this.opts.store.meta();
    const next = term + 1;
    ensureClusterId(this.opts.store);
    this.opts.store.setTerm(next);
    // After the term is raised, so the record never names a term this store does not have.
    // A crash between the two leaves a replica at term + 1, which an operator promotes again.
    writeRoleRecord(this.opts.dataDir, {
      role: 'primary',
      term: next,
      at: new Date(this.opts.clock.now()).toISOString(),
    });
    this.recordSaysPrimary = true;
    this.role = 'primary';
    this.primaryUrl = null;
    this.watchPeers();
    return { term: next, headLsn };
  }

  /**
   * A primary with a higher term exists at `primaryUrl`: stop taking writes
   * and follow it. With null, someone (a follower's `follow`) only claims a
   * higher term without saying who holds it: anyone with the cluster secret
   * can claim that, so it proves nothing. The peers are asked at once, and
   * the node steps down only to a primary a peer's status shows with a higher
   * term, as the peer watch would a second later.
   */
  stepDown(primaryUrl: string | null): void {
    if (primaryUrl === null) {
      this.checkClaim();
      return;
    }
    if (this.role === 'primary') {
      this.becomeReplica(primaryUrl);
      this.opts.onStepDown();
    }
    this.primaryUrl = primaryUrl;
    this.follow(primaryUrl);
  }

  /** Asks the peers about a claimed higher term, one check at a time however often it is claimed. */
  private checkClaim(): void {
    if (this.claimCheck || this.role !== 'primary') return;
    this.claimCheck = true;
    void this.higherPrimary()
      .then((higher) => {
        if (higher && this.role === 'primary' && !this.stopped) this.stepDown(higher.url);
      })
      .finally(() => {
        this.claimCheck = false;
      });
  }

  /** Asks every peer; returns the primary with the highest term above ours, if any (never this node itself). */
  async higherPrimary(): Promise<PeerInfo | null> {
    const { term: myTerm, serverId } = this.opts.store.meta();
    let best: PeerInfo | null = null;
    for (const peer of this.opts.peers) {
      if (this.isSelf(peer)) continue;
      const info = await this.peerInfo(peer);
      if (!info || info.serverId === serverId || this.isSelf(info.url)) continue;
      if (info.role === 'primary' && info.term > myTerm && (!best || info.term > best.term)) best = info;
    }
    return best;
  }

  /** `GET /cluster/info` of one node; null when it cannot be reached or answers nonsense. */
  private async peerInfo(url: string): Promise<PeerInfo | null> {
    try {
      const res = await fetch(`${url.replace(/\/$/, '')}/cluster/info`, {
        headers: { [CLUSTER_SECRET_HEADER]: this.opts.clusterSecret },
        signal: AbortSignal.timeout(1000),
      });
      if (!res.ok) return null;
      const parsed = peerInfoSchema.safeParse(await res.json());
      return parsed.success ? parsed.data : null;
    } catch {
      // An unreachable peer tells us nothing.
      return null;
    }
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

/** `http://Host:80/x/` and `http://host/x` are the same node. */
function normalizeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return url.replace(/\/+$/, '');
  }
}

import { removeDir, startServerProcess, tempDataDir } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { waitFor } from '../support/wait';

export type ChaosMode = 'single' | 'failover';

interface Status {
  role: string;
  term: number;
  headLsn: number;
  horizon: number;
  minSyncReplicas: { met: boolean };
}

/**
 * The server side of a chaos run: real `server/main.ts` processes on fixed
 * ports (clients keep their URLs across crashes).
 *
 * single:   one primary; a crash is kill -9 and a restart on the same data dir.
 * failover: a primary with --min-sync-replicas 1 and a replica on the other
 *           port; a crash is kill -9 of the primary, promotion of the replica,
 *           and a new replica (fresh data dir) on the dead primary's port, so
 *           the next failover is possible.
 */
export class ChaosCluster {
  primary!: ServerProcess;
  replica: ServerProcess | null = null;
  /** The URLs clients are given, primary first. */
  urls: string[] = [];
  kills = 0;
  failovers = 0;
  /** Every data directory used (removed by `cleanup`); old primaries' are kept for the final checks. */
  readonly dataDirs: string[] = [];
  private readonly live = new Set<ServerProcess>();

  constructor(readonly mode: ChaosMode) {}

  private readonly primaryArgs = (): string[] =>
    this.mode === 'failover' ? ['--no-seed', '--min-sync-replicas', '1'] : ['--no-seed'];

  async start(): Promise<void> {
    this.primary = await this.spawn(this.newDir('primary'), 0, this.primaryArgs());
    this.urls = [this.primary.url];
    if (this.mode === 'failover') {
      this.replica = await this.startReplica(this.newDir('replica'), 0, this.primary.url);
      this.urls.push(this.replica.url);
    }
  }

  /** kill -9 of the primary, then either a restart on its data dir or a failover; `onKilled` runs while no primary is up. */
  async crash(onKilled: () => void): Promise<void> {
    const dead = this.primary;
    await dead.kill9();
    this.live.delete(dead);
    this.kills++;
    onKilled();
    if (this.mode === 'single') {
      this.primary = await this.spawn(dead.dataDir, portOf(dead.url), this.primaryArgs());
      return;
    }
    const promoted = this.replica!;
    await promoted.admin('/promote', {});
    this.primary = promoted;
    this.failovers++;
    this.replica = await this.startReplica(this.newDir('replica'), portOf(dead.url), promoted.url);
  }

  async status(node: ServerProcess = this.primary): Promise<Status> {
    return node.admin<Status>('/status');
  }

  async compact(upTo: number): Promise<void> {
    await this.primary.admin('/compact', { upTo });
  }

  /** In failover mode, waits until the replica has applied everything the primary has. */
  async replicaCaughtUp(timeoutMs: number): Promise<void> {
    const replica = this.replica;
    if (!replica) return;
    await waitFor(
      'the replica to reach the primary head',
      async () => {
        const [p, r] = await Promise.all([this.status(), this.status(replica)]);
        return r.headLsn === p.headLsn && r.term === p.term;
      },
      timeoutMs,
      100,
    );
  }

  /** SIGTERM to every server still running (a clean stop, so the files are complete). */
  async stopAll(): Promise<void> {
    for (const s of [...this.live]) {
      await s.stop();
      this.live.delete(s);
    }
  }

  /** kill -9 of anything still running and removal of every data dir; safe to call twice. */
  async cleanup(): Promise<void> {
    for (const s of [...this.live]) {
      await s.kill9().catch(() => undefined);
      this.live.delete(s);
    }
    for (const d of this.dataDirs) removeDir(d);
  }

  private newDir(role: string): string {
    const dir = tempDataDir(`tideline-chaos-${role}-`);
    this.dataDirs.push(dir);
    return dir;
  }

  private async startReplica(dataDir: string, port: number, primaryUrl: string): Promise<ServerProcess> {
    // Replicas get --min-sync-replicas too: once promoted, they must keep the same durability promise.
    const replica = await this.spawn(dataDir, port, ['--no-seed', '--min-sync-replicas', '1', '--primary', primaryUrl]);
    await waitFor(
      'the replica to follow the primary',
      async () => (await this.status()).minSyncReplicas.met,
      30_000,
      50,
    );
    return replica;
  }

  private async spawn(dataDir: string, port: number, args: string[]): Promise<ServerProcess> {
    const s = await startServerProcess({ dataDir, port, args });
    this.live.add(s);
    return s;
  }
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

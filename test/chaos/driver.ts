import { storeSchema } from '../../shared/apps/store';
import type { Doc } from '../../shared/json';
import { Rng } from '../sim/random';
import { waitFor } from '../support/wait';
import { ChaosClient, COUNTERS, CounterBook } from './chaos-client';
import { checkFinalState } from './checks';
import type { FinalClient } from './checks';
import { ChaosCluster } from './cluster';
import type { ChaosMode } from './cluster';
import { LogArchive } from './log-archive';
import { readStoreFile } from './store-file';
import { Violations } from './violations';
import { INITIAL_STOCK, PRODUCTS, Workload } from './workload';

export interface ChaosOptions {
  seconds: number;
  seed: number;
  mode: ChaosMode;
  /** Bound on the wait for every client to drain and reach the head at the end. */
  quiesceMs: number;
  log: (line: string) => void;
}

export interface ChaosReport {
  violations: Violations;
  quiesced: boolean;
  figures: Record<string, number>;
}

/** Eight clients of three users; the third user is staff (restocks products, reads every order). */
const CLIENTS: ReadonlyArray<{ user: string; roles: string[] }> = [
  { user: 'ana', roles: [] },
  { user: 'ana', roles: [] },
  { user: 'ana', roles: [] },
  { user: 'ben', roles: [] },
  { user: 'ben', roles: [] },
  { user: 'ben', roles: [] },
  { user: 'staff', roles: ['staff'] },
  { user: 'staff', roles: ['staff'] },
];

const TICK_MS = 200;

/**
 * One chaos run: start the servers and clients, run the seeded workload and
 * faults for `seconds`, quiesce, stop, check the nine guarantees. Always stops
 * what it started (the caller also calls `cleanup` on any exit path).
 */
export class ChaosRun {
  readonly cluster: ChaosCluster;
  readonly violations = new Violations();
  readonly archive = new LogArchive();
  private readonly clients: ChaosClient[] = [];
  private readonly rng: Rng;
  private stopping = false;
  private readonly offlineTimers = new Set<NodeJS.Timeout>();
  private serverOps: Promise<unknown> = Promise.resolve();
  private readonly figures = { cuts: 0, halfOpen: 0, offlineSpells: 0, reopens: 0, compactions: 0 };

  constructor(private readonly opts: ChaosOptions) {
    this.cluster = new ChaosCluster(opts.mode);
    this.rng = new Rng(opts.seed);
  }

  async run(): Promise<ChaosReport> {
    const { log } = this.opts;
    await this.cluster.start();
    log(`servers up: ${this.cluster.urls.join(', ')}`);
    const book = new CounterBook();
    CLIENTS.forEach(({ user, roles }, i) => {
      this.clients.push(
        new ChaosClient(`c${i}`, user, roles, this.cluster.urls, book, this.violations, this.rng.fork()),
      );
    });
    for (const c of this.clients) await c.open();
    await this.setUp();
    log(`clients live and set up; chaos for ${this.opts.seconds} s`);

    for (const c of this.clients) {
      c.net.lostAckRate = 0.04;
      c.net.redeliveryRate = 0.02;
    }
    const names = this.clients.map((c) => c.name);
    const until = Date.now() + this.opts.seconds * 1000;
    const stop = (): boolean => this.stopping || Date.now() >= until;
    const workloads = this.clients.map((c) => new Workload(c, this.rng.fork(), book, this.violations, names).run(stop));
    const faults = this.faultLoop(this.rng.fork(), stop);
    const crashes = this.crashLoop(this.rng.fork(), stop);
    await Promise.all([...workloads, faults, crashes]);
    this.stopping = true;
    log('chaos over; quiescing');

    const quiesced = await this.quiesce();
    const finals = await this.collect();
    for (const c of this.clients) c.close();
    await this.cluster.stopAll();
    this.archive.refresh(this.cluster.primary.dataDir);
    checkFinalState(
      {
        clients: finals,
        archive: this.archive,
        primary: readStoreFile(this.cluster.primary.dataDir),
        replica: this.cluster.replica ? readStoreFile(this.cluster.replica.dataDir) : null,
        ackedCommits: this.ackedCommits(),
      },
      this.violations,
    );
    return { violations: this.violations, quiesced, figures: this.summarize(finals) };
  }

  /** Stops everything this run started; safe on any path, and twice. */
  async cleanup(): Promise<void> {
    this.stopping = true;
    for (const t of this.offlineTimers) clearTimeout(t);
    for (const c of this.clients) c.close();
    await this.cluster.cleanup();
  }

  private async setUp(): Promise<void> {
    const staff = this.clients[6]!;
    for (const p of PRODUCTS) {
      const doc: Doc = { id: p, name: `Product ${p}`, category: 'chaos', price: 3, stock: INITIAL_STOCK, rating: 4 };
      await staff.mutate('put', { collection: 'products', doc });
    }
    for (const id of COUNTERS) await staff.mutate('put', { collection: 'notes', doc: { id, n: 0, createdAt: 0 } });
    await waitFor(
      'every client to see the products and counters',
      async () => {
        for (const c of this.clients) {
          const db = c.db!;
          if (db.status().pending > 0) return false;
          if ((await db.db.table('products').count()) < PRODUCTS.length) return false;
          if ((await db.db.table('notes').bulkGet([...COUNTERS])).some((d) => d === undefined)) return false;
        }
        return true;
      },
      30_000,
      50,
    );
  }

  private async faultLoop(rng: Rng, stop: () => boolean): Promise<void> {
    while (!stop()) {
      await new Promise((r) => setTimeout(r, TICK_MS));
      const c = rng.pick(this.clients);
      if (rng.chance(0.06)) {
        this.figures.cuts++;
        c.net.cut();
      }
      if (rng.chance(0.03)) {
        this.figures.halfOpen++;
        c.net.halfOpen(rng.int(1_000, 4_000));
      }
      if (rng.chance(0.02) && !c.net.offline) {
        this.figures.offlineSpells++;
        c.net.offline = true;
        c.net.cut();
        const t = setTimeout(
          () => {
            this.offlineTimers.delete(t);
            c.net.offline = false;
          },
          rng.int(3_000, 20_000),
        );
        this.offlineTimers.add(t);
      }
      if (rng.chance(0.012)) {
        this.figures.reopens++;
        void c.reopen().catch((err: unknown) => this.violations.add(5, `${c.name} failed to reopen: ${String(err)}`));
      }
      if (rng.chance(0.025)) await this.serverOp(() => this.compact());
    }
  }

  /** kill -9 every ~15 s (restart or failover); afterwards, every mutation acked before the kill must be in the new primary's history. */
  private async crashLoop(rng: Rng, stop: () => boolean): Promise<void> {
    for (;;) {
      const at = Date.now() + rng.int(12_000, 18_000);
      while (!stop() && Date.now() < at) await new Promise((r) => setTimeout(r, 100));
      if (stop()) return;
      await this.serverOp(async () => {
        let ackedAtKill = new Set<string>();
        await this.cluster.crash(() => (ackedAtKill = this.ackedCommits()));
        this.archive.refresh(this.cluster.primary.dataDir);
        const history = this.archive.committedKeys();
        for (const key of ackedAtKill) {
          if (!history.has(key))
            this.violations.add(1, `${key} was acked before kill #${this.cluster.kills} and is gone`);
        }
        this.opts.log(`kill #${this.cluster.kills} (${this.opts.mode}): ${ackedAtKill.size} acked mutations checked`);
      });
    }
  }

  /** The archive takes the log first, then the primary drops what it holds. */
  private async compact(): Promise<void> {
    this.archive.refresh(this.cluster.primary.dataDir);
    await this.cluster.compact(this.archive.head());
    this.figures.compactions++;
  }

  private serverOp(fn: () => Promise<void>): Promise<void> {
    const next = this.serverOps.then(fn);
    this.serverOps = next.catch(() => undefined);
    return next;
  }

  private ackedCommits(): Set<string> {
    const out = new Set<string>();
    for (const c of this.clients) {
      for (const [seq, answers] of c.wire) if (answers.includes(null)) out.add(`${c.clientId}#${seq}`);
    }
    return out;
  }

  /** All faults off; every outbox empty and every client at the head, within the bound. */
  private async quiesce(): Promise<boolean> {
    for (const t of this.offlineTimers) clearTimeout(t);
    this.offlineTimers.clear();
    for (const c of this.clients) c.net.heal();
    // A reopen in progress finishes first.
    await Promise.all(this.clients.map((c) => c.serial(async () => undefined)));
    const deadline = Date.now() + this.opts.quiesceMs;
    const left = (): number => Math.max(1, deadline - Date.now());
    try {
      await waitFor(
        'every outbox to drain',
        () => this.clients.every((c) => c.db?.status().pending === 0 && c.db.status().state === 'live'),
        left(),
        50,
      );
      // One public write after everything else, so every client's checkpoint can reach the head.
      await this.clients[0]!.mutate('put', { collection: 'notes', doc: { id: 'quiesce', n: 0, createdAt: 0 } });
      await waitFor('the last write to commit', () => this.clients[0]!.db?.status().pending === 0, left(), 50);
      const head = (await this.cluster.status()).headLsn;
      await waitFor(
        `every client to reach LSN ${head}`,
        () => this.clients.every((c) => (c.db?.status().lastSyncedLsn ?? 0) >= head),
        left(),
        50,
      );
      await Promise.all(this.clients.map((c) => c.db!.engine.settled()));
      await this.cluster.replicaCaughtUp(left());
      return true;
    } catch (err) {
      const states = this.clients
        .map(
          (c) =>
            `${c.name}: ${c.db?.status().state} pending ${c.db?.status().pending} at ${c.db?.status().lastSyncedLsn}`,
        )
        .join('; ');
      this.violations.add(5, `did not quiesce within ${this.opts.quiesceMs} ms (${String(err)}): ${states}`);
      return false;
    }
  }

  private async collect(): Promise<FinalClient[]> {
    const out: FinalClient[] = [];
    for (const c of this.clients) {
      const db = c.db!;
      const docs = new Map<string, Map<string, Doc>>();
      for (const name of Object.keys(storeSchema.collections)) {
        const rows = await db.db.table<Doc, string>(name).toArray();
        docs.set(name, new Map(rows.map((d) => [d.id, d])));
      }
      out.push({ client: c, docs, rejections: await db.rejections(), outbox: await db.db.table('_outbox').count() });
    }
    return out;
  }

  private summarize(finals: readonly FinalClient[]): Record<string, number> {
    let mutations = 0;
    let rejected = 0;
    let refused = 0;
    let reconnects = 0;
    let lostAcks = 0;
    let redelivered = 0;
    for (const c of this.clients) {
      mutations += c.issued.size;
      refused += c.localRefusals;
      reconnects += c.net.reconnects;
      lostAcks += c.net.lostAcks;
      redelivered += c.net.redelivered;
    }
    for (const f of finals) rejected += f.rejections.length;
    return {
      mutations,
      acked: this.ackedCommits().size,
      rejected,
      'refused locally': refused,
      kills: this.cluster.kills,
      failovers: this.cluster.failovers,
      reconnects,
      'lost acks': lostAcks,
      'pushes redelivered': redelivered,
      cuts: this.figures.cuts,
      'half-open': this.figures.halfOpen,
      'offline spells': this.figures.offlineSpells,
      reopens: this.figures.reopens,
      compactions: this.figures.compactions,
    };
  }
}

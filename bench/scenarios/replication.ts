import { waitFor } from '../../test/support/wait';
import type { RawClient } from '../raw-client';
import { cpuMeter, sleep } from '../scenario';
import type { Json, Metric, Resources, ScenarioOptions, ScenarioResult } from '../scenario';
import type { BenchServer, ReplicaInfo } from '../server';
import { nowMs, round, summarize, summaryJson } from '../stats';
import type { Summary } from '../stats';
import { connectIngestClients, driveRawIngest } from './ingest';
import type { RawIngestConfig } from './ingest';
import { ownedId } from '../../shared/schema/owned-id';

/**
 * Replication (issue #4): a primary and one replica (`--primary URL`), both
 * real server processes on 127.0.0.1 with fresh temp data directories.
 *
 * Lag: protocol clients write owner-only `items` puts to the primary, either
 * at a fixed rate or as fast as they go, while the bench polls GET
 * /admin/status on both nodes in two independent loops (one request at a
 * time per node, a new one every `pollIntervalMs`). For each LSN the first
 * poll that shows a head at or past it gives the time it was committed (on
 * the primary) and applied (on the replica); the lag is the difference.
 * Both sides are measured the same way, so the polling delay cancels on
 * average; the poll interval bounds the resolution and is reported. Also,
 * with only the replica side polled: the change's `ts` (the primary's clock
 * when its group commit began, whole ms, as the writer receives its own
 * change) → first seen on the replica, and push ack (sent after the durable
 * commit, in the same turn as the change goes to the replica) → first seen on
 * the replica. And the primary's own `lagMs` / `lagLsn` for the replica,
 * sampled by the same polls of the primary.
 *
 * Ingest: the protocol-client ingest (100 clients, 50 mutations per push)
 * against a primary alone, a primary with a replica and `--min-sync-replicas
 * 0`, and one with `--min-sync-replicas 1` (acks wait until the replica has
 * applied the change), each on fresh servers, in rotating order, several
 * rounds; the medians are compared.
 */

export type LagLoad =
  /** `writers` clients share a fixed rate: every `tickMs` what is due goes out in pushes of at most `maxBatch`, to clients with no push in flight. */
  | { kind: 'rate'; writers: number; ratePerSecond: number; tickMs: number; maxBatch: number }
  /** Every writer pushes `batch` mutations, awaits the ack, and pushes again. */
  | { kind: 'max'; writers: number; batch: number };

export interface LagConfig {
  load: LagLoad;
  durationMs: number;
  /** Pushes sent in the first `warmupMs` are not measured. */
  warmupMs: number;
  pollIntervalMs: number;
  /** How long the replica may take to reach the primary's head after the load. */
  drainTimeoutMs: number;
}

export const LAG: LagConfig[] = [
  {
    load: { kind: 'rate', writers: 20, ratePerSecond: 2_000, tickMs: 5, maxBatch: 50 },
    durationMs: 10_000,
    warmupMs: 1_000,
    pollIntervalMs: 5,
    drainTimeoutMs: 30_000,
  },
  {
    load: { kind: 'max', writers: 100, batch: 50 },
    durationMs: 5_000,
    warmupMs: 1_000,
    pollIntervalMs: 5,
    drainTimeoutMs: 30_000,
  },
];

export interface ReplIngestConfig extends RawIngestConfig {
  /** Each variant runs this many times, in rotating order, on fresh servers. */
  rounds: number;
  /** Whether to also run the primary without a replica, for reference. */
  withoutReplica: boolean;
}

export const REPL_INGEST: ReplIngestConfig = {
  clients: 100,
  perClient: 300,
  batch: 50,
  rounds: 5,
  withoutReplica: true,
};

interface Cluster {
  primary: BenchServer;
  replica: BenchServer | null;
}

/** A primary (with `--min-sync-replicas k`) and, unless `k` is null, one replica that is live on it. */
async function startCluster(res: Resources, k: number | null): Promise<Cluster> {
  const primary = await res.server(k === null ? [] : ['--min-sync-replicas', String(k)]);
  if (k === null) return { primary, replica: null };
  const replica = await res.server(['--primary', primary.url]);
  await waitFor(
    'the replica to be live on the primary',
    async () => {
      const s = await primary.adminStatus();
      return s.replicas?.some((r) => r.connected && r.live) ?? false;
    },
    30_000,
    20,
  );
  return { primary, replica };
}

/**
 * Server CPU per GET /admin/status (ms), from `n` sequential requests on an
 * idle node: what the head polls cost the nodes they measure. Null without /proc.
 */
async function statusCpuMs(server: BenchServer, n = 300): Promise<number | null> {
  const before = server.cpuMs();
  for (let i = 0; i < n; i++) await server.adminStatus();
  const after = server.cpuMs();
  return before === null || after === null ? null : (after - before) / n;
}

/** Replica first, so it does not spend the primary's shutdown reconnecting. */
async function stopCluster(res: Resources, c: Cluster): Promise<void> {
  if (c.replica) await res.stopServer(c.replica);
  await res.stopServer(c.primary);
}

interface HeadSample {
  /** nowMs() when the request went out. */
  sentAt: number;
  /** nowMs() when the answer came back. */
  at: number;
  head: number;
  /** On the primary: its view of the (one) replica. */
  replica: ReplicaInfo | null;
}

/**
 * Polls a node's GET /admin/status: one request at a time, a new one every
 * `intervalMs` (or at once when slower), until stopped or the scenario is.
 */
class HeadPoller {
  readonly samples: HeadSample[] = [];
  errors = 0;
  lastError: string | null = null;
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly server: BenchServer,
    private readonly intervalMs: number,
    private readonly res: Resources,
  ) {
    this.loop = this.run();
  }

  get head(): number {
    return this.samples[this.samples.length - 1]?.head ?? 0;
  }

  private async run(): Promise<void> {
    while (!this.stopped && !this.res.stopped) {
      const sentAt = nowMs();
      try {
        const s = await this.server.adminStatus();
        this.samples.push({ sentAt, at: nowMs(), head: s.headLsn, replica: s.replicas?.[0] ?? null });
      } catch (err) {
        this.errors++;
        this.lastError = err instanceof Error ? err.message : String(err);
      }
      const wait = sentAt + this.intervalMs - nowMs();
      if (wait > 0) await sleep(wait);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** For each LSN in 1..upTo, the answer time of the first poll whose head was at or past it (NaN if none). */
  firstSeen(upTo: number): Float64Array {
    const first = new Float64Array(upTo + 1).fill(Number.NaN);
    let reached = 0;
    for (const s of this.samples) {
      for (let lsn = reached + 1; lsn <= Math.min(s.head, upTo); lsn++) first[lsn] = s.at;
      reached = Math.max(reached, s.head);
    }
    return first;
  }

  /**
   * How precisely a poll places a change: one first seen in poll i became
   * visible after poll i-1 was sent and before poll i answered.
   */
  resolution(from: number, to: number): Summary {
    const widths: number[] = [];
    for (let i = 1; i < this.samples.length; i++) {
      const s = this.samples[i]!;
      if (s.at >= from && s.at <= to) widths.push(s.at - this.samples[i - 1]!.sentAt);
    }
    return summarize(widths);
  }
}

interface PushRecord {
  sentAt: number;
  ackAt: number;
  lsns: number[];
}

interface LoadRun {
  t0: number;
  /** When the last push was acked. */
  end: number;
  pushes: PushRecord[];
  /** Rate mode: ticks on which some due mutations waited because every writer had a push in flight. */
  stalledTicks: number;
}

async function pushRecorded(c: RawClient, ci: number, n: number, pushes: PushRecord[]): Promise<void> {
  const owner = `ingest-${ci}`;
  const sentAt = nowMs();
  const ack = await c.push(n, (seq) => ({
    name: 'put',
    args: { collection: 'items', doc: { id: ownedId(owner, `c${ci}-${seq}`), owner, n: seq } },
  }));
  const ackAt = nowMs();
  if (!ack.ok) throw new Error(`push refused: ${ack.error.code} ${ack.error.message}`);
  const lsns: number[] = [];
  for (const r of ack.results) {
    if (r.status !== 'applied') throw new Error(`mutation ${r.seq} not applied: ${r.status}`);
    lsns.push(r.lsn);
  }
  pushes.push({ sentAt, ackAt, lsns });
}

async function driveLoad(clients: readonly RawClient[], cfg: LagConfig, res: Resources): Promise<LoadRun> {
  const pushes: PushRecord[] = [];
  const t0 = nowMs();
  const stopAt = t0 + cfg.durationMs;
  const load = cfg.load;
  let stalledTicks = 0;
  if (load.kind === 'max') {
    await Promise.all(
      clients.map(async (c, ci) => {
        while (nowMs() < stopAt && !res.stopped) await pushRecorded(c, ci, load.batch, pushes);
      }),
    );
  } else {
    const total = Math.round((load.ratePerSecond * cfg.durationMs) / 1000);
    const busy = new Array<boolean>(clients.length).fill(false);
    const inFlight = new Set<Promise<void>>();
    // Set from the push callbacks (an object, so TypeScript does not narrow it to null in the loop).
    const failed: { error: Error | null } = { error: null };
    let sent = 0;
    let next = 0;
    for (let tick = 1; failed.error === null && !res.stopped; tick++) {
      const due = Math.min(total, Math.floor((load.ratePerSecond * (nowMs() - t0)) / 1000));
      while (sent < due) {
        let ci = -1;
        for (let k = 0; k < clients.length; k++) {
          const j = (next + k) % clients.length;
          if (!busy[j]) {
            ci = j;
            break;
          }
        }
        if (ci < 0) {
          stalledTicks++;
          break;
        }
        next = ci + 1;
        const n = Math.min(load.maxBatch, due - sent);
        sent += n;
        busy[ci] = true;
        const p: Promise<void> = pushRecorded(clients[ci]!, ci, n, pushes)
          .catch((err: unknown) => {
            failed.error ??= err instanceof Error ? err : new Error(String(err));
          })
          .finally(() => {
            busy[ci] = false;
            inFlight.delete(p);
          });
        inFlight.add(p);
      }
      if (sent >= total) break;
      await sleep(Math.max(0, t0 + tick * load.tickMs - nowMs()));
    }
    await Promise.all(inFlight);
    if (failed.error !== null) throw failed.error;
  }
  return { t0, end: Math.max(...pushes.map((p) => p.ackAt)), pushes, stalledTicks };
}

function loadLabel(load: LagLoad): string {
  return load.kind === 'rate'
    ? `${load.ratePerSecond.toLocaleString('en-US')}/s, ${load.writers} writers`
    : `max rate, ${load.writers} writers × ${load.batch}/push`;
}

const ms = (v: number): number | null => (Number.isFinite(v) ? round(v) : null);

export async function replicationLag(
  options: ScenarioOptions,
  res: Resources,
  configs: readonly LagConfig[] = LAG,
): Promise<ScenarioResult> {
  const scenario = 'replication lag';
  const started = nowMs();
  const metrics: Metric[] = [];
  const details: { [key: string]: Json } = {};
  for (const cfg of configs) {
    const label = loadLabel(cfg.load);
    const cluster = await startCluster(res, 0);
    const { primary } = cluster;
    const replica = cluster.replica!;
    const pollers: HeadPoller[] = [];
    try {
      const pollCost = { primary: await statusCpuMs(primary), replica: await statusCpuMs(replica) };
      // The primary's commit time of every LSN, from the writers' own changes coming back to them.
      const commitTs: number[] = [];
      const clients = await connectIngestClients(primary, cfg.load.writers, res, (msg) => {
        for (const c of msg.changes) commitTs[c.lsn] = c.ts;
      });
      options.log(
        `  ${label} for ${cfg.durationMs / 1000} s (first ${cfg.warmupMs / 1000} s not measured); ` +
          `polling both nodes' head every ${cfg.pollIntervalMs} ms`,
      );
      const pollStart = nowMs();
      const onPrimary = new HeadPoller(primary, cfg.pollIntervalMs, res);
      const onReplica = new HeadPoller(replica, cfg.pollIntervalMs, res);
      pollers.push(onPrimary, onReplica);
      const primaryCpu = cpuMeter(primary);
      const replicaCpu = cpuMeter(replica);
      await sleep(100);
      const run = await driveLoad(clients, cfg, res);
      const cpuP = primaryCpu();
      const cpuR = replicaCpu();
      const head = (await primary.adminStatus()).headLsn;
      const committed = run.pushes.reduce((n, p) => n + p.lsns.length, 0);
      if (head !== committed) throw new Error(`primary head ${head}, expected ${committed}`);
      let drained = true;
      try {
        await waitFor(
          'the replica to apply the head',
          () => onReplica.head >= head && onPrimary.head >= head,
          cfg.drainTimeoutMs,
          2,
        );
      } catch {
        drained = false;
      }
      const drainedAt = nowMs();
      await Promise.all(pollers.map((p) => p.stop()));
      for (const c of clients) c.close();
      if (!drained)
        throw new Error(
          `the replica reached ${onReplica.head} of ${head} within ${cfg.drainTimeoutMs} ms after the load`,
        );

      const from = run.t0 + cfg.warmupMs;
      const measured = run.pushes.filter((p) => p.sentAt >= from);
      const seenP = onPrimary.firstSeen(head);
      const seenR = onReplica.firstSeen(head);
      const commitToApplied: number[] = [];
      const commitTsToApplied: number[] = [];
      let missingTs = 0;
      for (const p of measured) {
        for (const lsn of p.lsns) {
          commitToApplied.push(seenR[lsn]! - seenP[lsn]!);
          const ts = commitTs[lsn];
          if (ts === undefined || !Number.isFinite(ts)) missingTs++;
          else commitTsToApplied.push(seenR[lsn]! - ts);
        }
      }
      const ackToApplied = measured.map((p) => seenR[Math.max(...p.lsns)]! - p.ackAt);
      const window = onPrimary.samples.filter((s) => s.at >= from && s.at <= run.end && s.replica !== null);
      const statusLagMs = summarize(window.map((s) => s.replica!.lagMs));
      const statusLagLsn = summarize(window.map((s) => s.replica!.lagLsn));
      const lag = summarize(commitToApplied);
      const ackLag = summarize(ackToApplied);
      const tsLag = summarize(commitTsToApplied);
      const pushLatency = summarize(measured.map((p) => p.ackAt - p.sentAt));
      const measuredMutations = measured.reduce((n, p) => n + p.lsns.length, 0);
      const rate = measuredMutations / ((run.end - from) / 1000);
      const resP = onPrimary.resolution(from, run.end);
      const resR = onReplica.resolution(from, run.end);
      const drainMs = seenR[head]! - run.end;

      metrics.push(
        { scenario, metric: `${label}: committed mutations/s`, value: round(rate), unit: '/s' },
        { scenario, metric: `${label}: commit → applied on replica p50`, value: ms(lag.p50), unit: 'ms' },
        { scenario, metric: `${label}: commit → applied on replica p99`, value: ms(lag.p99), unit: 'ms' },
        {
          scenario,
          metric: `${label}: commit start (change ts) → applied on replica p99`,
          value: ms(tsLag.p99),
          unit: 'ms',
        },
        { scenario, metric: `${label}: push ack → applied on replica p99`, value: ms(ackLag.p99), unit: 'ms' },
        { scenario, metric: `${label}: primary's lagMs p50 (sampled)`, value: ms(statusLagMs.p50), unit: 'ms' },
        { scenario, metric: `${label}: primary's lagMs p99 (sampled)`, value: ms(statusLagMs.p99), unit: 'ms' },
        { scenario, metric: `${label}: primary's lagLsn p99 (sampled)`, value: ms(statusLagLsn.p99), unit: 'changes' },
        {
          scenario,
          metric: `${label}: head poll resolution, primary (mean)`,
          value: ms(resP.mean),
          unit: 'ms',
          note: `replica ${round(resR.mean)} ms`,
        },
      );
      details[label] = {
        load: cfg.load as unknown as Json,
        durationMs: cfg.durationMs,
        warmupMs: cfg.warmupMs,
        pollIntervalMs: cfg.pollIntervalMs,
        committed,
        measuredMutations,
        measuredPushes: measured.length,
        meanPushSize: round(measuredMutations / Math.max(1, measured.length)),
        committedPerSecond: round(rate),
        stalledTicks: run.stalledTicks,
        commitToAppliedMs: summaryJson(lag),
        commitStartTsToAppliedMs: summaryJson(tsLag),
        changesWithoutTs: missingTs,
        ackToAppliedMs: summaryJson(ackLag),
        pushToAckMs: summaryJson(pushLatency),
        statusLagMs: summaryJson(statusLagMs),
        statusLagLsn: summaryJson(statusLagLsn),
        pollResolutionMs: { primary: summaryJson(resP), replica: summaryJson(resR) },
        polls: { primary: onPrimary.samples.length, replica: onReplica.samples.length },
        pollsPerSecond: {
          primary: round(onPrimary.samples.length / ((drainedAt - pollStart) / 1000)),
          replica: round(onReplica.samples.length / ((drainedAt - pollStart) / 1000)),
        },
        statusServerCpuMsPerRequest: {
          primary: pollCost.primary === null ? null : round(pollCost.primary),
          replica: pollCost.replica === null ? null : round(pollCost.replica),
        },
        pollErrors: { primary: onPrimary.errors, replica: onReplica.errors },
        pollLastError: onPrimary.lastError ?? onReplica.lastError,
        replicaAppliedHeadAfterLastAckMs: ms(drainMs),
        drainWaitMs: round(drainedAt - run.end),
        primaryCpuPct: cpuP.serverCpuPct === null ? null : round(cpuP.serverCpuPct),
        replicaCpuPct: cpuR.serverCpuPct === null ? null : round(cpuR.serverCpuPct),
        benchProcessCpuPct: round(cpuP.benchCpuPct),
      };
    } finally {
      await Promise.all(pollers.map((p) => p.stop()));
      await stopCluster(res, cluster);
    }
  }
  return {
    name: scenario,
    description:
      "a primary and one replica; protocol clients write owner-only items to the primary while the bench polls both nodes' /admin/status head LSN",
    metrics,
    details,
    serverPeakRssKb: [...res.peakRssKb],
    durationMs: nowMs() - started,
  };
}

type Variant = 'no replica' | 'min-sync 0' | 'min-sync 1';

const VARIANT_K: Record<Variant, number | null> = { 'no replica': null, 'min-sync 0': 0, 'min-sync 1': 1 };

const median = (values: readonly number[]): number => summarize(values).p50;

export async function replicationIngest(
  options: ScenarioOptions,
  res: Resources,
  cfg: ReplIngestConfig = REPL_INGEST,
): Promise<ScenarioResult> {
  const scenario = 'ingest with a replica';
  const started = nowMs();
  const variants: Variant[] = [...(cfg.withoutReplica ? (['no replica'] as const) : []), 'min-sync 0', 'min-sync 1'];
  const runs: Record<Variant, Array<{ [key: string]: Json }>> = {
    'no replica': [],
    'min-sync 0': [],
    'min-sync 1': [],
  };
  const rates: Record<Variant, number[]> = { 'no replica': [], 'min-sync 0': [], 'min-sync 1': [] };
  /** By k: when a poll of the replica first showed the head, after the last ack (for k = 1 it is one poll's round trip). */
  const caughtUpAfterAck: { 0: number[]; 1: number[] } = { 0: [], 1: [] };
  const label = `${cfg.clients} clients, ${cfg.batch}/push`;
  for (let round_ = 0; round_ < cfg.rounds; round_++) {
    // Rotate the order so that drift in the machine's load does not always favour the same variant.
    const order = variants.map((_, i) => variants[(i + round_) % variants.length]!);
    for (const variant of order) {
      const k = VARIANT_K[variant];
      const cluster = await startCluster(res, k);
      const { primary, replica } = cluster;
      let clients: RawClient[] = [];
      try {
        clients = await connectIngestClients(primary, cfg.clients, res);
        const replicaCpu = replica ? cpuMeter(replica) : null;
        const run = await driveRawIngest(primary, clients, cfg);
        const cpuR = replicaCpu?.() ?? null;
        const lastAck = run.startedAt + run.elapsed;
        let replicaLagAfterAckMs: number | null = null;
        if (replica) {
          // When the replica has it all (for min-sync 1 it must have, before the last ack).
          let replicaHead = 0;
          await waitFor(
            'the replica to apply the head',
            async () => {
              replicaHead = (await replica.adminStatus()).headLsn;
              return replicaHead >= run.headLsn;
            },
            30_000,
            5,
          );
          replicaLagAfterAckMs = nowMs() - lastAck;
          if (k === 0 || k === 1) caughtUpAfterAck[k].push(replicaLagAfterAckMs);
        }
        const status = await primary.adminStatus();
        const rate = run.committed / (run.elapsed / 1000);
        rates[variant].push(rate);
        options.log(
          `  round ${round_ + 1}, ${variant}: ${Math.round(rate)} mutations/s` +
            (replicaLagAfterAckMs === null
              ? ''
              : `, replica had it all ${Math.round(replicaLagAfterAckMs)} ms after the last ack`),
        );
        runs[variant].push({
          round: round_ + 1,
          committed: run.committed,
          elapsedMs: round(run.elapsed),
          committedPerSecond: round(rate),
          replicaHadHeadAfterLastAckMs: replicaLagAfterAckMs === null ? null : round(replicaLagAfterAckMs),
          primaryCpuPct: run.cpu.serverCpuPct === null ? null : round(run.cpu.serverCpuPct),
          replicaCpuPct: cpuR === null || cpuR.serverCpuPct === null ? null : round(cpuR.serverCpuPct),
          benchProcessCpuPct: round(run.cpu.benchCpuPct),
          minSyncReplicas: (status.minSyncReplicas ?? null) as Json,
        });
      } finally {
        for (const c of clients) c.close();
        await stopCluster(res, cluster);
      }
    }
  }
  const metrics: Metric[] = [];
  const fmt = (v: number): string => Math.round(v).toLocaleString('en-US');
  for (const v of variants) {
    metrics.push({
      scenario,
      metric: `${label}, ${v}: committed mutations/s (median of ${rates[v].length})`,
      value: round(median(rates[v])),
      unit: '/s',
      note: `runs ${rates[v].map(fmt).join(', ')}`,
    });
  }
  const ratio = median(rates['min-sync 1']) / median(rates['min-sync 0']);
  metrics.push({ scenario, metric: `${label}: min-sync 1 / min-sync 0 throughput`, value: round(ratio), unit: '×' });
  if (cfg.withoutReplica) {
    metrics.push({
      scenario,
      metric: `${label}: min-sync 0 / no replica throughput`,
      value: round(median(rates['min-sync 0']) / median(rates['no replica'])),
      unit: '×',
    });
  }
  metrics.push({
    scenario,
    metric: `${label}, min-sync 0: replica has the head after the last ack (median)`,
    value: ms(median(caughtUpAfterAck[0])),
    unit: 'ms',
    note: `polled every 5 ms; min-sync 1 control: ${round(median(caughtUpAfterAck[1]))} ms`,
  });
  const details: { [key: string]: Json } = {
    clients: cfg.clients,
    mutationsPerClient: cfg.perClient,
    mutationsPerPush: cfg.batch,
    rounds: cfg.rounds,
    runs,
    medianPerSecond: Object.fromEntries(variants.map((v) => [v, round(median(rates[v]))])),
    minSync1OverMinSync0: round(ratio),
  };
  return {
    name: scenario,
    description:
      'the protocol-client ingest (owner-only items puts, one push in flight per client) against a primary alone and a primary with one replica at --min-sync-replicas 0 and 1',
    metrics,
    details,
    serverPeakRssKb: [...res.peakRssKb],
    durationMs: nowMs() - started,
  };
}

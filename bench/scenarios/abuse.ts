import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { readProcMemory } from '../rss';
import { sleep } from '../scenario';
import type { Json, Metric, Resources, ScenarioOptions, ScenarioResult } from '../scenario';
import { nowMs, round, summarize, summaryJson } from '../stats';
import { FloodClient } from './abuse-client';
import { ownedId } from '../../shared/schema/owned-id';

/**
 * Abuse (issue 9, item 2, "Floods"): one user floods the primary from many
 * sessions, each pushing full pushes (500 puts of ~250-byte documents) back to
 * back, while a normal user pushes one small mutation at a time. The headline
 * is the normal user's push ack latency (p50/p99) while the flood runs; also
 * the flood's accepted mutations/s, how often it was refused (RATE_LIMITED,
 * connection limits) and the server's RSS.
 */

const TARGET_P99_MS = 250;

export interface AbuseConfig {
  floodSessions: number;
  mutationsPerPush: number;
  padBytes: number;
  /** The normal user pushes for this long once the flood has started. */
  durationMs: number;
  /** Pause between the normal user's pushes. */
  normalGapMs: number;
  /** A push unanswered after this counts as this long (and the run goes on). */
  pushTimeoutMs: number;
}

export const ABUSE: AbuseConfig = {
  floodSessions: 40,
  mutationsPerPush: 500,
  padBytes: 250,
  durationMs: 20_000,
  normalGapMs: 20,
  pushTimeoutMs: 60_000,
};

export async function abuse(
  options: ScenarioOptions,
  res: Resources,
  cfg: AbuseConfig = ABUSE,
  serverArgs: string[] = [],
): Promise<ScenarioResult> {
  const scenario = 'abuse (flood)';
  const started = nowMs();
  const server = await res.server(serverArgs);
  const refusals = new Map<string, number>();
  const normal = await FloodClient.connect(server.url, 'normal-user', refusals);
  if (!normal) throw new Error(`the normal user was refused: ${JSON.stringify([...refusals])}`);
  res.defer(() => normal.close());
  const flooder = startFlooder(server.url, cfg);
  res.defer(() => flooder.kill());
  const ready = await flooder.next('ready');
  options.log(
    `  flooder (own process): ${String(ready['admitted'])} of ${cfg.floodSessions} sessions admitted, ${cfg.mutationsPerPush} puts/push; normal user: 1 put per push`,
  );

  let peakRssKb = 0;
  const sampleRss = (): void => {
    peakRssKb = Math.max(peakRssKb, readProcMemory(server.pid)?.vmRSSKb ?? 0);
  };
  const rssTimer = setInterval(sampleRss, 200);
  // Let the flood queue up before measuring.
  await sleep(1_000);
  const latencies: number[] = [];
  let normalTimeouts = 0;
  let normalRefused = 0;
  const measureStart = nowMs();
  const floodAppliedAtMeasure = flooder.applied;
  for (let i = 0; nowMs() - measureStart < cfg.durationMs && !res.stopped; i++) {
    const t0 = nowMs();
    try {
      await normal.push(
        1,
        (seq) => ({
          name: 'put',
          args: { collection: 'items', doc: { id: ownedId('normal-user', `n-${seq}`), owner: 'normal-user', n: i } },
        }),
        cfg.pushTimeoutMs,
        () => normalRefused++,
      );
      latencies.push(nowMs() - t0);
    } catch {
      normalTimeouts++;
      latencies.push(cfg.pushTimeoutMs);
      break;
    }
    await sleep(cfg.normalGapMs);
  }
  const measuredMs = nowMs() - measureStart;
  const floodDuringMeasure = flooder.applied - floodAppliedAtMeasure;
  sampleRss();
  clearInterval(rssTimer);
  const done = await flooder.stop();
  const s = summarize(latencies);
  const floodRate = floodDuringMeasure / (measuredMs / 1000);
  const peakHwmKb = server.peakRssKb();
  const rows: Metric[] = [
    {
      scenario,
      metric: 'normal user push ack p50 (flood running)',
      value: round(s.p50),
      unit: 'ms',
    },
    {
      scenario,
      metric: 'normal user push ack p99 (flood running)',
      value: round(s.p99),
      unit: 'ms',
      target: `< ${TARGET_P99_MS} ms`,
      pass: s.p99 < TARGET_P99_MS,
    },
    { scenario, metric: 'normal user pushes acked', value: s.count, unit: '' },
    { scenario, metric: 'flooder accepted mutations/s', value: round(floodRate), unit: '/s' },
    {
      scenario,
      metric: 'flooder sessions admitted',
      value: Number(ready['admitted']),
      unit: `of ${cfg.floodSessions}`,
    },
    { scenario, metric: 'server RSS peak during flood', value: round(peakRssKb / 1024), unit: 'MiB' },
  ];
  await res.stopServer(server);
  return {
    name: scenario,
    description:
      'one user floods from many sessions with full pushes back to back (a refused push waits its retryAfterMs and is retried); a normal user pushes one put at a time; its push ack latency is measured while the flood runs',
    metrics: rows,
    details: {
      config: { ...cfg },
      serverArgs,
      normal: { ...summaryJson(s), timeouts: normalTimeouts, refused: normalRefused },
      flood: {
        sessionsAdmitted: Number(ready['admitted']),
        refusedConnections: (ready['refusedConnections'] ?? {}) as Json,
        appliedTotal: Number(done['applied']),
        appliedDuringMeasure: floodDuringMeasure,
        acceptedPerSecond: round(floodRate),
        refusedPushes: (done['refusedPushes'] ?? {}) as Json,
        sessionsClosedByServer: Number(done['closedEarly']),
      },
      serverRssPeakMiB: round(peakRssKb / 1024),
      serverVmHwmMiB: peakHwmKb === null ? null : round(peakHwmKb / 1024),
    },
    serverPeakRssKb: [...res.peakRssKb],
    durationMs: nowMs() - started,
  };
}

interface Flooder {
  /** Mutations of the flood applied so far (from its last progress line). */
  readonly applied: number;
  next(type: string): Promise<Record<string, unknown>>;
  stop(): Promise<Record<string, unknown>>;
  kill(): void;
}

/** Starts abuse-flooder.ts in its own process (see there). */
function startFlooder(url: string, cfg: AbuseConfig): Flooder {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, 'abuse-flooder.ts'),
      url,
      String(cfg.floodSessions),
      String(cfg.mutationsPerPush),
      String(cfg.padBytes),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const waiting = new Map<string, (msg: Record<string, unknown>) => void>();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let applied = 0;
  createInterface({ input: child.stdout }).on('line', (line) => {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    if (typeof msg !== 'object' || msg === null) return;
    const record = msg as Record<string, unknown>;
    if (typeof record['applied'] === 'number') applied = record['applied'];
    const type = String(record['type']);
    waiting.get(type)?.(record);
    waiting.delete(type);
  });
  const next = (type: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      waiting.set(type, resolve);
      void exited.then(() => reject(new Error(`the flooder exited before '${type}'`)));
    });
  return {
    get applied() {
      return applied;
    },
    next,
    async stop() {
      const done = next('done');
      child.stdin.write('stop\n');
      return done;
    },
    kill: () => void child.kill('SIGKILL'),
  };
}

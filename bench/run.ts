/**
 * `npm run bench`: the Tideline benchmark (issues #2 and #4), against real
 * server processes on 127.0.0.1 with clients in this Node process.
 *
 *   npm run bench                          all scenarios
 *   npm run bench -- --only fanout,catchup run some (ingest-raw, ingest-real, fanout, catchup,
 *                                          replication-lag, replication-ingest; abuse; `replication` is both; query;
 *                                          pg-ingest, pg-fanout; `pg` is both)
 *   npm run bench -- --max-seconds 60      lower every scenario's hard limit to 60 s
 *   npm run bench -- --cpu-prof            also write V8 CPU profiles of the servers to bench/results/tmp/prof/
 *                                          (summarise one with `npx tsx bench/profile-top.ts <file>`)
 *
 * Prints a table and writes bench/results/bench-<timestamp>.json and bench/results/latest.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import 'fake-indexeddb/auto';
import { Resources, within } from './scenario';
import type { Metric, ScenarioOptions, ScenarioResult } from './scenario';
import { abuse } from './scenarios/abuse';
import { catchup } from './scenarios/catchup';
import { fanout } from './scenarios/fanout';
import { ingestRaw, ingestReal } from './scenarios/ingest';
import { pgFanout, pgIngest } from './scenarios/pg';
import { query } from './scenarios/query';
import { replicationIngest, replicationLag } from './scenarios/replication';
import { stopAllBenchServers } from './server';
import { round } from './stats';

interface ScenarioEntry {
  key: string;
  /** `--only <group>` selects every scenario of the group. */
  group?: string;
  name: string;
  /** Hard limit; the scenario is abandoned and its servers and clients closed past it. */
  timeoutMs: number;
  run: (options: ScenarioOptions, res: Resources) => Promise<ScenarioResult>;
}

const SCENARIOS: ScenarioEntry[] = [
  { key: 'ingest-raw', name: 'ingest (protocol clients)', timeoutMs: 120_000, run: (o, r) => ingestRaw(o, r) },
  { key: 'ingest-real', name: 'ingest (open() clients)', timeoutMs: 180_000, run: (o, r) => ingestReal(o, r) },
  { key: 'fanout', name: 'fan-out', timeoutMs: 300_000, run: (o, r) => fanout(o, r) },
  { key: 'catchup', name: 'catch-up', timeoutMs: 180_000, run: (o, r) => catchup(o, r) },
  {
    key: 'replication-lag',
    group: 'replication',
    name: 'replication lag',
    timeoutMs: 120_000,
    run: (o, r) => replicationLag(o, r),
  },
  {
    key: 'replication-ingest',
    group: 'replication',
    name: 'ingest with a replica',
    timeoutMs: 300_000,
    run: (o, r) => replicationIngest(o, r),
  },
  { key: 'query', name: 'queries under HTTP load', timeoutMs: 240_000, run: (o, r) => query(o, r) },
  { key: 'abuse', name: 'abuse (flood)', timeoutMs: 180_000, run: (o, r) => abuse(o, r) },
  { key: 'pg-ingest', group: 'pg', name: 'PostgreSQL ingest', timeoutMs: 300_000, run: (o, r) => pgIngest(o, r) },
  { key: 'pg-fanout', group: 'pg', name: 'PostgreSQL fan-out', timeoutMs: 180_000, run: (o, r) => pgFanout(o, r) },
];

/** The whole run never takes longer than this. */
const GLOBAL_TIMEOUT_MS = 20 * 60_000;

const NOTES = [
  'Server: a real `server/main.ts` process per scenario (fresh temp data dir, --no-seed, 127.0.0.1), SQLite WAL with synchronous=FULL.',
  'Clients: all in this one Node process on the same machine as the server, so client CPU competes with the server for the same cores.',
  '"open() clients" are the real client library (Dexie on fake-indexeddb, socket.io transport); fake-indexeddb is an in-memory JS implementation, slower than a browser IndexedDB.',
  '"protocol clients" are light socket.io-client connections speaking the /sync protocol (hello, push, changes, page acks) with no local replica; used where hundreds of full clients in one process would measure the bench process rather than the server.',
  'Ingest rate = committed mutations / time from the start: for open() clients until the server head LSN (GET /admin/status, polled every 20 ms) reaches the total; for protocol clients until the last push ack (acks go out only after the durable commit), checked against the head LSN.',
  'Replication: a primary and one replica (`--primary URL`), separate processes on the same machine with the same secrets; protocol clients write owner-only items to the primary at 2,000 mutations/s (10 s, due mutations sent every 5 ms to writers with no push in flight) and then as fast as they go (5 s); the first second is warm-up.',
  'Replication lag ("commit → applied") = for each LSN, the first poll of the replica’s GET /admin/status showing a head at or past it minus the first such poll of the primary’s; each node is polled by its own loop, one request at a time, every 5 ms (fewer when a node answers slowly: the achieved resolution is in the table). Also: the change’s ts (primary clock when its group commit began, so it includes the commit itself) → replica poll, push ack → replica poll, and the primary’s own lagMs/lagLsn sampled by its polls. A saturated primary answers few polls, so at max rate the push ack row is the sharper one.',
  'Ingest with a replica: the 100-client protocol ingest (50 per push) on fresh servers per run, primary alone vs. a replica with --min-sync-replicas 0 vs. 1 (acks wait for the replica to apply), rotating order, 5 rounds, medians; the replica-has-the-head row includes one status round trip (min-sync 1, where the replica has it at the ack, is the control).',
  'Queries: 50,000 demo products on a primary and two replicas; autocannon (in this process) drives each query shape with 20 HTTP connections for 3 s against the primary, one replica, and all three at once (connections split 7/7/6, req/s summed); each figure beside the empty-collection query of the same target and run, as a ratio. Three servers and the load generator share the cores: on 2 cores the aggregate cannot scale like separate machines.',
  'Fan-out latency = receipt (or, for open() receivers, applied) time on each receiver minus the moment the writer engine handed the push holding the note to its socket; mutate() → receipt also counts the writer’s local transaction; the first second is warm-up.',
  'Fan-out to 1,000 and 3,000 receivers (20 writes/s): the receivers live in child processes (fanout-receivers.ts, at most 1,000 each), so that reading 20,000-60,000 messages/s does not stall the bench process where the writer runs and push times are taken; they are light clients (bench/scenarios/light-receiver.ts: one WebSocket each, engine.io/Socket.IO framing by hand, hello then read-only) so that a receipt costs a frame and one JSON.parse. Receipt and push times are time origin + performance.now() of each process (same machine clock). The server runs with --max-address-connections 0 (every receiver comes from 127.0.0.1). Receivers and server share the 2 cores.',
  'Ingest servers run with the default push rate limits (1,000 mutations/s per user and per connection, a 10 s burst): each of the 100 ingest users pushes at most 1,000 mutations in all, within its burst, so the limits never throttle the bench (a throttled push would fail the run: every push must be applied).',
  'PostgreSQL (`--only pg`; issue 11): nodes are `server/main.ts --store postgres://… --pg-schema bench --node-id …` processes on a fresh database of the test PostgreSQL (TIDELINE_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres), dropped after; skipped with a note when PostgreSQL does not answer. Every node, PostgreSQL itself and the bench process share the same cores (2 on the reference machine): 3 nodes on one machine measure the shared head lock and the CPU they compete for, not what 3 machines would do. Ingest: 100 protocol clients × 200 owner-only items puts, 50 per push, one push in flight each, on SQLite (1 node), then 1 and 3 PostgreSQL nodes (clients round-robin over the nodes), in the same run; the rate runs to the last push ack (each ack follows the PostgreSQL commit and, on a node, its tail of the shared log reaching it). Fan-out across nodes: 2 nodes; a protocol writer on node A puts public notes at 50/s (one push in flight, notes due meanwhile go in the next push) for 11 s, the first second warm-up; 200 protocol receivers on node B time each note from when its push was sent; then the same with the receivers on node A (the control: same node, the same shared-log tail path).',
  'Abuse: one user ("flooder", its own process so reading its fan-out does not stall the bench process) opens 40 sessions (connections past the per-user limit are refused) and pushes 500 puts of ~300-byte owner-only items per push back to back, a refused push retried with the same seqs after its retryAfterMs; a normal user pushes one put at a time (20 ms apart) for 20 s, from 1 s after the flood starts. Latency = push → ack; flood rate = mutations the flooder had acked during those 20 s.',
];

/** The commit benchmarked, and how many files differ from it (the tree may hold uncommitted work). */
function gitState(): { commit: string | null; dirtyFiles: number | null } {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--', '.', ':!bench'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return { commit, dirtyFiles: status.split('\n').filter((l) => l.trim().length > 0).length };
  } catch {
    return { commit: null, dirtyFiles: null };
  }
}

const loadavg = (): number[] => os.loadavg().map((v) => Math.round(v * 100) / 100);

function formatValue(m: Metric): string {
  if (m.value === null) return 'n/a';
  const v = m.value.toLocaleString('en-US', { maximumFractionDigits: 2 });
  if (m.unit === '') return v;
  if (m.unit === '/s' || m.unit === 'ms') return `${v} ${m.unit}`;
  return `${v} ${m.unit}`;
}

function printTable(rows: Metric[]): string {
  const header = ['scenario', 'metric', 'value', 'target', ''];
  const body = rows.map((m) => [
    m.scenario,
    m.note ? `${m.metric} (${m.note})` : m.metric,
    formatValue(m),
    m.target ?? '',
    m.pass === undefined ? '' : m.pass ? 'met' : 'MISSED',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join(' | ')
      .trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('-|-');
  return [line(header), sep, ...body.map(line)].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { only: { type: 'string' }, 'cpu-prof': { type: 'boolean' }, 'max-seconds': { type: 'string' } },
    strict: true,
  });
  const only = values.only?.split(',').map((s) => s.trim());
  const unknown = only?.filter((k) => !SCENARIOS.some((s) => s.key === k || s.group === k)) ?? [];
  if (unknown.length > 0) {
    const known = [...new Set(SCENARIOS.flatMap((s) => [s.key, ...(s.group ? [s.group] : [])]))];
    throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${known.join(', ')}`);
  }
  const selected = SCENARIOS.filter((s) => !only || only.includes(s.key) || (s.group && only.includes(s.group)));
  const maxMs = values['max-seconds'] === undefined ? Infinity : Number(values['max-seconds']) * 1000;
  if (!(maxMs > 0)) throw new Error(`--max-seconds needs a positive number, got '${values['max-seconds']}'`);
  const resultsDir = join(import.meta.dirname, 'results');
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const cpuProfRoot = values['cpu-prof'] ? join(resultsDir, 'tmp', 'prof', stamp) : undefined;

  const watchdog = setTimeout(() => {
    console.error(`bench: over the global limit of ${GLOBAL_TIMEOUT_MS / 1000} s; stopping servers and exiting`);
    setTimeout(() => process.exit(1), 15_000).unref();
    void stopAllBenchServers().then(() => process.exit(1));
  }, GLOBAL_TIMEOUT_MS);
  watchdog.unref();

  const cpus = os.cpus();
  const machine = {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    totalMemMiB: Math.round(os.totalmem() / 2 ** 20),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    arch: os.arch(),
    loadAvgAtStart: loadavg(),
    ...gitState(),
    /** Free text from $BENCH_SOURCE, e.g. when benchmarking an exported snapshot outside the repository. */
    source: process.env['BENCH_SOURCE'] ?? null,
  };
  console.log(`Tideline bench — ${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}, ${machine.platform}`);
  for (const n of NOTES) console.log(`  * ${n}`);
  if (machine.loadAvgAtStart[0]! > machine.cpus * 0.5) {
    console.log(
      `  ! load average is ${machine.loadAvgAtStart.join(' ')} on ${machine.cpus} CPUs: other processes compete, expect noisy numbers`,
    );
  }
  const loads: Record<string, { start: number[]; end: number[] }> = {};

  const results: ScenarioResult[] = [];
  for (const s of selected) {
    const limitMs = Math.min(s.timeoutMs, maxMs);
    console.log(`\n[${s.key}] ${s.name} (hard limit ${limitMs / 1000} s)`);
    const options: ScenarioOptions = {
      cpuProfDir: cpuProfRoot ? join(cpuProfRoot, s.key) : undefined,
      log: (line) => console.log(line),
    };
    if (options.cpuProfDir) mkdirSync(options.cpuProfDir, { recursive: true });
    const res = new Resources(options);
    const loadStart = loadavg();
    const t0 = performance.now();
    const running = s.run(options, res);
    running.catch(() => undefined);
    try {
      results.push(await within(s.name, limitMs, running));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      console.error(`  FAILED: ${message}`);
      results.push({
        name: s.name,
        description: '',
        metrics: [
          { scenario: s.name, metric: 'error', value: null, unit: '', note: message.split('\n')[0]!.slice(0, 160) },
        ],
        details: { error: message },
        serverPeakRssKb: [...res.peakRssKb],
        durationMs: performance.now() - t0,
        error: message,
      });
    } finally {
      await res.dispose();
    }
    const last = results[results.length - 1]!;
    last.serverPeakRssKb = [...res.peakRssKb];
    loads[s.key] = { start: loadStart, end: loadavg() };
    console.log(`  done in ${(last.durationMs / 1000).toFixed(1)} s (load average ${loadStart[0]} → ${loadavg()[0]})`);
  }

  const rows: Metric[] = [];
  for (const r of results) {
    rows.push(...r.metrics);
    if (r.serverPeakRssKb.length > 0) {
      rows.push({
        scenario: r.name,
        metric: 'server peak RSS (VmHWM, max over its servers)',
        value: round(Math.max(...r.serverPeakRssKb) / 1024),
        unit: 'MiB',
      });
    }
  }
  const allPeaks = results.flatMap((r) => r.serverPeakRssKb);
  if (allPeaks.length > 0) {
    rows.push({
      scenario: 'all',
      metric: 'server peak RSS (VmHWM, max over all runs)',
      value: round(Math.max(...allPeaks) / 1024),
      unit: 'MiB',
    });
  }

  console.log(`\n${printTable(rows)}\n`);
  const report = {
    bench: 'tideline',
    issues: [2, 4, 9],
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine,
    notes: NOTES,
    targets: {
      ingest100ClientsPerSecond: '>= 20000',
      fanout200ClientsP99Ms: '< 50',
      fanout3000ClientsP99Ms: '< 50',
      catchup50000ChangesMs: '< 5000',
      abuseNormalUserPushP99Ms: '< 250',
    },
    loadAverages: loads,
    table: rows,
    scenarios: results,
    ...(cpuProfRoot ? { cpuProfiles: cpuProfRoot } : {}),
  };
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `bench-${stamp}.json`);
  const json = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(file, json);
  writeFileSync(join(resultsDir, 'latest.json'), json);
  console.log(`wrote ${file} and ${join(resultsDir, 'latest.json')}`);
  if (cpuProfRoot) console.log(`server CPU profiles in ${cpuProfRoot} (npx tsx bench/profile-top.ts <file>)`);
  const failed = results.filter((r) => r.error !== undefined).length;
  await stopAllBenchServers();
  process.exit(failed > 0 ? 1 : 0);
}

process.on('unhandledRejection', (err) => {
  console.error('bench: unhandled rejection:', err instanceof Error ? err.message : err);
});

main().catch(async (err: unknown) => {
  console.error(err);
  setTimeout(() => process.exit(1), 15_000).unref();
  await stopAllBenchServers();
  process.exit(1);
});

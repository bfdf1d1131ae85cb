import pg from 'pg';
import { createTestDatabase, TEST_PG_URL } from '../../server/store/pg-test-db';
import type { TestDatabase } from '../../server/store/pg-test-db';
import { pushOwnItems } from './ingest';
import { RawClient } from '../raw-client';
import type { SeenChanges } from '../raw-client';
import { cpuMeter, sleep } from '../scenario';
import type { Json, Metric, Resources, ScenarioOptions, ScenarioResult } from '../scenario';
import type { BenchServer } from '../server';
import { nowMs, round, summarize, summaryJson } from '../stats';

/**
 * Issue 11: Tideline nodes on one PostgreSQL database (`--store postgres://…`),
 * each run on a fresh database (server/store/pg-test-db.ts: `TIDELINE_TEST_PG_URL`,
 * else postgres://postgres@127.0.0.1:5432/postgres) that is dropped after.
 *
 * - ingest: the protocol-client ingest (100 clients, 50 mutations per push,
 *   owner-only `items` puts) on SQLite, on 1 PostgreSQL node and on 3 nodes
 *   (clients spread round-robin), one after the other in the same run.
 * - fan-out across nodes: a protocol writer on node A puts public `notes`
 *   at a fixed rate; 200 protocol receivers on node B (and, as the control,
 *   200 on node A itself) record when each note arrives.
 *
 * When PostgreSQL does not answer, both scenarios report a skip (a row with
 * no value and the reason) rather than fail.
 */

export interface PgIngestConfig {
  clients: number;
  perClient: number;
  batch: number;
}

/** 20,000 mutations: PostgreSQL commits at most about 1 / (flush + transaction) times a second, whatever the nodes. */
export const PG_INGEST: PgIngestConfig = { clients: 100, perClient: 200, batch: 50 };

export interface PgFanoutConfig {
  receivers: number;
  writesPerSecond: number;
  durationMs: number;
  warmupMs: number;
}

export const PG_FANOUT: PgFanoutConfig = { receivers: 200, writesPerSecond: 50, durationMs: 10_000, warmupMs: 1_000 };

/** Null when PostgreSQL answers within 3 s; else why not (the connection string's password hidden). */
export async function pgUnreachable(url = TEST_PG_URL): Promise<string | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return `skipped: no PostgreSQL at ${url.replace(/:[^:@/]*@/, ':***@')} (${why}); set TIDELINE_TEST_PG_URL or run node scripts/ensure-postgres.mjs`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function skipped(scenario: string, reason: string, started: number): ScenarioResult {
  return {
    name: scenario,
    description: reason,
    metrics: [{ scenario, metric: 'skipped', value: null, unit: '', note: reason }],
    details: { skipped: reason },
    serverPeakRssKb: [],
    durationMs: nowMs() - started,
  };
}

async function withDatabase<T>(res: Resources, run: (db: TestDatabase) => Promise<T>): Promise<T> {
  const db = await createTestDatabase();
  // Dropped after the nodes stop; on a timeout the runner runs this closer before it stops the nodes, and
  // DROP DATABASE … WITH (FORCE) ends their connections.
  let dropped = false;
  const drop = async (): Promise<void> => {
    if (dropped) return;
    dropped = true;
    await db.drop();
  };
  res.defer(drop);
  try {
    return await run(db);
  } finally {
    for (const s of [...res.servers]) await res.stopServer(s);
    await drop();
  }
}

/** `n` nodes on one PostgreSQL schema, started one after the other (the first creates the tables). */
async function startNodes(res: Resources, db: TestDatabase, n: number, args: string[] = []): Promise<BenchServer[]> {
  const nodes: BenchServer[] = [];
  for (let i = 0; i < n; i++) {
    nodes.push(await res.server(args, { url: db.url, schema: 'bench', nodeId: `node-${String.fromCharCode(97 + i)}` }));
  }
  return nodes;
}

interface IngestRow {
  label: string;
  rate: number;
  committed: number;
  elapsedMs: number;
  serverCpuPct: number | null;
}

/** Clients `i` on `servers[i % n]`; every one pushes its own items, `batch` per push, one push in flight. */
async function ingestOn(
  servers: BenchServer[],
  cfg: PgIngestConfig,
  res: Resources,
): Promise<Omit<IngestRow, 'label'>> {
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < cfg.clients; i++) {
      const c = await RawClient.connect(servers[i % servers.length]!.url, { userId: `ingest-${i}` });
      clients.push(c);
      res.defer(() => c.close());
    }
    await Promise.all(clients.map((c) => c.waitLive()));
    const prevHead = (await servers[0]!.adminStatus()).headLsn;
    const meters = servers.map((s) => cpuMeter(s));
    const t0 = nowMs();
    const notApplied = await pushOwnItems(clients, cfg);
    const elapsedMs = nowMs() - t0;
    const cpus = meters.map((m) => m().serverCpuPct);
    const { headLsn } = await servers[servers.length - 1]!.adminStatus();
    const total = cfg.clients * cfg.perClient;
    if (headLsn - prevHead !== total || notApplied > 0) {
      throw new Error(`expected ${total} commits, head went from ${prevHead} to ${headLsn}, ${notApplied} not applied`);
    }
    return {
      rate: total / (elapsedMs / 1000),
      committed: total,
      elapsedMs,
      serverCpuPct: cpus.some((c) => c === null) ? null : cpus.reduce<number>((s, c) => s + c!, 0),
    };
  } finally {
    for (const c of clients) c.close();
  }
}

export async function pgIngest(
  options: ScenarioOptions,
  res: Resources,
  cfg: PgIngestConfig = PG_INGEST,
): Promise<ScenarioResult> {
  const scenario = 'PostgreSQL ingest (protocol clients)';
  const started = nowMs();
  const unreachable = await pgUnreachable();
  if (unreachable !== null) return skipped(scenario, unreachable, started);
  const rows: IngestRow[] = [];
  const what = `${cfg.clients} clients, ${cfg.batch}/push`;

  options.log(`  ${what}, ${cfg.perClient} each: SQLite (1 node)`);
  const sqlite = await res.server();
  try {
    rows.push({ label: `${what}: SQLite, 1 node`, ...(await ingestOn([sqlite], cfg, res)) });
  } finally {
    await res.stopServer(sqlite);
  }
  for (const n of [1, 3]) {
    options.log(`  ${what}, ${cfg.perClient} each: PostgreSQL, ${n} node${n > 1 ? 's' : ''}`);
    await withDatabase(res, async (db) => {
      const nodes = await startNodes(res, db, n);
      rows.push({ label: `${what}: PostgreSQL, ${n} node${n > 1 ? 's' : ''}`, ...(await ingestOn(nodes, cfg, res)) });
    });
  }

  const metrics: Metric[] = [];
  const details: { [key: string]: Json } = {};
  for (const r of rows) {
    metrics.push({ scenario, metric: `${r.label}: committed mutations/s`, value: round(r.rate), unit: '/s' });
    metrics.push({
      scenario,
      metric: `${r.label}: server CPU (all nodes)`,
      value: r.serverCpuPct === null ? null : round(r.serverCpuPct),
      unit: '% of a core',
    });
    details[r.label] = {
      committed: r.committed,
      elapsedMs: round(r.elapsedMs),
      rate: round(r.rate),
      serverCpuPct: r.serverCpuPct === null ? null : round(r.serverCpuPct),
    };
  }
  return {
    name: scenario,
    description:
      'protocol clients pushing owner-only items puts (one push in flight each), on SQLite, 1 PostgreSQL node and 3 nodes sharing one database (clients round-robin over the nodes)',
    metrics,
    details,
    serverPeakRssKb: [...res.peakRssKb],
    durationMs: nowMs() - started,
  };
}

interface FanoutRun {
  pushToReceipt: number[];
  commitToReceipt: number[];
  missing: number;
  lateWrites: number;
}

/** A protocol writer on `writerNode` puts notes at a fixed rate; `receivers` protocol clients on `readerNode` time each. */
async function fanoutOnce(
  writerNode: BenchServer,
  readerNode: BenchServer,
  cfg: PgFanoutConfig,
  res: Resources,
  tag: string,
): Promise<FanoutRun> {
  const pushedAt = new Map<string, number>();
  const run: FanoutRun = { pushToReceipt: [], commitToReceipt: [], missing: 0, lateWrites: 0 };
  let measured = 0;
  const onChanges = (msg: SeenChanges): void => {
    for (const c of msg.changes) {
      if (c.collection !== 'notes' || c.doc === null || c.doc['warmup'] !== false) continue;
      const at = pushedAt.get(c.id);
      if (at === undefined) continue;
      run.pushToReceipt.push(msg.receivedAt - at);
      run.commitToReceipt.push(msg.receivedAt - c.ts);
      measured++;
    }
  };
  const receivers: RawClient[] = [];
  try {
    for (let i = 0; i < cfg.receivers; i++) {
      const c = await RawClient.connect(readerNode.url, { userId: `reader-${tag}-${i}`, onChanges });
      receivers.push(c);
      res.defer(() => c.close());
    }
    const writer = await RawClient.connect(writerNode.url, { userId: `writer-${tag}` });
    receivers.push(writer);
    res.defer(() => writer.close());
    await Promise.all(receivers.map((c) => c.waitLive()));

    const interval = 1000 / cfg.writesPerSecond;
    const warmup = Math.round(cfg.warmupMs / interval);
    const count = warmup + Math.round(cfg.durationMs / interval);
    // One push in flight (the protocol's rule): notes that fall due meanwhile go together in the next push.
    const due: number[] = [];
    let inFlight: Promise<void> | null = null;
    const pushes: Array<Promise<void>> = [];
    const send = (): void => {
      if (inFlight !== null || due.length === 0) return;
      const ks = due.splice(0);
      const sentAt = nowMs();
      let next = 0;
      inFlight = writer
        .push(ks.length, () => {
          const k = ks[next++]!;
          const id = `note-${tag}-${k}`;
          pushedAt.set(id, sentAt);
          return {
            name: 'put',
            args: { collection: 'notes', doc: { id, text: `note ${k}`, createdAt: k, warmup: k < warmup } },
          };
        })
        .then((ack) => {
          if (!ack.ok) throw new Error(`push refused: ${ack.error.code} ${ack.error.message}`);
          inFlight = null;
          send();
        });
      pushes.push(inFlight);
    };
    const t0 = nowMs();
    for (let k = 0; k < count; k++) {
      const wait = t0 + k * interval - nowMs();
      if (wait > 0) await sleep(wait);
      else if (wait < -interval) run.lateWrites++;
      due.push(k);
      send();
    }
    // The last notes' push: `send` chains each push after the previous ack, so every push is in `pushes` by the time
    // the one before it settles.
    for (let settled = 0; settled < pushes.length; settled++) await pushes[settled];
    await Promise.all(pushes);
    const expected = (count - warmup) * cfg.receivers;
    const deadline = nowMs() + 10_000;
    while (measured < expected && nowMs() < deadline) await sleep(20);
    run.missing = expected - measured;
    return run;
  } finally {
    for (const c of receivers) c.close();
  }
}

export async function pgFanout(
  options: ScenarioOptions,
  res: Resources,
  cfg: PgFanoutConfig = PG_FANOUT,
): Promise<ScenarioResult> {
  const scenario = 'PostgreSQL fan-out across nodes';
  const started = nowMs();
  const unreachable = await pgUnreachable();
  if (unreachable !== null) return skipped(scenario, unreachable, started);
  const metrics: Metric[] = [];
  const details: { [key: string]: Json } = {};
  await withDatabase(res, async (db) => {
    const [a, b] = await startNodes(res, db, 2, ['--max-address-connections', '0']);
    for (const [tag, readerNode, label] of [
      ['ab', b!, `${cfg.receivers} protocol clients on node B, writer on node A`],
      ['aa', a!, `${cfg.receivers} protocol clients on node A, writer on node A`],
    ] as const) {
      options.log(`  ${label}, ${cfg.writesPerSecond} notes/s for ${(cfg.warmupMs + cfg.durationMs) / 1000} s`);
      const run = await fanoutOnce(a!, readerNode, cfg, res, tag);
      const push = summarize(run.pushToReceipt);
      const commit = summarize(run.commitToReceipt);
      metrics.push({ scenario, metric: `${label}: push → receipt p50`, value: round(push.p50), unit: 'ms' });
      metrics.push({ scenario, metric: `${label}: push → receipt p99`, value: round(push.p99), unit: 'ms' });
      metrics.push({
        scenario,
        metric: `${label}: deliveries missing`,
        value: run.missing,
        unit: '',
        ...(run.lateWrites > 0 ? { note: `${run.lateWrites} writes sent late` } : {}),
      });
      details[label] = {
        pushToReceipt: summaryJson(push),
        commitToReceipt: summaryJson(commit),
        missing: run.missing,
        lateWrites: run.lateWrites,
      };
    }
  });
  return {
    name: scenario,
    description:
      'two PostgreSQL nodes on one database: a protocol writer on node A puts public notes at a fixed rate, protocol receivers on node B (then, as the control, on node A) time each note from its push',
    metrics,
    details,
    serverPeakRssKb: [...res.peakRssKb],
    durationMs: nowMs() - started,
  };
}

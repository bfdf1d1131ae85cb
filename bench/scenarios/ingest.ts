import { waitFor } from '../../test/support/wait';
import { mergeStats, openObservedClient } from '../clients';
import type { ObservedClient } from '../clients';
import { RawClient } from '../raw-client';
import type { SeenChanges } from '../raw-client';
import { cpuMeter, sleep } from '../scenario';
import type { BenchServer } from '../server';
import type { Json, Metric, Resources, ScenarioOptions, ScenarioResult } from '../scenario';
import { nowMs, round } from '../stats';
import { ownedId } from '../../shared/schema/owned-id';

/**
 * Mutation ingest: N concurrent clients, each writing its own owner-only
 * `items` documents (so fan-out to other clients does not dominate), one
 * single-document `put` per mutation. The rate is committed mutations per
 * second as the server sees them: for open() clients, from the start until
 * the server's head LSN (GET /admin/status, polled every 20 ms) reaches the
 * total; for protocol clients, until the last push is acked (acks go out
 * only after the commit is durable), checked against the head LSN.
 */

const TARGET_RATE = 20_000;

export interface RealIngestConfig {
  clients: number;
  perClient: number;
}

export interface RawIngestConfig {
  clients: number;
  perClient: number;
  /** Mutations per push; one push in flight per client, as the engine does. */
  batch: number;
}

export const REAL_INGEST: RealIngestConfig[] = [
  { clients: 1, perClient: 300 },
  { clients: 10, perClient: 50 },
  { clients: 100, perClient: 10 },
];

export const RAW_INGEST: RawIngestConfig[] = [
  { clients: 1, perClient: 5_000, batch: 50 },
  { clients: 10, perClient: 1_000, batch: 50 },
  // Long enough (100,000 and 30,000 mutations) that one stall of a shared core does not make the figure.
  { clients: 100, perClient: 1_000, batch: 50 },
  { clients: 100, perClient: 300, batch: 1 },
];

function targetFor(clients: number, rate: number): Pick<Metric, 'target' | 'pass'> {
  return clients === 100 ? { target: `≥ ${TARGET_RATE}`, pass: rate >= TARGET_RATE } : {};
}

/** Real `open()` clients calling `mutate.put` in a loop, as fast as each local transaction and the outbox allow. */
export async function ingestReal(
  options: ScenarioOptions,
  res: Resources,
  configs: readonly RealIngestConfig[] = REAL_INGEST,
  drainTimeoutMs = 60_000,
): Promise<ScenarioResult> {
  const scenario = 'ingest (open() clients)';
  const started = nowMs();
  const metrics: Metric[] = [];
  const details: { [key: string]: Json } = {};
  for (const cfg of configs) {
    const server = await res.server();
    const clients: ObservedClient[] = [];
    try {
      for (let i = 0; i < cfg.clients; i++) {
        const c = await openObservedClient(server.url, `ingest-${i}`);
        clients.push(c);
        res.defer(() => c.close());
      }
      await waitFor('all clients live', () => clients.every((c) => c.client.status().state === 'live'), 60_000);
      const total = cfg.clients * cfg.perClient;
      options.log(`  ${cfg.clients} clients × ${cfg.perClient} mutations (real clients)`);
      const meter = cpuMeter(server);
      const t0 = nowMs();
      // The server's view: when its head LSN reaches the total (polled).
      let headReachedMs: number | null = null;
      let polling = true;
      const poller = (async () => {
        while (polling) {
          const { headLsn } = await server.adminStatus();
          if (headLsn >= total) {
            headReachedMs = nowMs() - t0;
            return;
          }
          await sleep(20);
        }
      })();
      let loopsDone = 0;
      await Promise.all(
        clients.map(async (c, ci) => {
          for (let i = 0; i < cfg.perClient; i++) {
            await c.client.mutate.put({
              collection: 'items',
              doc: { id: ownedId(c.client.userId, `c${ci}-${i}`), owner: c.client.userId, n: i },
            });
          }
          loopsDone = Math.max(loopsDone, nowMs() - t0);
        }),
      );
      let timedOut = false;
      try {
        await waitFor(
          'every outbox empty',
          () => clients.every((c) => c.client.status().pending === 0),
          drainTimeoutMs,
          5,
        );
      } catch {
        timedOut = true;
      }
      const drainedMs = nowMs() - t0;
      polling = false;
      await poller;
      const cpu = meter();
      const { headLsn } = await server.adminStatus();
      // Until the head reached the total; if the poll missed it (it polls every 20 ms), until every outbox drained.
      const elapsed: number = headReachedMs ?? drainedMs;
      const rate = headLsn / (elapsed / 1000);
      const stats = mergeStats(clients.map((c) => c.stats));
      const label = `${cfg.clients} client${cfg.clients === 1 ? '' : 's'}`;
      metrics.push({
        scenario,
        metric: `${label}: committed mutations/s`,
        value: round(rate),
        unit: '/s',
        ...targetFor(cfg.clients, rate),
        ...(timedOut ? { note: `drain timed out: ${headLsn} of ${total} committed` } : {}),
      });
      metrics.push({ scenario, metric: `${label}: reconnects during run`, value: stats.reconnects, unit: '' });
      details[label] = {
        clients: cfg.clients,
        mutationsPerClient: cfg.perClient,
        expected: total,
        committed: headLsn,
        headReachedTotalMs: headReachedMs === null ? null : round(headReachedMs),
        allOutboxesEmptyMs: round(drainedMs),
        mutateLoopsMs: round(loopsDone),
        timedOut,
        pushes: stats.pushes,
        meanPushSize: stats.pushes > 0 ? round(stats.pushedMutations / stats.pushes) : null,
        resentMutations: stats.pushedMutations - headLsn,
        reconnects: stats.reconnects,
        reconnectReasons: stats.reconnectReasons,
        serverCpuPct: cpu.serverCpuPct === null ? null : round(cpu.serverCpuPct),
        benchProcessCpuPct: round(cpu.benchCpuPct),
      };
    } finally {
      for (const c of clients) await c.close();
      await res.stopServer(server);
    }
  }
  return {
    name: scenario,
    description:
      'real client library instances (open() on fake-indexeddb) in the bench process, each mutate.put-ing its own owner-only items documents in a loop',
    metrics,
    details,
    serverPeakRssKb: [...res.peakRssKb],
    durationMs: nowMs() - started,
  };
}

/**
 * Protocol-level clients (socket.io-client speaking hello/push, no local
 * replica): what the server can ingest when the clients are cheap.
 */
export async function ingestRaw(
  options: ScenarioOptions,
  res: Resources,
  configs: readonly RawIngestConfig[] = RAW_INGEST,
): Promise<ScenarioResult> {
  const scenario = 'ingest (protocol clients)';
  const started = nowMs();
  const metrics: Metric[] = [];
  const details: { [key: string]: Json } = {};
  for (const cfg of configs) {
    const server = await res.server();
    const clients: RawClient[] = [];
    try {
      clients.push(...(await connectIngestClients(server, cfg.clients, res)));
      options.log(`  ${cfg.clients} clients × ${cfg.perClient} mutations, ${cfg.batch} per push (protocol clients)`);
      const { elapsed, committed, cpu } = await driveRawIngest(server, clients, cfg);
      const rate = committed / (elapsed / 1000);
      const label = `${cfg.clients} client${cfg.clients === 1 ? '' : 's'}, ${cfg.batch}/push`;
      metrics.push({
        scenario,
        metric: `${label}: committed mutations/s`,
        value: round(rate),
        unit: '/s',
        ...targetFor(cfg.clients, rate),
      });
      metrics.push({
        scenario,
        metric: `${label}: server CPU`,
        value: cpu.serverCpuPct === null ? null : round(cpu.serverCpuPct),
        unit: '% of a core',
      });
      details[label] = {
        clients: cfg.clients,
        mutationsPerClient: cfg.perClient,
        mutationsPerPush: cfg.batch,
        committed,
        elapsedMs: round(elapsed),
        serverCpuPct: cpu.serverCpuPct === null ? null : round(cpu.serverCpuPct),
        benchProcessCpuPct: round(cpu.benchCpuPct),
      };
    } finally {
      for (const c of clients) c.close();
      await res.stopServer(server);
    }
  }
  return {
    name: scenario,
    description:
      'protocol-level clients (socket.io-client: hello + push, no local store) pushing owner-only items puts, one push in flight per client',
    metrics,
    details,
    serverPeakRssKb: [...res.peakRssKb],
    durationMs: nowMs() - started,
  };
}

/** Connects `n` protocol clients (users ingest-0 … ingest-<n-1>) and waits until all are live. */
export async function connectIngestClients(
  server: BenchServer,
  n: number,
  res: Resources,
  onChanges?: (msg: SeenChanges) => void,
): Promise<RawClient[]> {
  const clients: RawClient[] = [];
  for (let i = 0; i < n; i++) {
    const c = await RawClient.connect(server.url, { userId: `ingest-${i}`, ...(onChanges ? { onChanges } : {}) });
    clients.push(c);
    res.defer(() => c.close());
  }
  await Promise.all(clients.map((c) => c.waitLive()));
  return clients;
}

export interface RawIngestRun {
  /** From the first push to the last push ack, in ms. */
  elapsed: number;
  /** Changes committed by this run (the head LSN's rise, checked to equal clients × perClient). */
  committed: number;
  /** The server's head LSN after the last ack. */
  headLsn: number;
  /** nowMs() of the first push. */
  startedAt: number;
  cpu: ReturnType<ReturnType<typeof cpuMeter>>;
}

/**
 * Every client pushes `perClient` owner-only `items` puts, `batch` per push,
 * one push in flight per client; resolves after the last ack. Throws unless
 * every mutation was applied and the head LSN is the total.
 */
/**
 * Every client pushes `perClient` puts of its own owner-only items, `batch`
 * per push, one push in flight each; resolves with how many were not applied.
 */
export async function pushOwnItems(
  clients: readonly RawClient[],
  cfg: { perClient: number; batch: number },
): Promise<number> {
  let notApplied = 0;
  await Promise.all(
    clients.map(async (c, ci) => {
      const owner = `ingest-${ci}`;
      for (let done = 0; done < cfg.perClient;) {
        const n = Math.min(cfg.batch, cfg.perClient - done);
        const ack = await c.push(n, (seq) => ({
          name: 'put',
          args: { collection: 'items', doc: { id: ownedId(owner, `c${ci}-${seq}`), owner, n: seq } },
        }));
        if (!ack.ok) throw new Error(`push refused: ${ack.error.code} ${ack.error.message}`);
        notApplied += ack.results.filter((r) => r.status !== 'applied').length;
        done += n;
      }
    }),
  );
  return notApplied;
}

export async function driveRawIngest(
  server: BenchServer,
  clients: readonly RawClient[],
  cfg: RawIngestConfig,
): Promise<RawIngestRun> {
  const total = clients.length * cfg.perClient;
  const prevHead = (await server.adminStatus()).headLsn;
  const meter = cpuMeter(server);
  const t0 = nowMs();
  const notApplied = await pushOwnItems(clients, cfg);
  const elapsed = nowMs() - t0;
  const cpu = meter();
  const { headLsn } = await server.adminStatus();
  if (headLsn - prevHead !== total || notApplied > 0) {
    throw new Error(`expected ${total} commits, head went from ${prevHead} to ${headLsn}, ${notApplied} not applied`);
  }
  return { elapsed, committed: headLsn - prevHead, headLsn, startedAt: t0, cpu };
}

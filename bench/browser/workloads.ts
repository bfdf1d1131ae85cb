import { signToken } from '../../server/auth/tokens';
import { TEST_SECRET } from '../../test/support/server-process';
import { waitFor } from '../../test/support/wait';
import { RawClient } from '../raw-client';
import { summarize } from '../stats';
import type { Summary } from '../stats';
import type { BenchPage } from './browser';
import type { PageServer } from './server';
import type { BrowserBenchConfig } from './cli';
import { benchDoc } from './schema';

const token = (user: string): string => signToken(TEST_SECRET, { sub: user }, Date.now());

const docsPerSecond = (docs: number, ms: number): number => (docs * 1000) / ms;

/** Opens a replica in `page` as `user` and waits until it is live. */
export async function openReplica(page: BenchPage, server: PageServer, user: string): Promise<void> {
  const dbName = `bench-${user}`;
  await page.call('open', { server: server.url, token: token(user), dbName, waitSynced: true });
}

export async function floor(a: BenchPage, cfg: BrowserBenchConfig): Promise<{ docsPerSec: number }> {
  return { docsPerSec: await a.call('floor', cfg.batches, cfg.batchSize) };
}

export interface W1Result {
  single: Summary;
  batched: { docs: number; docsPerSec: number; batchMs: Summary };
}

/** W1: one `mutate.put` at a time, then batches of puts, on A. Waits until B has all of them before returning. */
export async function w1(a: BenchPage, b: BenchPage, cfg: BrowserBenchConfig): Promise<W1Result> {
  const single = summarize(await a.call('singlePuts', 'w1s', cfg.singles));
  const docs = cfg.batches * cfg.batchSize;
  const run = await a.call('putBatches', 'w1', 0, cfg.batches, cfg.batchSize);
  // Quiesce: the next workload starts with an empty outbox on A and nothing in flight to B.
  await b.call('persisted', 'w1', 0, docs, cfg.timeoutMs);
  await b.call('persisted', 'w1s', 0, cfg.singles, cfg.timeoutMs);
  return {
    single,
    batched: { docs, docsPerSec: docsPerSecond(docs, run.endedAt - run.startedAt), batchMs: summarize(run.batchMs) },
  };
}

export interface W2Result {
  docs: number;
  /** From A's first put to the commit on B that stored the last document. */
  ms: number;
  docsPerSec: number;
  /** A's own part: until its last put resolved. */
  writeMs: number;
}

/** W2: batches of puts on A until B has stored them all. */
export async function w2(a: BenchPage, b: BenchPage, cfg: BrowserBenchConfig): Promise<W2Result> {
  const docs = cfg.batches * cfg.batchSize;
  const arrived = b.call('persisted', 'w2', 0, docs, cfg.timeoutMs);
  const run = await a.call('putBatches', 'w2', 0, cfg.batches, cfg.batchSize);
  const ms = (await arrived) - run.startedAt;
  return { docs, ms, docsPerSec: docsPerSecond(docs, ms), writeMs: run.endedAt - run.startedAt };
}

/** W3: one put on A, then wait until B has stored it; sequentially. */
export async function w3(a: BenchPage, b: BenchPage, cfg: BrowserBenchConfig): Promise<Summary> {
  const latencies: number[] = [];
  for (let i = 0; i < cfg.fanout; i++) {
    const issued = await a.call('putOne', 'w3', i);
    const stored = await b.call('persisted', 'w3', i, 1, cfg.timeoutMs);
    latencies.push(stored - issued);
  }
  return summarize(latencies);
}

export interface W5Result {
  docs: number;
  /** The puts on A while offline, from the first issued to the last resolved. */
  offlineMs: number;
  /** From `goOnline()` on A to the commit on B that stored the last of them. */
  reconcileMs: number;
}

/** W5: A goes offline (checked on the server too), writes, comes back; B receives. */
export async function w5(a: BenchPage, b: BenchPage, server: PageServer, cfg: BrowserBenchConfig): Promise<W5Result> {
  const before = await server.connectedClients();
  await a.call('goOffline');
  await waitFor('A offline', async () => (await a.call('status')).state === 'offline', 10_000);
  await waitFor('the server to drop A', async () => (await server.connectedClients()) === before - 1, 10_000);
  const batches = Math.ceil(cfg.offline / cfg.batchSize);
  const run = await a.call('putBatches', 'w5', 0, batches, cfg.batchSize);
  const docs = batches * cfg.batchSize;
  const status = await a.call('status');
  if (status.state !== 'offline' || status.pending < docs) {
    throw new Error(`W5: A was not offline throughout (${status.state}, ${status.pending} pending)`);
  }
  const arrived = b.call('persisted', 'w5', 0, docs, cfg.timeoutMs);
  const online = await a.call('goOnline');
  const stored = await arrived;
  return { docs, offlineMs: run.endedAt - run.startedAt, reconcileMs: stored - online };
}

/** Loads `count` documents into the server with protocol-level writers (not timed). */
export async function seed(server: PageServer, count: number): Promise<void> {
  const writer = await RawClient.connect(server.url, { userId: 'seeder' });
  try {
    await writer.waitLive();
    const per = 500;
    let next = 0;
    while (next < count) {
      const n = Math.min(per, count - next);
      const first = next;
      let k = 0;
      const ack = await writer.push(n, () => ({
        name: 'put',
        args: { collection: 'docs', doc: benchDoc('w4', first + k++) },
      }));
      if (!ack.ok) throw new Error(`seed push refused: ${ack.error.code} ${ack.error.message}`);
      next += n;
    }
  } finally {
    writer.close();
  }
}

export interface W4Result {
  docs: number;
  ms: number;
  docsPerSec: number;
}

/** W4: a fresh page opens a replica and receives every server document. */
export async function w4(c: BenchPage, server: PageServer, cfg: BrowserBenchConfig): Promise<W4Result> {
  const ms = await c.call('initialSync', {
    server: server.url,
    token: token('fresh-c'),
    dbName: 'bench-fresh-c',
    waitSynced: false,
    count: cfg.initial,
    timeoutMs: cfg.timeoutMs,
  });
  return { docs: cfg.initial, ms, docsPerSec: docsPerSecond(cfg.initial, ms) };
}

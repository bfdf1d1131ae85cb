import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { waitFor } from '../../test/support/wait';
import { openObservedClient } from '../clients';
import type { ObservedClient } from '../clients';
import { RawClient } from '../raw-client';
import type { SeenChanges } from '../raw-client';
import { cpuMeter, sleep } from '../scenario';
import type { Json, Metric, Resources, ScenarioOptions, ScenarioResult } from '../scenario';
import { nowMs, round, summarize, summaryJson } from '../stats';

/**
 * Fan-out latency: one writer (a real `open()` client) puts `notes` (a
 * public collection) at a fixed rate; every other connected client records
 * when each note arrives. Three clocks per note:
 * - mutate: `sentAt` in the document, taken just before `mutate.put`;
 * - push: when the writer's engine hands the push holding the note to its
 *   socket (seen by wrapping the writer's transport);
 * - commit: the change's `ts`, the server's clock when the group commit began
 *   (same machine, whole milliseconds).
 * The headline is push → receipt (for open() receivers, push → applied: the
 * engine has written the change to the local replica, the 'applied' event).
 * mutate → receipt adds the writer's local transaction and outbox, which in
 * one busy bench process is mostly the bench's own event loop.
 */

const TARGET_P99_MS = 50;

export interface FanoutConfig {
  receivers: number;
  kind: 'real' | 'protocol';
  writesPerSecond: number;
  durationMs: number;
  warmupMs: number;
  /**
   * Protocol receivers in child processes (fanout-receivers.ts, at most RECEIVERS_PER_CHILD each) rather than
   * in the bench process, whose event loop would otherwise be what thousands of receivers measure.
   */
  inChildren?: boolean;
}

const RECEIVERS_PER_CHILD = 1000;

export const FANOUT: FanoutConfig[] = [
  { receivers: 10, kind: 'real', writesPerSecond: 50, durationMs: 10_000, warmupMs: 1_000 },
  { receivers: 10, kind: 'protocol', writesPerSecond: 50, durationMs: 10_000, warmupMs: 1_000 },
  { receivers: 200, kind: 'protocol', writesPerSecond: 50, durationMs: 10_000, warmupMs: 1_000 },
  { receivers: 1000, kind: 'protocol', writesPerSecond: 20, durationMs: 10_000, warmupMs: 1_000, inChildren: true },
  { receivers: 3000, kind: 'protocol', writesPerSecond: 20, durationMs: 10_000, warmupMs: 1_000, inChildren: true },
];

interface Recorder {
  /** Note id → when the push holding it was sent. */
  pushedAt: Map<string, number>;
  pushToReceipt: number[];
  mutateToReceipt: number[];
  commitToReceipt: number[];
  pushToCommit: number[];
  pushToApplied: number[];
  /** Notes seen per receiver (measured ones only), to find deliveries that never came. */
  seen: number[];
  /** Receipts whose push time was unknown (should stay 0). */
  unmatched: number;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The note id a pushed mutation writes, if it is a notes put. */
function noteIdOf(mutation: unknown): string | null {
  if (!isRecord(mutation) || !isRecord(mutation['args'])) return null;
  const { collection, doc } = mutation['args'];
  if (collection !== 'notes' || !isRecord(doc) || typeof doc['id'] !== 'string') return null;
  return doc['id'];
}

export async function fanout(
  options: ScenarioOptions,
  res: Resources,
  configs: readonly FanoutConfig[] = FANOUT,
): Promise<ScenarioResult> {
  const scenario = 'fan-out';
  const started = nowMs();
  const metrics: Metric[] = [];
  const details: { [key: string]: Json } = {};
  for (const cfg of configs) {
    // One address holds every receiver: the per-address connection bound (256 by default) is lifted.
    const server = await res.server(cfg.receivers > 200 ? ['--max-address-connections', '0'] : []);
    const rec: Recorder = {
      pushedAt: new Map(),
      pushToReceipt: [],
      mutateToReceipt: [],
      commitToReceipt: [],
      pushToCommit: [],
      pushToApplied: [],
      seen: new Array<number>(cfg.receivers).fill(0),
      unmatched: 0,
    };
    const real: ObservedClient[] = [];
    const raw: RawClient[] = [];
    let writer: ObservedClient | null = null;
    const children: ReceiverChild[] = [];
    try {
      const onChangesFor =
        (index: number, pendingApply: Array<{ lsn: number; pushedAt: number }> | null) =>
        (msg: SeenChanges): void => {
          for (const c of msg.changes) {
            const doc = c.doc;
            if (c.collection !== 'notes' || doc === null || doc['warmup'] !== false) continue;
            const pushedAt = rec.pushedAt.get(c.id);
            const sentAt = doc['sentAt'];
            if (pushedAt === undefined || typeof sentAt !== 'number') {
              rec.unmatched++;
              continue;
            }
            rec.pushToReceipt.push(msg.receivedAt - pushedAt);
            rec.mutateToReceipt.push(msg.receivedAt - sentAt);
            rec.commitToReceipt.push(msg.receivedAt - c.ts);
            if (index === 0) rec.pushToCommit.push(c.ts - pushedAt);
            rec.seen[index]!++;
            pendingApply?.push({ lsn: c.lsn, pushedAt });
          }
        };
      if (cfg.inChildren) {
        for (let first = 0; first < cfg.receivers; first += RECEIVERS_PER_CHILD) {
          const child = startReceivers(server.url, first, Math.min(RECEIVERS_PER_CHILD, cfg.receivers - first));
          children.push(child);
          res.defer(() => child.kill());
        }
        await Promise.all(children.map((c) => c.ready));
      }
      for (let i = 0; i < (cfg.inChildren ? 0 : cfg.receivers); i++) {
        if (cfg.kind === 'real') {
          const pendingApply: Array<{ lsn: number; pushedAt: number }> = [];
          const c = await openObservedClient(server.url, `reader-${i}`, { onChanges: onChangesFor(i, pendingApply) });
          c.client.on((e) => {
            if (e.type !== 'applied') return;
            const now = nowMs();
            let k = 0;
            while (k < pendingApply.length && pendingApply[k]!.lsn <= e.checkpoint) {
              rec.pushToApplied.push(now - pendingApply[k]!.pushedAt);
              k++;
            }
            pendingApply.splice(0, k);
          });
          real.push(c);
          res.defer(() => c.close());
        } else {
          const c = await RawClient.connect(server.url, { userId: `reader-${i}`, onChanges: onChangesFor(i, null) });
          raw.push(c);
          res.defer(() => c.close());
        }
      }
      const w = await openObservedClient(server.url, 'writer', {
        onPush: (mutations, at) => {
          for (const m of mutations) {
            const id = noteIdOf(m);
            // A resent mutation keeps its first push time.
            if (id !== null && !rec.pushedAt.has(id)) rec.pushedAt.set(id, at);
          }
        },
      });
      writer = w;
      res.defer(() => w.close());
      await Promise.all(raw.map((c) => c.waitLive()));
      await waitFor(
        'receivers and writer live',
        () => w.client.status().state === 'live' && real.every((c) => c.client.status().state === 'live'),
        60_000,
      );
      const where = cfg.inChildren ? ` in ${children.length} child process${children.length > 1 ? 'es' : ''}` : '';
      const label = `${cfg.receivers} ${cfg.kind === 'real' ? 'open() clients' : 'protocol clients'}${where}`;
      options.log(`  ${label}, writer at ${cfg.writesPerSecond}/s for ${(cfg.warmupMs + cfg.durationMs) / 1000} s`);

      const interval = 1000 / cfg.writesPerSecond;
      const warmupWrites = Math.round(cfg.warmupMs / interval);
      const measuredWrites = Math.round(cfg.durationMs / interval);
      const writes: Array<Promise<unknown>> = [];
      let meter: ReturnType<typeof cpuMeter> | null = null;
      let lateWrites = 0;
      const t0 = nowMs();
      for (let k = 0; k < warmupWrites + measuredWrites; k++) {
        const due = t0 + k * interval;
        const wait = due - nowMs();
        if (wait > 0) await sleep(wait);
        else if (wait < -interval) lateWrites++;
        if (k === warmupWrites) meter = cpuMeter(server);
        const sentAt = nowMs();
        writes.push(
          w.client.mutate.put({
            collection: 'notes',
            doc: {
              id: `note-${k}`,
              text: `note ${k} from the fan-out bench`,
              createdAt: Math.floor(sentAt),
              sentAt,
              warmup: k < warmupWrites,
            },
          }),
        );
      }
      const writeSpanMs = nowMs() - t0;
      await Promise.all(writes);
      const expected = measuredWrites * cfg.receivers;
      try {
        await waitFor(
          'every receiver got every note',
          () =>
            (cfg.inChildren ? children.reduce((n, c) => n + c.measured, 0) : rec.pushToReceipt.length) >= expected &&
            (cfg.kind !== 'real' || rec.pushToApplied.length >= expected),
          10_000,
        );
      } catch {
        // reported below as missing deliveries
      }
      if (cfg.inChildren) {
        const pushedAt = Object.fromEntries(rec.pushedAt);
        const done = await Promise.all(children.map((c) => c.finish(pushedAt)));
        done.forEach((d, i) => {
          // (Not push(...list): hundreds of thousands of arguments overflow the stack.)
          for (const v of d.pushToReceipt) rec.pushToReceipt.push(v);
          for (const v of d.mutateToReceipt) rec.mutateToReceipt.push(v);
          for (const v of d.commitToReceipt) rec.commitToReceipt.push(v);
          rec.unmatched += d.unmatched;
          rec.seen[i] = d.minSeen;
          if (i === 0) {
            for (const [id, ts] of Object.entries(d.commitTs)) {
              const pushed = rec.pushedAt.get(id);
              if (pushed !== undefined) rec.pushToCommit.push(ts - pushed);
            }
          }
        });
        rec.seen.length = done.length;
      }
      const cpu = meter?.() ?? null;
      const pushToReceipt = summarize(rec.pushToReceipt);
      const pushToApplied = summarize(rec.pushToApplied);
      const mutateToReceipt = summarize(rec.mutateToReceipt);
      const commitToReceipt = summarize(rec.commitToReceipt);
      const main = cfg.kind === 'real' ? pushToApplied : pushToReceipt;
      const tail = `${label}: push → ${cfg.kind === 'real' ? 'applied' : 'receipt'}`;
      const withTarget =
        cfg.receivers === 200 || cfg.receivers === 3000
          ? { target: `< ${TARGET_P99_MS} ms`, pass: main.p99 < TARGET_P99_MS }
          : {};
      metrics.push({ scenario, metric: `${tail} p50`, value: round(main.p50), unit: 'ms' });
      metrics.push({ scenario, metric: `${tail} p95`, value: round(main.p95), unit: 'ms' });
      metrics.push({ scenario, metric: `${tail} p99`, value: round(main.p99), unit: 'ms', ...withTarget });
      if (cfg.kind === 'real') {
        metrics.push({ scenario, metric: `${label}: push → receipt p99`, value: round(pushToReceipt.p99), unit: 'ms' });
      }
      metrics.push({
        scenario,
        metric: `${label}: server commit → receipt p99`,
        value: round(commitToReceipt.p99),
        unit: 'ms',
        note: 'server clock, whole ms',
      });
      metrics.push({
        scenario,
        metric: `${label}: mutate() → receipt p99`,
        value: round(mutateToReceipt.p99),
        unit: 'ms',
        note: "adds the writer's local transaction",
      });
      const delivered = rec.pushToReceipt.length;
      const missing = expected - delivered;
      metrics.push({
        scenario,
        metric: `${label}: deliveries`,
        value: delivered,
        unit: `of ${expected}`,
        ...(missing > 0 ? { note: `${missing} missing` } : {}),
      });
      details[label] = {
        receivers: cfg.receivers,
        receiverKind: cfg.kind,
        receiverProcesses: cfg.inChildren ? children.length : 0,
        writesPerSecond: cfg.writesPerSecond,
        warmupWrites,
        measuredWrites,
        writeSpanMs: round(writeSpanMs),
        lateWrites,
        expectedDeliveries: expected,
        deliveries: delivered,
        unmatchedReceipts: rec.unmatched,
        pushToReceiptMs: summaryJson(pushToReceipt),
        ...(cfg.kind === 'real' ? { pushToAppliedMs: summaryJson(pushToApplied) } : {}),
        mutateToReceiptMs: summaryJson(mutateToReceipt),
        pushToCommitMs: summaryJson(summarize(rec.pushToCommit)),
        commitToReceiptMs: summaryJson(commitToReceipt),
        minDeliveriesPerReceiver: Math.min(...rec.seen),
        writerPushes: w.stats.pushes,
        writerReconnects: w.stats.reconnects,
        receiverReconnects: real.reduce((s, c) => s + c.stats.reconnects, 0),
        serverCpuPct: cpu === null || cpu.serverCpuPct === null ? null : round(cpu.serverCpuPct),
        benchProcessCpuPct: cpu === null ? null : round(cpu.benchCpuPct),
      };
    } finally {
      for (const c of children) c.kill();
      for (const c of raw) c.close();
      for (const c of real) await c.close();
      await writer?.close();
      await res.stopServer(server);
    }
  }
  return {
    name: scenario,
    description:
      'one open() writer putting public notes at a fixed rate; receivers (in the same process, or for 1,000 and more in child processes) record push → receipt (and, for open() clients, push → applied) latency',
    metrics,
    details,
    serverPeakRssKb: [...res.peakRssKb],
    durationMs: nowMs() - started,
  };
}

interface ReceiverResults {
  pushToReceipt: number[];
  mutateToReceipt: number[];
  commitToReceipt: number[];
  commitTs: Record<string, number>;
  minSeen: number;
  unmatched: number;
}

interface ReceiverChild {
  ready: Promise<void>;
  /** Measured receipts so far (from its progress lines). */
  readonly measured: number;
  finish(pushedAt: Record<string, number>): Promise<ReceiverResults>;
  kill(): void;
}

/** Starts fanout-receivers.ts in its own process (see there). */
function startReceivers(url: string, first: number, count: number): ReceiverChild {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'fanout-receivers.ts'), url, String(first), String(count)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const waiting = new Map<string, (msg: Record<string, unknown>) => void>();
  let measured = 0;
  const lines = createInterface({ input: child.stdout });
  // Its output ends after the process may have exited (the last line is megabytes): wait for the end of the output.
  const exited = new Promise<void>((resolve) => lines.once('close', () => resolve()));
  lines.on('line', (line) => {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    if (!isRecord(msg)) return;
    if (typeof msg['measured'] === 'number') measured = msg['measured'];
    const type = String(msg['type']);
    waiting.get(type)?.(msg);
    waiting.delete(type);
  });
  const next = (type: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      waiting.set(type, resolve);
      void exited.then(() => reject(new Error(`the receivers process exited before '${type}'`)));
    });
  const ready = next('ready').then(() => undefined);
  ready.catch(() => undefined);
  return {
    ready,
    get measured() {
      return measured;
    },
    async finish(pushedAt) {
      const done = next('done');
      child.stdin.write(`${JSON.stringify({ type: 'finish', pushedAt })}\n`);
      return (await done) as unknown as ReceiverResults;
    },
    kill: () => void child.kill('SIGKILL'),
  };
}

import type { Doc } from '../../shared/json';
import { waitFor } from '../../test/support/wait';
import { openObservedClient } from '../clients';
import { RawClient } from '../raw-client';
import { cpuMeter } from '../scenario';
import type { Json, Metric, Resources, ScenarioOptions, ScenarioResult } from '../scenario';
import { nowMs, round } from '../stats';

/**
 * Catch-up: a client that synced once (checkpoint > 0, so it gets the log,
 * not a snapshot) is closed, 50,000 changes are written, and the client is
 * reopened with the same database. Measured from `open()` until it is live
 * with `lastSyncedLsn >= head`. The same is measured for a protocol-level
 * client that acknowledges each page at once, which isolates the server and
 * the wire from the client's local store.
 */

const TARGET_MS = 5_000;

export interface CatchupConfig {
  changes: number;
  /** Protocol-level writers that load the changes, each pushing `batch` puts at a time. */
  writers: number;
  batch: number;
  timeoutMs: number;
}

export const CATCHUP: CatchupConfig = { changes: 50_000, writers: 10, batch: 500, timeoutMs: 90_000 };

function note(i: number): Doc {
  return { id: `bulk-${i}`, text: `bulk note ${i} for the catch-up bench`, createdAt: i };
}

export async function catchup(
  options: ScenarioOptions,
  res: Resources,
  cfg: CatchupConfig = CATCHUP,
): Promise<ScenarioResult> {
  const scenario = 'catch-up';
  const started = nowMs();
  const metrics: Metric[] = [];
  const details: { [key: string]: Json } = {};
  const server = await res.server();
  try {
    const dbName = `bench-catchup-${process.pid}`;
    const writers: RawClient[] = [];
    for (let i = 0; i < cfg.writers; i++) {
      const w = await RawClient.connect(server.url, { userId: `loader-${i}` });
      writers.push(w);
      res.defer(() => w.close());
    }
    await Promise.all(writers.map((w) => w.waitLive()));
    // One change first, so the catch-up client's first sync leaves it at checkpoint 1.
    const first = await writers[0]!.push(1, () => ({ name: 'put', args: { collection: 'notes', doc: note(0) } }));
    if (!first.ok) throw new Error(`first push refused: ${first.error.message}`);

    const sync1 = await openObservedClient(server.url, 'laggard', { dbName });
    res.defer(() => sync1.close());
    await waitFor(
      'first sync',
      () => sync1.client.status().state === 'live' && sync1.client.status().lastSyncedLsn >= 1,
      30_000,
    );
    const checkpointBefore = sync1.client.status().lastSyncedLsn;
    await sync1.close(true);

    options.log(`  loading ${cfg.changes} changes (${cfg.writers} protocol writers, ${cfg.batch} per push)`);
    const loadStart = nowMs();
    let next = 1;
    await Promise.all(
      writers.map(async (w) => {
        while (next <= cfg.changes) {
          const n = Math.min(cfg.batch, cfg.changes - next + 1);
          let i = next;
          next += n;
          const ack = await w.push(n, () => ({ name: 'put', args: { collection: 'notes', doc: note(i++) } }));
          if (!ack.ok) throw new Error(`push refused: ${ack.error.code} ${ack.error.message}`);
        }
      }),
    );
    const loadMs = nowMs() - loadStart;
    for (const w of writers) w.close();
    const { headLsn } = await server.adminStatus();
    if (headLsn < cfg.changes + 1) throw new Error(`head is ${headLsn}, expected ${cfg.changes + 1}`);
    metrics.push({
      scenario,
      metric: `load: ${cfg.writers} protocol clients, ${cfg.batch}/push: committed mutations/s`,
      value: round(cfg.changes / (loadMs / 1000)),
      unit: '/s',
    });

    // The real client, reopened on its database with checkpoint 1.
    options.log(`  reopening the client ${headLsn - checkpointBefore} changes behind`);
    let meter = cpuMeter(server);
    const t0 = nowMs();
    const again = await openObservedClient(server.url, 'laggard', { dbName });
    res.defer(() => again.close());
    let timedOut = false;
    try {
      await waitFor(
        'caught up',
        () => again.client.status().state === 'live' && again.client.status().lastSyncedLsn >= headLsn,
        cfg.timeoutMs,
        2,
      );
    } catch {
      timedOut = true;
    }
    const realMs = nowMs() - t0;
    const realCpu = meter();
    const reached = again.client.status().lastSyncedLsn;
    const localNotes = await again.client.collection('notes').table.count();
    await again.close();
    metrics.push({
      scenario,
      metric: `open() client ${headLsn - checkpointBefore} changes behind: open → live`,
      value: timedOut ? null : round(realMs),
      unit: 'ms',
      target: `< ${TARGET_MS} ms`,
      pass: !timedOut && realMs < TARGET_MS,
      ...(timedOut ? { note: `timed out after ${cfg.timeoutMs} ms at LSN ${reached} of ${headLsn}` } : {}),
    });

    // A protocol client from the same checkpoint, acking every page at once.
    meter = cpuMeter(server);
    const t1 = nowMs();
    const raw = await RawClient.connect(server.url, {
      userId: 'laggard-raw',
      checkpoint: checkpointBefore,
      checkpointTerm: writers[0]!.term,
    });
    res.defer(() => raw.close());
    await raw.waitLive(cfg.timeoutMs);
    const rawMs = nowMs() - t1;
    const rawCpu = meter();
    raw.close();
    metrics.push({
      scenario,
      metric: `protocol client ${headLsn - checkpointBefore} changes behind: connect → live`,
      value: round(rawMs),
      unit: 'ms',
      target: `< ${TARGET_MS} ms`,
      pass: rawMs < TARGET_MS,
    });

    details['load'] = {
      changes: cfg.changes,
      writers: cfg.writers,
      mutationsPerPush: cfg.batch,
      elapsedMs: round(loadMs),
    };
    details['open() client'] = {
      checkpointBefore,
      headLsn,
      reachedLsn: reached,
      localNotes,
      elapsedMs: round(realMs),
      timedOut,
      reconnects: again.stats.reconnects,
      reconnectReasons: again.stats.reconnectReasons,
      serverCpuPct: realCpu.serverCpuPct === null ? null : round(realCpu.serverCpuPct),
      benchProcessCpuPct: round(realCpu.benchCpuPct),
    };
    details['protocol client'] = {
      checkpointBefore,
      reachedLsn: raw.checkpoint,
      pages: raw.pages,
      elapsedMs: round(rawMs),
      serverCpuPct: rawCpu.serverCpuPct === null ? null : round(rawCpu.serverCpuPct),
      benchProcessCpuPct: round(rawCpu.benchCpuPct),
    };
  } finally {
    await res.dispose();
  }
  return {
    name: scenario,
    description: `a client ${cfg.changes} changes behind (checkpoint > 0, so the log, not a snapshot) reopens and catches up`,
    metrics,
    details,
    serverPeakRssKb: [...res.peakRssKb],
    durationMs: nowMs() - started,
  };
}

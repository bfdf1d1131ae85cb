import { randomBytes } from 'node:crypto';
import { io } from 'socket.io-client';
import type { Socket } from 'socket.io-client';
import { helloAckSchema } from '../../shared/protocol/hello';
import { pushAckSchema } from '../../shared/protocol/push';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { tokenFor } from '../../test/support/node-client';
import { readProcMemory } from '../rss';
import { sleep } from '../scenario';
import type { Json, Metric, Resources, ScenarioOptions, ScenarioResult } from '../scenario';
import { nowMs, round, summarize, summaryJson } from '../stats';

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

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A minimal /sync client that can retry a refused push with the same seqs (the bench's RawClient cannot). */
class FloodClient {
  readonly clientId = `abuse-${randomBytes(9).toString('hex')}`;
  nextSeq = 1;
  closed = false;
  private constructor(private readonly socket: Socket) {}

  /** Null when the server refused the connection or its hello (connection limits); the reason in `refusals`. */
  static async connect(url: string, userId: string, refusals: Map<string, number>): Promise<FloodClient | null> {
    const socket = io(`${url}/sync`, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: 20_000 });
    const client = new FloodClient(socket);
    let fatal: string | null = null;
    socket.on('fatal', (e: unknown) => (fatal = isRecord(e) ? String(e['code']) : 'fatal'));
    // Pages and live changes are acked at once and otherwise ignored: the flood reads what it is sent.
    const ackAll = (_msg: unknown, ack: unknown): void => {
      if (typeof ack === 'function') (ack as (r: unknown) => void)({ ok: true });
    };
    socket.on('changes', ackAll);
    socket.on('snapshot', ackAll);
    socket.on('disconnect', () => (client.closed = true));
    const refuse = (why: string): null => {
      refusals.set(why, (refusals.get(why) ?? 0) + 1);
      client.close();
      return null;
    };
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('connect_error', (err: Error) => reject(err));
        socket.once('disconnect', () => reject(new Error('disconnected')));
      });
      const ack = helloAckSchema.parse(
        await socket.timeout(20_000).emitWithAck('hello', {
          protocol: PROTOCOL_VERSION,
          clientId: client.clientId,
          token: tokenFor(userId),
          checkpoint: 0,
          checkpointTerm: 0,
          pendingFrom: 1,
        }),
      );
      if (!ack.ok) return refuse(`hello ${ack.error.code}`);
      client.nextSeq = ack.lastSeq + 1;
      return client;
    } catch (err) {
      return refuse(fatal ?? (err instanceof Error ? err.message : 'connect failed'));
    }
  }

  /**
   * Pushes `build(seq)` for the next `count` seqs until accepted: a RATE_LIMITED refusal waits
   * its retryAfterMs (read raw, so this file also runs against servers that do not send one).
   */
  async push(
    count: number,
    build: (seq: number) => { name: string; args: Json },
    timeoutMs: number,
    onRefused: (code: string) => void,
  ): Promise<number> {
    const mutations = [];
    for (let i = 0; i < count; i++) mutations.push({ seq: this.nextSeq + i, ...build(this.nextSeq + i) });
    for (;;) {
      if (this.closed) return 0;
      const raw: unknown = await this.socket.timeout(timeoutMs).emitWithAck('push', { mutations });
      const ack = pushAckSchema.parse(raw);
      if (ack.ok) {
        this.nextSeq += count;
        return ack.results.filter((r) => r.status === 'applied').length;
      }
      onRefused(ack.error.code);
      if (!ack.error.retryable) throw new Error(`push refused: ${ack.error.code} ${ack.error.message}`);
      const error = isRecord(raw) && isRecord(raw['error']) ? raw['error'] : {};
      const wait = typeof error['retryAfterMs'] === 'number' ? error['retryAfterMs'] : 100;
      await sleep(wait);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.removeAllListeners();
    this.socket.disconnect();
  }
}

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
  const flooders: FloodClient[] = [];
  const connects = await Promise.all(
    Array.from({ length: cfg.floodSessions }, () => FloodClient.connect(server.url, 'flooder', refusals)),
  );
  for (const c of connects) {
    if (!c) continue;
    flooders.push(c);
    res.defer(() => c.close());
  }
  const refusedConnections = Object.fromEntries(refusals);
  refusals.clear();
  options.log(
    `  flooder: ${flooders.length} of ${cfg.floodSessions} sessions admitted, ${cfg.mutationsPerPush} puts/push; normal user: 1 put per push`,
  );

  const pad = 'x'.repeat(cfg.padBytes);
  let floodApplied = 0;
  const floodRefused = new Map<string, number>();
  let flooding = true;
  let peakRssKb = 0;
  const sampleRss = (): void => {
    peakRssKb = Math.max(peakRssKb, readProcMemory(server.pid)?.vmRSSKb ?? 0);
  };
  const rssTimer = setInterval(sampleRss, 200);
  const floodStart = nowMs();
  const floods = flooders.map(async (c, ci) => {
    while (flooding && !res.stopped && !c.closed) {
      try {
        floodApplied += await c.push(
          cfg.mutationsPerPush,
          (seq) => ({
            name: 'put',
            args: { collection: 'items', doc: { id: `f${ci}-${seq}`, owner: 'flooder', n: seq, pad } },
          }),
          cfg.pushTimeoutMs,
          (code) => floodRefused.set(code, (floodRefused.get(code) ?? 0) + 1),
        );
      } catch {
        return;
      }
    }
  });
  // Let the flood queue up before measuring.
  await sleep(1_000);
  const latencies: number[] = [];
  let normalTimeouts = 0;
  let normalRefused = 0;
  const measureStart = nowMs();
  const floodAppliedAtMeasure = floodApplied;
  for (let i = 0; nowMs() - measureStart < cfg.durationMs && !res.stopped; i++) {
    const t0 = nowMs();
    try {
      await normal.push(
        1,
        (seq) => ({ name: 'put', args: { collection: 'items', doc: { id: `n-${seq}`, owner: 'normal-user', n: i } } }),
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
  const floodDuringMeasure = floodApplied - floodAppliedAtMeasure;
  flooding = false;
  sampleRss();
  clearInterval(rssTimer);
  for (const c of flooders) c.close();
  await Promise.race([Promise.all(floods), sleep(5_000)]);
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
    { scenario, metric: 'flooder sessions admitted', value: flooders.length, unit: `of ${cfg.floodSessions}` },
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
        sessionsAdmitted: flooders.length,
        refusedConnections,
        appliedTotal: floodApplied,
        appliedDuringMeasure: floodDuringMeasure,
        acceptedPerSecond: round(floodRate),
        refusedPushes: Object.fromEntries(floodRefused),
        floodMs: round(nowMs() - floodStart),
      },
      serverRssPeakMiB: round(peakRssKb / 1024),
      serverVmHwmMiB: peakHwmKb === null ? null : round(peakHwmKb / 1024),
    },
    serverPeakRssKb: [...res.peakRssKb],
    durationMs: nowMs() - started,
  };
}

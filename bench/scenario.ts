import { startBenchServer } from './server';
import type { BenchServer, BenchServerOptions } from './server';
import { selfCpuMs } from './rss';
import { nowMs } from './stats';

/** One row of the results table. */
export interface Metric {
  scenario: string;
  metric: string;
  value: number | null;
  unit: string;
  /** The target, as text ("≥ 20000"), when there is one. */
  target?: string;
  /** Whether `value` meets the target; absent without a target. */
  pass?: boolean;
  note?: string;
}

/** Plain JSON for the details section of the results file. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

export interface ScenarioResult {
  name: string;
  description: string;
  metrics: Metric[];
  details: { [key: string]: Json };
  /** Peak RSS (VmHWM) of each server process this scenario started, in KiB. */
  serverPeakRssKb: number[];
  durationMs: number;
  error?: string;
}

export interface ScenarioOptions {
  /** When set, servers write CPU profiles here. */
  cpuProfDir?: string | undefined;
  log: (line: string) => void;
}

/**
 * Everything a scenario opened, so the runner can close it all when the
 * scenario fails or runs past its hard timeout.
 */
export class Resources {
  private readonly closers: Array<() => Promise<void> | void> = [];
  readonly servers: BenchServer[] = [];
  readonly peakRssKb: number[] = [];
  private disposed = false;

  constructor(private readonly options: ScenarioOptions) {}

  /** True once the runner has disposed of the scenario (it failed or ran past its limit): loops should end. */
  get stopped(): boolean {
    return this.disposed;
  }

  /** A server on SQLite, or with `pg` a node on that PostgreSQL database and schema. */
  async server(args: string[] = [], pg?: BenchServerOptions['pg']): Promise<BenchServer> {
    if (this.disposed) throw new Error('scenario was stopped');
    const server = await startBenchServer({ cpuProfDir: this.options.cpuProfDir, args, ...(pg ? { pg } : {}) });
    if (this.disposed) {
      // The runner gave up on this scenario while the server was starting.
      await server.stop();
      throw new Error('scenario was stopped');
    }
    this.servers.push(server);
    return server;
  }

  /** Stops a server now and keeps its peak RSS. */
  async stopServer(server: BenchServer): Promise<void> {
    const i = this.servers.indexOf(server);
    if (i < 0) return;
    this.servers.splice(i, 1);
    const peak = await server.stop();
    if (peak !== null) this.peakRssKb.push(peak);
  }

  defer(close: () => Promise<void> | void): void {
    this.closers.push(close);
  }

  /** Closes clients (newest first), then stops servers; no new server starts after. Never throws. */
  async dispose(): Promise<void> {
    this.disposed = true;
    for (const close of this.closers.splice(0).reverse()) {
      try {
        await close();
      } catch {
        // closing is best effort
      }
    }
    for (const server of [...this.servers]) {
      try {
        await this.stopServer(server);
      } catch {
        // best effort
      }
    }
  }
}

/** CPU used by the server and by this process over a window, as % of one core. */
export function cpuMeter(
  server: BenchServer,
): () => { serverCpuPct: number | null; benchCpuPct: number; wallMs: number } {
  const t0 = nowMs();
  const s0 = server.cpuMs();
  const b0 = selfCpuMs();
  return () => {
    const wallMs = nowMs() - t0;
    const s1 = server.cpuMs();
    return {
      serverCpuPct: s0 === null || s1 === null ? null : ((s1 - s0) / wallMs) * 100,
      benchCpuPct: ((selfCpuMs() - b0) / wallMs) * 100,
      wallMs,
    };
  };
}

/** Races `p` against a timer; rejects with `what` after `ms`. */
export async function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

import { parseArgs } from 'node:util';

/** Sizes of one run; the defaults are issue 10's, flags shrink them for quick runs. */
export interface BrowserBenchConfig {
  /** W1 single puts timed one by one. */
  singles: number;
  /** W1 and W2: `batches` batches of `batchSize` puts. */
  batches: number;
  batchSize: number;
  /** W3 sequential writes. */
  fanout: number;
  /** W4 documents on the server. */
  initial: number;
  /** W5 puts while offline (issued in batches of `batchSize`). */
  offline: number;
  /** Timeout of each wait in a page. */
  timeoutMs: number;
}

export const DEFAULT_CONFIG: BrowserBenchConfig = {
  singles: 200,
  batches: 100,
  batchSize: 100,
  fanout: 200,
  initial: 50_000,
  offline: 1_000,
  timeoutMs: 300_000,
};

export const WORKLOADS = ['floor', 'W1', 'W2', 'W3', 'W4', 'W5'] as const;
export type Workload = (typeof WORKLOADS)[number];

/** `npm run bench:browser -- [--only W1,W3] [--batches N] ...`: which workloads, at which sizes. */
export function parseCli(argv: string[]): { only: Set<Workload>; cfg: BrowserBenchConfig; cpuProf: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      singles: { type: 'string' },
      batches: { type: 'string' },
      'batch-size': { type: 'string' },
      fanout: { type: 'string' },
      initial: { type: 'string' },
      offline: { type: 'string' },
      'cpu-prof': { type: 'boolean' },
    },
  });
  const count = (name: keyof typeof values, fallback: number): number => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got '${raw}'`);
    return n;
  };
  const only = new Set<Workload>();
  for (const key of values.only?.split(',') ?? WORKLOADS) {
    const found = WORKLOADS.find((w) => w.toLowerCase() === key.trim().toLowerCase());
    if (!found) throw new Error(`--only: unknown workload '${key}' (${WORKLOADS.join(', ')})`);
    only.add(found);
  }
  const d = DEFAULT_CONFIG;
  return {
    only,
    cpuProf: values['cpu-prof'] === true,
    cfg: {
      singles: count('singles', d.singles),
      batches: count('batches', d.batches),
      batchSize: count('batch-size', d.batchSize),
      fanout: count('fanout', d.fanout),
      initial: count('initial', d.initial),
      offline: count('offline', d.offline),
      timeoutMs: d.timeoutMs,
    },
  };
}

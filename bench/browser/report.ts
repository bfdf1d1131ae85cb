import { round, summaryJson } from '../stats';
import type { Json } from '../scenario';
import type { BrowserBenchConfig } from './cli';
import type { W1Result, W2Result, W4Result, W5Result } from './workloads';
import type { Summary } from '../stats';

export interface BrowserBenchResults {
  floor?: { docsPerSec: number };
  W1?: W1Result;
  W2?: W2Result;
  W3?: Summary;
  W4?: W4Result;
  W5?: W5Result;
}

interface Row {
  row: string;
  what: string;
  figure: string;
  /** docs/s as a share of the raw bulkPut floor. */
  ratio: string;
}

const ms = (v: number): string => `${round(v)} ms`;
const perSec = (v: number): string => `${Math.round(v).toLocaleString('en-US')} docs/s`;

/** One row per figure, with its ratio to the floor where one applies. */
function tableRows(r: BrowserBenchResults, cfg: BrowserBenchConfig): Row[] {
  const floor = r.floor?.docsPerSec;
  const ratio = (v: number): string => (floor === undefined ? '' : `${(v / floor).toFixed(3)}×`);
  const batched = `${cfg.batches}×${cfg.batchSize}`;
  const rows: Row[] = [];
  if (r.floor) {
    rows.push({ row: 'floor', what: `raw Dexie bulkPut, ${batched}`, figure: perSec(r.floor.docsPerSec), ratio: '1×' });
  }
  if (r.W1) {
    const s = r.W1.single;
    rows.push({
      row: 'W1',
      what: `one mutate.put (${s.count})`,
      figure: `p50 ${ms(s.p50)}, p99 ${ms(s.p99)}`,
      ratio: '',
    });
    const bt = r.W1.batched;
    rows.push({ row: 'W1', what: `puts, ${batched}`, figure: perSec(bt.docsPerSec), ratio: ratio(bt.docsPerSec) });
  }
  if (r.W2) {
    rows.push({
      row: 'W2',
      what: `A → B's IndexedDB, ${batched}`,
      figure: perSec(r.W2.docsPerSec),
      ratio: ratio(r.W2.docsPerSec),
    });
  }
  if (r.W3) {
    const s = r.W3;
    rows.push({
      row: 'W3',
      what: `one write A → B (${s.count})`,
      figure: `p50 ${ms(s.p50)}, p95 ${ms(s.p95)}, p99 ${ms(s.p99)}`,
      ratio: '',
    });
  }
  if (r.W4) {
    rows.push({
      row: 'W4',
      what: `fresh page, ${r.W4.docs.toLocaleString('en-US')} docs`,
      figure: `${perSec(r.W4.docsPerSec)} (${ms(r.W4.ms)})`,
      ratio: ratio(r.W4.docsPerSec),
    });
  }
  if (r.W5) {
    rows.push({ row: 'W5', what: `${r.W5.docs} puts offline`, figure: ms(r.W5.offlineMs), ratio: '' });
    rows.push({ row: 'W5', what: 'online until all on B', figure: ms(r.W5.reconcileMs), ratio: '' });
  }
  return rows;
}

/** The table `npm run bench:browser` prints. */
export function formatTable(r: BrowserBenchResults, cfg: BrowserBenchConfig): string {
  const header: Row = { row: 'row', what: 'workload', figure: 'figure', ratio: '÷ floor' };
  const all = [header, ...tableRows(r, cfg)];
  const width = (k: keyof Row): number => Math.max(...all.map((x) => x[k].length));
  const line = (x: Row): string =>
    [x.row.padEnd(width('row')), x.what.padEnd(width('what')), x.figure.padEnd(width('figure')), x.ratio].join('  ');
  return all.map(line).join('\n');
}

/** The figures of one workload, for the progress log. */
export function headline(r: BrowserBenchResults, cfg: BrowserBenchConfig, row: string): string {
  return tableRows(r, cfg)
    .filter((x) => x.row === row)
    .map((x) => `${x.row} ${x.what}: ${x.figure}${x.ratio && x.row !== 'floor' ? ` (${x.ratio} the floor)` : ''}`)
    .join('; ');
}

/** The results file: the run's setting and every figure, rounded. */
export function resultJson(run: {
  startedAt: string;
  userAgent: string;
  node: string;
  cfg: BrowserBenchConfig;
  notes: string[];
  results: BrowserBenchResults;
}): Json {
  const { results: r } = run;
  const floor = r.floor?.docsPerSec;
  const ratio = (v: number): Json => (floor === undefined ? null : Math.round((v / floor) * 1000) / 1000);
  const out: { [key: string]: Json } = {};
  if (r.floor) out['floor'] = { docsPerSec: round(r.floor.docsPerSec) };
  if (r.W1) {
    out['W1'] = {
      singlePutMs: summaryJson(r.W1.single),
      batched: {
        docs: r.W1.batched.docs,
        docsPerSec: round(r.W1.batched.docsPerSec),
        batchMs: summaryJson(r.W1.batched.batchMs),
        ratioToFloor: ratio(r.W1.batched.docsPerSec),
      },
    };
  }
  if (r.W2) {
    out['W2'] = {
      docs: r.W2.docs,
      ms: round(r.W2.ms),
      writeMs: round(r.W2.writeMs),
      docsPerSec: round(r.W2.docsPerSec),
      ratioToFloor: ratio(r.W2.docsPerSec),
    };
  }
  if (r.W3) out['W3'] = { latencyMs: summaryJson(r.W3) };
  if (r.W4) {
    out['W4'] = {
      docs: r.W4.docs,
      ms: round(r.W4.ms),
      docsPerSec: round(r.W4.docsPerSec),
      ratioToFloor: ratio(r.W4.docsPerSec),
    };
  }
  if (r.W5) out['W5'] = { docs: r.W5.docs, offlineMs: round(r.W5.offlineMs), reconcileMs: round(r.W5.reconcileMs) };
  return {
    bench: 'browser',
    startedAt: run.startedAt,
    userAgent: run.userAgent,
    node: run.node,
    config: { ...run.cfg },
    notes: run.notes,
    results: out,
  };
}

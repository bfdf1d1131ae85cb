// fake-indexeddb must be installed before Dexie is first imported.
import 'fake-indexeddb/auto';
import { parseArgs } from 'node:util';
import { ChaosRun } from './driver';
import type { ChaosMode } from './cluster';
import { GUARANTEES } from './violations';
import type { Guarantee } from './violations';

/**
 * `npm run chaos -- --seconds N --seed S [--mode single|failover]`
 *
 * Real server processes, eight real `open()` clients on fake-indexeddb, a
 * seeded workload and seeded faults, then checks of the nine guarantees of
 * shared/DESIGN.md. Exits 1 on any violation (printing the seed), 2 when the
 * run itself broke or overran its time bound. The seed fixes the workload and
 * the fault schedule; process timing still varies, so a seed reproduces the
 * kind of run, not the exact interleaving. Without --seed a random seed is
 * drawn and printed; without --mode the seed picks the mode.
 */
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string' },
    mode: { type: 'string' },
    'quiesce-seconds': { type: 'string', default: '45' },
  },
  strict: true,
});
const seconds = Number(values.seconds);
const seed = values.seed === undefined ? Math.floor(Math.random() * 1_000_000_000) : Number(values.seed);
// Without --mode the seed picks it (even: single, odd: failover), so runs with random seeds cover both.
const mode = (values.mode ?? (seed % 2 === 0 ? 'single' : 'failover')) as ChaosMode;
const quiesceMs = Number(values['quiesce-seconds']) * 1000;
if (!Number.isInteger(seconds) || seconds <= 0 || !Number.isInteger(seed) || !['single', 'failover'].includes(mode)) {
  console.error('usage: chaos --seconds N --seed S [--mode single|failover] [--quiesce-seconds N]');
  process.exit(2);
}

const started = Date.now();
const log = (line: string): void => console.log(`[chaos ${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`);
const again = `npm run chaos -- --seconds ${seconds} --seed ${seed} --mode ${mode}`;
log(`mode ${mode}, seed ${seed}, ${seconds} s (again: ${again})`);

const run = new ChaosRun({ seconds, seed, mode, quiesceMs, log });
let finishing = false;
const finish = async (code: number): Promise<never> => {
  if (finishing) process.exit(code);
  finishing = true;
  await run.cleanup().catch((err: unknown) => console.error('cleanup failed:', err));
  process.exit(code);
};

// The whole run is bounded: start-up, chaos, quiesce and checks; past that it stops everything and fails.
const boundMs = seconds * 1000 + quiesceMs + 90_000;
setTimeout(() => {
  console.error(`chaos run overran its ${boundMs / 1000} s bound; seed ${seed} (${again})`);
  void finish(2);
}, boundMs).unref();
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void finish(130));

try {
  const report = await run.run();
  console.log('');
  console.log(
    Object.entries(report.figures)
      .map(([k, v]) => `${k}: ${v}`)
      .join(' | '),
  );
  console.log('');
  console.log('guarantee               violations');
  for (const [n, name] of Object.entries(GUARANTEES)) {
    const g = Number(n) as Guarantee;
    const count = report.violations.count(g);
    console.log(`${`${n}. ${name}`.padEnd(24)}${count}`);
    for (const example of report.violations.examples(g)) console.log(`      ${example}`);
  }
  console.log('');
  const ok = report.violations.total() === 0;
  log(ok ? `all nine guarantees held (seed ${seed})` : `FAILED: seed ${seed}, mode ${mode} (again: ${again})`);
  await finish(ok ? 0 : 1);
} catch (err) {
  console.error(err);
  for (const s of [run.cluster.primary, run.cluster.replica]) if (s) console.error(s.output().slice(-3000));
  log(`chaos run broke: seed ${seed}, mode ${mode} (again: ${again})`);
  await finish(2);
}

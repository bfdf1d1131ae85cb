/**
 * `npm run bench:browser`: Tideline in real Chromium (issue 10). Debian's
 * Chromium through Playwright, each page in a browser of its own with its own
 * on-disk profile, against a real `tideline serve` process on 127.0.0.1 that
 * serves the bench page (bench/browser/page, built by the npm script first).
 *
 *   npm run bench:browser                         every workload, issue 10's sizes
 *   npm run bench:browser -- --only W1,W3         some of them (floor, W1..W5)
 *   npm run bench:browser -- --batches 10 --initial 5000 --fanout 50 --singles 50 --offline 200
 *   npm run bench:browser -- --only W1 --cpu-prof  also write V8 CPU profiles of the pages' renderers, one per
 *                                                 page and workload, to bench/results/tmp/prof/
 *
 * Pages A (writer) and B (reader) share one server; W4 gets a server of its
 * own holding exactly `--initial` documents and a fresh page C. Prints a table
 * and writes bench/results/browser-<timestamp>.json.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchPage } from './browser';
import { parseCli } from './cli';
import type { Workload } from './cli';
import { formatTable, headline, resultJson } from './report';
import type { BrowserBenchResults } from './report';
import { RATE_LIMITS_OFF, startPageServer } from './server';
import { PAGE_DIR } from './paths';
import { floor, openReplica, seed, w1, w2, w3, w4, w5 } from './workloads';

/** The whole run is abandoned past this. */
const HARD_LIMIT_MS = 20 * 60_000;
const RESULTS_DIR = fileURLToPath(new URL('../results', import.meta.url));
/** The workloads run on pages A and B. */
const PAGES_AB = ['floor', 'W1', 'W2', 'W3', 'W5'] as const;

const log = (msg: string): void => console.error(`bench:browser: ${msg}`);

/** Runs the selected workloads; resolves false when one failed (the figures of the others are still reported). */
async function main(): Promise<boolean> {
  const { only, cfg, cpuProf } = parseCli(process.argv.slice(2));
  const profDir = join(RESULTS_DIR, 'tmp', 'prof');
  if (cpuProf) mkdirSync(profDir, { recursive: true });
  /** Runs a workload step, under the pages' CPU profilers with `--cpu-prof`. */
  const profiled = (key: string, pages: BenchPage[], step: () => Promise<void>): Promise<void> =>
    pages.reduce<() => Promise<void>>(
      (inner, page) => () =>
        cpuProf ? page.profiled(join(profDir, `browser-${key}-${page.name}.cpuprofile`), inner) : inner(),
      step,
    )();
  if (!existsSync(join(PAGE_DIR, 'index.html'))) {
    throw new Error(`${PAGE_DIR}/index.html is missing: run \`npm run bench:browser\` (it builds the page first)`);
  }
  const results: BrowserBenchResults = {};
  const cleanups: Array<() => Promise<void>> = [];
  const started = new Date();
  const loadAtStart = os.loadavg()[0]!;
  let userAgent = '';
  let failure: Error | null = null;
  try {
    if (PAGES_AB.some((w) => only.has(w))) {
      const server = await startPageServer(PAGE_DIR);
      cleanups.push(() => server.stop());
      log(`server ${server.url}; pages A (writer) and B (reader)`);
      const a = await BenchPage.launch('a', server.url);
      cleanups.push(() => a.close());
      const b = await BenchPage.launch('b', server.url);
      cleanups.push(() => b.close());
      userAgent = await a.userAgent();
      await openReplica(a, server, 'writer-a');
      await openReplica(b, server, 'reader-b');
      // In this order: W1 and W3 see an outbox and a log as small as they get, W2 and W5 follow.
      const steps: Array<[Workload, string, () => Promise<void>]> = [
        ['floor', 'raw Dexie bulkPut', async () => void (results.floor = await floor(a, cfg))],
        ['W1', 'local writes', async () => void (results.W1 = await w1(a, b, cfg))],
        ['W3', 'fan-out latency', async () => void (results.W3 = await w3(a, b, cfg))],
        ['W2', 'propagation', async () => void (results.W2 = await w2(a, b, cfg))],
        ['W5', 'offline, then online', async () => void (results.W5 = await w5(a, b, server, cfg))],
      ];
      for (const [key, what, step] of steps) {
        if (!only.has(key)) continue;
        log(`${key}: ${what}`);
        await profiled(key, [a, b], step);
        log(headline(results, cfg, key));
      }
      // A and B (and their server) stop here, so they take no CPU from W4.
      for (const c of cleanups.splice(0).reverse()) await c();
    }
    if (only.has('W4')) {
      const server = await startPageServer(PAGE_DIR);
      cleanups.push(() => server.stop());
      log(`W4: seeding ${cfg.initial} documents into ${server.url}`);
      await seed(server, cfg.initial);
      const c = await BenchPage.launch('c', server.url);
      cleanups.push(() => c.close());
      userAgent ||= await c.userAgent();
      log('W4: initial sync of a fresh page');
      await profiled('W4', [c], async () => void (results.W4 = await w4(c, server, cfg)));
      log(headline(results, cfg, 'W4'));
    }
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
  }

  const notes = [
    `server rate limits off (${RATE_LIMITS_OFF.join(' ')})`,
    `${os.cpus().length} CPUs, load average ${loadAtStart.toFixed(2)} at the start and ${os.loadavg()[0]!.toFixed(2)} at the end (other work on the machine moves the figures)`,
  ];
  if (failure !== null) notes.push(`FAILED: ${failure.message}`);
  console.log(formatTable(results, cfg));
  for (const n of notes) console.log(`note: ${n}`);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `browser-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  const json = resultJson({ startedAt: started.toISOString(), userAgent, node: process.version, cfg, notes, results });
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`wrote ${file}`);
  if (cpuProf) console.log(`CPU profiles in ${profDir} (npx tsx bench/profile-top.ts <file>)`);
  if (failure !== null) console.error(failure.stack ?? failure.message);
  return failure === null;
}

const hardLimit = setTimeout(() => {
  log(`still running after ${HARD_LIMIT_MS / 60_000} min: giving up`);
  process.exit(1);
}, HARD_LIMIT_MS);
hardLimit.unref();

main().then(
  (ok) => process.exit(ok ? 0 : 1),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);

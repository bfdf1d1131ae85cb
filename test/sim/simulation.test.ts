import { describe, expect, it } from 'vitest';
import { runSimulation } from './simulation';
import type { SimResult } from './simulation';

/**
 * The deterministic simulation (issue #2): both sync engines over a seeded,
 * faulty in-memory network, checked for convergence, exactly-once, monotonic
 * reads, isolation and stock. Every failure names its seed.
 *
 *   SIM_SEED=123 npx vitest run test/sim      one seed, with its full trace
 *   SIM_SEEDS=5000 SIM_FIRST_SEED=1 npx vitest run test/sim      more seeds
 */
const env = process.env;
const ONE_SEED = env['SIM_SEED'];
const SEEDS = Number(env['SIM_SEEDS'] ?? 1000);
const FIRST_SEED = Number(env['SIM_FIRST_SEED'] ?? 1);
const CHUNK = 100;

/** Failures grouped by kind (numbers blanked out), each with its seeds and one full example. */
function report(failed: readonly SimResult[]): string {
  const kinds = new Map<string, { seeds: number[]; example: string }>();
  for (const r of failed) {
    for (const f of r.failures) {
      const kind = f
        .replace(/^seed \d+: /, '')
        .replace(/\d+/g, 'N')
        .slice(0, 80);
      const entry = kinds.get(kind) ?? { seeds: [], example: f };
      if (entry.seeds.at(-1) !== r.seed) entry.seeds.push(r.seed);
      kinds.set(kind, entry);
    }
  }
  const lines = [...kinds.values()]
    .sort((a, b) => b.seeds.length - a.seeds.length)
    .slice(0, 12)
    .map(({ seeds, example }) => `- ${seeds.length} seeds (${seeds.slice(0, 8).join(', ')}), e.g. ${example}`);
  return [
    `${failed.length} seeds failed: ${failed.map((r) => r.seed).join(', ')}`,
    ...lines,
    `Rerun one with its trace: SIM_SEED=${failed[0]?.seed} npx vitest run test/sim`,
  ].join('\n');
}

if (ONE_SEED !== undefined) {
  describe(`simulation, seed ${ONE_SEED}`, () => {
    it('keeps every guarantee', async () => {
      const result = await runSimulation({ seed: Number(ONE_SEED), trace: true });
      console.log(`${result.trace.join('\n')}\n${JSON.stringify(result.stats)}`);
      expect(result.failures, result.failures.join('\n')).toEqual([]);
    });
  });
} else {
  describe(`simulation of ${SEEDS} seeds`, () => {
    for (let start = FIRST_SEED; start < FIRST_SEED + SEEDS; start += CHUNK) {
      const end = Math.min(start + CHUNK, FIRST_SEED + SEEDS) - 1;
      it(`seeds ${start} to ${end} converge, commit once and read monotonically`, async () => {
        const failed: SimResult[] = [];
        const seen = {
          snapshots: 0,
          rejected: 0,
          compactions: 0,
          restarts: 0,
          serverRestarts: 0,
          cuts: 0,
          duplicates: 0,
          lostAcks: 0,
        };
        for (let seed = start; seed <= end; seed++) {
          const result = await runSimulation({ seed });
          if (result.failures.length > 0) failed.push(result);
          const { stats } = result;
          seen.snapshots += stats.snapshots;
          seen.rejected += stats.rejected;
          seen.compactions += stats.compactions;
          seen.restarts += stats.restarts;
          seen.serverRestarts += stats.serverRestarts;
          seen.cuts += stats.network.cuts;
          seen.duplicates += stats.network.duplicates;
          seen.lostAcks += stats.network.lostAcks;
        }
        expect(failed.length, report(failed)).toBe(0);
        // The schedules must actually reach the paths the checks are about.
        if (end - start + 1 === CHUNK) {
          for (const [what, count] of Object.entries(seen))
            expect(count, `${what} in seeds ${start}-${end}`).toBeGreaterThan(0);
        }
      });
    }
  });
}

import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, parseCli, WORKLOADS } from './cli';
import { formatTable } from './report';

// The bench's own logic, not its figures: nothing here is timed.
describe('bench:browser command line', () => {
  it('runs every workload at issue 10 sizes by default', () => {
    const { only, cfg } = parseCli([]);
    expect([...only]).toEqual([...WORKLOADS]);
    expect(cfg).toEqual(DEFAULT_CONFIG);
    expect(cfg.batches * cfg.batchSize).toBe(10_000);
    expect(cfg.initial).toBe(50_000);
  });

  it('selects workloads case-insensitively and takes smaller sizes', () => {
    const { only, cfg } = parseCli(['--only', 'w1, W3', '--batches', '5', '--initial', '2000']);
    expect([...only]).toEqual(['W1', 'W3']);
    expect(cfg.batches).toBe(5);
    expect(cfg.initial).toBe(2000);
  });

  it('refuses unknown workloads and sizes that are not positive integers', () => {
    expect(() => parseCli(['--only', 'W9'])).toThrow(/unknown workload 'W9'/);
    expect(() => parseCli(['--batches', '0'])).toThrow(/--batches must be a positive integer/);
    expect(() => parseCli(['--fanout', '1.5'])).toThrow(/--fanout/);
    expect(() => parseCli(['--nope'])).toThrow();
  });
});

describe('bench:browser table', () => {
  it('shows docs/s figures as a ratio of the floor', () => {
    const table = formatTable(
      {
        floor: { docsPerSec: 10_000 },
        W2: { docs: 10_000, ms: 2_000, docsPerSec: 5_000, writeMs: 1_500 },
        W5: { docs: 1_000, offlineMs: 120, reconcileMs: 250 },
      },
      DEFAULT_CONFIG,
    );
    expect(table).toMatch(/floor\s+raw Dexie bulkPut, 100×100\s+10,000 docs\/s\s+1×/);
    expect(table).toMatch(/W2\s+A → B's IndexedDB, 100×100\s+5,000 docs\/s\s+0\.500×/);
    expect(table).toMatch(/W5\s+1000 puts offline\s+120 ms/);
  });
});

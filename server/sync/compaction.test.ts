import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store';
import { asyncStoreOf } from '../store/sync-store-adapter';
import { compactionTarget } from './compaction';

const DAY = 24 * 3600 * 1000;

function storeWith(timestamps: number[]): MemoryStore {
  const store = new MemoryStore({ serverId: 'compaction-test' });
  store.transact((tx) => {
    timestamps.forEach((ts, i) =>
      tx.append({ collection: 'notes', id: `n${i}`, doc: { id: `n${i}` }, owner: null }, null, ts),
    );
  });
  return store;
}

describe('automatic compaction policy', () => {
  const policy = { maxLogChanges: 10, maxLogAgeMs: 7 * DAY, intervalMs: 1000 };

  it('leaves a small, young log alone', async () => {
    expect(await compactionTarget(asyncStoreOf(storeWith([1, 2, 3])), policy, 10)).toBeNull();
  });

  it('halves a log that grew past its size limit', async () => {
    const store = storeWith(Array.from({ length: 25 }, (_, i) => i));
    expect(await compactionTarget(asyncStoreOf(store), policy, 100)).toBe(20);
  });

  it('drops changes older than the age limit, keeping the first young one', async () => {
    const now = 30 * DAY;
    const store = storeWith([1 * DAY, 2 * DAY, 22 * DAY, 29 * DAY]);
    // Cutoff is day 23: the changes of days 1, 2 and 22 go.
    expect(await compactionTarget(asyncStoreOf(store), policy, now)).toBe(3);
    store.compact(3);
    expect(await compactionTarget(asyncStoreOf(store), policy, now)).toBeNull();
  });

  it('never moves the horizon back', async () => {
    const store = storeWith(Array.from({ length: 25 }, (_, i) => i));
    store.compact(22);
    expect(await compactionTarget(asyncStoreOf(store), policy, 100)).toBeNull();
  });
});

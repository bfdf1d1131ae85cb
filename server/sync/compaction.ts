import type { Clock } from '../../shared/clock';
import type { AsyncStore } from '../store/async-store';
import type { SyncCore } from './sync-core';

export interface CompactionPolicy {
  /** Keep the log under this many changes: past it, compact down to half. */
  maxLogChanges: number;
  /** Drop changes older than this. */
  maxLogAgeMs: number;
  intervalMs: number;
}

/** Where the horizon should move to under `policy`, or null to leave it. Pure but for the store reads. */
export async function compactionTarget(
  store: Pick<AsyncStore, 'meta' | 'logStats' | 'readChanges'>,
  policy: CompactionPolicy,
  now: number,
): Promise<number | null> {
  const meta = await store.meta();
  const { count, oldestTs } = await store.logStats();
  let target = meta.horizon;
  if (count > policy.maxLogChanges) target = Math.max(target, meta.headLsn - Math.floor(policy.maxLogChanges / 2));
  if (oldestTs !== null && now - oldestTs > policy.maxLogAgeMs) {
    // Walk forward from the horizon to the first change young enough to keep.
    const cutoff = now - policy.maxLogAgeMs;
    let after = target;
    for (let pages = 0; pages < 100; pages++) {
      const page = await store.readChanges(after, 1000);
      const young = page.find((c) => c.ts >= cutoff);
      if (young) {
        after = young.lsn - 1;
        break;
      }
      if (page.length === 0) break;
      after = page[page.length - 1]!.lsn;
    }
    target = Math.max(target, after);
  }
  return target > meta.horizon ? target : null;
}

/**
 * Checks the policy every `intervalMs`; returns a function that stops it.
 * On a shared store every node runs it: the store lets one compaction run at
 * a time (PostgreSQL: an advisory lock), and the core never compacts past
 * what its own node has fanned out.
 */
export function startCompaction(
  core: SyncCore,
  store: Pick<AsyncStore, 'meta' | 'logStats' | 'readChanges'>,
  clock: Clock,
  policy: CompactionPolicy,
  onError: (err: unknown) => void = () => undefined,
): () => void {
  let handle: unknown = null;
  let stopped = false;
  const tick = async (): Promise<void> => {
    if (stopped) return;
    try {
      const target = await compactionTarget(store, policy, clock.now());
      if (target !== null && !stopped) await core.compact(target);
    } catch (err) {
      // The next tick tries again: a failed compaction leaves the log as it was.
      onError(err);
    }
    if (!stopped) handle = clock.setTimeout(() => void tick(), policy.intervalMs);
  };
  handle = clock.setTimeout(() => void tick(), policy.intervalMs);
  return () => {
    stopped = true;
    clock.clearTimeout(handle);
  };
}

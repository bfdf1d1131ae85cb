import type { Clock } from '../../shared/clock';
import type { Store } from '../store/store';
import type { SyncCore } from './sync-core';

export interface CompactionPolicy {
  /** Keep the log under this many changes: past it, compact down to half. */
  maxLogChanges: number;
  /** Drop changes older than this. */
  maxLogAgeMs: number;
  intervalMs: number;
}

/** Where the horizon should move to under `policy`, or null to leave it. Pure but for the store reads. */
export function compactionTarget(store: Store, policy: CompactionPolicy, now: number): number | null {
  const meta = store.meta();
  const { count, oldestTs } = store.logStats();
  let target = meta.horizon;
  if (count > policy.maxLogChanges) target = Math.max(target, meta.headLsn - Math.floor(policy.maxLogChanges / 2));
  if (oldestTs !== null && now - oldestTs > policy.maxLogAgeMs) {
    // Walk forward from the horizon to the first change young enough to keep.
    const cutoff = now - policy.maxLogAgeMs;
    let after = target;
    for (let pages = 0; pages < 100; pages++) {
      const page = store.readChanges(after, 1000);
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

/** Checks the policy every `intervalMs`; returns a function that stops it. */
export function startCompaction(core: SyncCore, store: Store, clock: Clock, policy: CompactionPolicy): () => void {
  let handle: unknown = null;
  let stopped = false;
  const tick = (): void => {
    if (stopped) return;
    const target = compactionTarget(store, policy, clock.now());
    if (target !== null) core.compact(target);
    handle = clock.setTimeout(tick, policy.intervalMs);
  };
  handle = clock.setTimeout(tick, policy.intervalMs);
  return () => {
    stopped = true;
    clock.clearTimeout(handle);
  };
}

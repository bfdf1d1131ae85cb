import { describe, expect, it } from 'vitest';
import { PendingCount } from './pending-count';

describe('PendingCount', () => {
  it('adds deltas in any order when no count is taken', () => {
    const p = new PendingCount();
    const a = p.stamp();
    const b = p.stamp();
    p.add(b, -2);
    p.add(a, 5);
    expect(p.current).toBe(3);
  });

  it('keeps a write that committed after a count was read but was learned before the count', () => {
    const p = new PendingCount();
    const count = p.countStamp(); // reads 4
    const write = p.stamp(); // commits 3 more after the count
    p.add(write, 3); // learned first
    p.counted(count, 4); // the stale count arrives later
    expect(p.current).toBe(7);
  });

  it('does not count twice a write that committed before the count but was learned after it', () => {
    const p = new PendingCount();
    const write = p.stamp();
    const count = p.countStamp(); // already holds the write's 3
    p.counted(count, 3);
    p.add(write, 3);
    expect(p.current).toBe(3);
  });

  it('ignores a count older than one applied, and forgets deltas no open count needs', () => {
    const p = new PendingCount();
    const older = p.countStamp();
    const settled = p.stamp();
    const newer = p.countStamp();
    p.counted(newer, 10);
    p.add(settled, -1); // before `newer`: already in its 10
    p.counted(older, 11);
    expect(p.current).toBe(10);
    const write = p.stamp();
    p.add(write, 2);
    expect(p.current).toBe(12);
  });

  it('an abandoned count stops holding deltas back', () => {
    const p = new PendingCount();
    const count = p.countStamp();
    p.add(p.stamp(), 1);
    p.abandon(count);
    p.add(p.stamp(), 1);
    expect(p.current).toBe(2);
    const next = p.countStamp();
    p.counted(next, 5);
    expect(p.current).toBe(5);
  });
});

import { describe, expect, it } from 'vitest';
import { SnapshotGate } from './snapshot-gate';

describe('SnapshotGate', () => {
  it('admits up to its capacity at once, then the waiters in arrival order as places are given back', async () => {
    const gate = new SnapshotGate(2);
    const admitted: string[] = [];
    const enter = (name: string): Promise<void> =>
      gate.enter({ name }).then((ok) => {
        if (ok) admitted.push(name);
      });
    await Promise.all([enter('a'), enter('b')]);
    const waiting = [enter('c'), enter('d'), enter('e')];
    await Promise.resolve();
    expect(admitted).toEqual(['a', 'b']);
    expect(gate.stats).toEqual({ held: 2, waiting: 3 });
    gate.release();
    await waiting[0];
    expect(admitted).toEqual(['a', 'b', 'c']);
    gate.release();
    gate.release();
    await Promise.all(waiting);
    expect(admitted).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(gate.stats).toEqual({ held: 2, waiting: 0 });
    gate.release();
    gate.release();
    expect(gate.stats).toEqual({ held: 0, waiting: 0 });
  });

  it('lets a waiter leave the queue (its session closed): it gets no place and takes none', async () => {
    const gate = new SnapshotGate(1);
    const first = {};
    const leaving = {};
    const next = {};
    expect(await gate.enter(first)).toBe(true);
    const left = gate.enter(leaving);
    const later = gate.enter(next);
    gate.leave(leaving);
    gate.leave({}); // not waiting: nothing happens
    expect(await left).toBe(false);
    gate.release();
    expect(await later).toBe(true);
    expect(gate.stats).toEqual({ held: 1, waiting: 0 });
  });
});

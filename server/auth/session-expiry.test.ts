import { describe, expect, it } from 'vitest';
import type { Clock } from '../../shared/clock';
import { atExpiry } from './session-expiry';

/** A clock whose time moves only when told; timers fire as it passes them. */
function manualClock(start: number): Clock & { advance(ms: number): void; pending(): number[] } {
  let now = start;
  let nextId = 0;
  const timers = new Map<number, { at: number; fn: () => void; delay: number }>();
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = ++nextId;
      timers.set(id, { at: now + ms, fn, delay: ms });
      return id;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    pending: () => [...timers.values()].map((t) => t.delay),
    advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = until;
    },
  };
}

describe('atExpiry', () => {
  it('fires once, at the expiry and not before', () => {
    const clock = manualClock(1_000);
    let fired = 0;
    atExpiry(6_000, () => fired++, clock);
    clock.advance(4_999);
    expect(fired).toBe(0);
    clock.advance(1);
    expect(fired).toBe(1);
    clock.advance(100_000);
    expect(fired).toBe(1);
    expect(clock.pending()).toEqual([]);
  });

  it('fires at once for a time already past', () => {
    const clock = manualClock(10_000);
    let fired = 0;
    atExpiry(9_000, () => fired++, clock);
    expect(fired).toBe(1);
  });

  it('reaches an expiry months away in steps no timer overflows on, one timer at a time', () => {
    const clock = manualClock(0);
    const inAYear = 365 * 24 * 3600 * 1000;
    let fired = 0;
    atExpiry(inAYear, () => fired++, clock);
    expect(clock.pending()).toEqual([2_147_483_647]);
    clock.advance(inAYear - 1);
    expect(fired).toBe(0);
    expect(clock.pending()).toHaveLength(1);
    clock.advance(1);
    expect(fired).toBe(1);
  });

  it('never fires once cancelled', () => {
    const clock = manualClock(0);
    let fired = 0;
    const cancel = atExpiry(5_000, () => fired++, clock);
    clock.advance(1_000);
    cancel();
    clock.advance(10_000);
    expect(fired).toBe(0);
    expect(clock.pending()).toEqual([]);
  });
});

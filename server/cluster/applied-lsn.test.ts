import { describe, expect, it } from 'vitest';
import type { Clock } from '../../shared/clock';
import { TidelineError } from '../../shared/errors';
import { AppliedLsnWaiters } from './applied-lsn';

/** A clock whose timers fire only when the test says. */
function manualClock(): Clock & { fire: () => void; pending: () => number } {
  let timers = new Map<number, () => void>();
  let next = 0;
  return {
    now: () => 0,
    setTimeout: (fn) => {
      timers.set(++next, fn);
      return next;
    },
    clearTimeout: (handle) => {
      timers.delete(handle as number);
    },
    fire: () => {
      const due = timers;
      timers = new Map();
      for (const fn of due.values()) fn();
    },
    pending: () => timers.size,
  };
}

describe('AppliedLsnWaiters', () => {
  it('wakes the waiters an applied head reaches, and only those, clearing their timers', async () => {
    const clock = manualClock();
    let head = 5;
    const waiters = new AppliedLsnWaiters({ clock, maxWaiters: 10, head: () => head });
    expect(await waiters.wait(5, 1000)).toBe(true);
    const seven = waiters.wait(7, 1000);
    const nine = waiters.wait(9, 1000);
    expect(waiters.waiting).toBe(2);
    head = 8;
    waiters.applied(8);
    expect(await seven).toBe(true);
    expect(waiters.waiting).toBe(1);
    expect(clock.pending()).toBe(1);
    clock.fire();
    expect(await nine).toBe(false);
    expect(waiters.waiting).toBe(0);
  });

  it('refuses one more than the cap with RATE_LIMITED, and answers a no-wait read at once', async () => {
    const clock = manualClock();
    const waiters = new AppliedLsnWaiters({ clock, maxWaiters: 1, head: () => 0 });
    expect(await waiters.wait(1, 0)).toBe(false);
    const held = waiters.wait(1, 1000);
    expect(() => waiters.wait(1, 1000)).toThrow(TidelineError);
    expect(() => waiters.wait(1, 0)).toThrow(/already wait/);
    waiters.close();
    expect(await held).toBe(false);
    expect(clock.pending()).toBe(0);
  });
});

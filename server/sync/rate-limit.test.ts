import { describe, expect, it } from 'vitest';
import { KeyedBudgets, PushBudget, TokenBucket } from './rate-limit';

describe('TokenBucket', () => {
  it('lets a burst through, then refuses with the time until the request fits', () => {
    const bucket = new TokenBucket({ perSecond: 100, burst: 1000 }, 0);
    expect(bucket.wait(1000, 0)).toBe(0);
    bucket.take(1000, 0);
    expect(bucket.wait(50, 0)).toBe(500);
    expect(bucket.wait(50, 400)).toBe(100);
    expect(bucket.wait(50, 500)).toBe(0);
  });

  it('never holds more than its burst', () => {
    const bucket = new TokenBucket({ perSecond: 100, burst: 200 }, 0);
    expect(bucket.full(1_000_000)).toBe(true);
    bucket.take(200, 1_000_000);
    expect(bucket.wait(1, 1_000_000)).toBe(10);
  });

  it('slows a request larger than the burst instead of refusing it forever', () => {
    const bucket = new TokenBucket({ perSecond: 10, burst: 10 }, 0);
    expect(bucket.wait(500, 0)).toBe(0);
    bucket.take(500, 0);
    expect(bucket.wait(500, 0)).toBe(1000);
    expect(bucket.wait(500, 1000)).toBe(0);
  });

  it('is off at rate 0', () => {
    const bucket = new TokenBucket({ perSecond: 0, burst: 0 }, 0);
    bucket.take(1e9, 0);
    expect(bucket.wait(1e9, 0)).toBe(0);
  });
});

describe('PushBudget', () => {
  it('answers the longer wait of mutations and bytes, and a refusal takes nothing', () => {
    const budget = new PushBudget(
      { mutations: { perSecond: 10, burst: 10 }, bytes: { perSecond: 1000, burst: 1000 } },
      0,
    );
    budget.take(10, 100, 0);
    expect(budget.wait(1, 100, 0)).toBe(100); // mutations empty
    expect(budget.wait(0, 900, 0)).toBe(0);
    budget.take(0, 900, 0);
    expect(budget.wait(0, 500, 0)).toBe(500); // bytes empty
    // Asking again after a refusal costs nothing: the wait only shrinks with time.
    expect(budget.wait(5, 500, 0)).toBe(500);
    expect(budget.wait(5, 500, 500)).toBe(0);
  });
});

describe('KeyedBudgets', () => {
  const rates = { mutations: { perSecond: 10, burst: 20 }, bytes: { perSecond: 0, burst: 0 } };

  it('keeps a spent budget across lookups (reconnecting does not reset it), forgets full ones', () => {
    const budgets = new KeyedBudgets(rates, 1000);
    budgets.get('flooder', 0).take(20, 0, 0);
    budgets.get('idle', 0);
    expect(budgets.get('flooder', 500).wait(20, 0, 500)).toBe(1500);
    // At the sweep, 'idle' is full (forgotten), 'flooder' still refilling (kept).
    budgets.get('other', 1000);
    expect(budgets.size).toBe(2);
    expect(budgets.get('flooder', 1000).wait(20, 0, 1000)).toBe(1000);
  });
});

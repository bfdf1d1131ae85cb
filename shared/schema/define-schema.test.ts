import { describe, expect, it } from 'vitest';
import { defineSchema } from './define-schema';
import type { Quota } from './define-schema';

const withQuota = (quota: Quota) =>
  defineSchema({
    name: 'q',
    version: 1,
    collections: { notes: { read: 'public', write: 'any', indexes: [], quota } },
    mutators: {},
  });

describe('defineSchema: quotas', () => {
  it('accepts positive integer bounds, one or both', () => {
    expect(withQuota({ docs: 1000, bytes: 2 * 1024 * 1024 }).collections.notes.quota).toEqual({
      docs: 1000,
      bytes: 2097152,
    });
    expect(() => withQuota({ docs: 1 })).not.toThrow();
    expect(() => withQuota({ bytes: 1 })).not.toThrow();
  });

  it('refuses a bound that is not a positive integer, or an unknown one, naming it', () => {
    for (const [quota, message] of [
      [{ docs: 0 }, /quota.docs of 'notes' must be a positive integer, got 0/],
      [{ docs: -5 }, /quota.docs/],
      [{ bytes: 1.5 }, /quota.bytes of 'notes' must be a positive integer, got 1.5/],
      [{ bytes: Number.POSITIVE_INFINITY }, /quota.bytes/],
      [{ docs: Number.NaN }, /quota.docs/],
      [{ docs: '10' as unknown as number }, /quota.docs/],
      [{ items: 3 } as unknown as Quota, /unknown bound 'items'/],
    ] as const) {
      expect(() => withQuota(quota), JSON.stringify(quota)).toThrow(message);
    }
  });
});

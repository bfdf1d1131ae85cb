import { describe, expect, it } from 'vitest';
import { TidelineError } from '../../shared/errors';
import { storeSchema } from '../../shared/apps/store';
import { SYSTEM } from '../sync/server-write';
import { parseDocQuery, queryableFields } from './query-route';

describe('queryable fields', () => {
  it("are id, single indexes, and a compound's fields after equalities on the earlier ones", () => {
    expect([...queryableFields(['a', 'b+c'], [])].sort()).toEqual(['a', 'b', 'id']);
    expect([...queryableFields(['a', 'b+c'], ['b'])].sort()).toEqual(['a', 'b', 'c', 'id']);
    expect([...queryableFields(['x+y+z'], ['x'])].sort()).toEqual(['id', 'x', 'y']);
  });

  it('let the demo products be ordered by price within a category through category+price', () => {
    const q = parseDocQuery(
      storeSchema,
      'products',
      { filter: ['category:eq:Toys', 'price:lt:20'], orderBy: 'price', limit: '10' },
      SYSTEM,
    );
    expect(q).toMatchObject({
      filters: [{ field: 'category' }, { field: 'price', value: 20 }],
      orderBy: { field: 'price' },
    });
    let error: unknown;
    try {
      parseDocQuery(storeSchema, 'orders', { filter: 'total:gt:1' }, SYSTEM);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TidelineError);
    expect((error as TidelineError).code).toBe('BAD_REQUEST');
  });
});

import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeSchema } from '../../shared/apps/store';
import { checkStoredData } from '../schema-check';
import { appIndexName } from './sqlite-query';
import { openSqliteStore } from './sqlite-store';
import type { SqliteStore } from './sqlite-store';
import type { DocFilter, DocQuery } from './store';

/**
 * The plan of every query shape on every indexed field of the demo schema
 * (shared/apps/store.ts), on a store set up as a server sets it up
 * (`checkStoredData`): each names the field's index (or the primary key for
 * `id`), none scans, and none sorts in a temporary B-tree when it is ordered
 * on an indexed field. Without statistics, and again after ANALYZE (an
 * operator may run it): the plans must not depend on either.
 */

type Op = DocFilter['op'];

/** A value of the field's kind, so each range has the bound types of real queries. */
const sample: Record<string, string | number> = {
  name: 'Product 12',
  category: 'Toys',
  price: 20,
  rating: 3,
  stock: 5,
  createdAt: 1_700_000_000_000,
  owner: 'u1',
};

const RANGE_OPS: Op[] = ['eq', 'gt', 'gte', 'lt', 'lte'];
const N = 3000;

let dir: string;
let store: SqliteStore;

function fill(s: SqliteStore): void {
  s.transact((tx) => {
    for (let i = 0; i < N; i++) {
      const id = `p${String(i).padStart(5, '0')}`;
      const doc = {
        id,
        name: `Product ${i}`,
        category: ['Toys', 'Books', 'Garden'][i % 3]!,
        price: (i % 500) / 10,
        stock: i % 7,
        rating: i % 5,
      };
      tx.append({ collection: 'products', id, doc, owner: null }, null, 1);
      if (i % 10 === 0) {
        tx.append({ collection: 'notes', id: `n${i}`, doc: { id: `n${i}`, createdAt: i }, owner: null }, null, 1);
        const owner = `u${i % 4}`;
        tx.append({ collection: 'orders', id: `o${i}`, doc: { id: `o${i}`, createdAt: i, owner }, owner }, null, 1);
        tx.append({ collection: 'carts', id: `c${i}`, doc: { id: `c${i}`, owner }, owner }, null, 1);
      }
    }
  });
}

/** Every (collection, single indexed field) of the demo schema. */
const singles = Object.entries(storeSchema.collections).flatMap(([collection, def]) =>
  def.indexes.filter((f) => !f.includes('+')).map((field) => ({ collection, field })),
);

const plan = (q: DocQuery): string => store.queryPlan(q).join(' | ');

/**
 * Every statement of `q` reads `index`: a search on it, or, for a page with
 * no filter on it, a walk of it in order (which a limit ends early). Only an
 * unordered query may sort, and only its own matches.
 */
function expectIndexed(q: DocQuery, index: string, ordered: boolean): void {
  const where = JSON.stringify(q);
  const lines = store.queryPlan(q);
  const filtered = q.filters.length > 0 || q.after !== undefined;
  expect(lines[0], where).toMatch(
    new RegExp(`^${filtered ? 'SEARCH' : 'SCAN'} docs USING (COVERING )?INDEX ${index}\\b`),
  );
  for (const line of lines) {
    expect(line, where).toMatch(new RegExp(`^(SEARCH|SCAN) docs USING (COVERING )?INDEX ${index}\\b|^USE TEMP B-TREE`));
  }
  // Ordered on the indexed field (or by id after an equality on it): the index gives the order.
  if (ordered) expect(lines.join(' | '), where).not.toMatch(/TEMP B-TREE/);
}

function suite(label: string): void {
  describe(label, () => {
    it('has one index per indexed field and compound index of the demo schema', () => {
      const want = Object.entries(storeSchema.collections).flatMap(([collection, def]) =>
        def.indexes.map((field) => `${collection}.${field}`),
      );
      expect(
        store
          .appIndexes()
          .map((ix) => `${ix.collection}.${ix.field}`)
          .sort(),
      ).toEqual(want.sort());
    });

    it.each(singles)('$collection.$field: eq and ranges use its index, ordered by it without a sort', (c) => {
      const index = appIndexName(c.collection, [c.field]);
      const value = sample[c.field]!;
      for (const op of RANGE_OPS) {
        const filters: DocFilter[] = [{ field: c.field, op, value }];
        for (const direction of ['asc', 'desc'] as const) {
          const q: DocQuery = { collection: c.collection, filters, orderBy: { field: c.field, direction }, limit: 10 };
          expectIndexed(q, index, true);
          // A page further on seeks to its position.
          expectIndexed({ ...q, after: { value, id: 'p00100' } }, index, true);
          expectIndexed({ ...q, after: { value: null, id: 'p00100' } }, index, true);
          // An owner-only collection read by its owner: the same index, the owner checked on its rows.
          expectIndexed({ ...q, owner: 'u1' }, index, true);
        }
      }
      // No filter, ordered by the field: the index gives the order.
      for (const direction of ['asc', 'desc'] as const) {
        expectIndexed(
          { collection: c.collection, filters: [], orderBy: { field: c.field, direction }, limit: 10 },
          index,
          true,
        );
      }
      // Counts search the index too.
      for (const op of RANGE_OPS) {
        const q: DocQuery = { collection: c.collection, filters: [{ field: c.field, op, value }], limit: 1 };
        expect(store.queryPlan(q, 'count')).toEqual([
          expect.stringMatching(new RegExp(`^SEARCH docs USING (COVERING )?INDEX ${index} \\(<expr>`)),
        ]);
      }
      // Filtered, in id order (the default): equality gives id order from the index itself.
      expectIndexed(
        { collection: c.collection, filters: [{ field: c.field, op: 'eq', value }], limit: 50 },
        index,
        true,
      );
    });

    it.each(singles.filter((c) => typeof sample[c.field] === 'string'))(
      '$collection.$field: prefix uses its index, ordered by it without a sort',
      (c) => {
        const index = appIndexName(c.collection, [c.field]);
        const filters: DocFilter[] = [{ field: c.field, op: 'prefix', value: String(sample[c.field]).slice(0, 5) }];
        for (const direction of ['asc', 'desc'] as const) {
          expectIndexed(
            { collection: c.collection, filters, orderBy: { field: c.field, direction }, limit: 20 },
            index,
            true,
          );
        }
        expectIndexed({ collection: c.collection, filters, limit: 20 }, index, false);
      },
    );

    it('category+price: a category by price (range and order) uses the compound index, no sort', () => {
      const index = appIndexName('products', ['category', 'price']);
      const category: DocFilter = { field: 'category', op: 'eq', value: 'Toys' };
      for (const direction of ['asc', 'desc'] as const) {
        const orderBy = { field: 'price', direction };
        expectIndexed({ collection: 'products', filters: [category], orderBy, limit: 10 }, index, true);
        for (const op of ['lt', 'gte'] as const) {
          const filters: DocFilter[] = [category, { field: 'price', op, value: 20 }];
          expectIndexed({ collection: 'products', filters, orderBy, limit: 10 }, index, true);
          expectIndexed(
            { collection: 'products', filters, orderBy, limit: 10, after: { value: 12, id: 'p00042' } },
            index,
            true,
          );
        }
      }
    });

    it('id: eq, ranges, prefix and id order use the primary key, no sort', () => {
      for (const op of [...RANGE_OPS, 'prefix'] as const) {
        for (const direction of ['asc', 'desc'] as const) {
          const q: DocQuery = {
            collection: 'products',
            filters: [{ field: 'id', op, value: 'p00011' }],
            orderBy: { field: 'id', direction },
            limit: 10,
          };
          expect(plan(q)).toMatch(/^SEARCH docs USING INDEX sqlite_autoindex_docs_1 \(collection=\? AND id/);
          expect(plan(q)).not.toMatch(/TEMP B-TREE|SCAN/);
        }
      }
      expect(plan({ collection: 'products', filters: [{ field: 'id', op: 'eq', value: 'p00011' }], limit: 2 })).toBe(
        'SEARCH docs USING INDEX sqlite_autoindex_docs_1 (collection=? AND id=?)',
      );
    });
  });
}

describe('query plans on the demo schema', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tideline-plan-'));
    store = openSqliteStore(join(dir, 'store.db'));
    checkStoredData(store, storeSchema, { dropUnknownCollections: false, role: 'primary', now: 1 });
    fill(store);
  });
  afterAll(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  suite('without statistics');

  describe('after ANALYZE', () => {
    beforeAll(() => {
      store.close();
      const db = new Database(join(dir, 'store.db'));
      db.exec('ANALYZE');
      db.close();
      store = openSqliteStore(join(dir, 'store.db'));
    });
    suite('with statistics');
  });
});

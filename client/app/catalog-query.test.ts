import 'fake-indexeddb/auto';
import Dexie from 'dexie';
import type { Table } from 'dexie';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Doc } from 'tideline/schema';
import { categories, matchesSearch, NO_FILTER, queryCatalog } from './catalog-query';
import type { CatalogFilter } from './catalog-query';

/** A small catalog with ties in price and rating, so the tie order (by id, as in an index) is tested too. */
const DOCS: Doc[] = [
  { id: 'p1', name: 'Smart Kettle 1', category: 'Kitchen', price: 30, rating: 4.5, stock: 3 },
  { id: 'p2', name: 'Classic Lamp 2', category: 'Office', price: 10, rating: 3, stock: 0 },
  { id: 'p3', name: 'Smart Lamp 3', category: 'Office', price: 20, rating: 4.5, stock: 9 },
  { id: 'p4', name: 'Rustic Knife 4', category: 'Kitchen', price: 20, rating: 2, stock: 1 },
  { id: 'p5', name: 'Smart Knife 5', category: 'Kitchen', price: 5, rating: 5, stock: 4 },
  { id: 'p6', name: 'Eco Mug 6', category: 'Kitchen', price: 12.5, rating: 1, stock: 7 },
];

let db: Dexie;
let table: Table<Doc, string>;

beforeAll(async () => {
  db = new Dexie(`catalog-${randomUUID()}`);
  db.version(1).stores({ products: 'id, name, category, price, rating, stock' });
  table = db.table('products');
  await table.bulkPut(DOCS);
});

afterAll(async () => {
  db.close();
  await Dexie.delete(db.name);
});

const ids = async (filter: Partial<CatalogFilter>, offset = 0, limit = 10) => {
  const page = await queryCatalog(table, { ...NO_FILTER, ...filter }, offset, limit);
  return { ids: page.items.map((d) => d.id), total: page.total, index: page.index };
};

describe('queryCatalog', () => {
  it('pages straight off the sort index when nothing filters', async () => {
    expect(await ids({}, 0, 3)).toEqual({ ids: ['p2', 'p6', 'p4'], total: 6, index: 'name' });
    expect(await ids({}, 3, 3)).toEqual({ ids: ['p1', 'p5', 'p3'], total: 6, index: 'name' });
    expect(await ids({ sort: 'price-desc' }, 0, 3)).toEqual({ ids: ['p1', 'p4', 'p3'], total: 6, index: 'price' });
    expect((await ids({ sort: 'rating' })).ids).toEqual(['p5', 'p3', 'p1', 'p2', 'p4', 'p6']);
  });

  it('searches by word prefixes, any case', async () => {
    expect(await ids({ search: 'smart k' })).toEqual({ ids: ['p1', 'p5'], total: 2, index: 'name' });
    expect((await ids({ search: 'KNI' })).ids).toEqual(['p4', 'p5']);
    expect((await ids({ search: 'lamp', sort: 'price-asc' })).ids).toEqual(['p2', 'p3']);
  });

  it('walks the category index and sorts the matches', async () => {
    expect(await ids({ category: 'Kitchen', sort: 'price-asc' })).toEqual({
      ids: ['p5', 'p6', 'p4', 'p1'],
      total: 4,
      index: 'category',
    });
    expect((await ids({ category: 'Kitchen', minPrice: 6, maxPrice: 20, sort: 'price-desc' })).ids).toEqual([
      'p4',
      'p6',
    ]);
  });

  it('walks the price index for a range, inclusive at both ends', async () => {
    expect(await ids({ minPrice: 10, maxPrice: 20, sort: 'price-asc' })).toEqual({
      ids: ['p2', 'p6', 'p3', 'p4'],
      total: 4,
      index: 'price',
    });
    expect((await ids({ minPrice: 10, maxPrice: 20, sort: 'price-desc' }, 1, 2)).ids).toEqual(['p3', 'p6']);
    expect((await ids({ minPrice: 15, sort: 'name' })).ids).toEqual(['p4', 'p1', 'p3']);
    expect((await ids({ maxPrice: 4 })).total).toBe(0);
  });

  it('counts every match whatever the page', async () => {
    // Kitchen by name: Eco Mug 6, Rustic Knife 4, Smart Kettle 1, Smart Knife 5.
    expect(await ids({ category: 'Kitchen' }, 2, 1)).toEqual({ ids: ['p1'], total: 4, index: 'category' });
    expect((await ids({}, 10, 5)).ids).toEqual([]);
  });

  it('lists the categories from the index', async () => {
    expect(await categories(table)).toEqual(['Kitchen', 'Office']);
  });
});

describe('matchesSearch', () => {
  it('needs every word to begin a word of the name', () => {
    expect(matchesSearch('Smart Kettle 12', 'kett')).toBe(true);
    expect(matchesSearch('Smart Kettle 12', 'smart 12')).toBe(true);
    expect(matchesSearch('Smart Kettle 12', 'ettle')).toBe(false);
    expect(matchesSearch('Smart Kettle 12', '  ')).toBe(true);
  });
});

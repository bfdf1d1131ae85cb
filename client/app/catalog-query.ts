import type { Collection, Table } from 'dexie';
import type { Doc } from 'tideline/schema';

/**
 * The catalog's queries, answered from the local replica through its Dexie
 * indexes (products: name, category, price, rating, stock), so they are
 * instant and work offline.
 *
 * IndexedDB walks one index per query, so the plan picks the index that
 * narrows the most: the category (an exact match), else the price range,
 * else the sort field. When the walked index is also the sort order and
 * nothing else filters, a page is read straight off the index (offset and
 * limit); otherwise the matches are filtered as the index is walked and
 * sorted in memory, a few milliseconds for thousands of products.
 */

export type SortKey = 'name' | 'price-asc' | 'price-desc' | 'rating';

type SortField = 'name' | 'price' | 'rating';

export const SORTS: Readonly<Record<SortKey, { label: string; field: SortField; desc: boolean }>> = {
  name: { label: 'Name, A to Z', field: 'name', desc: false },
  'price-asc': { label: 'Price, low to high', field: 'price', desc: false },
  'price-desc': { label: 'Price, high to low', field: 'price', desc: true },
  rating: { label: 'Rating, best first', field: 'rating', desc: true },
};

export const isSortKey = (value: string): value is SortKey => Object.hasOwn(SORTS, value);

export interface CatalogFilter {
  /** Words that must each begin a word of the name, any case: `smart k` finds "Smart Kettle 12". */
  search: string;
  /** Empty: every category. */
  category: string;
  minPrice: number | null;
  maxPrice: number | null;
  sort: SortKey;
}

export const NO_FILTER: CatalogFilter = { search: '', category: '', minPrice: null, maxPrice: null, sort: 'name' };

export interface CatalogPage {
  items: Doc[];
  /** How many products match, on every page. */
  total: number;
  /** The index the query walked, for the curious. */
  index: string;
}

const words = (text: string): string[] => text.toLowerCase().split(/\s+/).filter(Boolean);

/** Whether every word of the search begins some word of `name`. */
export function matchesSearch(name: string, search: string): boolean {
  const wanted = words(search);
  if (wanted.length === 0) return true;
  const have = words(name);
  return wanted.every((w) => have.some((h) => h.startsWith(w)));
}

const num = (doc: Doc, field: string): number => {
  const v = doc[field];
  return typeof v === 'number' ? v : Number.NaN;
};
const str = (doc: Doc, field: string): string => {
  const v = doc[field];
  return typeof v === 'string' ? v : '';
};

/** IndexedDB's order for the sort field, with the id breaking ties as an index does. */
function compareBy(field: SortField, desc: boolean): (a: Doc, b: Doc) => number {
  const sign = desc ? -1 : 1;
  return (a, b) => {
    const x = field === 'name' ? str(a, field) : num(a, field);
    const y = field === 'name' ? str(b, field) : num(b, field);
    if (x < y) return -sign;
    if (x > y) return sign;
    return a.id < b.id ? -sign : a.id > b.id ? sign : 0;
  };
}

/** One page of the products matching `filter`, and how many match in all. */
export async function queryCatalog(
  table: Table<Doc, string>,
  filter: CatalogFilter,
  offset: number,
  limit: number,
): Promise<CatalogPage> {
  const sort = SORTS[filter.sort];
  const min = filter.minPrice ?? -Infinity;
  const max = filter.maxPrice ?? Infinity;
  const hasPrice = filter.minPrice !== null || filter.maxPrice !== null;
  const checks: Array<(doc: Doc) => boolean> = [];

  let base: Collection<Doc, string>;
  let index: string;
  let ordered = false;
  if (filter.category) {
    base = table.where('category').equals(filter.category);
    index = 'category';
    if (hasPrice) checks.push((d) => num(d, 'price') >= min && num(d, 'price') <= max);
  } else if (hasPrice) {
    base = table.where('price').between(min, max, true, true);
    index = 'price';
    ordered = sort.field === 'price';
  } else {
    base = table.orderBy(sort.field);
    index = sort.field;
    ordered = true;
  }
  if (filter.search.trim()) checks.push((d) => matchesSearch(str(d, 'name'), filter.search));

  if (ordered && sort.desc) base = base.reverse();
  if (ordered && checks.length === 0) {
    const [items, total] = await Promise.all([base.clone().offset(offset).limit(limit).toArray(), base.count()]);
    return { items, total, index };
  }
  const matches = await (checks.length === 0 ? base : base.filter((d) => checks.every((c) => c(d)))).toArray();
  if (!ordered) matches.sort(compareBy(sort.field, sort.desc));
  return { items: matches.slice(offset, offset + limit), total: matches.length, index };
}

/** The categories present in the replica, from the category index. */
export async function categories(table: Table<Doc, string>): Promise<string[]> {
  const keys = await table.orderBy('category').uniqueKeys();
  return keys.filter((k): k is string => typeof k === 'string');
}

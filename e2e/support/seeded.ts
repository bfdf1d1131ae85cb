import type { JsonValue } from '../../shared/json';
import { demoProducts } from '../../server/seed';

/** A product of the seeded demo catalog, as every test server starts with it. */
export interface SeededProduct {
  id: string;
  name: string;
  category: string;
  price: number;
  stock: number;
  rating: number;
}

const text = (v: JsonValue | undefined): string => (typeof v === 'string' ? v : '');
const num = (v: JsonValue | undefined): number => (typeof v === 'number' ? v : Number.NaN);

/** The 2,000 seeded products (server/seed.ts), in id order. */
export const SEEDED: readonly SeededProduct[] = demoProducts(2000).map((p) => ({
  id: p.id,
  name: text(p['name']),
  category: text(p['category']),
  price: num(p['price']),
  stock: num(p['stock']),
  rating: num(p['rating']),
}));

/** The `skip`-th seeded product that passes `test`. */
export function seededProduct(test: (p: SeededProduct) => boolean, skip = 0): SeededProduct {
  const found = SEEDED.filter(test)[skip];
  if (!found) throw new Error('no seeded product fits');
  return found;
}

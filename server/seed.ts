import type { Doc } from '../shared/json';
import type { Store } from './store/store';

const CATEGORIES = ['Books', 'Kitchen', 'Garden', 'Toys', 'Music', 'Outdoor', 'Office', 'Beauty', 'Tools', 'Games'];
const ADJECTIVES = [
  'Classic',
  'Compact',
  'Deluxe',
  'Eco',
  'Handmade',
  'Modern',
  'Rustic',
  'Smart',
  'Travel',
  'Vintage',
];
const NOUNS = [
  'Lamp',
  'Kettle',
  'Backpack',
  'Notebook',
  'Speaker',
  'Planter',
  'Puzzle',
  'Mug',
  'Blanket',
  'Clock',
  'Knife',
  'Chair',
];

/** mulberry32: a small seeded PRNG, so every fresh install gets the same catalog. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function demoProducts(count: number): Doc[] {
  const random = prng(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  return Array.from({ length: count }, (_, i) => ({
    id: `p${String(i + 1).padStart(5, '0')}`,
    name: `${pick(ADJECTIVES)} ${pick(NOUNS)} ${i + 1}`,
    category: pick(CATEGORIES),
    price: Math.round((2 + random() * 198) * 100) / 100,
    stock: Math.floor(random() * 50),
    rating: Math.round(random() * 50) / 10,
  }));
}

/** Seeds the demo catalog and a welcome note into an empty store; does nothing otherwise. */
export function seedDemoData(store: Store, now: number): number {
  if (store.meta().headLsn > 0) return 0;
  const products = demoProducts(2000);
  store.transact((tx) => {
    for (const doc of products) tx.append({ collection: 'products', id: doc.id, doc, owner: null }, null, now);
    const note = { id: 'welcome', text: 'Welcome to Tideline: edit me in two tabs.', createdAt: now };
    tx.append({ collection: 'notes', id: note.id, doc: note, owner: null }, null, now);
  });
  return products.length + 1;
}

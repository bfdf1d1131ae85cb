import { TidelineError } from '../shared/errors';
import type { Doc } from '../shared/json';
import type { AppSchema } from '../shared/schema/define-schema';
import { isOwnedBy, ownerPrefix } from '../shared/schema/owned-id';
import type { AsyncStore } from './store/async-store';
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

/** One document written into an empty store at first start; `owner` only for owner-only collections. */
export interface SeedWrite {
  collection: string;
  doc: Doc;
  owner?: string | null;
}

/** Documents for a new data directory, or a function that makes them (it gets the current time). */
export type Seed = readonly SeedWrite[] | ((now: number) => readonly SeedWrite[]);

/** The storefront's demo data: the catalog and a welcome note. Only for the storefront schema (`npm start`). */
export function demoSeed(now: number): SeedWrite[] {
  const products = demoProducts(2000).map((doc) => ({ collection: 'products', doc }));
  const note = { id: 'welcome', text: 'Welcome to Tideline: edit me in two tabs.', createdAt: now };
  return [...products, { collection: 'notes', doc: note }];
}

/**
 * Writes `seed` into an empty store (head 0) and returns how many documents
 * it wrote; does nothing to a store that has ever had a change. Each document
 * must belong to a collection of `schema` and pass its document schema, so a
 * seed cannot plant data that the start-up check would then refuse.
 */
export function seedEmptyStore(store: Store, schema: AppSchema, seed: Seed, now: number): number {
  if (store.meta().headLsn > 0) return 0;
  const writes = checkedSeed(schema, seed, now);
  if (writes.length === 0) return 0;
  store.transact((tx) => {
    for (const w of writes)
      tx.append({ collection: w.collection, id: w.doc.id, doc: w.doc, owner: w.owner ?? null }, null, now);
  });
  return writes.length;
}

/** Thrown inside the seed's transaction to roll it back: another node wrote first. */
class NotEmpty extends Error {}

/**
 * `seedEmptyStore` on an async store that other nodes may write at the same
 * time (PostgreSQL): the seed commits only if its first change takes LSN 1,
 * so of several nodes starting together on an empty store one seeds it, and
 * the others roll back and write nothing.
 */
export async function seedEmptyAsyncStore(
  store: Pick<AsyncStore, 'meta' | 'transact'>,
  schema: AppSchema,
  seed: Seed,
  now: number,
): Promise<number> {
  if ((await store.meta()).headLsn > 0) return 0;
  const writes = checkedSeed(schema, seed, now);
  if (writes.length === 0) return 0;
  try {
    await store.transact(async (tx) => {
      const changes = await Promise.all(
        writes.map((w) =>
          tx.append({ collection: w.collection, id: w.doc.id, doc: w.doc, owner: w.owner ?? null }, null, now),
        ),
      );
      if (changes[0]?.lsn !== 1) throw new NotEmpty();
    });
  } catch (err) {
    if (err instanceof NotEmpty) return 0;
    throw err;
  }
  return writes.length;
}

/** The seed's documents, each checked against the schema (see seedEmptyStore). */
function checkedSeed(schema: AppSchema, seed: Seed, now: number): readonly SeedWrite[] {
  const writes = typeof seed === 'function' ? seed(now) : seed;
  for (const w of writes) {
    const def = schema.collections[w.collection];
    if (!def) {
      throw new TidelineError(
        'BAD_REQUEST',
        `seed document ${w.collection}/${w.doc.id}: no collection '${w.collection}' in schema '${schema.name}'`,
      );
    }
    if (def.read === 'owner' && (typeof w.owner !== 'string' || !isOwnedBy(w.doc.id, w.owner))) {
      // The rule every write to an owner-only collection obeys (ownedId), so a seed cannot squat an id either.
      throw new TidelineError(
        'BAD_REQUEST',
        typeof w.owner === 'string'
          ? `seed document ${w.collection}/${w.doc.id}: its id must start with its owner's prefix '${ownerPrefix(w.owner)}' (ownedId)`
          : `seed document ${w.collection}/${w.doc.id}: '${w.collection}' is owner-only, so the seed must name its owner`,
      );
    }
    const parsed = def.doc?.safeParse(w.doc);
    if (parsed && !parsed.success) {
      throw new TidelineError(
        'INVALID_DOCUMENT',
        `seed document ${w.collection}/${w.doc.id} does not match its collection's schema: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
      );
    }
  }
  return writes;
}

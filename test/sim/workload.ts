import { cartIdOf } from '../../shared/apps/store';
import type { JsonValue } from '../../shared/json';
import { ownedId } from '../../shared/schema/owned-id';
import type { Rng } from './random';

export const NOTE_IDS = ['n0', 'n1', 'n2', 'n3'];
/**
 * Increment-only counters: the workload only ever `inc`s them by positive
 * amounts and nothing else writes them, so no view of them may ever go down.
 */
export const COUNTERS: ReadonlyArray<{ collection: 'notes'; id: string; field: 'n' }> = [
  { collection: 'notes', id: 'counter', field: 'n' },
  { collection: 'notes', id: 'counter-b', field: 'n' },
];
export const PRODUCTS: ReadonlyArray<{ id: string; price: number }> = [
  { id: 'p0', price: 3 },
  { id: 'p1', price: 7.5 },
  { id: 'p2', price: 12 },
];

const OPS = {
  notePut: 14,
  notePatch: 12,
  noteDelete: 4,
  inc: 20,
  itemPut: 10,
  itemPatch: 6,
  itemDelete: 4,
  checkout: 20,
  cartPut: 5,
  restock: 6,
} as const;

export interface Op {
  name: string;
  args: JsonValue;
}

/**
 * One random mutation of a client. Ids come from small pools so that clients
 * collide: the same notes, the shared counter, a few products with little
 * stock, and a few `items` ids per user (in the user's id namespace).
 */
export function randomOp(rng: Rng, client: string, userId: string, staff: boolean, k: number, now: number): Op {
  const tag = `${client}-${k}`;
  // Owner-only ids lie in the owner's namespace: two users can never race for one (ownedId).
  const itemId = ownedId(userId, `i${rng.int(0, 2)}`);
  const op = rng.weighted(OPS);
  switch (op === 'restock' && !staff ? 'inc' : op) {
    case 'notePut':
      return { name: 'put', args: { collection: 'notes', doc: { id: rng.pick(NOTE_IDS), text: tag, createdAt: now } } };
    case 'notePatch':
      return {
        name: 'patch',
        args: { collection: 'notes', id: rng.pick(NOTE_IDS), set: { [rng.pick(['a', 'b', 'c'])]: tag } },
      };
    case 'noteDelete':
      return { name: 'delete', args: { collection: 'notes', id: rng.pick(NOTE_IDS) } };
    case 'inc':
      return { name: 'inc', args: { ...rng.pick(COUNTERS), by: rng.int(1, 5) } };
    case 'itemPut':
      return { name: 'put', args: { collection: 'items', doc: { id: itemId, v: tag } } };
    case 'itemPatch':
      return { name: 'patch', args: { collection: 'items', id: itemId, set: { w: tag } } };
    case 'itemDelete':
      return { name: 'delete', args: { collection: 'items', id: itemId } };
    case 'checkout': {
      const lines = Array.from({ length: rng.int(1, 2) }, () => ({
        productId: rng.pick(PRODUCTS).id,
        qty: rng.int(1, 2),
      }));
      const args: { [key: string]: JsonValue } = { orderId: ownedId(userId, `o-${tag}`), lines, at: now };
      if (rng.chance(0.3)) args['cartId'] = cartIdOf(userId);
      return { name: 'checkout', args };
    }
    case 'restock':
      return { name: 'inc', args: { collection: 'products', id: rng.pick(PRODUCTS).id, field: 'stock', by: 1 } };
    case 'cartPut':
      return {
        name: 'put',
        args: {
          collection: 'carts',
          doc: { id: cartIdOf(userId), lines: [{ productId: rng.pick(PRODUCTS).id, qty: 1 }] },
        },
      };
  }
}

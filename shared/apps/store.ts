import { z } from 'zod';
import { TidelineError } from '../errors';
import type { Doc } from '../json';
import { defineMutator } from '../mutators/types';
import { defineCollection, defineSchema } from '../schema/define-schema';
import { ownedId } from '../schema/owned-id';

/**
 * The reference app's schema: a shared notes board (the live demo page), and
 * the storefront's products, carts and orders. The server and every client
 * load this same module, so `checkout` runs identically on both sides.
 */

/** A product; other fields are accepted (a document is validated, not stripped) but not typed. */
const productDoc = z.object({
  id: z.string(),
  name: z.string().min(1).max(200),
  category: z.string().min(1).max(64),
  price: z.number().min(0, 'price cannot be negative'),
  stock: z.number().int('stock is a whole number'),
  rating: z.number().min(0).max(5),
});

export type Product = z.output<typeof productDoc>;

const checkoutArgs = z.object({
  orderId: z.string().min(1).max(128),
  lines: z
    .array(z.object({ productId: z.string().min(1).max(256), qty: z.number().int().min(1).max(1000) }))
    .min(1)
    .max(100),
  /** When the shopper checked out; from the client, so both sides compute the same order. */
  at: z.number().int().nonnegative(),
  cartId: z.string().min(1).max(256).optional(),
});

const productName = (p: Doc): string => (typeof p['name'] === 'string' ? p['name'] : p.id);

/** One order: decrement each line's stock (the rule keeps it >= 0), record the order, empty the cart. */
export const checkout = defineMutator({
  name: 'checkout',
  args: checkoutArgs,
  run(tx, { orderId, lines, at, cartId }, ctx) {
    if (tx.get('orders', orderId)) throw new TidelineError('REJECTED', `order ${orderId} already exists`);
    let total = 0;
    const orderLines = [];
    for (const { productId, qty } of lines) {
      const product = tx.get('products', productId);
      if (!product) throw new TidelineError('NOT_FOUND', `product ${productId} does not exist`);
      const stock = Number(product['stock']);
      if (stock < qty) {
        throw new TidelineError('REJECTED', `${productName(product)}: only ${stock} left, ${qty} wanted`);
      }
      const price = Number(product['price']);
      tx.put('products', { ...product, stock: stock - qty });
      orderLines.push({ productId, name: productName(product), qty, price });
      total += price * qty;
    }
    tx.put('orders', {
      id: orderId,
      owner: ctx.userId,
      lines: orderLines,
      total: Math.round(total * 100) / 100,
      status: 'confirmed',
      createdAt: at,
    });
    if (cartId !== undefined) tx.delete('carts', cartId);
  },
});

const cartLine = z.object({
  productId: z.string().min(1).max(256),
  qty: z
    .number()
    .int('a quantity is a whole number')
    .min(1, 'a quantity is at least 1')
    .max(99, 'at most 99 of one product'),
});

/** The user's one cart document, in the user's id namespace (no one else can take it). */
export const cartIdOf = (userId: string): string => ownedId(userId, 'cart');

/** A new order's id, in the user's id namespace; `key` is unique per order (the client app uses a random UUID). */
export const orderIdOf = (userId: string, key: string): string => ownedId(userId, `order/${key}`);

const linesOf = (cart: Doc | undefined): Array<{ productId: string; qty: number }> => {
  const parsed = z.array(cartLine).safeParse(cart?.['lines'] ?? []);
  return parsed.success ? parsed.data : [];
};

/** Put a quantity of a product in the cart (added to what is there). */
export const cartAdd = defineMutator({
  name: 'cartAdd',
  args: cartLine,
  run(tx, { productId, qty }, ctx) {
    if (!tx.get('products', productId)) throw new TidelineError('NOT_FOUND', `product ${productId} does not exist`);
    const id = cartIdOf(ctx.userId);
    const lines = linesOf(tx.get('carts', id));
    const line = lines.find((l) => l.productId === productId);
    const total = (line?.qty ?? 0) + qty;
    if (total > 99) throw new TidelineError('INVALID_ARGS', 'at most 99 of one product');
    const next = line
      ? lines.map((l) => (l.productId === productId ? { productId, qty: total } : l))
      : [...lines, { productId, qty }];
    tx.put('carts', { id, owner: ctx.userId, lines: next });
  },
});

/** Set a line's quantity; 0 removes it. */
export const cartSet = defineMutator({
  name: 'cartSet',
  args: z.object({
    productId: z.string().min(1).max(256),
    qty: z
      .number()
      .int('a quantity is a whole number')
      .min(0, 'a quantity cannot be negative')
      .max(99, 'at most 99 of one product'),
  }),
  run(tx, { productId, qty }, ctx) {
    if (qty > 0 && !tx.get('products', productId)) {
      throw new TidelineError('NOT_FOUND', `product ${productId} does not exist`);
    }
    const id = cartIdOf(ctx.userId);
    const lines = linesOf(tx.get('carts', id));
    const others = lines.filter((l) => l.productId !== productId);
    const next =
      qty === 0
        ? others
        : lines.some((l) => l.productId === productId)
          ? lines.map((l) => (l.productId === productId ? { productId, qty } : l))
          : [...lines, { productId, qty }];
    tx.put('carts', { id, owner: ctx.userId, lines: next });
  },
});

export const storeSchema = defineSchema({
  name: 'tideline-store',
  version: 2,
  collections: {
    // Public and writable by anyone, so bounded per user: one user cannot fill the board (or the disk).
    notes: { read: 'public', write: 'any', indexes: ['createdAt'], quota: { docs: 10_000, bytes: 4 * 1024 * 1024 } },
    products: defineCollection({
      read: 'public',
      write: { role: 'staff' },
      // 'category+price': a category's products by price (filter and order) from one index.
      indexes: ['name', 'category', 'price', 'rating', 'stock', 'category+price'],
      doc: productDoc,
      rules: [{ name: 'stock-non-negative', check: (p) => p.stock >= 0, message: 'stock cannot go below 0' }],
    }),
    carts: { read: 'owner', write: 'owner', indexes: ['owner'] },
    orders: { read: 'owner', readRoles: ['staff'], write: 'none', indexes: ['createdAt', 'owner'] },
    /** Owner-only scratch documents; the bench's ingest clients write here. */
    items: { read: 'owner', write: 'owner', indexes: [] },
  },
  mutators: { checkout, cartAdd, cartSet },
});

export type StoreSchema = typeof storeSchema;

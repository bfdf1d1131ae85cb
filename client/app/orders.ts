import { z } from 'zod';
import type { Doc, JsonValue } from 'tideline/schema';
import type { OutboxEntry, RejectionRecord } from 'tideline/client';

/**
 * An order as the shopper sees it, with its state:
 * - `pending`: its checkout is still in this device's outbox (not yet
 *   answered by the server), whether or not it has synced before;
 * - `confirmed`: the server committed it (the order document, no outbox entry);
 * - `rejected`: the server refused the checkout. The order document was rolled
 *   back, so it is rebuilt from the rejected mutation, with the reason.
 */
export type OrderState = 'pending' | 'confirmed' | 'rejected';

export interface OrderLine {
  productId: string;
  name: string;
  qty: number;
  /** Unit price; null when neither the order nor the replica knows it. */
  price: number | null;
}

export interface OrderView {
  id: string;
  owner: string | null;
  lines: OrderLine[];
  total: number | null;
  createdAt: number;
  state: OrderState;
  /** Why the server refused it (rejected), or why it will probably refuse it (pending). */
  reason: string | null;
}

const checkoutArgs = z.object({
  orderId: z.string(),
  lines: z.array(z.object({ productId: z.string(), qty: z.number() })),
  at: z.number(),
});
type CheckoutArgs = z.infer<typeof checkoutArgs>;

const orderLines = z.array(
  z.object({ productId: z.string(), name: z.string().optional(), qty: z.number(), price: z.number().optional() }),
);

/** The checkout arguments of a mutation, or null for any other mutation. */
export function checkoutOf(name: string, args: JsonValue): CheckoutArgs | null {
  if (name !== 'checkout') return null;
  const parsed = checkoutArgs.safeParse(args);
  return parsed.success ? parsed.data : null;
}

/** The product ids the pending and rejected checkouts name, to look up their names and prices. */
export function productIdsOf(outbox: readonly OutboxEntry[], rejections: readonly RejectionRecord[]): string[] {
  const ids = new Set<string>();
  for (const { name, args } of [...outbox, ...rejections]) {
    for (const line of checkoutOf(name, args)?.lines ?? []) ids.add(line.productId);
  }
  return [...ids];
}

function fromArgs(args: CheckoutArgs, products: ReadonlyMap<string, Doc>): Pick<OrderView, 'lines' | 'total'> {
  const lines = args.lines.map(({ productId, qty }): OrderLine => {
    const p = products.get(productId);
    return {
      productId,
      qty,
      name: typeof p?.['name'] === 'string' ? p['name'] : productId,
      price: typeof p?.['price'] === 'number' ? p['price'] : null,
    };
  });
  const total = lines.every((l) => l.price !== null)
    ? Math.round(lines.reduce((sum, l) => sum + (l.price ?? 0) * l.qty, 0) * 100) / 100
    : null;
  return { lines, total };
}

function fromDoc(doc: Doc): Pick<OrderView, 'lines' | 'total' | 'owner' | 'createdAt'> {
  const parsed = orderLines.safeParse(doc['lines']);
  const lines = (parsed.success ? parsed.data : []).map((l): OrderLine => ({
    productId: l.productId,
    name: l.name ?? l.productId,
    qty: l.qty,
    price: l.price ?? null,
  }));
  return {
    lines,
    total: typeof doc['total'] === 'number' ? doc['total'] : null,
    owner: typeof doc['owner'] === 'string' ? doc['owner'] : null,
    createdAt: typeof doc['createdAt'] === 'number' ? doc['createdAt'] : 0,
  };
}

/**
 * Merges the order documents of the replica, the checkouts waiting in the
 * outbox and the rejected ones into one list, newest first.
 */
export function orderViews(
  orders: readonly Doc[],
  outbox: readonly OutboxEntry[],
  rejections: readonly RejectionRecord[],
  products: ReadonlyMap<string, Doc>,
  userId: string,
): OrderView[] {
  const pending = new Map<string, CheckoutArgs>();
  for (const e of outbox) {
    const args = checkoutOf(e.name, e.args);
    if (args) pending.set(args.orderId, args);
  }
  const views = new Map<string, OrderView>();
  for (const doc of orders) {
    views.set(doc.id, {
      id: doc.id,
      ...fromDoc(doc),
      state: pending.has(doc.id) ? 'pending' : 'confirmed',
      reason: null,
    });
  }
  for (const [id, args] of pending) {
    if (views.has(id)) continue;
    // Queued, but its local run failed (the replica already says no): the server has the last word.
    views.set(id, {
      id,
      owner: userId,
      ...fromArgs(args, products),
      createdAt: args.at,
      state: 'pending',
      reason: 'This device expects it to be refused (not enough stock here); the server decides.',
    });
  }
  for (const r of rejections) {
    const args = checkoutOf(r.name, r.args);
    if (!args || views.has(args.orderId)) continue;
    views.set(args.orderId, {
      id: args.orderId,
      owner: userId,
      ...fromArgs(args, products),
      createdAt: args.at,
      state: 'rejected',
      reason: r.error.message,
    });
  }
  return [...views.values()].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? -1 : 1));
}

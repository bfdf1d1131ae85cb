import { describe, expect, it } from 'vitest';
import type { Doc } from 'tideline/schema';
import type { OutboxEntry, RejectionRecord } from 'tideline/client';
import { orderViews, productIdsOf } from './orders';

const lamp: Doc = { id: 'p1', name: 'Smart Lamp 1', price: 10, stock: 3 };
const mug: Doc = { id: 'p2', name: 'Eco Mug 2', price: 2.5, stock: 0 };
const products = new Map([
  [lamp.id, lamp],
  [mug.id, mug],
]);

const checkout = (seq: number, orderId: string, at: number, lines = [{ productId: 'p1', qty: 2 }]): OutboxEntry => ({
  seq,
  name: 'checkout',
  args: { orderId, lines, at, cartId: 'ann/cart' },
  reads: [],
  writes: [],
});

const orderDoc = (id: string, at: number): Doc => ({
  id,
  owner: 'ann',
  lines: [{ productId: 'p1', name: 'Smart Lamp 1', qty: 2, price: 10 }],
  total: 20,
  status: 'confirmed',
  createdAt: at,
});

describe('orderViews', () => {
  it('a synced order with no outbox entry is confirmed; one whose checkout is queued is pending', () => {
    const views = orderViews([orderDoc('o1', 1), orderDoc('o2', 2)], [checkout(5, 'o2', 2)], [], products, 'ann');
    expect(views.map((v) => [v.id, v.state])).toEqual([
      ['o2', 'pending'],
      ['o1', 'confirmed'],
    ]);
    expect(views[1]).toEqual({
      id: 'o1',
      owner: 'ann',
      lines: [{ productId: 'p1', name: 'Smart Lamp 1', qty: 2, price: 10 }],
      total: 20,
      createdAt: 1,
      state: 'confirmed',
      reason: null,
    });
  });

  it('a queued checkout that could not apply here is pending, rebuilt from its arguments', () => {
    const [view] = orderViews([], [checkout(3, 'o3', 7, [{ productId: 'p2', qty: 1 }])], [], products, 'ann');
    expect(view).toEqual({
      id: 'o3',
      owner: 'ann',
      lines: [{ productId: 'p2', name: 'Eco Mug 2', qty: 1, price: 2.5 }],
      total: 2.5,
      createdAt: 7,
      state: 'pending',
      reason: 'This device expects it to be refused (not enough stock here); the server decides.',
    });
  });

  it('a rejected checkout is listed with the server reason', () => {
    const rejection: RejectionRecord = {
      seq: 4,
      name: 'checkout',
      args: { orderId: 'o4', lines: [{ productId: 'p1', qty: 9 }], at: 9 },
      error: { code: 'REJECTED', message: 'Smart Lamp 1: only 3 left, 9 wanted', retryable: false },
      at: 10,
    };
    const other: RejectionRecord = { ...rejection, seq: 6, name: 'cartAdd', args: { productId: 'p1', qty: 1 } };
    const views = orderViews([orderDoc('o1', 1)], [], [rejection, other], products, 'ann');
    expect(views.map((v) => [v.id, v.state, v.reason])).toEqual([
      ['o4', 'rejected', 'Smart Lamp 1: only 3 left, 9 wanted'],
      ['o1', 'confirmed', null],
    ]);
    expect(productIdsOf([], [rejection, other])).toEqual(['p1']);
  });

  it('unknown products keep their id and leave the total open', () => {
    const [view] = orderViews([], [checkout(1, 'o5', 1, [{ productId: 'gone', qty: 1 }])], [], products, 'ann');
    expect(view?.lines[0]).toEqual({ productId: 'gone', name: 'gone', qty: 1, price: null });
    expect(view?.total).toBeNull();
  });
});

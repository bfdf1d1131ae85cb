const INCS = 100;
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RejectionRecord } from '../../client/sync/local-store';
import { openClient } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { readServerState } from '../support/server-state';
import { waitFor } from '../support/wait';

describe('conflicts: server order decides, intent is replayed', () => {
  let server: ServerProcess;
  const clients: NodeClient[] = [];
  const live = async (...cs: NodeClient[]): Promise<void> =>
    waitFor('clients live', () => cs.every((c) => c.status().state === 'live'));
  const drained = async (...cs: NodeClient[]): Promise<void> =>
    waitFor('clients drained', () => cs.every((c) => c.status().pending === 0 && c.status().state === 'live'));

  beforeAll(async () => {
    server = await startServerProcess();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });

  it('concurrent patches of different fields of one document keep both', async () => {
    const a = await openClient([server.url], 'patch-a');
    const b = await openClient([server.url], 'patch-b');
    clients.push(a, b);
    await live(a, b);
    await a.mutate.put({ collection: 'notes', doc: { id: 'shared', title: 't0', body: 'b0', createdAt: 0 } });
    await waitFor('b has the note', async () => (await b.collection('notes').get('shared')) !== undefined);
    a.engine.stop();
    b.engine.stop();
    await a.mutate.patch({ collection: 'notes', id: 'shared', set: { title: 'from a' } });
    await b.mutate.patch({ collection: 'notes', id: 'shared', set: { body: 'from b' } });
    await Promise.all([a.engine.start(), b.engine.start()]);
    await drained(a, b);
    const expected = { id: 'shared', title: 'from a', body: 'from b', createdAt: 0 };
    expect(readServerState(server.dataDir).docs['notes']?.['shared']).toEqual(expected);
    await waitFor('both converge', async () => {
      const [da, db] = await Promise.all([a.collection('notes').get('shared'), b.collection('notes').get('shared')]);
      return JSON.stringify(da) === JSON.stringify(expected) && JSON.stringify(db) === JSON.stringify(expected);
    });
  });

  it('10 clients doing 100 inc each end at the exact sum', async () => {
    const seeder = await openClient([server.url], 'counter-seeder');
    clients.push(seeder);
    await live(seeder);
    await seeder.mutate.put({ collection: 'notes', doc: { id: 'counter', count: 0, createdAt: 0 } });
    await drained(seeder);
    const incs = await Promise.all(Array.from({ length: 10 }, (_, i) => openClient([server.url], `inc-${i}`)));
    clients.push(...incs);
    await live(...incs);
    await waitFor('all see the counter', async () =>
      (await Promise.all(incs.map((c) => c.collection('notes').get('counter')))).every((d) => d !== undefined),
    );
    await Promise.all(
      incs.map(async (c) => {
        for (let i = 0; i < INCS; i++)
          await c.mutate.inc({ collection: 'notes', id: 'counter', field: 'count', by: 1 });
      }),
    );
    await drained(...incs);
    expect(readServerState(server.dataDir).docs['notes']?.['counter']?.['count']).toBe(10 * INCS);
    await waitFor('every client shows 1000', async () =>
      (await Promise.all(incs.map((c) => c.collection('notes').get('counter')))).every(
        (d) => d?.['count'] === 10 * INCS,
      ),
    );
  });

  it('two clients buy the last unit: one commits, the other is rejected and rolls back', async () => {
    const staff = await openClient([server.url], 'staff', { roles: ['staff'] });
    clients.push(staff);
    await live(staff);
    const product = { id: 'last-one', name: 'Last One', category: 'Toys', price: 10, stock: 1, rating: 4 };
    await staff.mutate.put({ collection: 'products', doc: product });
    await drained(staff);
    const x = await openClient([server.url], 'buyer-x');
    const y = await openClient([server.url], 'buyer-y');
    clients.push(x, y);
    await live(x, y);
    await waitFor('buyers see stock 1', async () =>
      (await Promise.all([x, y].map((c) => c.collection('products').get('last-one')))).every((d) => d?.['stock'] === 1),
    );
    const rejections: RejectionRecord[] = [];
    for (const c of [x, y]) {
      c.on((e) => {
        if (e.type === 'rejected') rejections.push(e.rejection);
      });
    }
    x.engine.stop();
    y.engine.stop();
    const line = [{ productId: 'last-one', qty: 1 }];
    await x.mutate.checkout({ orderId: 'buyer-x/order-x', lines: line, at: 1 });
    await y.mutate.checkout({ orderId: 'buyer-y/order-y', lines: line, at: 2 });
    // Local first: both see their own order and stock 0 at once.
    expect((await x.collection('orders').get('buyer-x/order-x'))?.['status']).toBe('confirmed');
    expect((await y.collection('products').get('last-one'))?.['stock']).toBe(0);
    await Promise.all([x.engine.start(), y.engine.start()]);
    await drained(x, y);

    const state = readServerState(server.dataDir);
    expect(state.docs['products']?.['last-one']?.['stock']).toBe(0);
    // Whichever checkout reached the primary first won; exactly its order exists, as the mutator wrote it.
    const xWon = state.docs['orders']?.['buyer-x/order-x'] !== undefined;
    const [winnerOrder, winnerUser, winnerAt] = xWon
      ? ['buyer-x/order-x', 'buyer-x', 1]
      : ['buyer-y/order-y', 'buyer-y', 2];
    const [loser, loserOrder, loserAt] = xWon ? [y, 'buyer-y/order-y', 2] : [x, 'buyer-x/order-x', 1];
    const orders = Object.keys(state.docs['orders'] ?? {}).filter(
      (id) => id === 'buyer-x/order-x' || id === 'buyer-y/order-y',
    );
    expect(orders).toEqual([winnerOrder]);
    expect(state.docs['orders']?.[winnerOrder]).toEqual({
      id: winnerOrder,
      owner: winnerUser,
      lines: [{ productId: 'last-one', name: 'Last One', qty: 1, price: 10 }],
      total: 10,
      status: 'confirmed',
      createdAt: winnerAt,
    });
    expect(rejections).toEqual([
      {
        seq: 1,
        name: 'checkout',
        args: { orderId: loserOrder, lines: line, at: loserAt },
        error: { code: 'REJECTED', message: 'Last One: only 0 left, 1 wanted', retryable: false },
        at: expect.any(Number) as number,
      },
    ]);
    expect(await loser.collection('orders').get(loserOrder)).toBeUndefined();
    expect((await loser.collection('products').get('last-one'))?.['stock']).toBe(0);
    expect((await loser.rejections()).map((r) => r.name)).toEqual(['checkout']);
  });
});

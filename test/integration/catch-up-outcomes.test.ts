import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open } from '../../client/lib/open';
import { storeSchema } from '../../shared/apps/store';
import type { Doc } from '../../shared/json';
import { pushAckSchema } from '../../shared/protocol/push';
import { ackLosingTransport } from '../support/ack-recorder';
import { openClient, tokenFor } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { readServerState } from '../support/server-state';
import { waitFor } from '../support/wait';

/** More than one catch-up page (1,000 changes) of other users' writes. */
const BEHIND = 2_500;

/** Writes `n` notes as another user, in pushes of 250, so the log grows past the client's checkpoint. */
async function writeOthers(url: string, n: number, prefix: string): Promise<void> {
  const raw = await rawClient(url);
  try {
    const hello = (await raw.hello(tokenFor(`${prefix}-writer`), `${prefix}-writer-0001`)) as { ok: boolean };
    expect(hello.ok).toBe(true);
    for (let seq = 1; seq <= n; seq += 250) {
      const mutations = Array.from({ length: Math.min(250, n - seq + 1) }, (_, i) => ({
        seq: seq + i,
        name: 'put',
        args: { collection: 'notes', doc: { id: `${prefix}-${seq + i}`, text: 'x', createdAt: seq + i } },
      }));
      const ack = pushAckSchema.parse(await raw.request('push', { mutations }, 20_000));
      if (!ack.ok || ack.results.some((r) => r.status !== 'applied')) throw new Error(JSON.stringify(ack));
    }
  } finally {
    raw.close();
  }
}

describe('catching up more than one page behind, with committed but unacked mutations', () => {
  let server: ServerProcess;
  const clients: NodeClient[] = [];

  beforeAll(async () => {
    server = await startServerProcess();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });

  it('never counts its own committed mutation twice (the visible value never exceeds the final one)', async () => {
    const net = ackLosingTransport();
    const client = await open(storeSchema, {
      servers: [server.url],
      token: tokenFor('counter-user'),
      dbName: `double-count-${process.pid}`,
      connect: net.factory,
      requestTimeoutMs: 5_000,
    });
    clients.push(client);
    await waitFor('live', () => client.status().state === 'live');
    await client.mutate.put({ collection: 'notes', doc: { id: 'counter', count: 0, createdAt: 0 } });
    await waitFor('counter confirmed', () => client.status().pending === 0);

    // The increment commits on the server, and the client never hears of it.
    net.arm();
    await client.mutate.inc({ collection: 'notes', id: 'counter', field: 'count', by: 5 });
    await waitFor('the push committed and the connection was cut', () => net.cut());
    client.engine.stop();
    expect(client.status().pending).toBe(1);
    expect((await client.collection('notes').get('counter'))?.['count']).toBe(5);
    expect(readServerState(server.dataDir).docs['notes']?.['counter']?.['count']).toBe(5);

    await writeOthers(server.url, BEHIND, 'behind');

    // Every state the user could see while catching up: read right after each local apply.
    const seen: Array<Promise<Doc | undefined>> = [];
    client.on((e) => {
      if (e.type === 'applied') seen.push(client.collection('notes').get('counter'));
    });
    net.up();
    await client.engine.start();
    await waitFor('caught up', () => client.status().state === 'live' && client.status().pending === 0, 30_000);
    const values = (await Promise.all(seen)).map((d) => d?.['count']);
    // Several pages were applied one by one (else this test would not reach the bug).
    expect(values.length).toBeGreaterThanOrEqual(3);
    expect(values, 'the count after each local apply').toEqual(values.map(() => 5));
    expect((await client.collection('notes').get('counter'))?.['count']).toBe(5);
    expect(readServerState(server.dataDir).docs['notes']?.['counter']?.['count']).toBe(5);
  });

  it('hears once, with its code, of a rejection it missed before falling more than a page behind', async () => {
    const staff = await openClient([server.url], 'stock-keeper', { roles: ['staff'] });
    clients.push(staff);
    await waitFor('staff live', () => staff.status().state === 'live');
    await staff.mutate.put({
      collection: 'products',
      doc: { id: 'last-one', name: 'Last one', category: 'Toys', price: 10, stock: 1, rating: 4 },
    });
    await waitFor('product confirmed', () => staff.status().pending === 0);

    const net = ackLosingTransport();
    const shopper = await open(storeSchema, {
      servers: [server.url],
      token: tokenFor('late-shopper'),
      dbName: `late-shopper-${process.pid}`,
      connect: net.factory,
      requestTimeoutMs: 5_000,
    });
    clients.push(shopper);
    await waitFor(
      'shopper has the product',
      async () => (await shopper.collection('products').get('last-one')) !== undefined,
    );
    shopper.engine.stop();
    // The shopper checks out the last one offline; meanwhile someone else buys it.
    await shopper.mutate.checkout({
      orderId: 'late-shopper/late-order',
      lines: [{ productId: 'last-one', qty: 1 }],
      at: 1,
    });
    await staff.mutate.patch({ collection: 'products', id: 'last-one', set: { stock: 0 } });
    await waitFor('stock is 0 on the server', () => staff.status().pending === 0);
    net.arm();
    await shopper.engine.start();
    await waitFor('the checkout was refused on the server, unheard', () => net.cut());
    shopper.engine.stop();
    expect(shopper.status().pending).toBe(1);

    await writeOthers(server.url, BEHIND, 'after-refusal');
    const rejected: string[] = [];
    shopper.on((e) => {
      if (e.type === 'rejected') rejected.push(`${e.rejection.seq}:${e.rejection.name}:${e.rejection.error.code}`);
    });
    net.up();
    await shopper.engine.start();
    await waitFor('caught up', () => shopper.status().state === 'live' && shopper.status().pending === 0, 30_000);
    expect(rejected).toEqual(['1:checkout:REJECTED']);
    expect((await shopper.rejections()).map((r) => [r.seq, r.error.code])).toEqual([[1, 'REJECTED']]);
    expect(await shopper.collection('orders').get('late-shopper/late-order')).toBeUndefined();
    expect((await shopper.collection('products').get('last-one'))?.['stock']).toBe(0);
  });
});

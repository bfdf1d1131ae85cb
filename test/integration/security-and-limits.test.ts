import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushAckSchema } from '../../shared/protocol/push';
import { helloAckSchema } from '../../shared/protocol/hello';
import { localDocs, openClient, tokenFor } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import type { RawClient } from '../support/raw-client';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { readServerState } from '../support/server-state';
import { waitFor } from '../support/wait';

/** An array nested `depth` levels deep: valid JSON that a naive recursive check would overflow on. */
function deeplyNested(depth: number): unknown {
  let v: unknown = [];
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

const pushResult = (res: unknown): { code?: string; status?: string } => {
  const ack = pushAckSchema.parse(res);
  if (!ack.ok) return { code: ack.error.code };
  const r = ack.results[0]!;
  return r.status === 'applied'
    ? { status: r.status }
    : { status: r.status, ...(r.error ? { code: r.error.code } : {}) };
};

describe('isolation between users, and bad input', () => {
  let server: ServerProcess;
  const clients: NodeClient[] = [];
  const raws: RawClient[] = [];

  beforeAll(async () => {
    server = await startServerProcess({
      args: ['--no-seed', '--max-doc-bytes', '2048', '--max-mutations-per-push', '50', '--max-message-bytes', '20000'],
    });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const r of raws) r.close();
    await server.stop();
  });

  async function helloed(user: string, clientId: string): Promise<RawClient> {
    const raw = await rawClient(server.url);
    raws.push(raw);
    const ack = helloAckSchema.parse(await raw.hello(tokenFor(user), clientId));
    expect(ack.ok).toBe(true);
    return raw;
  }

  it("a client of user X never receives user Y's owner-only documents", async () => {
    const x = await openClient([server.url], 'user-x');
    const y = await openClient([server.url], 'user-y');
    clients.push(x, y);
    await waitFor('live', () => x.status().state === 'live' && y.status().state === 'live');
    const xRaw = await helloed('user-x', 'raw-x-0001');
    await y.mutate.put({ collection: 'items', doc: { id: 'user-y/secret', owner: 'user-y', text: 'for y only' } });
    await y.mutate.put({ collection: 'notes', doc: { id: 'public-marker', text: 'everyone', createdAt: 1 } });
    await waitFor(
      'x sees the public marker',
      async () => (await x.collection('notes').get('public-marker')) !== undefined,
    );
    await waitFor('raw x sees the public marker', () => JSON.stringify(xRaw.received).includes('public-marker'));
    expect(await localDocs(x, 'items')).toEqual({});
    expect(JSON.stringify(xRaw.received)).not.toContain('user-y/secret');
    expect(Object.keys(await localDocs(y, 'items'))).toEqual(['user-y/secret']);

    // A fresh client of X catching up (snapshot path) does not get it either.
    const x2 = await openClient([server.url], 'user-x');
    clients.push(x2);
    await waitFor('x2 live', () => x2.status().state === 'live');
    expect(await localDocs(x2, 'items')).toEqual({});
    expect((await x2.collection('notes').get('public-marker'))?.['text']).toBe('everyone');
  });

  it("a push that writes another user's document is refused as if it did not exist, and changes nothing", async () => {
    const xRaw = await helloed('user-x', 'raw-x-0002');
    const before = readServerState(server.dataDir);
    const overwrite = await xRaw.request('push', {
      mutations: [
        {
          seq: 1,
          name: 'put',
          args: { collection: 'items', doc: { id: 'user-y/secret', owner: 'user-y', text: 'pwned' } },
        },
      ],
    });
    expect(pushResult(overwrite)).toEqual({ status: 'rejected', code: 'FORBIDDEN' });
    // Any write to an id in another user's namespace is refused, taken or not, so it tells nothing.
    const asMine = await xRaw.request('push', {
      mutations: [{ seq: 2, name: 'put', args: { collection: 'items', doc: { id: 'user-y/secret', text: 'pwned' } } }],
    });
    expect(pushResult(asMine)).toEqual({ status: 'rejected', code: 'FORBIDDEN' });
    const del = await xRaw.request('push', {
      mutations: [{ seq: 3, name: 'delete', args: { collection: 'items', id: 'user-y/secret' } }],
    });
    expect(pushResult(del)).toEqual({ status: 'rejected', code: 'FORBIDDEN' });
    const staffOnly = await xRaw.request('push', {
      mutations: [
        {
          seq: 4,
          name: 'put',
          args: { collection: 'products', doc: { id: 'p', name: 'P', category: 'c', price: 1, stock: 1, rating: 1 } },
        },
      ],
    });
    expect(pushResult(staffOnly)).toEqual({ status: 'rejected', code: 'FORBIDDEN' });
    const after = readServerState(server.dataDir);
    expect(after.docs).toEqual(before.docs);
    // A refusal is recorded as an outcome (for duplicate answers and replicas), never as a document change.
    expect(after.changeCount).toBe(before.changeCount);
  });

  it("answers for another user's document exactly as for a missing one, so its id cannot be probed", async () => {
    const xRaw = await helloed('user-x', 'raw-x-0003');
    const answers: string[] = [];
    let seq = 0;
    for (const id of ['user-y/secret', 'user-y/no-such-item']) {
      for (const [name, args] of [
        ['patch', { collection: 'items', id, set: { text: 'pwned' } }],
        ['inc', { collection: 'items', id, field: 'n', by: 1 }],
      ] as const) {
        seq++;
        const ack = await xRaw.request('push', { mutations: [{ seq, name, args }] });
        // The same answer, the id and the seq aside.
        answers.push(JSON.stringify(pushAckSchema.parse(ack)).replaceAll(id, '<id>').replace(`"seq":${seq}`, ''));
      }
    }
    expect(answers[0]).toContain('NOT_FOUND');
    expect(answers.slice(0, 2)).toEqual(answers.slice(2, 4));
  });

  it('no token or a bad token is UNAUTHORIZED, and so is a push before hello', async () => {
    const raw = await rawClient(server.url);
    raws.push(raw);
    const pushFirst = await raw.request('push', { mutations: [{ seq: 1, name: 'put', args: {} }] });
    expect(pushResult(pushFirst).code).toBe('UNAUTHORIZED');
    for (const token of ['', 'not-a-jwt', tokenFor('x').slice(0, -3) + 'abc', 'a.b.c']) {
      const ack = helloAckSchema.parse(await raw.hello(token, 'bad-token-01'));
      expect(ack.ok ? 'ok' : ack.error.code).toBe('UNAUTHORIZED');
    }
  });

  it('malformed messages, wrong types, unknown mutators and oversized input get their codes; the store is unchanged', async () => {
    const raw = await helloed('mallory', 'mallory-0001');
    const before = readServerState(server.dataDir);
    const helloAgain = helloAckSchema.parse(await raw.hello(tokenFor('mallory'), 'mallory-0001'));
    expect(helloAgain.ok ? 'ok' : helloAgain.error.code).toBe('BAD_REQUEST');

    const cases: Array<[string, unknown, string]> = [
      ['not an object', 'garbage', 'BAD_REQUEST'],
      ['no mutations', {}, 'BAD_REQUEST'],
      ['wrong types', { mutations: [{ seq: 'one', name: 5, args: {} }] }, 'BAD_REQUEST'],
      ['negative seq', { mutations: [{ seq: -1, name: 'put', args: {} }] }, 'BAD_REQUEST'],
      ['deeply nested arguments', { mutations: [{ seq: 1, name: 'put', args: deeplyNested(3000) }] }, 'BAD_REQUEST'],
      [
        'message too large',
        {
          mutations: Array.from({ length: 20 }, (_, i) => ({
            seq: i + 1,
            name: 'put',
            args: { collection: 'notes', doc: { id: `m${i}`, text: 'y'.repeat(1500) } },
          })),
        },
        'TOO_LARGE',
      ],
      [
        'too many mutations',
        { mutations: Array.from({ length: 51 }, (_, i) => ({ seq: i + 1, name: 'inc', args: {} })) },
        'TOO_LARGE',
      ],
    ];
    for (const [what, payload, code] of cases) {
      expect(pushResult(await raw.request('push', payload)).code, what).toBe(code);
    }
    const perMutation: Array<[string, unknown, string]> = [
      ['unknown mutator', { seq: 1, name: 'dropTables', args: {} }, 'UNKNOWN_MUTATOR'],
      [
        'bad args',
        { seq: 2, name: 'inc', args: { collection: 'notes', id: 'x', field: 'n', by: 'lots' } },
        'INVALID_ARGS',
      ],
      ['unknown collection', { seq: 3, name: 'put', args: { collection: 'nope', doc: { id: 'a' } } }, 'BAD_REQUEST'],
      [
        'oversized document',
        { seq: 4, name: 'put', args: { collection: 'notes', doc: { id: 'big', text: 'x'.repeat(4000) } } },
        'TOO_LARGE',
      ],
      [
        'checkout with no lines',
        { seq: 5, name: 'checkout', args: { orderId: 'o', lines: [], at: 1 } },
        'INVALID_ARGS',
      ],
    ];
    for (const [what, mutation, code] of perMutation) {
      expect(pushResult(await raw.request('push', { mutations: [mutation] })), what).toEqual({
        status: 'rejected',
        code,
      });
    }
    // A retry of an answered mutation is a duplicate that reports the first answer.
    const retry = pushResult(await raw.request('push', { mutations: [{ seq: 1, name: 'dropTables', args: {} }] }));
    expect(retry).toEqual({ status: 'duplicate', code: 'UNKNOWN_MUTATOR' });
    // Unknown events and events without an ack are refused without harm.
    raw.socket.emit('dropEverything', { now: true });
    raw.socket.emit('push', { mutations: [] });
    await waitFor('fatal notices', () => raw.received.filter((r) => r.event === 'fatal').length >= 2);

    const after = readServerState(server.dataDir);
    expect(after.docs).toEqual(before.docs);
    // A refusal is recorded as an outcome (for duplicate answers and replicas), never as a document change.
    expect(after.changeCount).toBe(before.changeCount);
    // The server is still up and serving.
    const res = await fetch(`${server.url}/healthz`);
    expect(res.ok).toBe(true);
    const ok = pushResult(
      await raw.request('push', {
        mutations: [{ seq: 6, name: 'put', args: { collection: 'notes', doc: { id: 'fine', createdAt: 1 } } }],
      }),
    );
    expect(ok).toEqual({ status: 'applied' });
  });

  it('staff read every order; shoppers only their own; nobody writes another user’s cart', async () => {
    const staff = await openClient([server.url], 'staff-reader', { roles: ['staff'] });
    const shopper = await openClient([server.url], 'shopper-a');
    const other = await openClient([server.url], 'shopper-b');
    clients.push(staff, shopper, other);
    await waitFor('live', () => [staff, shopper, other].every((c) => c.status().state === 'live'));
    await staff.mutate.put({
      collection: 'products',
      doc: { id: 'sp1', name: 'Staff Pick', category: 'Books', price: 5, stock: 10, rating: 3 },
    });
    await waitFor('shoppers see the product', async () =>
      (await Promise.all([shopper, other].map((c) => c.collection('products').get('sp1')))).every(
        (d) => d !== undefined,
      ),
    );
    await shopper.mutate.cartAdd({ productId: 'sp1', qty: 2 });
    await shopper.mutate.checkout({
      orderId: 'shopper-a/order-a',
      lines: [{ productId: 'sp1', qty: 2 }],
      at: 1,
      cartId: 'shopper-a/cart',
    });
    await other.mutate.checkout({ orderId: 'shopper-b/order-b', lines: [{ productId: 'sp1', qty: 1 }], at: 2 });
    await waitFor('staff sees both orders', async () => Object.keys(await localDocs(staff, 'orders')).length >= 2);
    expect(Object.keys(await localDocs(staff, 'orders')).sort()).toEqual(['shopper-a/order-a', 'shopper-b/order-b']);
    await waitFor('drained', () => shopper.status().pending === 0 && other.status().pending === 0);
    expect(Object.keys(await localDocs(shopper, 'orders'))).toEqual(['shopper-a/order-a']);
    expect(Object.keys(await localDocs(other, 'orders'))).toEqual(['shopper-b/order-b']);
    expect(await localDocs(shopper, 'carts')).toEqual({});
    const fromQuery = await fetch(`${server.url}/query/orders?orderBy=createdAt`, {
      headers: { authorization: `Bearer ${tokenFor('staff-reader', ['staff'])}` },
    });
    expect(((await fromQuery.json()) as { docs: Array<{ id: string }> }).docs.map((d) => d.id)).toEqual([
      'shopper-a/order-a',
      'shopper-b/order-b',
    ]);
    const asShopper = await fetch(`${server.url}/query/orders`, {
      headers: { authorization: `Bearer ${tokenFor('shopper-b')}` },
    });
    expect(((await asShopper.json()) as { docs: Array<{ id: string }> }).docs.map((d) => d.id)).toEqual([
      'shopper-b/order-b',
    ]);
    // Reading all orders does not make them writable.
    await expect(staff.mutate.delete({ collection: 'orders', id: 'shopper-a/order-a' })).rejects.toMatchObject({
      code: 'FORBIDDEN',
    });
    // Their own cart stays writable: the checkout was seq 1.
    expect((await other.mutate.cartSet({ productId: 'sp1', qty: 0 })).seq).toBe(2);
  });

  it('a duplicate push commits nothing new', async () => {
    const raw = await helloed('dup-user', 'dup-client-01');
    const push = {
      mutations: [{ seq: 1, name: 'put', args: { collection: 'notes', doc: { id: 'dup', createdAt: 1 } } }],
    };
    expect(pushResult(await raw.request('push', push))).toEqual({ status: 'applied' });
    const head = readServerState(server.dataDir).headLsn;
    expect(pushResult(await raw.request('push', push))).toEqual({ status: 'duplicate' });
    expect(readServerState(server.dataDir).headLsn).toBe(head);
  });
});

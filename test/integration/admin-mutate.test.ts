import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClient, localDocs } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { removeDir, startServerProcess, tempDataDir, TEST_ADMIN_TOKEN } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { readLogAndDocs, readServerState } from '../support/server-state';
import { waitFor } from '../support/wait';

/** What POST /admin/mutate answers: an outcome, or an error. */
interface MutateAnswer {
  status?: 'applied' | 'duplicate' | 'rejected';
  lsn?: number;
  error?: { code: string; message: string; primary?: string };
}

async function mutate(
  url: string,
  body: unknown,
  options: { key?: string | null; token?: string | null; raw?: string } = {},
): Promise<{ http: number; answer: MutateAnswer }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const token = options.token === undefined ? TEST_ADMIN_TOKEN : options.token;
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  const key = options.key === undefined ? randomUUID() : options.key;
  if (key !== null) headers['idempotency-key'] = key;
  const res = await fetch(`${url}/admin/mutate`, {
    method: 'POST',
    headers,
    body: options.raw ?? JSON.stringify(body),
  });
  return { http: res.status, answer: (await res.json()) as MutateAnswer };
}

const product = (id: string, stock: number): Record<string, unknown> => ({
  id,
  name: `Product ${id}`,
  category: 'tools',
  price: 10,
  stock,
  rating: 4,
});

const changesOf = (dataDir: string, id: string): number =>
  readLogAndDocs(join(dataDir, 'tideline.db')).changes.filter((c) => c.id === id).length;

describe('POST /admin/mutate: server-side writes through the group commit', () => {
  let server: ServerProcess;
  let client: NodeClient;

  beforeAll(async () => {
    server = await startServerProcess();
    client = await openClient([server.url], 'alice');
    await waitFor('client live', () => client.status().state === 'live');
  });
  afterAll(async () => {
    client.close();
    await server.stop();
    removeDir(server.dataDir);
  });

  it('fans a system write out to a live client', async () => {
    const { http, answer } = await mutate(server.url, {
      name: 'put',
      args: { collection: 'products', doc: product('fan-1', 5) },
    });
    expect(http).toBe(200);
    expect(answer).toEqual({ status: 'applied', lsn: expect.any(Number) as number });
    await waitFor(
      'the client has the product',
      async () => (await localDocs(client, 'products'))['fan-1'] !== undefined,
    );
    expect((await localDocs(client, 'products'))['fan-1']).toEqual(product('fan-1', 5));
  });

  it('rejects a write that breaks a rule, with its code, and changes no document', async () => {
    await mutate(server.url, { name: 'put', args: { collection: 'products', doc: product('rule-1', 1) } });
    const before = readServerState(server.dataDir);
    const { http, answer } = await mutate(server.url, {
      name: 'inc',
      args: { collection: 'products', id: 'rule-1', field: 'stock', by: -2 },
    });
    expect(http).toBe(409);
    expect(answer.status).toBe('rejected');
    expect(answer.error?.code).toBe('REJECTED');
    expect(answer.error?.message).toContain('stock cannot go below 0');
    const after = readServerState(server.dataDir);
    expect(after.docs).toEqual(before.docs);
    expect(after.changeCount).toBe(before.changeCount);
  });

  it('commits a retried request once, answering duplicate with the first LSN', async () => {
    await mutate(server.url, { name: 'put', args: { collection: 'products', doc: product('retry-1', 10) } });
    const key = randomUUID();
    const body = { name: 'inc', args: { collection: 'products', id: 'retry-1', field: 'stock', by: 1 } };
    const first = await mutate(server.url, body, { key });
    // Retries, some of them concurrent (they land in one group commit with each other).
    const retries = await Promise.all([1, 2, 3].map(() => mutate(server.url, body, { key })));
    const late = await mutate(server.url, body, { key });
    expect(first).toEqual({ http: 200, answer: { status: 'applied', lsn: expect.any(Number) as number } });
    for (const r of [...retries, late]) {
      expect(r).toEqual({ http: 200, answer: { status: 'duplicate', lsn: first.answer.lsn } });
    }
    const state = readServerState(server.dataDir);
    expect(state.docs['products']?.['retry-1']?.['stock']).toBe(11);
    expect(changesOf(server.dataDir, 'retry-1')).toBe(2); // the put and one inc
  });

  it('answers a retry of a rejected request with its error and status, committing nothing', async () => {
    const key = randomUUID();
    const body = { name: 'inc', args: { collection: 'products', id: 'no-such', field: 'stock', by: 1 } };
    const first = await mutate(server.url, body, { key });
    expect(first.http).toBe(409);
    expect(first.answer.error?.code).toBe('NOT_FOUND');
    await mutate(server.url, { name: 'put', args: { collection: 'products', doc: product('no-such', 1) } });
    // Now the inc would succeed; the key still names the first, rejected, attempt.
    const retry = await mutate(server.url, body, { key });
    expect(retry.http).toBe(409);
    expect(retry.answer).toMatchObject({ status: 'duplicate', error: { code: 'NOT_FOUND' } });
    expect(readServerState(server.dataDir).docs['products']?.['no-such']?.['stock']).toBe(1);
  });

  it('checks access as the user a write runs as: FORBIDDEN for a shopper, applied for staff', async () => {
    const args = { collection: 'products', doc: product('as-user', 3) };
    const shopper = await mutate(server.url, { name: 'put', args, as: { userId: 'bob', roles: [] } });
    expect(shopper.http).toBe(403);
    expect(shopper.answer).toMatchObject({ status: 'rejected', error: { code: 'FORBIDDEN' } });
    expect(readServerState(server.dataDir).docs['products']?.['as-user']).toBeUndefined();
    const staff = await mutate(server.url, { name: 'put', args, as: { userId: 'sam', roles: ['staff'] } });
    expect(staff).toMatchObject({ http: 200, answer: { status: 'applied' } });
  });

  it("runs app mutators as a user: the user's own cart", async () => {
    await mutate(server.url, { name: 'put', args: { collection: 'products', doc: product('cart-p', 3) } });
    const r = await mutate(server.url, {
      name: 'cartAdd',
      args: { productId: 'cart-p', qty: 2 },
      as: { userId: 'alice', roles: [] },
    });
    expect(r).toMatchObject({ http: 200, answer: { status: 'applied' } });
    await waitFor('alice has her cart', async () => (await localDocs(client, 'carts'))['alice/cart'] !== undefined);
    expect((await localDocs(client, 'carts'))['alice/cart']).toEqual({
      id: 'alice/cart',
      owner: 'alice',
      lines: [{ productId: 'cart-p', qty: 2 }],
    });
  });

  it("lets the system write any collection, for the owner a document names, and keeps the schema's checks", async () => {
    // `orders` has write 'none': no client may put one.
    const order = { id: 'alice/sys-order', owner: 'alice', lines: [], total: 0, status: 'confirmed', createdAt: 1 };
    const r = await mutate(server.url, { name: 'put', args: { collection: 'orders', doc: order }, as: 'system' });
    expect(r).toMatchObject({ http: 200, answer: { status: 'applied' } });
    await waitFor(
      'alice has the order',
      async () => (await localDocs(client, 'orders'))['alice/sys-order'] !== undefined,
    );
    const noOwner = await mutate(server.url, {
      name: 'put',
      args: { collection: 'orders', doc: { ...order, id: 'alice/sys-order-2', owner: undefined } },
    });
    expect(noOwner).toMatchObject({ http: 422, answer: { status: 'rejected', error: { code: 'INVALID_DOCUMENT' } } });
    const moved = await mutate(server.url, {
      name: 'put',
      args: { collection: 'orders', doc: { ...order, owner: 'bob' } },
    });
    expect(moved).toMatchObject({ http: 403, answer: { error: { code: 'FORBIDDEN' } } });
    const badDoc = await mutate(server.url, {
      name: 'put',
      args: { collection: 'products', doc: { ...product('sys-bad', 1), price: -1 } },
    });
    expect(badDoc).toMatchObject({ http: 422, answer: { error: { code: 'INVALID_DOCUMENT' } } });
    expect(readServerState(server.dataDir).docs['orders']?.['alice/sys-order']).toEqual(order);
  });

  it('reads owner-only collections in full with the admin token, and not without a token', async () => {
    const order = { id: 'carol/read-order', owner: 'carol', lines: [], total: 0, status: 'confirmed', createdAt: 2 };
    await mutate(server.url, { name: 'put', args: { collection: 'orders', doc: order } });
    const asAdmin = { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } };
    const all = await fetch(`${server.url}/query/orders?ids=carol/read-order,alice/sys-order`, asAdmin);
    expect(((await all.json()) as { docs: Array<{ id: string }> }).docs.map((d) => d.id)).toEqual([
      'carol/read-order',
      'alice/sys-order',
    ]);
    const count = await fetch(`${server.url}/query/orders/count`, asAdmin);
    expect(((await count.json()) as { count: number }).count).toBe(2);
    expect((await fetch(`${server.url}/query/orders?ids=carol/read-order`)).status).toBe(401);
    const wrong = { headers: { authorization: 'Bearer not-the-admin-token' } };
    expect((await fetch(`${server.url}/query/orders/count`, wrong)).status).toBe(401);
  });

  it('answers 400 to bad bodies and a missing Idempotency-Key, and commits nothing', async () => {
    const before = readServerState(server.dataDir).headLsn;
    const put = { name: 'put', args: { collection: 'notes', doc: { id: 'n400', createdAt: 1 } } };
    const bad: Array<Promise<{ http: number; answer: MutateAnswer }>> = [
      mutate(server.url, { args: {} }),
      mutate(server.url, { name: '', args: {} }),
      mutate(server.url, { name: 'put' }),
      mutate(server.url, { ...put, extra: 1 }),
      mutate(server.url, { ...put, as: 'root' }),
      mutate(server.url, { ...put, as: { userId: 'x' } }),
      mutate(server.url, { ...put, as: { userId: '~system', roles: [] } }),
      mutate(server.url, put, { key: null }),
      mutate(server.url, put, { key: 'has spaces' }),
      mutate(server.url, put, { key: 'k'.repeat(256) }),
      mutate(server.url, null, { raw: '{"name": ' }),
    ];
    for (const r of await Promise.all(bad)) {
      expect(r.http).toBe(400);
      expect(r.answer.error?.code).toBe('BAD_REQUEST');
    }
    expect(readServerState(server.dataDir).headLsn).toBe(before);
  });

  it('answers 401 without the admin token', async () => {
    const put = { name: 'put', args: { collection: 'notes', doc: { id: 'n401', createdAt: 1 } } };
    for (const token of [null, 'wrong-token']) {
      const r = await mutate(server.url, put, { token });
      expect(r.http).toBe(401);
      expect(r.answer.error?.code).toBe('UNAUTHORIZED');
    }
    expect(readServerState(server.dataDir).docs['notes']?.['n401']).toBeUndefined();
  });
});

describe('POST /admin/mutate with replicas', () => {
  const dirs: string[] = [];
  const servers: ServerProcess[] = [];
  afterAll(async () => {
    for (const s of servers.reverse()) await s.stop();
    for (const d of dirs) removeDir(d);
  });

  it('answers only once minSyncReplicas replicas have the write; a replica answers 503 NOT_PRIMARY', async () => {
    const primaryDir = tempDataDir();
    const replicaDir = tempDataDir();
    dirs.push(primaryDir, replicaDir);
    const primary = await startServerProcess({ dataDir: primaryDir, args: ['--no-seed', '--min-sync-replicas', '1'] });
    servers.push(primary);
    let answered = false;
    const pending = mutate(primary.url, {
      name: 'put',
      args: { collection: 'notes', doc: { id: 'synced', createdAt: 1 } },
    });
    void pending.then(() => (answered = true));
    // Committed on the primary, but no replica has it yet: no answer.
    await waitFor('the primary committed', () => readServerState(primaryDir).docs['notes']?.['synced'] !== undefined);
    expect(answered).toBe(false);
    const replica = await startServerProcess({ dataDir: replicaDir, args: ['--no-seed', '--primary', primary.url] });
    servers.push(replica);
    const { http, answer } = await pending;
    expect(http).toBe(200);
    expect(answer.status).toBe('applied');
    // The answer came after the replica had the write.
    expect(readLogAndDocs(join(replicaDir, 'tideline.db')).head).toBeGreaterThanOrEqual(answer.lsn ?? Infinity);

    const refused = await mutate(replica.url, {
      name: 'put',
      args: { collection: 'notes', doc: { id: 'r1', createdAt: 1 } },
    });
    expect(refused.http).toBe(503);
    expect(refused.answer.error).toMatchObject({ code: 'NOT_PRIMARY', primary: primary.url });
  });
});

describe('GET /query: paging, count, multi-get', () => {
  let server: ServerProcess;
  const N = 2500;
  const idOf = (i: number): string => `q${String(i).padStart(4, '0')}`;
  const priceOf = (i: number): number => (i * 7) % 100;

  interface Page {
    docs: Array<{ id: string; price: number }>;
    nextCursor: string | null;
    error?: { code: string };
  }
  const get = async <T>(path: string): Promise<{ http: number; body: T }> => {
    const res = await fetch(server.url + path);
    return { http: res.status, body: (await res.json()) as T };
  };

  beforeAll(async () => {
    server = await startServerProcess();
    // Written through the admin API in batches, so the documents come through the same path as any write.
    for (let start = 0; start < N; start += 250) {
      await Promise.all(
        Array.from({ length: Math.min(250, N - start) }, (_, k) =>
          mutate(server.url, { name: 'put', args: { collection: 'products', doc: product(idOf(start + k), 1) } }),
        ),
      );
    }
    await Promise.all(
      Array.from({ length: N }, (_, i) => i)
        .filter((i) => i % 10 === 0)
        .map((i) =>
          mutate(server.url, {
            name: 'patch',
            args: { collection: 'products', id: idOf(i), set: { price: priceOf(i) } },
          }),
        ),
    );
  });
  afterAll(async () => {
    await server.stop();
    removeDir(server.dataDir);
  });

  const pageThrough = async (query: string, limit: number): Promise<string[]> => {
    const ids: string[] = [];
    let cursor: string | null = null;
    for (let n = 0; n < 100; n++) {
      const suffix: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
      const { http, body } = await get<Page>(`/query/products?${query}&limit=${limit}${suffix}`);
      expect(http).toBe(200);
      ids.push(...body.docs.map((d) => d.id));
      if (body.nextCursor === null) return ids;
      cursor = body.nextCursor;
    }
    throw new Error('paging did not end');
  };

  it('pages through 2,500 documents by id, each exactly once, in order', async () => {
    const ids = await pageThrough('orderBy=id', 1000);
    expect(ids).toEqual(Array.from({ length: N }, (_, i) => idOf(i)));
  });

  it('pages on an indexed field with ties, descending', async () => {
    const ids = await pageThrough('orderBy=price&order=desc', 333);
    const price = (i: number): number => (i % 10 === 0 ? priceOf(i) : 10);
    const expected = Array.from({ length: N }, (_, i) => i)
      .sort((a, b) => price(b) - price(a) || a - b)
      .map(idOf);
    expect(ids).toEqual(expected);
  });

  it('counts, with and without filters', async () => {
    expect((await get<{ count: number }>('/query/products/count')).body.count).toBe(N);
    const cheap = Array.from({ length: N }, (_, i) => i).filter((i) => (i % 10 === 0 ? priceOf(i) : 10) < 10);
    const r = await get<{ count: number; headLsn: number }>('/query/products/count?filter=price:lt:10');
    expect(r.body.count).toBe(cheap.length);
    expect(r.body.headLsn).toBeGreaterThan(N);
  });

  it('gets many by id, in the order asked, and looks one up with id:eq', async () => {
    const many = await get<Page>(`/query/products?ids=${idOf(7)},nope,${idOf(3)}&id=${idOf(5)}`);
    expect(many.http).toBe(200);
    expect(many.body.docs.map((d) => d.id)).toEqual([idOf(5), idOf(7), idOf(3)]);
    const one = await get<Page>(`/query/products?filter=id:eq:${idOf(42)}`);
    expect(one.body.docs).toEqual([product(idOf(42), 1)]);
  });

  it('bounds every input: limit, ids, cursor, and refuses a cursor of another order', async () => {
    const tooMany = Array.from({ length: 1001 }, (_, i) => idOf(i)).join(',');
    const first = await get<Page>('/query/products?orderBy=price&limit=5');
    const refusals = [
      '/query/products?limit=1001',
      `/query/products?ids=${tooMany}`,
      `/query/products?ids=${idOf(1)}&filter=price:lt:5`,
      `/query/products?cursor=${'x'.repeat(4097)}`,
      '/query/products?cursor=not-a-cursor',
      `/query/products?orderBy=price&order=desc&cursor=${first.body.nextCursor ?? ''}`,
    ];
    for (const path of refusals) {
      const r = await get<Page>(path);
      expect(r.http, path).toBe(400);
      expect(r.body.error?.code, path).toBe('BAD_REQUEST');
    }
  });
});

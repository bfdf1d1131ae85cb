import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cartIdOf, orderIdOf, storeSchema } from '../../shared/apps/store';
import type { JsonValue } from '../../shared/json';
import { helloAckSchema } from '../../shared/protocol/hello';
import { pushAckSchema } from '../../shared/protocol/push';
import type { MutationResult } from '../../shared/protocol/push';
import { localDocs, openClient, tokenFor } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import type { RawClient } from '../support/raw-client';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { readServerState } from '../support/server-state';
import { waitFor } from '../support/wait';

/**
 * Issue 9, items 4 and 6, against a real server process with the demo
 * schema: per-user quotas (its `notes` allow 10,000 documents and 4 MiB per
 * user) and owner-namespaced ids in owner-only collections.
 */
describe('quotas and owner-namespaced ids', () => {
  let server: ServerProcess;
  const clients: NodeClient[] = [];
  const raws: RawClient[] = [];

  beforeAll(async () => {
    server = await startServerProcess();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const r of raws) r.close();
    await server.stop();
  });

  /** A protocol-level client of `user`; `push` sends mutations with the next seqs and returns their results. */
  async function pusher(user: string, clientId: string) {
    const raw = await rawClient(server.url);
    raws.push(raw);
    expect(helloAckSchema.parse(await raw.hello(tokenFor(user), clientId)).ok).toBe(true);
    let seq = 0;
    return async (mutations: Array<{ name: string; args: JsonValue }>): Promise<MutationResult[]> => {
      const ack = pushAckSchema.parse(
        await raw.request('push', { mutations: mutations.map((m) => ({ seq: ++seq, ...m })) }, 20_000),
      );
      if (!ack.ok) throw new Error(`push refused: ${ack.error.code} ${ack.error.message}`);
      return ack.results;
    };
  }
  const statuses = (results: MutationResult[]): string[] =>
    results.map((r) => (r.status === 'rejected' ? r.error.code : r.status));
  const putNote = (id: string, text = '') => ({
    name: 'put',
    args: { collection: 'notes', doc: { id, text, createdAt: 1 } },
  });

  it("a squatter cannot take another user's cart id: the victim's cart and checkout work", async () => {
    const staff = await openClient([server.url], 'squat-staff', { roles: ['staff'] });
    const victim = await openClient([server.url], 'victim');
    const mallory = await openClient([server.url], 'mallory');
    clients.push(staff, victim, mallory);
    await staff.mutate.put({
      collection: 'products',
      doc: { id: 'squat-p', name: 'Lamp', category: 'Home', price: 4, stock: 5, rating: 4 },
    });
    // The client library refuses at once (the same check runs there)...
    for (const id of ['cart:victim', cartIdOf('victim')]) {
      await expect(mallory.mutate.put({ collection: 'carts', doc: { id, lines: [] } })).rejects.toMatchObject({
        code: 'FORBIDDEN',
        message: expect.stringContaining("must start with the owner's prefix 'mallory/'") as unknown,
      });
    }
    // ...and so does the server, for a client that skips it.
    const push = await pusher('mallory', 'mallory-raw-0001');
    const squats = await push([
      { name: 'put', args: { collection: 'carts', doc: { id: 'cart:victim', lines: [] } } },
      { name: 'put', args: { collection: 'carts', doc: { id: cartIdOf('victim'), lines: [] } } },
      { name: 'put', args: { collection: 'orders', doc: { id: orderIdOf('victim', 'o1'), total: 0 } } },
      { name: 'put', args: { collection: 'items', doc: { id: 'victim/x' } } },
    ]);
    expect(statuses(squats)).toEqual(['FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN']);
    expect(readServerState(server.dataDir).docs['carts']).toBeUndefined();

    await waitFor(
      'victim has the product',
      async () => (await victim.collection('products').get('squat-p')) !== undefined,
    );
    await victim.mutate.cartAdd({ productId: 'squat-p', qty: 2 });
    const orderId = orderIdOf('victim', 'first');
    await victim.mutate.checkout({
      orderId,
      lines: [{ productId: 'squat-p', qty: 2 }],
      at: 1,
      cartId: cartIdOf('victim'),
    });
    await waitFor('victim settled', () => victim.status().pending === 0);
    expect(await victim.rejections()).toEqual([]);
    const state = readServerState(server.dataDir);
    expect(state.docs['orders']?.[orderId]).toMatchObject({ owner: 'victim', total: 8, status: 'confirmed' });
    expect(state.docs['carts']?.[cartIdOf('victim')]).toBeUndefined();
    // The staff view of every order still works.
    await waitFor('staff sees the order', async () => (await localDocs(staff, 'orders'))[orderId] !== undefined);
  });

  it('a user who fills the notes quota (4 MiB) gets QUOTA_EXCEEDED; nothing is stored, a delete frees room', async () => {
    const push = await pusher('hoarder', 'hoarder-raw-0001');
    const big = 'x'.repeat(60_000);
    const results: MutationResult[] = [];
    for (let batch = 0; batch < 5; batch++) {
      results.push(...(await push(Array.from({ length: 15 }, (_, i) => putNote(`big-${batch * 15 + i}`, big)))));
    }
    const applied = results.filter((r) => r.status === 'applied').length;
    // 4 MiB of ~60 KB notes: 69 fit.
    expect(applied).toBe(Math.floor((4 * 1024 * 1024) / (60_000 + JSON.stringify(putNote('big-00').args.doc).length)));
    const refused = results.slice(applied);
    expect(new Set(statuses(refused))).toEqual(new Set(['QUOTA_EXCEEDED']));
    const first = refused[0];
    expect(first?.status === 'rejected' && first.error).toMatchObject({
      message: expect.stringMatching(
        /^notes: 4194304 bytes per user \(you have \d+; this mutation adds \d+\)$/,
      ) as unknown,
      retryable: false,
    });
    const notes = readServerState(server.dataDir).docs['notes'] ?? {};
    expect(Object.keys(notes).filter((id) => id.startsWith('big-'))).toHaveLength(applied);
    expect(notes[`big-${applied}`]).toBeUndefined();

    // Another user is not affected.
    const other = await pusher('bystander', 'bystander-raw-0001');
    expect(statuses(await other([putNote('by-1', big)]))).toEqual(['applied']);
    // Deleting frees room for the hoarder.
    expect(statuses(await push([putNote('one-more', big)]))).toEqual(['QUOTA_EXCEEDED']);
    expect(
      statuses(await push([{ name: 'delete', args: { collection: 'notes', id: 'big-0' } }, putNote('one-more', big)])),
    ).toEqual(['applied', 'applied']);
  });

  it('a user who fills the notes quota (10,000 documents) gets QUOTA_EXCEEDED', async () => {
    const push = await pusher('counter', 'counter-raw-0001');
    for (let batch = 0; batch < 20; batch++) {
      const results = await push(Array.from({ length: 500 }, (_, i) => putNote(`n-${batch * 500 + i}`)));
      expect(statuses(results).every((s) => s === 'applied')).toBe(true);
    }
    const [over] = await push([putNote('n-10000')]);
    expect(over).toMatchObject({
      status: 'rejected',
      error: { code: 'QUOTA_EXCEEDED', message: 'notes: 10000 documents per user (you have 10000)' },
    });
    // Overwriting one's own note adds no document.
    expect(statuses(await push([putNote('n-1', 'edited')]))).toEqual(['applied']);
    expect(storeSchema.collections.notes.quota).toEqual({ docs: 10_000, bytes: 4 * 1024 * 1024 });
  });
});

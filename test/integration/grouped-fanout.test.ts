import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helloAckSchema } from '../../shared/protocol/hello';
import { pushAckSchema } from '../../shared/protocol/push';
import { ownedId } from '../../shared/schema/owned-id';
import { tokenFor } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import type { RawClient } from '../support/raw-client';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { waitFor } from '../support/wait';

/**
 * The grouped fan-out over real sockets: sessions that get the same bytes
 * are sent one broadcast (Socket.IO `nsp.to(ids)`), and still each gets
 * exactly its scope, every live message in LSN order, and the origin only
 * of its own changes.
 */

interface Live {
  from: number;
  to: number;
  changes: Array<{ lsn: number; id: string; owner: string | null; clientId: string | null }>;
}

const liveOf = (c: RawClient): Live[] => c.received.filter((r) => r.event === 'changes').map((r) => r.payload as Live);

describe('grouped fan-out over Socket.IO', () => {
  let server: ServerProcess;
  const clients: RawClient[] = [];

  beforeAll(async () => {
    server = await startServerProcess({ args: ['--no-seed'] });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });

  it('sends every session its scope, in order, whichever group it falls in', async () => {
    const join = async (userId: string, clientId: string, roles: string[] = []): Promise<RawClient> => {
      const c = await rawClient(server.url);
      clients.push(c);
      const ack = helloAckSchema.parse(await c.hello(tokenFor(userId, roles), clientId));
      expect(ack.ok, JSON.stringify(ack)).toBe(true);
      await waitFor(`${clientId} live`, () => liveOf(c).length > 0);
      return c;
    };
    // Six readers of one group (public notes only), two staff readers, and two writers with private items.
    const readers = await Promise.all(Array.from({ length: 6 }, (_, i) => join(`reader-${i}`, `client-reader-${i}`)));
    const staff = await Promise.all([join('sam', 'client-sam-1', ['staff']), join('sue', 'client-sue-1', ['staff'])]);
    const alice = await join('alice', 'client-alice-1');
    const bob = await join('bob', 'client-bob-1');

    let seq = 0;
    for (let round = 0; round < 5; round++) {
      seq++;
      const [a, b] = await Promise.all([
        alice.request('push', {
          mutations: [
            { seq, name: 'put', args: { collection: 'notes', doc: { id: `n${round}`, text: 'hi', createdAt: round } } },
          ],
        }),
        bob.request('push', {
          mutations: [
            { seq, name: 'put', args: { collection: 'items', doc: { id: ownedId('bob', `i${round}`), owner: 'bob' } } },
          ],
        }),
      ]);
      for (const ack of [pushAckSchema.parse(a), pushAckSchema.parse(b)]) {
        expect(ack.ok && ack.results.every((r) => r.status === 'applied')).toBe(true);
      }
    }
    const everyone = [...readers, ...staff, alice, bob];
    const seen = (c: RawClient): Live['changes'] => liveOf(c).flatMap((m) => m.changes);
    // Ten commits' worth: five notes for everyone, and bob's five items for bob.
    await waitFor('every session has what it may see', () =>
      everyone.every((c) => seen(c).length >= (c === bob ? 10 : 5)),
    );
    // Nothing more comes (nothing else was written): what is there is all.
    await waitFor(
      'the server is idle',
      async () => (await server.admin<{ headLsn: number }>('/status')).headLsn === 10,
    );
    for (const c of [...readers, ...staff, alice]) {
      // Notes only: bob's items are his.
      expect(seen(c).map((x) => x.id)).toEqual(['n0', 'n1', 'n2', 'n3', 'n4']);
    }
    expect(
      seen(bob)
        .filter((x) => x.owner === 'bob')
        .map((x) => x.id),
    ).toEqual([0, 1, 2, 3, 4].map((i) => ownedId('bob', `i${i}`)));
    for (const c of everyone) {
      const messages = liveOf(c);
      // Contiguous, in LSN order: each message starts where the one before ended.
      messages.slice(1).forEach((m, i) => expect(m.from).toBe(messages[i]!.to));
      const lsns = seen(c).map((x) => x.lsn);
      expect(lsns).toEqual([...lsns].sort((x, y) => x - y));
    }
    // The origin only on one's own changes.
    for (const x of seen(readers[0]!)) expect(x.clientId).toBeNull();
    for (const x of seen(alice)) expect(x.clientId).toBe('client-alice-1');
    expect(
      seen(bob)
        .filter((x) => x.owner === null)
        .every((x) => x.clientId === null),
    ).toBe(true);
  });
});

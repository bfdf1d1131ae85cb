import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helloAckSchema } from '../../shared/protocol/hello';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { pushAckSchema } from '../../shared/protocol/push';
import { tokenFor } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import type { RawClient } from '../support/raw-client';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';

const note = (seq: number, id: string) => ({
  seq,
  name: 'put',
  args: { collection: 'notes', doc: { id, text: `note ${id}`, createdAt: seq } },
});

const statusOf = (res: unknown): string => {
  const ack = pushAckSchema.parse(res);
  return ack.ok ? ack.results.map((r) => r.status).join(',') : ack.error.code;
};

/** Client ids are bound to the user of their first hello (issue 9, item 7). */
describe('client ids bound to users', () => {
  let server: ServerProcess;
  const raws: RawClient[] = [];

  beforeAll(async () => {
    server = await startServerProcess({ args: ['--no-seed'] });
  });
  afterAll(async () => {
    for (const r of raws) r.close();
    await server.stop();
  });

  async function connected(): Promise<RawClient> {
    const raw = await rawClient(server.url);
    raws.push(raw);
    return raw;
  }

  const helloWith = (raw: RawClient, user: string, clientId: string, pendingFrom: number): Promise<unknown> =>
    raw.request('hello', {
      protocol: PROTOCOL_VERSION,
      clientId,
      token: tokenFor(user),
      checkpoint: 0,
      checkpointTerm: 0,
      pendingFrom,
    });

  it("bob's hello with alice's client id is FORBIDDEN, tells nothing, and leaves alice's session working", async () => {
    const alice = await connected();
    expect(helloAckSchema.parse(await alice.hello(tokenFor('alice'), 'alice-phone-0001')).ok).toBe(true);
    expect(statusOf(await alice.request('push', { mutations: [note(1, 'a1')] }))).toBe('applied');

    for (const pendingFrom of [1, 1_000_000]) {
      const bob = await connected();
      const ack = helloAckSchema.parse(await helloWith(bob, 'bob', 'alice-phone-0001', pendingFrom));
      expect(ack).toEqual({
        ok: false,
        error: { code: 'FORBIDDEN', message: 'this client id belongs to another user', retryable: false },
      });
      // Nothing for bob: no page, no lastSeq, no rejections.
      expect(bob.received.filter((r) => r.event !== 'connect')).toEqual([]);
      expect(statusOf(await bob.request('push', { mutations: [note(2, 'b2')] }))).toBe('UNAUTHORIZED');
    }

    // Alice was not kicked, and her next writes commit (not `duplicate`).
    expect(alice.socket.connected).toBe(true);
    expect(alice.received.some((r) => r.event === 'fatal')).toBe(false);
    expect(statusOf(await alice.request('push', { mutations: [note(2, 'a2'), note(3, 'a3')] }))).toBe(
      'applied,applied',
    );
  });

  it('the owner may reconnect with its id, but a pendingFrom far past its last seq is refused', async () => {
    const first = await connected();
    expect(helloAckSchema.parse(await first.hello(tokenFor('carol'), 'carol-laptop-0001')).ok).toBe(true);
    expect(statusOf(await first.request('push', { mutations: [note(1, 'c1')] }))).toBe('applied');
    const wild = await connected();
    const refused = helloAckSchema.parse(await helloWith(wild, 'carol', 'carol-laptop-0001', 1_000_000));
    expect(refused.ok ? 'ok' : refused.error.code).toBe('BAD_REQUEST');
    expect(first.socket.connected).toBe(true);
    const again = await connected();
    const ack = helloAckSchema.parse(await helloWith(again, 'carol', 'carol-laptop-0001', 2));
    expect(ack).toMatchObject({ ok: true, lastSeq: 1 });
    expect(statusOf(await again.request('push', { mutations: [note(2, 'c2')] }))).toBe('applied');
  });
});

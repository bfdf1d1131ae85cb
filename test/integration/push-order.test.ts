import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helloAckSchema } from '../../shared/protocol/hello';
import { pushAckSchema } from '../../shared/protocol/push';
import type { PushAck } from '../../shared/protocol/push';
import { tokenFor } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import type { RawClient } from '../support/raw-client';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { readServerState } from '../support/server-state';

/**
 * Per-client order (guarantee 4) at the server's door: a push whose seqs do
 * not rise by one is refused whole, before any of it runs, so no prefix of it
 * commits. Sent from a raw socket, since the client library never sends one.
 */
describe('the order of seqs within a push', () => {
  let server: ServerProcess;
  let raw: RawClient;
  const clientId = 'order-client-01';

  beforeAll(async () => {
    server = await startServerProcess();
    raw = await rawClient(server.url);
    const ack = helloAckSchema.parse(await raw.hello(tokenFor('order-user'), clientId));
    expect(ack).toMatchObject({ ok: true, lastSeq: 0 });
  });
  afterAll(async () => {
    raw.close();
    await server.stop();
  });

  const note = (seq: number): { seq: number; name: string; args: unknown } => ({
    seq,
    name: 'put',
    args: { collection: 'notes', doc: { id: `order-${seq}`, text: `seq ${seq}`, createdAt: seq } },
  });
  const push = async (...seqs: number[]): Promise<PushAck> =>
    pushAckSchema.parse(await raw.request('push', { mutations: seqs.map(note) }));
  const storeState = (): {
    docs: ReturnType<typeof readServerState>['docs'];
    headLsn: number;
    lastSeq: number | undefined;
  } => {
    const state = readServerState(server.dataDir);
    return { docs: state.docs, headLsn: state.headLsn, lastSeq: state.lastSeq.get(clientId) };
  };

  it.each([
    { seqs: [1, 3], follows: 'seq 3 follows seq 1' },
    { seqs: [2, 1], follows: 'seq 1 follows seq 2' },
    { seqs: [1, 1], follows: 'seq 1 follows seq 1' },
    { seqs: [1, 2, 4, 5], follows: 'seq 4 follows seq 2' },
  ])('refuses seqs $seqs whole, with BAD_REQUEST, and commits nothing', async ({ seqs, follows }) => {
    const before = storeState();
    const ack = await push(...seqs);
    expect(storeState()).toEqual(before);
    expect(ack).toEqual({
      ok: false,
      error: {
        code: 'BAD_REQUEST',
        message: `the seqs of a push must rise by 1: ${follows} (seqs ${seqs.join(', ')}); nothing was applied`,
        retryable: false,
      },
    });
    const status = await server.admin<{ headLsn: number }>('/status');
    expect(status.headLsn).toBe(before.headLsn);
  });

  it('then applies seqs that rise by one', async () => {
    const before = storeState();
    expect(before.lastSeq).toBeUndefined();
    const ack = await push(1, 2);
    expect(ack).toEqual({
      ok: true,
      results: [
        { seq: 1, status: 'applied', lsn: before.headLsn + 1 },
        { seq: 2, status: 'applied', lsn: before.headLsn + 2 },
      ],
    });
    const after = storeState();
    expect(after.lastSeq).toBe(2);
    expect(after.headLsn).toBe(before.headLsn + 2);
    expect(after.docs['notes']).toEqual({
      ...before.docs['notes'],
      'order-1': { id: 'order-1', text: 'seq 1', createdAt: 1 },
      'order-2': { id: 'order-2', text: 'seq 2', createdAt: 2 },
    });
  });

  it('commits nothing of a push that starts past lastSeq + 1, then takes the missing seq first', async () => {
    const before = storeState();
    expect(before.lastSeq).toBe(2);
    const gap = await push(4, 5);
    const outOfOrder = (seq: number): unknown => ({
      seq,
      status: 'rejected',
      error: { code: 'BAD_REQUEST', message: `seq ${seq} out of order; expected 3`, retryable: true },
    });
    expect(gap).toEqual({ ok: true, results: [outOfOrder(4), outOfOrder(5)] });
    expect(storeState()).toEqual(before);

    const filled = await push(3, 4, 5);
    expect(filled.ok && filled.results.map((r) => [r.seq, r.status])).toEqual([
      [3, 'applied'],
      [4, 'applied'],
      [5, 'applied'],
    ]);
    expect(storeState().lastSeq).toBe(5);
    expect(storeState().headLsn).toBe(before.headLsn + 3);
  });
});

import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonByteLength } from '../../shared/json';
import { MAX_ERROR_MESSAGE_CHARS } from '../../shared/mutators/run-mutation';
import { changesSchema } from '../../shared/protocol/changes';
import { helloAckSchema } from '../../shared/protocol/hello';
import { pushAckSchema } from '../../shared/protocol/push';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { tokenFor } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import type { RawClient } from '../support/raw-client';
import { removeDir, startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { MAX_REPORTED_REJECTION_BYTES } from '../../server/sync/sync-core';
import { waitFor } from '../support/wait';

/**
 * Rejections on a real server: one that echoes a 900 KB key stores, acks and
 * replays a short message, and a hello whose pendingFrom says the client
 * settled its rejected seqs drops them from the store.
 */
describe('rejections are bounded', () => {
  let server: ServerProcess;
  const raws: RawClient[] = [];

  beforeAll(async () => {
    server = await startServerProcess();
  });
  afterAll(async () => {
    for (const r of raws) r.close();
    await server.stop();
    removeDir(server.dataDir);
  });

  /** The stored rejections of a client, read from the SQLite file. */
  const storedRejections = (clientId: string): Array<{ seq: number; code: string; message: string }> => {
    const db = new Database(join(server.dataDir, 'tideline.db'), { readonly: true, fileMustExist: true });
    try {
      return db
        .prepare('SELECT seq, code, message FROM rejections WHERE client_id = ? ORDER BY seq')
        .all(clientId) as Array<{ seq: number; code: string; message: string }>;
    } finally {
      db.close();
    }
  };
  /** The longest message in the log's outcome entries, what replicas and catch-up read. */
  const longestLoggedMessage = (): number => {
    const db = new Database(join(server.dataDir, 'tideline.db'), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare('SELECT max(length(message)) AS n FROM outcomes').get() as { n: number | null }).n ?? 0;
    } finally {
      db.close();
    }
  };

  async function connect(clientId: string, pendingFrom: number): Promise<RawClient> {
    const raw = await rawClient(server.url);
    raws.push(raw);
    const ack = helloAckSchema.parse(
      await raw.request('hello', {
        protocol: PROTOCOL_VERSION,
        clientId,
        token: tokenFor('ann'),
        checkpoint: 0,
        checkpointTerm: 0,
        pendingFrom,
      }),
    );
    if (!ack.ok) throw new Error(`hello refused: ${ack.error.message}`);
    return raw;
  }
  /** The rejections the catch-up told this connection of (on its last page). */
  const replayed = (raw: RawClient): Array<{ seq: number; error: { message: string } }> =>
    raw.received.filter((r) => r.event === 'changes').flatMap((r) => changesSchema.parse(r.payload).rejected ?? []);

  /** A patch whose field name is 900 KB: zod names the bad key in its message. */
  const hugeKeyPatch = (seq: number) => ({
    seq,
    name: 'patch',
    args: { collection: 'notes', id: 'n1', set: { [`k${'x'.repeat(900_000)}`]: 1 } },
  });
  const missingPatch = (seq: number) => ({
    seq,
    name: 'patch',
    args: { collection: 'notes', id: `missing-${seq}`, set: { text: 'x' } },
  });

  it('stores, acks and replays a short message for a rejection that echoes a 900 KB key', async () => {
    const clientId = 'bounded-rej-01';
    const raw = await connect(clientId, 1);
    const ack = pushAckSchema.parse(await raw.request('push', { mutations: [hugeKeyPatch(1)] }, 20_000));
    if (!ack.ok) throw new Error(`push refused: ${ack.error.message}`);
    const result = ack.results[0];
    if (result?.status !== 'rejected') throw new Error(`not rejected: ${JSON.stringify(result).slice(0, 200)}`);
    expect(result.error.code).toBe('INVALID_ARGS');
    expect(result.error.message.length).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_CHARS);

    const stored = storedRejections(clientId);
    expect(stored.map((r) => [r.seq, r.code])).toEqual([[1, 'INVALID_ARGS']]);
    expect(stored[0]?.message.length).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_CHARS);
    expect(stored[0]?.message).toContain("bad arguments for 'patch' at set.kxxx");
    expect(longestLoggedMessage()).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_CHARS);

    // A client that has not settled seq 1 hears of it again on reconnect: short.
    raw.close();
    const again = await connect(clientId, 1);
    await waitFor('the replayed rejection', () => replayed(again).length === 1);
    expect(replayed(again)[0]?.seq).toBe(1);
    expect(replayed(again)[0]?.error.message.length).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_CHARS);
    again.close();
  });

  it('replays at most MAX_REPORTED_REJECTION_BYTES of rejections on a hello, the newest', async () => {
    const clientId = 'bounded-rej-03';
    const raw = await connect(clientId, 1);
    // 600 rejections of ~530 bytes each (a 1,000-character key, cut to 500): more than the cap.
    const longKeyPatch = (seq: number) => ({
      seq,
      name: 'patch',
      args: { collection: 'notes', id: 'n1', set: { [`k${seq}${'y'.repeat(1_000)}`]: 1 } },
    });
    for (const from of [1, 301]) {
      const ack = pushAckSchema.parse(
        await raw.request('push', { mutations: Array.from({ length: 300 }, (_, i) => longKeyPatch(from + i)) }),
      );
      if (!ack.ok) throw new Error(`push refused: ${ack.error.message}`);
      expect(ack.results.every((r) => r.status === 'rejected')).toBe(true);
    }
    expect(storedRejections(clientId)).toHaveLength(600);
    raw.close();

    const back = await connect(clientId, 1);
    await waitFor('the replayed rejections', () => replayed(back).length > 0);
    const seqs = replayed(back).map((r) => r.seq);
    expect(jsonByteLength(replayed(back))).toBeLessThanOrEqual(MAX_REPORTED_REJECTION_BYTES);
    expect(seqs.length).toBeGreaterThan(300);
    expect(seqs.length).toBeLessThan(600);
    // The newest, in seq order: the oldest are the ones a client most likely retried already.
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => 600 - seqs.length + 1 + i));
    back.close();
  });

  it('drops the rejections a hello says the client has settled, and keeps the rest', async () => {
    const clientId = 'bounded-rej-02';
    const raw = await connect(clientId, 1);
    const ack = pushAckSchema.parse(
      await raw.request('push', { mutations: [1, 2, 3, 4].map((seq) => missingPatch(seq)) }),
    );
    if (!ack.ok) throw new Error(`push refused: ${ack.error.message}`);
    expect(ack.results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
    expect(storedRejections(clientId).map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    raw.close();

    // The client settled seqs 1..3 (pendingFrom 4): those rows go, and only seq 4 is replayed.
    const back = await connect(clientId, 4);
    expect(storedRejections(clientId).map((r) => r.seq)).toEqual([4]);
    await waitFor('the replayed rejection', () => replayed(back).length === 1);
    expect(replayed(back).map((r) => r.seq)).toEqual([4]);
    // A retry of a settled seq is still a duplicate (now with no error), never applied again.
    const retry = pushAckSchema.parse(await back.request('push', { mutations: [missingPatch(2)] }));
    if (!retry.ok) throw new Error(`push refused: ${retry.error.message}`);
    expect(retry.results).toEqual([{ seq: 2, status: 'duplicate' }]);
    back.close();
  });
});

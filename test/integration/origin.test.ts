import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../../shared/protocol/change';
import { changesSchema } from '../../shared/protocol/changes';
import type { Changes } from '../../shared/protocol/changes';
import { helloAckSchema } from '../../shared/protocol/hello';
import { pushAckSchema } from '../../shared/protocol/push';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { tokenFor } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import type { RawClient } from '../support/raw-client';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { waitFor } from '../support/wait';

/**
 * A client id works as a bearer secret (a connection that names it settles
 * and pushes that client's mutations), so a change tells who made it only to
 * the client that made it: to everyone else its `clientId` and `seq` are null,
 * both in live fan-out and in catch-up pages.
 */
describe('the origin of a change', () => {
  let server: ServerProcess;
  const raws: RawClient[] = [];
  const writerId = 'origin-writer-01';
  const readerId = 'origin-reader-01';
  /** More than one catch-up page (the server's page size is 1,000 changes). */
  const BULK = 1_100;

  beforeAll(async () => {
    server = await startServerProcess();
  });
  afterAll(async () => {
    for (const r of raws) r.close();
    await server.stop();
  });

  async function connect(user: string, clientId: string, checkpoint: number, checkpointTerm: number) {
    const raw = await rawClient(server.url);
    raws.push(raw);
    const ack = helloAckSchema.parse(
      await raw.request('hello', {
        protocol: PROTOCOL_VERSION,
        clientId,
        token: tokenFor(user),
        checkpoint,
        checkpointTerm,
        pendingFrom: 1,
      }),
    );
    if (!ack.ok) throw new Error(`hello refused: ${ack.error.message}`);
    return { raw, ack };
  }
  const changesOf = (raw: RawClient): Changes[] =>
    raw.received.filter((r) => r.event === 'changes').map((r) => changesSchema.parse(r.payload));
  const received = (raw: RawClient): Change[] => changesOf(raw).flatMap((m) => m.changes);
  const origins = (changes: readonly Change[]): Array<[string | null, number | null]> =>
    changes.map((c) => [c.clientId, c.seq]);
  const note = (seq: number): { seq: number; name: string; args: unknown } => ({
    seq,
    name: 'put',
    args: { collection: 'notes', doc: { id: `origin-${seq}`, text: `from the writer, seq ${seq}`, createdAt: seq } },
  });

  it('live fan-out: the sender sees its own origin, another client sees none', async () => {
    const writer = await connect('origin-w', writerId, 0, 0);
    const reader = await connect('origin-r', readerId, 0, 0);
    // Both are live once their (empty) final catch-up page came.
    await waitFor('both live', () => changesOf(writer.raw).length === 1 && changesOf(reader.raw).length === 1);

    const ack = pushAckSchema.parse(await writer.raw.request('push', { mutations: [note(1)] }));
    expect(ack).toEqual({ ok: true, results: [{ seq: 1, status: 'applied', lsn: 1 }] });
    await waitFor('the reader got the change', () => received(reader.raw).length === 1);
    await waitFor('the writer got its own change', () => received(writer.raw).length === 1);

    expect(received(reader.raw).map((c) => [c.lsn, c.id, c.clientId, c.seq])).toEqual([[1, 'origin-1', null, null]]);
    expect(received(writer.raw).map((c) => [c.lsn, c.id, c.clientId, c.seq])).toEqual([[1, 'origin-1', writerId, 1]]);
    writer.raw.close();
    reader.raw.close();
  });

  it('catch-up pages: the sender sees its own origin, another client sees none', async () => {
    // The writer (on a new connection, same client id) commits BULK more while the reader is away.
    const writer = await connect('origin-w', writerId, 1, 1);
    await waitFor('writer live', () => changesOf(writer.raw).length === 1);
    for (let from = 2; from <= BULK + 1; from += 500) {
      const seqs = Array.from({ length: Math.min(500, BULK + 2 - from) }, (_, i) => from + i);
      const ack = pushAckSchema.parse(await writer.raw.request('push', { mutations: seqs.map(note) }));
      expect(ack.ok && ack.results.every((r) => r.status === 'applied')).toBe(true);
    }
    writer.raw.close();
    const head = BULK + 1;
    expect(await server.admin<{ headLsn: number; term: number }>('/status')).toMatchObject({ headLsn: head, term: 1 });

    // Both come back from LSN 1 (a checkpoint of term 1, so no snapshot) and catch up page by page.
    const reader = await connect('origin-r', readerId, 1, 1);
    const sender = await connect('origin-w', writerId, 1, 1);
    for (const { raw } of [reader, sender]) {
      await waitFor('caught up', () => changesOf(raw).some((m) => m.to === head && m.lastSeq !== undefined));
      expect(raw.received.filter((r) => r.event === 'snapshot')).toEqual([]);
      const pages = changesOf(raw);
      // At least one page before the final one, so both the acked pages and the final one are covered.
      expect(pages.map((p) => [p.from, p.to])).toEqual([
        [1, 1001],
        [1001, head],
      ]);
    }
    const seqs = Array.from({ length: BULK }, (_, i) => i + 2);
    expect(received(reader.raw).map((c) => c.lsn)).toEqual(seqs);
    expect(origins(received(reader.raw))).toEqual(seqs.map(() => [null, null]));
    expect(received(sender.raw).map((c) => c.lsn)).toEqual(seqs);
    expect(origins(received(sender.raw))).toEqual(seqs.map((seq) => [writerId, seq]));
  });
});

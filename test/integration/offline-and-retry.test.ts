import 'fake-indexeddb/auto';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helloAckSchema } from '../../shared/protocol/hello';
import { pushAckSchema } from '../../shared/protocol/push';
import { recordingTransport } from '../support/ack-recorder';
import type { SentRequest } from '../support/ack-recorder';
import { localDocs, openClient, tokenFor } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { rawClient } from '../support/raw-client';
import { readServerState } from '../support/server-state';
import { waitFor } from '../support/wait';
import { open } from '../../client/lib/open';
import { storeSchema } from '../../shared/apps/store';

describe('offline work and lost acks', () => {
  let server: ServerProcess;
  const clients: NodeClient[] = [];

  beforeAll(async () => {
    server = await startServerProcess();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });

  it('100 mutations made offline all commit exactly once and reach the others', async () => {
    const writer = await openClient([server.url], 'offline-writer');
    const reader = await openClient([server.url], 'offline-reader');
    clients.push(writer, reader);
    await waitFor('both live', () => writer.status().state === 'live' && reader.status().state === 'live');

    writer.engine.stop();
    for (let i = 0; i < 100; i++) {
      await writer.mutate.put({ collection: 'notes', doc: { id: `off-${i}`, text: `offline ${i}`, createdAt: i } });
    }
    expect(writer.status().pending).toBe(100);
    const offline = Object.fromEntries(
      Array.from({ length: 100 }, (_, i) => [`off-${i}`, { id: `off-${i}`, text: `offline ${i}`, createdAt: i }]),
    );
    // Local first: all 100 show at once, while none has reached the server.
    expect(await localDocs(writer, 'notes')).toEqual(offline);
    expect(readServerState(server.dataDir).docs).toEqual({});

    await writer.engine.start();
    await waitFor('writer drained', () => writer.status().pending === 0 && writer.status().state === 'live');
    await waitFor(
      'reader sees all 100',
      async () => Object.keys(await localDocs(reader, 'notes')).filter((id) => id.startsWith('off-')).length === 100,
    );
    const state = readServerState(server.dataDir);
    const commits = [...state.commitsPerMutation.entries()].filter(([k]) => k.startsWith(`${clientIdOf(writer)}#`));
    commits.sort(([a], [b]) => Number(a.split('#')[1]) - Number(b.split('#')[1]));
    expect(commits).toEqual(Array.from({ length: 100 }, (_, i) => [`${clientIdOf(writer)}#${i + 1}`, 1]));
    expect(state.docs['notes']).toEqual(offline);
    expect(await localDocs(reader, 'notes')).toEqual(state.docs['notes']);
    expect(await localDocs(writer, 'notes')).toEqual(state.docs['notes']);
  });

  it('a push whose ack is lost is settled by the next hello: the engine does not resend it, and it commits once', async () => {
    const sent: SentRequest[] = [];
    // The server answers the first push, and the connection dies before the client hears it.
    let lostOne = false;
    const loseFirstPush = (event: string): boolean => event === 'push' && !lostOne && (lostOne = true);
    const client = await open(storeSchema, {
      servers: [server.url],
      token: tokenFor('ack-loser'),
      dbName: `ack-loser-${process.pid}`,
      connect: recordingTransport(sent, loseFirstPush),
      requestTimeoutMs: 5000,
    });
    clients.push(client);
    await waitFor('live', () => client.status().state === 'live');
    const before = readServerState(server.dataDir).headLsn;
    await client.mutate.put({ collection: 'notes', doc: { id: 'ack-lost', text: 'once', createdAt: 1 } });
    await waitFor(
      'drained after the reconnect',
      () => client.status().pending === 0 && sent.some((r) => r.connection === 2 && r.event === 'hello'),
    );
    await client.mutate.put({ collection: 'notes', doc: { id: 'after-ack-lost', text: 'next', createdAt: 2 } });
    await waitFor('drained', () => client.status().pending === 0 && client.status().state === 'live');

    // What went over the wire: the reconnect's hello reports seq 1 settled (lastSeq 1), so the
    // engine starts its next push after it (engine.ts handshake: sentUpTo = ack.lastSeq).
    expect(sent.map(summary)).toEqual([
      { connection: 1, hello: { pendingFrom: 1 }, answer: { lastSeq: 0 }, lost: false },
      { connection: 1, push: [1], answer: [[1, 'applied']], lost: true },
      { connection: 2, hello: { pendingFrom: 1 }, answer: { lastSeq: 1 }, lost: false },
      { connection: 2, push: [2], answer: [[2, 'applied']], lost: false },
    ]);
    const state = readServerState(server.dataDir);
    expect(state.headLsn).toBe(before + 2);
    expect(state.commitsPerMutation.get(`${clientIdOf(client)}#1`)).toBe(1);
    expect(state.lastSeq.get(clientIdOf(client))).toBe(2);
    expect(await client.collection('notes').get('ack-lost')).toEqual({ id: 'ack-lost', text: 'once', createdAt: 1 });
  });

  it('a push resent after a lost ack reaches the server, is answered duplicate and commits nothing new', async () => {
    // The client library never resends what hello settled (above), so a raw client plays the
    // client that does: the server's dedupe on (clientId, seq) is the one guard against a second commit.
    const clientId = 'resender-0001';
    const token = tokenFor('resender');
    const put = {
      seq: 1,
      name: 'put',
      args: { collection: 'notes', doc: { id: 'resent', text: 'once', createdAt: 1 } },
    };
    const pushes: Array<{ connection: string; seqs: number[]; answer: unknown }> = [];
    const before = readServerState(server.dataDir).headLsn;

    const link = await lossyLink(new URL(server.url));
    try {
      const first = await rawClient(link.url);
      expect(helloAckSchema.parse(await first.hello(token, clientId))).toMatchObject({ ok: true, lastSeq: 0 });
      // From here on the server's answers are lost on the way: it gets the push, commits, answers into the void.
      link.dropAnswers();
      pushes.push({ connection: 'first', seqs: [1], answer: 'lost' });
      first.socket.emit('push', { mutations: [put] }, (answer: unknown) => {
        pushes[0]!.answer = answer;
      });
      await waitFor('the first push committed', () => readServerState(server.dataDir).lastSeq.get(clientId) === 1);
      first.close();
    } finally {
      await link.close();
    }

    const second = await rawClient(server.url);
    try {
      expect(helloAckSchema.parse(await second.hello(token, clientId))).toMatchObject({ ok: true, lastSeq: 1 });
      const next = { seq: 2, name: 'put', args: { collection: 'notes', doc: { id: 'resent-2', createdAt: 2 } } };
      const answer = pushAckSchema.parse(await second.request('push', { mutations: [put, next] }));
      pushes.push({ connection: 'second', seqs: [1, 2], answer });
    } finally {
      second.close();
    }

    expect(pushes).toEqual([
      { connection: 'first', seqs: [1], answer: 'lost' },
      {
        connection: 'second',
        seqs: [1, 2],
        answer: {
          ok: true,
          results: [
            { seq: 1, status: 'duplicate' },
            { seq: 2, status: 'applied', lsn: before + 2 },
          ],
        },
      },
    ]);
    const state = readServerState(server.dataDir);
    expect(state.headLsn).toBe(before + 2);
    expect(state.commitsPerMutation.get(`${clientId}#1`)).toBe(1);
    expect(state.lastSeq.get(clientId)).toBe(2);
    expect(state.docs['notes']?.['resent']).toEqual({ id: 'resent', text: 'once', createdAt: 1 });
  });
});

/**
 * A TCP link to `target` whose server-to-client direction can be made to drop
 * everything: what the client sends still arrives, the answers do not.
 */
async function lossyLink(target: URL): Promise<{ url: string; dropAnswers(): void; close(): Promise<void> }> {
  let dropping = false;
  const sockets = new Set<Socket>();
  const proxy = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (!dropping) client.write(chunk);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) s.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const { port } = proxy.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    dropAnswers: () => {
      dropping = true;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}

/** A recorded request, reduced to what the lost-ack test checks. */
function summary(r: SentRequest): Record<string, unknown> {
  if (r.event === 'hello') {
    const { pendingFrom } = r.msg as { pendingFrom: number };
    const answer = helloAckSchema.parse(r.answer);
    return {
      connection: r.connection,
      hello: { pendingFrom },
      answer: answer.ok ? { lastSeq: answer.lastSeq } : answer.error,
      lost: r.lost,
    };
  }
  const seqs = (r.msg as { mutations: Array<{ seq: number }> }).mutations.map((m) => m.seq);
  const answer = pushAckSchema.parse(r.answer);
  return {
    connection: r.connection,
    push: seqs,
    answer: answer.ok ? answer.results.map((x) => [x.seq, x.status]) : answer.error,
    lost: r.lost,
  };
}

function clientIdOf(client: NodeClient): string {
  const id = client.engine.clientId;
  if (!id) throw new Error('client has no id yet');
  return id;
}

import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { socketTransport } from '../../client/sync/socket-transport';
import type { Transport } from '../../client/sync/transport';
import { localDocs, openClient, tokenFor } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
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
    expect(Object.keys(await localDocs(writer, 'notes')).filter((id) => id.startsWith('off-'))).toHaveLength(100);
    expect(readServerState(server.dataDir).docs['notes']?.['off-0']).toBeUndefined();

    await writer.engine.start();
    await waitFor('writer drained', () => writer.status().pending === 0 && writer.status().state === 'live');
    await waitFor(
      'reader sees all 100',
      async () => Object.keys(await localDocs(reader, 'notes')).filter((id) => id.startsWith('off-')).length === 100,
    );
    const state = readServerState(server.dataDir);
    const commits = [...state.commitsPerMutation.entries()].filter(([k]) => k.startsWith(`${clientIdOf(writer)}#`));
    expect(commits).toHaveLength(100);
    expect(commits.every(([, n]) => n === 1)).toBe(true);
    expect(await localDocs(reader, 'notes')).toEqual(state.docs['notes']);
    expect(await localDocs(writer, 'notes')).toEqual(state.docs['notes']);
  });

  it('a push whose ack is lost is retried and commits nothing new', async () => {
    let cutNext = true;
    const pushesSent: number[][] = [];
    // Cuts the connection right after the server answered a push, before the engine hears the answer.
    const lossyTransport = (url: string): Transport => {
      const inner = socketTransport(url);
      return {
        open: (events) => inner.open(events),
        close: () => inner.close(),
        async request(event, msg, timeoutMs) {
          const res = await inner.request(event, msg, timeoutMs);
          if (event === 'push') {
            pushesSent.push((msg as { mutations: Array<{ seq: number }> }).mutations.map((m) => m.seq));
            if (cutNext) {
              cutNext = false;
              inner.close();
              throw new Error('connection cut before the ack arrived');
            }
          }
          return res;
        },
      };
    };
    const client = await open(storeSchema, {
      servers: [server.url],
      token: tokenFor('ack-loser'),
      dbName: `ack-loser-${process.pid}`,
      connect: lossyTransport,
      requestTimeoutMs: 5000,
    });
    clients.push(client);
    await waitFor('live', () => client.status().state === 'live');
    const before = readServerState(server.dataDir).headLsn;
    await client.mutate.put({ collection: 'notes', doc: { id: 'ack-lost', text: 'once', createdAt: 1 } });
    await waitFor(
      'drained after the retry',
      () => client.status().pending === 0 && client.status().state === 'live',
    ).catch((e: unknown) => {
      throw new Error(`${String(e)} ${JSON.stringify(client.status())}`);
    });
    const state = readServerState(server.dataDir);
    expect(state.headLsn).toBe(before + 1);
    expect(state.commitsPerMutation.get(`${clientIdOf(client)}#1`)).toBe(1);
    expect((await client.collection('notes').get('ack-lost'))?.['text']).toBe('once');
    expect(cutNext).toBe(false);
  });
});

function clientIdOf(client: NodeClient): string {
  const id = client.engine.clientId;
  if (!id) throw new Error('client has no id yet');
  return id;
}

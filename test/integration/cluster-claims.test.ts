import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followAckSchema } from '../../shared/protocol/replication';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { openClient } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { startServerProcess, TEST_CLUSTER_SECRET } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { waitFor } from '../support/wait';

interface Status {
  role: string;
  term: number;
}

/** A primary learns of a higher term from its peers' status, never from a follower's claim (issue 9, item 11). */
describe("a follower's claim of a higher term", () => {
  let primary: ServerProcess;
  const clients: NodeClient[] = [];

  beforeAll(async () => {
    primary = await startServerProcess({ args: ['--no-seed'] });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await primary.stop();
  });

  it('`follow {term: 999}` with the cluster secret is refused, and the primary stays primary and takes writes', async () => {
    const writer = await openClient([primary.url], 'claims-writer');
    clients.push(writer);
    await writer.mutate.put({ collection: 'notes', doc: { id: 'before', text: 'before', createdAt: 1 } });
    await waitFor('the first write is confirmed', () => writer.status().pending === 0);

    const socket = io(`${primary.url}/replication`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      auth: { secret: TEST_CLUSTER_SECRET },
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('connect_error', reject);
      });
      for (let i = 0; i < 3; i++) {
        const follow = { protocol: PROTOCOL_VERSION, replicaId: 'mallory', url: null, term: 999 };
        const raw: unknown = await socket.timeout(5000).emitWithAck('follow', {
          ...follow,
          checkpoint: 0,
          checkpointTerm: 0,
          clusterId: null,
          checkpointEntry: null,
        });
        const ack = followAckSchema.parse(raw);
        expect(ack.ok ? 'ok' : ack.error.code).toBe('NOT_PRIMARY');
      }
    } finally {
      socket.disconnect();
    }

    expect(await primary.admin<Status>('/status')).toMatchObject({ role: 'primary', term: 1 });
    // The client was not closed with NOT_PRIMARY, and its next writes commit on this node.
    await writer.mutate.put({ collection: 'notes', doc: { id: 'after', text: 'after', createdAt: 2 } });
    await waitFor('the write after the claim is confirmed', () => writer.status().pending === 0);
    expect(writer.status()).toMatchObject({ state: 'live', server: primary.url });
    expect(await primary.admin<Status>('/status')).toMatchObject({ role: 'primary', term: 1 });
  });
});

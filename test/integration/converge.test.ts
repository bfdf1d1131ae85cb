import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localDocs, openClient } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { waitFor } from '../support/wait';

describe('two clients and a primary', () => {
  let server: ServerProcess;
  const clients: NodeClient[] = [];

  beforeAll(async () => {
    server = await startServerProcess();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });

  it('a write on one client reaches the other, and both converge', async () => {
    const a = await openClient([server.url], 'alice');
    const b = await openClient([server.url], 'bob');
    clients.push(a, b);
    await waitFor('both live', () => a.status().state === 'live' && b.status().state === 'live');
    await a.mutate.put({ collection: 'notes', doc: { id: 'n1', text: 'hello', createdAt: 1 } });
    expect((await a.collection('notes').get('n1'))?.['text']).toBe('hello');
    await waitFor('b sees n1', async () => (await b.collection('notes').get('n1')) !== undefined);
    await waitFor('a has no pending', () => a.status().pending === 0);
    expect(await localDocs(b, 'notes')).toEqual(await localDocs(a, 'notes'));
  });
});

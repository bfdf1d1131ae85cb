import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localDocs, openClient } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { startServerProcess, TEST_ADMIN_TOKEN } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { readServerState } from '../support/server-state';
import { waitFor } from '../support/wait';

describe('compaction and the snapshot path', () => {
  let server: ServerProcess;
  const clients: NodeClient[] = [];

  beforeAll(async () => {
    server = await startServerProcess();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });

  async function admin(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${server.url}/admin${path}`, {
      ...init,
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
    });
  }

  it('the admin API refuses a missing or wrong token', async () => {
    expect((await fetch(`${server.url}/admin/status`)).status).toBe(401);
    const wrong = await fetch(`${server.url}/admin/status`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
  });

  it('the status names the store and the node (host-port when no --node-id is given)', async () => {
    const port = new URL(server.url).port;
    const status = (await (await admin('/status')).json()) as { store: string; nodeId: string; role: string };
    expect(status).toMatchObject({ store: 'sqlite', role: 'primary' });
    expect(status.nodeId).toMatch(new RegExp(`-${port}$`));
  });

  it('a client whose checkpoint fell below the horizon converges through a snapshot', async () => {
    const writer = await openClient([server.url], 'snap-writer');
    const sleeper = await openClient([server.url], 'snap-sleeper');
    clients.push(writer, sleeper);
    await waitFor('live', () => writer.status().state === 'live' && sleeper.status().state === 'live');
    for (let i = 0; i < 20; i++)
      await writer.mutate.put({ collection: 'notes', doc: { id: `s${i}`, v: 1, createdAt: i } });
    await sleeper.mutate.put({ collection: 'items', doc: { id: 'snap-sleeper/mine', text: 'kept' } });
    await waitFor('sleeper has all', async () => Object.keys(await localDocs(sleeper, 'notes')).length === 20);
    await waitFor('sleeper drained', () => sleeper.status().pending === 0);
    const checkpoint = sleeper.status().lastSyncedLsn;
    expect(checkpoint).toBeGreaterThan(0);

    sleeper.engine.stop();
    for (let i = 0; i < 10; i++) await writer.mutate.delete({ collection: 'notes', id: `s${i}` });
    for (let i = 10; i < 20; i++) await writer.mutate.patch({ collection: 'notes', id: `s${i}`, set: { v: 2 } });
    // A mutation made while asleep must survive the snapshot swap.
    await sleeper.mutate.put({ collection: 'notes', doc: { id: 'while-asleep', createdAt: 99 } });
    await waitFor('writer drained', () => writer.status().pending === 0);

    const res = await admin('/compact', { method: 'POST', body: '{}' });
    expect(res.status).toBe(200);
    const compacted = (await res.json()) as { horizon: number; removedTombstones: number };
    expect(compacted.horizon).toBeGreaterThan(checkpoint);
    expect(compacted.removedTombstones).toBe(10);
    const status = (await (await admin('/status')).json()) as { horizon: number; headLsn: number };
    expect(status.horizon).toBe(status.headLsn);

    await sleeper.engine.start();
    await waitFor(
      'sleeper live and drained',
      () => sleeper.status().state === 'live' && sleeper.status().pending === 0,
    );
    const state = readServerState(server.dataDir);
    expect(await localDocs(sleeper, 'notes')).toEqual(state.docs['notes']);
    expect(Object.keys(state.docs['notes'] ?? {})).toContain('while-asleep');
    expect(await localDocs(sleeper, 'items')).toEqual(state.docs['items']);
    expect(sleeper.status().lastSyncedLsn).toBeGreaterThanOrEqual(status.headLsn);
  });
});

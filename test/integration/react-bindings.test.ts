import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useMutationState, useQuery, useRejections, useSyncStatus } from '../../client/react';
import { renderHook } from '../support/react-root';
import type { RenderedHook } from '../support/react-root';
import { openClient } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { waitFor } from '../support/wait';

/** The React bindings, rendered by react-dom in Node, over real clients of a real server. */
describe('tideline/react', () => {
  let server: ServerProcess;
  const clients: NodeClient[] = [];
  const rendered: Array<RenderedHook<unknown>> = [];

  const render = async <T>(hook: () => T): Promise<RenderedHook<T>> => {
    const r = await renderHook(hook);
    rendered.push(r);
    return r;
  };
  const client = async (user: string): Promise<NodeClient> => {
    const c = await openClient([server.url], user);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    server = await startServerProcess();
  });
  afterAll(async () => {
    for (const r of rendered) await r.unmount();
    for (const c of clients) c.close();
    await server.stop();
  });

  it('useQuery re-renders with local writes and with what syncs in from another client', async () => {
    const db = await client('query-reader');
    const other = await client('query-writer');
    const notes = await render(() =>
      useQuery(db, () => db.collection('notes').table.orderBy('createdAt').toArray(), [], []),
    );
    expect(notes.history[0]).toEqual([]);
    await db.mutate.put({ collection: 'notes', doc: { id: 'mine', text: 'local', createdAt: 1 } });
    await waitFor('the local write', () => notes.current().some((n) => n.id === 'mine'), 10_000);
    await other.mutate.put({ collection: 'notes', doc: { id: 'theirs', text: 'synced', createdAt: 2 } });
    await waitFor('the synced write', () => notes.current().some((n) => n.id === 'theirs'), 10_000);
    expect(notes.current().map((n) => n.id)).toEqual(['mine', 'theirs']);
  });

  it('useSyncStatus follows the connection', async () => {
    const db = await client('status');
    const status = await render(() => useSyncStatus(db));
    await waitFor('live', () => status.current().status.state === 'live', 10_000);
    expect(status.current().leader).toBe(true);
    db.goOffline();
    await waitFor('offline', () => status.current().status.state === 'offline', 10_000);
    db.goOnline();
    await waitFor('live again', () => status.current().status.state === 'live', 10_000);
  });

  it('useMutationState goes from pending to confirmed, or to rejected with the code; useRejections shows it', async () => {
    const db = await client('states');
    await db.whenSynced({ timeoutMs: 10_000 });
    db.goOffline();
    const ok = await db.mutate.put({ collection: 'notes', doc: { id: 'fine', text: 'ok', createdAt: 3 } });
    const bad = await db.mutate.inc({ collection: 'products', id: 'missing', field: 'stock', by: 1 });
    const okState = await render(() => useMutationState(db, ok.seq));
    const badState = await render(() => useMutationState(db, bad.seq));
    const none = await render(() => useMutationState(db, null));
    const rejections = await render(() => useRejections(db));
    await waitFor(
      'both pending',
      () => okState.current()?.status === 'pending' && badState.current()?.status === 'pending',
      10_000,
    );

    db.goOnline();
    await waitFor('confirmed', () => okState.current()?.status === 'confirmed', 10_000);
    await waitFor('rejected', () => badState.current()?.status === 'rejected', 10_000);
    expect(badState.current()).toMatchObject({ status: 'rejected', code: 'NOT_FOUND' });
    expect(none.history.every((s) => s === undefined)).toBe(true);

    await waitFor('the rejection listed', () => rejections.current().all.length === 1, 10_000);
    expect(rejections.current().latest).toMatchObject({ seq: bad.seq, error: { code: 'NOT_FOUND' } });
    rejections.current().dismiss();
    await waitFor('dismissed', () => rejections.current().latest === null, 10_000);
    expect(rejections.current().all.map((r) => r.seq)).toEqual([bad.seq]);
  });
});

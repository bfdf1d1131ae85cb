import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../server/auth/tokens';
import { storeSchema } from '../../shared/apps/store';
import type { StoreSchema } from '../../shared/apps/store';
import { TidelineError } from '../../shared/errors';
import { startServerProcess, TEST_SECRET } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { readServerState } from '../support/server-state';
import { waitFor } from '../support/wait';
import type { AppliedEvent } from '../../client/sync/engine';
import { TidelineClientError } from '../../client/lib/client-error';
import { open } from '../../client/lib/open';
import type { OpenOptions, Tideline } from '../../client/lib/open';

/** The client API a developer calls (whenSynced, mutation handles, connection controls, getToken), against a real server. */
describe('open(): the client API', () => {
  let server: ServerProcess;
  const clients: Array<Tideline<StoreSchema>> = [];
  let n = 0;

  const token = (sub: string, ageMs = 0, ttlSeconds = 3600): string =>
    signToken(TEST_SECRET, { sub, roles: [] }, Date.now() - ageMs, ttlSeconds);
  const openAs = async (
    auth: Pick<OpenOptions, 'token' | 'getToken'> & ({ token: string } | { getToken: () => string | Promise<string> }),
  ): Promise<Tideline<StoreSchema>> => {
    const db = await open(storeSchema, {
      ...auth,
      servers: [server.url],
      dbName: `open-test-${process.pid}-${++n}`,
      requestTimeoutMs: 5_000,
    });
    clients.push(db);
    return db;
  };

  beforeAll(async () => {
    server = await startServerProcess();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });

  it('whenSynced resolves once the outbox is empty and the replica is live', async () => {
    const db = await openAs({ token: token('synced') });
    const handles = await Promise.all(
      [1, 2, 3].map((i) => db.mutate.put({ collection: 'notes', doc: { id: `s${i}`, text: `${i}`, createdAt: i } })),
    );
    expect(await db.mutationState(handles[0]!.seq)).toEqual({ status: 'pending' });
    await db.whenSynced({ timeoutMs: 10_000 });
    expect(db.status()).toMatchObject({ state: 'live', pending: 0 });
    expect(Object.keys(readServerState(server.dataDir).docs['notes'] ?? {})).toEqual(
      expect.arrayContaining(['s1', 's2', 's3']),
    );
    for (const h of handles) expect(await db.mutationState(h.seq)).toEqual({ status: 'confirmed' });
    await expect(handles[0]!.confirmed()).resolves.toBeUndefined();
  });

  it("confirmed() rejects with the primary's code and message, and settled() gives the state", async () => {
    const db = await openAs({ token: token('rejected') });
    // No such product: the local run fails too, but whether it exists is the primary's call, so it is queued.
    const handle = await db.mutate.inc({ collection: 'products', id: 'none', field: 'stock', by: 1 });
    const error: unknown = await handle.confirmed({ timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TidelineError);
    expect(error).toMatchObject({ code: 'NOT_FOUND' });
    const state = await handle.settled();
    expect(state).toEqual({ status: 'rejected', code: 'NOT_FOUND', message: (error as TidelineError).message });
    expect(await db.mutationState(handle.seq)).toEqual(state);
    expect(await db.mutationState(handle.seq + 100)).toEqual({ status: 'unknown' });
  });

  it('goOffline holds mutations back (whenSynced times out with TIMEOUT) until goOnline', async () => {
    const db = await openAs({ token: token('offline') });
    await db.whenSynced({ timeoutMs: 10_000 });
    db.goOffline();
    expect(db.status().state).toBe('offline');
    await db.mutate.put({ collection: 'notes', doc: { id: 'held', text: 'held back', createdAt: 1 } });
    const error: unknown = await db.whenSynced({ timeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TidelineClientError);
    expect(error).toMatchObject({ code: 'TIMEOUT', status: { state: 'offline', pending: 1 } });
    expect(readServerState(server.dataDir).docs['notes']?.['held']).toBeUndefined();

    db.goOnline();
    await db.whenSynced({ timeoutMs: 10_000 });
    expect(readServerState(server.dataDir).docs['notes']?.['held']).toMatchObject({ text: 'held back' });
  });

  it("another client's applied event names the collection and ids that changed", async () => {
    const writer = await openAs({ token: token('writer') });
    const reader = await openAs({ token: token('reader') });
    await Promise.all([writer.whenSynced(), reader.whenSynced()]);
    const seen: AppliedEvent[] = [];
    reader.on((e) => {
      if (e.type === 'applied') seen.push(e);
    });
    await writer.mutate.put({ collection: 'notes', doc: { id: 'told', text: 'news', createdAt: 2 } });
    await waitFor('the reader to apply it', () => seen.some((e) => e.changed['notes']?.includes('told')), 10_000);
    expect(seen.every((e) => !e.snapshot)).toBe(true);
  });

  it('opens with getToken alone, and asks it again when the server refuses an expired token', async () => {
    const expired = token('refresher', 2 * 3600_000, 60);
    const fresh = token('refresher');
    const handed: string[] = [];
    const db = await openAs({
      getToken: async () => {
        const t = handed.length === 0 ? expired : fresh;
        handed.push(t);
        return t;
      },
    });
    expect(db.userId).toBe('refresher');
    await db.whenSynced({ timeoutMs: 10_000 });
    expect(handed).toEqual([expired, fresh]);
  });

  it('a session whose token expires gets a fresh one from getToken and keeps syncing', async () => {
    const handed: string[] = [];
    const db = await openAs({
      getToken: () => {
        // The first token lives 2 s; the server ends the session then, and the client asks again.
        const t = handed.length === 0 ? token('renewer', 0, 2) : token('renewer');
        handed.push(t);
        return t;
      },
    });
    await db.whenSynced({ timeoutMs: 10_000 });
    await waitFor('the server to end the session and the client to renew it', () => handed.length === 2, 15_000);
    await db.mutate.put({ collection: 'notes', doc: { id: 'renewed', text: 'after renewal', createdAt: 4 } });
    await db.whenSynced({ timeoutMs: 10_000 });
    expect(readServerState(server.dataDir).docs['notes']?.['renewed']).toMatchObject({ text: 'after renewal' });
    expect(db.status().state).toBe('live');
  });

  it('whenSynced rejects with the engine error once a refused token stops it', async () => {
    const db = await openAs({ token: token('stale', 2 * 3600_000, 60) });
    const error: unknown = await db.whenSynced({ timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TidelineError);
    expect(error).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(db.status().state).toBe('failed');
    // A mutation made now stays queued, and waiting for it ends with the same error instead of hanging.
    const handle = await db.mutate.put({ collection: 'notes', doc: { id: 'stuck', text: 'queued', createdAt: 5 } });
    await expect(handle.confirmed()).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await db.mutationState(handle.seq)).toEqual({ status: 'pending' });
  });
});

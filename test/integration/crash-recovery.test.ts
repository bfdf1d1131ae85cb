import 'fake-indexeddb/auto';
import { afterAll, describe, expect, it } from 'vitest';
import { open } from '../../client/lib/open';
import { storeSchema } from '../../shared/apps/store';
import { ackRecordingTransport } from '../support/ack-recorder';
import { localDocs, tokenFor } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { removeDir, startServerProcess, tempDataDir } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { readServerState } from '../support/server-state';
import { waitFor } from '../support/wait';

const CLIENTS = 3;
const MUTATIONS = 150;

describe('kill -9 of the primary during a stream of mutations', () => {
  const dataDir = tempDataDir();
  const servers: ServerProcess[] = [];
  const clients: NodeClient[] = [];
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const s of servers) await s.stop();
    removeDir(dataDir);
  });

  it('keeps every acked mutation, and the rest are retried and commit once', async () => {
    const first = await startServerProcess({ dataDir });
    servers.push(first);
    const port = Number(new URL(first.url).port);
    /** (clientId#seq) of every mutation a client saw acked as committed. */
    const acked = new Set<string>();
    for (let i = 0; i < CLIENTS; i++) {
      const holder: { c: NodeClient | null } = { c: null };
      const c = await open(storeSchema, {
        servers: [first.url],
        token: tokenFor(`crash-${i}`),
        dbName: `crash-${process.pid}-${i}`,
        connect: ackRecordingTransport(acked, () => holder.c?.engine.clientId ?? null),
        requestTimeoutMs: 3000,
      });
      holder.c = c;
      clients.push(c);
    }
    await waitFor('live', () => clients.every((c) => c.status().state === 'live'));

    const writers = clients.map(async (c, i) => {
      for (let n = 0; n < MUTATIONS; n++) {
        await c.mutate.put({ collection: 'notes', doc: { id: `c${i}-${n}`, n, createdAt: n } });
        await new Promise((r) => setImmediate(r));
      }
    });
    // Kill at a moment that depends on the run: once some, but not all, mutations are acked.
    const killAt = 30 + Math.floor(Math.random() * 150);
    await waitFor(`${killAt} acks`, () => acked.size >= killAt);
    await first.kill9();
    const ackedAtKill = new Set(acked);

    const second = await startServerProcess({ dataDir, port });
    servers.push(second);
    await Promise.all(writers);
    await waitFor(
      'all drained after restart',
      () => clients.every((c) => c.status().pending === 0 && c.status().state === 'live'),
      60_000,
    );

    const state = readServerState(dataDir);
    for (const key of ackedAtKill) expect(state.commitsPerMutation.get(key), `acked ${key} survives`).toBe(1);
    const ids = clients.map((c) => c.engine.clientId!);
    for (const id of ids) {
      for (let seq = 1; seq <= MUTATIONS; seq++)
        expect(state.commitsPerMutation.get(`${id}#${seq}`), `${id}#${seq}`).toBe(1);
      expect(state.lastSeq.get(id)).toBe(MUTATIONS);
    }
    const written = Array.from({ length: CLIENTS }, (_, i) =>
      Array.from({ length: MUTATIONS }, (_, n) => [`c${i}-${n}`, { id: `c${i}-${n}`, n, createdAt: n }] as const),
    ).flat();
    expect(state.docs['notes']).toEqual(Object.fromEntries(written));
    for (const c of clients) {
      await waitFor('converged', async () => Object.keys(await localDocs(c, 'notes')).length === CLIENTS * MUTATIONS);
      expect(await localDocs(c, 'notes')).toEqual(state.docs['notes']);
    }
  });
});

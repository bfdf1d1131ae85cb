import 'fake-indexeddb/auto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { open } from '../../client/lib/open';
import { storeSchema } from '../../shared/apps/store';
import { ackRecordingTransport } from '../support/ack-recorder';
import { localDocs, tokenFor } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { removeDir, startServerProcess, tempDataDir } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { readLogAndDocs, readServerState } from '../support/server-state';
import { waitFor } from '../support/wait';

interface Status {
  role: string;
  term: number;
  headLsn: number;
  replicas: Array<{ appliedLsn: number; connected: boolean }>;
  minSyncReplicas: { required: number; caughtUp: number; met: boolean };
  rollbackFiles: string[];
}

const CLIENTS = 3;
const MUTATIONS = 120;

describe('failover with minSyncReplicas = 1', () => {
  const servers: ServerProcess[] = [];
  const clients: NodeClient[] = [];
  const primaryDir = tempDataDir('tideline-fo-primary-');
  const replicaDir = tempDataDir('tideline-fo-replica-');
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const s of servers) await s.stop();
    removeDir(primaryDir);
    removeDir(replicaDir);
  });

  it('loses no acked mutation when the primary is killed; clients fail over; the old primary steps down with its tail set aside', async () => {
    const primary = await startServerProcess({ dataDir: primaryDir, args: ['--no-seed', '--min-sync-replicas', '1'] });
    servers.push(primary);
    const replica = await startServerProcess({ dataDir: replicaDir, args: ['--no-seed', '--primary', primary.url] });
    servers.push(replica);
    await waitFor('replica connected', async () => (await primary.admin<Status>('/status')).minSyncReplicas.met);

    const acked = new Set<string>();
    for (let i = 0; i < CLIENTS; i++) {
      const holder: { c: NodeClient | null } = { c: null };
      holder.c = await open(storeSchema, {
        servers: [primary.url, replica.url],
        token: tokenFor(`fo-${i}`),
        dbName: `failover-${process.pid}-${i}`,
        connect: ackRecordingTransport(acked, () => holder.c?.engine.clientId ?? null),
        requestTimeoutMs: 2000,
      });
      clients.push(holder.c);
    }
    await waitFor('clients live', () => clients.every((c) => c.status().state === 'live'));
    const writers = clients.map(async (c, i) => {
      for (let n = 0; n < MUTATIONS; n++) {
        await c.mutate.put({ collection: 'notes', doc: { id: `fo${i}-${n}`, n, createdAt: n } });
        await new Promise((r) => setImmediate(r));
      }
    });
    await waitFor('some acks', () => acked.size >= 40);

    // Take the replica down so the primary commits a tail it cannot replicate (and so cannot ack), then kill it.
    const replicaPort = Number(new URL(replica.url).port);
    await replica.stop();
    const replicated = (await primary.admin<Status>('/status')).replicas[0]?.appliedLsn ?? 0;
    await waitFor(
      'an unreplicated tail',
      async () => (await primary.admin<Status>('/status')).headLsn >= replicated + 3,
    );
    const ackedAtKill = new Set(acked);
    const oldHead = (await primary.admin<Status>('/status')).headLsn;
    const killedAt = Date.now();
    await primary.kill9();
    const promotable = await startServerProcess({
      dataDir: replicaDir,
      port: replicaPort,
      args: ['--no-seed', '--primary', primary.url],
    });
    servers.push(promotable);
    const promoted = await promotable.admin<{ term: number; headLsn: number }>('/promote', {});
    expect(promoted.term).toBe(2);
    expect(promoted.headLsn).toBeLessThan(oldHead);

    await waitFor(
      'a client commits on the new primary',
      async () => (await promotable.admin<Status>('/status')).headLsn > promoted.headLsn,
    );
    const recoveryMs = Date.now() - killedAt;
    console.log(`failover: kill -9 to the first commit on the promoted replica took ${recoveryMs} ms`);

    await Promise.all(writers);
    await waitFor(
      'clients drained on the new primary',
      () =>
        clients.every(
          (c) => c.status().pending === 0 && c.status().state === 'live' && c.status().server === promotable.url,
        ),
      60_000,
    );
    const state = readServerState(replicaDir);
    for (const key of ackedAtKill)
      expect(state.commitsPerMutation.get(key), `acked ${key} is on the new primary`).toBe(1);
    for (const c of clients) {
      for (let seq = 1; seq <= MUTATIONS; seq++) {
        expect(state.commitsPerMutation.get(`${c.engine.clientId}#${seq}`), `${c.engine.clientId}#${seq}`).toBe(1);
      }
    }
    for (const c of clients) {
      await waitFor('client converged', async () =>
        isDeepStrictEqual(await localDocs(c, 'notes'), state.docs['notes']),
      );
    }

    // The old primary comes back: it finds the higher term, steps down, and sets its tail aside.
    const oldPort = Number(new URL(primary.url).port);
    const back = await startServerProcess({
      dataDir: primaryDir,
      port: oldPort,
      args: ['--no-seed', '--peers', promotable.url],
    });
    servers.push(back);
    await waitFor('old primary follows the new one', async () => {
      const [s, p] = await Promise.all([back.admin<Status>('/status'), promotable.admin<Status>('/status')]);
      return s.role === 'replica' && s.headLsn === p.headLsn && s.term === 2;
    });
    const status = await back.admin<Status>('/status');
    expect(status.rollbackFiles).toEqual([
      expect.stringMatching(
        new RegExp(`^${primaryDir}/rollback/rollback-${promoted.headLsn + 1}-${oldHead}-.*\\.jsonl$`),
      ),
    ]);
    // Private like the store it came from.
    expect(statSync(status.rollbackFiles[0]!).mode & 0o777).toBe(0o600);
    const tail = readFileSync(status.rollbackFiles[0]!, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { lsn: number; term: number });
    expect(tail.map((c) => c.lsn)).toEqual(
      Array.from({ length: oldHead - promoted.headLsn }, (_, i) => promoted.headLsn + 1 + i),
    );
    expect(tail.every((c) => c.term === 1)).toBe(true);
    expect(readLogAndDocs(join(primaryDir, 'tideline.db')).docs).toEqual(
      readLogAndDocs(join(replicaDir, 'tideline.db')).docs,
    );
    // It refuses writes: a client hello gets NOT_PRIMARY pointing at the new primary.
    const res = await fetch(`${back.url}/healthz`);
    expect(((await res.json()) as { role: string }).role).toBe('replica');
  });
});

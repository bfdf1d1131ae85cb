import { join } from 'node:path';
import { io } from 'socket.io-client';
import { afterAll, describe, expect, it } from 'vitest';
import { helloAckSchema } from '../../shared/protocol/hello';
import { openClient, tokenFor } from '../support/node-client';
import type { NodeClient } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import { removeDir, startServerProcess, tempDataDir } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { pushAckSchema } from '../../shared/protocol/push';
import { docsAsOf, readLogAndDocs, readOutcomes } from '../support/server-state';
import { waitFor } from '../support/wait';

interface Status {
  role: string;
  term: number;
  headLsn: number;
  horizon: number;
  replicas: Array<{
    replicaId: string;
    url: string | null;
    connected: boolean;
    live: boolean;
    appliedLsn: number;
    lagLsn: number;
    lagMs: number;
  }>;
  minSyncReplicas: { required: number; caughtUp: number; met: boolean };
  rollbackFiles: string[];
}

const db = (dir: string): string => join(dir, 'tideline.db');

describe('server replicas', () => {
  const servers: ServerProcess[] = [];
  const clients: NodeClient[] = [];
  const dirs: string[] = [];
  const dir = (): string => {
    const d = tempDataDir('tideline-repl-');
    dirs.push(d);
    return d;
  };
  const start = async (args: string[], dataDir = dir(), port?: number): Promise<ServerProcess> => {
    const s = await startServerProcess({ dataDir, args: ['--no-seed', ...args], ...(port ? { port } : {}) });
    servers.push(s);
    return s;
  };
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const s of servers) await s.stop();
    for (const d of dirs) removeDir(d);
  });

  const writeNotes = async (client: NodeClient, prefix: string, n: number): Promise<void> => {
    for (let i = 0; i < n; i++)
      await client.mutate.put({ collection: 'notes', doc: { id: `${prefix}${i}`, i, createdAt: i } });
  };
  /** Mutations that write nothing, as a raw client: a no-op (deleting nothing) and two refusals; their outcomes must replicate. */
  const refusals = async (url: string, clientId: string): Promise<void> => {
    const raw = await rawClient(url);
    try {
      expect(helloAckSchema.parse(await raw.hello(tokenFor(`${clientId}-user`), clientId)).ok).toBe(true);
      const ack = pushAckSchema.parse(
        await raw.request('push', {
          mutations: [
            { seq: 1, name: 'put', args: { collection: 'notes', doc: { id: `${clientId}-n`, v: 1, createdAt: 1 } } },
            { seq: 2, name: 'delete', args: { collection: 'notes', id: `${clientId}-absent` } },
            {
              seq: 3,
              name: 'put',
              args: {
                collection: 'products',
                doc: { id: 'p', name: 'P', category: 'c', price: 1, stock: 1, rating: 1 },
              },
            },
            { seq: 4, name: 'noSuchMutator', args: {} },
          ],
        }),
      );
      expect(ack.ok && ack.results.map((r) => (r.status === 'rejected' ? r.error.code : r.status))).toEqual([
        'applied',
        'applied',
        'FORBIDDEN',
        'UNKNOWN_MUTATOR',
      ]);
    } finally {
      raw.close();
    }
  };
  const sameOutcomes = (a: string, b: string): void => {
    const theirs = readOutcomes(db(a));
    expect(theirs.rejections.map((r) => r.code)).toEqual(expect.arrayContaining(['FORBIDDEN', 'UNKNOWN_MUTATOR']));
    expect(readOutcomes(db(b))).toEqual(theirs);
  };
  const drained = (c: NodeClient): Promise<void> =>
    waitFor('client drained', () => c.status().pending === 0 && c.status().state === 'live', 60_000);
  const sameLog = async (a: ServerProcess, b: ServerProcess): Promise<void> => {
    await waitFor('replica at the primary head', async () => {
      const [sa, sb] = await Promise.all([a.admin<Status>('/status'), b.admin<Status>('/status')]);
      return sa.headLsn === sb.headLsn;
    });
  };

  it('a replica started late catches up to an identical store; restarted mid-stream it resumes with no gap', async () => {
    const primary = await start([]);
    const writer = await openClient([primary.url], 'repl-writer');
    clients.push(writer);
    await writeNotes(writer, 'a', 200);
    await drained(writer);
    await refusals(primary.url, 'refused-early');

    const replicaDir = dir();
    let replica = await start(['--primary', primary.url], replicaDir);
    await sameLog(primary, replica);
    const p = readLogAndDocs(db(primary.dataDir));
    expect(p.outcomes.map((o) => o.code)).toEqual([null, 'FORBIDDEN', 'UNKNOWN_MUTATOR']);
    expect(readLogAndDocs(db(replicaDir))).toEqual(p);
    sameOutcomes(primary.dataDir, replicaDir);

    // Restart the replica while writes go on.
    const more = writeNotes(writer, 'b', 300);
    await waitFor('some of the second batch', async () => (await primary.admin<Status>('/status')).headLsn > 250);
    await replica.kill9();
    replica = await start(['--primary', primary.url], replicaDir, Number(new URL(replica.url).port));
    await more;
    await drained(writer);
    await sameLog(primary, replica);
    await refusals(primary.url, 'refused-live');
    await sameLog(primary, replica);
    const after = readLogAndDocs(db(replicaDir));
    expect(after).toEqual(readLogAndDocs(db(primary.dataDir)));
    // 500 notes and 2 from the raw clients, with 3 outcome entries each: no LSN missing.
    expect([...after.changes, ...after.outcomes].map((c) => c.lsn).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 508 }, (_, i) => i + 1),
    );
    sameOutcomes(primary.dataDir, replicaDir);

    // The primary learns what the replica applied from its acks, a moment after the replica has it.
    await waitFor('the primary has the replica ack', async () =>
      (await primary.admin<Status>('/status')).replicas.some((r) => r.appliedLsn === 508),
    );
    const status = await primary.admin<Status>('/status');
    expect(status.replicas).toEqual([
      expect.objectContaining({ url: replica.url, connected: true, live: true, appliedLsn: 508, lagLsn: 0 }),
    ]);

    // Reads spread across nodes: the same query API on both; writes on the replica are refused.
    const query = '/query/notes?filter=createdAt:gte:295&orderBy=createdAt&order=desc&limit=3';
    const fromPrimary = (await (await fetch(primary.url + query)).json()) as { docs: Array<{ id: string }> };
    const fromReplica = (await (await fetch(replica.url + query)).json()) as { docs: Array<{ id: string }> };
    expect(fromReplica.docs.map((d) => d.id)).toEqual(['b299', 'b298', 'b297']);
    expect(fromReplica.docs).toEqual(fromPrimary.docs);
    const bad = await fetch(`${replica.url}/query/notes?filter=text:eq:x`);
    expect(bad.status).toBe(400);
    const raw = await rawClient(replica.url);
    const hello = helloAckSchema.parse(await raw.hello(tokenFor('someone'), 'to-replica-01'));
    raw.close();
    expect(hello.ok ? null : hello.error).toMatchObject({ code: 'NOT_PRIMARY', primary: primary.url });
  });

  it('a replica behind the horizon recovers through a snapshot', async () => {
    const primary = await start([]);
    const writer = await openClient([primary.url], 'horizon-writer');
    clients.push(writer);
    const replicaDir = dir();
    let replica = await start(['--primary', primary.url], replicaDir);
    await writeNotes(writer, 'h', 50);
    await drained(writer);
    await sameLog(primary, replica);
    await replica.stop();

    await writeNotes(writer, 'k', 50);
    for (let i = 0; i < 10; i++) await writer.mutate.delete({ collection: 'notes', id: `h${i}` });
    await drained(writer);
    await refusals(primary.url, 'refused-compacted');
    const compacted = await primary.admin<{ horizon: number }>('/compact', {});
    expect(compacted.horizon).toBe(114);

    replica = await start(['--primary', primary.url], replicaDir);
    await sameLog(primary, replica);
    const r = readLogAndDocs(db(replicaDir));
    expect(r.docs).toEqual(readLogAndDocs(db(primary.dataDir)).docs);
    expect(r.head).toBe(114);
    expect(r.changes).toEqual([]);
    expect(r.outcomes).toEqual([]);
    // Through the snapshot it learned every client's last seq and the rejections it must answer for.
    sameOutcomes(primary.dataDir, replicaDir);
  });

  it('refuses a wrong cluster secret on /replication and a wrong admin token', async () => {
    const primary = await start([]);
    const error = await new Promise<string>((resolve) => {
      const s = io(`${primary.url}/replication`, {
        transports: ['websocket'],
        auth: { secret: 'wrong' },
        reconnection: false,
      });
      s.on('connect', () => resolve('connected'));
      s.on('connect_error', (err: Error) => {
        s.close();
        resolve(err.message);
      });
    });
    expect(error).toMatch(/UNAUTHORIZED/);
    expect((await fetch(`${primary.url}/admin/status`)).status).toBe(401);
    expect(
      (await fetch(`${primary.url}/admin/promote`, { method: 'POST', headers: { authorization: 'Bearer x' } })).status,
    ).toBe(401);
    expect((await fetch(`${primary.url}/cluster/info`)).status).toBe(401);
  });

  it('a backup taken during writes restores to the primary at its LSN, then catches up', async () => {
    const primary = await start([]);
    const writer = await openClient([primary.url], 'backup-writer');
    clients.push(writer);
    await writeNotes(writer, 'x', 100);
    await refusals(primary.url, 'refused-backup');
    const during = writeNotes(writer, 'y', 200);
    await waitFor('writes in flight', async () => (await primary.admin<Status>('/status')).headLsn > 150);
    const backup = await primary.admin<{ path: string; lsn: number }>('/backup', {});
    await during;
    await drained(writer);
    expect(backup.lsn).toBeGreaterThan(150);
    const atBackup = readLogAndDocs(backup.path);
    expect(atBackup.head).toBe(backup.lsn);
    expect(atBackup.docs).toEqual(docsAsOf(db(primary.dataDir), backup.lsn));

    const restored = await start(['--restore', backup.path, '--primary', primary.url]);
    await sameLog(primary, restored);
    expect(readLogAndDocs(db(restored.dataDir)).docs).toEqual(readLogAndDocs(db(primary.dataDir)).docs);
    sameOutcomes(primary.dataDir, restored.dataDir);
    await waitFor('the primary has the restored replica ack', async () => {
      const st = await primary.admin<Status>('/status');
      return st.replicas.some((r) => r.connected && r.appliedLsn === st.headLsn);
    });
    const status = await primary.admin<Status>('/status');
    expect(status.replicas.filter((r) => r.connected)).toEqual([
      expect.objectContaining({ url: restored.url, appliedLsn: status.headLsn, lagLsn: 0 }),
    ]);
  });
});

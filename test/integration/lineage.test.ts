import { join } from 'node:path';
import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../../server/index';
import type { ReplicationOptions, TidelineServer } from '../../server/index';
import { storeSchema } from '../../shared/apps/store';
import { TidelineError } from '../../shared/errors';
import { followAckSchema } from '../../shared/protocol/replication';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { restoreBackup } from '../../server/store/backup';
import { adminPutProduct } from '../support/admin-put';
import {
  removeDir,
  startServerProcess,
  TEST_ADMIN_TOKEN,
  TEST_CLUSTER_SECRET,
  TEST_SECRET,
  tempDataDir,
} from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { waitFor } from '../support/wait';

interface Status {
  role: string;
  clusterId: string | null;
  headLsn: number;
  primary: {
    url: string;
    state: string;
    lastError: { code: string; message: string; retryable: boolean } | null;
    action: string | null;
  } | null;
  replicas: Array<{ replicaId: string; live: boolean; connected: boolean }>;
}

const status = (s: ServerProcess): Promise<Status> => s.admin<Status>('/status');

async function queryProducts(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}/query/products?limit=1000`, {
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
  });
  return { status: res.status, body: await res.json() };
}

const productIds = (body: unknown): string[] =>
  ((body as { docs: Array<{ id: string }> }).docs ?? []).map((d) => d.id).sort();

/**
 * Lineage (issue 9, item 10): a replica follows only with data of its
 * primary's history. A backup of another cluster, or a copy of this cluster
 * that took writes of its own, is refused for good, and that node serves no
 * reads as if its data were this cluster's.
 */
describe('lineage: a replica follows only with its primary’s history', () => {
  const servers: ServerProcess[] = [];
  const dirs: string[] = [];
  let clusterA: ServerProcess;
  let clusterB: ServerProcess;
  let backupOfA: string;

  const start = async (args: string[], dataDir?: string): Promise<ServerProcess> => {
    const dir = dataDir ?? tempDataDir('tideline-lineage-');
    if (!dataDir) dirs.push(dir);
    const server = await startServerProcess({ dataDir: dir, args: ['--no-seed', ...args] });
    servers.push(server);
    return server;
  };

  beforeAll(async () => {
    clusterA = await start([]);
    clusterB = await start([]);
    for (let i = 0; i < 5; i++) await adminPutProduct(clusterA.url, `a${i}`);
    for (let i = 0; i < 3; i++) await adminPutProduct(clusterB.url, `b${i}`);
    backupOfA = (await clusterA.admin<{ path: string }>('/backup', {})).path;
  }, 60_000);

  afterAll(async () => {
    for (const s of servers) await s.stop();
    for (const dir of dirs) removeDir(dir);
  });

  it('gives every primary a cluster id of its own', async () => {
    const [a, b] = [await status(clusterA), await status(clusterB)];
    expect(a.clusterId).toMatch(/^[0-9a-f-]{36}$/);
    expect(b.clusterId).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.clusterId).not.toBe(b.clusterId);
  });

  it('refuses a backup of cluster A restored as a replica of primary B: not live, no reads, status and log say why', async () => {
    const replica = await start(['--restore', backupOfA, '--primary', clusterB.url]);
    await waitFor('the follow refused', async () => (await status(replica)).primary?.state === 'refused', 15_000);
    const s = await status(replica);
    expect(s.role).toBe('replica');
    // It keeps its own lineage: it never adopts B's id.
    expect(s.clusterId).toBe((await status(clusterA)).clusterId);
    expect(s.primary?.lastError).toMatchObject({ code: 'LINEAGE_MISMATCH', retryable: false });
    expect(s.primary?.lastError?.message).toContain((await status(clusterB)).clusterId);
    expect(s.primary?.action).toMatch(/restore a backup of this cluster/);
    expect(s.primary?.action).toMatch(/move .* aside/);
    // Reads answer a retryable not-ready code, not cluster A's products as if they were B's.
    const read = await queryProducts(replica.url);
    expect(read.status).toBe(503);
    expect(read.body).toMatchObject({ error: { code: 'NOT_READY', retryable: true } });
    expect(JSON.stringify(read.body)).toContain('LINEAGE_MISMATCH');
    // The operator is told what to do.
    expect(replica.output()).toMatch(/refused to be followed: LINEAGE_MISMATCH/);
    expect(replica.output()).toMatch(/--restore FILE --primary/);
    // B took it on in no way: nothing of it follows there.
    expect((await status(clusterB)).replicas.filter((r) => r.connected)).toEqual([]);
  }, 40_000);

  it('refuses a copy of the same cluster whose history diverged at its checkpoint', async () => {
    // A copy of A started as a primary of its own takes writes at the LSNs where A takes others (both term 1).
    const forkDir = tempDataDir('tideline-lineage-fork-');
    dirs.push(forkDir);
    // (--restore insists on --primary: an operator lays the copy down by hand, as restoreBackup does.)
    restoreBackup(backupOfA, forkDir);
    const fork = await start([], forkDir);
    expect((await status(fork)).role).toBe('primary');
    for (let i = 0; i < 2; i++) await adminPutProduct(fork.url, `fork${i}`);
    for (let i = 5; i < 9; i++) await adminPutProduct(clusterA.url, `a${i}`);
    const forkHead = (await status(fork)).headLsn;
    expect((await status(clusterA)).headLsn).toBeGreaterThan(forkHead);
    await fork.stop();

    const again = await start(['--primary', clusterA.url], forkDir);
    await waitFor('the follow refused', async () => (await status(again)).primary?.state === 'refused', 15_000);
    const s = await status(again);
    expect(s.primary?.lastError).toMatchObject({ code: 'LINEAGE_MISMATCH', retryable: false });
    expect(s.primary?.lastError?.message).toMatch(new RegExp(`change at LSN ${forkHead} is not this primary's`));
    expect(s.headLsn).toBe(forkHead);
    expect((await queryProducts(again.url)).status).toBe(503);
  }, 40_000);

  it('lets a backup of the same cluster restored as its replica catch up and serve, and a new replica adopt the id', async () => {
    const restored = await start(['--restore', backupOfA, '--primary', clusterA.url]);
    const fresh = await start(['--primary', clusterA.url]);
    const a = await status(clusterA);
    for (const replica of [restored, fresh]) {
      await waitFor(
        'caught up and live',
        async () => {
          const s = await status(replica);
          return s.primary?.state === 'live' && s.headLsn === a.headLsn;
        },
        15_000,
      );
      const s = await status(replica);
      expect(s.clusterId).toBe(a.clusterId);
      expect(s.primary?.lastError).toBeNull();
      expect(s.primary?.action).toBeNull();
      const read = await queryProducts(replica.url);
      expect(read.status).toBe(200);
      expect(productIds(read.body)).toEqual(productIds((await queryProducts(clusterA.url)).body));
    }
  }, 40_000);

  it('refuses a follower of an older replication protocol with a clear PROTOCOL_MISMATCH', async () => {
    const socket = io(`${clusterA.url}/replication`, {
      transports: ['websocket'],
      auth: { secret: TEST_CLUSTER_SECRET },
      reconnection: false,
      forceNew: true,
    });
    try {
      await new Promise<void>((ok, fail) => {
        socket.once('connect', () => ok());
        socket.once('connect_error', fail);
      });
      // A version 3 follow: no clusterId, no checkpointEntry.
      const old = PROTOCOL_VERSION - 1;
      const raw: unknown = await socket.timeout(5000).emitWithAck('follow', {
        protocol: old,
        replicaId: 'old-replica',
        url: null,
        term: 1,
        checkpoint: 0,
        checkpointTerm: 0,
      });
      const ack = followAckSchema.parse(raw);
      expect(ack).toMatchObject({ ok: false, error: { code: 'PROTOCOL_MISMATCH', retryable: false } });
      expect(ack.ok ? '' : ack.error.message).toContain(`replication protocol ${PROTOCOL_VERSION}, the replica ${old}`);
    } finally {
      socket.disconnect();
    }
  });
});

describe('lineage in process: createServer', () => {
  const servers: TidelineServer[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
    for (const dir of dirs) removeDir(dir);
  });

  const start = async (replication?: ReplicationOptions): Promise<TidelineServer> => {
    const dir = tempDataDir('tideline-lineage-inproc-');
    dirs.push(dir);
    const server = await createServer({
      schema: storeSchema,
      dataDir: join(dir, 'data'),
      port: 0,
      auth: { secret: TEST_SECRET },
      adminToken: TEST_ADMIN_TOKEN,
      log: () => {},
      ...(replication ? { replication: { clusterSecret: TEST_CLUSTER_SECRET, ...replication } } : {}),
    });
    servers.push(server);
    return server;
  };

  it("query() on a replica refused for another cluster's backup throws NOT_READY", async () => {
    const a = await start({});
    const b = await start({});
    await a.mutate('put', {
      collection: 'products',
      doc: { id: 'a0', name: 'a0', category: 'tools', price: 1, stock: 1, rating: 4 },
    });
    const res = await fetch(`${a.url}/admin/backup`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    const { path } = (await res.json()) as { path: string };
    const replica = await start({ restoreFrom: path, primaryUrl: b.url });
    const refused = (): Promise<unknown> =>
      replica.query('products').then(
        () => null,
        (err: unknown) => err,
      );
    await waitFor('reads refused', async () => (await refused()) !== null, 15_000);
    const err = await refused();
    expect(err).toBeInstanceOf(TidelineError);
    expect(err).toMatchObject({ code: 'NOT_READY', retryable: true });
    expect((err as TidelineError).hint).toMatch(/restore a backup of this cluster/);
  }, 40_000);
});

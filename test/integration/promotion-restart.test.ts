import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROLE_FILE } from '../../server/cluster/role-record';
import { helloAckSchema } from '../../shared/protocol/hello';
import { pushAckSchema } from '../../shared/protocol/push';
import type { MutationResult } from '../../shared/protocol/push';
import { tokenFor } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import { removeDir, startServerProcess, tempDataDir, TEST_CLUSTER_SECRET } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { waitFor } from '../support/wait';

interface Status {
  role: 'primary' | 'replica';
  serverId: string;
  term: number;
  headLsn: number;
  primary: { url: string | null; state: string } | null;
  replicas: Array<{ url: string | null; connected: boolean; appliedLsn: number }>;
}

interface ClusterInfo {
  role: 'primary' | 'replica';
  term: number;
  url: string;
  serverId: string;
}

let writes = 0;

/** One client write through /sync: a fresh client (seq 1) puts one note. */
async function writeNote(url: string): Promise<MutationResult> {
  writes += 1;
  const raw = await rawClient(url);
  try {
    const hello = helloAckSchema.parse(await raw.hello(tokenFor('restart-user'), `restart-writer-${writes}`));
    if (!hello.ok) throw new Error(`hello on ${url} refused: ${hello.error.code} ${hello.error.message}`);
    const ack = pushAckSchema.parse(
      await raw.request('push', {
        mutations: [
          { seq: 1, name: 'put', args: { collection: 'notes', doc: { id: `n${writes}`, createdAt: writes } } },
        ],
      }),
    );
    if (!ack.ok) throw new Error(`push on ${url} refused: ${ack.error.code} ${ack.error.message}`);
    return ack.results[0]!;
  } finally {
    raw.close();
  }
}

async function clusterInfo(url: string): Promise<ClusterInfo> {
  const res = await fetch(`${url}/cluster/info`, { headers: { 'x-tideline-cluster-secret': TEST_CLUSTER_SECRET } });
  expect(res.status).toBe(200);
  return (await res.json()) as ClusterInfo;
}

/** The node is the primary of `term`, says so on /admin/status and /cluster/info, and commits a client write. */
async function expectPrimaryAt(node: ServerProcess, term: number): Promise<void> {
  const status = await node.admin<Status>('/status');
  expect({ role: status.role, term: status.term, primary: status.primary }).toEqual({
    role: 'primary',
    term,
    primary: null,
  });
  const info = await clusterInfo(node.url);
  expect(info).toEqual({ role: 'primary', term, url: node.url, serverId: status.serverId });
  const result = await writeNote(node.url);
  expect(result).toEqual({ seq: 1, status: 'applied', lsn: status.headLsn + 1 });
}

describe('a promoted node restarted with its original command line', () => {
  const aDir = tempDataDir('tideline-pr-a-');
  const bDir = tempDataDir('tideline-pr-b-');
  const running: ServerProcess[] = [];
  const start = async (...args: Parameters<typeof startServerProcess>): Promise<ServerProcess> => {
    const node = await startServerProcess(...args);
    running.push(node);
    return node;
  };
  afterAll(async () => {
    for (const node of running) await node.kill9();
    removeDir(aDir);
    removeDir(bDir);
  });

  it('comes back as the primary of its term, and the old primary, back with --peers, follows it', async () => {
    const a = await start({ dataDir: aDir });
    const aPort = Number(new URL(a.url).port);
    // B's command line for its whole life: a replica of A, with A as its peer.
    const bArgs = ['--no-seed', '--primary', a.url, '--peers', a.url];
    const b = await start({ dataDir: bDir, args: bArgs });
    const bPort = Number(new URL(b.url).port);

    expect((await writeNote(a.url)).status).toBe('applied');
    expect((await writeNote(a.url)).status).toBe('applied');
    const aHead = (await a.admin<Status>('/status')).headLsn;
    await waitFor('B caught up with A', async () => (await b.admin<Status>('/status')).headLsn === aHead, 10_000);

    await a.kill9();
    const promoted = await b.admin<{ term: number; headLsn: number }>('/promote', {});
    expect(promoted).toEqual({ term: 2, headLsn: aHead });

    // kill -9 right after the promotion answered: the decision must already be on disk.
    await b.kill9();
    const b2 = await start({ dataDir: bDir, port: bPort, args: bArgs, timeoutMs: 15_000 });
    expect(b2.output()).toContain('tideline primary listening on');
    await expectPrimaryAt(b2, 2);

    // A clean stop (SIGTERM) and the same command line again.
    await b2.stop();
    const b3 = await start({ dataDir: bDir, port: bPort, args: bArgs, timeoutMs: 15_000 });
    await expectPrimaryAt(b3, 2);

    // The old primary comes back with --peers B: it finds term 2 and follows B. One primary, not two, not zero.
    const a2 = await start({ dataDir: aDir, port: aPort, args: ['--no-seed', '--peers', b3.url], timeoutMs: 15_000 });
    await waitFor(
      'A follows B at term 2',
      async () => {
        const [sa, sb] = await Promise.all([a2.admin<Status>('/status'), b3.admin<Status>('/status')]);
        return (
          sa.role === 'replica' &&
          sa.term === 2 &&
          sa.primary?.url === b3.url &&
          sa.primary.state === 'live' &&
          sa.headLsn === sb.headLsn
        );
      },
      15_000,
    );
    expect((await clusterInfo(a2.url)).role).toBe('replica');
    expect((await b3.admin<Status>('/status')).role).toBe('primary');

    // B restarts once more while A, up, is its replica: A points B's --primary back at B itself.
    // B must neither follow A nor itself; it stays primary, and A follows it again.
    await b3.stop();
    const b4 = await start({ dataDir: bDir, port: bPort, args: bArgs, timeoutMs: 15_000 });
    await expectPrimaryAt(b4, 2);
    const head = (await b4.admin<Status>('/status')).headLsn;
    await waitFor(
      'A caught up with B again',
      async () => {
        const sa = await a2.admin<Status>('/status');
        return sa.role === 'replica' && sa.primary?.url === b4.url && sa.headLsn === head;
      },
      15_000,
    );
    expect((await a2.admin<Status>('/status')).role).toBe('replica');
    expect((await b4.admin<Status>('/status')).role).toBe('primary');

    // Data from before promotions were recorded: B comes back as A's replica, and A's NOT_PRIMARY points
    // at B itself. B must not follow its own URL; an operator's promote then restores a primary.
    await b4.stop();
    rmSync(join(bDir, ROLE_FILE));
    const b5 = await start({ dataDir: bDir, port: bPort, args: bArgs, timeoutMs: 15_000 });
    await waitFor(
      'B hears from A that the primary is B',
      async () =>
        (await b5.admin<{ primary: { lastError: { code: string } | null } }>('/status')).primary?.lastError?.code ===
        'NOT_PRIMARY',
      10_000,
    );
    const stuck = await b5.admin<Status>('/status');
    expect({ role: stuck.role, following: stuck.primary?.url }).toEqual({ role: 'replica', following: a.url });
    expect(await b5.admin<{ term: number }>('/promote', {})).toMatchObject({ term: 3 });
    await expectPrimaryAt(b5, 3);
    const head3 = (await b5.admin<Status>('/status')).headLsn;
    await waitFor(
      'A follows B at term 3',
      async () => {
        const sa = await a2.admin<Status>('/status');
        return sa.role === 'replica' && sa.term === 3 && sa.headLsn === head3;
      },
      15_000,
    );

    // A higher term beats a promotion on record: with B down, A is promoted to term 4; B, restarted with
    // its original command line, asks its peer A first and follows it, and its record no longer says primary.
    await b5.stop();
    expect(await a2.admin<{ term: number }>('/promote', {})).toMatchObject({ term: 4 });
    const b6 = await start({ dataDir: bDir, port: bPort, args: bArgs, timeoutMs: 15_000 });
    expect(b6.output()).toContain('tideline replica listening on');
    await expectPrimaryAt(a2, 4);
    const head4 = (await a2.admin<Status>('/status')).headLsn;
    await waitFor(
      'B follows A at term 4',
      async () => {
        const sb = await b6.admin<Status>('/status');
        return sb.role === 'replica' && sb.term === 4 && sb.primary?.url === a2.url && sb.headLsn === head4;
      },
      15_000,
    );
    expect(JSON.parse(readFileSync(join(bDir, ROLE_FILE), 'utf8'))).toMatchObject({ role: 'replica', term: 3 });
  }, 120_000);
});

import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { JsonValue } from '../../shared/json';
import { helloAckSchema } from '../../shared/protocol/hello';
import { pushAckSchema } from '../../shared/protocol/push';
import type { MutationResult } from '../../shared/protocol/push';
import { tokenFor } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import type { RawClient } from '../support/raw-client';
import { removeDir, startServerProcess, tempDataDir } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { waitFor } from '../support/wait';

/** The usage table of a node's store, read beside the running server. */
function usageRows(dataDir: string): Array<{ collection: string; user_id: string; docs: number; bytes: number }> {
  const db = new Database(join(dataDir, 'tideline.db'), { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare('SELECT collection, user_id, docs, bytes FROM usage ORDER BY collection, user_id')
      .all() as Array<{ collection: string; user_id: string; docs: number; bytes: number }>;
  } finally {
    db.close();
  }
}

describe('quotas across a snapshot and a promotion', () => {
  const servers: ServerProcess[] = [];
  const raws: RawClient[] = [];
  const primaryDir = tempDataDir('tideline-quota-primary-');
  const replicaDir = tempDataDir('tideline-quota-replica-');
  afterAll(async () => {
    for (const r of raws) r.close();
    for (const s of servers) await s.stop();
    removeDir(primaryDir);
    removeDir(replicaDir);
  });

  async function pusher(url: string, user: string, clientId: string) {
    const raw = await rawClient(url);
    raws.push(raw);
    expect(helloAckSchema.parse(await raw.hello(tokenFor(user), clientId)).ok).toBe(true);
    let seq = 0;
    return async (mutations: Array<{ name: string; args: JsonValue }>): Promise<MutationResult[]> => {
      const ack = pushAckSchema.parse(
        await raw.request('push', { mutations: mutations.map((m) => ({ seq: ++seq, ...m })) }, 20_000),
      );
      if (!ack.ok) throw new Error(`push refused: ${ack.error.code} ${ack.error.message}`);
      return ack.results;
    };
  }
  const big = 'x'.repeat(60_000);
  const putNote = (id: string) => ({
    name: 'put',
    args: { collection: 'notes', doc: { id, text: big, createdAt: 1 } },
  });

  it('a replica built from a snapshot counts what each user holds as its primary did, and enforces it once promoted', async () => {
    const primary = await startServerProcess({ dataDir: primaryDir });
    servers.push(primary);
    const hoarder = await pusher(primary.url, 'hoarder', 'hoarder-quota-01');
    for (let batch = 0; batch < 5; batch++) {
      await hoarder(Array.from({ length: 15 }, (_, i) => putNote(`h-${batch * 15 + i}`)));
    }
    await hoarder([{ name: 'put', args: { collection: 'items', doc: { id: 'hoarder/i1', n: 1 } } }]);
    const [last] = await hoarder([putNote('h-more')]);
    expect(last).toMatchObject({ status: 'rejected', error: { code: 'QUOTA_EXCEEDED' } });
    // Compacted: a new replica cannot replay the log and starts from a snapshot.
    await primary.admin('/compact', {});
    const primaryUsage = usageRows(primaryDir);
    expect(primaryUsage.map((r) => `${r.collection}/${r.user_id}`)).toEqual(['items/hoarder', 'notes/hoarder']);

    const replica = await startServerProcess({ dataDir: replicaDir, args: ['--no-seed', '--primary', primary.url] });
    servers.push(replica);
    const head = (await primary.admin<{ headLsn: number }>('/status')).headLsn;
    await waitFor(
      'the replica has the snapshot',
      async () => (await replica.admin<{ headLsn: number }>('/status')).headLsn >= head,
    );
    expect(usageRows(replicaDir)).toEqual(primaryUsage);

    await primary.kill9();
    await replica.admin('/promote', {});
    const again = await pusher(replica.url, 'hoarder', 'hoarder-quota-02');
    const [refused] = await again([putNote('h-after')]);
    expect(refused).toMatchObject({ status: 'rejected', error: { code: 'QUOTA_EXCEEDED' } });
    const other = await pusher(replica.url, 'other', 'other-quota-01');
    expect((await other([putNote('o-1')]))[0]?.status).toBe('applied');
  });
});

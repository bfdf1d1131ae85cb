import { afterAll, describe, expect, it } from 'vitest';
import { helloAckSchema } from '../../shared/protocol/hello';
import { pushAckSchema } from '../../shared/protocol/push';
import { tokenFor } from '../support/node-client';
import { rawClient } from '../support/raw-client';
import type { RawClient } from '../support/raw-client';
import { removeDir, startServerProcess, tempDataDir } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { waitFor } from '../support/wait';

interface Status {
  headLsn: number;
  horizon: number;
  primary: { state: string } | null;
}

const note = (seq: number, id: string) => ({
  seq,
  name: 'put',
  args: { collection: 'notes', doc: { id, text: `note ${id}`, createdAt: seq } },
});

const FORBIDDEN = {
  ok: false,
  error: { code: 'FORBIDDEN', message: 'this client id belongs to another user', retryable: false },
};

/**
 * Client-id bindings (a client id belongs to the user of its first hello)
 * reach replicas, so after a failover another user still cannot claim a
 * known client id: with the log (`repl:changes.users`) and with a snapshot.
 */
describe('client-id bindings replicate', () => {
  const servers: ServerProcess[] = [];
  const raws: RawClient[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    for (const r of raws) r.close();
    for (const s of servers) await s.stop();
    for (const dir of dirs) removeDir(dir);
  });

  const start = async (args: string[]): Promise<ServerProcess> => {
    const dataDir = tempDataDir('tideline-bindings-');
    dirs.push(dataDir);
    const server = await startServerProcess({ dataDir, args: ['--no-seed', ...args] });
    servers.push(server);
    return server;
  };

  const connect = async (url: string): Promise<RawClient> => {
    const raw = await rawClient(url);
    raws.push(raw);
    return raw;
  };

  /** `user` says hello with `clientId` and writes one note as seq 1. */
  const writeAs = async (url: string, user: string, clientId: string): Promise<void> => {
    const raw = await connect(url);
    expect(helloAckSchema.parse(await raw.hello(tokenFor(user), clientId)).ok).toBe(true);
    const ack = pushAckSchema.parse(await raw.request('push', { mutations: [note(1, `${clientId}-1`)] }));
    expect(ack.ok && ack.results[0]?.status).toBe('applied');
    raw.close();
  };

  const helloAs = async (url: string, user: string, clientId: string): Promise<unknown> => {
    const raw = await connect(url);
    return helloAckSchema.parse(await raw.hello(tokenFor(user), clientId));
  };

  const caughtUp = async (replica: ServerProcess, primary: ServerProcess): Promise<void> => {
    const head = (await primary.admin<Status>('/status')).headLsn;
    await waitFor('the replica caught up', async () => {
      const s = await replica.admin<Status>('/status');
      return s.primary?.state === 'live' && s.headLsn >= head;
    });
  };

  it("after failover, bob's hello with alice's client id is FORBIDDEN on the promoted replica (bindings in the log)", async () => {
    const primary = await start([]);
    const replica = await start(['--primary', primary.url]);
    await waitFor('replica live', async () => (await replica.admin<Status>('/status')).primary?.state === 'live');
    await writeAs(primary.url, 'alice', 'alice-phone-0001');
    await caughtUp(replica, primary);

    await primary.kill9();
    await replica.admin('/promote', {});
    expect(await helloAs(replica.url, 'bob', 'alice-phone-0001')).toEqual(FORBIDDEN);
    // Alice still owns it there, with her last seq.
    expect(await helloAs(replica.url, 'alice', 'alice-phone-0001')).toMatchObject({ ok: true, lastSeq: 1 });
  }, 40_000);

  it('a replica filled from a snapshot holds every binding, also of a client that only said hello', async () => {
    const primary = await start([]);
    await writeAs(primary.url, 'alice', 'alice-laptop-0001');
    const carol = await helloAs(primary.url, 'carol', 'carol-tablet-0001');
    expect(carol).toMatchObject({ ok: true, lastSeq: 0 });
    // Compact the whole log: a new replica is below the horizon and gets a snapshot.
    await primary.admin('/compact', {});
    expect((await primary.admin<Status>('/status')).horizon).toBe((await primary.admin<Status>('/status')).headLsn);
    const replica = await start(['--primary', primary.url]);
    await caughtUp(replica, primary);

    await primary.kill9();
    await replica.admin('/promote', {});
    expect(await helloAs(replica.url, 'bob', 'alice-laptop-0001')).toEqual(FORBIDDEN);
    expect(await helloAs(replica.url, 'dave', 'carol-tablet-0001')).toEqual(FORBIDDEN);
  }, 40_000);
});

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, startServerProcess, TEST_ADMIN_TOKEN, tempDataDir } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';
import { waitFor } from '../support/wait';

/**
 * Read your writes on a replica (`GET /query?minLsn=N`), on a real primary
 * and replica: a write's LSN from `POST /admin/mutate`, then reads that wait
 * for it on the replica (woken as the follower applies the log), time out
 * with the retryable NOT_READY and the primary's URL, or are refused past
 * the cap on waiting reads; the primary answers at once.
 */

interface Answer {
  http: number;
  body: {
    headLsn?: number;
    docs?: Array<{ id: string }>;
    count?: number;
    error?: { code: string; retryable: boolean; primary?: string; message: string };
  };
}

const get = async (url: string): Promise<Answer> => {
  const res = await fetch(url);
  return { http: res.status, body: (await res.json()) as Answer['body'] };
};

async function write(url: string, id: string): Promise<number> {
  const res = await fetch(`${url}/admin/mutate`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
      'content-type': 'application/json',
      'idempotency-key': randomUUID(),
    },
    body: JSON.stringify({
      name: 'put',
      args: { collection: 'products', doc: { id, name: id, category: 'tools', price: 1, stock: 1, rating: 4 } },
    }),
  });
  const answer = (await res.json()) as { status: string; lsn: number };
  expect(answer.status).toBe('applied');
  return answer.lsn;
}

const headOf = async (url: string): Promise<number> => {
  const res = await fetch(`${url}/admin/status`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  return ((await res.json()) as { headLsn: number }).headLsn;
};

describe('read your writes on a replica (minLsn)', () => {
  const primaryDir = tempDataDir('tideline-ryw-p-');
  const replicaDir = tempDataDir('tideline-ryw-r-');
  let primary: ServerProcess;
  let replica: ServerProcess;

  beforeAll(async () => {
    primary = await startServerProcess({ dataDir: primaryDir, args: ['--no-seed'] });
    replica = await startServerProcess({
      dataDir: replicaDir,
      args: ['--no-seed', '--primary', primary.url, '--max-read-waiters', '2'],
    });
    const lsn = await write(primary.url, 'warm-up');
    await waitFor('the replica has the warm-up write', async () => (await headOf(replica.url)) >= lsn, 10_000);
  }, 30_000);

  afterAll(async () => {
    await replica?.stop();
    await primary?.stop();
    removeDir(primaryDir);
    removeDir(replicaDir);
  });

  it('answers a read that waits for a write on the replica with that write in it', async () => {
    // Asked before the write exists: the replica must hold it until the change arrives.
    const next = (await headOf(primary.url)) + 1;
    const read = get(`${replica.url}/query/products?filter=id:eq:p-ryw&minLsn=${next}`);
    const lsn = await write(primary.url, 'p-ryw');
    expect(lsn).toBe(next);
    const answer = await read;
    expect(answer.http).toBe(200);
    expect(answer.body.docs?.map((d) => d.id)).toEqual(['p-ryw']);
    expect(answer.body.headLsn).toBeGreaterThanOrEqual(lsn);
    // Counts and multi-gets take it too; already applied, they answer at once.
    const count = await get(`${replica.url}/query/products/count?filter=id:eq:p-ryw&minLsn=${lsn}`);
    expect(count).toMatchObject({ http: 200, body: { count: 1 } });
    const many = await get(`${replica.url}/query/products?ids=p-ryw&minLsn=${lsn}`);
    expect(many.body.docs?.map((d) => d.id)).toEqual(['p-ryw']);
  }, 20_000);

  it('answers NOT_READY (retryable, with the primary) once the wait bound passes', async () => {
    const head = await headOf(primary.url);
    const started = Date.now();
    const answer = await get(`${replica.url}/query/products?minLsn=${head + 1000}`);
    const took = Date.now() - started;
    expect(answer.http).toBe(503);
    expect(answer.body.error).toMatchObject({ code: 'NOT_READY', retryable: true, primary: primary.url });
    // The default bound is 2 s: it waited, and not much longer.
    expect(took).toBeGreaterThanOrEqual(1900);
    expect(took).toBeLessThan(6000);
    // A request may shorten the wait.
    const quick = Date.now();
    const short = await get(`${replica.url}/query/products/count?minLsn=${head + 1000}&waitMs=50`);
    expect(short.body.error?.code).toBe('NOT_READY');
    expect(Date.now() - quick).toBeLessThan(1500);
  }, 20_000);

  it('refuses reads past the cap on waiting ones with RATE_LIMITED', async () => {
    const far = (await headOf(primary.url)) + 1000;
    const waiting = [1, 2].map(() => get(`${replica.url}/query/products?minLsn=${far}&waitMs=1500`));
    // A read that would not wait (waitMs=0) takes no place: it is refused once both are held.
    await waitFor(
      'both reads are held',
      async () => (await get(`${replica.url}/query/products?minLsn=${far}&waitMs=0`)).http === 429,
      5000,
    );
    const third = await get(`${replica.url}/query/products?minLsn=${far}`);
    expect(third.http).toBe(429);
    expect(third.body.error).toMatchObject({ code: 'RATE_LIMITED', retryable: true });
    for (const w of await Promise.all(waiting)) expect(w.body.error?.code).toBe('NOT_READY');
    // The cap frees up as they end.
    const lsn = await headOf(replica.url);
    expect((await get(`${replica.url}/query/products?minLsn=${lsn}`)).http).toBe(200);
  }, 20_000);

  it('on the primary answers at once: at or below its head with results, past it with BAD_REQUEST', async () => {
    const lsn = await write(primary.url, 'p-primary');
    const now = await get(`${primary.url}/query/products?filter=id:eq:p-primary&minLsn=${lsn}`);
    expect(now.body.docs?.map((d) => d.id)).toEqual(['p-primary']);
    const started = Date.now();
    const ahead = await get(`${primary.url}/query/products?minLsn=${lsn + 1000}`);
    expect(ahead.http).toBe(400);
    expect(ahead.body.error?.code).toBe('BAD_REQUEST');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('refuses a minLsn or waitMs that is not a whole number, before any wait', async () => {
    for (const q of ['minLsn=abc', 'minLsn=-1', 'minLsn=1.5', 'minLsn=1&waitMs=x']) {
      const answer = await get(`${replica.url}/query/products?${q}`);
      expect(answer.http, q).toBe(400);
      expect(answer.body.error?.code, q).toBe('BAD_REQUEST');
    }
  });
});

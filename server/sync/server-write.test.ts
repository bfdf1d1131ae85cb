import { describe, expect, it } from 'vitest';
import { storeSchema } from '../../shared/apps/store';
import type { Clock } from '../../shared/clock';
import { TidelineError } from '../../shared/errors';
import { DEFAULT_LIMITS } from '../../shared/protocol/limits';
import { MemoryStore } from '../store/memory-store';
import { SERVER_ORIGIN_PREFIX } from '../store/store';
import { SYSTEM } from './server-write';
import { SyncCore } from './sync-core';

const DAY = 24 * 3600 * 1000;

function manualClock(start = 1_700_000_000_000): Clock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    setTimeout: () => null,
    clearTimeout: () => undefined,
    advance: (ms) => (now += ms),
  };
}

function makeCore(
  store = new MemoryStore(),
  options: { primary?: () => boolean; onCommit?: ConstructorParameters<typeof SyncCore>[0]['onCommit'] } = {},
) {
  const clock = manualClock();
  const core = new SyncCore({
    store,
    schema: storeSchema,
    clock,
    limits: DEFAULT_LIMITS,
    verifyToken: () => {
      throw new TidelineError('UNAUTHORIZED', 'no clients here');
    },
    schedule: (fn) => setImmediate(fn),
    role: () =>
      (options.primary?.() ?? true) ? { primary: true } : { primary: false, primaryUrl: 'http://primary.test' },
    ...(options.onCommit ? { onCommit: options.onCommit } : {}),
  });
  return { core, store, clock };
}

const note = (id: string) => ({ collection: 'notes', doc: { id, createdAt: 1 } });

describe('SyncCore.submit', () => {
  it('commits a keyed write once, also when the retry shares its group commit', async () => {
    const { core, store } = makeCore();
    const [a, b] = await Promise.all([
      core.submit(SYSTEM, 'inc', { collection: 'notes', id: 'x', field: 'n', by: 1 }, { idempotencyKey: 'k1' }),
      core.submit(SYSTEM, 'put', note('x'), { idempotencyKey: 'k1' }),
    ]);
    // The first of the two names the key: an inc of a missing note, rejected.
    expect(a).toMatchObject({ status: 'rejected', error: { code: 'NOT_FOUND' } });
    expect(b).toMatchObject({ status: 'duplicate', error: { code: 'NOT_FOUND' } });
    expect(store.getDoc('notes', 'x')).toBeUndefined();
  });

  it('gives every change of a server write one origin, so the log never splits it', async () => {
    const { core, store } = makeCore();
    await core.submit(SYSTEM, 'put', {
      collection: 'products',
      doc: { id: 'p', name: 'P', category: 'c', price: 1, stock: 5, rating: 1 },
    });
    const r = await core.submit(SYSTEM, 'checkout', {
      orderId: '~system/o1',
      lines: [{ productId: 'p', qty: 2 }],
      at: 1,
    });
    expect(r.status).toBe('applied');
    // An app mutator run by the system writes what it writes for ctx.userId; the order is owned by '~system'.
    const changes = store.readChanges(1, 10);
    expect(changes).toHaveLength(2);
    expect(new Set(changes.map((c) => c.clientId)).size).toBe(1);
    expect(changes[0]?.clientId?.startsWith(SERVER_ORIGIN_PREFIX)).toBe(true);
    expect(changes.map((c) => c.seq)).toEqual([1, 1]);
  });

  it('forgets a key after the retention period: a retry then commits again', async () => {
    const { core, store, clock } = makeCore();
    const inc = { collection: 'notes', id: 'c', field: 'n', by: 1 };
    await core.submit(SYSTEM, 'put', note('c'));
    expect(await core.submit(SYSTEM, 'inc', inc, { idempotencyKey: 'daily' })).toMatchObject({ status: 'applied' });
    clock.advance(DAY - 1000);
    expect(await core.submit(SYSTEM, 'inc', inc, { idempotencyKey: 'daily' })).toMatchObject({ status: 'duplicate' });
    // Pruning runs at most once a minute: a key is remembered for at least the period, at most a minute more.
    clock.advance(2000 + 60_000);
    // The next group commit prunes what expired, then runs the write.
    expect(await core.submit(SYSTEM, 'inc', inc, { idempotencyKey: 'daily' })).toMatchObject({ status: 'applied' });
    expect(store.getDoc('notes', 'c')?.doc).toMatchObject({ n: 2 });
  });

  it('answers for a key after failover: the replica learned it from the log', async () => {
    const replicaStore = new MemoryStore();
    const { core } = makeCore(new MemoryStore(), {
      onCommit: (changes, outcomes) => replicaStore.applyReplicated(changes, outcomes),
    });
    await core.submit(SYSTEM, 'put', note('f'), { idempotencyKey: 'applied-key' });
    await core.submit(
      SYSTEM,
      'patch',
      { collection: 'notes', id: 'nope', set: { a: 1 } },
      { idempotencyKey: 'rej-key' },
    );
    const promoted = makeCore(replicaStore).core;
    expect(await promoted.submit(SYSTEM, 'put', note('f2'), { idempotencyKey: 'applied-key' })).toEqual({
      status: 'duplicate',
      lsn: 1,
    });
    expect(await promoted.submit(SYSTEM, 'put', note('f3'), { idempotencyKey: 'rej-key' })).toMatchObject({
      status: 'duplicate',
      error: { code: 'NOT_FOUND' },
    });
    expect(replicaStore.getDoc('notes', 'f2')).toBeUndefined();
  });

  it('refuses with a TidelineError when it cannot give an outcome', async () => {
    let primary = true;
    const { core } = makeCore(new MemoryStore(), { primary: () => primary });
    const refusal = async (p: Promise<unknown>): Promise<string> =>
      p.then(
        () => 'resolved',
        (err: unknown) => (err instanceof TidelineError ? err.code : 'not a TidelineError'),
      );
    expect(await refusal(core.submit(SYSTEM, 'put', note('a'), { idempotencyKey: 'with space' }))).toBe('BAD_REQUEST');
    expect(await refusal(core.submit(SYSTEM, 'put', note('a'), { idempotencyKey: 'k'.repeat(256) }))).toBe(
      'BAD_REQUEST',
    );
    expect(await refusal(core.submit({ userId: '~system', roles: [] }, 'put', note('a')))).toBe('BAD_REQUEST');
    const big = { collection: 'notes', doc: { id: 'big', text: 'x'.repeat(DEFAULT_LIMITS.maxMessageBytes) } };
    expect(await refusal(core.submit(SYSTEM, 'put', big))).toBe('TOO_LARGE');
    primary = false;
    expect(await refusal(core.submit(SYSTEM, 'put', note('a')))).toBe('NOT_PRIMARY');
  });
});

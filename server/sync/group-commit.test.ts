import { describe, expect, it } from 'vitest';
import { storeSchema } from '../../shared/apps/store';
import type { Clock } from '../../shared/clock';
import { DEFAULT_LIMITS } from '../../shared/protocol/limits';
import type { PushAck } from '../../shared/protocol/push';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { MemoryStore } from '../store/memory-store';
import type { PushRates } from './rate-limit';
import type { Session, SessionSink } from './session';
import { SyncCore } from './sync-core';
import type { SyncCoreOptions } from './sync-core';

/**
 * The group commit's bounds and fairness, and the push rate limits, on the
 * core alone: flushes run when the test says, time moves when it says.
 */
function setup(options: Partial<SyncCoreOptions> = {}): {
  core: SyncCore;
  store: MemoryStore;
  clock: Clock & { advance(ms: number): void };
  runScheduled: () => number;
  join: (userId: string, clientId: string) => Promise<Session>;
} {
  const store = new MemoryStore();
  let time = 1_700_000_000_000;
  const clock = {
    now: () => time,
    setTimeout: () => undefined,
    clearTimeout: () => undefined,
    advance: (ms: number) => void (time += ms),
  };
  let scheduled: Array<() => void> = [];
  const core = new SyncCore({
    store,
    schema: storeSchema,
    clock,
    limits: DEFAULT_LIMITS,
    schedule: (fn) => void scheduled.push(fn),
    ...options,
  });
  /** Runs what is scheduled now (one flush, say), not what that schedules; returns how many ran. */
  const runScheduled = (): number => {
    const now = scheduled;
    scheduled = [];
    for (const fn of now) fn();
    return now.length;
  };
  const sink: SessionSink = {
    sendChanges: () => undefined,
    sendPage: async () => undefined,
    sendSnapshot: async () => undefined,
    close: () => undefined,
  };
  const join = async (userId: string, id: string): Promise<Session> => {
    const clientId = `client-${id}`;
    const session = core.connect(sink);
    const checked = core.checkHello(session, {
      protocol: PROTOCOL_VERSION,
      clientId,
      token: 'verified elsewhere',
      checkpoint: 0,
      checkpointTerm: 0,
      pendingFrom: 1,
    });
    if (!checked.ok) throw new Error(checked.error.message);
    const ack = await core.admit(session, checked.hello, { userId, roles: [] });
    if (!ack.ok) throw new Error(ack.error.message);
    return session;
  };
  return { core, store, clock, runScheduled, join };
}

const puts = (owner: string, from: number, n: number) => ({
  mutations: Array.from({ length: n }, (_, i) => ({
    seq: from + i,
    name: 'put',
    args: { collection: 'items', doc: { id: `${owner}-${from + i}`, owner, n: i } },
  })),
});

/** One turn of the event loop: a commit on the memory store, which resolves in microtasks, is done after it. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('group commit: bounded and fair', () => {
  it("commits at most the budget per flush, round-robin over users: one user's queue does not hold another's push", async () => {
    const { core, store, runScheduled, join } = setup({ maxCommitMutations: 1000 });
    const acks: Array<{ who: string; ack: PushAck }> = [];
    const flooders = await Promise.all(Array.from({ length: 10 }, (_, i) => join('flooder', `flood-${i}`)));
    for (const s of flooders)
      void core.push(s, puts('flooder', 1, 500)).then((ack) => acks.push({ who: 'flooder', ack }));
    const normal = await join('normal', 'normal-1');
    void core.push(normal, puts('normal', 1, 1)).then((ack) => acks.push({ who: 'normal', ack }));

    // Pumps (catch-up) were scheduled by the hellos; then the first flush.
    runScheduled();
    await settle();
    const firstHead = store.meta().headLsn;
    // One flooder push and the normal user's (round-robin), then the next flooder push fits no more.
    expect(firstHead).toBe(501);
    expect(acks.map((a) => a.who)).toEqual(['flooder', 'normal']);
    expect(acks.every((a) => a.ack.ok)).toBe(true);

    // The rest follows, one bounded commit per flush, each scheduled by the one before.
    let flushes = 1;
    while (runScheduled() > 0) {
      flushes++;
      await settle();
    }
    expect(store.meta().headLsn).toBe(5001);
    expect(acks).toHaveLength(11);
    expect(flushes).toBeGreaterThanOrEqual(5);
  });

  it('always commits one push, however large, and 0 lifts the bound', async () => {
    const small = setup({ maxCommitMutations: 10, maxCommitBytes: 100 });
    const a = await small.join('u', 'c-a');
    const b = await small.join('v', 'c-b');
    void small.core.push(a, puts('u', 1, 50));
    void small.core.push(b, puts('v', 1, 50));
    small.runScheduled();
    await settle();
    expect(small.store.meta().headLsn).toBe(50);
    small.runScheduled();
    await settle();
    expect(small.store.meta().headLsn).toBe(100);

    const unbounded = setup({ maxCommitMutations: 0, maxCommitBytes: 0 });
    const sessions = await Promise.all(Array.from({ length: 10 }, (_, i) => unbounded.join(`u${i}`, `c-${i}`)));
    for (const s of sessions) void unbounded.core.push(s, puts(s.auth!.userId, 1, 500));
    unbounded.runScheduled();
    await settle();
    expect(unbounded.store.meta().headLsn).toBe(5000);
  });
});

describe('push rate limits', () => {
  const rates = (perSecond: number, burst: number): PushRates => ({
    mutations: { perSecond, burst },
    bytes: { perSecond: 0, burst: 0 },
  });

  it('refuses a push over its user budget with RATE_LIMITED and retryAfterMs, applying nothing; the retry goes after the wait', async () => {
    const { core, store, clock, runScheduled, join } = setup({
      pushRates: { user: rates(100, 1000), connection: rates(0, 0) },
    });
    const one = await join('flooder', 'flood-1');
    const two = await join('flooder', 'flood-2');
    const other = await join('normal', 'normal-1');
    runScheduled();
    const first = core.push(one, puts('flooder', 1, 500));
    const second = core.push(two, puts('flooder', 1, 500));
    runScheduled();
    expect((await first).ok).toBe(true);
    expect((await second).ok).toBe(true);
    const head = store.meta().headLsn;
    // The user's burst is spent, whichever connection asks; another user is not affected.
    const pushed = core.push(one, puts('flooder', 501, 100));
    runScheduled(); // (were it queued, it would commit here)
    const refused = await pushed;
    expect(refused).toMatchObject({ ok: false, error: { code: 'RATE_LIMITED', retryable: true, retryAfterMs: 1000 } });
    const normal = core.push(other, puts('normal', 1, 1));
    runScheduled();
    expect((await normal).ok).toBe(true);
    expect(store.meta().headLsn).toBe(head + 1);
    clock.advance(1000);
    const retried = core.push(one, puts('flooder', 501, 100));
    runScheduled();
    expect(await retried).toMatchObject({ ok: true });
    expect(store.meta().headLsn).toBe(head + 101);
  });

  it('limits one connection on its own budget', async () => {
    const { core, runScheduled, join } = setup({
      pushRates: { user: rates(0, 0), connection: rates(10, 10) },
    });
    const a = await join('u', 'c-a');
    const b = await join('u', 'c-b');
    runScheduled();
    const firstA = core.push(a, puts('u', 1, 10));
    runScheduled();
    expect((await firstA).ok).toBe(true);
    const over = core.push(a, puts('u', 11, 1));
    runScheduled();
    expect(await over).toMatchObject({
      ok: false,
      error: { code: 'RATE_LIMITED', retryAfterMs: 100 },
    });
    const firstB = core.push(b, puts('u', 1, 10));
    runScheduled();
    expect((await firstB).ok).toBe(true);
  });
});

describe('connections per user', () => {
  it('refuses a hello past the limit (RATE_LIMITED), counts a replaced client id once, and frees a slot on disconnect', async () => {
    const { core, join } = setup({ maxConnectionsPerUser: 2 });
    const a = await join('u', 'c-a');
    await join('u', 'c-b');
    await expect(join('u', 'c-c')).rejects.toThrow(/user u has 2 connections; the limit is 2/);
    // A reconnect of the same client id replaces its old connection: still 2.
    await join('u', 'c-b');
    expect(core.connectionsOf('u')).toBe(2);
    await join('v', 'c-v'); // another user has its own count
    core.disconnect(a);
    core.disconnect(a); // twice: counted once
    expect(core.connectionsOf('u')).toBe(1);
    await join('u', 'c-c');
    expect(core.connectionsOf('u')).toBe(2);
  });
});

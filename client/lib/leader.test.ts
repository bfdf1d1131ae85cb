import 'fake-indexeddb/auto';
import Dexie from 'dexie';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeChannels, FakeLocks } from '../../test/support/fake-tabs';
import { waitFor } from '../../test/support/wait';
import type { EngineEvent, SyncStatus } from '../sync/engine';
import { claimLeadership, shareSyncAcrossTabs } from './leader';
import type { SharedSync, TabEngine } from './leader';

/** Which engines run, across every tab of the test: two at once is the bug this file defends against. */
class EngineLog {
  readonly running = new Set<string>();
  readonly started: string[] = [];
  maxRunning = 0;

  start(tab: string): void {
    this.running.add(tab);
    this.started.push(tab);
    this.maxRunning = Math.max(this.maxRunning, this.running.size);
  }

  stop(tab: string): void {
    this.running.delete(tab);
  }
}

const stoppedStatus: SyncStatus = {
  state: 'stopped',
  online: false,
  pending: 0,
  lastSyncedLsn: 0,
  lastSyncedAt: null,
  lastError: null,
  server: null,
};

/** A sync engine that records when it runs; `start` reads storage first, as the real one does. */
class FakeEngine implements TabEngine {
  starts = 0;
  outboxChanges = 0;
  /** The seq of each `outboxChanged` call (undefined: a recheck without one). */
  readonly outboxChangedWith: Array<number | undefined> = [];
  private current: SyncStatus = stoppedStatus;
  private readonly listeners = new Set<(e: EngineEvent) => void>();

  constructor(
    private readonly tab: string,
    private readonly log: EngineLog,
  ) {}

  on(listener: (e: EngineEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(): SyncStatus {
    return this.current;
  }

  async start(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    this.starts++;
    this.log.start(this.tab);
    this.setStatus({ ...this.current, state: 'live', online: true, server: 'http://127.0.0.1:1' });
  }

  stop(): void {
    this.log.stop(this.tab);
    this.setStatus({ ...this.current, state: 'stopped', online: false, server: null });
  }

  async outboxChanged(seq?: number): Promise<void> {
    this.outboxChanges++;
    this.outboxChangedWith.push(seq);
  }

  readonly controls: string[] = [];
  goOffline(): void {
    this.controls.push('goOffline');
  }
  goOnline(): void {
    this.controls.push('goOnline');
  }
  reconnectNow(): void {
    this.controls.push('reconnectNow');
  }

  setStatus(status: SyncStatus): void {
    this.current = status;
    this.emit({ type: 'status', status });
  }

  emit(e: EngineEvent): void {
    for (const l of this.listeners) l(e);
  }

  /** The tab died: its engine stops with it, silently. */
  kill(): void {
    this.log.stop(this.tab);
  }
}

interface Tab {
  name: string;
  engine: FakeEngine;
  db: Dexie;
  shared: SharedSync;
  events: EngineEvent[];
}

let dbName: string;
let locks: FakeLocks;
let channels: FakeChannels;
let log: EngineLog;
let tabs: Tab[];
const lockName = (): string => `tideline:${dbName}`;

beforeEach(() => {
  dbName = `leader-test-${randomUUID()}`;
  locks = new FakeLocks();
  channels = new FakeChannels();
  log = new EngineLog();
  tabs = [];
});

afterEach(async () => {
  for (const tab of tabs) {
    tab.shared.close();
    tab.db.close();
  }
  await Dexie.delete(dbName);
});

async function openTab(name: string, recheckMs = 60_000): Promise<Tab> {
  const db = new Dexie(dbName);
  db.version(1).stores({ _outbox: 'seq' });
  await db.open();
  const engine = new FakeEngine(name, log);
  const shared = await shareSyncAcrossTabs({
    locks: locks.forTab(name),
    dbName,
    engine,
    openChannel: channels.forTab(name),
    recheckMs,
  });
  const events: EngineEvent[] = [];
  shared.on((e) => events.push(e));
  const tab = { name, engine, db, shared, events };
  tabs.push(tab);
  return tab;
}

/** The tab goes away without running any of its code, as when the browser kills it. */
function crash(tab: Tab): void {
  locks.closeTab(tab.name);
  channels.closeTab(tab.name);
  tab.engine.kill();
  tab.db.close();
  tabs = tabs.filter((t) => t !== tab);
}

const leaders = (): string[] => tabs.filter((t) => t.shared.isLeader()).map((t) => t.name);

/** Waits until exactly one open tab leads and its engine is started, and returns it. */
async function newLeader(): Promise<Tab> {
  await waitFor('a tab to take over and start its engine', () => tabs.some((t) => log.running.has(t.name)), 2_000);
  const running = tabs.filter((t) => log.running.has(t.name));
  expect(running.map((t) => t.name)).toEqual(leaders());
  return running[0]!;
}

describe('claimLeadership', () => {
  it('elects one of N contenders at a time, and the next in line when it lets go', async () => {
    const fake = new FakeLocks();
    const contenders = await Promise.all(
      ['a', 'b', 'c', 'd', 'e'].map(async (tab) => ({ tab, leadership: await claimLeadership(fake.forTab(tab), 'L') })),
    );
    const leading = () => contenders.filter((c) => c.leadership.isLeader()).map((c) => c.tab);
    expect(leading()).toEqual(['a']);
    expect(fake.holders('L')).toEqual(['a']);
    expect(fake.waiting('L')).toEqual(['b', 'c', 'd', 'e']);

    // c gives up while waiting: it must never lead, and it leaves the queue.
    contenders[2]!.leadership.release();
    await waitFor('c to leave the queue', () => !fake.waiting('L').includes('c'), 2_000);

    const order: string[] = [];
    for (let round = 0; round < 4; round++) {
      const [current] = leading();
      order.push(current!);
      contenders.find((c) => c.tab === current)!.leadership.release();
      if (round < 3) await waitFor('the next contender to be elected', () => leading().length === 1, 2_000);
      expect(leading().length).toBeLessThanOrEqual(1);
    }
    expect(order).toEqual(['a', 'b', 'd', 'e']);
    await waitFor('the lock to be free', () => fake.holders('L').length === 0, 2_000);
    expect(leading()).toEqual([]);
    expect(fake.grants.map((g) => g.tab)).toEqual(['a', 'b', 'd', 'e']);
  });

  it('resolves elected when a waiting contender takes over, never for one that let go', async () => {
    const fake = new FakeLocks();
    const first = await claimLeadership(fake.forTab('a'), 'L');
    const second = await claimLeadership(fake.forTab('b'), 'L');
    const third = await claimLeadership(fake.forTab('c'), 'L');
    const electedThird = { value: false };
    void third.elected.then(() => (electedThird.value = true));
    await first.elected;
    expect([first.isLeader(), second.isLeader(), third.isLeader()]).toEqual([true, false, false]);

    third.release();
    first.release();
    await second.elected;
    expect([first.isLeader(), second.isLeader(), third.isLeader()]).toEqual([false, true, false]);
    second.release();
    await waitFor('the lock to be free', () => fake.holders('L').length === 0, 2_000);
    expect(electedThird.value).toBe(false);
    expect(fake.grants.map((g) => g.tab)).toEqual(['a', 'b']);
  });
});

describe('shareSyncAcrossTabs', () => {
  it('runs the engine in exactly one of N tabs opened at once', async () => {
    await Promise.all(['t1', 't2', 't3', 't4', 't5'].map(openTab));
    const leader = await newLeader();
    expect(leaders()).toEqual([leader.name]);
    expect(locks.holders(lockName())).toEqual([leader.name]);
    expect(tabs.map((t) => t.engine.starts)).toEqual(tabs.map((t) => (t === leader ? 1 : 0)));
    expect(log.started).toEqual([leader.name]);
  });

  it('hands over to exactly one other tab each time the leader closes, never two at once', async () => {
    for (const name of ['t1', 't2', 't3', 't4']) await openTab(name);
    const order: string[] = [];
    while (tabs.length > 0) {
      const leader = await newLeader();
      order.push(leader.name);
      expect(leader.engine.starts).toBe(1);
      leader.shared.close();
      tabs = tabs.filter((t) => t !== leader);
      expect(log.running.has(leader.name)).toBe(false);
    }
    expect(order).toEqual(['t1', 't2', 't3', 't4']);
    expect(log.started).toEqual(order);
    expect(log.maxRunning).toBe(1);
    await waitFor('the last leader to free the lock', () => locks.holders(lockName()).length === 0, 2_000);
    expect(locks.waiting(lockName())).toEqual([]);
    expect(channels.openCount()).toBe(0);
  });

  it('hands over when the leader tab dies without closing', async () => {
    const t1 = await openTab('t1');
    await openTab('t2');
    await openTab('t3');
    expect(await newLeader()).toBe(t1);
    crash(t1);
    const next = await newLeader();
    expect(next.name).toBe('t2');
    expect(leaders()).toEqual(['t2']);
    expect(log.started).toEqual(['t1', 't2']);
    expect(log.maxRunning).toBe(1);
  });

  it('never starts the engine of a tab that closed before it got the lock', async () => {
    const t1 = await openTab('t1');
    const t2 = await openTab('t2');
    const t3 = await openTab('t3');
    expect(await newLeader()).toBe(t1);
    t2.shared.close();
    t1.shared.close();
    tabs = [t3];
    expect(await newLeader()).toBe(t3);
    t3.shared.close();
    tabs = [];
    await waitFor('the lock to be free', () => locks.holders(lockName()).length === 0, 2_000);
    expect(locks.waiting(lockName())).toEqual([]);
    expect(t2.engine.starts).toBe(0);
    expect(t2.shared.isLeader()).toBe(false);
    expect(log.started).toEqual(['t1', 't3']);
  });

  it('reports a follower whose lock request the browser refuses as failed, and never starts it', async () => {
    const t1 = await openTab('t1');
    const t2 = await openTab('t2');
    expect(await newLeader()).toBe(t1);
    locks.refuseWaiting('t2', new DOMException('The document is not fully active', 'InvalidStateError'));
    await waitFor('the follower to report the failure', () => t2.shared.status().state === 'failed', 2_000);
    expect(t2.shared.status().lastError).toEqual({
      code: 'INTERNAL',
      message: 'could not take over syncing: The document is not fully active',
      retryable: true,
    });
    expect(t2.events.at(-1)).toEqual({ type: 'status', status: t2.shared.status() });

    // The leader goes: nobody is left waiting, so nobody takes over.
    t1.shared.close();
    tabs = [t2];
    await waitFor('the lock to be free', () => locks.holders(lockName()).length === 0, 2_000);
    expect(locks.waiting(lockName())).toEqual([]);
    expect(t2.shared.isLeader()).toBe(false);
    expect(log.started).toEqual(['t1']);
  });

  it("shows the leader's status and events in every follower, and a new follower gets the current status", async () => {
    const leader = await openTab('t1');
    const follower = await openTab('t2');
    await newLeader();
    const status: SyncStatus = { ...leader.engine.status(), pending: 3, lastSyncedLsn: 42, lastSyncedAt: 1_700 };
    leader.engine.setStatus(status);
    const rejection: EngineEvent = {
      type: 'rejected',
      rejection: {
        seq: 7,
        name: 'checkout',
        args: { orderId: 'o1' },
        error: { code: 'REJECTED', message: 'out of stock', retryable: false },
        at: 1_700,
      },
    };
    leader.engine.emit(rejection);
    await waitFor('the follower to see the rejection', () => follower.events.at(-1)?.type === 'rejected', 2_000);
    expect(follower.events.slice(-2)).toEqual([{ type: 'status', status }, rejection]);
    expect(follower.shared.status()).toEqual(status);
    expect(follower.engine.starts).toBe(0);
    expect(follower.engine.status().state).toBe('stopped');

    const late = await openTab('t3');
    await waitFor('the new follower to get the status', () => late.shared.status().lastSyncedLsn === 42, 2_000);
    expect(late.shared.status()).toEqual(status);
    expect(late.engine.starts).toBe(0);
  });

  it('has the leader push what a follower queued, told once per batch with the highest seq', async () => {
    const leader = await openTab('t1');
    const follower = await openTab('t2');
    await newLeader();
    const before = leader.engine.outboxChangedWith.length;
    // The mutations of one batch settle together: one message, with the highest seq.
    for (const seq of [7, 8, 9]) follower.shared.queued(seq);
    await waitFor('the leader to hear of seq 9', () => leader.engine.outboxChangedWith.includes(9), 2_000);
    expect(leader.engine.outboxChangedWith.slice(before)).toEqual([9]);
    expect(follower.engine.outboxChanges).toBe(0);
    // The leader's own mutations need no message: its engine pushes them.
    leader.shared.queued(10);
    follower.shared.queued(11);
    await waitFor('the leader to hear of seq 11', () => leader.engine.outboxChangedWith.includes(11), 2_000);
    expect(leader.engine.outboxChangedWith.slice(before)).toEqual([9, 11]);
  });

  it("rechecks the replica now and then, so a follower's lost message loses no mutation", async () => {
    channels.drop = (m) => typeof m === 'object' && m !== null && 'type' in m && m.type === 'queued';
    const leader = await openTab('t1', 20);
    const follower = await openTab('t2', 20);
    await newLeader();
    follower.shared.queued(3);
    const before = leader.engine.outboxChangedWith.length;
    await waitFor(
      'the leader to recheck',
      () => leader.engine.outboxChangedWith.slice(before).includes(undefined),
      2_000,
    );
    expect(leader.engine.outboxChangedWith).not.toContain(3);
    // A follower does not recheck: it does not push.
    expect(follower.engine.outboxChanges).toBe(0);
  });

  it("runs a follower's connection controls on the leader's engine, and the leader's own at once", async () => {
    const leader = await openTab('t1');
    const follower = await openTab('t2');
    await newLeader();
    follower.shared.control('goOffline');
    follower.shared.control('goOnline');
    await waitFor('the leader to run both', () => leader.engine.controls.length === 2, 2_000);
    leader.shared.control('reconnectNow');
    expect(leader.engine.controls).toEqual(['goOffline', 'goOnline', 'reconnectNow']);
    expect(follower.engine.controls).toEqual([]);
  });
});

import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../shared/clock';
import type { Doc, JsonValue } from '../../shared/json';
import type { Change } from '../../shared/protocol/change';
import type { Changes, PageAck } from '../../shared/protocol/changes';
import { helloSchema } from '../../shared/protocol/hello';
import type { Hello, HelloAck } from '../../shared/protocol/hello';
import type { PushAck } from '../../shared/protocol/push';
import type { WireError } from '../../shared/protocol/wire-error';
import { defineSchema } from '../../shared/schema/define-schema';
import { MemoryLocalStore } from '../store/memory-local-store';
import { MAX_LOCAL_BATCH, SyncEngine } from './engine';
import type { AppliedEvent, EngineEvent } from './engine';
import { TX_METHODS } from './local-store';
import type { LocalStore, LocalTx, TxScope } from './local-store';
import type { Transport, TransportEvents } from './transport';

const schema = defineSchema({
  name: 'engine-test',
  version: 1,
  collections: { notes: { read: 'public', write: 'any', indexes: [] } },
  mutators: {},
});

/** Time that moves only when the test says so. */
class ManualClock implements Clock {
  private time = 1_700_000_000_000;
  private timers: Array<{ at: number; fn: () => void }> = [];

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { at: this.time + ms, fn };
    this.timers.push(timer);
    return timer;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t !== handle);
  }

  /** Moves time to the next timer and runs it; false when none is set. */
  next(): boolean {
    const [timer] = [...this.timers].sort((a, b) => a.at - b.at);
    if (!timer) return false;
    this.timers = this.timers.filter((t) => t !== timer);
    this.time = Math.max(this.time, timer.at);
    timer.fn();
    return true;
  }
}

/** One connection, driven by the test: it connects when told, answers hello with `helloAck`, and delivers what the test sends. */
class ScriptedTransport implements Transport {
  readonly hellos: Hello[] = [];
  closed = false;
  private events: TransportEvents | null = null;

  constructor(
    readonly url: string,
    private readonly helloAck: (hello: Hello) => HelloAck,
    private readonly pushAck: ((msg: unknown) => PushAck) | null = null,
  ) {}

  open(events: TransportEvents): void {
    this.events = events;
  }

  close(): void {
    this.closed = true;
  }

  async request(event: 'hello' | 'push', msg: unknown): Promise<unknown> {
    if (this.closed) throw new Error('disconnected');
    if (event === 'push') {
      if (!this.pushAck) throw new Error('this test pushes nothing');
      return this.pushAck(msg);
    }
    const hello = helloSchema.parse(msg);
    this.hellos.push(hello);
    return this.helloAck(hello);
  }

  connect(): void {
    this.on().connected();
  }

  /** Delivers a `changes` message; a catch-up page passes `ack`, a live message does not. */
  changes(msg: Changes, ack?: (res: PageAck) => void): void {
    this.on().changes(msg, ack);
  }

  /** The server ends the session: a `fatal` message, then the disconnect. */
  fatal(error: WireError): void {
    this.on().fatal(error);
    this.on().disconnected('io server disconnect');
  }

  private on(): TransportEvents {
    if (!this.events) throw new Error('not opened');
    if (this.closed) throw new Error('closed: a closed transport delivers nothing');
    return this.events;
  }
}

/** MemoryLocalStore, counting transactions so a test can tell that messages were applied as one batch. */
class CountingStore implements LocalStore {
  transactions = 0;
  /** Every transaction that ran to its end (committed or not): its scope and whether it wrote. */
  readonly log: Array<{ scope: TxScope | undefined; wrote: boolean }> = [];
  /** Every `LocalTx` method called, in order. */
  readonly calls: Array<keyof LocalTx> = [];
  /** An error to throw from a method instead of running it (a failing disk), or null. */
  fault: (method: keyof LocalTx, args: unknown[]) => Error | null = () => null;
  constructor(readonly inner: MemoryLocalStore) {}
  transaction<T>(fn: (tx: LocalTx) => Promise<T>, scope?: TxScope): Promise<T> {
    this.transactions++;
    const record = { scope, wrote: false };
    return this.inner
      .transaction((inner) => {
        const tx = {} as Record<keyof LocalTx, unknown>;
        for (const method of Object.keys(inner) as Array<keyof LocalTx>) {
          tx[method] = async (...args: unknown[]): Promise<unknown> => {
            this.calls.push(method);
            if (TX_METHODS[method].writes) record.wrote = true;
            const fault = this.fault(method, args);
            if (fault) throw fault;
            return (inner[method] as (...a: unknown[]) => Promise<unknown>)(...args);
          };
        }
        return fn(tx as unknown as LocalTx);
      }, scope)
      .finally(() => this.log.push(record));
  }
  rejections(): ReturnType<LocalStore['rejections']> {
    return this.inner.rejections();
  }
  close(): void {
    this.inner.close();
  }
}

const note = (lsn: number): Doc => ({ id: `n${lsn}`, text: `written at ${lsn}` });
/** The change at `lsn` writes note `n<lsn>`, by another client. */
const change = (lsn: number): Change => ({
  lsn,
  term: 1,
  collection: 'notes',
  id: `n${lsn}`,
  doc: note(lsn),
  owner: null,
  clientId: null,
  seq: null,
  ts: 1_700_000_000_000 + lsn,
});
const lsns = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + 1 + i);
const changesMsg = (from: number, to: number, only = lsns(from, to)): Changes => ({
  from,
  to,
  changes: only.map(change),
});
/** Every note, as the local store has them. */
const notesIn = (store: MemoryLocalStore): string[] =>
  Object.keys(store.dump()['notes'] ?? {}).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
const notesUpTo = (lsn: number): string[] => lsns(0, lsn).map((l) => `n${l}`);

/** What the scripted server answers to a push; null: the test pushes nothing. */
let pushAnswer: ((msg: unknown) => PushAck) | null;
let clock: ManualClock;
let memory: MemoryLocalStore;
let store: CountingStore;
let transports: ScriptedTransport[];
let headLsn: number;
let engine: SyncEngine;

beforeEach(() => {
  clock = new ManualClock();
  memory = new MemoryLocalStore(schema, () => randomUUID().replace(/-/g, ''));
  store = new CountingStore(memory);
  transports = [];
  pushAnswer = null;
  headLsn = 9;
  engine = new SyncEngine({
    schema,
    local: store,
    servers: ['http://primary.test'],
    connect: (url) => {
      const t = new ScriptedTransport(
        url,
        () => ({
          ok: true,
          serverId: 'primary',
          term: 1,
          headLsn,
          horizon: 0,
          lastSeq: 0,
          userId: 'u1',
        }),
        pushAnswer,
      );
      transports.push(t);
      return t;
    },
    token: 'token',
    user: { userId: 'u1', roles: [] },
    clock,
    random: () => 0.5,
  });
});

/** The seqs of a push message. */
const seqsOf = (msg: unknown): number[] => (msg as { mutations: Array<{ seq: number }> }).mutations.map((m) => m.seq);
/** A push answer that applies every mutation of the push. */
const ackAll = (msg: unknown): PushAck => ({
  ok: true,
  results: seqsOf(msg).map((seq) => ({ seq, status: 'applied', lsn: 10 })),
});

/** Connects the newest transport and waits for the handshake to finish. */
async function connectLatest(): Promise<ScriptedTransport> {
  const t = transports.at(-1)!;
  t.connect();
  await engine.settled();
  expect(engine.status().state).toBe('syncing');
  return t;
}

const checkpoint = async (): Promise<number> => (await store.transaction((tx) => tx.meta())).checkpoint;

describe('SyncEngine: a changes message past the checkpoint (a gap)', () => {
  it('applies nothing past the gap, reconnects from its checkpoint, and catches up', async () => {
    await engine.start();
    const first = await connectLatest();
    expect(first.hellos.map((h) => h.checkpoint)).toEqual([0]);

    const acks: string[] = [];
    first.changes(changesMsg(0, 5), (res) => acks.push(`0-5 ${res.ok}`));
    await engine.settled();
    expect(notesIn(memory)).toEqual(notesUpTo(5));

    // LSN 6 and 7 went missing: the next message starts past the checkpoint.
    first.changes(changesMsg(7, 9), (res) => acks.push(`7-9 ${res.ok}`));
    await engine.settled();
    expect(notesIn(memory)).toEqual(notesUpTo(5));
    expect(await checkpoint()).toBe(5);
    expect(acks).toEqual(['0-5 true']);
    expect(engine.status()).toMatchObject({
      state: 'backoff',
      online: false,
      lastSyncedLsn: 5,
      lastError: { code: 'BAD_REQUEST', message: 'gap before LSN 7', retryable: true },
    });
    expect(first.closed).toBe(true);
    expect(transports).toEqual([first]);

    // The backoff timer fires: a new connection, whose hello asks from LSN 5.
    expect(clock.next()).toBe(true);
    expect(transports.map((t) => t.closed)).toEqual([true, false]);
    const second = await connectLatest();
    expect(second.hellos).toEqual([expect.objectContaining({ checkpoint: 5, checkpointTerm: 1, pendingFrom: 1 })]);

    second.changes(changesMsg(5, 9), (res) => acks.push(`5-9 ${res.ok}`));
    headLsn = 10;
    second.changes(changesMsg(9, 10));
    await engine.settled();
    expect(notesIn(memory)).toEqual(notesUpTo(10));
    expect(memory.dump()['notes']?.['n7']).toEqual(note(7));
    expect(await checkpoint()).toBe(10);
    expect(acks).toEqual(['0-5 true', '5-9 true']);
    expect(engine.status()).toMatchObject({ state: 'live', online: true, lastSyncedLsn: 10, lastError: null });
  });

  it('applies the messages before the gap of one batch, and none from the gap on', async () => {
    await engine.start();
    const first = await connectLatest();
    const before = store.transactions;
    const acks: string[] = [];

    // Delivered in one turn, so they are applied as one batch: 0-5 is whole, 7-9 skips 6-7, and 9-10
    // follows 7-9 but not the checkpoint.
    first.changes(changesMsg(0, 5), (res) => acks.push(`0-5 ${res.ok}`));
    first.changes(changesMsg(7, 9), (res) => acks.push(`7-9 ${res.ok}`));
    first.changes(changesMsg(9, 10), (res) => acks.push(`9-10 ${res.ok}`));
    await engine.settled();

    expect(store.transactions - before).toBe(1);
    expect(notesIn(memory)).toEqual(notesUpTo(5));
    expect(await checkpoint()).toBe(5);
    expect(acks).toEqual(['0-5 true']);
    expect(engine.status()).toMatchObject({ state: 'backoff', lastSyncedLsn: 5 });
    expect(first.closed).toBe(true);

    expect(clock.next()).toBe(true);
    const second = await connectLatest();
    expect(second.hellos.map((h) => h.checkpoint)).toEqual([5]);
    headLsn = 10;
    second.changes(changesMsg(5, 10));
    await engine.settled();
    expect(notesIn(memory)).toEqual(notesUpTo(10));
    expect(await checkpoint()).toBe(10);
    expect(engine.status().state).toBe('live');
  });
});

describe('SyncEngine: a push refused as a whole', () => {
  const refusal = (retryable: boolean): PushAck => ({
    ok: false,
    error: { code: retryable ? 'RATE_LIMITED' : 'UNAUTHORIZED', message: 'refused', retryable },
  });

  it('stops with the error when no retry can mend it, keeping the mutation queued', async () => {
    pushAnswer = () => refusal(false);
    await engine.start();
    await connectLatest();
    await engine.mutate('put', { collection: 'notes', doc: { id: 'mine', text: 'x' } });
    await engine.settled();
    await waitUntil(() => engine.status().state === 'failed');
    expect(engine.status()).toMatchObject({
      state: 'failed',
      pending: 1,
      lastError: { code: 'UNAUTHORIZED', retryable: false },
    });
    // No reconnect is scheduled.
    expect(clock.next()).toBe(false);
    expect(transports).toHaveLength(1);
  });

  it('reconnects and pushes again after a retryable refusal', async () => {
    let refusals = 1;
    pushAnswer = (msg) => {
      if (refusals-- > 0) return refusal(true);
      return ackAll(msg);
    };
    await engine.start();
    await connectLatest();
    await engine.mutate('put', { collection: 'notes', doc: { id: 'mine', text: 'x' } });
    await waitUntil(() => engine.status().state === 'backoff');
    expect(engine.status().lastError).toMatchObject({ code: 'RATE_LIMITED' });
    expect(clock.next()).toBe(true);
    await connectLatest();
    await waitUntil(() => refusals < 0);
    expect(transports).toHaveLength(2);
  });

  it('waits out a RATE_LIMITED retryAfterMs on the same connection, then sends the same seqs again, in order', async () => {
    const pushes: Array<{ at: number; seqs: number[] }> = [];
    let refusals = 2;
    pushAnswer = (msg) => {
      const seqs = seqsOf(msg);
      pushes.push({ at: clock.now(), seqs });
      if (refusals-- > 0) {
        return {
          ok: false,
          error: { code: 'RATE_LIMITED', message: 'over the rate', retryable: true, retryAfterMs: 700 },
        };
      }
      return { ok: true, results: seqs.map((seq) => ({ seq, status: 'applied', lsn: 10 + seq })) };
    };
    await engine.start();
    await connectLatest();
    const t0 = clock.now();
    await engine.mutate('put', { collection: 'notes', doc: { id: 'a', text: 'x' } });
    await waitUntil(() => pushes.length === 1);
    // Queued while the first push waits: it goes after seq 1, never before it.
    await engine.mutate('put', { collection: 'notes', doc: { id: 'b', text: 'y' } });
    for (let retry = 2; retry <= 3; retry++) {
      expect(clock.next()).toBe(true);
      await waitUntil(() => pushes.length === retry);
    }
    await waitUntil(() => !clock.next() && pushes.flatMap((p) => p.seqs).includes(2));
    expect(pushes[0]).toEqual({ at: t0, seqs: [1] });
    expect(pushes[1]!.at - t0).toBeGreaterThanOrEqual(700);
    expect(pushes[1]!.seqs[0]).toBe(1);
    expect(pushes[2]!.at - pushes[1]!.at).toBeGreaterThanOrEqual(700);
    expect(pushes[2]!.seqs[0]).toBe(1);
    // Every seq sent in order, none skipped; one connection throughout.
    const accepted = pushes.slice(2).flatMap((p) => p.seqs);
    expect(accepted).toEqual([1, 2]);
    expect(transports).toHaveLength(1);
    expect(engine.status().state).toBe('syncing');
  });
});

/** Lets the engine's promise chains run until `check` holds (a few hundred turns at most). */
async function waitUntil(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setImmediate(r));
  expect(check()).toBe(true);
}

describe('SyncEngine: a fresh token from refreshToken', () => {
  const unauthorized = (message: string): WireError => ({ code: 'UNAUTHORIZED', message, retryable: false });
  let accepted: Set<string>;
  let fresh: string[];
  let refreshes: number;

  /** An engine whose server accepts only the tokens in `accepted`; refreshToken hands out `fresh` in turn. */
  const tokenEngine = (): SyncEngine =>
    new SyncEngine({
      schema,
      local: store,
      servers: ['http://primary.test'],
      connect: (url) => {
        const t = new ScriptedTransport(url, (hello) =>
          accepted.has(hello.token)
            ? { ok: true, serverId: 'primary', term: 1, headLsn, horizon: 0, lastSeq: 0, userId: 'u1' }
            : { ok: false, error: unauthorized('token expired') },
        );
        transports.push(t);
        return t;
      },
      token: 'first',
      refreshToken: async () => {
        refreshes++;
        const next = fresh.shift();
        if (next === undefined) throw new Error('no more tokens');
        return next;
      },
      user: { userId: 'u1', roles: [] },
      clock,
      random: () => 0.5,
    });

  beforeEach(() => {
    accepted = new Set(['second', 'third']);
    fresh = ['second', 'third'];
    refreshes = 0;
  });

  it('asks once when hello refuses the token, and connects with the new one at once', async () => {
    engine = tokenEngine();
    await engine.start();
    transports.at(-1)!.connect();
    await waitUntil(() => transports.length === 2);
    const second = await connectLatest();
    expect(transports.map((t) => t.hellos.map((h) => h.token))).toEqual([['first'], ['second']]);
    expect(refreshes).toBe(1);
    expect(second.closed).toBe(false);
    expect(engine.status().lastError).toBeNull();
    // Straight away: no backoff timer was involved.
    expect(clock.next()).toBe(false);
  });

  it('fails with the error when the fresh token is refused too, and asks no more', async () => {
    accepted = new Set();
    engine = tokenEngine();
    await engine.start();
    transports.at(-1)!.connect();
    await waitUntil(() => transports.length === 2);
    transports.at(-1)!.connect();
    await waitUntil(() => engine.status().state === 'failed');
    expect(engine.status().lastError).toEqual(unauthorized('token expired'));
    expect(refreshes).toBe(1);
    expect(transports.map((t) => t.hellos.map((h) => h.token))).toEqual([['first'], ['second']]);
    expect(clock.next()).toBe(false);
  });

  it('reconnects with a fresh token when the server ends the session for an expired one, each time it does', async () => {
    accepted = new Set(['first', 'second', 'third']);
    engine = tokenEngine();
    await engine.start();
    const first = await connectLatest();
    first.fatal(unauthorized('token expired'));
    await waitUntil(() => transports.length === 2);
    expect(first.closed).toBe(true);
    await connectLatest();
    expect(transports.at(-1)!.hellos.map((h) => h.token)).toEqual(['second']);

    // The accepted hello re-armed the refresh: the next expiry gets a token again.
    transports.at(-1)!.fatal(unauthorized('token expired'));
    await waitUntil(() => transports.length === 3);
    await connectLatest();
    expect(transports.at(-1)!.hellos.map((h) => h.token)).toEqual(['third']);
    expect(refreshes).toBe(2);
  });

  it('fails with UNAUTHORIZED when getToken itself fails', async () => {
    fresh = [];
    engine = tokenEngine();
    await engine.start();
    transports.at(-1)!.connect();
    await waitUntil(() => engine.status().state === 'failed');
    expect(engine.status().lastError).toEqual(unauthorized('getToken failed: no more tokens'));
    expect(transports).toHaveLength(1);
  });

  it('backs off, asking for no token, when the server closes the session for another reason', async () => {
    accepted = new Set(['first']);
    engine = tokenEngine();
    await engine.start();
    const first = await connectLatest();
    first.fatal({ code: 'INTERNAL', message: 'shutting down', retryable: true });
    await waitUntil(() => engine.status().state === 'backoff');
    expect(refreshes).toBe(0);
  });
});

describe('SyncEngine: public connection controls', () => {
  it('goOffline drops the connection and stays off until goOnline', async () => {
    pushAnswer = ackAll;
    await engine.start();
    const first = await connectLatest();
    engine.goOffline();
    expect(first.closed).toBe(true);
    expect(engine.status()).toMatchObject({ state: 'offline', online: false });
    expect(clock.next()).toBe(false);
    // A mutation queues meanwhile.
    await engine.mutate('put', { collection: 'notes', doc: { id: 'mine', text: 'x' } });
    expect(engine.status()).toMatchObject({ state: 'offline', pending: 1 });
    // start() (another tab handing over) does not bring it back either; reconnectNow neither.
    await engine.start();
    engine.reconnectNow();
    expect(transports).toHaveLength(1);
    engine.goOnline();
    expect(transports).toHaveLength(2);
    await connectLatest();
  });

  it('reconnectNow skips the backoff wait, and leaves a live connection alone', async () => {
    await engine.start();
    const first = await connectLatest();
    engine.reconnectNow();
    expect(transports).toEqual([first]);
    first.fatal({ code: 'INTERNAL', message: 'restarting', retryable: true });
    expect(engine.status().state).toBe('backoff');
    engine.reconnectNow();
    expect(transports).toHaveLength(2);
    expect(engine.status().state).toBe('connecting');
    // The backoff timer was cleared: it does not open a third connection.
    expect(clock.next()).toBe(false);
  });
});

describe('SyncEngine: what changed, and where each mutation stands', () => {
  it("names the collections and ids each applied message changed, and the mutations' states", async () => {
    pushAnswer = ackAll;
    const applied: EngineEvent[] = [];
    engine.on((e) => {
      if (e.type === 'applied') applied.push(e);
    });
    await engine.start();
    const t = await connectLatest();
    t.changes(changesMsg(0, 9));
    await engine.settled();
    expect(applied.at(-1)).toEqual({
      type: 'applied',
      checkpoint: 9,
      changed: { notes: notesUpTo(9) },
      snapshot: false,
    });

    const { seq: mine } = await engine.mutate('put', { collection: 'notes', doc: { id: 'mine', text: 'x' } });
    const { seq: theirs } = await engine.mutate('patch', { collection: 'notes', id: 'n1', set: { text: 'y' } });
    expect(await engine.mutationState(mine)).toEqual({ status: 'pending' });
    expect(await engine.mutationState(99)).toEqual({ status: 'unknown' });

    // The primary confirms the first and rejects the second.
    headLsn = 10;
    t.changes({
      from: 9,
      to: 10,
      changes: [{ ...change(10), id: 'mine', doc: { id: 'mine', text: 'x' }, clientId: engine.clientId, seq: mine }],
      lastSeq: theirs,
      rejected: [{ seq: theirs, error: { code: 'REJECTED', message: 'no', retryable: false } }],
    });
    await engine.settled();
    expect(applied.at(-1)).toMatchObject({ checkpoint: 10, snapshot: false });
    const changed = (applied.at(-1) as AppliedEvent).changed;
    expect(Object.keys(changed)).toEqual(['notes']);
    expect(changed['notes']!.sort()).toEqual(['mine', 'n1']);
    expect(await engine.mutationState(mine)).toEqual({ status: 'confirmed' });
    expect(await engine.mutationState(theirs)).toEqual({ status: 'rejected', code: 'REJECTED', message: 'no' });
  });
});

describe('SyncEngine: data of a collection the app does not know', () => {
  it('stops with a clear, non-retryable error instead of reconnecting forever', async () => {
    await engine.start();
    const first = await connectLatest();
    first.changes(changesMsg(0, 5));
    await engine.settled();
    first.changes({
      from: 5,
      to: 6,
      changes: [{ ...change(6), collection: 'todos', id: 't1', doc: { id: 't1', title: 'from a newer schema' } }],
    });
    await engine.settled();
    expect(engine.status()).toMatchObject({
      state: 'failed',
      lastSyncedLsn: 5,
      lastError: { code: 'BAD_REQUEST', retryable: false },
    });
    expect(engine.status().lastError?.message).toContain("collection 'todos'");
    expect(await checkpoint()).toBe(5);
    // No reconnect is scheduled.
    expect(clock.next()).toBe(false);
    expect(transports).toHaveLength(1);
  });
});

describe('SyncEngine: batched local writes', () => {
  const put = (id: string): { collection: string; doc: Doc } => ({ collection: 'notes', doc: { id, text: id } });
  const outboxSeqs = async (): Promise<number[]> => (await memory.transaction((tx) => tx.outbox())).map((e) => e.seq);
  const nextSeq = async (): Promise<number> => (await memory.transaction((tx) => tx.meta())).nextSeq;
  class Boom extends Error {}

  it('writes the mutations of one task in one local transaction, with consecutive seqs, in call order', async () => {
    const before = store.transactions;
    const first = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((id) => engine.mutate('put', put(id))));
    expect(first.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(store.transactions - before).toBe(1);
    expect(store.log.at(-1)).toEqual({
      scope: { mode: 'rw', tables: ['docs', 'shadow', 'outbox', 'meta'] },
      wrote: true,
    });
    // The next task's mutations go in the next transaction.
    const second = await Promise.all([
      engine.mutate('put', put('f')),
      engine.mutate('delete', { collection: 'notes', id: 'a' }),
    ]);
    expect(second.map((r) => r.seq)).toEqual([6, 7]);
    expect(store.transactions - before).toBe(2);
    expect(await outboxSeqs()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(await nextSeq()).toBe(8);
    expect(Object.keys(memory.dump()['notes'] ?? {}).sort()).toEqual(['b', 'c', 'd', 'e', 'f']);
    expect(engine.status().pending).toBe(7);
  });

  it('counts as pending the mutations written while the hello is in flight (the count read before them is stale)', async () => {
    pushAnswer = ackAll;
    await engine.start();
    await engine.mutate('put', put('a'));
    const t = transports.at(-1)!;
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const request = t.request.bind(t);
    t.request = async (event, msg) => {
      if (event === 'hello') await gate;
      return request(event, msg);
    };
    t.connect();
    await waitUntil(() => t.hellos.length === 0 && engine.status().state === 'handshaking');
    // The handshake has counted the outbox (1); these two commit while its hello waits for an answer.
    await Promise.all([engine.mutate('put', put('b')), engine.mutate('put', put('c'))]);
    expect(engine.status().pending).toBe(3);
    release();
    await waitUntil(() => t.hellos.length === 1);
    await engine.settled();
    expect(engine.status().pending).toBe(3);
  });

  it('pushes its own fresh writes without reading them back, as stored even if the app changes its args later', async () => {
    const pushed: unknown[] = [];
    pushAnswer = (msg) => {
      pushed.push(structuredClone(msg));
      return ackAll(msg);
    };
    await engine.start();
    await connectLatest();
    const outboxReads = (): number => store.log.filter((r) => r.scope?.tables.join() === 'outbox').length;
    const before = outboxReads();
    const args = put('a');
    const written = Promise.all([engine.mutate('put', args), engine.mutate('put', put('b'))]);
    args.doc['text'] = 'changed after the call';
    await written;
    await waitUntil(() => pushed.length === 1);
    expect(pushed[0]).toEqual({
      mutations: [
        { seq: 1, name: 'put', args: { collection: 'notes', doc: { id: 'a', text: 'a' } } },
        { seq: 2, name: 'put', args: put('b') },
      ],
    });
    expect(outboxReads() - before).toBe(0);
    // What it did not write itself (another tab's seq 3) it reads from the outbox, in order.
    await memory.transaction(async (tx) => {
      await tx.putOutbox({ seq: 3, name: 'put', args: put('c'), reads: [], writes: [] });
      await tx.setMeta({ ...(await tx.meta()), nextSeq: 4 });
    });
    await engine.outboxChanged(3);
    await engine.mutate('put', put('d'));
    await waitUntil(() => pushed.flatMap((p) => (p as { mutations: Array<{ seq: number }> }).mutations).length === 4);
    expect(pushed.flatMap((p) => (p as { mutations: Array<{ seq: number }> }).mutations.map((m) => m.seq))).toEqual([
      1, 2, 3, 4,
    ]);
    expect(outboxReads() - before).toBeGreaterThan(0);
  });

  it('refuses args that are not plain data with INVALID_ARGS, storing nothing', async () => {
    const args = { collection: 'notes', doc: { id: 'f', text: 'x', run: () => 1 } } as unknown as JsonValue;
    await expect(engine.mutate('put', args)).rejects.toMatchObject({ code: 'INVALID_ARGS' });
    expect(await outboxSeqs()).toEqual([]);
    expect((await engine.mutate('put', put('ok'))).seq).toBe(1);
  });

  it('splits a larger batch into transactions of MAX_LOCAL_BATCH mutations, keeping the seqs consecutive', async () => {
    const before = store.transactions;
    const n = MAX_LOCAL_BATCH + 5;
    const results = await Promise.all(Array.from({ length: n }, (_, i) => engine.mutate('put', put(`m${i}`))));
    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(store.transactions - before).toBe(2);
  });

  it('rejects an invalid mutation of a batch alone, storing nothing of it, and keeps the others', async () => {
    const settled = await Promise.allSettled([
      engine.mutate('put', put('a')),
      engine.mutate('put', { collection: 'notes', doc: { text: 'no id' } }),
      engine.mutate('nope', {}),
      engine.mutate('put', put('b')),
    ]);
    expect(settled.map((r) => (r.status === 'fulfilled' ? r.value.seq : (r.reason as { code: string }).code))).toEqual([
      1,
      'INVALID_ARGS',
      'UNKNOWN_MUTATOR',
      2,
    ]);
    expect(store.transactions).toBe(1);
    expect(await outboxSeqs()).toEqual([1, 2]);
    expect(await nextSeq()).toBe(3);
    expect(Object.keys(memory.dump()['notes'] ?? {}).sort()).toEqual(['a', 'b']);
    expect((await memory.transaction((tx) => tx.shadow())).map((e) => e.key).sort()).toEqual(['notes/a', 'notes/b']);
  });

  it('drops a mutation whose local run throws, and writes the rest of its batch without it', async () => {
    const failure = new Boom('disk read failed');
    // Reading its document fails (the batch's read-ahead, and again when the mutation runs).
    const readsBad = (method: string, args: unknown[]): boolean =>
      (method === 'getDoc' && args[1] === 'bad') ||
      (method === 'getDocs' && Array.isArray(args[0]) && args[0].some((r: { id: string }) => r.id === 'bad'));
    store.fault = (method, args) => (readsBad(method, args) ? failure : null);
    const settled = await Promise.allSettled([
      engine.mutate('put', put('a')),
      engine.mutate('put', put('bad')),
      engine.mutate('put', put('b')),
    ]);
    expect(settled[0]).toEqual({ status: 'fulfilled', value: { seq: 1 } });
    expect(settled[1]).toEqual({ status: 'rejected', reason: failure });
    expect(settled[2]).toEqual({ status: 'fulfilled', value: { seq: 2 } });
    expect(await outboxSeqs()).toEqual([1, 2]);
    expect(Object.keys(memory.dump()['notes'] ?? {}).sort()).toEqual(['a', 'b']);
    expect((await memory.transaction((tx) => tx.shadow())).map((e) => e.key).sort()).toEqual(['notes/a', 'notes/b']);
    expect(engine.status().pending).toBe(2);
  });

  it('stores nothing of a batch whose transaction fails, rejects every mutation of it, and carries on after', async () => {
    const failure = new Boom('the transaction aborted');
    store.fault = (method) => (method === 'setMeta' ? failure : null);
    const settled = await Promise.allSettled([engine.mutate('put', put('a')), engine.mutate('put', put('b'))]);
    expect(settled).toEqual([
      { status: 'rejected', reason: failure },
      { status: 'rejected', reason: failure },
    ]);
    expect(await outboxSeqs()).toEqual([]);
    expect(await nextSeq()).toBe(1);
    expect(memory.dump()['notes']).toEqual({});
    expect(engine.status().pending).toBe(0);
    store.fault = () => null;
    expect(await engine.mutate('put', put('c'))).toEqual({ seq: 1 });
  });

  it('reads in read-only transactions: every transaction that writes nothing is read-only', async () => {
    const pushed: number[] = [];
    pushAnswer = (msg) => {
      const seqs = seqsOf(msg);
      pushed.push(...seqs);
      return ackAll(msg);
    };
    await engine.start();
    const t = await connectLatest();
    await Promise.all([engine.mutate('put', put('a')), engine.mutate('put', put('b'))]);
    await waitUntil(() => pushed.length === 2);
    expect(await engine.mutationState(1)).toEqual({ status: 'pending' });
    await engine.outboxChanged();
    t.changes(changesMsg(0, 9));
    await engine.settled();
    // The push of its own fresh writes reads nothing back; the other reads here must all be read-only.
    const readers = store.log.filter((l) => !l.wrote);
    expect(readers.length).toBeGreaterThanOrEqual(3);
    for (const l of readers) expect(l.scope?.mode).toBe('r');
  });

  it("counts another tab's mutation that this engine's own next batch stepped over (the tab's message comes late)", async () => {
    const pushed: number[][] = [];
    pushAnswer = (msg) => {
      const seqs = seqsOf(msg);
      pushed.push(seqs);
      return ackAll(msg);
    };
    await engine.start();
    const t = await connectLatest();
    const otherTab = new SyncEngine({
      schema,
      local: memory,
      servers: ['http://primary.test'],
      connect: () => {
        throw new Error('a tab without the connection never connects');
      },
      token: 'token',
      user: { userId: 'u1', roles: [] },
      clock,
      random: () => 0.5,
    });
    const counts: number[] = [];
    engine.on((e) => {
      if (e.type === 'status') counts.push(e.status.pending);
    });
    // The other tab stores seq 1; before its 'queued' message arrives, this engine stores seq 2.
    expect(await otherTab.mutate('put', put('a'))).toEqual({ seq: 1 });
    expect(await engine.mutate('put', put('b'))).toEqual({ seq: 2 });
    await waitUntil(() => pushed.flat().length === 2);
    expect(pushed.flat()).toEqual([1, 2]);
    // The batch saw a seq it had not counted: it recounts at once, without waiting for the message.
    await waitUntil(() => engine.status().pending === 2);
    // Both confirmed before the other tab's message or the recheck come.
    headLsn = 10;
    t.changes({ ...changesMsg(0, 10, []), lastSeq: 2 });
    await engine.settled();
    expect(await outboxSeqs()).toEqual([]);
    expect(engine.status().pending).toBe(0);
    // The late message and the recheck change nothing; the count was never below zero.
    await engine.outboxChanged(1);
    await engine.outboxChanged();
    expect(engine.status().pending).toBe(0);
    expect(Math.min(...counts)).toBeGreaterThanOrEqual(0);
  });

  it('a push whose outbox read outlives its connection sends nothing on the next connection', async () => {
    const sent: Array<{ transport: number; event: string }> = [];
    pushAnswer = ackAll;
    // Queued by another tab: the push reads it from the outbox.
    await memory.transaction(async (tx) => {
      await tx.putOutbox({ seq: 1, name: 'put', args: put('a'), reads: [], writes: [] });
      await tx.setMeta({ ...(await tx.meta()), nextSeq: 2 });
    });
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const transaction = store.transaction.bind(store);
    store.transaction = async (fn, scope) => {
      const result = await transaction(fn, scope);
      if (scope?.tables.join() === 'outbox') await gate;
      return result;
    };
    await engine.start();
    const first = transports.at(-1)!;
    const firstRequest = first.request.bind(first);
    first.request = async (event, msg) => (sent.push({ transport: 0, event }), firstRequest(event, msg));
    first.connect();
    await waitUntil(() => store.log.length > 0 && engine.status().state === 'syncing');
    // The push is reading the outbox when the connection drops; the next one is made meanwhile.
    first.fatal({ code: 'INTERNAL', message: 'gone', retryable: true });
    expect(clock.next()).toBe(true);
    const second = transports.at(-1)!;
    expect(second).not.toBe(first);
    const request = second.request.bind(second);
    second.request = async (event, msg) => (sent.push({ transport: 1, event }), request(event, msg));
    release();
    await gate;
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(sent.filter((s) => s.transport === 1)).toEqual([]);
    // Its own handshake then pushes the entry.
    second.connect();
    await waitUntil(() => sent.filter((s) => s.transport === 1).length === 2);
    expect(sent.filter((s) => s.transport === 1).map((s) => s.event)).toEqual(['hello', 'push']);
  });

  it('pushes what another tab queued when told its seq, and at a recheck when not told, reading no whole outbox', async () => {
    const pushed: number[][] = [];
    pushAnswer = (msg) => {
      const seqs = seqsOf(msg);
      pushed.push(seqs);
      return ackAll(msg);
    };
    await engine.start();
    await connectLatest();
    // Another tab of the same browser: the same replica, its own engine, which never connects.
    const otherTab = new SyncEngine({
      schema,
      local: memory,
      servers: ['http://primary.test'],
      connect: () => {
        throw new Error('a tab without the connection never connects');
      },
      token: 'token',
      user: { userId: 'u1', roles: [] },
      clock,
      random: () => 0.5,
    });
    const queued = await Promise.all(['a', 'b', 'c'].map((id) => otherTab.mutate('put', put(id))));
    expect(queued.map((r) => r.seq)).toEqual([1, 2, 3]);

    const calls = store.calls.length;
    await engine.outboxChanged(3);
    await waitUntil(() => pushed.length === 1);
    expect(pushed).toEqual([[1, 2, 3]]);
    expect(engine.status().pending).toBe(3);
    // A seq the engine knows of already costs no transaction.
    const txs = store.transactions;
    await engine.outboxChanged(2);
    expect(store.transactions).toBe(txs);

    // The other tab's message is lost: the recheck finds the mutation all the same.
    await otherTab.mutate('put', put('d'));
    await engine.outboxChanged();
    await waitUntil(() => pushed.length === 2);
    expect(pushed[1]).toEqual([4]);
    expect(engine.status().pending).toBe(4);
    // A recheck that finds nothing new reads the meta row only.
    const before = store.calls.length;
    await engine.outboxChanged();
    expect(store.calls.slice(before)).toEqual(['meta']);
    expect(store.calls.slice(calls)).not.toContain('outbox');
  });
});

import { describe, expect, it } from 'vitest';
import { storeSchema } from '../../shared/apps/store';
import { systemClock } from '../../shared/clock';
import type { WireErrorShape } from '../../shared/errors';
import { DEFAULT_LIMITS } from '../../shared/protocol/limits';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';
import { MemoryStore } from '../store/memory-store';
import type { Session, SessionSink } from './session';
import { SyncCore } from './sync-core';

/**
 * The socket layer verifies tokens asynchronously between `checkHello` and
 * `admit`: these tests interleave those calls as slow and fast verifications
 * would, and check that one client id still has one connection, the last to
 * say hello.
 */
function setup(): {
  core: SyncCore;
  connect: () => { session: Session; closedWith: WireErrorShape[] };
} {
  const core = new SyncCore({
    store: new MemoryStore(),
    schema: storeSchema,
    clock: systemClock,
    limits: DEFAULT_LIMITS,
    schedule: () => undefined, // no catch-up: only the handshake is under test
  });
  const connect = (): { session: Session; closedWith: WireErrorShape[] } => {
    const closedWith: WireErrorShape[] = [];
    const sink: SessionSink = {
      sendChanges: () => undefined,
      sendPage: async () => undefined,
      sendSnapshot: async () => undefined,
      close: (error) => void closedWith.push(error),
    };
    return { session: core.connect(sink), closedWith };
  };
  return { core, connect };
}

const hello = (clientId: string) => ({
  protocol: PROTOCOL_VERSION,
  clientId,
  token: 'verified elsewhere',
  checkpoint: 0,
  checkpointTerm: 0,
  pendingFrom: 1,
});
const alice = { userId: 'alice', roles: [] };

function checked(core: SyncCore, session: Session, clientId: string) {
  const result = core.checkHello(session, hello(clientId));
  if (!result.ok) throw new Error(`checkHello refused: ${result.error.message}`);
  return result.hello;
}

describe('hello in two steps (check, verify elsewhere, admit)', () => {
  it('an older connection whose token took longer to verify does not displace the newer one', async () => {
    const { core, connect } = setup();
    const older = connect();
    const newer = connect();
    const olderHello = checked(core, older.session, 'client-0001');
    const newerHello = checked(core, newer.session, 'client-0001');
    expect(await core.admit(newer.session, newerHello, alice)).toMatchObject({ ok: true });
    expect(await core.admit(older.session, olderHello, alice)).toEqual({
      ok: false,
      error: { code: 'BAD_REQUEST', message: 'superseded by a newer connection', retryable: false },
    });
    expect(newer.closedWith).toEqual([]);
    expect(newer.session.auth?.clientId).toBe('client-0001');
    expect(core.connectedClients).toBe(1);
  });

  it('a newer connection admitted after an older one closes the older', async () => {
    const { core, connect } = setup();
    const older = connect();
    const newer = connect();
    const olderHello = checked(core, older.session, 'client-0002');
    const newerHello = checked(core, newer.session, 'client-0002');
    expect(await core.admit(older.session, olderHello, alice)).toMatchObject({ ok: true });
    expect(await core.admit(newer.session, newerHello, alice)).toMatchObject({ ok: true });
    expect(older.closedWith).toEqual([
      { code: 'BAD_REQUEST', message: 'superseded by a newer connection', retryable: false },
    ]);
    expect(older.session.closed).toBe(true);
    expect(core.connectedClients).toBe(1);
  });

  it('a connection that went while its token was verified is not admitted', async () => {
    const { core, connect } = setup();
    const gone = connect();
    const msg = checked(core, gone.session, 'client-0003');
    core.disconnect(gone.session);
    expect(await core.admit(gone.session, msg, alice)).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    expect(gone.session.auth).toBeNull();
    expect(core.connectedClients).toBe(0);
  });

  it('of two hellos in flight on one connection, the second is refused', async () => {
    const { core, connect } = setup();
    const one = connect();
    const first = checked(core, one.session, 'client-0004');
    const second = checked(core, one.session, 'client-0004');
    expect(await core.admit(one.session, first, alice)).toMatchObject({ ok: true });
    expect(await core.admit(one.session, second, { userId: 'mallory', roles: ['staff'] })).toMatchObject({
      ok: false,
      error: { code: 'BAD_REQUEST', message: expect.stringContaining('hello was already done') as unknown },
    });
    expect(one.session.auth).toMatchObject({ userId: 'alice', roles: [] });
  });

  it('the one-step hello needs a synchronous token check', async () => {
    const { core, connect } = setup();
    expect(await core.hello(connect().session, hello('client-0005'))).toMatchObject({
      ok: false,
      error: { code: 'INTERNAL' },
    });
  });

  it("a newer connection of another user with the id is refused, even when checked later, and the owner's stays", async () => {
    const { core, connect } = setup();
    const owner = connect();
    const stranger = connect();
    const ownerHello = checked(core, owner.session, 'client-0006');
    expect(await core.admit(owner.session, ownerHello, alice)).toMatchObject({ ok: true });
    const strangerHello = checked(core, stranger.session, 'client-0006');
    expect(await core.admit(stranger.session, strangerHello, { userId: 'bob', roles: [] })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
    expect(owner.closedWith).toEqual([]);
    expect(stranger.session.auth).toBeNull();
    expect(core.connectedClients).toBe(1);
    // The owner reconnecting (a newer connection) is admitted and replaces the old one.
    const again = connect();
    expect(await core.admit(again.session, checked(core, again.session, 'client-0006'), alice)).toMatchObject({
      ok: true,
    });
    expect(owner.closedWith.map((e) => e.code)).toEqual(['BAD_REQUEST']);
  });
  it('of two first hellos of a new client id by two users at once, only the first user gets it; the other kicks nothing', async () => {
    const { core, connect } = setup();
    const owner = connect();
    const stranger = connect();
    const ownerHello = checked(core, owner.session, 'client-0007');
    const strangerHello = checked(core, stranger.session, 'client-0007');
    // Both in flight together: each reads the id as unbound before either has bound it (in two steps).
    const [ownerAck, strangerAck] = await Promise.all([
      core.admit(owner.session, ownerHello, alice),
      core.admit(stranger.session, strangerHello, { userId: 'mallory', roles: [] }),
    ]);
    expect(ownerAck).toMatchObject({ ok: true });
    expect(strangerAck).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(owner.closedWith).toEqual([]);
    expect(stranger.session.auth).toBeNull();
    expect(await core.push(stranger.session, { mutations: [] })).toMatchObject({ ok: false });
  });
});

import type { Namespace, Socket } from 'socket.io';
import { TidelineError, toWireError } from '../../shared/errors';
import { pageAckSchema } from '../../shared/protocol/changes';
import type { Changes, Snapshot } from '../../shared/protocol/changes';
import type { HelloAck } from '../../shared/protocol/hello';
import type { WireError } from '../../shared/protocol/wire-error';
import { atExpiry, TOKEN_EXPIRED } from '../auth/session-expiry';
import type { VerifiedPrincipal } from '../auth/verifier';
import type { SessionSink } from './session';
import type { SyncCore } from './sync-core';

/** How long a client may take to apply one catch-up page before we give up on it. */
const PAGE_ACK_TIMEOUT_MS = 60_000;

type Ack = (res: unknown) => void;

/**
 * Wires the /sync namespace to the sync core: one session per socket. Tokens
 * are checked here, asynchronously (a JWKS may need fetching), between the
 * core's `checkHello` and `admit`; a session ends when its token expires.
 */
export function attachSync(
  nsp: Namespace,
  core: SyncCore,
  verifyToken: (token: string) => Promise<VerifiedPrincipal>,
): void {
  nsp.on('connection', (socket: Socket) => {
    const sink = socketSink(socket);
    const session = core.connect(sink);
    let cancelExpiry = (): void => undefined;
    socket.on('disconnect', () => {
      cancelExpiry();
      core.disconnect(session);
    });

    // One hello in flight per connection: a client cannot pile up token checks waiting on a key set fetch.
    let verifying = false;
    const hello = async (msg: unknown): Promise<HelloAck> => {
      if (verifying) {
        return { ok: false, error: { code: 'RATE_LIMITED', message: 'a hello is in flight already', retryable: true } };
      }
      const checked = core.checkHello(session, msg);
      if (!checked.ok) return checked;
      verifying = true;
      let principal: VerifiedPrincipal;
      try {
        principal = await verifyToken(checked.hello.token);
      } finally {
        verifying = false;
      }
      const answer = core.admit(session, checked.hello, principal);
      if (answer.ok) cancelExpiry = atExpiry(principal.expiresAt, () => sink.close(TOKEN_EXPIRED));
      return answer;
    };
    // A bad message never crashes the node: whatever a handler throws becomes the answer.
    socket.on('hello', (msg: unknown, ack: unknown) => {
      if (!isAck(ack)) return rejectNoAck(socket, 'hello');
      void hello(msg).then(ack, (err: unknown) => ack({ ok: false, error: toWireError(err) }));
    });
    socket.on('push', (msg: unknown, ack: unknown) => {
      if (!isAck(ack)) return rejectNoAck(socket, 'push');
      let answer: Promise<unknown>;
      try {
        answer = core.push(session, msg);
      } catch (err) {
        answer = Promise.resolve({ ok: false, error: toWireError(err) });
      }
      void answer.then(ack, (err: unknown) => ack({ ok: false, error: toWireError(err) }));
    });
    socket.onAny((event: unknown) => {
      if (event !== 'hello' && event !== 'push') {
        const err = new TidelineError('BAD_REQUEST', `unknown event '${String(event)}'`).toWire();
        socket.emit('fatal', err);
      }
    });
  });
}

function isAck(value: unknown): value is Ack {
  return typeof value === 'function';
}

function rejectNoAck(socket: Socket, event: string): void {
  socket.emit('fatal', new TidelineError('BAD_REQUEST', `'${event}' needs an acknowledgement callback`).toWire());
}

function socketSink(socket: Socket): SessionSink {
  // The server side of Socket.IO does not fail pending acks when a socket goes: race them against it.
  const gone = new Promise<never>((_resolve, reject) => {
    socket.once('disconnect', () => reject(new TidelineError('BAD_REQUEST', 'client disconnected')));
  });
  gone.catch(() => undefined);
  const awaitAck = async (event: 'changes' | 'snapshot', msg: Changes | Snapshot): Promise<void> => {
    const res: unknown = await Promise.race([socket.timeout(PAGE_ACK_TIMEOUT_MS).emitWithAck(event, msg), gone]);
    const parsed = pageAckSchema.safeParse(res);
    if (!parsed.success || !parsed.data.ok) {
      throw new TidelineError('BAD_REQUEST', `client did not apply the ${event} page`);
    }
  };
  return {
    sendChanges: (msg) => void socket.emit('changes', msg),
    sendPage: (msg) => awaitAck('changes', msg),
    sendSnapshot: (msg) => awaitAck('snapshot', msg),
    close(error: WireError) {
      socket.emit('fatal', error);
      socket.disconnect(true);
    },
  };
}

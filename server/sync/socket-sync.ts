import type { Namespace, Socket } from 'socket.io';
import { TidelineError, toWireError } from '../../shared/errors';
import { pageAckSchema } from '../../shared/protocol/changes';
import type { Changes, Snapshot } from '../../shared/protocol/changes';
import type { HelloAck } from '../../shared/protocol/hello';
import type { WireError } from '../../shared/protocol/wire-error';
import { atExpiry, TOKEN_EXPIRED } from '../auth/session-expiry';
import type { VerifiedPrincipal } from '../auth/verifier';
import type { ChangesChannel, SessionSink } from './session';
import type { SyncCore } from './sync-core';

/** Default of how long a client may take to ack one catch-up or snapshot page (`--page-ack-timeout-ms`). */
export const DEFAULT_PAGE_ACK_TIMEOUT_MS = 30_000;

/** Default cap on one session's unsent bytes (`--max-session-buffer-bytes`). */
export const DEFAULT_MAX_SESSION_BUFFER_BYTES = 8 * 1024 * 1024;

/**
 * A session closed for being slow may still read its close reason within this
 * time; then its connection is cut and what it never read is freed.
 */
const SLOW_CLOSE_GRACE_MS = 2_000;

export interface SyncOptions {
  /** Past this many unsent bytes on one connection, the session is closed (RATE_LIMITED, retryable). */
  maxSessionBufferBytes: number;
  /**
   * A catch-up or snapshot page not acked within this is a stalled client: its session is closed
   * (RATE_LIMITED, retryable) and what it held (a snapshot's read transaction, its page) is freed.
   * Default DEFAULT_PAGE_ACK_TIMEOUT_MS.
   */
  pageAckTimeoutMs?: number;
  /** Connections per remote address; one more is refused (RATE_LIMITED, retryable). 0 or absent: no limit. */
  maxConnectionsPerAddress?: number;
  /** A connection that has not completed hello by then is closed (BAD_REQUEST, retryable). 0 or absent: never. */
  helloTimeoutMs?: number;
  /** Where a slow client's close is told to the operator; default console.warn. */
  log?: (line: string) => void;
}

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
  options: SyncOptions = { maxSessionBufferBytes: DEFAULT_MAX_SESSION_BUFFER_BYTES },
): void {
  const perAddress = new Map<string, number>();
  const channel = socketChannel(nsp);
  nsp.on('connection', (socket: Socket) => {
    // Counted before hello, so connections that never say it are bounded too.
    const address = socket.handshake.address;
    const maxPerAddress = options.maxConnectionsPerAddress ?? 0;
    const open = perAddress.get(address) ?? 0;
    if (maxPerAddress > 0 && open >= maxPerAddress) {
      socket.emit('fatal', {
        code: 'RATE_LIMITED',
        message: `${open} connections from ${address}; the limit is ${maxPerAddress}`,
        retryable: true,
      } satisfies WireError);
      socket.disconnect(true);
      return;
    }
    perAddress.set(address, open + 1);
    const sink = socketSink(socket, options, channel);
    const session = core.connect(sink);
    let cancelExpiry = (): void => undefined;
    const helloTimeoutMs = options.helloTimeoutMs ?? 0;
    const helloTimer =
      helloTimeoutMs > 0
        ? setTimeout(() => {
            if (session.auth === null) {
              sink.close({ code: 'BAD_REQUEST', message: `no hello within ${helloTimeoutMs} ms`, retryable: true });
            }
          }, helloTimeoutMs)
        : undefined;
    socket.on('disconnect', () => {
      clearTimeout(helloTimer);
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
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
      const answer = await core.admit(session, checked.hello, principal);
      if (answer.ok) {
        clearTimeout(helloTimer);
        cancelExpiry = atExpiry(principal.expiresAt, () => sink.close(TOKEN_EXPIRED));
      }
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

/** A sink of this layer, with what its channel needs to send to it. */
interface SocketSink extends SessionSink {
  readonly socket: Socket;
  /** Whether a live message may go to it now; a sink over its unsent-bytes cap is closed instead (see sendChanges). */
  admit(): boolean;
}

const isSocketSink = (sink: SessionSink): sink is SocketSink => 'admit' in sink && 'socket' in sink;

/**
 * One `changes` message to many sockets of the namespace, encoded once:
 * Socket.IO's broadcast (`nsp.to(ids).emit`) encodes the packet once and
 * hands engine.io a pre-built WebSocket frame that every socket writes as is.
 * Each sink is admitted first, so the per-session unsent-bytes cap holds as
 * for a message of its own.
 */
function socketChannel(nsp: Namespace): ChangesChannel {
  return {
    sendToMany(sinks, msg) {
      const ids: string[] = [];
      for (const sink of sinks) {
        if (!isSocketSink(sink)) {
          sink.sendChanges(msg);
          continue;
        }
        if (sink.admit()) ids.push(sink.socket.id);
      }
      if (ids.length > 0) nsp.to(ids).emit('changes', msg);
    },
  };
}

function socketSink(socket: Socket, options: SyncOptions, channel: ChangesChannel): SocketSink {
  // The server side of Socket.IO does not fail pending acks when a socket goes: race them against it.
  const gone = new Promise<never>((_resolve, reject) => {
    socket.once('disconnect', () => reject(new TidelineError('BAD_REQUEST', 'client disconnected')));
  });
  gone.catch(() => undefined);
  const ackTimeoutMs = options.pageAckTimeoutMs ?? DEFAULT_PAGE_ACK_TIMEOUT_MS;
  const awaitAck = async (event: 'changes' | 'snapshot', msg: Changes | Snapshot): Promise<void> => {
    let res: unknown;
    try {
      res = await Promise.race([socket.timeout(ackTimeoutMs).emitWithAck(event, msg), gone]);
    } catch (err) {
      if (err instanceof TidelineError) throw err;
      // Socket.IO's ack timeout: the core closes the session with this, and frees what the page held. A
      // client that stopped reading would also hold up Socket.IO's close: the connection is cut after a grace.
      setTimeout(() => cut(socket), SLOW_CLOSE_GRACE_MS).unref();
      throw new TidelineError(
        'RATE_LIMITED',
        `client too slow: no ack for a ${event === 'changes' ? 'catch-up' : 'snapshot'} page within ${ackTimeoutMs} ms; resume from checkpoint`,
        { retryable: true },
      );
    }
    const parsed = pageAckSchema.safeParse(res);
    if (!parsed.success || !parsed.data.ok) {
      throw new TidelineError('BAD_REQUEST', `client did not apply the ${event} page`);
    }
  };
  const unsent = unsentBytes(socket);
  let closed = false;
  const close = (error: WireError): void => {
    if (closed) return;
    closed = true;
    socket.emit('fatal', error);
    socket.disconnect(true);
  };
  // Live changes are not paced by acks: a client that stops reading would make the server hold
  // every commit for it. Once its backlog is over the cap, the session goes instead of growing it;
  // its client resumes from its checkpoint through the catch-up pump, which waits for each page's
  // ack. (Checked before sending, so one large batch to a client that keeps up is not cut.)
  const admit = (): boolean => {
    if (closed) return false;
    const queued = unsent();
    if (queued <= options.maxSessionBufferBytes) return true;
    const cap = options.maxSessionBufferBytes;
    (options.log ?? console.warn)(`closing a slow client: ${queued} bytes unsent, over the cap of ${cap}`);
    close({
      code: 'RATE_LIMITED',
      message: `client too slow: resume from checkpoint (${queued} bytes unsent, over the cap of ${cap})`,
      retryable: true,
    });
    // Socket.IO's close waits for the buffer to drain, which a stalled client never lets happen.
    setTimeout(() => cut(socket), SLOW_CLOSE_GRACE_MS).unref();
    return false;
  };
  return {
    socket,
    channel,
    admit,
    sendChanges(msg) {
      if (admit()) socket.emit('changes', msg);
    },
    sendPage: (msg) => awaitAck('changes', msg),
    sendSnapshot: (msg) => awaitAck('snapshot', msg),
    close,
  };
}

/** The parts of a `ws` WebSocket (under engine.io's websocket transport) that we read. */
interface WsLike {
  /** Bytes queued in ws and in the TCP socket's user-space buffer, not yet handed to the kernel. */
  bufferedAmount: number;
  terminate(): void;
}

function isWsLike(value: unknown): value is WsLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    'bufferedAmount' in value &&
    typeof value.bufferedAmount === 'number' &&
    'terminate' in value &&
    typeof value.terminate === 'function'
  );
}

/** The ws WebSocket under a socket's current transport, if it is the websocket one. */
function wsOf(socket: Socket): WsLike | null {
  const transport: unknown = socket.conn.transport;
  if (typeof transport !== 'object' || transport === null) return null;
  const ws: unknown = Reflect.get(transport, 'socket');
  return isWsLike(ws) ? ws : null;
}

/**
 * Measures the bytes a connection holds that its client has not taken: the
 * packets engine.io keeps while the transport is busy (its `writeBuffer`), and
 * what ws and the TCP socket keep above the kernel (`bufferedAmount`). Engine.io
 * swaps in a new `writeBuffer` array on each flush, so the packets are sized
 * once each, as they arrive, not on every call.
 */
function unsentBytes(socket: Socket): () => number {
  let counted: unknown[] | null = null;
  let countedPackets = 0;
  let countedBytes = 0;
  return () => {
    const buffer: unknown = Reflect.get(socket.conn, 'writeBuffer');
    let engineBytes = 0;
    if (Array.isArray(buffer)) {
      if (buffer !== counted) {
        counted = buffer;
        countedPackets = 0;
        countedBytes = 0;
      }
      for (; countedPackets < buffer.length; countedPackets++) countedBytes += packetBytes(buffer[countedPackets]);
      engineBytes = countedBytes;
    }
    return engineBytes + (wsOf(socket)?.bufferedAmount ?? 0);
  };
}

function packetBytes(packet: unknown): number {
  if (typeof packet !== 'object' || packet === null || !('data' in packet)) return 0;
  const { data } = packet;
  if (typeof data === 'string') return Buffer.byteLength(data);
  return Buffer.isBuffer(data) ? data.length : 0;
}

/** Cuts a connection at once, dropping what its client never read. */
function cut(socket: Socket): void {
  const ws = wsOf(socket);
  if (ws) ws.terminate();
  else socket.conn.close(true);
}

import { socketTransport } from '../../client/sync/socket-transport';
import type { Transport, TransportFactory } from '../../client/sync/transport';
import { pushAckSchema } from '../../shared/protocol/push';

/**
 * A socket transport that records `clientId#seq` of every mutation the client
 * was told committed (applied or duplicate): what durability tests must find
 * on the server after a crash.
 */
export function ackRecordingTransport(acked: Set<string>, clientId: () => string | null): TransportFactory {
  return (url: string): Transport => {
    const inner = socketTransport(url);
    return {
      open: (events) => inner.open(events),
      close: () => inner.close(),
      async request(event, msg, timeoutMs) {
        const res = await inner.request(event, msg, timeoutMs);
        const ack = event === 'push' ? pushAckSchema.safeParse(res) : null;
        if (ack?.success && ack.data.ok) {
          for (const r of ack.data.results) if (r.status !== 'rejected') acked.add(`${clientId()}#${r.seq}`);
        }
        return res;
      },
    };
  };
}

/** One request a client sent on one connection, and what the server answered. */
export interface SentRequest {
  /** 1 for the first connection the client opened, 2 for the next, ... */
  connection: number;
  event: 'hello' | 'push';
  msg: unknown;
  answer: unknown;
  /** The server answered, but the client was never told: the link died first. */
  lost: boolean;
}

/**
 * A socket transport that records every request and the server's answer, in
 * the order sent. A request that `loseAck` picks is a lost ack: the link dies
 * right after the request went out, so the server gets it and answers, but
 * nothing it sends from then on (the answer, the fan-out of the commit)
 * reaches the client; the request fails and the connection closes.
 */
export function recordingTransport(
  log: SentRequest[],
  loseAck: (event: 'hello' | 'push', msg: unknown) => boolean = () => false,
): TransportFactory {
  let connections = 0;
  return (url: string): Transport => {
    const inner = socketTransport(url);
    const connection = ++connections;
    let dying = false;
    return {
      open: (events) =>
        inner.open({
          connected: () => events.connected(),
          disconnected: (reason) => events.disconnected(reason),
          changes: (msg, ack) => {
            if (!dying) events.changes(msg, ack);
          },
          snapshot: (msg, ack) => {
            if (!dying) events.snapshot(msg, ack);
          },
          fatal: (msg) => {
            if (!dying) events.fatal(msg);
          },
        }),
      close: () => inner.close(),
      async request(event, msg, timeoutMs) {
        const lose = loseAck(event, msg);
        if (lose) dying = true;
        const answer = await inner.request(event, msg, timeoutMs);
        log.push({ connection, event, msg, answer, lost: lose });
        if (lose) {
          inner.close();
          throw new Error(`the link died before the ${event} ack arrived`);
        }
        return answer;
      },
    };
  };
}

/**
 * A lost ack that stays lost: once `arm`ed, the next push reaches the server
 * and is answered, but the link dies first (as with `recordingTransport`) and
 * the network stays down, so the client cannot reconnect and learn the
 * outcome, until the test calls `up`. `cut()` tells whether the server has
 * answered the armed push.
 */
export function ackLosingTransport(): {
  factory: TransportFactory;
  arm: () => void;
  cut: () => boolean;
  up: () => void;
} {
  const log: SentRequest[] = [];
  let armed = false;
  let down = false;
  const recording = recordingTransport(log, (event) => {
    if (event !== 'push' || !armed) return false;
    armed = false;
    down = true;
    return true;
  });
  const dead: Transport = {
    open: () => undefined,
    close: () => undefined,
    request: () => Promise.reject(new Error('the network is down')),
  };
  return {
    factory: (url) => (down ? dead : recording(url)),
    arm: () => {
      armed = true;
    },
    cut: () => log.some((r) => r.lost),
    up: () => {
      down = false;
    },
  };
}

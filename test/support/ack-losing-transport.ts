import { socketTransport } from '../../client/sync/socket-transport';
import type { Transport, TransportFactory } from '../../client/sync/transport';
import { pushAckSchema } from '../../shared/protocol/push';

/**
 * A transport that, once `armed`, lets the next push reach the server and
 * commit, then cuts the connection before the client hears anything more
 * (neither the ack nor the changes that carry the outcome), and stays down
 * until the test lets it up: a committed-but-unheard outbox entry, the state
 * a lost ack or a crash after commit leaves behind.
 */
export function ackLosingTransport(): {
  factory: TransportFactory;
  arm: () => void;
  cut: () => boolean;
  up: () => void;
} {
  let armed = false;
  let cut = false;
  let down = false;
  const dead: Transport = {
    open: () => undefined,
    close: () => undefined,
    request: () => Promise.reject(new Error('the network is down')),
  };
  const factory = (url: string): Transport => {
    if (down) return dead;
    const inner = socketTransport(url);
    let deaf = false;
    return {
      open: (events) =>
        inner.open({
          ...events,
          changes: (raw, ack) => {
            if (!deaf) events.changes(raw, ack);
          },
          snapshot: (raw, ack) => {
            if (!deaf) events.snapshot(raw, ack);
          },
        }),
      close: () => inner.close(),
      async request(event, msg, timeoutMs) {
        if (event === 'push' && armed) deaf = true;
        const res = await inner.request(event, msg, timeoutMs);
        if (event === 'push' && armed) {
          const ack = pushAckSchema.parse(res);
          if (ack.ok && ack.results.every((r) => r.status === 'applied' || r.status === 'rejected')) {
            armed = false;
            cut = true;
            down = true;
            inner.close();
            throw new Error('connection cut before the ack arrived');
          }
        }
        return res;
      },
    };
  };
  return {
    factory,
    arm: () => {
      armed = true;
    },
    cut: () => cut,
    up: () => {
      down = false;
    },
  };
}

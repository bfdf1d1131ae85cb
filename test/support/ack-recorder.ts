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

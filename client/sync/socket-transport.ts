import { io } from 'socket.io-client';
import type { Socket } from 'socket.io-client';
import type { PageAck } from '../../shared/protocol/changes';
import type { Transport, TransportEvents } from './transport';

type MaybeAck = ((res: PageAck) => void) | undefined;

const asAck = (value: unknown): MaybeAck =>
  typeof value === 'function' ? (value as (res: PageAck) => void) : undefined;

/**
 * A transport over one Socket.IO connection to `${url}/sync`. Socket.IO's own
 * reconnection is off: the engine decides when and where to reconnect.
 */
export function socketTransport(url: string): Transport {
  let socket: Socket | null = null;
  let closed = false;
  return {
    open(events: TransportEvents) {
      const s = io(`${url.replace(/\/$/, '')}/sync`, {
        transports: ['websocket'],
        reconnection: false,
        timeout: 10_000,
      });
      socket = s;
      let over = false;
      const end = (reason: string): void => {
        if (over) return;
        over = true;
        s.removeAllListeners();
        s.disconnect();
        events.disconnected(reason);
      };
      s.on('connect', () => events.connected());
      s.on('connect_error', (err: Error) => end(`connect error: ${err.message}`));
      s.on('disconnect', (reason: string) => end(reason));
      s.on('changes', (msg: unknown, ack: unknown) => events.changes(msg, asAck(ack)));
      s.on('snapshot', (msg: unknown, ack: unknown) => events.snapshot(msg, asAck(ack)));
      s.on('fatal', (msg: unknown) => events.fatal(msg));
      if (closed) end('closed');
    },
    close() {
      closed = true;
      socket?.removeAllListeners();
      socket?.disconnect();
    },
    async request(event, msg, timeoutMs) {
      if (!socket) throw new Error('transport is not open');
      const res: unknown = await socket.timeout(timeoutMs).emitWithAck(event, msg);
      return res;
    },
  };
}

import { io } from 'socket.io-client';
import type { Socket } from 'socket.io-client';
import { PROTOCOL_VERSION } from '../../shared/protocol/version';

/** A bare Socket.IO client on /sync, for sending what the client library never would. */
export interface RawClient {
  socket: Socket;
  /** Emits with an ack and resolves with whatever comes back. */
  request(event: string, payload: unknown, timeoutMs?: number): Promise<unknown>;
  hello(token: string, clientId: string, checkpoint?: number): Promise<unknown>;
  received: Array<{ event: string; payload: unknown }>;
  close(): void;
}

export async function rawClient(url: string): Promise<RawClient> {
  const socket = io(`${url}/sync`, { transports: ['websocket'], reconnection: false, forceNew: true });
  const received: Array<{ event: string; payload: unknown }> = [];
  socket.onAny((event: string, payload: unknown, ack: unknown) => {
    received.push({ event, payload });
    if (typeof ack === 'function') (ack as (r: unknown) => void)({ ok: true });
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  const request = async (event: string, payload: unknown, timeoutMs = 5000): Promise<unknown> => {
    const res: unknown = await socket.timeout(timeoutMs).emitWithAck(event, payload);
    return res;
  };
  return {
    socket,
    received,
    request,
    hello: (token, clientId, checkpoint = 0) =>
      request('hello', { protocol: PROTOCOL_VERSION, clientId, token, checkpoint, checkpointTerm: 0, pendingFrom: 1 }),
    close: () => socket.disconnect(),
  };
}

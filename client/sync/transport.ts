import type { PageAck } from '../../shared/protocol/changes';

/** What a transport reports; payloads are raw and the engine parses them. */
export interface TransportEvents {
  connected(): void;
  disconnected(reason: string): void;
  changes(msg: unknown, ack: ((res: PageAck) => void) | undefined): void;
  snapshot(msg: unknown, ack: ((res: PageAck) => void) | undefined): void;
  fatal(msg: unknown): void;
}

/**
 * One connection attempt to one server. The engine opens a new transport per
 * attempt and handles reconnection itself (with backoff), so a transport never
 * reconnects on its own.
 *
 * Contract: after `open`, exactly one of `connected` or `disconnected` fires
 * first; after `disconnected` nothing more fires. Messages arrive in the order
 * the server sent them. `request` resolves with the server's ack, or rejects
 * on timeout or disconnect.
 */
export interface Transport {
  open(events: TransportEvents): void;
  close(): void;
  request(event: 'hello' | 'push', msg: unknown, timeoutMs: number): Promise<unknown>;
}

export type TransportFactory = (url: string) => Transport;

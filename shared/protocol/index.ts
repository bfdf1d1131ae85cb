/**
 * The /sync wire protocol. Every inbound payload is parsed with these schemas
 * before use. Events:
 *
 *   client → server   hello (ack HelloAck), push (ack PushAck)
 *   server → client   changes (ack PageAck when catching up), snapshot (ack PageAck), fatal
 */
export * from './change';
export * from './changes';
export * from './hello';
export * from './limits';
export * from './push';
export * from './version';
export * from './wire-error';

import type { Changes, Snapshot } from './changes';
import type { Hello, HelloAck } from './hello';
import type { Push, PushAck } from './push';
import type { WireError } from './wire-error';
import type { PageAck } from './changes';

/** Socket.IO event maps for the /sync namespace, as seen from the server. */
export interface SyncClientToServer {
  hello: (msg: Hello, ack: (res: HelloAck) => void) => void;
  push: (msg: Push, ack: (res: PushAck) => void) => void;
}
export interface SyncServerToClient {
  changes: (msg: Changes, ack?: (res: PageAck) => void) => void;
  snapshot: (msg: Snapshot, ack: (res: PageAck) => void) => void;
  fatal: (err: WireError) => void;
}
export * from './replication';

import type { WireError } from '../../shared/protocol/wire-error';
import type { Changes, Snapshot } from '../../shared/protocol/changes';

/**
 * How the sync core reaches one connected client. The composition root
 * implements it over a Socket.IO socket; the simulation over an in-memory
 * network. Messages on one sink are delivered in the order they are sent.
 */
export interface SessionSink {
  /** Live changes: fire and forget. */
  sendChanges(msg: Changes): void;
  /**
   * Where sinks that can share one encoding of a message meet (the socket
   * layer: one per namespace). The fan-out hands a message that several
   * sessions get byte for byte to their common channel once, instead of to
   * each sink. Absent: each sink gets its own `sendChanges`.
   */
  readonly channel?: ChangesChannel;
  /** A catch-up page: resolves when the client has applied it (flow control); rejects if the connection goes. */
  sendPage(msg: Changes): Promise<void>;
  sendSnapshot(msg: Snapshot): Promise<void>;
  /** Tells the client why, then closes the connection. */
  close(error: WireError): void;
}

/**
 * Sends one live `changes` message to several sinks of this channel, encoded
 * once. Each sink's own rules still hold (a sink over its unsent-bytes cap is
 * closed instead of sent to), and a sink gets it in order with everything
 * else sent to it, as `sendChanges` would.
 */
export interface ChangesChannel {
  sendToMany(sinks: readonly SessionSink[], msg: Changes): void;
}

/** The state of one connected client, owned by the sync core. */
export interface Session {
  readonly sink: SessionSink;
  /** Set by hello. */
  auth: {
    clientId: string;
    userId: string;
    roles: readonly string[];
    pendingFrom: number;
    /** Owner-only collections this user reads in full, by role. */
    allOf: readonly string[];
  } | null;
  /** Highest LSN sent (or skipped as out of scope) to this client. */
  cursor: number;
  /** Caught up: commits are sent to it directly. Until then its pump reads the log. */
  live: boolean;
  /** Its checkpoint is not on this primary's history (a failover): it gets a snapshot first. */
  needsSnapshot: boolean;
  /** A push of this client is queued or waiting for replicas: one in flight per client. */
  pushing: boolean;
  closed: boolean;
  /** When its last hello was checked, among all hellos (0 before): the later of two connections of a client wins. */
  helloOrder: number;
}

export function newSession(sink: SessionSink): Session {
  return {
    sink,
    auth: null,
    cursor: 0,
    live: false,
    needsSnapshot: false,
    pushing: false,
    closed: false,
    helloOrder: 0,
  };
}

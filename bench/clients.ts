import Dexie from 'dexie';
import { open } from '../client/lib/open';
import type { ConnectionState } from '../client/sync/engine';
import { socketTransport } from '../client/sync/socket-transport';
import type { Transport, TransportFactory } from '../client/sync/transport';
import { storeSchema } from '../shared/apps/store';
import type { NodeClient } from '../test/support/node-client';
import { tokenFor } from '../test/support/node-client';
import { readChanges } from './raw-client';
import type { SeenChanges } from './raw-client';
import { nowMs } from './stats';

/**
 * Real client library instances (`open()` on fake-indexeddb, the same
 * socket.io transport as the browser) with a thin observer around the
 * transport: it counts pushes and sees `changes` messages as they arrive,
 * without changing what the engine does with them.
 */

export interface ClientStats {
  pushes: number;
  pushedMutations: number;
  /** Times the engine went into backoff (dropped its connection to retry). */
  reconnects: number;
  /** Why, by message with the numbers blanked out ("gap before LSN N"). */
  reconnectReasons: Record<string, number>;
}

export interface ObservedClient {
  client: NodeClient;
  dbName: string;
  stats: ClientStats;
  /** Closes the client and deletes its fake-indexeddb database (unless `keepDb`). */
  close(keepDb?: boolean): Promise<void>;
}

let counter = 0;

export interface ObservedClientOptions {
  dbName?: string;
  /** Start syncing at once (default true). */
  sync?: boolean;
  /** Called for every `changes` message, at arrival, before the engine applies it. */
  onChanges?: (msg: SeenChanges) => void;
  /** Called with each push's mutations just before the push is handed to the socket. */
  onPush?: (mutations: readonly unknown[], at: number) => void;
  requestTimeoutMs?: number;
}

export function newClientStats(): ClientStats {
  return { pushes: 0, pushedMutations: 0, reconnects: 0, reconnectReasons: {} };
}

export function mergeStats(all: readonly ClientStats[]): ClientStats {
  const out = newClientStats();
  for (const s of all) {
    out.pushes += s.pushes;
    out.pushedMutations += s.pushedMutations;
    out.reconnects += s.reconnects;
    for (const [k, v] of Object.entries(s.reconnectReasons))
      out.reconnectReasons[k] = (out.reconnectReasons[k] ?? 0) + v;
  }
  return out;
}

function observedTransport(
  stats: ClientStats,
  { onChanges, onPush }: Pick<ObservedClientOptions, 'onChanges' | 'onPush'>,
): TransportFactory {
  return (url: string): Transport => {
    const inner = socketTransport(url);
    return {
      open(events) {
        inner.open({
          connected: () => events.connected(),
          disconnected: (reason) => events.disconnected(reason),
          changes: (msg, ack) => {
            if (onChanges) {
              const seen = readChanges(msg, ack !== undefined, nowMs());
              if (seen) onChanges(seen);
            }
            events.changes(msg, ack);
          },
          snapshot: (msg, ack) => events.snapshot(msg, ack),
          fatal: (msg) => events.fatal(msg),
        });
      },
      close: () => inner.close(),
      request(event, msg, timeoutMs) {
        if (event === 'push') {
          stats.pushes++;
          const mutations = typeof msg === 'object' && msg !== null && 'mutations' in msg ? msg.mutations : null;
          if (Array.isArray(mutations)) {
            stats.pushedMutations += mutations.length;
            onPush?.(mutations as unknown[], nowMs());
          }
        }
        return inner.request(event, msg, timeoutMs);
      },
    };
  };
}

export async function openObservedClient(
  url: string,
  userId: string,
  options: ObservedClientOptions = {},
): Promise<ObservedClient> {
  const stats = newClientStats();
  const dbName = options.dbName ?? `bench-${process.pid}-${++counter}-${userId}`;
  const client = await open(storeSchema, {
    servers: [url],
    token: tokenFor(userId),
    dbName,
    sync: options.sync ?? true,
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    connect: observedTransport(stats, options),
  });
  let previous: ConnectionState = client.status().state;
  client.on((e) => {
    if (e.type !== 'status') return;
    const { state, lastError } = e.status;
    if (state === 'backoff' && previous !== 'backoff') {
      stats.reconnects++;
      const reason = (lastError?.message ?? 'unknown').replace(/\d+/g, 'N').slice(0, 80);
      stats.reconnectReasons[reason] = (stats.reconnectReasons[reason] ?? 0) + 1;
    }
    previous = state;
  });
  let closed = false;
  return {
    client,
    dbName,
    stats,
    async close(keepDb = false) {
      if (closed) return;
      closed = true;
      client.close();
      if (!keepDb) await Dexie.delete(dbName);
    },
  };
}

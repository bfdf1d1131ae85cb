/**
 * `tideline/client`: what a browser (or Node) app imports to open a replica
 * and sync it. Everything else under client/ is internal and may change.
 * This entry must never import server code: the consumer test bundles it and
 * looks for express, socket.io's server and better-sqlite3.
 */
export { open } from './lib/open';
export type { Collection, Mutate, OpenOptions, Tideline } from './lib/open';
export type { ConnectionState, EngineEvent, SyncStatus } from './sync/engine';
export type { OutboxEntry, RejectionRecord } from './sync/local-store';
export type { WireError } from '../shared/protocol/wire-error';

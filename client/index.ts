/**
 * `tideline/client`: what a browser (or Node) app imports to open a replica
 * and sync it. Everything else under client/ is internal and may change.
 * This entry must never import server code: the consumer test bundles it and
 * looks for express, socket.io's server and better-sqlite3.
 */
export { open } from './lib/open';
export type {
  AppMutate,
  AuthOptions,
  BuiltinMutate,
  Collection,
  GetToken,
  Mutate,
  MutationHandle,
  OpenOptions,
  Tideline,
} from './lib/open';
export { TidelineClientError } from './lib/client-error';
export type { ClientErrorCode } from './lib/client-error';
export type { AppliedEvent, ConnectionState, EngineEvent, MutationState, SyncStatus } from './sync/engine';
export type { OutboxEntry, RejectionRecord } from './sync/local-store';
export type { WireError } from '../shared/protocol/wire-error';

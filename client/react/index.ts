/**
 * React bindings for Tideline (`tideline/react`). Each hook takes the
 * database `open()` returned; React is a peer dependency.
 */
export { useQuery } from './use-query';
export { useSyncStatus } from './use-sync-status';
export type { SyncState } from './use-sync-status';
export { useMutationState } from './use-mutation-state';
export { useRejections } from './use-rejections';
export type { Rejections } from './use-rejections';
export { useReconnectWhenOnline } from './use-reconnect-when-online';
export type { TidelineSource } from './source';

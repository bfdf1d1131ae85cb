import { useEffect, useState } from 'react';
import type { SyncStatus } from '../sync/engine';
import type { TidelineSource } from './source';

export interface SyncState {
  status: SyncStatus;
  /** Whether this tab holds the server connection (one tab per replica does). */
  leader: boolean;
}

/** The sync status as this tab sees it (its own engine's, or that of the tab holding the connection), kept current. */
export function useSyncStatus(db: TidelineSource): SyncState {
  const [state, setState] = useState<SyncState>(() => ({ status: db.status(), leader: db.isLeader() }));
  useEffect(() => {
    // The status may have moved between the first render and this subscription.
    setState({ status: db.status(), leader: db.isLeader() });
    return db.on((e) => {
      if (e.type === 'status') setState({ status: e.status, leader: db.isLeader() });
    });
  }, [db]);
  return state;
}

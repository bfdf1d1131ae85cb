import { useEffect, useState } from 'react';
import type { RejectionRecord, SyncStatus } from 'tideline/client';
import type { StoreDb } from './use-tideline';

export interface TabSyncState {
  status: SyncStatus;
  /** Whether this tab holds the server connection. */
  leader: boolean;
  /** The last rejection reported while this page was open, until dismissed. */
  latestRejection: RejectionRecord | null;
}

/** The sync status as this tab sees it: its own engine's, or that of the tab holding the connection. */
export function useSyncStatus(db: StoreDb): TabSyncState & { dismissRejection: () => void } {
  const [state, setState] = useState<TabSyncState>(() => ({
    status: db.status(),
    leader: db.isLeader(),
    latestRejection: null,
  }));
  useEffect(() => {
    setState((s) => ({ ...s, status: db.status(), leader: db.isLeader() }));
    return db.on((e) => {
      if (e.type === 'status') setState((s) => ({ ...s, status: e.status, leader: db.isLeader() }));
      else if (e.type === 'rejected') setState((s) => ({ ...s, latestRejection: e.rejection }));
    });
  }, [db]);
  return { ...state, dismissRejection: () => setState((s) => ({ ...s, latestRejection: null })) };
}

import { useEffect } from 'react';
import type { StoreDb } from './use-tideline';

/**
 * When the browser says it is back online, the tab holding the connection
 * reconnects at once instead of waiting out its backoff timer (up to 5 s
 * after a long offline spell). The engine has no "retry now" call, so this
 * restarts it, which is what its timer would do; a live connection is left
 * alone.
 */
export function useReconnectWhenOnline(db: StoreDb | null): void {
  useEffect(() => {
    if (!db) return undefined;
    const onOnline = (): void => {
      if (!db.isLeader() || db.status().state !== 'backoff') return;
      db.engine.stop();
      // A failure here is a failure to read the replica; the status bar shows the engine's state.
      db.engine.start().catch(() => undefined);
    };
    window.addEventListener('online', onOnline);
    return () => window.removeEventListener('online', onOnline);
  }, [db]);
}

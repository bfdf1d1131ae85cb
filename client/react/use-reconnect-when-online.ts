import { useEffect } from 'react';
import type { TidelineSource } from './source';

/**
 * When the browser says it is back online, reconnects at once instead of
 * waiting out the backoff timer (up to 5 s after a long offline spell). The
 * tab holding the connection does it, whichever tab heard the event.
 */
export function useReconnectWhenOnline(db: TidelineSource | null): void {
  useEffect(() => {
    if (!db || typeof window === 'undefined') return undefined;
    const onOnline = (): void => db.reconnectNow();
    window.addEventListener('online', onOnline);
    return () => window.removeEventListener('online', onOnline);
  }, [db]);
}

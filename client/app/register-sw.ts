let registration: Promise<boolean> | null = null;

/**
 * Registers the app-shell service worker (public/sw.js) so the next visit
 * loads with no network; every call shares the first one's result. Resolves
 * true once a worker is active, that is once the shell is cached; false
 * where service workers are unavailable (plain http on a host other than
 * localhost or 127.0.0.1) or registration fails.
 */
export function registerServiceWorker(): Promise<boolean> {
  registration ??= (async () => {
    if (!('serviceWorker' in navigator)) return false;
    try {
      await navigator.serviceWorker.register('/sw.js', { scope: '/' });
      await navigator.serviceWorker.ready;
      return true;
    } catch {
      return false;
    }
  })();
  return registration;
}

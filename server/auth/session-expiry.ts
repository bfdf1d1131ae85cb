import type { Clock } from '../../shared/clock';
import { systemClock } from '../../shared/clock';
import type { WireErrorShape } from '../../shared/errors';

/** What a session whose token expired is closed with; the client asks its app for a fresh token. */
export const TOKEN_EXPIRED: WireErrorShape = { code: 'UNAUTHORIZED', message: 'token expired', retryable: false };

/** Node's timers fire at once when asked for more than this (about 24.8 days). */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Calls `onExpire` once, at `expiresAt` (ms since the epoch) or at once when
 * that has passed; returns a function that cancels it. One timer at a time:
 * a later expiry is reached in steps, and a timer that fires early re-arms.
 */
export function atExpiry(expiresAt: number, onExpire: () => void, clock: Clock = systemClock): () => void {
  let handle: unknown = null;
  const arm = (): void => {
    const left = expiresAt - clock.now();
    if (left <= 0) {
      handle = null;
      onExpire();
      return;
    }
    handle = clock.setTimeout(arm, Math.min(left, MAX_TIMER_MS));
  };
  arm();
  return () => {
    if (handle !== null) clock.clearTimeout(handle);
    handle = null;
  };
}

import type { Clock } from '../../shared/clock';
import type { EngineEvent, SyncStatus } from '../sync/engine';
import { TidelineClientError } from './client-error';

export interface EventSource {
  on: (listener: (e: EngineEvent) => void) => () => void;
  status: () => SyncStatus;
  /** Subscribes to the database closing; returns an unsubscribe function. */
  onClose: (listener: () => void) => () => void;
}

/**
 * Re-evaluates `check` after every engine event until it returns a result,
 * then resolves with it. `check` may throw to reject. Events that arrive while
 * a check runs trigger another check, so none is missed. Rejects with
 * TIMEOUT after `timeoutMs` (none when Infinity) and with CLOSED when the
 * database closes.
 */
export function waitForEvent<T>(
  source: EventSource,
  clock: Clock,
  timeoutMs: number,
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  /** Which events call for a new check (default: all). */
  relevant: (e: EngineEvent) => boolean = () => true,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let running = false;
    let again = false;
    let timer: unknown = null;
    const finish = (): void => {
      done = true;
      stopEvents();
      stopClose();
      if (timer !== null) clock.clearTimeout(timer);
    };
    const run = async (): Promise<void> => {
      if (done) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          const result = await check();
          if (done) return;
          if (result !== undefined) {
            finish();
            resolve(result);
            return;
          }
        } while (again && !done);
      } catch (err) {
        if (!done) {
          finish();
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      } finally {
        running = false;
      }
    };
    const stopEvents = source.on((e) => {
      if (relevant(e)) void run();
    });
    const stopClose = source.onClose(() => {
      if (done) return;
      finish();
      reject(new TidelineClientError('CLOSED', `the database closed while waiting for ${what}`, source.status()));
    });
    if (Number.isFinite(timeoutMs)) {
      timer = clock.setTimeout(() => {
        if (done) return;
        finish();
        const s = source.status();
        reject(
          new TidelineClientError(
            'TIMEOUT',
            `timed out after ${timeoutMs} ms waiting for ${what} (connection ${s.state}, ${s.pending} pending)`,
            s,
          ),
        );
      }, timeoutMs);
    }
    void run();
  });
}

import type { Clock } from '../../shared/clock';
import { TidelineError } from '../../shared/errors';

/** How long a replica holds a query with `minLsn` by default, and how many it holds at once. */
export const DEFAULT_READ_WAIT_MS = 2000;
export const DEFAULT_MAX_READ_WAITERS = 1000;

interface Waiter {
  lsn: number;
  done: (reached: boolean) => void;
  timer: unknown;
}

/**
 * Requests waiting for this node's applied LSN to reach theirs (read your
 * writes on a replica: `GET /query?minLsn=N`). Woken by `applied`, which the
 * follower calls after each store transaction it applies (changes or a
 * snapshot), never by polling. At most `maxWaiters` wait at once: one more
 * is refused with RATE_LIMITED, so a flood of reads ahead of the log holds a
 * bounded number of timers and promises.
 */
export class AppliedLsnWaiters {
  private waiters: Waiter[] = [];

  constructor(private readonly opts: { clock: Clock; maxWaiters: number; head: () => number }) {}

  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Resolves true once the head is at or past `lsn` (at once when it is
   * already), false after `timeoutMs`. Throws RATE_LIMITED when
   * `maxWaiters` requests already wait.
   */
  wait(lsn: number, timeoutMs: number): Promise<boolean> {
    if (this.opts.head() >= lsn) return Promise.resolve(true);
    if (this.waiters.length >= this.opts.maxWaiters) {
      throw new TidelineError(
        'RATE_LIMITED',
        `${this.opts.maxWaiters} reads already wait for this replica to catch up`,
        {
          hint: 'retry later, or read from the primary',
        },
      );
    }
    // A read that would not wait takes no place: it is only refused when the places are taken.
    if (timeoutMs <= 0) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        lsn,
        done: (reached) => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve(reached);
        },
        timer: null,
      };
      waiter.timer = this.opts.clock.setTimeout(() => waiter.done(false), timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** The node applied up to `head`: every waiter at or below it goes on. */
  applied(head: number): void {
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.lsn <= head);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.lsn > head);
    for (const w of ready) {
      this.opts.clock.clearTimeout(w.timer);
      w.done(true);
    }
  }

  /** Answers every waiter now (not reached): the server is closing. */
  close(): void {
    const all = this.waiters;
    this.waiters = [];
    for (const w of all) {
      this.opts.clock.clearTimeout(w.timer);
      w.done(false);
    }
  }
}

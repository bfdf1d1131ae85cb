import type { TabChannel } from '../../client/lib/leader';

/**
 * In-process doubles of the two browser APIs that tabs of one origin share:
 * Web Locks and BroadcastChannel. Each "tab" gets its own view
 * (`locks.forTab(tab)`, `channels.forTab(tab)`), and `closeTab` does what the
 * browser does when a tab goes away without cleaning up: its held locks are
 * released, its queued requests dropped, its channels closed.
 */

interface Held {
  name: string;
  mode: LockMode;
  tab: string;
}

interface Waiting extends Held {
  grant: () => void;
  refuse: (error: Error) => void;
}

/** What a request aborted by its signal rejects with: the signal's reason, an `AbortError` by default. */
function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new DOMException('The lock request was aborted', 'AbortError');
}

/**
 * The Web Locks of one origin (the LockManager spec's lock request queue, for
 * `mode`, `ifAvailable` and `signal`; `steal` is not modelled). A request is
 * granted when no held lock of that name conflicts and no earlier request for
 * it waits; the callback runs in a later microtask, and the lock is held until
 * the promise it returned settles, which then settles `request`'s promise.
 */
export class FakeLocks {
  private held: Held[] = [];
  private queue: Waiting[] = [];
  private readonly closedTabs = new Set<string>();
  /** Every grant, in order, with the tab that got it. */
  readonly grants: Array<{ name: string; tab: string }> = [];

  /** The `navigator.locks` of one tab. */
  forTab(tab: string): LockManager {
    const request = <T>(
      name: string,
      optionsOrCallback: LockOptions | LockGrantedCallback<T>,
      maybeCallback?: LockGrantedCallback<T>,
    ): Promise<T> => {
      const options = typeof optionsOrCallback === 'function' ? {} : optionsOrCallback;
      const callback = typeof optionsOrCallback === 'function' ? optionsOrCallback : maybeCallback;
      if (!callback) return Promise.reject(new TypeError('a lock request needs a callback'));
      return this.request(tab, name, options, callback);
    };
    return {
      request,
      query: async () => this.query(),
    } satisfies LockManager;
  }

  /** The tabs holding `name` now. */
  holders(name: string): string[] {
    return this.held.filter((h) => h.name === name).map((h) => h.tab);
  }

  /** The tabs waiting for `name`, in queue order. */
  waiting(name: string): string[] {
    return this.queue.filter((w) => w.name === name).map((w) => w.tab);
  }

  /** The browser refuses the tab's queued requests (as when its document stops being fully active). */
  refuseWaiting(tab: string, error: Error): void {
    for (const w of this.queue.filter((q) => q.tab === tab)) w.refuse(error);
  }

  /** The tab is gone: its locks are released and its requests dropped (their promises never settle). */
  closeTab(tab: string): void {
    this.closedTabs.add(tab);
    this.held = this.held.filter((h) => h.tab !== tab);
    this.queue = this.queue.filter((w) => w.tab !== tab);
    this.grantWaiting();
  }

  private query(): LockManagerSnapshot {
    const info = ({ name, mode, tab }: Held): LockInfo => ({ name, mode, clientId: tab });
    return { held: this.held.map(info), pending: this.queue.map(info) };
  }

  private request<T>(tab: string, name: string, options: LockOptions, callback: LockGrantedCallback<T>): Promise<T> {
    if (options.steal) throw new Error('FakeLocks does not model steal');
    const mode = options.mode ?? 'exclusive';
    const { signal } = options;
    return new Promise<T>((resolve, reject) => {
      if (this.closedTabs.has(tab)) return;
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      const run = (lock: Lock | null, release: () => void): void => {
        queueMicrotask(() => {
          // A throw in the callback rejects `outcome`; a returned promise is adopted.
          const outcome = new Promise<T>((ok) => ok(callback(lock)));
          void outcome.finally(release).then(resolve, reject);
        });
      };
      const take = (): void => {
        const held: Held = { name, mode, tab };
        this.held.push(held);
        this.grants.push({ name, tab });
        run({ name, mode } satisfies Lock, () => this.release(held));
      };
      if (options.ifAvailable) {
        if (this.grantable(name, mode) && this.waiting(name).length === 0) take();
        else run(null, () => undefined);
        return;
      }
      const onAbort = (): void => {
        const i = this.queue.indexOf(waiting);
        if (i < 0) return;
        this.queue.splice(i, 1);
        if (signal) reject(abortReason(signal));
        this.grantWaiting();
      };
      const waiting: Waiting = {
        name,
        mode,
        tab,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          take();
        },
        refuse: (error) => {
          signal?.removeEventListener('abort', onAbort);
          this.queue.splice(this.queue.indexOf(waiting), 1);
          reject(error);
          this.grantWaiting();
        },
      };
      signal?.addEventListener('abort', onAbort);
      this.queue.push(waiting);
      this.grantWaiting();
    });
  }

  private grantable(name: string, mode: LockMode): boolean {
    const others = this.held.filter((h) => h.name === name);
    return mode === 'shared' ? others.every((h) => h.mode === 'shared') : others.length === 0;
  }

  /** Grants queued requests in order, per name, until one must wait. */
  private grantWaiting(): void {
    const blocked = new Set<string>();
    for (const w of [...this.queue]) {
      if (blocked.has(w.name)) continue;
      if (!this.grantable(w.name, w.mode)) {
        blocked.add(w.name);
        continue;
      }
      this.queue.splice(this.queue.indexOf(w), 1);
      w.grant();
    }
  }

  private release(held: Held): void {
    const i = this.held.indexOf(held);
    if (i < 0) return;
    this.held.splice(i, 1);
    this.grantWaiting();
  }
}

/**
 * BroadcastChannel between the tabs of one origin: a message goes, as a
 * structured clone in a later microtask, to every other open channel of the
 * same name, in any tab, never back to its sender.
 */
export class FakeChannels {
  private readonly open = new Set<FakeChannel>();
  /** Messages for which this returns true are lost on the way (a test of what must not depend on them). */
  drop: (message: unknown) => boolean = () => false;

  /** `new BroadcastChannel(name)` in one tab. */
  forTab(tab: string): (name: string) => TabChannel {
    return (name) => {
      const channel = new FakeChannel(name, tab, this);
      this.open.add(channel);
      return channel;
    };
  }

  /** The tab is gone: its channels close. */
  closeTab(tab: string): void {
    for (const c of this.open) if (c.tab === tab) c.close();
  }

  /** Open channels, for leak checks. */
  openCount(): number {
    return this.open.size;
  }

  /** @internal */
  deliver(from: FakeChannel, message: unknown): void {
    if (this.drop(message)) return;
    const data = structuredClone(message);
    for (const to of this.open) {
      if (to === from || to.name !== from.name) continue;
      queueMicrotask(() => {
        if (this.open.has(to)) to.onmessage?.(new MessageEvent('message', { data }));
      });
    }
  }

  /** @internal */
  remove(channel: FakeChannel): void {
    this.open.delete(channel);
  }
}

class FakeChannel implements TabChannel {
  onmessage: ((msg: MessageEvent<unknown>) => void) | null = null;
  private closed = false;

  constructor(
    readonly name: string,
    readonly tab: string,
    private readonly bus: FakeChannels,
  ) {}

  postMessage(message: unknown): void {
    if (this.closed) throw new DOMException('BroadcastChannel is closed', 'InvalidStateError');
    this.bus.deliver(this, message);
  }

  close(): void {
    this.closed = true;
    this.bus.remove(this);
  }
}

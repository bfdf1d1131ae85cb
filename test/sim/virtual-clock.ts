import type { Clock } from '../../shared/clock';

class Timer {
  cancelled = false;
  done = false;

  constructor(
    readonly at: number,
    /** Insertion order: timers due at the same time run in the order they were set. */
    readonly order: number,
    readonly fn: () => void,
  ) {}
}

const before = (a: Timer, b: Timer): boolean => a.at < b.at || (a.at === b.at && a.order < b.order);

/**
 * Simulated time: `setTimeout` only queues; `step` jumps to the earliest
 * timer and runs it. Nothing happens between steps but the microtasks the
 * driver lets run, so a run depends on nothing but its seed.
 */
export class VirtualClock implements Clock {
  private time: number;
  private order = 0;
  private live = 0;
  private readonly heap: Timer[] = [];

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const timer = new Timer(this.time + delay, this.order++, fn);
    this.push(timer);
    this.live++;
    return timer;
  }

  clearTimeout(handle: unknown): void {
    if (handle instanceof Timer && !handle.cancelled && !handle.done) {
      handle.cancelled = true;
      this.live--;
    }
  }

  /** Timers set and neither run nor cleared. */
  get pending(): number {
    return this.live;
  }

  /** Moves time to the earliest timer and runs it; false when none is left. */
  step(): boolean {
    for (;;) {
      const timer = this.pop();
      if (timer === undefined) return false;
      if (timer.cancelled) continue;
      timer.done = true;
      this.live--;
      this.time = Math.max(this.time, timer.at);
      timer.fn();
      return true;
    }
  }

  private push(timer: Timer): void {
    const heap = this.heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(timer, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = timer;
  }

  private pop(): Timer | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right]!, heap[left]!) ? right : left;
      if (!before(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

/** Lets every queued microtask (and the ones they queue) run: one macrotask turn. */
export function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

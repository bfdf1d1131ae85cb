/**
 * Token buckets for push rate limits, with no I/O: the caller passes the
 * time. A bucket holds up to `burst` tokens and refills at `perSecond`; a
 * request for more than it holds is refused whole (nothing taken), with the
 * time until it would fit.
 */

export interface Rate {
  /** Tokens added per second; 0 turns the limit off. */
  perSecond: number;
  /** Most tokens held: what may go at once after a quiet spell. Below `perSecond` counts as `perSecond`. */
  burst: number;
}

export class TokenBucket {
  private tokens: number;
  private at: number;
  private readonly capacity: number;

  constructor(
    private readonly rate: Rate,
    now: number,
  ) {
    this.capacity = Math.max(rate.burst, rate.perSecond);
    this.tokens = this.capacity;
    this.at = now;
  }

  private refill(now: number): void {
    if (now > this.at)
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.at) / 1000) * this.rate.perSecond);
    this.at = Math.max(this.at, now);
  }

  /**
   * Milliseconds until `amount` tokens are there (0: now). An amount over the
   * capacity is checked against a full bucket instead, so one request as large
   * as the protocol allows is slowed, never refused forever.
   */
  wait(amount: number, now: number): number {
    if (this.rate.perSecond <= 0) return 0;
    this.refill(now);
    const need = Math.min(amount, this.capacity);
    if (this.tokens >= need) return 0;
    return Math.ceil(((need - this.tokens) / this.rate.perSecond) * 1000);
  }

  /** Takes `amount` (after `wait` said 0); an amount over the capacity empties the bucket. */
  take(amount: number, now: number): void {
    if (this.rate.perSecond <= 0) return;
    this.refill(now);
    this.tokens = Math.max(0, this.tokens - amount);
  }

  /** Whether it has refilled completely: forgetting it then changes nothing. */
  full(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.capacity;
  }
}

/** The limits on one user's, or one connection's, pushes. */
export interface PushRates {
  mutations: Rate;
  bytes: Rate;
}

/** A push's cost in both currencies, checked against both buckets as one. */
export class PushBudget {
  private readonly mutations: TokenBucket;
  private readonly bytes: TokenBucket;

  constructor(rates: PushRates, now: number) {
    this.mutations = new TokenBucket(rates.mutations, now);
    this.bytes = new TokenBucket(rates.bytes, now);
  }

  wait(mutations: number, bytes: number, now: number): number {
    return Math.max(this.mutations.wait(mutations, now), this.bytes.wait(bytes, now));
  }

  take(mutations: number, bytes: number, now: number): void {
    this.mutations.take(mutations, now);
    this.bytes.take(bytes, now);
  }

  full(now: number): boolean {
    return this.mutations.full(now) && this.bytes.full(now);
  }
}

/**
 * Per-key budgets (one per user). A key's budget is kept while it refills, so
 * a flooder cannot reset it by reconnecting, and forgotten once full, so idle
 * users cost nothing: `sweep` runs at most every `sweepEveryMs`.
 */
export class KeyedBudgets {
  private readonly budgets = new Map<string, PushBudget>();
  private nextSweep = 0;

  constructor(
    private readonly rates: PushRates,
    private readonly sweepEveryMs = 10_000,
  ) {}

  get(key: string, now: number): PushBudget {
    if (now >= this.nextSweep) {
      this.nextSweep = now + this.sweepEveryMs;
      for (const [k, b] of this.budgets) if (b.full(now)) this.budgets.delete(k);
    }
    let budget = this.budgets.get(key);
    if (!budget) {
      budget = new PushBudget(this.rates, now);
      this.budgets.set(key, budget);
    }
    return budget;
  }

  get size(): number {
    return this.budgets.size;
  }
}

/** Whether any limit of `rates` is on. */
export const limited = (rates: PushRates): boolean => rates.mutations.perSecond > 0 || rates.bytes.perSecond > 0;

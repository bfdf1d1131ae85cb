import type { PushRates } from './rate-limit';
import { DEFAULT_COMMIT_BUDGET } from './sync-core';

/**
 * The bounds that keep one user's flood from starving the others (issue 9,
 * item 2). Every one has a flag (README, docs/ARCHITECTURE.md "Limits and
 * abuse"); 0 turns a limit off.
 */
export interface FloodLimits {
  /** Mutations per second one user may push, over all its connections. */
  rateUserMutations: number;
  /** Push bytes (JSON) per second one user may send. */
  rateUserBytes: number;
  /** Mutations per second one connection may push. */
  rateConnMutations: number;
  /** Push bytes per second one connection may send. */
  rateConnBytes: number;
  /** Each bucket holds this many seconds of its rate: what may go at once after a quiet spell. */
  rateBurstSeconds: number;
  /** Connections past hello per user. */
  maxConnectionsPerUser: number;
  /** Connections to /sync per remote address (before hello). */
  maxConnectionsPerAddress: number;
  /** A connection that has not completed hello by then is closed. */
  helloTimeoutMs: number;
  /** Mutations per group commit. */
  maxCommitMutations: number;
  /** Push bytes per group commit. */
  maxCommitBytes: number;
}

/**
 * Generous for one person's clients: an offline client coming back with
 * 10,000 queued mutations sends them at once (the burst), and the benches'
 * users stay under them; a flood gets 1,000 mutations/s and 1 MiB/s.
 */
export const DEFAULT_FLOOD_LIMITS: FloodLimits = {
  rateUserMutations: 1000,
  rateUserBytes: 1024 * 1024,
  rateConnMutations: 1000,
  rateConnBytes: 1024 * 1024,
  rateBurstSeconds: 10,
  maxConnectionsPerUser: 32,
  maxConnectionsPerAddress: 256,
  helloTimeoutMs: 5000,
  maxCommitMutations: DEFAULT_COMMIT_BUDGET.mutations,
  maxCommitBytes: DEFAULT_COMMIT_BUDGET.bytes,
};

/** The token bucket rates of the limits, per user and per connection. */
export function pushRatesOf(limits: FloodLimits): { user: PushRates; connection: PushRates } {
  const rate = (perSecond: number): PushRates['mutations'] => ({
    perSecond,
    burst: perSecond * limits.rateBurstSeconds,
  });
  return {
    user: { mutations: rate(limits.rateUserMutations), bytes: rate(limits.rateUserBytes) },
    connection: { mutations: rate(limits.rateConnMutations), bytes: rate(limits.rateConnBytes) },
  };
}

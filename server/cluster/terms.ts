import type { TermStart } from '../store/store';

/**
 * The last LSN that a node whose log belongs to `term` shares with a leader
 * that has `history` and `head` (Raft's log matching, by term start points):
 * the leader's log of `term` ends where the leader's next higher term began.
 * A follower whose checkpoint is past it holds changes the leader never had.
 */
export function sharedPrefixEnd(history: readonly TermStart[], head: number, term: number): number {
  if (term === 0) return 0;
  const next = history.find((t) => t.term > term);
  if (next) return next.startLsn;
  // `term` is the leader's current term (or above it, which the caller treats as a stale leader).
  return head;
}

/** The term that `lsn` was written in, by a node with `history`. */
export function termAt(history: readonly TermStart[], lsn: number): number {
  let term = 0;
  for (const t of history) if (t.startLsn < lsn || (lsn === 0 && t.startLsn === 0)) term = t.term;
  return term;
}

import type { Change } from '../../shared/protocol/change';
import type { OutcomeEntry } from './store';

/** Document changes and outcome entries of one LSN range, as one list in LSN order. */
export function mergeByLsn(
  changes: readonly Change[],
  outcomes: readonly OutcomeEntry[],
): Array<Change | OutcomeEntry> {
  if (outcomes.length === 0) return [...changes];
  if (changes.length === 0) return [...outcomes];
  return [...changes, ...outcomes].sort((a, b) => a.lsn - b.lsn);
}

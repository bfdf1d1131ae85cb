import { createHash, randomUUID } from 'node:crypto';
import type { WireErrorShape } from '../../shared/errors';
import type { Change } from '../../shared/protocol/change';
import type { OutcomeEntry, Store } from '../store/store';

/**
 * Lineage: whether a replica's data is a prefix of this cluster's history.
 *
 * Terms alone cannot tell: every cluster starts at term 1, and a backup
 * restored and started as a primary of its own writes new changes under the
 * term it was copied at. Two things can:
 *
 * - the cluster id, made once with a new store, carried by its backups, and
 *   adopted by a replica from its primary: a store of another cluster holds
 *   none of this cluster's history;
 * - the identity of the log entry at the replica's checkpoint. Where the
 *   term history says both logs share that LSN, the entries there must be the
 *   same entry. The identity is a hash of what the primary stamped on it
 *   (LSN, term, commit time, its key and origin, the document or outcome
 *   code): the same entry hashes the same on every node (replicas store
 *   entries as they are), and a different entry written at the same LSN
 *   under the same term (by a node that was restored from a backup and took
 *   writes) differs at least in its time or key. A hash rather than the
 *   entry keeps the handshake small, whatever the document's size.
 *
 * When either side no longer has the entry (compacted, or the replica was
 * filled from a snapshot), the term history decides, as before.
 */

/** The identity of one log entry, the same on every node that holds it. */
export function entryIdentity(entry: Change | OutcomeEntry): string {
  const fields =
    'collection' in entry
      ? [
          'change',
          entry.lsn,
          entry.term,
          entry.ts,
          entry.collection,
          entry.id,
          entry.owner,
          entry.clientId,
          entry.seq,
          entry.doc,
        ]
      : ['outcome', entry.lsn, entry.term, entry.ts, entry.clientId, entry.seq, entry.error?.code ?? null];
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}

/** The identity of the entry at `lsn` in this store's log, or null when it has none there (0, or compacted). */
export function identityAt(store: Pick<Store, 'meta' | 'readLog'>, lsn: number): string | null {
  if (lsn <= 0 || lsn <= store.meta().horizon || lsn > store.meta().headLsn) return null;
  const page = store.readLog(lsn - 1, 1);
  const entry = page.changes.find((c) => c.lsn === lsn) ?? page.outcomes.find((o) => o.lsn === lsn);
  return entry ? entryIdentity(entry) : null;
}

/**
 * The cluster id of a node that leads: its store's, or a new one for a store
 * from before cluster ids (its replicas adopt it when they next follow).
 */
export function ensureClusterId(store: Pick<Store, 'clusterId' | 'setClusterId'>): string {
  const existing = store.clusterId();
  if (existing !== null) return existing;
  const made = randomUUID();
  store.setClusterId(made);
  return made;
}

/** What a follower claims of its data in the follow handshake. */
export interface LineageClaim {
  clusterId: string | null;
  checkpoint: number;
  /** `entryIdentity` of its entry at `checkpoint`; null when it has none there. */
  checkpointEntry: string | null;
}

/**
 * Why the primary refuses this follower's data, or null when it may follow.
 * `sharedByTerms` is whether the term history puts the checkpoint inside the
 * primary's log (a checkpoint past it is a diverged tail that goes to a
 * rollback file, not a refusal); `primaryEntry` is the primary's own
 * identity at the checkpoint, null when it has none there.
 */
export function lineageRefusal(
  primaryClusterId: string,
  claim: LineageClaim,
  sharedByTerms: boolean,
  primaryEntry: string | null,
): WireErrorShape | null {
  // An empty store holds nothing of any cluster: it adopts ours.
  if (claim.checkpoint === 0) return null;
  if (claim.clusterId !== null && claim.clusterId !== primaryClusterId) {
    return {
      code: 'LINEAGE_MISMATCH',
      message:
        `the replica's data belongs to cluster ${claim.clusterId}, not to this primary's cluster ${primaryClusterId} ` +
        '(a backup of another cluster, or a data directory of another deployment)',
      retryable: false,
    };
  }
  if (
    sharedByTerms &&
    claim.checkpointEntry !== null &&
    primaryEntry !== null &&
    claim.checkpointEntry !== primaryEntry
  ) {
    return {
      code: 'LINEAGE_MISMATCH',
      message:
        `the replica's change at LSN ${claim.checkpoint} is not this primary's change there: its history diverged ` +
        "from this cluster's (a backup that was started as a primary of its own and took writes?)",
      retryable: false,
    };
  }
  return null;
}

/** What the operator of a refused replica is told to do, in its log and its status. */
export function lineageAdvice(dataDir: string, primaryUrl: string): string {
  return (
    'this replica serves no reads until its data is replaced. Either restore a backup of this cluster into an ' +
    `empty data directory (--restore FILE --primary ${primaryUrl}), or stop this node, move ${dataDir} aside ` +
    `(or delete its tideline.db, -wal and -shm), and start it again with --primary ${primaryUrl} to copy ` +
    'everything from the primary'
  );
}

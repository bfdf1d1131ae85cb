import type { Doc } from '../../shared/json';
import { AbortRun, runMutation } from '../../shared/mutators/run-mutation';
import type { RunOutcome } from '../../shared/mutators/run-mutation';
import type { MutatorContext } from '../../shared/mutators/types';
import type { Limits } from '../../shared/protocol/limits';
import type { AppSchema } from '../../shared/schema/define-schema';
import { docKey } from './local-store';
import type { LocalTx, OutboxEntry, ShadowEntry } from './local-store';

export interface LocalRunDeps {
  schema: AppSchema;
  ctx: MutatorContext;
  limits: Pick<Limits, 'maxDocBytes'>;
  /** Most prefetch rounds one local run may take (`DEFAULT_MAX_READ_ROUNDS` when left out). */
  maxReadRounds?: number;
  /** Most distinct documents one local run may read (`DEFAULT_MAX_READ_DOCS` when left out). */
  maxReadDocs?: number;
}

/**
 * Rounds are the depth of a mutation's read dependencies (read A to learn
 * B's id: two), not its size. Only a mutator whose reads do not depend on its
 * arguments and the documents it read (a random id, a clock) keeps finding
 * new ones; this stops it with a clear error instead of looping.
 */
export const DEFAULT_MAX_READ_ROUNDS = 10_000;

/**
 * A run-away mutator (one reading ids in an endless loop) would otherwise
 * fill memory with prefetched absences. Far above any real mutation: the
 * server has no per-mutation document cap, and neither does this below it.
 */
export const DEFAULT_MAX_READ_DOCS = 1_000_000;

/**
 * Fewest documents a speculative run may miss before it stops; after that
 * the cap is the number already loaded, so it doubles per round and the
 * rounds' total work stays linear in the mutation's size.
 */
const MIN_MISSES_PER_ROUND = 4096;

/**
 * Runs one mutation optimistically on the visible documents. Before a
 * document is first overwritten by a pending mutation, its confirmed version
 * goes to the shadow, so a rebase can restore it. Updates `entry.reads` and
 * `entry.writes` to what this run touched.
 *
 * Mutators read synchronously, so the documents a run needs are prefetched
 * in rounds: a speculative run records every document the cache lacks, all
 * of them are loaded with one bulk read, and the mutator runs again. Only a
 * run that missed nothing counts; its result is the mutation's.
 */
export async function applyLocal(tx: LocalTx, deps: LocalRunDeps, entry: OutboxEntry): Promise<RunOutcome> {
  const cache = new Map<string, Doc | undefined>();
  const { outcome, reads } = await runWithPrefetch(tx, deps, entry, cache);
  entry.reads = reads;
  entry.writes = [];
  if (!outcome.ok) return outcome;
  if (outcome.writes.length === 0) return outcome;
  const keys = outcome.writes.map((w) => docKey(w.collection, w.id));
  entry.writes = keys;
  const shadowed = new Set(await tx.shadowedKeys(keys));
  const unshadowed = outcome.writes.filter((_, i) => !shadowed.has(keys[i] ?? ''));
  // The run read every document it writes, so the cache holds them; the bulk read is a safety net.
  const uncached = unshadowed.filter((w) => !cache.has(docKey(w.collection, w.id)));
  const loaded = uncached.length > 0 ? await tx.getDocs(uncached) : [];
  uncached.forEach((w, i) => cache.set(docKey(w.collection, w.id), loaded[i]));
  // No pending mutation touched these yet, so their visible versions are the confirmed ones.
  const shadows: ShadowEntry[] = unshadowed.map((w) => {
    const key = docKey(w.collection, w.id);
    return { key, collection: w.collection, id: w.id, doc: cache.get(key) ?? null };
  });
  if (shadows.length > 0) await tx.bulkPutShadow(shadows);
  await tx.applyDocs(outcome.writes.map((w) => ({ collection: w.collection, id: w.id, doc: w.doc })));
  return outcome;
}

interface Ref {
  collection: string;
  id: string;
}

/** Thrown by a speculative reader past its miss cap: the run has found enough to load this round. */
class MissCap extends AbortRun {}

async function runWithPrefetch(
  tx: LocalTx,
  deps: LocalRunDeps,
  entry: OutboxEntry,
  cache: Map<string, Doc | undefined>,
): Promise<{ outcome: RunOutcome; reads: string[] }> {
  const maxRounds = deps.maxReadRounds ?? DEFAULT_MAX_READ_ROUNDS;
  const maxDocs = deps.maxReadDocs ?? DEFAULT_MAX_READ_DOCS;
  for (let round = 1; ; round++) {
    const missing = new Map<string, Ref>();
    const cap = Math.max(MIN_MISSES_PER_ROUND, cache.size);
    const reads = new Set<string>();
    const outcome = speculate(deps, entry, cache, missing, cap, reads, 'absent');
    if (outcome && missing.size === 0) return { outcome, reads: [...reads] };
    // A failure may come from a document it lacked (`if (!tx.get(...)) throw`): the same run with
    // the missing documents present goes on past that point and finds the rest of what it reads.
    if (outcome && !outcome.ok) speculate(deps, entry, cache, missing, cap, new Set(), 'present');
    if (round >= maxRounds) {
      return refused(entry, cache, `still read documents it had not read before after ${maxRounds} rounds`);
    }
    if (cache.size + missing.size > maxDocs) {
      return refused(entry, cache, `reads more than ${maxDocs} documents`);
    }
    const refs = [...missing.values()];
    const docs = await tx.getDocs(refs);
    refs.forEach((r, i) => cache.set(docKey(r.collection, r.id), docs[i]));
  }
}

function refused(
  entry: OutboxEntry,
  cache: Map<string, Doc | undefined>,
  why: string,
): { outcome: RunOutcome; reads: string[] } {
  const message =
    `mutator '${entry.name}' ${why}: a mutator's reads must depend only on its arguments and the ` +
    'documents it read (see Limits in docs/ARCHITECTURE.md)';
  return { outcome: { ok: false, error: { code: 'TOO_LARGE', message, retryable: false } }, reads: [...cache.keys()] };
}

/**
 * Runs the mutator on the cache. A document the cache lacks is recorded in
 * `missing` and read as absent (`'absent'`) or as a bare document
 * (`'present'`); past `cap` misses the run stops (null). The outcome counts
 * only when nothing was missing: otherwise the mutator saw guesses.
 */
function speculate(
  deps: LocalRunDeps,
  entry: OutboxEntry,
  cache: Map<string, Doc | undefined>,
  missing: Map<string, Ref>,
  cap: number,
  reads: Set<string>,
  mode: 'absent' | 'present',
): RunOutcome | null {
  const read = (collection: string, id: string): Doc | undefined => {
    const key = docKey(collection, id);
    if (cache.has(key)) {
      reads.add(key);
      return cache.get(key);
    }
    if (!missing.has(key)) {
      // Also ends a loop that only the guesses make endless (`while (tx.get(c, 'n' + i)) i++`).
      if (missing.size >= cap) throw new MissCap();
      missing.set(key, { collection, id });
    }
    return mode === 'absent' ? undefined : placeholder(deps, collection, id);
  };
  try {
    return runMutation(deps.schema, entry.name, entry.args, deps.ctx, read, deps.limits, { probe: mode === 'present' });
  } catch (err) {
    if (err instanceof MissCap) return null;
    throw err;
  }
}

/** A stand-in for a document that may exist: visible to this user, so the run goes on as if it did. */
function placeholder(deps: LocalRunDeps, collection: string, id: string): Doc {
  const def = Object.hasOwn(deps.schema.collections, collection) ? deps.schema.collections[collection] : undefined;
  return def?.read === 'owner' ? { id, owner: deps.ctx.userId } : { id };
}

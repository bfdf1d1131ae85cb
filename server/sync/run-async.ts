import type { JsonValue } from '../../shared/json';
import type { Doc } from '../../shared/json';
import { ReadFailure, runMutation } from '../../shared/mutators/run-mutation';
import type { ReadFn, RunContext, RunOutcome } from '../../shared/mutators/run-mutation';
import type { Limits } from '../../shared/protocol/limits';
import type { AppSchema } from '../../shared/schema/define-schema';
import type { AsyncStoreTx } from '../store/async-store';

/**
 * Rounds are the depth of a mutation's read dependencies (read the cart to
 * learn the products: two), not its size. Only a mutator whose reads do not
 * depend on its arguments and the documents it read keeps finding new ones;
 * this stops it with TOO_LARGE instead of looping.
 */
export const MAX_READ_ROUNDS = 10_000;
/** Most distinct documents one mutation may read on the server: bounds what a run-away mutator holds. */
export const MAX_READ_DOCS = 1_000_000;

const keyOf = (collection: string, id: string): string => `${collection}\u0000${id}`;

/**
 * Runs one mutation inside a store transaction whose reads are promises.
 * Mutators read synchronously, so the run goes in rounds: each run reads
 * from a cache, records every document the cache lacks (reading it as
 * absent), and those are loaded together before the mutator runs again.
 * Only a run that missed nothing counts: mutators are deterministic, so its
 * outcome is the one a synchronous reader would have given. On SQLite each
 * load resolves at once; on PostgreSQL a round is one batch of reads.
 */
export async function runMutationAsync(
  schema: AppSchema,
  name: string,
  args: JsonValue,
  ctx: RunContext,
  tx: Pick<AsyncStoreTx, 'getDoc'>,
  limits: Pick<Limits, 'maxDocBytes'>,
): Promise<RunOutcome> {
  const cache = new Map<string, Doc | undefined>();
  for (let round = 1; ; round++) {
    const missing = new Map<string, { collection: string; id: string }>();
    const read: ReadFn = (collection, id) => {
      const key = keyOf(collection, id);
      if (cache.has(key)) return cache.get(key);
      missing.set(key, { collection, id });
      return undefined;
    };
    const outcome = runMutation(schema, name, args, ctx, read, limits);
    if (missing.size === 0) return outcome;
    if (round >= MAX_READ_ROUNDS) {
      return refused(name, `still read documents it had not read before after ${MAX_READ_ROUNDS} rounds`);
    }
    if (cache.size + missing.size > MAX_READ_DOCS) return refused(name, `reads more than ${MAX_READ_DOCS} documents`);
    const refs = [...missing.values()];
    let docs;
    try {
      docs = await Promise.all(refs.map((r) => tx.getDoc(r.collection, r.id)));
    } catch (cause) {
      // The store's failure, not the mutation's: the commit fails and nothing is recorded for it.
      throw new ReadFailure(`reading ${refs[0]!.collection}/${refs[0]!.id} failed`, { cause });
    }
    refs.forEach((r, i) => cache.set(keyOf(r.collection, r.id), docs[i]?.doc ?? undefined));
  }
}

function refused(name: string, why: string): RunOutcome {
  const message =
    `mutator '${name}' ${why}: a mutator's reads must depend only on its arguments and the ` +
    'documents it read (see Limits in docs/ARCHITECTURE.md)';
  return { ok: false, error: { code: 'TOO_LARGE', message, retryable: false } };
}

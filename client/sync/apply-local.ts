import type { Doc } from '../../shared/json';
import { MissingRead, runMutation } from '../../shared/mutators/run-mutation';
import type { RunOutcome } from '../../shared/mutators/run-mutation';
import type { MutatorContext } from '../../shared/mutators/types';
import type { Limits } from '../../shared/protocol/limits';
import type { AppSchema } from '../../shared/schema/define-schema';
import { docKey } from './local-store';
import type { LocalTx, OutboxEntry } from './local-store';

export interface LocalRunDeps {
  schema: AppSchema;
  ctx: MutatorContext;
  limits: Pick<Limits, 'maxDocBytes'>;
}

/** Mutators read synchronously; a read the cache lacks is loaded and the run repeated, at most this often. */
const MAX_RERUNS = 10_000;

/**
 * Runs one mutation optimistically on the visible documents. Before a
 * document is first overwritten by a pending mutation, its confirmed version
 * goes to the shadow, so a rebase can restore it. Updates `entry.reads` and
 * `entry.writes` to what this run touched.
 */
export async function applyLocal(tx: LocalTx, deps: LocalRunDeps, entry: OutboxEntry): Promise<RunOutcome> {
  const cache = new Map<string, Doc | undefined>();
  let outcome: RunOutcome | undefined;
  for (let attempt = 0; outcome === undefined; attempt++) {
    if (attempt > MAX_RERUNS) throw new Error(`mutator '${entry.name}' reads too many documents`);
    const run = runFromCache(deps, entry, cache);
    // Awaiting outside a catch block keeps Dexie's transaction zone intact.
    if (run instanceof MissingRead) cache.set(docKey(run.collection, run.id), await tx.getDoc(run.collection, run.id));
    else outcome = run;
  }
  entry.reads = [...cache.keys()];
  entry.writes = [];
  if (!outcome.ok) return outcome;
  for (const write of outcome.writes) {
    const key = docKey(write.collection, write.id);
    entry.writes.push(key);
    if (!(await tx.hasShadow(key))) {
      // No pending mutation touched it yet, so the visible version is the confirmed one.
      const confirmed = cache.has(key) ? cache.get(key) : await tx.getDoc(write.collection, write.id);
      await tx.putShadow({ key, collection: write.collection, id: write.id, doc: confirmed ?? null });
    }
    if (write.doc) await tx.putDoc(write.collection, write.doc);
    else await tx.deleteDoc(write.collection, write.id);
  }
  return outcome;
}

function runFromCache(
  deps: LocalRunDeps,
  entry: OutboxEntry,
  cache: Map<string, Doc | undefined>,
): RunOutcome | MissingRead {
  try {
    return runMutation(
      deps.schema,
      entry.name,
      entry.args,
      deps.ctx,
      (collection, id) => {
        const key = docKey(collection, id);
        if (!cache.has(key)) throw new MissingRead(collection, id);
        return cache.get(key);
      },
      deps.limits,
    );
  } catch (err) {
    if (err instanceof MissingRead) return err;
    throw err;
  }
}

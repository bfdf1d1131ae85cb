import type { z } from 'zod';
import type { Doc } from '../json';

/** Who runs a mutation, and where. */
export interface MutatorContext {
  userId: string;
  roles: readonly string[];
  /** Optimistic run in the client, or authoritative run on the primary. */
  side: 'client' | 'server';
}

/**
 * What a mutator sees. Reads are synchronous and keyed, so the same code runs
 * inside a SQLite transaction on the primary and over a prefetched view on the
 * client. Writes are buffered and take effect only if the whole mutation
 * passes its checks (atomicity).
 */
export interface MutatorTx {
  get(collection: string, id: string): Doc | undefined;
  put(collection: string, doc: Doc): void;
  delete(collection: string, id: string): void;
}

/**
 * A named, deterministic function run on both sides. It must not read clocks,
 * random numbers or anything but `tx` and `args`: ids and timestamps come in
 * through `args`. It throws a `TidelineError` to reject.
 */
export interface MutatorDef<A = unknown> {
  name: string;
  args: z.ZodType<A>;
  run: (tx: MutatorTx, args: A, ctx: MutatorContext) => void;
  /** Built-ins obey each collection's `write` access; app mutators are trusted for public collections. */
  builtin?: boolean;
}

export function defineMutator<A>(def: MutatorDef<A>): MutatorDef {
  return def as unknown as MutatorDef;
}

/** One buffered write: the new version, or null for a delete. */
export interface Write {
  collection: string;
  id: string;
  doc: Doc | null;
  /** The owner recorded for the document (owner-only collections), else null. */
  owner: string | null;
}

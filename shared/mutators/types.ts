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
export interface MutatorDef<A = unknown, I = A> {
  name: string;
  /** Parses the arguments; `run` gets its output, callers pass its input (they differ with defaults). */
  args: z.ZodType<A, I>;
  // A method, not a function property, so a mutator with typed arguments still fits `MutatorDef`.
  run(tx: MutatorTx, args: A, ctx: MutatorContext): void;
  /** Built-ins obey each collection's `write` access; app mutators are trusted for public collections. */
  builtin?: boolean;
}

/** Declares a mutator; `run`'s arguments are typed by `args`, and so are the client's `db.mutate.<name>(args)`. */
export function defineMutator<A, I>(def: MutatorDef<A, I>): MutatorDef<A, I> {
  return def;
}

/** What a caller passes to mutator `M`: the input type of its `args` schema. */
export type MutatorArgs<M> = M extends { args: z.ZodType<unknown, infer I> } ? I : never;

/** One buffered write: the new version, or null for a delete. */
export interface Write {
  collection: string;
  id: string;
  doc: Doc | null;
  /** The owner recorded for the document (owner-only collections), else null. */
  owner: string | null;
}

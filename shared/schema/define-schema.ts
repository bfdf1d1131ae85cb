import type { z } from 'zod';
import type { Doc } from '../json';
import type { MutatorDef } from '../mutators/types';

/**
 * Who may read a collection's documents:
 * - `public`: every signed-in user;
 * - `owner`: only the user named in the document's `owner` field.
 */
export type ReadAccess = 'public' | 'owner';

/**
 * Who may write a collection through the built-in mutators (put, patch,
 * delete, inc). App mutators are trusted code and write public collections
 * as they see fit (checkout decrements stock); an owner-only document is
 * never written for anyone but its owner, whichever mutator runs.
 * - `any`: every signed-in user;
 * - `owner`: the document's owner (owner-only collections);
 * - a role name such as `staff`: users whose token carries that role;
 * - `none`: only app mutators.
 */
export type WriteAccess = 'any' | 'owner' | 'none' | { role: string };

/**
 * A rule on the resulting document, checked on both sides; a failure rejects
 * the mutation with REJECTED. `D` is the collection's document type when the
 * collection is declared with `defineCollection`; a rule runs only on a
 * document that has passed the collection's `doc` schema.
 */
export interface Rule<D = Doc> {
  name: string;
  // A method, not a function property, so a rule on a typed collection still fits `AppSchema`.
  check(doc: D): boolean;
  message: string;
}

/**
 * The least a document schema must produce: an object with a string id. That
 * a document is plain JSON (and its size) is checked at run time; a schema's
 * type may be looser (`z.looseObject` has an `unknown` index signature).
 */
export type DocShape = { id: string };

/**
 * How much of one collection each user may hold, counted against the user
 * whose mutation created a document (its author; in an owner-only
 * collection, its owner). Checked on the primary: a mutation that would take
 * its writer past a bound is rejected with QUOTA_EXCEEDED and stores
 * nothing. Deleting frees room; an edit by another user (staff fixing a
 * product) counts against the author, never the editor. Writes by the
 * server's system principal are not checked (an owner-only document they
 * write still counts against its owner).
 */
export interface Quota {
  /** Live documents per user. */
  docs?: number;
  /** Bytes per user: the sum of the user's documents' sizes as UTF-8 JSON. */
  bytes?: number;
}

export interface CollectionDef {
  read: ReadAccess;
  /** Roles that may read every document of an owner-only collection (staff sees all orders). */
  readRoles?: readonly string[];
  write: WriteAccess;
  /** Fields with a local Dexie index, for `query` and `liveQuery`. Compound: 'a+b'. */
  indexes: readonly string[];
  /**
   * The shape every stored document must have; checked before the rules (validated only:
   * the document is stored as written). Its output type is the collection's document type.
   */
  doc?: z.ZodType<DocShape>;
  rules?: readonly Rule[];
  /** Per-user bounds on this collection (see `Quota`); none when absent. */
  quota?: Quota;
}

/**
 * The document type of a collection: its `doc` schema's output, or `Doc` when
 * it has none or its schema says no more than `{ id: string }` (as in a
 * schema typed as a plain `AppSchema`).
 */
export type DocOfCollection<C> = C extends { doc?: infer Z }
  ? Z extends z.ZodType<infer O>
    ? DocShape extends O
      ? Doc
      : O
    : Doc
  : Doc;

/** A collection definition whose rules see its documents typed. */
export type TypedCollectionDef<Z extends z.ZodType<DocShape>> = Omit<CollectionDef, 'doc' | 'rules'> & {
  doc: Z;
  rules?: ReadonlyArray<Rule<z.output<Z>>>;
};

/**
 * Declares a collection with a document schema, so its rules are typed:
 * `check: (p) => p.stock >= 0` with `p` the schema's output. (Inside
 * `defineSchema` a rule sees a plain `Doc`: TypeScript cannot infer one
 * collection's type from its own literal there.)
 */
export function defineCollection<Z extends z.ZodType<DocShape>>(
  def: TypedCollectionDef<Z>,
): Omit<CollectionDef, 'doc' | 'rules'> & { doc: Z; rules?: readonly Rule[] } {
  // No cast: a rule's `check` is a method, so a rule typed for the schema's output fits
  // `Rule`. Sound, as every document reaches the rules only after `def.doc` accepted it.
  return def;
}

export interface AppSchema {
  /** Names the app; the client's IndexedDB database is named after it. */
  name: string;
  /** Bump when `collections` or their indexes change, so clients upgrade their local store. */
  version: number;
  collections: Readonly<Record<string, CollectionDef>>;
  /** App mutators; the built-ins are always there too. */
  mutators: Readonly<Record<string, MutatorDef>>;
}

const COLLECTION_NAME = /^[a-z][a-zA-Z0-9_]{0,63}$/;

/** Whether a user with `roles` may read every document of `def`, not just their own. */
export function readsAll(def: CollectionDef, roles: readonly string[]): boolean {
  return def.read === 'public' || (def.readRoles ?? []).some((r) => roles.includes(r));
}

/** The owner-only collections that `roles` may read in full. */
export function fullyReadable(schema: AppSchema, roles: readonly string[]): string[] {
  return Object.entries(schema.collections)
    .filter(([, def]) => def.read === 'owner' && readsAll(def, roles))
    .map(([name]) => name);
}

/** The collection names of a schema. */
export type CollectionName<S extends AppSchema> = keyof S['collections'] & string;

/** The document type of collection `C` of schema `S`. */
export type DocOf<S extends AppSchema, C extends CollectionName<S>> = DocOfCollection<S['collections'][C]>;

/**
 * Checks an app schema and returns it unchanged, with its literal type: the
 * client's API takes the document types from each collection's `doc` schema
 * and each mutator's argument type from its `args` schema.
 */
export function defineSchema<const S extends AppSchema>(schema: S): S {
  for (const [name, def] of Object.entries(schema.collections)) {
    if (!COLLECTION_NAME.test(name)) {
      throw new Error(`collection name '${name}' must match ${COLLECTION_NAME.source}`);
    }
    if (def.read === 'owner' && def.write !== 'owner' && def.write !== 'none') {
      throw new Error(`owner-only collection '${name}' must have write 'owner' or 'none'`);
    }
    if (def.write === 'owner' && def.read !== 'owner') {
      // Ownership is what scopes a document; a public collection has no owners to check.
      throw new Error(
        `collection '${name}' has write 'owner' but read '${def.read}': only owner-only collections have owners`,
      );
    }
    if (def.quota !== undefined) checkQuota(name, def.quota);
    for (const index of def.indexes) {
      if (index === 'id' || index.startsWith('_')) throw new Error(`index '${index}' on '${name}' is reserved`);
    }
  }
  for (const [key, m] of Object.entries(schema.mutators)) {
    if (key !== m.name) throw new Error(`mutator registered as '${key}' is named '${m.name}'`);
  }
  return schema;
}

function checkQuota(collection: string, quota: Quota): void {
  for (const key of Object.keys(quota)) {
    if (key !== 'docs' && key !== 'bytes') throw new Error(`quota of '${collection}' has an unknown bound '${key}'`);
    const value = quota[key];
    if (value !== undefined && !(Number.isSafeInteger(value) && value > 0)) {
      throw new Error(`quota.${key} of '${collection}' must be a positive integer, got ${String(value)}`);
    }
  }
}

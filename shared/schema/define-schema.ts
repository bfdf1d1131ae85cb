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

/** A rule on the resulting document, checked on both sides; a failure rejects the mutation with REJECTED. */
export interface Rule {
  name: string;
  check: (doc: Doc) => boolean;
  message: string;
}

export interface CollectionDef {
  read: ReadAccess;
  /** Roles that may read every document of an owner-only collection (staff sees all orders). */
  readRoles?: readonly string[];
  write: WriteAccess;
  /** Fields with a local Dexie index, for `query` and `liveQuery`. Compound: 'a+b'. */
  indexes: readonly string[];
  /** The shape every stored document must have; checked before the rules. */
  doc?: z.ZodType<Doc>;
  rules?: readonly Rule[];
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

export function defineSchema<S extends AppSchema>(schema: S): S {
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
    for (const index of def.indexes) {
      if (index === 'id' || index.startsWith('_')) throw new Error(`index '${index}' on '${name}' is reserved`);
    }
  }
  for (const [key, m] of Object.entries(schema.mutators)) {
    if (key !== m.name) throw new Error(`mutator registered as '${key}' is named '${m.name}'`);
  }
  return schema;
}

import { z } from 'zod';
import { TidelineError } from '../errors';
import { docSchema, jsonValueSchema } from '../json';
import type { Doc } from '../json';
import { defineMutator } from './types';
import type { MutatorDef } from './types';

const collection = z.string().min(1).max(64);
const id = z.string().min(1).max(256);
const fieldName = z
  .string()
  .min(1)
  .max(128)
  .refine((f) => f !== 'id' && f !== 'owner', 'the id and owner fields cannot be patched');

/** Replace a whole document (create it if absent). */
export const put = defineMutator({
  name: 'put',
  builtin: true,
  args: z.object({ collection, doc: docSchema }),
  run(tx, { collection, doc }) {
    tx.put(collection, doc);
  },
});

/** Field-level update: concurrent patches of different fields both survive. */
export const patch = defineMutator({
  name: 'patch',
  builtin: true,
  args: z.object({
    collection,
    id,
    set: z.record(fieldName, jsonValueSchema).optional(),
    unset: z.array(fieldName).optional(),
  }),
  run(tx, { collection, id, set, unset }) {
    const current = tx.get(collection, id);
    if (!current) throw new TidelineError('NOT_FOUND', `${collection}/${id} does not exist`);
    const next: Doc = { ...current, ...(set ?? {}) };
    for (const f of unset ?? []) delete next[f];
    tx.put(collection, next);
  },
});

export const del = defineMutator({
  name: 'delete',
  builtin: true,
  args: z.object({ collection, id }),
  run(tx, { collection, id }) {
    tx.delete(collection, id);
  },
});

/** Commutative add to a numeric field: concurrent increments all count. */
export const inc = defineMutator({
  name: 'inc',
  builtin: true,
  args: z.object({ collection, id, field: fieldName, by: z.number().finite() }),
  run(tx, { collection, id, field, by }) {
    const current = tx.get(collection, id);
    if (!current) throw new TidelineError('NOT_FOUND', `${collection}/${id} does not exist`);
    const value = current[field] === undefined ? 0 : current[field];
    if (typeof value !== 'number') {
      throw new TidelineError('INVALID_ARGS', `${collection}/${id}.${field} is not a number`);
    }
    tx.put(collection, { ...current, [field]: value + by });
  },
});

export const BUILTIN_MUTATORS: Readonly<Record<string, MutatorDef>> = {
  put,
  patch,
  delete: del,
  inc,
};

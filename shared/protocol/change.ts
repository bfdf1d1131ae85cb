import { z } from 'zod';
import { docSchema } from '../json';

export const lsnSchema = z.number().int().nonnegative();

/** One committed document version (an after-image); `doc: null` is a tombstone. */
export const changeSchema = z.object({
  lsn: lsnSchema,
  term: z.number().int().nonnegative(),
  collection: z.string().min(1).max(64),
  id: z.string().min(1).max(256),
  doc: docSchema.nullable(),
  /** Owner of the document for owner-only collections, so tombstones can be scoped. */
  owner: z.string().nullable(),
  /** The mutation that wrote it; null for changes not made by a client (seed data, admin). */
  clientId: z.string().nullable(),
  seq: z.number().int().nonnegative().nullable(),
  /** Commit time in ms since the epoch, from the primary's clock. */
  ts: z.number(),
});
export type Change = z.infer<typeof changeSchema>;

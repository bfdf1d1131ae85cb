import { defineSchema } from 'tideline/schema';
import { z } from 'zod';

/**
 * The browser bench's schema: one public collection, `docs`, with two local
 * indexes and no quota, so a writer is bounded by nothing but the code under
 * test. The server (`tideline serve --schema`) and the bench page import it.
 */
export const benchDocShape = z.object({
  id: z.string(),
  n: z.number().int(),
  group: z.string(),
  text: z.string(),
});

export type BenchDoc = z.output<typeof benchDocShape>;

export const benchSchema = defineSchema({
  name: 'bench',
  version: 1,
  collections: {
    docs: { read: 'public', write: 'any', indexes: ['n', 'group'], doc: benchDocShape },
  },
  mutators: {},
});

export type BenchSchema = typeof benchSchema;

export default benchSchema;

/** Document `i` of a run: about 200 bytes as JSON, ids `<prefix>-<i>`. */
export function benchDoc(prefix: string, i: number): BenchDoc {
  return {
    id: `${prefix}-${i}`,
    n: i,
    group: `g${i % 100}`,
    text: `document ${i} of ${prefix}: `.padEnd(150, 'lorem ipsum dolor sit amet '),
  };
}

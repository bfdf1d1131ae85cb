import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';
import { z } from 'zod';
import { TidelineError } from '../shared/errors';
import { defineSchema } from '../shared/schema/define-schema';
import type { AppSchema } from '../shared/schema/define-schema';

const isFunction = (v: unknown): boolean => typeof v === 'function';
/** A zod schema: checked by shape, since the app's zod may be another copy than ours. */
const zodLike = z.custom<unknown>(
  (v) => typeof v === 'object' && v !== null && isFunction((v as { safeParse?: unknown }).safeParse),
  'a zod schema',
);

const collectionShape = z.object({
  read: z.enum(['public', 'owner']),
  readRoles: z.array(z.string()).optional(),
  write: z.union([z.enum(['any', 'owner', 'none']), z.object({ role: z.string().min(1) })]),
  indexes: z.array(z.string()),
  doc: zodLike.optional(),
  rules: z
    .array(z.object({ name: z.string(), check: z.custom<unknown>(isFunction, 'a function'), message: z.string() }))
    .optional(),
});

const appSchemaShape = z.object({
  name: z.string().min(1),
  version: z.number().int().positive(),
  collections: z.record(z.string(), collectionShape),
  mutators: z.record(
    z.string(),
    z.object({ name: z.string(), args: zodLike, run: z.custom<unknown>(isFunction, 'a function') }),
  ),
});

function exported(mod: Record<string, unknown>): unknown {
  return mod['schema'] ?? (isSchemaLike(mod['default']) ? mod['default'] : undefined);
}

function isSchemaLike(v: unknown): boolean {
  return typeof v === 'object' && v !== null && 'collections' in v;
}

/**
 * A module Node loaded as CommonJS (a .ts or .js file in a folder without
 * "type": "module") arrives as `{ default: module.exports }`, and its own
 * exports sit inside.
 */
function commonJsExports(mod: Record<string, unknown>): Record<string, unknown> | undefined {
  const inner = mod['default'];
  return typeof inner === 'object' && inner !== null && !isSchemaLike(inner)
    ? (inner as Record<string, unknown>)
    : undefined;
}

/**
 * The app schema a module exports: its default export, or a named `schema`
 * export. Checked by shape and by `defineSchema`'s rules, so a wrong export
 * fails here with the path of the problem, not later on a client's push.
 */
export function appSchemaOf(mod: Record<string, unknown>, where: string): AppSchema {
  const inner = commonJsExports(mod);
  // Failing a schema-like export, the default export is checked, for an error that says what is wrong with it.
  const candidate = exported(mod) ?? (inner && exported(inner)) ?? (inner ? inner['default'] : mod['default']);
  if (candidate === undefined) {
    throw new TidelineError('BAD_REQUEST', `${where} exports no schema`, {
      hint: 'export the result of defineSchema(...) as the default export or as `export const schema`',
    });
  }
  const parsed = appSchemaShape.safeParse(candidate);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw new TidelineError(
      'BAD_REQUEST',
      `${where} does not export an app schema${at}: ${issue?.message ?? 'invalid'}`,
      {
        hint: 'export defineSchema({ name, version, collections, mutators }) from the Tideline schema kit',
      },
    );
  }
  try {
    // The value itself, not zod's copy: collection `doc` schemas and mutators are used as given.
    return defineSchema(candidate as AppSchema);
  } catch (err) {
    throw new TidelineError('BAD_REQUEST', `${where}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Imports the app's schema module: TypeScript (`.ts`, `.mts`) without a build
 * step, through tsx's loader scoped to this one import (so it does not change
 * how the rest of the process loads modules), or JavaScript.
 */
export async function loadSchemaModule(path: string): Promise<AppSchema> {
  const file = resolve(path);
  if (!existsSync(file)) {
    throw new TidelineError('BAD_REQUEST', `schema module ${file} does not exist`, {
      hint: 'pass the path of the module that exports your defineSchema(...), e.g. --schema ./schema.ts',
    });
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
  } catch (err) {
    throw new TidelineError(
      'BAD_REQUEST',
      `cannot load schema module ${file}: ${err instanceof Error ? err.message : String(err)}`,
      {
        cause: err,
        hint: 'the module must import without errors (check its imports resolve from its own folder)',
      },
    );
  }
  return appSchemaOf(mod, file);
}

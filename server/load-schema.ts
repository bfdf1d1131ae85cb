import { existsSync, readFileSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';
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

/**
 * The app schema a module exports: its default export, or a named `schema`
 * export. Checked by shape and by `defineSchema`'s rules, so a wrong export
 * fails here with the path of the problem, not later on a client's push.
 */
export function appSchemaOf(mod: Record<string, unknown>, where: string): AppSchema {
  const candidate = mod['schema'] ?? mod['default'];
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

/** The nearest package.json above `file`, and whether it says "type": "module". */
function packageScope(file: string): { path: string | null; module: boolean } {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const path = join(dir, 'package.json');
    if (existsSync(path)) {
      let type: unknown;
      try {
        type = (JSON.parse(readFileSync(path, 'utf8')) as { type?: unknown }).type;
      } catch {
        type = undefined;
      }
      return { path, module: type === 'module' };
    }
    if (dirname(dir) === dir) return { path: null, module: false };
  }
}

/**
 * Refuses a schema module that Node would load as CommonJS: it would get a
 * CommonJS copy of the schema kit (or fail to import it: the package ships ES
 * modules only), and a `TidelineError` its mutators throw would not be the
 * server's. `.mts`/`.mjs` are ES modules anywhere; `.ts`/`.js` where the
 * nearest package.json says "type": "module".
 */
function checkLoadsAsEsModule(file: string): void {
  const ext = extname(file);
  if (ext === '.mts' || ext === '.mjs') return;
  const scope = packageScope(file);
  if ((ext === '.ts' || ext === '.js' || ext === '.tsx') && scope.module) return;
  const why =
    ext === '.cts' || ext === '.cjs'
      ? `its extension ${ext} makes it CommonJS`
      : scope.path === null
        ? 'no package.json above it says "type": "module"'
        : `${scope.path} does not say "type": "module"`;
  throw new TidelineError('BAD_REQUEST', `schema module ${file} would load as CommonJS: ${why}`, {
    hint: 'Tideline ships ES modules: add "type": "module" to your package.json, or name the file schema.mts',
  });
}

/** Whether this process registered tsx's loader (once is enough; later imports share it). */
let tsxRegistered = false;

/**
 * Imports the app's schema module, an ES module: TypeScript (`.ts`, `.mts`)
 * without a build step, or JavaScript, through tsx's loader registered for the whole process.
 *
 * Not tsx's scoped `tsImport`: it loads the module and everything it imports
 * under URLs of their own (`?tsx-namespace=...`), so the schema kit the app
 * imports would be a second copy of the server's. Then a `TidelineError`
 * thrown by an app mutator is not the server's `TidelineError`, and the
 * client is told a generic REJECTED instead of the mutator's own code.
 */
export async function loadSchemaModule(path: string): Promise<AppSchema> {
  const file = resolve(path);
  if (!existsSync(file)) {
    throw new TidelineError('BAD_REQUEST', `schema module ${file} does not exist`, {
      hint: 'pass the path of the module that exports your defineSchema(...), e.g. --schema ./schema.ts',
    });
  }
  checkLoadsAsEsModule(file);
  if (!tsxRegistered) {
    register();
    tsxRegistered = true;
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
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

import { TidelineError } from '../errors';
import type { WireErrorShape } from '../errors';
import { docSchema, jsonByteLength } from '../json';
import type { Doc, JsonValue } from '../json';
import type { Limits } from '../protocol/limits';
import { readsAll } from '../schema/define-schema';
import type { AppSchema, CollectionDef } from '../schema/define-schema';
import { isOwnedBy, ownerPrefix } from '../schema/owned-id';
import { BUILTIN_MUTATORS } from './builtins';
import type { MutatorContext, MutatorDef, MutatorTx, Write } from './types';

/**
 * Thrown by a `ReadFn` to abort the run instead of rejecting the mutation:
 * the failure is the reader's (a missing cache entry, an I/O error), not the
 * mutation's, so it must not be recorded as a rejection.
 */
export class AbortRun extends Error {}

/** Thrown by an I/O failure of the store under a `ReadFn`; `cause` holds it. */
export class ReadFailure extends AbortRun {}

/**
 * Thrown by a `ReadFn` that does not hold the document yet, for a caller
 * that loads it and runs the mutation again (mutators are deterministic, so
 * the rerun is safe). The client's `applyLocal` does not stop at the first
 * miss: it records every miss of a run and loads them together.
 */
export class MissingRead extends AbortRun {
  constructor(
    readonly collection: string,
    readonly id: string,
  ) {
    super(`missing read ${collection}/${id}`);
    this.name = 'MissingRead';
  }
}

/** Reads the current (pre-mutation) version of a document. */
export type ReadFn = (collection: string, id: string) => Doc | undefined;

export type RunOutcome = { ok: true; writes: Write[] } | { ok: false; error: WireErrorShape };

/**
 * `probe`: a run whose only use is the documents it reads (the client's
 * prefetch, on guessed documents). Its puts are not checked, since a guess
 * can make an invalid document that the real data would not, and after the
 * mutator it reads what it wrote and stops: its outcome means nothing.
 */
export interface RunOptions {
  probe?: boolean;
}

/**
 * The context `runMutation` runs with. `system` marks a server-side write by
 * the system principal (backend code, `POST /admin/mutate` as 'system'): it
 * may read and write every collection, whatever its `write` access, and
 * writes an owner-only document for the owner the document names. Document
 * schemas and rules still apply. Clients never set it: the flag exists only
 * on the primary's side of the call.
 */
export interface RunContext extends MutatorContext {
  system?: true;
}

export function findMutator(schema: AppSchema, name: string): MutatorDef | undefined {
  if (Object.hasOwn(BUILTIN_MUTATORS, name)) return BUILTIN_MUTATORS[name];
  if (Object.hasOwn(schema.mutators, name)) return schema.mutators[name];
  return undefined;
}

function collectionOf(schema: AppSchema, name: string): CollectionDef {
  const def = Object.hasOwn(schema.collections, name) ? schema.collections[name] : undefined;
  if (!def) throw new TidelineError('BAD_REQUEST', `unknown collection '${name}'`);
  return def;
}

const keyOf = (collection: string, id: string): string => `${collection}\u0000${id}`;

/**
 * Runs one mutation against `read` and returns the writes it makes, after
 * the access checks, the document schemas and the collection rules. Pure:
 * it writes nothing; the caller commits `writes` atomically or not at all.
 * Rethrows `AbortRun` (a reader's failure); every other failure becomes `{ ok: false }`.
 */
export function runMutation(
  schema: AppSchema,
  name: string,
  args: JsonValue,
  ctx: RunContext,
  read: ReadFn,
  limits: Pick<Limits, 'maxDocBytes'>,
  options: RunOptions = {},
): RunOutcome {
  try {
    return { ok: true, writes: runChecked(schema, name, args, ctx, read, limits, options.probe === true) };
  } catch (err) {
    if (err instanceof AbortRun) throw err;
    if (err instanceof TidelineError) return { ok: false, error: boundedError(err.toWire()) };
    const message = describeThrown(err);
    return {
      ok: false,
      error: boundedError({ code: 'REJECTED', message: `mutator '${name}' failed: ${message}`, retryable: false }),
    };
  }
}

/**
 * The longest rejection message kept or sent, in UTF-16 code units. Messages
 * echo input (an id, a mutator name, an app's thrown text), and a rejection is
 * stored, replicated and replayed on reconnect: a 900 KB id must not make a
 * 900 KB message.
 */
export const MAX_ERROR_MESSAGE_CHARS = 500;

/** `error` with its message cut to `MAX_ERROR_MESSAGE_CHARS` (ending in `…` when cut); the same object if short. */
export function boundedError(error: WireErrorShape): WireErrorShape {
  if (error.message.length <= MAX_ERROR_MESSAGE_CHARS) return error;
  let cut = MAX_ERROR_MESSAGE_CHARS - 1;
  // Never split a surrogate pair: half of one is not valid UTF-8 on the wire.
  if (/[\uD800-\uDBFF]/.test(error.message.charAt(cut - 1))) cut--;
  return { ...error, message: `${error.message.slice(0, cut)}…` };
}

function runChecked(
  schema: AppSchema,
  name: string,
  rawArgs: JsonValue,
  ctx: RunContext,
  read: ReadFn,
  limits: Pick<Limits, 'maxDocBytes'>,
  probe: boolean,
): Write[] {
  const mutator = findMutator(schema, name);
  if (!mutator) throw new TidelineError('UNKNOWN_MUTATOR', `no mutator named '${name}'`);
  const parsed = mutator.args.safeParse(rawArgs);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw new TidelineError('INVALID_ARGS', `bad arguments for '${name}'${where}: ${issue?.message ?? 'invalid'}`);
  }

  const buffer = new Map<string, { collection: string; id: string; doc: Doc | null }>();
  /** Whether this user may see `doc`: a document out of their scope is, to them, one that does not exist. */
  const mayRead = (def: CollectionDef, doc: Doc): boolean =>
    ctx.system === true || def.read !== 'owner' || doc['owner'] === ctx.userId || readsAll(def, ctx.roles);
  /**
   * Reads as the user sees the store: a document in another user's scope
   * reads as missing, so that no answer (a code, a message, a rule that
   * fires or not) tells whether an id is taken by someone else.
   */
  const readVisible = (collection: string, id: string): Doc | undefined => {
    const def = collectionOf(schema, collection);
    const doc = read(collection, id);
    return doc && mayRead(def, doc) ? doc : undefined;
  };

  const tx: MutatorTx = {
    get(collection, id) {
      const buffered = buffer.get(keyOf(collection, id));
      if (buffered) return buffered.doc ? structuredClone(buffered.doc) : undefined;
      const doc = readVisible(collection, id);
      return doc ? structuredClone(doc) : undefined;
    },
    put(collection, doc) {
      const def = collectionOf(schema, collection);
      if (probe) {
        // Unchecked, but kept: the mutator may read back what it put.
        const copy: unknown = structuredClone(doc);
        const isObject = typeof copy === 'object' && copy !== null && !Array.isArray(copy);
        const id = isObject ? String((copy as { id?: unknown }).id) : '';
        buffer.set(keyOf(collection, id), { collection, id, doc: isObject ? (copy as Doc) : null });
        return;
      }
      const checked = docSchema.safeParse(doc);
      if (!checked.success)
        throw new TidelineError('INVALID_DOCUMENT', `${collection}: ${checked.error.issues[0]?.message}`);
      const copy = structuredClone(checked.data);
      if (def.read === 'owner' && copy['owner'] === undefined && !ctx.system) copy['owner'] = ctx.userId;
      buffer.set(keyOf(collection, copy.id), { collection, id: copy.id, doc: copy });
    },
    delete(collection, id) {
      collectionOf(schema, collection);
      buffer.set(keyOf(collection, id), { collection, id, doc: null });
    },
  };

  mutator.run(tx, parsed.data, ctx);

  if (probe) {
    for (const { collection, id } of buffer.values()) read(collection, id);
    return [];
  }
  const writes: Write[] = [];
  for (const { collection, id, doc } of buffer.values()) {
    const def = collectionOf(schema, collection);
    const stored = read(collection, id);
    const hidden = stored !== undefined && !mayRead(def, stored);
    const prev = hidden ? undefined : stored;
    // Before anything that depends on what is stored, so the answer tells nothing about other users' ids.
    // Deleting a document one owns stays allowed whatever its id (one made before ids were namespaced).
    if (!ctx.system && def.read === 'owner' && !(doc === null && prev?.['owner'] === ctx.userId)) {
      checkNamespace(collection, id, ctx.userId);
    }
    // Deleting nothing; deleting a document the user cannot see is the same no-op.
    if (doc === null && prev === undefined) continue;
    if (ctx.system) {
      writes.push(systemWrite(def, collection, id, doc, prev, limits));
      continue;
    }
    checkWriteAccess(def, collection, id, mutator, ctx);
    if (doc !== null) checkDocument(def, collection, doc, limits);
    if (def.read === 'owner' && prev !== undefined && prev['owner'] !== ctx.userId) {
      // Reading another user's document may be allowed (readRoles); writing it never is.
      throw new TidelineError('FORBIDDEN', `${collection}/${id} belongs to another user`);
    }
    if (def.read === 'owner' && doc !== null && doc['owner'] !== ctx.userId) {
      throw new TidelineError('FORBIDDEN', `${collection}/${id} must be owned by its writer`);
    }
    // Creating over an id another user's document holds: the one answer that cannot look like success.
    // It is the missing document's answer (a patch's), after every check a new document would pass too.
    if (hidden) throw doesNotExist(collection, id);
    writes.push({ collection, id, doc, owner: def.read === 'owner' ? ctx.userId : null });
  }
  return writes;
}

/**
 * A write by the system principal: any collection, schemas and rules checked.
 * An owner-only document must name its owner, and keeps the owner it has:
 * moving a document to another user would leave it, stale, in the old
 * owner's replica (changes fan out to the new owner's scope only).
 */
function systemWrite(
  def: CollectionDef,
  collection: string,
  id: string,
  doc: Doc | null,
  prev: Doc | undefined,
  limits: Pick<Limits, 'maxDocBytes'>,
): Write {
  if (doc !== null) checkDocument(def, collection, doc, limits);
  if (def.read !== 'owner') return { collection, id, doc, owner: null };
  const prevOwner = prev?.['owner'];
  const owner = doc === null ? prevOwner : doc['owner'];
  if (typeof owner !== 'string' || owner.length === 0) {
    throw new TidelineError(
      'INVALID_DOCUMENT',
      `${collection}/${id}: a system write to an owner-only collection must set 'owner'`,
    );
  }
  if (doc !== null) checkNamespace(collection, id, owner);
  if (prev !== undefined && prevOwner !== owner) {
    throw new TidelineError(
      'FORBIDDEN',
      `${collection}/${id} belongs to ${JSON.stringify(prevOwner ?? null)}; its owner cannot change`,
    );
  }
  return { collection, id, doc, owner };
}

/**
 * An owner-only document's id must lie in its owner's namespace
 * (`ownedId(owner, rest)`): ids are unique per collection, so an id anyone
 * could take would let one user block another's document for good.
 */
function checkNamespace(collection: string, id: string, owner: string): void {
  if (isOwnedBy(id, owner)) return;
  throw new TidelineError(
    'FORBIDDEN',
    `${collection}/${id}: ids in the owner-only collection '${collection}' must start with the owner's prefix ` +
      `'${ownerPrefix(owner)}' and go on after it; make them with ownedId(userId, rest) from tideline/schema`,
  );
}

/** The answer for a document that is missing, or in another user's scope (the two must not differ). */
export const doesNotExist = (collection: string, id: string): TidelineError =>
  new TidelineError('NOT_FOUND', `${collection}/${id} does not exist`);

function checkWriteAccess(
  def: CollectionDef,
  collection: string,
  id: string,
  mutator: MutatorDef,
  ctx: MutatorContext,
): void {
  if (!mutator.builtin) return;
  const w = def.write;
  const allowed = w === 'any' || w === 'owner' || (typeof w === 'object' && ctx.roles.includes(w.role));
  if (!allowed) {
    const who = typeof w === 'object' ? `role '${w.role}'` : 'app mutators';
    throw new TidelineError('FORBIDDEN', `${collection}/${id} can only be written by ${who}`);
  }
}

function checkDocument(def: CollectionDef, collection: string, doc: Doc, limits: Pick<Limits, 'maxDocBytes'>): void {
  const size = jsonByteLength(doc);
  if (size > limits.maxDocBytes) {
    throw new TidelineError(
      'TOO_LARGE',
      `${collection}/${doc.id} is ${size} bytes; the limit is ${limits.maxDocBytes}`,
    );
  }
  if (def.doc) {
    const r = def.doc.safeParse(doc);
    if (!r.success) {
      const issue = r.error.issues[0];
      const where = issue && issue.path.length > 0 ? `.${issue.path.join('.')}` : '';
      throw new TidelineError('INVALID_DOCUMENT', `${collection}/${doc.id}${where}: ${issue?.message ?? 'invalid'}`);
    }
  }
  for (const rule of def.rules ?? []) {
    if (!rule.check(doc)) {
      throw new TidelineError('REJECTED', `${collection}/${doc.id}: ${rule.message} (rule ${rule.name})`);
    }
  }
}

/** A message for anything a mutator threw, even a value that cannot be stringified. */
function describeThrown(err: unknown): string {
  if (err instanceof Error) return err.message;
  try {
    return String(err);
  } catch {
    return 'a non-error value';
  }
}

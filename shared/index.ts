/**
 * `tideline/schema`: the schema kit an app shares between its clients and
 * its server. It imports only zod, so it runs in browsers and in Node alike.
 * Everything else under shared/ (the wire protocol, `runMutation`) is
 * internal and may change.
 */
export { defineCollection, defineSchema } from './schema/define-schema';
export type {
  AppSchema,
  CollectionDef,
  CollectionName,
  DocOf,
  DocOfCollection,
  DocShape,
  Quota,
  ReadAccess,
  Rule,
  TypedCollectionDef,
  WriteAccess,
} from './schema/define-schema';
export { isOwnedBy, ownedId, ownerOfId, ownerPrefix } from './schema/owned-id';
export { defineMutator } from './mutators/types';
export type { MutatorArgs, MutatorContext, MutatorDef, MutatorTx } from './mutators/types';
export { ERROR_CODES, TidelineError } from './errors';
export type { ErrorCode, WireErrorShape } from './errors';
export { docSchema, isDoc, isJsonValue, jsonObjectSchema, jsonValueSchema } from './json';
export type { Doc, JsonObject, JsonValue } from './json';

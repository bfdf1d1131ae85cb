import { z } from 'zod';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Nesting deeper than this is refused: no legitimate document needs it, and it bounds the check's stack. */
const MAX_DEPTH = 64;

/**
 * Whether `value` is plain JSON: finite numbers, plain objects and arrays, no
 * cycles past MAX_DEPTH, nothing else (Socket.IO can decode binary attachments
 * into Buffers, which are not JSON). Hand-written because it runs on every
 * pushed document: zod's recursive union was a fifth of the ingest profile.
 */
export function isJsonValue(value: unknown, depth = 0): value is JsonValue {
  if (value === null) return true;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (depth >= MAX_DEPTH) return false;
      if (Array.isArray(value)) return value.every((v) => isJsonValue(v, depth + 1));
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) {
        if (!isJsonValue((value as Record<string, unknown>)[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

export const jsonValueSchema: z.ZodType<JsonValue> = z.custom<JsonValue>((v) => isJsonValue(v), {
  message: 'must be JSON: finite numbers, strings, booleans, null, arrays and plain objects',
});

export const jsonObjectSchema: z.ZodType<JsonObject> = z.custom<JsonObject>(
  (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && isJsonValue(v),
  { message: 'must be a JSON object' },
);

/** A stored document: a JSON object with a string id. */
export interface Doc extends JsonObject {
  id: string;
}

export function isDoc(value: unknown): value is Doc {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const id = (value as Record<string, unknown>)['id'];
  return typeof id === 'string' && id.length > 0 && id.length <= 256 && isJsonValue(value);
}

export const docSchema: z.ZodType<Doc> = z.custom<Doc>((v) => isDoc(v), {
  message: 'a document is a JSON object with a string id of 1 to 256 characters',
});

const encoder = new TextEncoder();

/** Size of a value as UTF-8 JSON, which is what the limits count. */
export function jsonByteLength(value: unknown): number {
  return encoder.encode(JSON.stringify(value)).length;
}

/** Structural equality of JSON values; key order does not matter. */
export function deepEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === undefined || b === undefined) return false;
  if (typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => deepEqual(v, b[i]));
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
}

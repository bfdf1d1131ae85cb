import { describe, expect, it } from 'vitest';
import { storeSchema } from '../shared/apps/store';
import { appSchemaOf } from './load-schema';

describe('appSchemaOf: what a schema module must export', () => {
  it('takes the default export or a named `schema`', () => {
    expect(appSchemaOf({ default: storeSchema }, 'm')).toBe(storeSchema);
    expect(appSchemaOf({ schema: storeSchema, other: 1 }, 'm')).toBe(storeSchema);
  });

  it('says what is wrong, and where', () => {
    expect(() => appSchemaOf({ answer: 42 }, 'app.ts')).toThrow('app.ts exports no schema');
    expect(() => appSchemaOf({ default: 42 }, 'app.ts')).toThrow('app.ts does not export an app schema');
    const noVersion = { name: 'x', collections: {}, mutators: {} };
    expect(() => appSchemaOf({ default: noVersion }, 'app.ts')).toThrow(
      'app.ts does not export an app schema at version',
    );
    const badWrite = {
      name: 'x',
      version: 1,
      mutators: {},
      collections: { a: { read: 'public', write: 'all', indexes: [] } },
    };
    expect(() => appSchemaOf({ default: badWrite }, 'app.ts')).toThrow('at collections.a.write');
    // defineSchema's own rules apply too.
    const reserved = {
      name: 'x',
      version: 1,
      mutators: {},
      collections: { a: { read: 'public', write: 'any', indexes: ['id'] } },
    };
    expect(() => appSchemaOf({ default: reserved }, 'app.ts')).toThrow("app.ts: index 'id' on 'a' is reserved");
  });
});

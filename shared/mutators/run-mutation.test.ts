import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { storeSchema } from '../apps/store';
import { TidelineError } from '../errors';
import type { ErrorCode } from '../errors';
import { jsonByteLength } from '../json';
import type { Doc, JsonValue } from '../json';
import { DEFAULT_LIMITS } from '../protocol/limits';
import { defineSchema } from '../schema/define-schema';
import { AbortRun, MissingRead, ReadFailure, runMutation } from './run-mutation';
import type { ReadFn, RunContext, RunOutcome } from './run-mutation';
import { defineMutator } from './types';
import type { MutatorContext, Write } from './types';

const alice: MutatorContext = { userId: 'alice', roles: [], side: 'server' };
const staff: MutatorContext = { userId: 'sam', roles: ['staff'], side: 'server' };

const product = (id: string, fields: Record<string, JsonValue> = {}): Doc => ({
  id,
  name: `Product ${id}`,
  category: 'tools',
  price: 10,
  stock: 5,
  rating: 4,
  ...fields,
});

/** A ReadFn over fixed documents, keyed `collection/id`. It never changes: runMutation must not write. */
function reader(docs: Record<string, Doc> = {}): ReadFn {
  const frozen = structuredClone(docs);
  return (collection, id) => frozen[`${collection}/${id}`];
}

interface RunOptions {
  ctx?: RunContext;
  docs?: Record<string, Doc>;
  read?: ReadFn;
  maxDocBytes?: number;
}

function run(name: string, args: JsonValue, options: RunOptions = {}): RunOutcome {
  return runMutation(storeSchema, name, args, options.ctx ?? alice, options.read ?? reader(options.docs), {
    maxDocBytes: options.maxDocBytes ?? DEFAULT_LIMITS.maxDocBytes,
  });
}

function writesOf(outcome: RunOutcome): Write[] {
  if (!outcome.ok)
    throw new Error(`expected the mutation to pass, it failed: ${outcome.error.code} ${outcome.error.message}`);
  return outcome.writes;
}

/** Checks the outcome is a rejection with `code` (never retryable: the same mutation fails again). */
function expectFailure(outcome: RunOutcome, code: ErrorCode, message?: RegExp): void {
  expect(outcome.ok, 'the mutation should have been refused').toBe(false);
  if (outcome.ok) return;
  expect(outcome.error.code).toBe(code);
  expect(outcome.error.retryable).toBe(false);
  if (message) expect(outcome.error.message).toMatch(message);
}

describe('runMutation: built-in mutators', () => {
  it('put creates a document, or replaces it whole', () => {
    expect(writesOf(run('put', { collection: 'notes', doc: { id: 'n1', text: 'hi', createdAt: 1 } }))).toEqual([
      { collection: 'notes', id: 'n1', doc: { id: 'n1', text: 'hi', createdAt: 1 }, owner: null },
    ]);

    const docs = { 'notes/n1': { id: 'n1', text: 'hi', createdAt: 1 } };
    expect(writesOf(run('put', { collection: 'notes', doc: { id: 'n1', text: 'bye' } }, { docs }))).toEqual([
      { collection: 'notes', id: 'n1', doc: { id: 'n1', text: 'bye' }, owner: null },
    ]);
  });

  it('patch sets and unsets the named fields and keeps the others', () => {
    const docs = { 'notes/n1': { id: 'n1', text: 'hi', color: 'red', createdAt: 1 } };
    const writes = writesOf(
      run('patch', { collection: 'notes', id: 'n1', set: { text: 'bye', pinned: true }, unset: ['color'] }, { docs }),
    );
    expect(writes).toEqual([
      { collection: 'notes', id: 'n1', doc: { id: 'n1', text: 'bye', pinned: true, createdAt: 1 }, owner: null },
    ]);
  });

  it('patch of a missing document is NOT_FOUND', () => {
    expectFailure(run('patch', { collection: 'notes', id: 'n1', set: { text: 'x' } }), 'NOT_FOUND', /notes\/n1/);
  });

  it('patch cannot change the id or the owner', () => {
    const docs = { 'notes/n1': { id: 'n1', text: 'hi' } };
    expectFailure(run('patch', { collection: 'notes', id: 'n1', set: { id: 'n2' } }, { docs }), 'INVALID_ARGS');
    expectFailure(run('patch', { collection: 'notes', id: 'n1', unset: ['owner'] }, { docs }), 'INVALID_ARGS');
  });

  it('delete writes a tombstone, and deleting nothing writes nothing', () => {
    const docs = { 'notes/n1': { id: 'n1', text: 'hi' } };
    expect(writesOf(run('delete', { collection: 'notes', id: 'n1' }, { docs }))).toEqual([
      { collection: 'notes', id: 'n1', doc: null, owner: null },
    ]);
    expect(writesOf(run('delete', { collection: 'notes', id: 'n2' }, { docs }))).toEqual([]);
  });

  it('inc adds to a numeric field and keeps the other fields', () => {
    const docs = { 'notes/n1': { id: 'n1', text: 'hi', likes: 2 } };
    expect(writesOf(run('inc', { collection: 'notes', id: 'n1', field: 'likes', by: 3 }, { docs }))).toEqual([
      { collection: 'notes', id: 'n1', doc: { id: 'n1', text: 'hi', likes: 5 }, owner: null },
    ]);
    expect(writesOf(run('inc', { collection: 'notes', id: 'n1', field: 'likes', by: -2.5 }, { docs }))[0]?.doc).toEqual(
      { id: 'n1', text: 'hi', likes: -0.5 },
    );
  });

  it('inc of a missing field starts from 0', () => {
    const docs = { 'notes/n1': { id: 'n1', text: 'hi' } };
    expect(writesOf(run('inc', { collection: 'notes', id: 'n1', field: 'likes', by: 4 }, { docs }))[0]?.doc).toEqual({
      id: 'n1',
      text: 'hi',
      likes: 4,
    });
  });

  it('inc of a missing document is NOT_FOUND; of a field that is not a number, INVALID_ARGS', () => {
    expectFailure(run('inc', { collection: 'notes', id: 'n1', field: 'likes', by: 1 }), 'NOT_FOUND', /notes\/n1/);
    const docs = { 'notes/n1': { id: 'n1', text: 'hi' } };
    expectFailure(run('inc', { collection: 'notes', id: 'n1', field: 'text', by: 1 }, { docs }), 'INVALID_ARGS');
  });

  it('an unknown collection is BAD_REQUEST', () => {
    expectFailure(run('put', { collection: 'nope', doc: { id: 'x' } }), 'BAD_REQUEST', /nope/);
    expectFailure(run('delete', { collection: 'nope', id: 'x' }), 'BAD_REQUEST', /nope/);
  });

  it('never changes the documents it read', () => {
    const stored = { id: 'n1', text: 'hi', likes: 1 };
    const read: ReadFn = (c, id) => (c === 'notes' && id === 'n1' ? stored : undefined);
    writesOf(run('patch', { collection: 'notes', id: 'n1', set: { text: 'bye' }, unset: ['likes'] }, { read }));
    writesOf(run('inc', { collection: 'notes', id: 'n1', field: 'likes', by: 1 }, { read }));
    expect(stored).toEqual({ id: 'n1', text: 'hi', likes: 1 });
  });
});

describe('runMutation: the checkout app mutator', () => {
  const shop = (): Record<string, Doc> => ({
    'products/p1': product('p1', { price: 12.5, stock: 5 }),
    'products/p2': product('p2', { price: 3, stock: 1 }),
    'carts/alice/cart': { id: 'alice/cart', owner: 'alice', lines: [{ productId: 'p1', qty: 2 }] },
  });
  const args = {
    orderId: 'alice/o1',
    lines: [
      { productId: 'p1', qty: 2 },
      { productId: 'p2', qty: 1 },
    ],
    at: 1_700_000_000_000,
    cartId: 'alice/cart',
  };

  it('decrements stock, records the order for its owner and deletes the cart', () => {
    // alice has no staff role: app mutators are trusted to write products and orders.
    const writes = writesOf(run('checkout', args, { docs: shop() }));
    expect(writes).toEqual([
      { collection: 'products', id: 'p1', doc: product('p1', { price: 12.5, stock: 3 }), owner: null },
      { collection: 'products', id: 'p2', doc: product('p2', { price: 3, stock: 0 }), owner: null },
      {
        collection: 'orders',
        id: 'alice/o1',
        doc: {
          id: 'alice/o1',
          owner: 'alice',
          lines: [
            { productId: 'p1', name: 'Product p1', qty: 2, price: 12.5 },
            { productId: 'p2', name: 'Product p2', qty: 1, price: 3 },
          ],
          total: 28,
          status: 'confirmed',
          createdAt: 1_700_000_000_000,
        },
        owner: 'alice',
      },
      { collection: 'carts', id: 'alice/cart', doc: null, owner: 'alice' },
    ]);
  });

  it('is REJECTED when stock is short, and writes nothing', () => {
    const outcome = run('checkout', { ...args, lines: [...args.lines, { productId: 'p1', qty: 4 }] }, { docs: shop() });
    expectFailure(outcome, 'REJECTED', /only 3 left, 4 wanted/);
    expect(outcome).not.toHaveProperty('writes');
  });

  it('is NOT_FOUND for a missing product', () => {
    expectFailure(
      run('checkout', { ...args, lines: [{ productId: 'ghost', qty: 1 }] }, { docs: shop() }),
      'NOT_FOUND',
      /ghost/,
    );
  });

  it('is REJECTED for an order id that exists already', () => {
    const docs = { ...shop(), 'orders/alice/o1': { id: 'alice/o1', owner: 'alice', total: 1 } };
    expectFailure(run('checkout', args, { docs }), 'REJECTED', /alice\/o1 already exists/);
  });

  it('leaves the cart of another user alone, as it would a missing cart', () => {
    const theirs = writesOf(
      run('checkout', args, { docs: { ...shop(), 'carts/alice/cart': { id: 'alice/cart', owner: 'bob' } } }),
    );
    expect(theirs).toEqual(writesOf(run('checkout', args, { docs: shop() })).slice(0, -1));
    expect(theirs.some((w) => w.collection === 'carts')).toBe(false);
  });
});

describe('runMutation: access', () => {
  it('a built-in write to products needs the staff role', () => {
    const put = { collection: 'products', doc: product('p9') };
    expectFailure(run('put', put), 'FORBIDDEN', /role 'staff'/);
    expect(writesOf(run('put', put, { ctx: staff }))).toEqual([
      { collection: 'products', id: 'p9', doc: product('p9'), owner: null },
    ]);

    const docs = { 'products/p1': product('p1') };
    const inc = { collection: 'products', id: 'p1', field: 'stock', by: 1 };
    expectFailure(run('inc', inc, { docs }), 'FORBIDDEN');
    expect(writesOf(run('inc', inc, { docs, ctx: staff }))[0]?.doc).toEqual(product('p1', { stock: 6 }));
    expectFailure(run('delete', { collection: 'products', id: 'p1' }, { docs }), 'FORBIDDEN');
  });

  it('no built-in may write orders, whatever the roles', () => {
    const put = { collection: 'orders', doc: { id: 'alice/o1', total: 0 } };
    expectFailure(run('put', put), 'FORBIDDEN', /app mutators/);
    expectFailure(run('put', put, { ctx: { ...staff, roles: ['staff', 'admin'] } }), 'FORBIDDEN');
  });

  it('no built-in may delete an order, not even its owner', () => {
    const docs = { 'orders/alice/o1': { id: 'alice/o1', owner: 'alice', total: 1 } };
    expectFailure(run('delete', { collection: 'orders', id: 'alice/o1' }, { docs }), 'FORBIDDEN');
  });

  it("a collection written by 'owner' never lets one user overwrite another's document", () => {
    // defineSchema accepts `write: 'owner'` on a public collection (public profiles, say); then either
    // it must refuse that schema, or runMutation must check the owner as it does for owner-only ones.
    const attempt = (): RunOutcome => {
      const profiles = defineSchema({
        name: 'profiles-test',
        version: 1,
        collections: { profiles: { read: 'public', write: 'owner', indexes: [] } },
        mutators: {},
      });
      const bob: MutatorContext = { userId: 'bob', roles: [], side: 'server' };
      const read = reader({ 'profiles/alice': { id: 'alice', owner: 'alice', bio: 'hello' } });
      return runMutation(profiles, 'put', { collection: 'profiles', doc: { id: 'alice', bio: 'pwned' } }, bob, read, {
        maxDocBytes: DEFAULT_LIMITS.maxDocBytes,
      });
    };
    let result: string;
    try {
      const outcome = attempt();
      if (outcome.ok) result = `bob overwrote alice's profile: ${JSON.stringify(outcome.writes)}`;
      else result = outcome.error.code === 'FORBIDDEN' ? 'refused' : outcome.error.code;
    } catch (err) {
      // defineSchema refusing the collection is the other acceptable fix.
      result = err instanceof Error && /profiles/.test(err.message) ? 'refused' : String(err);
    }
    expect(result).toBe('refused');
  });

  it('fills in the owner of a new document in an owner-only collection', () => {
    expect(writesOf(run('put', { collection: 'items', doc: { id: 'alice/i1', n: 1 } }))).toEqual([
      { collection: 'items', id: 'alice/i1', doc: { id: 'alice/i1', n: 1, owner: 'alice' }, owner: 'alice' },
    ]);
  });

  it("answers for another user's owner-only document exactly as for a missing one, so ids cannot be probed", () => {
    const docs = {
      'items/alice/i1': { id: 'alice/i1', owner: 'bob', n: 1 },
      'carts/alice/c1': { id: 'alice/c1', owner: 'bob' },
    };
    // The same mutation on bob's document (docs) and on nothing (no docs): the same outcome, id aside.
    const both = (name: string, args: JsonValue): [RunOutcome, RunOutcome] => [
      run(name, args, { docs }),
      run(name, args),
    ];
    for (const [name, args] of [
      ['patch', { collection: 'items', id: 'alice/i1', set: { n: 2 } }],
      ['inc', { collection: 'carts', id: 'alice/c1', field: 'n', by: 1 }],
      ['delete', { collection: 'carts', id: 'alice/c1' }],
    ] as const) {
      const [theirs, missing] = both(name, args);
      expect(theirs, name).toEqual(missing);
    }
    expect(run('patch', { collection: 'items', id: 'alice/i1', set: { n: 2 } }, { docs })).toEqual({
      ok: false,
      error: { code: 'NOT_FOUND', message: 'items/alice/i1 does not exist', retryable: false },
    });
    // A mutator reading bob's document sees nothing there.
    expect(writesOf(run('delete', { collection: 'items', id: 'alice/i1' }, { docs }))).toEqual([]);
  });

  it("never writes over another user's owner-only document, answering as a patch of a missing one would", () => {
    const docs = {
      'items/alice/i1': { id: 'alice/i1', owner: 'bob', n: 1 },
      'carts/alice/c1': { id: 'alice/c1', owner: 'bob' },
    };
    const notFound = run('patch', { collection: 'items', id: 'alice/i1', set: { n: 2 } });
    // Overwriting bob's document, with the owner left out (it would be filled in as alice) or given.
    expect(run('put', { collection: 'items', doc: { id: 'alice/i1', n: 2 } }, { docs })).toEqual(notFound);
    expect(run('put', { collection: 'items', doc: { id: 'alice/i1', owner: 'alice' } }, { docs })).toEqual(notFound);
    // Creating a document in someone else's name.
    expectFailure(run('put', { collection: 'carts', doc: { id: 'alice/c2', owner: 'bob' } }, { docs }), 'FORBIDDEN');
    expectFailure(run('put', { collection: 'carts', doc: { id: 'alice/c2', owner: null } }, { docs }), 'FORBIDDEN');
  });

  it('lets the owner write their own documents', () => {
    const docs = { 'items/alice/i1': { id: 'alice/i1', owner: 'alice', n: 1 } };
    expect(writesOf(run('inc', { collection: 'items', id: 'alice/i1', field: 'n', by: 1 }, { docs }))).toEqual([
      { collection: 'items', id: 'alice/i1', doc: { id: 'alice/i1', owner: 'alice', n: 2 }, owner: 'alice' },
    ]);
    expect(writesOf(run('delete', { collection: 'items', id: 'alice/i1' }, { docs }))).toEqual([
      { collection: 'items', id: 'alice/i1', doc: null, owner: 'alice' },
    ]);
  });
});

describe('runMutation: owner-namespaced ids', () => {
  const mallory: MutatorContext = { userId: 'mallory', roles: [], side: 'server' };

  it("refuses an owner-only id outside the writer's namespace, whatever mutator writes it", () => {
    for (const id of ['cart:victim', 'victim/cart', 'mallory', 'mallory/', 'Mallory/cart', 'mallory%2Fx']) {
      expectFailure(
        run('put', { collection: 'carts', doc: { id, lines: [] } }, { ctx: mallory }),
        'FORBIDDEN',
        /must start with the owner's prefix 'mallory\/'.*ownedId/,
      );
    }
    // An app mutator too: checkout's order id comes from the client.
    const docs = { 'products/p1': product('p1') };
    const order = { orderId: 'victim/o1', lines: [{ productId: 'p1', qty: 1 }], at: 1 };
    expectFailure(run('checkout', order, { docs, ctx: mallory }), 'FORBIDDEN', /prefix 'mallory\/'/);
    expect(writesOf(run('checkout', { ...order, orderId: 'mallory/o1' }, { docs, ctx: mallory }))).toHaveLength(2);
  });

  it('answers the same whether or not the id outside the namespace is taken', () => {
    const docs = { 'carts/victim/cart': { id: 'victim/cart', owner: 'victim', lines: [] } };
    const put = { collection: 'carts', doc: { id: 'victim/cart', lines: [] } };
    expect(run('put', put, { docs, ctx: mallory })).toEqual(run('put', put, { ctx: mallory }));
    const del = { collection: 'carts', id: 'victim/cart' };
    expect(run('delete', del, { docs, ctx: mallory })).toEqual(run('delete', del, { ctx: mallory }));
  });

  it("percent-encodes the user id, so no user id reaches another user's namespace", () => {
    const slashy: MutatorContext = { userId: 'a/b', roles: [], side: 'server' };
    expectFailure(run('put', { collection: 'items', doc: { id: 'a/b/x' } }, { ctx: slashy }), 'FORBIDDEN', /'a%2Fb\/'/);
    expect(writesOf(run('put', { collection: 'items', doc: { id: 'a%2Fb/x' } }, { ctx: slashy }))[0]?.owner).toBe(
      'a/b',
    );
    const a: MutatorContext = { userId: 'a', roles: [], side: 'server' };
    expectFailure(run('put', { collection: 'items', doc: { id: 'a%2Fb/x' } }, { ctx: a }), 'FORBIDDEN');
  });

  it("the storefront mutators write the cart in the user's namespace", () => {
    const docs = { 'products/p1': product('p1') };
    expect(writesOf(run('cartAdd', { productId: 'p1', qty: 2 }, { docs, ctx: mallory }))).toEqual([
      {
        collection: 'carts',
        id: 'mallory/cart',
        doc: { id: 'mallory/cart', owner: 'mallory', lines: [{ productId: 'p1', qty: 2 }] },
        owner: 'mallory',
      },
    ]);
  });

  it('lets an owner delete their own document with an id from before namespaces', () => {
    const docs = { 'carts/cart:alice': { id: 'cart:alice', owner: 'alice', lines: [] } };
    expect(writesOf(run('delete', { collection: 'carts', id: 'cart:alice' }, { docs }))).toEqual([
      { collection: 'carts', id: 'cart:alice', doc: null, owner: 'alice' },
    ]);
    expectFailure(run('patch', { collection: 'carts', id: 'cart:alice', set: { n: 1 } }, { docs }), 'FORBIDDEN');
  });

  it("a system write puts an owner-only document only in its owner's namespace", () => {
    const system: RunContext = { userId: '~system', roles: [], side: 'server', system: true };
    const order = { id: 'bob/o1', owner: 'alice', total: 3 };
    expectFailure(run('put', { collection: 'orders', doc: order }, { ctx: system }), 'FORBIDDEN', /prefix 'alice\/'/);
  });
});

describe('runMutation: validation and limits', () => {
  it('an unknown mutator is UNKNOWN_MUTATOR, including names inherited from Object', () => {
    for (const name of ['nope', 'toString', 'constructor', '__proto__', 'hasOwnProperty']) {
      expectFailure(run(name, {}), 'UNKNOWN_MUTATOR');
    }
  });

  it('arguments that do not match the mutator are INVALID_ARGS', () => {
    for (const args of [null, 42, 'put', [], {}, { collection: 'notes' }, { collection: 'notes', doc: 'x' }]) {
      expectFailure(run('put', args), 'INVALID_ARGS', /'put'/);
    }
    expectFailure(run('put', { collection: 'notes', doc: { text: 'no id' } }), 'INVALID_ARGS');
    expectFailure(run('put', { collection: 'notes', doc: { id: '' } }), 'INVALID_ARGS');
    expectFailure(run('inc', { collection: 'notes', id: 'n1', field: 'likes', by: '1' }), 'INVALID_ARGS', /by/);
    expectFailure(run('checkout', { orderId: 'o1', lines: [], at: 1 }), 'INVALID_ARGS', /lines/);
  });

  it('a product with a negative price is INVALID_DOCUMENT', () => {
    expectFailure(
      run('put', { collection: 'products', doc: product('p1', { price: -1 }) }, { ctx: staff }),
      'INVALID_DOCUMENT',
      /products\/p1\.price: price cannot be negative/,
    );
    expectFailure(
      run('put', { collection: 'products', doc: { id: 'p1', name: 'no price' } }, { ctx: staff }),
      'INVALID_DOCUMENT',
    );
  });

  it('a document over maxDocBytes is TOO_LARGE; one at the limit passes', () => {
    const doc = { id: 'n1', text: 'x'.repeat(100) };
    const size = jsonByteLength(doc);
    expect(writesOf(run('put', { collection: 'notes', doc }, { maxDocBytes: size }))).toEqual([
      { collection: 'notes', id: 'n1', doc, owner: null },
    ]);
    expectFailure(run('put', { collection: 'notes', doc }, { maxDocBytes: size - 1 }), 'TOO_LARGE', /notes\/n1/);
  });

  it('an increment that overflows to Infinity is INVALID_DOCUMENT', () => {
    const docs = { 'notes/n1': { id: 'n1', likes: Number.MAX_VALUE } };
    expectFailure(
      run('inc', { collection: 'notes', id: 'n1', field: 'likes', by: Number.MAX_VALUE }, { docs }),
      'INVALID_DOCUMENT',
    );
  });

  it('counts the size in UTF-8 bytes', () => {
    const doc = { id: 'n1', text: '\u00e9'.repeat(50) };
    expectFailure(run('put', { collection: 'notes', doc }, { maxDocBytes: JSON.stringify(doc).length }), 'TOO_LARGE');
  });

  it('the stock-non-negative rule rejects negative stock with REJECTED', () => {
    expectFailure(
      run('put', { collection: 'products', doc: product('p1', { stock: -1 }) }, { ctx: staff }),
      'REJECTED',
      /stock-non-negative/,
    );
    const docs = { 'products/p1': product('p1', { stock: 2 }) };
    expectFailure(
      run('inc', { collection: 'products', id: 'p1', field: 'stock', by: -3 }, { docs, ctx: staff }),
      'REJECTED',
      /stock cannot go below 0/,
    );
    expect(
      writesOf(run('inc', { collection: 'products', id: 'p1', field: 'stock', by: -2 }, { docs, ctx: staff }))[0]?.doc,
    ).toEqual(product('p1', { stock: 0 }));
  });
});

describe('runMutation: buffering and failures', () => {
  const failing = defineSchema({
    name: 'run-mutation-test',
    version: 1,
    collections: {
      notes: { read: 'public', write: 'any', indexes: [] },
      mine: { read: 'owner', write: 'owner', indexes: [] },
    },
    mutators: {
      putThenThrow: defineMutator({
        name: 'putThenThrow',
        args: z.object({ thrown: z.enum(['error', 'tideline', 'string']) }),
        run(tx, { thrown }) {
          tx.put('notes', { id: 'n1', text: 'written before the failure' });
          tx.delete('notes', 'n2');
          if (thrown === 'tideline') throw new TidelineError('NOT_FOUND', 'gave up');
          if (thrown === 'string') throw 'plain string' as unknown;
          throw new Error('boom');
        },
      }),
      throwNullProto: defineMutator({
        name: 'throwNullProto',
        args: z.object({}),
        run() {
          // Something without a prototype, so without toString.
          throw Object.create(null) as unknown;
        },
      }),
      readsThrough: defineMutator({
        name: 'readsThrough',
        args: z.object({ id: z.string() }),
        run(tx, { id }) {
          const doc = tx.get('notes', id);
          tx.put('notes', { id, seen: doc !== undefined });
        },
      }),
      putInvalid: defineMutator({
        name: 'putInvalid',
        args: z.object({}),
        run(tx) {
          tx.put('notes', { text: 'no id' } as unknown as Doc);
        },
      }),
      readOwnWrites: defineMutator({
        name: 'readOwnWrites',
        args: z.object({}),
        run(tx) {
          tx.put('notes', { id: 'a', n: 1 });
          const a = tx.get('notes', 'a');
          if (a) {
            a['n'] = 99; // a copy: changing it changes nothing
            tx.put('notes', { id: 'b', n: a['n'] === 99 && tx.get('notes', 'a')?.['n'] === 1 ? 'copied' : 'shared' });
          }
          tx.delete('notes', 'a');
          tx.put('notes', { id: 'c', aGone: tx.get('notes', 'a') === undefined });
        },
      }),
    },
  });
  const runFailing = (name: string, args: JsonValue, read: ReadFn = reader()): RunOutcome =>
    runMutation(failing, name, args, alice, read, DEFAULT_LIMITS);

  it('a mutator that throws after writing returns no writes', () => {
    const read = reader({ 'notes/n2': { id: 'n2' } });
    const error = runFailing('putThenThrow', { thrown: 'error' }, read);
    expectFailure(error, 'REJECTED', /mutator 'putThenThrow' failed: boom/);
    expect(error).not.toHaveProperty('writes');
    expectFailure(runFailing('putThenThrow', { thrown: 'tideline' }, read), 'NOT_FOUND', /gave up/);
    expectFailure(runFailing('putThenThrow', { thrown: 'string' }, read), 'REJECTED', /plain string/);
  });

  it('a mutator reads its own buffered writes, as copies', () => {
    expect(writesOf(runFailing('readOwnWrites', {}, reader({ 'notes/a': { id: 'a', n: 0 } })))).toEqual([
      { collection: 'notes', id: 'a', doc: null, owner: null },
      { collection: 'notes', id: 'b', doc: { id: 'b', n: 'copied' }, owner: null },
      { collection: 'notes', id: 'c', doc: { id: 'c', aGone: true }, owner: null },
    ]);
  });

  it('a document without an id written by an app mutator is INVALID_DOCUMENT', () => {
    expectFailure(runFailing('putInvalid', {}), 'INVALID_DOCUMENT');
  });

  it('a probe run skips the checks of what it puts, reads back its puts and every key it wrote, and writes nothing', () => {
    const seen: string[] = [];
    const read: ReadFn = (c, id) => {
      seen.push(`${c}/${id}`);
      return undefined;
    };
    // Invalid (no id), yet the probe goes on to read what the mutator reads after it.
    expect(runMutation(failing, 'putInvalid', {}, alice, read, DEFAULT_LIMITS, { probe: true })).toEqual({
      ok: true,
      writes: [],
    });
    expect(seen).toEqual(['notes/undefined']);
    seen.length = 0;
    const probe = runMutation(failing, 'readOwnWrites', {}, alice, read, DEFAULT_LIMITS, { probe: true });
    expect(probe).toEqual({ ok: true, writes: [] });
    // Its own puts read back as written (no store read); then each written key once, as a real run's checks do.
    expect(seen).toEqual(['notes/a', 'notes/b', 'notes/c']);
  });

  it('rethrows MissingRead from the reader, for the caller to load the document and run again', () => {
    const missing = new MissingRead('notes', 'n1');
    const read: ReadFn = () => {
      throw missing;
    };
    expect(() => runFailing('readsThrough', { id: 'n1' }, read)).toThrow(missing);
    expect(() => run('patch', { collection: 'notes', id: 'n1', set: { a: 1 } }, { read })).toThrow(missing);
    expect(() => run('checkout', { orderId: 'o1', lines: [{ productId: 'p1', qty: 1 }], at: 1 }, { read })).toThrow(
      MissingRead,
    );
    // A reader that has the document the first time but not for the final access check aborts too.
    let calls = 0;
    const flaky: ReadFn = (c, id) => {
      calls += 1;
      if (calls > 1) throw new MissingRead(c, id);
      return { id, text: 'hi' };
    };
    expect(() => runFailing('readsThrough', { id: 'n1' }, flaky)).toThrow(MissingRead);
  });

  it('rethrows a ReadFailure (an I/O error under the reader) with its cause', () => {
    const cause = new Error('disk on fire');
    const failure = new ReadFailure('read failed', { cause });
    expect(failure).toBeInstanceOf(AbortRun);
    const read: ReadFn = () => {
      throw failure;
    };
    expect(() => runFailing('readsThrough', { id: 'n1' }, read)).toThrow(failure);
  });

  it('turns any other failure into a rejection and never throws', () => {
    const outcomes: RunOutcome[] = [
      runFailing('readsThrough', { id: 'n1' }, () => {
        throw new TidelineError('FORBIDDEN', 'reader says no');
      }),
      runFailing('readsThrough', { id: 'n1' }, () => {
        throw new RangeError('reader bug');
      }),
    ];
    expect(outcomes.map((o) => (o.ok ? 'ok' : o.error.code))).toEqual(['FORBIDDEN', 'REJECTED']);
  });

  it('turns a thrown value that cannot be turned into a string into a rejection too', () => {
    let outcome: RunOutcome | undefined;
    expect(() => {
      outcome = runFailing('throwNullProto', {});
    }).not.toThrow();
    expect(outcome && !outcome.ok ? outcome.error.code : 'no rejection').toBe('REJECTED');
  });
});

describe('runMutation: the system principal (server-side writes)', () => {
  const system: RunContext = { userId: '~system', roles: [], side: 'server', system: true };

  it('writes any collection, whatever its write access', () => {
    const order = { id: 'alice/o1', owner: 'alice', total: 3 };
    expect(writesOf(run('put', { collection: 'orders', doc: order }, { ctx: system }))).toEqual([
      { collection: 'orders', id: 'alice/o1', doc: order, owner: 'alice' },
    ]);
    expect(writesOf(run('put', { collection: 'products', doc: product('p1') }, { ctx: system }))).toEqual([
      { collection: 'products', id: 'p1', doc: product('p1'), owner: null },
    ]);
  });

  it("reads and writes any user's owner-only documents, for the owner they name", () => {
    const docs = { 'items/bob/i1': { id: 'bob/i1', owner: 'bob', n: 1 } };
    expect(
      writesOf(run('inc', { collection: 'items', id: 'bob/i1', field: 'n', by: 1 }, { docs, ctx: system })),
    ).toEqual([{ collection: 'items', id: 'bob/i1', doc: { id: 'bob/i1', owner: 'bob', n: 2 }, owner: 'bob' }]);
    // A tombstone keeps the owner, so the delete reaches bob's replica.
    expect(writesOf(run('delete', { collection: 'items', id: 'bob/i1' }, { docs, ctx: system }))).toEqual([
      { collection: 'items', id: 'bob/i1', doc: null, owner: 'bob' },
    ]);
  });

  it('needs an owner on a new owner-only document, and never moves one to another user', () => {
    const docs = { 'items/bob/i1': { id: 'bob/i1', owner: 'bob', n: 1 } };
    expectFailure(
      run('put', { collection: 'items', doc: { id: 'bob/i2' } }, { ctx: system }),
      'INVALID_DOCUMENT',
      /owner/,
    );
    expectFailure(
      run('put', { collection: 'items', doc: { id: 'bob/i1', owner: 'alice' } }, { docs, ctx: system }),
      'FORBIDDEN',
    );
  });

  it('still checks document schemas and rules', () => {
    expectFailure(
      run('put', { collection: 'products', doc: product('p1', { price: -1 }) }, { ctx: system }),
      'INVALID_DOCUMENT',
    );
    expectFailure(
      run('put', { collection: 'products', doc: product('p1', { stock: -1 }) }, { ctx: system }),
      'REJECTED',
      /stock-non-negative/,
    );
  });
});

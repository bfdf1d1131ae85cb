import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import * as protocol from './index';
import {
  changeSchema,
  changesSchema,
  helloAckSchema,
  helloSchema,
  mutationSchema,
  pageAckSchema,
  PROTOCOL_VERSION,
  pushAckSchema,
  pushSchema,
  snapshotSchema,
  wireErrorSchema,
} from './index';

/**
 * The wire, pinned (as rocicorp/mono pins its protocol schemas). Every zod
 * schema exported from shared/protocol is converted to JSON Schema and hashed;
 * the hashes and PROTOCOL_VERSION are compared with the pins below, so a schema
 * cannot change, appear or disappear by accident.
 *
 * JSON Schema does not show `.refine` checks (a document's id, finite numbers):
 * the payload tests further down pin those by behaviour.
 */
const PINNED = {
  version: 4,
  schemas: {
    changeSchema: 'f876f76c8ad99a9fc75a3f074d87a876ae7f26a358d35eeb345a762ba4a3bdaf',
    changesSchema: '2749088bc05e590bcaac1fbb2bdf479d7d49aca7e4db74330ffc6be5557f769f',
    clientIdSchema: '5dfea93be90f81171852411966ecc71dd007762753be00a466836d1fa95987c8',
    followAckSchema: 'afd1cfa1a00df4cfc0ab0f20b4a35baec28b13749fef6e02fd51e0c43703e781',
    followSchema: '20f49f98bc8c4b899e3e43889f84e8ce10d949cc5ad4943d7fcfe1c2b76f89f3',
    helloAckSchema: '392c5f465737e7e253cec1a2b2b9f0b4bd7bb562e334cb25dddbc2f88b5c979b',
    helloOkSchema: 'ae8de63323dc6b7df3211b5ea82cc32d571fc51541c306d5b7ca968067757f6a',
    helloSchema: 'b360fe94c8b0d3ba1ab07ee05e616248d7fdeb4e75308ae7b69fa1afd605b675',
    lsnSchema: '1989c66f1d82c8ae4b213d2ea188b53409c578dd8931b8ee489de4a146ae1c2f',
    mutationResultSchema: '788bad5ced93a1d36360dca661e51d9cbfbd69e1e1a962bcf91dfabb5340ac18',
    mutationSchema: 'db20f70d7ef1cb53065aabc4514dc1d159e6255d6a1ccc0e03a6f7d179f4bea1',
    outcomeEntrySchema: '28faf1a3298278bf630a7d9d3e1dd56e7e41028989abce17ed231fe3bdb37fec',
    pageAckSchema: '42f542ec6f2b47248f3ff9f1e10be727a47c7a4ae89efe5f01a17c1c75c35df0',
    pushAckSchema: 'fa828036de8c3e3979427a7fe9a802a43576833250aebc8144fda79b7eb41cfa',
    pushSchema: 'c6b072374c8b2c88dadb6decb591c8b2305ed4fb2d370ee5411779639243497d',
    rejectedSchema: 'b71422e8d290073f50812f1d7e60e82331ffe575eb70a2b5f46602f6d6c276f3',
    replAckSchema: '249533178aa924660e089bb1071f2bfe4de35c00496cb9c1aa120362039f3209',
    replChangesSchema: 'ea96732787fdd97f74b5f8ac6969aa043702ec6ddaf17985caa8d28ed7afc430',
    replSnapshotSchema: 'a3d57dc61e360ec0c01508dd966d41d8f5f93f893702e15abec50b5245401160',
    seqSchema: '7dd54a9d75bddf5a255fc74a87a59b447d9a977a679a456870a001a79c771e98',
    snapshotSchema: '12b1f89f18e623d7cac38230706bd5631e46c5205b7b96aab473820f5ee1c9ba',
    storedDocSchema: '67e4b04927b8ab832aabcec33b8222595a535ca049dcee4d02c7caf662f3ba53',
    termStartSchema: 'cf4f42c25b109e46987ff676f88f5214df1268535f5dcc5e7b9db69ba67f7428',
    wireErrorSchema: 'dad66b5b8cd520d1a9cdb337558a7e3ecf12f801a2e00c3514188e00f740e661',
  },
};

function wireHashes(): Record<string, string> {
  const hashes: Record<string, string> = {};
  const names = Object.keys(protocol).sort();
  for (const name of names) {
    const value: unknown = protocol[name as keyof typeof protocol];
    if (!(value instanceof z.ZodType)) continue;
    const json = JSON.stringify(z.toJSONSchema(value, { unrepresentable: 'any' }));
    hashes[name] = createHash('sha256').update(json).digest('hex');
  }
  return hashes;
}

describe('the wire protocol', () => {
  it('matches the pinned schema hashes for this PROTOCOL_VERSION', () => {
    const current = { version: PROTOCOL_VERSION, schemas: wireHashes() };
    expect(
      current,
      [
        'The /sync wire schemas in shared/protocol changed (or PROTOCOL_VERSION did).',
        'If you meant to change the wire: bump PROTOCOL_VERSION in shared/protocol/version.ts, add a one-line',
        'history entry there saying what changed, then copy the new version and hashes into PINNED in',
        'shared/protocol/protocol.test.ts. If you did not mean to, undo the schema change.',
        '(A zod upgrade can change the JSON Schema it produces; check that the wire did not change and update the pins.)',
      ].join('\n'),
    ).toEqual(PINNED);
  });

  it('pins every message schema', () => {
    expect(Object.keys(wireHashes())).toEqual(
      expect.arrayContaining([
        'helloSchema',
        'helloAckSchema',
        'pushSchema',
        'pushAckSchema',
        'changesSchema',
        'snapshotSchema',
        'changeSchema',
        'mutationSchema',
        'wireErrorSchema',
        'pageAckSchema',
      ]),
    );
  });
});

const wireError = { code: 'REJECTED', message: 'stock cannot go below 0', retryable: false };
const change = {
  lsn: 7,
  term: 1,
  collection: 'notes',
  id: 'n1',
  doc: { id: 'n1', text: 'hi' },
  owner: null,
  clientId: 'client-0001',
  seq: 3,
  ts: 1_700_000_000_000,
};
const mutation = { seq: 1, name: 'put', args: { collection: 'notes', doc: { id: 'n1', text: 'hi' } } };

interface Case {
  schema: z.ZodType;
  valid: unknown[];
  invalid: Record<string, unknown>;
}

const without = <T extends object>(value: T, key: keyof T): Partial<T> => {
  const copy: Partial<T> = { ...value };
  delete copy[key];
  return copy;
};

const hello = { protocol: 1, clientId: 'client-0001', token: 'tok', checkpoint: 0, pendingFrom: 1, checkpointTerm: 0 };
const helloOk = { ok: true, serverId: 's1', term: 1, headLsn: 10, horizon: 0, lastSeq: 0, userId: 'alice' };

const cases: Record<string, Case> = {
  helloSchema: {
    schema: helloSchema,
    valid: [hello, { ...hello, clientId: 'A-b_c-0123456789', checkpoint: 42, pendingFrom: 9 }],
    invalid: {
      'no clientId': without(hello, 'clientId'),
      'no token': without(hello, 'token'),
      'no checkpoint': without(hello, 'checkpoint'),
      'a client id with a space': { ...hello, clientId: 'client 0001' },
      'a client id with a slash': { ...hello, clientId: 'client/../0001' },
      'a client id with a non-ASCII letter': { ...hello, clientId: 'cliént-0001' },
      'a client id with a newline': { ...hello, clientId: 'client-0001\n' },
      'a short client id': { ...hello, clientId: 'abc' },
      'a long client id': { ...hello, clientId: 'a'.repeat(65) },
      'a negative checkpoint': { ...hello, checkpoint: -1 },
      'a fractional checkpoint': { ...hello, checkpoint: 1.5 },
      'a string protocol': { ...hello, protocol: '1' },
      'pendingFrom 0': { ...hello, pendingFrom: 0 },
      'a huge token': { ...hello, token: 'x'.repeat(4097) },
      null: null,
      'a string': 'hello',
    },
  },
  helloAckSchema: {
    schema: helloAckSchema,
    valid: [helloOk, { ok: false, error: wireError }],
    invalid: {
      'ok without its fields': { ok: true },
      'no headLsn': without(helloOk, 'headLsn'),
      'a negative headLsn': { ...helloOk, headLsn: -1 },
      'a negative term': { ...helloOk, term: -1 },
      'not ok without an error': { ok: false },
      'ok as a string': { ...helloOk, ok: 'true' },
      'an unknown error code': { ok: false, error: { ...wireError, code: 'OOPS' } },
    },
  },
  pushSchema: {
    schema: pushSchema,
    valid: [{ mutations: [mutation, { ...mutation, seq: 2, args: null }] }],
    invalid: {
      'no mutations': {},
      'an empty push': { mutations: [] },
      'mutations that are not an array': { mutations: mutation },
      'a bad mutation inside': { mutations: [mutation, { ...mutation, seq: 0 }] },
    },
  },
  mutationSchema: {
    schema: mutationSchema,
    valid: [mutation, { seq: 9, name: 'checkout', args: [1, 'two', true, null, { three: [3.5] }] }],
    invalid: {
      'no args': without(mutation, 'args'),
      'no name': without(mutation, 'name'),
      'seq 0': { ...mutation, seq: 0 },
      'a negative seq': { ...mutation, seq: -1 },
      'a fractional seq': { ...mutation, seq: 1.5 },
      'a string seq': { ...mutation, seq: '1' },
      'an empty name': { ...mutation, name: '' },
      'a long name': { ...mutation, name: 'x'.repeat(65) },
      'NaN in args': { ...mutation, args: { n: Number.NaN } },
      'Infinity in args': { ...mutation, args: [Number.POSITIVE_INFINITY] },
      'undefined in args': { ...mutation, args: { n: undefined } },
    },
  },
  pushAckSchema: {
    schema: pushAckSchema,
    valid: [
      {
        ok: true,
        results: [
          { seq: 1, status: 'applied', lsn: 11 },
          { seq: 2, status: 'duplicate' },
          { seq: 3, status: 'duplicate', error: wireError },
          { seq: 4, status: 'rejected', error: wireError },
        ],
      },
      { ok: false, error: { ...wireError, code: 'NOT_PRIMARY', retryable: true, primary: 'http://b:8080' } },
    ],
    invalid: {
      'no results': { ok: true },
      'an unknown status': { ok: true, results: [{ seq: 1, status: 'maybe' }] },
      'applied without an lsn': { ok: true, results: [{ seq: 1, status: 'applied' }] },
      'applied at a negative lsn': { ok: true, results: [{ seq: 1, status: 'applied', lsn: -1 }] },
      'rejected without an error': { ok: true, results: [{ seq: 1, status: 'rejected' }] },
      'a result for seq 0': { ok: true, results: [{ seq: 0, status: 'duplicate' }] },
      'not ok without an error': { ok: false },
    },
  },
  changeSchema: {
    schema: changeSchema,
    valid: [change, { ...change, doc: null, owner: 'alice', clientId: null, seq: null }],
    invalid: {
      'no lsn': without(change, 'lsn'),
      'no owner': without(change, 'owner'),
      'no doc': without(change, 'doc'),
      'a negative lsn': { ...change, lsn: -1 },
      'a fractional lsn': { ...change, lsn: 2.5 },
      'a string lsn': { ...change, lsn: '7' },
      'a negative term': { ...change, term: -1 },
      'an empty collection': { ...change, collection: '' },
      'an empty id': { ...change, id: '' },
      'a doc without an id': { ...change, doc: { text: 'hi' } },
      'a doc with an empty id': { ...change, doc: { id: '' } },
      'a doc with a numeric id': { ...change, doc: { id: 1 } },
      'a doc that is an array': { ...change, doc: [{ id: 'n1' }] },
      'a string ts': { ...change, ts: 'now' },
    },
  },
  changesSchema: {
    schema: changesSchema,
    valid: [
      { from: 0, to: 7, changes: [change] },
      { from: 7, to: 9, changes: [], lastSeq: 3, rejected: [{ seq: 2, error: wireError }] },
    ],
    invalid: {
      'no changes': { from: 0, to: 7 },
      'a negative from': { from: -1, to: 7, changes: [] },
      'a string to': { from: 0, to: '7', changes: [] },
      'a change with a negative lsn': { from: 0, to: 7, changes: [{ ...change, lsn: -7 }] },
      'a rejection for seq 0': { from: 0, to: 7, changes: [], rejected: [{ seq: 0, error: wireError }] },
      'a rejection without an error': { from: 0, to: 7, changes: [], rejected: [{ seq: 1 }] },
    },
  },
  snapshotSchema: {
    schema: snapshotSchema,
    valid: [
      {
        asOf: 40,
        page: 0,
        docs: [{ collection: 'notes', doc: { id: 'n1', text: 'hi' } }],
        done: true,
        lastSeq: 0,
        rejected: [],
      },
    ],
    invalid: {
      'no done': { asOf: 40, page: 0, docs: [], lastSeq: 0, rejected: [] },
      'no rejected': { asOf: 40, page: 0, docs: [], done: false, lastSeq: 0 },
      'a negative asOf': { asOf: -40, page: 0, docs: [], done: false, lastSeq: 0, rejected: [] },
      'a negative page': { asOf: 40, page: -1, docs: [], done: false, lastSeq: 0, rejected: [] },
      'a tombstone among the docs': {
        asOf: 40,
        page: 0,
        docs: [{ collection: 'notes', doc: null }],
        done: true,
        lastSeq: 0,
        rejected: [],
      },
      'a doc without an id': {
        asOf: 40,
        page: 0,
        docs: [{ collection: 'notes', doc: { text: 'hi' } }],
        done: true,
        lastSeq: 0,
        rejected: [],
      },
    },
  },
  wireErrorSchema: {
    schema: wireErrorSchema,
    valid: [wireError, { code: 'NOT_PRIMARY', message: 'go there', retryable: true, primary: 'http://b:8080' }],
    invalid: {
      'an unknown code': { ...wireError, code: 'NOPE' },
      'no retryable': without(wireError, 'retryable'),
      'no message': without(wireError, 'message'),
      'a numeric message': { ...wireError, message: 42 },
      'a numeric primary': { ...wireError, primary: 1 },
    },
  },
  pageAckSchema: {
    schema: pageAckSchema,
    valid: [{ ok: true }, { ok: false }],
    invalid: { 'no ok': {}, 'ok as a string': { ok: 'true' }, 'ok as a number': { ok: 1 }, null: null },
  },
};

describe('the wire schemas', () => {
  for (const [name, { schema, valid, invalid }] of Object.entries(cases)) {
    describe(name, () => {
      it('accepts well-formed payloads', () => {
        for (const payload of valid) {
          const result = schema.safeParse(payload);
          expect(result.success, `${JSON.stringify(payload)}: ${result.error?.message ?? ''}`).toBe(true);
        }
      });

      it('rejects malformed payloads', () => {
        for (const [label, payload] of Object.entries(invalid)) {
          expect(schema.safeParse(payload).success, `${name} accepted ${label}`).toBe(false);
        }
      });
    });
  }
});

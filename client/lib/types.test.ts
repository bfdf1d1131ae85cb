import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import type { ErrorCode } from '../../shared/errors';
import type { Doc } from '../../shared/json';
import { defineMutator } from '../../shared/mutators/types';
import { defineCollection, defineSchema } from '../../shared/schema/define-schema';
import type { AppSchema, DocOf } from '../../shared/schema/define-schema';
import type { Mutate, MutationHandle, Tideline } from './api';

/**
 * Type tests: `tsc --noEmit -p .` (in `npm test`) checks this file, and every
 * `@ts-expect-error` line fails the check if the call it marks compiles, that
 * is if inference of document or argument types has broken. vitest runs the
 * `expectTypeOf` assertions, which are type-level too.
 */

const todoDoc = z.object({ id: z.string(), title: z.string(), done: z.boolean(), votes: z.number() });

const addTodo = defineMutator({
  name: 'addTodo',
  args: z.object({ id: z.string(), title: z.string(), done: z.boolean().default(false) }),
  run(tx, args) {
    // `run` gets the parsed output: the default has been filled in.
    expectTypeOf(args.done).toEqualTypeOf<boolean>();
    tx.put('todos', { ...args, votes: 0 });
  },
});

const schema = defineSchema({
  name: 'todo-types',
  version: 1,
  collections: {
    todos: defineCollection({
      read: 'public',
      write: 'any',
      indexes: ['done'],
      doc: todoDoc,
      rules: [{ name: 'titled', check: (todo) => todo.title.length > 0, message: 'a todo has a title' }],
    }),
    notes: { read: 'public', write: 'any', indexes: [] },
  },
  mutators: { addTodo },
});

type Todo = z.output<typeof todoDoc>;

/** Never called: it only has to compile, or fail to where marked. */
async function uses(db: Tideline<typeof schema>): Promise<void> {
  expectTypeOf<DocOf<typeof schema, 'todos'>>().toEqualTypeOf<Todo>();
  expectTypeOf<DocOf<typeof schema, 'notes'>>().toEqualTypeOf<Doc>();
  // A schema known only as an AppSchema has plain documents.
  expectTypeOf<DocOf<AppSchema, string>>().toEqualTypeOf<Doc>();
  expectTypeOf(await db.collection('todos').get('t1')).toEqualTypeOf<Todo | undefined>();
  expectTypeOf(await db.collection('notes').get('n1')).toEqualTypeOf<Doc | undefined>();
  expectTypeOf(await db.collection('todos').table.toArray()).toEqualTypeOf<Todo[]>();
  // @ts-expect-error: no such collection
  db.collection('todo');
  // @ts-expect-error: a todo has no `titel`
  void (await db.collection('todos').get('t1'))?.titel;

  expectTypeOf(db.mutate.addTodo)
    .parameter(0)
    .toEqualTypeOf<{ id: string; title: string; done?: boolean | undefined }>();
  expectTypeOf(await db.mutate.addTodo({ id: 't1', title: 'milk' })).toEqualTypeOf<MutationHandle>();
  // @ts-expect-error: a misspelt argument
  await db.mutate.addTodo({ idd: 42 });
  // @ts-expect-error: a wrong argument type
  await db.mutate.addTodo({ id: 't1', title: 7 });
  expectTypeOf<'addTodos' extends keyof Mutate<typeof schema> ? true : false>().toEqualTypeOf<false>();

  await db.mutate.put({ collection: 'todos', doc: { id: 't1', title: 'milk', done: false, votes: 0 } });
  await db.mutate.put({ collection: 'notes', doc: { id: 'n1', anything: [1, 'two'] } });
  // @ts-expect-error: a todo needs every field of its schema
  await db.mutate.put({ collection: 'todos', doc: { id: 't1', title: 'milk' } });
  // @ts-expect-error: no such collection
  await db.mutate.put({ collection: 'todo', doc: { id: 't1' } });
  await db.mutate.patch({ collection: 'todos', id: 't1', set: { done: true } });
  // @ts-expect-error: `done` is a boolean
  await db.mutate.patch({ collection: 'todos', id: 't1', set: { done: 'yes' } });
  await db.mutate.inc({ collection: 'todos', id: 't1', field: 'votes', by: 1 });
  // @ts-expect-error: `title` is not a number
  await db.mutate.inc({ collection: 'todos', id: 't1', field: 'title', by: 1 });
  await db.mutate.inc({ collection: 'notes', id: 'n1', field: 'likes', by: 1 });
  await db.mutate.delete({ collection: 'todos', id: 't1' });

  const state = await db.mutationState(1);
  if (state.status === 'rejected') expectTypeOf(state.code).toEqualTypeOf<ErrorCode>();
}

describe('client types', () => {
  it('are checked by tsc: this file compiles only while inference holds', () => {
    expectTypeOf(schema.name).toEqualTypeOf<'todo-types'>();
    expectTypeOf(uses).toBeFunction();
  });
});

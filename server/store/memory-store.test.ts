import { describe, expect, it } from 'vitest';
import { compareCodePoints, MemoryStore } from './memory-store';
import { runStoreTests } from './store-acceptance';

runStoreTests('MemoryStore', () => {
  let current = new MemoryStore({ serverId: 'memory-test' });
  return {
    store: current,
    reopen: () => {
      current = new MemoryStore({ data: current.data });
      return current;
    },
    cleanup: () => current.close(),
  };
});

describe('MemoryStore', () => {
  it('uses the server id it is given', () => {
    expect(new MemoryStore({ serverId: 'node-a' }).meta().serverId).toBe('node-a');
  });

  it('orders strings by code point, as SQLite orders UTF-8', () => {
    const words = ['b', 'a\u{1F600}', 'a\uFFFF', 'a', '', 'a\uE000', 'a\uD7FF'];
    const byBytes = [...words].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect([...words].sort(compareCodePoints)).toEqual(byBytes);
  });
});

import { randomUUID } from 'node:crypto';
import { runLocalStoreTests, localStoreTestSchema } from './local-store-acceptance';
import { MemoryLocalStore } from './memory-local-store';

// The in-memory double lives as long as its object: no reopen, so no durability tests.
runLocalStoreTests('MemoryLocalStore', async () => ({
  store: new MemoryLocalStore(localStoreTestSchema, () => randomUUID()),
  cleanup: () => {},
}));

import 'fake-indexeddb/auto';
import Dexie from 'dexie';
import { randomUUID } from 'node:crypto';
import { DexieLocalStore, openDexie } from './dexie-local-store';
import { localStoreTestSchema, runLocalStoreTests } from './local-store-acceptance';

let databases = 0;

runLocalStoreTests('DexieLocalStore on fake-indexeddb', async () => {
  const name = `local-store-test-${++databases}-${randomUUID()}`;
  const open = async (): Promise<DexieLocalStore> => {
    const db = openDexie(localStoreTestSchema, name);
    await db.open();
    return new DexieLocalStore(db, localStoreTestSchema, () => randomUUID());
  };
  const opened = [await open()];
  return {
    store: opened[0] as DexieLocalStore,
    reopen: async () => {
      const store = await open();
      opened.push(store);
      return store;
    },
    cleanup: async () => {
      for (const store of opened) store.close();
      await Dexie.delete(name);
    },
  };
});

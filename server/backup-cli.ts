import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { backupStoreFile, STORE_FILE } from './store/backup';

/**
 * `npm run backup -- --data ./data --out ./backup.db`: a consistent online
 * backup of a node's store, taken while the node keeps writing.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { data: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean' } },
  });
  if (values.help || !values.out) {
    console.log('Usage: npm run backup -- [--data ./data] --out FILE');
    process.exit(values.help ? 0 : 2);
  }
  const lsn = await backupStoreFile(join(values.data ?? './data', STORE_FILE), values.out);
  console.log(`backup written to ${values.out} at LSN ${lsn}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});

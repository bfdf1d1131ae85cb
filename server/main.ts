import { storeSchema } from '../shared/apps/store';
import { describeStartFailure, startServer } from './app';
import { HELP, parseConfig } from './config';
import { demoSeed } from './seed';
import { describeStore } from './store-spec';

/**
 * The demo: `node --import tsx server/main.ts --port 3000 --data ./data`
 * (`npm start`, `npm run dev`, `npm run replica`) serves the storefront's
 * schema and seeds its demo data into a new data directory (`npm start`
 * also passes `--dev-login`). Apps serve their own schema with `tideline serve`
 * (server/cli.ts). One process: `kill -9` of the pid a supervisor started
 * stops the server (the `tsx` CLI would run it in a child process that
 * outlives such a kill).
 */
async function main(): Promise<void> {
  let config;
  try {
    config = parseConfig(process.argv.slice(2), process.env);
    if (config !== 'help' && config.schemaModule !== null) {
      throw new Error(
        'server/main.ts serves the demo storefront; serve your own schema with: tideline serve --schema FILE',
      );
    }
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    console.error(HELP);
    process.exit(2);
  }
  if (config === 'help') {
    console.log(HELP);
    return;
  }
  const server = await startServer(config, storeSchema, { seed: config.seed ? demoSeed : null });
  // Tests and scripts read this line to learn the port.
  console.log(`tideline ${server.role()} listening on ${server.url} (${describeStore(config.store, config.dataDir)})`);
  const shutdown = (): void => {
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

main().catch((err: unknown) => {
  console.error(describeStartFailure(err));
  process.exit(1);
});

import { startServer } from './app';
import { HELP, parseConfig } from './config';

/**
 * Entry point: `node --import tsx server/main.ts --port 3000 --data ./data`.
 * One process: `kill -9` of the pid a supervisor started stops the server (the
 * `tsx` CLI would run it in a child process that outlives such a kill).
 */
async function main(): Promise<void> {
  let config;
  try {
    config = parseConfig(process.argv.slice(2), process.env);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    console.error(HELP);
    process.exit(2);
  }
  if (config === 'help') {
    console.log(HELP);
    return;
  }
  const server = await startServer(config);
  // Tests and scripts read this line to learn the port.
  console.log(`tideline ${server.role()} listening on ${server.url} (data in ${config.dataDir})`);
  const shutdown = (): void => {
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

#!/usr/bin/env node
import { describeStartFailure, startServer } from './app';
import { OPTIONS_HELP, parseConfig } from './config';
import { loadSchemaModule } from './load-schema';
import { describeStore } from './store-spec';

/**
 * The `tideline` command (the package's bin). `tideline serve --schema
 * ./schema.ts --data ./data --port 3000` serves the app's own schema: no demo
 * data, no development login. The demo storefront is `server/main.ts`.
 */

export const USAGE = `Usage: tideline <command> [options]

Commands:
  serve --schema FILE [options]   serve your app's schema (FILE: a .ts or .js module whose default
                                  export, or export named 'schema', is a defineSchema(...))
  help                            print this help

Options of serve:
  --schema FILE               the schema module (required)
${OPTIONS_HELP}

Examples:
  tideline serve --schema ./schema.ts --data ./data --port 3000
  TIDELINE_SECRET=… TIDELINE_ADMIN_TOKEN=… tideline serve --schema ./schema.ts \
    --store postgres://127.0.0.1:5432/shop --port 3001     (one node of several on PostgreSQL)`;

/** An exit code (0 done, 1 the server failed to start, 2 a usage error), or 'running' until a signal. */
async function main(argv: string[]): Promise<number | 'running'> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command !== 'serve') {
    console.error(`tideline: unknown command '${command}'\n\n${USAGE}`);
    return 2;
  }
  let config;
  let schemaModule;
  try {
    config = parseConfig(rest, process.env, { staticDir: null });
    if (config === 'help') {
      console.log(USAGE);
      return 0;
    }
    schemaModule = config.schemaModule;
    if (schemaModule === null) throw new Error('serve needs --schema FILE');
  } catch (err) {
    console.error(`tideline serve: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  try {
    const schema = await loadSchemaModule(schemaModule);
    const server = await startServer(config, schema);
    // Scripts and tests read this line to learn the port.
    console.log(
      `tideline ${server.role()} listening on ${server.url} (schema '${schema.name}' version ${schema.version}, ${describeStore(config.store, config.dataDir)})`,
    );
    const shutdown = (): void => {
      void server.close().then(() => process.exit(0));
    };
    process.on('SIGINT', shutdown);
    process.on('SIGTERM', shutdown);
    return 'running';
  } catch (err) {
    console.error(`tideline serve: ${describeStartFailure(err)}`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 'running') process.exit(code);
  },
  (err: unknown) => {
    console.error(describeStartFailure(err));
    process.exit(1);
  },
);

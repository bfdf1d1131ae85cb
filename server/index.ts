/**
 * `tideline/server`: run a Tideline server from your own code.
 *
 * TODO(lead, issue 8 merge): placeholder written by helper D (package) because
 * server/index.ts did not exist on main yet. B1's server/index.ts (createServer,
 * its options and handle, SYSTEM) replaces this file whole.
 */
export { startServer } from './app';
export type { RunningServer } from './app';
export { parseConfig } from './config';
export type { ServerConfig } from './config';

// Makes sure the PostgreSQL that the store tests use is reachable, as ensure-chromium.mjs does for Chromium.
//
// Tries $TIDELINE_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres, and checks that its user may
// create databases (each test file makes its own and drops it). When nothing answers and we are root on
// Debian/Ubuntu: installs Debian's `postgresql` package with apt-get if it is missing, starts its cluster with
// pg_ctlcluster (Debian's service scripts expect systemd; --skip-systemctl-redirect works without it), and, for a
// cluster this script just installed, lets local TCP connections in without a password (trust on 127.0.0.1 and
// ::1 only), which is what the default URL needs. Otherwise exits 1 and says how to get one.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';

const DEFAULT_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const fromEnv = process.env.TIDELINE_TEST_PG_URL;
const url = fromEnv ?? DEFAULT_URL;
const shown = url.replace(/:[^:@/]*@/, ':***@');

const HOW_TO =
  'Install and start PostgreSQL (Debian: sudo apt-get install -y postgresql, then ' +
  'sudo pg_ctlcluster --skip-systemctl-redirect 15 main start) and let postgres@127.0.0.1 in, ' +
  'or set TIDELINE_TEST_PG_URL=postgres://USER:PASSWORD@HOST:PORT/DB for a user that may CREATE DATABASE.';

/** @param {string} message */
function fail(message) {
  console.error(`ensure-postgres: ${message}`);
  process.exit(1);
}

/** @param {string} path */
function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * @param {string} command
 * @param {string[]} args
 */
function run(command, args) {
  console.error(`ensure-postgres: ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (result.error) fail(`${command} could not start: ${result.error.message}. ${HOW_TO}`);
  if (result.status !== 0)
    fail(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}. ${HOW_TO}`);
  return result.stdout;
}

/** @returns {Promise<{ ok: true, version: string } | { ok: false, error: string }>} */
async function probe() {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    const { rows } = await client.query(
      'SELECT version() AS version, (rolcreatedb OR rolsuper) AS can_create FROM pg_roles WHERE rolname = current_user',
    );
    if (rows[0]?.can_create !== true) return { ok: false, error: `the user of ${shown} may not CREATE DATABASE` };
    return { ok: true, version: String(rows[0].version).split(' on ')[0] };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Polls until PostgreSQL answers, for at most `ms` (a server that was just started takes a moment). */
async function waitUp(ms) {
  const deadline = Date.now() + ms;
  let last = await probe();
  while (!last.ok && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    last = await probe();
  }
  return last;
}

let state = await probe();
if (!state.ok) {
  if (fromEnv !== undefined) fail(`cannot use TIDELINE_TEST_PG_URL=${shown}: ${state.error}. ${HOW_TO}`);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = isExecutable('/usr/bin/apt-get');
  if (!isRoot || !hasApt) {
    const why = !hasApt ? 'apt-get is not available' : 'not running as root, so it cannot be installed or started';
    fail(`no usable PostgreSQL at ${shown} (${state.error}; ${why}). ${HOW_TO}`);
  }
  let installed = false;
  if (!isExecutable('/usr/bin/pg_ctlcluster')) {
    console.error(`ensure-postgres: no PostgreSQL at ${shown}; installing Debian's postgresql package`);
    run('apt-get', ['update']);
    run('apt-get', ['install', '-y', 'postgresql']);
    installed = true;
  }
  // pg_lsclusters: "15 main 5432 down postgres /var/lib/postgresql/15/main /var/log/...".
  const clusters = run('pg_lsclusters', ['--no-header'])
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 4);
  const cluster = clusters.find((f) => f[2] === '5432') ?? clusters[0];
  if (cluster === undefined) fail(`postgresql is installed but has no cluster (pg_lsclusters lists none). ${HOW_TO}`);
  const [version, name] = cluster;
  if (installed) {
    // Only a cluster made just now: the default URL has no password, so loopback connections are trusted.
    const hba = `/etc/postgresql/${version}/${name}/pg_hba.conf`;
    const rules = 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n';
    writeFileSync(hba, rules + readFileSync(hba, 'utf8'));
  }
  if (cluster[3] !== 'online') run('pg_ctlcluster', ['--skip-systemctl-redirect', version, name, 'start']);
  else if (installed) run('pg_ctlcluster', ['--skip-systemctl-redirect', version, name, 'reload']);
  state = await waitUp(30_000);
  if (!state.ok) fail(`started PostgreSQL ${version}/${name} but ${shown} still fails: ${state.error}. ${HOW_TO}`);
}
console.log(`ensure-postgres: ${state.version} at ${shown}`);

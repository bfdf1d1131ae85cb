// Makes sure the Chromium that playwright.config.ts launches exists and runs.
//
// Looks at $CHROMIUM_PATH, else /usr/bin/chromium. When the default is missing
// and we are root on Debian/Ubuntu, installs Debian's `chromium` package with
// apt-get; otherwise exits 1 and says how to get one. Playwright's own browser
// download (`npx playwright install`) is not used: its CDN is unreachable here.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

const DEFAULT_PATH = '/usr/bin/chromium';
const fromEnv = process.env.CHROMIUM_PATH;
const chromiumPath = fromEnv ?? DEFAULT_PATH;

/** @param {string} path */
function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** @param {string} message */
function fail(message) {
  console.error(`ensure-chromium: ${message}`);
  process.exit(1);
}

const HOW_TO =
  'Install Debian\'s "chromium" package (sudo apt-get install -y chromium) ' +
  'or set CHROMIUM_PATH to a Chromium/Chrome executable.';

/**
 * @param {string} command
 * @param {string[]} args
 */
function run(command, args) {
  console.error(`ensure-chromium: ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (result.error) fail(`${command} could not start: ${result.error.message}. ${HOW_TO}`);
  if (result.status !== 0)
    fail(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}. ${HOW_TO}`);
}

if (!isExecutable(chromiumPath)) {
  if (fromEnv !== undefined) {
    fail(`CHROMIUM_PATH=${fromEnv} is not an executable file. ${HOW_TO}`);
  }
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = isExecutable('/usr/bin/apt-get');
  if (!isRoot || !hasApt) {
    const why = !hasApt ? 'apt-get is not available' : 'not running as root, so it cannot be installed automatically';
    fail(`no Chromium at ${chromiumPath} (${why}). ${HOW_TO}`);
  }
  console.error(`ensure-chromium: no Chromium at ${chromiumPath}; installing Debian's chromium package`);
  run('apt-get', ['update']);
  run('apt-get', ['install', '-y', 'chromium']);
  if (!isExecutable(chromiumPath)) fail(`apt-get finished but ${chromiumPath} is still missing. ${HOW_TO}`);
}

const version = spawnSync(chromiumPath, ['--version'], { encoding: 'utf8' });
if (version.error || version.status !== 0) {
  const detail = version.error?.message ?? (version.stderr.trim() || `exit ${version.status ?? version.signal}`);
  fail(`${chromiumPath} --version failed: ${detail}. ${HOW_TO}`);
}
console.log(`ensure-chromium: ${version.stdout.trim()} at ${chromiumPath}`);

import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createServer } from '../../server/index';
import type { TidelineServer } from '../../server/index';
import { storeSchema } from '../../shared/apps/store';
import { removeDir, TEST_ADMIN_TOKEN, TEST_SECRET, tempDataDir } from '../support/server-process';

/** node:http, not fetch: fetch will not send a Host header of our choosing. */
const statusFor = (port: number, host: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', headers: { host }, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('GET /healthz timed out')));
    req.on('error', reject);
    req.end();
  });

/** `createServer({ allowedHosts })` answers the host names the CLI's `--allowed-hosts` would. */
describe('createServer allowedHosts', () => {
  const servers: TidelineServer[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
    for (const dir of dirs) removeDir(dir);
  });

  const start = async (allowedHosts?: readonly string[]): Promise<TidelineServer> => {
    const dir = tempDataDir('tideline-hosts-');
    dirs.push(dir);
    const server = await createServer({
      schema: storeSchema,
      dataDir: join(dir, 'data'),
      port: 0,
      auth: { secret: TEST_SECRET },
      adminToken: TEST_ADMIN_TOKEN,
      log: () => {},
      ...(allowedHosts ? { allowedHosts } : {}),
    });
    servers.push(server);
    return server;
  };

  it('answers the allowed host names and refuses others; without the option only its own', async () => {
    const allowing = await start(['shop.example']);
    expect(await statusFor(allowing.port, 'shop.example')).toBe(200);
    expect(await statusFor(allowing.port, `shop.example:${allowing.port}`)).toBe(200);
    expect(await statusFor(allowing.port, 'evil.example')).toBe(403);
    expect(await statusFor(allowing.port, `127.0.0.1:${allowing.port}`)).toBe(200);

    const plain = await start();
    expect(await statusFor(plain.port, 'shop.example')).toBe(403);
    expect(await statusFor(plain.port, `localhost:${plain.port}`)).toBe(200);

    const any = await start(['*']);
    expect(await statusFor(any.port, 'evil.example')).toBe(200);
  }, 30_000);
});

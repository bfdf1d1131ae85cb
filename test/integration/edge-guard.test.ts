import { request } from 'node:http';
import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, startServerProcess } from '../support/server-process';
import type { ServerProcess } from '../support/server-process';

/**
 * The edge of a real node: a request naming a host the node is not known by
 * (a DNS-rebinding page) gets 403, on HTTP and on the Socket.IO handshake; a
 * foreign Origin cannot write or open a socket; every answer carries the
 * security headers.
 */
describe('the edge guard', () => {
  let server: ServerProcess;
  let port: number;

  beforeAll(async () => {
    server = await startServerProcess({ args: ['--no-seed', '--dev-login', '--allowed-hosts', 'shop.example'] });
    port = Number(new URL(server.url).port);
  });
  afterAll(async () => {
    await server.stop();
    removeDir(server.dataDir);
  });

  interface Answer {
    status: number;
    headers: Record<string, string | string[] | undefined>;
    body: string;
  }
  /** node:http, not fetch: fetch will not send a Host header of our choosing. */
  const call = (method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path, headers, timeout: 10_000 }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  const login = (headers: Record<string, string>): Promise<Answer> =>
    call(
      'POST',
      '/auth/dev-login',
      { 'content-type': 'application/json', ...headers },
      JSON.stringify({ user: 'ann' }),
    );

  /** Resolves with whether a Socket.IO handshake on /sync with these headers connects. */
  const handshake = (headers: Record<string, string>): Promise<{ connected: boolean; error?: string }> =>
    new Promise((resolve) => {
      const socket = io(`${server.url}/sync`, {
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
        timeout: 10_000,
        extraHeaders: headers,
      });
      socket.once('connect', () => {
        socket.disconnect();
        resolve({ connected: true });
      });
      socket.once('connect_error', (err: Error) => {
        socket.disconnect();
        resolve({ connected: false, error: err.message });
      });
    });

  it('answers 127.0.0.1, localhost, [::1] and the allowed hosts, with or without a port', async () => {
    for (const host of ['127.0.0.1', `127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', `[::1]:${port}`]) {
      expect((await call('GET', '/healthz', { host })).status, host).toBe(200);
    }
    expect((await call('GET', '/healthz', { host: `shop.example:${port}` })).status).toBe(200);
  });

  it('refuses a foreign Host with 403 on every path, reads and writes alike', async () => {
    for (const host of ['evil.example', `evil.example:${port}`, 'localhost.evil.example', '127.0.0.1.evil.example']) {
      const res = await call('GET', '/healthz', { host });
      expect(res.status, host).toBe(403);
      expect(res.body).toContain('FORBIDDEN');
    }
    expect((await call('GET', '/admin/status', { host: 'evil.example' })).status).toBe(403);
    expect((await login({ host: 'evil.example' })).status).toBe(403);
  });

  it('refuses a write whose Origin is foreign, and takes one from an allowed origin or none', async () => {
    expect((await login({ host: `127.0.0.1:${port}`, origin: 'http://evil.example' })).status).toBe(403);
    expect((await login({ host: `127.0.0.1:${port}`, origin: 'null' })).status).toBe(403);
    expect((await login({ host: `127.0.0.1:${port}`, origin: `http://localhost:${port}` })).status).toBe(200);
    expect((await login({ host: `127.0.0.1:${port}` })).status).toBe(200);
    // A read is not refused for its Origin (CORS keeps the answer from a foreign page).
    expect((await call('GET', '/healthz', { origin: 'http://evil.example' })).status).toBe(200);
  });

  it('refuses a Socket.IO handshake with a foreign Host or Origin', async () => {
    expect((await handshake({})).connected).toBe(true);
    expect((await handshake({ origin: `http://127.0.0.1:${port}` })).connected).toBe(true);
    expect((await handshake({ origin: 'http://shop.example' })).connected).toBe(true);
    expect((await handshake({ origin: 'http://evil.example' })).connected).toBe(false);
    expect((await handshake({ host: `evil.example:${port}` })).connected).toBe(false);
  });

  it('sends the security headers on the API and on refusals', async () => {
    for (const res of [await call('GET', '/healthz', {}), await call('GET', '/healthz', { host: 'evil.example' })]) {
      expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(res.headers['content-security-policy']).toContain("script-src 'self'");
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
    }
  });
});

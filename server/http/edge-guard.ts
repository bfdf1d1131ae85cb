import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';

/**
 * The edge of a node: which Host and Origin headers it answers, and the
 * security headers it sends.
 *
 * A page on evil.example whose name the attacker re-points at 127.0.0.1 (DNS
 * rebinding) reaches a node on localhost as same-origin, but its requests
 * still say `Host: evil.example`: so a node answers only the host names it
 * is known by. An Origin header, sent by browsers on cross-site writes and on
 * every WebSocket handshake, must name one of those hosts too, which stops a
 * foreign page from driving a user's browser against the node.
 */

/** Always allowed: the loopback names (the default listen address is 127.0.0.1). */
const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '[::1]'];

/** Listen addresses that are not a name anyone reaches the node by. */
const WILDCARD_ADDRESSES = new Set(['0.0.0.0', '::', '[::]']);

/** Methods that change nothing: a browser sends them cross-site freely, and CORS keeps the answer from the page. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * What the storefront needs: its scripts, styles, worker and service worker from
 * the node itself, the socket back to it, and the inline SVG icon. No framing.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export interface EdgeGuardOptions {
  /** --host: allowed too unless it is a wildcard address. */
  listenHost: string;
  /** --public-url: its host is allowed. */
  publicUrl: string | null;
  /** --allowed-hosts: more host names; `*` turns the Host and Origin checks off (behind a proxy that does them). */
  extraHosts: readonly string[];
}

export interface EdgeGuard {
  /** The host names answered, lower case, ports stripped. */
  hosts: ReadonlySet<string>;
  /** Null if the request may go on, else why not. */
  refusal: (req: IncomingMessage, stateChanging: boolean) => string | null;
  /** Express middleware: 403 for a refused request, security headers on every answer. */
  middleware: (req: Request, res: Response, next: NextFunction) => void;
  /** Socket.IO `allowRequest`: refuses a handshake with a foreign Host or Origin. */
  allowRequest: (req: IncomingMessage, callback: (err: string | null | undefined, success: boolean) => void) => void;
}

export function edgeGuard(options: EdgeGuardOptions): EdgeGuard {
  const anyHost = options.extraHosts.includes('*');
  const hosts = new Set(LOOPBACK_HOSTS);
  if (!WILDCARD_ADDRESSES.has(options.listenHost)) hosts.add(hostName(options.listenHost));
  if (options.publicUrl !== null) hosts.add(new URL(options.publicUrl).hostname.toLowerCase());
  for (const h of options.extraHosts) if (h !== '*') hosts.add(hostName(h));

  const refusal = (req: IncomingMessage, stateChanging: boolean): string | null => {
    if (anyHost) return null;
    const host = req.headers.host;
    if (host === undefined || !hosts.has(hostName(host))) return 'host not allowed';
    const origin = req.headers.origin;
    if (stateChanging && origin !== undefined && !allowedOrigin(origin, hosts)) return 'origin not allowed';
    return null;
  };

  return {
    hosts,
    refusal,
    middleware: (req, res, next) => {
      setSecurityHeaders(res);
      const why = refusal(req, !SAFE_METHODS.has(req.method));
      if (why === null) return next();
      res.status(403).json({ error: { code: 'FORBIDDEN', message: why, retryable: false } });
    },
    allowRequest: (req, callback) => {
      // Every handshake is treated as state-changing: a socket pushes writes.
      const why = refusal(req, true);
      callback(why, why === null);
    },
  };
}

/** The security headers (what helmet would send that matters here). */
function setSecurityHeaders(res: Response): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
}

/** `Example.COM:3000` → `example.com`; `[::1]:3000` → `[::1]`. */
export function hostName(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end === -1 ? h : h.slice(0, end + 1);
  }
  const colon = h.indexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

/** An http(s) origin on an allowed host (any port: the storefront's dev server and the node share the host). */
function allowedOrigin(origin: string, hosts: ReadonlySet<string>): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // `null` (sandboxed frames, file: pages) and garbage
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  return hosts.has(url.hostname.toLowerCase());
}

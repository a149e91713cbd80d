import { Hono, type Context } from 'hono';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import type { JobStore } from '../sql/job-store.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/**
 * The pages' policy. Job code runs in Web Workers created from these same-origin scripts, so it
 * inherits this policy: it can fetch from, open sockets to and import from the master only
 * ('self' covers ws:/wss: to the same host), and nothing can frame or navigate elsewhere.
 */
export const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "worker-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function setPageHeaders(c: Context): void {
  c.header('content-security-policy', PAGE_CSP);
  c.header('x-content-type-options', 'nosniff');
  c.header('referrer-policy', 'no-referrer');
  c.header('x-frame-options', 'DENY');
  c.header('cross-origin-opener-policy', 'same-origin');
  c.header('permissions-policy', 'camera=(), microphone=(), geolocation=(), payment=(), usb=()');
}

/** The built client (`dist/client`): `/` volunteer page, `/status` status page, hashed assets. */
export function pageRoutes(jobs: JobStore, clientDir: string) {
  const app = new Hono();
  const cache = new Map<string, Buffer>();
  const file = async (c: Context, rel: string, immutable: boolean) => {
    const path = normalize(join(clientDir, rel));
    if (!path.startsWith(normalize(clientDir))) return c.notFound();
    let body = cache.get(path);
    if (!body) {
      try {
        body = await readFile(path);
      } catch {
        if (rel.endsWith('.html')) {
          return c.text('The client is not built: run `npm run build` (npm install does it for you).', 503);
        }
        return c.notFound();
      }
      cache.set(path, body);
    }
    setPageHeaders(c);
    c.header('content-type', TYPES[extname(path)] ?? 'application/octet-stream');
    c.header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    return c.body(new Uint8Array(body));
  };

  app.get('/', (c) => file(c, 'index.html', false));
  app.get('/status', (c) => file(c, 'status.html', false));
  app.get('/assets/*', (c) => file(c, c.req.path.slice(1), true));
  app.get('/favicon.svg', (c) => file(c, 'favicon.svg', false));

  // Job code for volunteers. Public like the page itself: whoever volunteers runs it.
  app.get('/jobs/:id/module.js', (c) => {
    const source = jobs.module(c.req.param('id'));
    if (source === undefined) return c.text('no such job', 404);
    setPageHeaders(c);
    c.header('content-type', 'text/javascript; charset=utf-8');
    c.header('cache-control', 'public, max-age=31536000, immutable');
    return c.body(source);
  });
  return app;
}

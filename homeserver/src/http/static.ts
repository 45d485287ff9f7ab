import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Middleware } from 'koa';
import send from 'koa-send';
import { ROOT_DIR } from '../paths.js';

/**
 * Serves the built web client (client-vue/dist) at `/`: files as they are, and index.html
 * for every other GET so client-side routes survive a reload. Mounted after the routers,
 * so it only sees requests no API route answered; server paths are never handed to the
 * SPA even when nothing answers them (they stay a JSON 404).
 */

// Server-owned path prefixes, now or later (the admin console gets its own mount).
const SERVER_PATHS = /^\/(?:api|health|metrics|federation|admin|updates|_matrix|\.well-known)(?:\/|$)/;
// Vite puts content-hashed files under /assets/: their URL changes whenever they do.
const HASHED_ASSETS = /^\/assets\//;

/**
 * The page talks to its own homeserver or, when the person signs in elsewhere, to any
 * other (hence http(s)/ws(s) in connect-src); media are shown through blob: URLs.
 * Vue sets inline styles through the CSSOM only, which style-src does not restrict.
 */
export const CLIENT_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "media-src 'self' blob:",
  "font-src 'self'",
  "connect-src 'self' http: https: ws: wss:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** client-vue/dist in this checkout; `PARLEY_CLIENT_DIR` points elsewhere (packaged installs). */
export function defaultClientDir(): string {
  return process.env.PARLEY_CLIENT_DIR ?? path.join(ROOT_DIR, 'client-vue', 'dist');
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** A request path → a file path relative to root, or null if it does not name one inside it. */
function relativeFile(root: string, urlPath: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0')) return null;
  const full = path.resolve(root, `.${path.posix.normalize(decoded)}`);
  if (full !== root && !full.startsWith(root + path.sep)) return null;
  return path.relative(root, full);
}

/**
 * Serves the web client from `distDir`; a function is asked on every request, so the served
 * bundle can be switched (to a verified release, and back) without a restart.
 */
export function serveClient(distDir: string | (() => string) = defaultClientDir()): Middleware {
  if (typeof distDir === 'string' && distDir === '') throw new TypeError('distDir must be a non-empty string');
  if (typeof distDir !== 'string' && typeof distDir !== 'function') throw new TypeError('distDir must be a string or a function');
  const dirOf = typeof distDir === 'function' ? distDir : () => distDir;

  return async (ctx, next) => {
    if ((ctx.method !== 'GET' && ctx.method !== 'HEAD') || SERVER_PATHS.test(ctx.path)) return next();
    const root = path.resolve(dirOf());
    const indexFile = path.join(root, 'index.html');
    // No build (API-only deployments, tests): behave as if this middleware were absent.
    if (!(await isFile(indexFile))) return next();

    ctx.set('Content-Security-Policy', CLIENT_CSP);
    ctx.set('X-Frame-Options', 'DENY');
    const rel = relativeFile(root, ctx.path);
    if (rel && rel !== 'index.html' && (await isFile(path.join(root, rel)))) {
      const cache = HASHED_ASSETS.test(ctx.path) ? 'public, max-age=31536000, immutable' : 'public, max-age=3600';
      await send(ctx, rel, { root, hidden: false, setHeaders: (res) => res.setHeader('Cache-Control', cache) });
      return;
    }
    // A missing hashed asset is a stale page asking for an old build: a 404, not the app.
    if (HASHED_ASSETS.test(ctx.path)) return next();
    await send(ctx, 'index.html', { root, setHeaders: (res) => res.setHeader('Cache-Control', 'no-cache') });
  };
}

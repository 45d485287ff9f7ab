import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Middleware } from 'koa';
import send from 'koa-send';
import { ROOT_DIR } from '../paths.js';

/**
 * Serves the built admin console (admin/dist) at `/admin/`: files as they are, index.html
 * for every other GET below `/admin/` (client-side routes). The console only ever talks to
 * its own server, so its CSP allows no other origin.
 */
export const ADMIN_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const HASHED_ASSETS = /^\/admin\/assets\//;

/** admin/dist in this checkout; `PARLEY_ADMIN_DIR` points elsewhere (packaged installs). */
export function defaultAdminDir(): string {
  return process.env.PARLEY_ADMIN_DIR ?? path.join(ROOT_DIR, 'admin', 'dist');
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

export function serveAdmin(distDir: string = defaultAdminDir()): Middleware {
  const root = path.resolve(distDir);
  const indexFile = path.join(root, 'index.html');
  return async (ctx, next) => {
    if ((ctx.method !== 'GET' && ctx.method !== 'HEAD') || !/^\/admin(?:\/|$)/.test(ctx.path)) return next();
    if (!(await isFile(indexFile))) return next();
    if (ctx.path === '/admin') {
      ctx.redirect('/admin/');
      return;
    }
    ctx.set('Content-Security-Policy', ADMIN_CSP);
    ctx.set('X-Frame-Options', 'DENY');
    let decoded: string;
    try {
      decoded = decodeURIComponent(ctx.path.slice('/admin'.length));
    } catch {
      return next();
    }
    const full = path.resolve(root, `.${path.posix.normalize(decoded)}`);
    const inside = full.startsWith(root + path.sep) && !decoded.includes('\0');
    if (inside && full !== indexFile && (await isFile(full))) {
      const cache = HASHED_ASSETS.test(ctx.path) ? 'public, max-age=31536000, immutable' : 'public, max-age=3600';
      await send(ctx, path.relative(root, full), { root, hidden: false, setHeaders: (res) => res.setHeader('Cache-Control', cache) });
      return;
    }
    if (HASHED_ASSETS.test(ctx.path)) return next();
    await send(ctx, 'index.html', { root, setHeaders: (res) => res.setHeader('Cache-Control', 'no-cache') });
  };
}

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Page } from 'playwright-core';

export { launch, openPage, shot } from '../../client-vue/e2e/support.js';

export const REPO = path.resolve(import.meta.dirname, '../..');

/** Builds client-vue/dist and admin/dist if missing or stale (the server under test serves both). */
export function ensureAppsBuilt(): void {
  execFileSync(process.execPath, [path.join(REPO, 'scripts', 'build-client.mjs')], { stdio: 'inherit' });
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: string[] }>;
}

/** Runs axe-core (WCAG 2.1 A/AA rules) in the page; answers serious and critical violations. */
export async function axe(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    const w = window as unknown as { axe: { run: (ctx: unknown, opts: unknown) => Promise<{ violations: AxeViolation[] }> } };
    return w.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
  });
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => ({ target: n.target })) }));
}

/** Signs in to the admin console (`/admin/`) through its form. */
export async function adminSignIn(page: Page, base: string, username: string, password: string): Promise<void> {
  await page.goto(`${base}/admin/`);
  await page.waitForURL(/\/admin\/login/);
  await page.getByTestId('login-username').fill(username);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
}

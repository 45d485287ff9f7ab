import { createHash } from 'node:crypto';
import { formatRecoveryKey, newRecoveryKey } from '@parley/sdk/crypto';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FedServer } from '../../homeserver/test/support/federation.js';
import { FAILURE_TEXT } from '../src/lib/e2e.js';
import {
  axe,
  collectFailures,
  makePng,
  messageWith,
  openPage,
  sendMessage,
  shot,
  signUpInBrowser,
  startTwoServers,
  stopTwoServers,
  type TwoServers,
  unexpectedConsole,
} from './support.js';

// Issue 12 in the browser: Alice on hs1 and Bob on hs2 (two homeservers federating over TLS on
// loopback) open an end-to-end encrypted direct message, chat both ways, verify each other by
// comparing the 7 emoji, and Alice sends an image Bob sees decrypted. Neither server stores
// the words or the picture. Screenshots: test-artifacts/screenshots/e2e-*.png.

let servers: TwoServers | undefined;
let hs1: FedServer;
let hs2: FedServer;
let browser: Browser;

beforeAll(async () => {
  servers = await startTwoServers();
  ({ hs1, hs2, browser } = servers);
});
afterAll(() => stopTwoServers(servers));

/** The 7 emoji of the open verification dialog, as "emoji name" strings. */
async function sasOf(page: Page): Promise<string[]> {
  const items = page.getByTestId('verify-dialog').getByTestId('sas-item');
  await items.first().waitFor({ timeout: 30_000 });
  return items.evaluateAll((els) => els.map((el) => (el.textContent ?? '').replace(/\s+/g, ' ').trim()));
}

async function openVerify(page: Page, userId: string): Promise<void> {
  const panelOpen = await page.getByTestId('member-list').isVisible();
  if (!panelOpen) await page.getByRole('button', { name: /^Members: / }).click();
  const row = page.getByTestId('member-list').locator('li').filter({ hasText: userId });
  await row.getByTestId('verify-button').click();
  await page.getByTestId('verify-dialog').waitFor();
}

const SECRET_A = 'Meet at the blue door, 7 pm (alice-secret-5c1e)';
const SECRET_B = 'Bringing the maps (bob-secret-9d2f)';
const EARLY = 'Written before Bob joined (early-secret-77aa)';

describe('an encrypted direct message across two homeservers', () => {
  it('chat both ways, emoji verification, an encrypted image; servers hold only ciphertext', async () => {
    const a = await openPage(browser);
    const b = await openPage(browser);
    await a.context.grantPermissions(['clipboard-read', 'clipboard-write']);
    const alice = a.page;
    const bob = b.page;
    // Requests answered with an error (E2E "none yet" answers left out).
    const failed = collectFailures([alice, bob]);
    try {
      await signUpInBrowser(alice, 'alice', hs1.url);
      await signUpInBrowser(bob, 'bob', hs2.url);

      // "New room": encrypted is ticked for a private room, unticked and disabled for a public one.
      await alice.getByRole('link', { name: '+ New room' }).click();
      const box = alice.getByTestId('create-encrypted');
      await expect.poll(() => box.isChecked()).toBe(true);
      expect(await box.isDisabled()).toBe(false);
      await alice.getByLabel(/Public: anyone/).check();
      await expect.poll(() => box.isChecked()).toBe(false);
      expect(await box.isDisabled()).toBe(true);
      await alice.getByLabel(/Private: invited/).check();
      await expect.poll(() => box.isChecked()).toBe(true);

      // Alice starts a DM with Bob: encrypted by default.
      await alice.getByRole('link', { name: 'Start a direct message' }).click();
      await alice.getByTestId('dm-encrypted-note').waitFor();
      await alice.getByLabel('Who do you want to message?').fill('@bob:hs2.test');
      await alice.getByRole('button', { name: 'Start chatting' }).click();
      await alice.waitForURL(/\/room\//, { timeout: 30_000 });
      const roomId = decodeURIComponent(new URL(alice.url()).pathname.split('/').pop() ?? '');
      expect(roomId).toMatch(/:hs1\.test$/);

      // Her first encrypted room: a banner offers the recovery key; the key is shown once,
      // copied, and its saving confirmed.
      await alice.getByTestId('recovery-banner').getByRole('button', { name: 'Set up recovery key' }).click({ timeout: 30_000 });
      const setup = alice.getByTestId('recovery-setup');
      await setup.waitFor();
      await setup.getByRole('button', { name: 'Create recovery key' }).click();
      const key = (await setup.getByTestId('recovery-key').textContent({ timeout: 30_000 }))?.trim() ?? '';
      expect(key).toMatch(/^([A-Z2-9]{4} ){13}[A-Z2-9]{4}$/);
      await setup.getByTestId('recovery-copy').click();
      await setup.getByRole('button', { name: 'Copied ✓' }).waitFor();
      expect(await alice.evaluate(() => navigator.clipboard.readText())).toBe(key);
      await shot(alice, 'e2e-01-alice-recovery-key');
      // WCAG 2.1 A/AA (axe-core) on the encryption UI: this dialog, the room, search, verification.
      expect(await axe(alice)).toEqual([]);
      await setup.getByTestId('recovery-saved').check();
      await setup.getByRole('button', { name: 'Done' }).click();
      await setup.waitFor({ state: 'detached' });
      await alice.getByTestId('recovery-banner').waitFor({ state: 'detached' });

      // Lock in the header and the room list; the composer says so.
      await alice.getByTestId('room-lock').waitFor();
      await alice.getByTestId('room-list-lock').first().waitFor();
      await alice.getByTestId('composer-encrypted').waitFor();

      // Written while Bob is only invited: his device is not in the group yet, so it must never
      // read this one (MLS: a device reads what is sent after it joined).
      await sendMessage(alice, EARLY);
      await messageWith(alice, EARLY).waitFor({ timeout: 30_000 });
      await expect.poll(() => alice.getByTestId('send-status').count(), { timeout: 30_000 }).toBe(0);

      // Bob accepts the invite; the room is encrypted for him too.
      const invite = bob.getByTestId('invite').filter({ hasText: roomId });
      await invite.waitFor({ timeout: 30_000 });
      await invite.getByRole('button', { name: 'Accept' }).click();
      await bob.waitForURL(/\/room\//);
      await bob.getByTestId('room-lock').waitFor({ timeout: 30_000 });
      // Bob puts the recovery key off; the banner goes for this session.
      const bobBanner = bob.getByTestId('recovery-banner');
      await bobBanner.getByRole('button', { name: 'Not now' }).click({ timeout: 30_000 });
      await bobBanner.waitFor({ state: 'detached' });

      // Chat both ways: each side reads the other's words, decrypted in the browser.
      await sendMessage(alice, SECRET_A);
      await messageWith(alice, SECRET_A).waitFor({ timeout: 30_000 });
      await messageWith(bob, SECRET_A).waitFor({ timeout: 60_000 });
      await sendMessage(bob, SECRET_B);
      await messageWith(alice, SECRET_B).waitFor({ timeout: 60_000 });
      await expect.poll(() => alice.getByTestId('send-status').count(), { timeout: 30_000 }).toBe(0);
      await expect.poll(() => bob.getByTestId('send-status').count(), { timeout: 30_000 }).toBe(0);
      expect(await alice.getByTestId('undecryptable').count()).toBe(0);
      // Bob's only unreadable message is the one from before he joined, and it says why in
      // words, with the action that may help.
      const early = bob.getByTestId('undecryptable');
      await expect.poll(() => early.count(), { timeout: 30_000 }).toBe(1);
      const reason = (await early.getAttribute('data-reason')) ?? '';
      expect(Object.keys(FAILURE_TEXT)).toContain(reason);
      expect(await early.textContent()).toContain(FAILURE_TEXT[reason as keyof typeof FAILURE_TEXT].title);
      await early.scrollIntoViewIfNeeded();
      await shot(bob, 'e2e-03a-bob-message-from-before-he-joined');
      await early.getByTestId('undecryptable-retry').click();
      await expect.poll(() => early.getByTestId('undecryptable-retry').isEnabled(), { timeout: 30_000 }).toBe(true);
      expect(await bob.getByText(EARLY).count()).toBe(0);
      // A reply and an edit travel encrypted too; each side applies them to what it decrypted.
      const hello = messageWith(bob, SECRET_A);
      await hello.hover();
      await hello.getByRole('button', { name: 'Reply', exact: true }).click();
      await bob.getByTestId('reply-bar').waitFor();
      await sendMessage(bob, 'Replying in secret');
      const reply = messageWith(alice, 'Replying in secret');
      await reply.waitFor({ timeout: 60_000 });
      expect(await reply.getByTestId('reply-quote').textContent()).toContain('Meet at the blue door');
      // ↑ edits the newest confirmed message of one's own: wait for the reply's confirmation.
      await expect.poll(() => bob.getByTestId('send-status').count(), { timeout: 30_000 }).toBe(0);
      await bob.getByTestId('composer').click();
      await bob.getByTestId('composer').press('ArrowUp');
      await bob.getByTestId('edit-bar').waitFor();
      await bob.getByTestId('composer').fill('Replying in secret, edited');
      await bob.getByTestId('composer').press('Enter');
      await messageWith(alice, 'Replying in secret, edited').getByTestId('edited').waitFor({ timeout: 60_000 });

      // The room list previews what the device decrypted (the other's message, and one's own).
      await expect.poll(() => alice.locator('.sidebar').textContent(), { timeout: 20_000 }).toContain('bob: Replying in secret, edited');
      await expect.poll(() => bob.locator('.sidebar').textContent(), { timeout: 20_000 }).toContain('You: Replying in secret, edited');
      await shot(alice, 'e2e-02-alice-chat');
      await shot(bob, 'e2e-03-bob-chat');

      // Search in an encrypted room runs in the browser, over what it decrypted; the server's
      // search is never asked.
      let serverSearched = false;
      alice.on('request', (r) => {
        if (new URL(r.url()).pathname === '/api/v1/search') serverSearched = true;
      });
      await alice.locator('.page-header').getByRole('button', { name: 'Search messages' }).click();
      await alice.getByTestId('search-local-note').waitFor();
      await alice.getByLabel('Search for').fill('blue DOOR');
      await alice.getByLabel('Search for').press('Enter');
      await alice.getByTestId('search-results').getByTestId('panel-message').filter({ hasText: 'Meet at the blue door' }).waitFor();
      expect(await alice.getByTestId('search-results').getByTestId('panel-message').count()).toBe(1);
      await shot(alice, 'e2e-03b-alice-local-search');
      expect(await axe(alice)).toEqual([]);
      expect(serverSearched).toBe(false);
      await alice.locator('.page-header').getByRole('button', { name: 'Search messages' }).click();
      await alice.getByTestId('search-local-note').waitFor({ state: 'detached' });

      // Verification: both open "Verify" on the other and see the same 7 emoji (and number).
      await openVerify(alice, '@bob:hs2.test');
      await openVerify(bob, '@alice:hs1.test');
      const sasA = await sasOf(alice);
      const sasB = await sasOf(bob);
      expect(sasA).toHaveLength(7);
      expect(sasA).toEqual(sasB);
      const numberA = await alice.getByTestId('safety-number').textContent();
      expect(numberA?.replace(/\D/g, '')).toHaveLength(60);
      expect(numberA).toBe(await bob.getByTestId('safety-number').textContent());
      await shot(alice, 'e2e-04-alice-verify-emoji');
      expect(await axe(alice)).toEqual([]);
      await shot(bob, 'e2e-05-bob-verify-emoji');
      await alice.getByTestId('verify-dialog').getByRole('button', { name: 'They match' }).click();
      await bob.getByTestId('verify-dialog').getByRole('button', { name: 'They match' }).click();
      await alice.getByTestId('verify-done').waitFor();
      await bob.getByTestId('verify-done').waitFor();
      await alice.getByTestId('verify-dialog').getByRole('button', { name: 'Done' }).click();
      await bob.getByTestId('verify-dialog').getByRole('button', { name: 'Done' }).click();
      const bobRow = alice.getByTestId('member-list').locator('li').filter({ hasText: '@bob:hs2.test' });
      await expect.poll(() => bobRow.getByTestId('member-trust').getAttribute('data-trust')).toBe('verified');
      await bobRow.getByRole('button', { name: 'Devices' }).click();
      await bobRow.getByTestId('e2e-device').first().waitFor({ timeout: 20_000 });
      expect(await bobRow.getByTestId('e2e-device').first().getAttribute('data-verified')).toBe('true');
      await shot(alice, 'e2e-06-alice-verified');

      // An image: encrypted in Alice's browser, uploaded as ciphertext, decrypted in Bob's.
      const png = makePng(120, 80, [40, 140, 200]);
      await alice.getByTestId('file-input').setInputFiles({ name: 'harbour.png', mimeType: 'image/png', buffer: png });
      for (const page of [alice, bob]) {
        const img = page.getByTestId('message-image').last();
        await img.waitFor({ timeout: 60_000 });
        await expect.poll(() => img.evaluate((el: HTMLImageElement) => el.complete && el.naturalWidth), { timeout: 30_000 }).toBe(120);
        expect(await img.getAttribute('src')).toMatch(/^blob:/);
      }
      await shot(bob, 'e2e-07-bob-decrypted-image');

      // Settings: the device list shows this device.
      await bob.goto(`${hs2.url}/settings`);
      await bob.getByTestId('e2e-settings').getByTestId('e2e-device').first().waitFor({ timeout: 20_000 });
      await bob.getByTestId('e2e-settings').scrollIntoViewIfNeeded();
      await shot(bob, 'e2e-08-bob-settings-encryption');

      // Alice signs in on a new device: it asks for the recovery key; a wrong one is refused
      // in words, hers unlocks the history the backup holds.
      const c = await openPage(browser);
      const alice2 = c.page;
      try {
        await alice2.goto(hs1.url);
        await alice2.waitForURL(/\/login/);
        await alice2.getByLabel('Username').fill('alice');
        await alice2.getByLabel('Password').fill('correct horse battery');
        await alice2.getByRole('button', { name: 'Sign in' }).click();
        await alice2.getByTestId('recovery-banner').getByRole('button', { name: 'Enter recovery key' }).click({ timeout: 30_000 });
        const restore = alice2.getByTestId('recovery-restore');
        await restore.waitFor();
        await restore.getByTestId('recovery-input').fill(formatRecoveryKey(newRecoveryKey()));
        await restore.getByRole('button', { name: 'Unlock' }).click();
        await expect
          .poll(() => restore.getByTestId('recovery-error').textContent(), { timeout: 20_000 })
          .toBe('That recovery key does not unlock this account’s backup. Check it and try again.');
        await shot(alice2, 'e2e-09-alice-new-device-wrong-key');
        expect(await axe(alice2)).toEqual([]);
        await restore.getByTestId('recovery-input').fill(key.toLowerCase());
        await restore.getByRole('button', { name: 'Unlock' }).click();
        await restore.waitFor({ state: 'detached', timeout: 30_000 });
        await alice2.goto(`${hs1.url}/room/${encodeURIComponent(roomId)}`);
        await messageWith(alice2, SECRET_B).waitFor({ timeout: 30_000 });
        await shot(alice2, 'e2e-10-alice-new-device-history');
        expect(unexpectedConsole(c.errors)).toEqual([]);
      } catch (err) {
        await shot(alice2, 'failure-e2e-alice-new-device').catch(() => {});
        console.error('alice (new device) console:', c.errors);
        throw err;
      } finally {
        await c.context.close();
      }

      // The servers: no plaintext in any stored event of the room, on either side, and only
      // opaque bytes in the media store.
      for (const hs of [hs1, hs2]) {
        const rows = await hs.running.services.db('events').where({ room_id: roomId }).select('event');
        expect(rows.length).toBeGreaterThan(0);
        const dump = JSON.stringify(rows);
        for (const secret of [
          SECRET_A,
          SECRET_B,
          'blue door',
          'alice-secret-5c1e',
          'bob-secret-9d2f',
          'harbour.png',
          'Replying in secret',
          'early-secret-77aa',
        ])
          expect(dump).not.toContain(secret);
        expect(dump).toContain('room.encrypted');
      }
      const media = await hs1.running.services.db('media').select('content_type', 'sha256', 'filename', 'size');
      const digest = createHash('sha256').update(png).digest();
      const pngShas = [digest.toString('hex'), digest.toString('base64'), digest.toString('base64url')];
      expect(media.length).toBeGreaterThan(0);
      for (const m of media) {
        expect(m.content_type).not.toMatch(/^image\//);
        expect(pngShas).not.toContain(m.sha256);
        expect(m.filename ?? '').not.toContain('harbour');
      }

      // The only error answers are the E2E API's "none yet" 404s (support.ts, E2E_NONE_YET).
      expect(failed).toEqual([]);
      expect(unexpectedConsole(a.errors)).toEqual([]);
      expect(unexpectedConsole(b.errors)).toEqual([]);
    } catch (err) {
      await shot(alice, 'failure-e2e-alice').catch(() => {});
      await shot(bob, 'failure-e2e-bob').catch(() => {});
      console.error('alice console:', a.errors, '\nbob console:', b.errors, '\nfailed requests:', failed);
      throw err;
    } finally {
      await a.context.close();
      await b.context.close();
    }
  });
});

// A second device of an account that never set up a recovery key: it asks to be approved, the
// first device (holding the user key) approves it after comparing 7 emoji, and from then on the
// new device sends and reads in the encrypted room. Screenshots: e2e-approve-*.png.
describe('approving a new device from another one (no recovery key)', () => {
  it('device 2 asks, device 1 approves, device 2 sends and reads in the encrypted DM', async () => {
    const a = await openPage(browser);
    const b = await openPage(browser);
    const c = await openPage(browser);
    const carol = a.page;
    const dave = b.page;
    const carol2 = c.page;
    const failed = collectFailures([carol, dave, carol2]);
    try {
      await signUpInBrowser(carol, 'carol', hs1.url);
      await signUpInBrowser(dave, 'dave', hs2.url);
      await carol.getByRole('link', { name: 'Start a direct message' }).click();
      await carol.getByLabel('Who do you want to message?').fill('@dave:hs2.test');
      await carol.getByRole('button', { name: 'Start chatting' }).click();
      await carol.waitForURL(/\/room\//, { timeout: 30_000 });
      const roomId = decodeURIComponent(new URL(carol.url()).pathname.split('/').pop() ?? '');
      // No recovery key: Carol puts it off, so the account has no key backup.
      await carol.getByTestId('recovery-banner').getByRole('button', { name: 'Not now' }).click({ timeout: 30_000 });
      const invite = dave.getByTestId('invite').filter({ hasText: roomId });
      await invite.waitFor({ timeout: 30_000 });
      await invite.getByRole('button', { name: 'Accept' }).click();
      await dave.waitForURL(/\/room\//);
      await dave.getByTestId('recovery-banner').getByRole('button', { name: 'Not now' }).click({ timeout: 30_000 });
      await sendMessage(carol, 'Hello from the laptop (carol-1)');
      await messageWith(dave, 'Hello from the laptop').waitFor({ timeout: 60_000 });

      // Device 2: no backup, so no recovery key is asked for; it offers approval from another device.
      await carol2.goto(hs1.url);
      await carol2.waitForURL(/\/login/);
      await carol2.getByLabel('Username').fill('carol');
      await carol2.getByLabel('Password').fill('correct horse battery');
      await carol2.getByRole('button', { name: 'Sign in' }).click();
      const banner2 = carol2.getByTestId('recovery-banner');
      await banner2.getByRole('button', { name: 'Approve from another device' }).waitFor({ timeout: 30_000 });
      expect(await banner2.textContent()).toContain('Approve it from another device');
      expect(await banner2.getByRole('button', { name: 'Enter recovery key' }).count()).toBe(0);
      await banner2.getByRole('button', { name: 'Approve from another device' }).click();
      const asking = carol2.getByTestId('approval-request');
      await asking.getByTestId('approval-waiting').waitFor({ timeout: 30_000 });
      const deviceId2 = (await asking.getByTestId('approval-device-id').textContent())?.trim() ?? '';
      expect(deviceId2).not.toBe('');
      const emojiOf = (where: Locator) =>
        where.getByTestId('approval-emoji-item').evaluateAll((els) => els.map((el) => (el.textContent ?? '').replace(/\s+/g, ' ').trim()));
      const emoji2 = await emojiOf(asking);
      expect(emoji2).toHaveLength(7);
      await shot(carol2, 'e2e-approve-01-new-device-waiting');
      expect(await axe(carol2)).toEqual([]);

      // Device 1: "A new sign-in wants access", the same emoji; Settings → Sessions lists it with Approve.
      const prompt = carol.getByTestId('approval-prompt');
      await prompt.waitFor({ timeout: 30_000 });
      expect(await prompt.textContent()).toContain(`A new sign-in wants access`);
      expect(await prompt.textContent()).toContain(deviceId2);
      expect(await emojiOf(prompt)).toEqual(emoji2);
      await shot(carol, 'e2e-approve-02-first-device-prompt');
      expect(await axe(carol)).toEqual([]);
      // (The request lives in the open page, as the sdk keeps it: go there in the app, no reload.)
      await carol.getByRole('link', { name: 'Settings' }).click();
      const row = carol.getByTestId('device').filter({ hasText: deviceId2 });
      await row.getByTestId('device-wants-access').waitFor({ timeout: 30_000 });
      await row.getByTestId('device-approve').click();
      await row.getByTestId('device-wants-access').waitFor({ state: 'detached', timeout: 30_000 });
      await prompt.waitFor({ state: 'detached' });

      // Device 2 is approved: the dialog and banner go; it sends, Dave reads; Dave replies, it reads.
      await asking.waitFor({ state: 'detached', timeout: 30_000 });
      await banner2.waitFor({ state: 'detached' });
      await carol2.goto(`${hs1.url}/room/${encodeURIComponent(roomId)}`);
      await carol2.getByTestId('composer-encrypted').waitFor({ timeout: 30_000 });
      await sendMessage(carol2, 'Now from my phone (carol-2)');
      await messageWith(dave, 'Now from my phone').waitFor({ timeout: 60_000 });
      await expect.poll(() => carol2.getByTestId('send-status').count(), { timeout: 30_000 }).toBe(0);
      await sendMessage(dave, 'Got it on your phone (dave-reply)');
      await messageWith(carol2, 'Got it on your phone').waitFor({ timeout: 60_000 });
      // Device 1 reads what device 2 sent, too.
      await carol.goto(`${hs1.url}/room/${encodeURIComponent(roomId)}`);
      await messageWith(carol, 'Now from my phone').waitFor({ timeout: 60_000 });
      await shot(carol2, 'e2e-approve-03-new-device-chat');
      await shot(dave, 'e2e-approve-04-dave-reads-new-device');

      expect(failed).toEqual([]);
      for (const p of [a, b, c]) expect(unexpectedConsole(p.errors)).toEqual([]);
    } catch (err) {
      await shot(carol, 'failure-e2e-approve-carol').catch(() => {});
      await shot(carol2, 'failure-e2e-approve-carol2').catch(() => {});
      await shot(dave, 'failure-e2e-approve-dave').catch(() => {});
      console.error('carol:', a.errors, '\ncarol2:', c.errors, '\ndave:', b.errors, '\nfailed requests:', failed);
      throw err;
    } finally {
      for (const p of [a, b, c]) await p.context.close();
    }
  });
});

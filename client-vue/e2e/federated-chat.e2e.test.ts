import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FedServer } from '../../homeserver/test/support/federation.js';
import {
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
} from './support.js';

// Alice on hs1 and Bob on hs2, each using the client served by their own homeserver; the two
// servers federate over TLS on loopback (as in homeserver/test/federation-rooms.test.ts).

let servers: TwoServers | undefined;
let hs1: FedServer;
let hs2: FedServer;
let browser: Browser;

beforeAll(async () => {
  servers = await startTwoServers();
  ({ hs1, hs2, browser } = servers);
});
afterAll(() => stopTwoServers(servers));

describe('two people on two homeservers chat in the browser', () => {
  it('hs1 user creates a private room, invites an hs2 user, who accepts; both chat', async () => {
    const a = await openPage(browser);
    const b = await openPage(browser);
    const alice = a.page;
    const bob = b.page;
    // Requests that failed (none may).
    const failed = collectFailures([alice, bob]);
    try {
      await signUpInBrowser(alice, 'alice', hs1.url);
      await signUpInBrowser(bob, 'bob', hs2.url);

      // Alice creates a private room, inviting Bob by his full (remote) user ID.
      await alice.getByRole('link', { name: '+ New room' }).click();
      await alice.getByRole('heading', { name: 'Create a room' }).waitFor();
      await alice.getByLabel('Name', { exact: true }).fill('Across the wire');
      await alice.getByLabel(/^Invite/).fill('@bob:hs2.test');
      // A room in the clear: this test is about plain federation (the host stores the text);
      // encrypted rooms across servers are e2e/encrypted-dm.e2e.test.ts.
      await alice.getByTestId('create-encrypted').uncheck();
      await alice.getByRole('button', { name: 'Create' }).click();
      await alice.waitForURL(/\/room\//);
      await alice.getByRole('heading', { name: 'Across the wire' }).waitFor();
      const roomId = decodeURIComponent(new URL(alice.url()).pathname.split('/').pop() ?? '');
      expect(roomId).toMatch(/:hs1\.test$/);

      // Bob's server learns of the invite over federation; his client lists it (the name is
      // not known before joining, so it is shown by room ID) and he accepts.
      const invite = bob.getByTestId('invite').filter({ hasText: roomId });
      await invite.waitFor({ timeout: 30_000 });
      await invite.getByRole('button', { name: 'Accept' }).click();
      await bob.waitForURL(/\/room\//);
      await bob.getByRole('heading', { name: 'Across the wire' }).waitFor({ timeout: 20_000 });

      await sendMessage(alice, 'Hello Bob, from hs1');
      const hello = messageWith(bob, 'Hello Bob, from hs1');
      await hello.waitFor({ timeout: 20_000 });
      await sendMessage(bob, 'Hi Alice, from hs2');
      const hi = messageWith(alice, 'Hi Alice, from hs2');
      await hi.waitFor({ timeout: 20_000 });

      // Each side shows the other's server part (people from other homeservers), with the
      // full ID on hover.
      const remoteName = hello.locator('.user').first();
      expect(await remoteName.getAttribute('title')).toBe('@alice:hs1.test');
      await expect.poll(() => remoteName.textContent()).toContain(':hs1.test');
      expect(await hi.locator('.user').first().getAttribute('title')).toBe('@bob:hs2.test');
      await expect.poll(() => hi.locator('.user').first().textContent()).toContain(':hs2.test');

      // Bob (hs2) replies to Alice's message: his server signs it, hs1 sequences it.
      await hello.hover();
      await hello.getByRole('button', { name: 'Reply', exact: true }).click();
      await bob.getByTestId('reply-bar').waitFor();
      await sendMessage(bob, 'Replying across servers');
      const reply = messageWith(alice, 'Replying across servers');
      await reply.waitFor({ timeout: 20_000 });
      expect(await reply.getByTestId('reply-quote').textContent()).toContain('Hello Bob');

      // Bob edits his last message with the Up key; Alice sees the edit.
      await bob.getByTestId('composer').click();
      await bob.getByTestId('composer').press('ArrowUp');
      await bob.getByTestId('edit-bar').waitFor();
      await bob.getByTestId('composer').fill('Replying across servers, edited');
      await bob.getByTestId('composer').press('Enter');
      const edited = messageWith(alice, 'Replying across servers, edited');
      await edited.waitFor({ timeout: 20_000 });
      await edited.getByTestId('edited').waitFor();

      // Alice reacts to Bob's message; Bob sees the count.
      await hi.hover();
      await hi.getByRole('button', { name: 'React' }).click();
      await alice.getByRole('button', { name: 'React with 🎉' }).click();
      const bobsHi = messageWith(bob, 'Hi Alice, from hs2');
      await bobsHi.getByTestId('reaction').filter({ hasText: '🎉' }).waitFor({ timeout: 20_000 });
      expect(await bobsHi.getByTestId('reaction').first().textContent()).toContain('1');

      // Alice uploads an image on hs1; Bob's client loads it from hs2, which fetches it over
      // federation once and caches it.
      await alice
        .getByTestId('file-input')
        .setInputFiles({ name: 'wire.png', mimeType: 'image/png', buffer: makePng(120, 80, [200, 80, 40]) });
      for (const page of [alice, bob]) {
        const img = page.getByTestId('message-image').last();
        await img.waitFor({ timeout: 30_000 });
        await expect.poll(() => img.evaluate((el: HTMLImageElement) => el.complete && el.naturalWidth), { timeout: 20_000 }).toBe(120);
      }

      // Typing crosses as an EDU, and so do read receipts.
      await bob.getByTestId('composer').fill('Typing from hs2');
      await expect.poll(() => alice.getByTestId('typing').textContent(), { timeout: 20_000 }).toContain('bob');
      await bob.getByTestId('composer').press('Enter');
      await expect.poll(() => alice.getByTestId('typing').textContent(), { timeout: 20_000 }).toBe('');
      await messageWith(alice, 'Typing from hs2').waitFor({ timeout: 20_000 });
      await sendMessage(alice, 'Did you read this, Bob?');
      await messageWith(bob, 'Did you read this, Bob?').waitFor({ timeout: 20_000 });
      await messageWith(alice, 'Did you read this, Bob?').getByTestId('seen-by').filter({ hasText: 'bob' }).waitFor({ timeout: 20_000 });

      await expect.poll(() => alice.getByTestId('send-status').count(), { timeout: 15_000 }).toBe(0);
      await expect.poll(() => bob.getByTestId('send-status').count(), { timeout: 15_000 }).toBe(0);
      await shot(alice, '15-federated-alice');
      await shot(bob, '16-federated-bob');

      // Nothing failed: no request error and no console error on either side.
      expect(failed).toEqual([]);
      expect(a.errors).toEqual([]);
      expect(b.errors).toEqual([]);

      // The room's host goes down: Bob's message is accepted by hs2 and shown as waiting for
      // hs1; when hs1 is back, hs2 hands it over and it becomes an ordinary message.
      // (Alice's page, whose server this is, loses its connection meanwhile: not checked.)
      await alice.close();
      await hs1.stop();
      await sendMessage(bob, 'Sent while hs1 was down');
      const waiting = bob.getByTestId('send-status').filter({ hasText: 'Waiting for hs1.test' });
      await waiting.waitFor({ timeout: 20_000 });
      await shot(bob, '17-federated-host-down');
      await hs1.start();
      await expect.poll(() => bob.getByTestId('send-status').count(), { timeout: 60_000 }).toBe(0);
      await messageWith(bob, 'Sent while hs1 was down').waitFor();
      const onHost = await hs1.running.services.db('events').where({ type: 'room.message' }).orderBy('seq', 'desc').first('event');
      expect(JSON.stringify(onHost?.event)).toContain('Sent while hs1 was down');
      expect(b.errors).toEqual([]);
    } catch (err) {
      await shot(alice, 'failure-federated-alice').catch(() => {});
      await shot(bob, 'failure-federated-bob').catch(() => {});
      console.error('alice console:', a.errors, '\nbob console:', b.errors);
      throw err;
    } finally {
      await a.context.close();
      await b.context.close();
    }
  });
});

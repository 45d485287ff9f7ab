import { ParleyClient, RoomsApi } from '@parley/sdk';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../homeserver/test/support/server.js';
import {
  ensureClientBuilt,
  launch,
  makePng,
  messageWith,
  openPage,
  sendMessage,
  shot,
  signUpInBrowser,
  unexpectedConsole,
} from './support.js';

// What a new user hits in the first ten minutes (issue 11), each reproduced in Chromium:
// message order in a burst, typing notices within the rate limit, room-list previews,
// flashes on a new room, the reaction picker, the invite bar, phone width (long-press
// menu, placeholder, More menu), the member list and the header's live member count, the
// image viewer, large emoji, the display-name prompt. One server and two people for the
// whole file.

let server: TestServer;
let browser: Browser;
let alice: Page;
let bob: Page;
const errors: Record<'alice' | 'bob', string[]> = { alice: [], bob: [] };
const closers: Array<() => Promise<void>> = [];
let roomId: string;
const PASSWORD = 'correct horse battery';

/** An sdk client for a person signed up in the browser (for reading the room's order as the server has it). */
async function apiAs(username: string): Promise<RoomsApi> {
  const client = new ParleyClient({ baseUrl: server.url });
  await client.login({ username, password: PASSWORD });
  return new RoomsApi(client);
}

/** Records, from page load on, whether an element matching `selector` (and text) ever appeared. */
async function watchFor(page: Page, name: string, selector: string, text?: string): Promise<void> {
  await page.evaluate(
    ({ name, selector, text }) => {
      const w = window as unknown as Record<string, boolean>;
      w[name] = false;
      const check = () => {
        for (const el of document.querySelectorAll(selector)) if (!text || el.textContent?.includes(text)) w[name] = true;
      };
      new MutationObserver(check).observe(document.body, { subtree: true, childList: true, characterData: true });
      check();
    },
    { name, selector, text },
  );
}
const seen = (page: Page, name: string) => page.evaluate((n) => (window as unknown as Record<string, boolean>)[n], name);

beforeAll(async () => {
  ensureClientBuilt();
  server = await startTestServer({ rate_limits: { enabled: true } });
  browser = await launch();
  const a = await openPage(browser);
  const b = await openPage(browser);
  alice = a.page;
  bob = b.page;
  errors.alice = a.errors;
  errors.bob = b.errors;
  closers.push(
    () => a.context.close(),
    () => b.context.close(),
  );
  await signUpInBrowser(alice, 'alice', server.url);
  await signUpInBrowser(bob, 'bob', server.url);
});

afterAll(async () => {
  for (const close of closers) await close().catch(() => {});
  await browser?.close();
  await server?.close();
});

describe('first run of two people', () => {
  it('sign-up says which user ID the name gives (the server name, which may differ from the address opened)', async () => {
    const { page, context } = await openPage(browser);
    closers.push(() => context.close());
    await page.goto(`${server.url}/register`);
    const preview = page.getByTestId('user-id-preview');
    await preview.filter({ hasText: '@name:hs1.test' }).waitFor();
    await page.getByLabel('Username').fill(' Dinah ');
    await preview.filter({ hasText: '@dinah:hs1.test' }).waitFor();
    await expect(page.getByTestId('server-label').textContent()).resolves.toBe(new URL(server.url).host);
  });

  it('offers to set a display name instead of showing the raw user ID', async () => {
    const prompt = alice.getByTestId('name-prompt');
    await prompt.waitFor();
    await expect(prompt.textContent()).resolves.toContain('@alice:hs1.test');
    // The sidebar offers it too (on a phone, Home is the room list).
    await alice.getByTestId('set-name-link').waitFor();
    await prompt.getByLabel('Display name').fill('Alice Liddell');
    await prompt.getByRole('button', { name: 'Save' }).click();
    await alice.getByRole('heading', { name: 'Welcome, Alice Liddell' }).waitFor();
    await prompt.waitFor({ state: 'detached' });
    await alice.getByTestId('set-name-link').waitFor({ state: 'detached' });
    // Bob says "Not now": the prompt goes away.
    await bob.getByTestId('name-prompt').getByRole('button', { name: 'Not now' }).click();
    await bob.getByTestId('name-prompt').waitFor({ state: 'detached' });
  });

  it('a new room shows neither "Loading older messages…" nor an unread badge for the open room', async () => {
    await watchFor(alice, 'sawLoadingOlder', '.history-edge', 'Loading older');
    await watchFor(alice, 'sawOpenBadge', 'a.router-link-active .badge');
    await alice.getByRole('link', { name: '+ New room' }).click();
    await alice.getByLabel('Name', { exact: true }).fill('Burrow');
    await alice.getByLabel(/^Invite/).fill('bob');
    // A room in the clear (private rooms are encrypted by default; see e2e/encrypted-dm.e2e.test.ts).
    await alice.getByTestId('create-encrypted').uncheck();
    await alice.getByRole('button', { name: 'Create' }).click();
    await alice.waitForURL(/\/room\//);
    roomId = decodeURIComponent(new URL(alice.url()).pathname.split('/')[2] as string);
    await alice.getByText('This is the beginning of Burrow.').waitFor();
    const invite = bob.getByTestId('invite').filter({ hasText: 'Burrow' });
    await invite.waitFor({ timeout: 20_000 });
    await invite.getByRole('button', { name: 'Accept' }).click();
    await bob.getByRole('heading', { name: 'Burrow' }).waitFor();
    await sendMessage(alice, 'first words');
    await messageWith(bob, 'first words').waitFor({ timeout: 15_000 });
    await sendMessage(bob, 'an answer');
    await messageWith(alice, 'an answer').waitFor({ timeout: 15_000 });
    await sendMessage(alice, 'and mine again');
    await messageWith(bob, 'and mine again').waitFor({ timeout: 15_000 });
    expect(await seen(alice, 'sawLoadingOlder')).toBe(false);
    expect(await seen(alice, 'sawOpenBadge')).toBe(false);
  });

  it('a burst of 40 messages arrives in the order typed, and typing notices stay far below the limit', async () => {
    const typingPuts: Array<{ status: number; typing: boolean }> = [];
    const onResponse = (res: { url(): string; request(): { method(): string; postData(): string | null }; status(): number }) => {
      if (!res.url().includes('/typing') || res.request().method() !== 'PUT') return;
      typingPuts.push({
        status: res.status(),
        typing: (JSON.parse(res.request().postData() ?? '{}') as { typing?: boolean }).typing === true,
      });
    };
    alice.on('response', onResponse);
    const box = alice.getByTestId('composer');
    // As fast as a person pasting lines: each Enter sends while the previous ones are in flight.
    for (let i = 0; i < 40; i++) {
      await box.fill(`burst ${i}`);
      await box.press('Enter');
    }
    await messageWith(bob, 'burst 39').waitFor({ timeout: 30_000 });
    const rooms = await apiAs('bob');
    const page = await rooms.messages(roomId, { dir: 'b', limit: 100 });
    const bodies = page.chunk
      .slice()
      .reverse()
      .map((e) => String(e.content.body ?? ''))
      .filter((b) => b.startsWith('burst '));
    expect(bodies).toEqual(Array.from({ length: 40 }, (_, i) => `burst ${i}`));
    // The stop comes once, when the draft has rested (the "typing" may predate the burst:
    // Alice was still typing from the previous test).
    await expect.poll(() => typingPuts.filter((p) => !p.typing).length, { timeout: 15_000 }).toBe(1);
    alice.off('response', onResponse);
    expect(typingPuts.filter((p) => p.status !== 200)).toEqual([]);
    // At most a "typing" and a renewal besides — not a "typing" and a "stopped" per message.
    expect(typingPuts.length).toBeLessThanOrEqual(3);
    expect(unexpectedConsole(errors.alice)).toEqual([]);
  });

  it('room-list previews: replies update live, Markdown is read, an edit after a reload does not take over', async () => {
    const preview = () =>
      alice
        .getByRole('link', { name: /^Burrow/ })
        .locator('.preview')
        .textContent();
    // Alice looks at home, so the room's row is what she sees of it.
    await alice.getByRole('link', { name: 'Settings' }).click();
    await alice.waitForURL(/\/settings/);
    // Bob replies to Alice's message.
    await messageWith(bob, 'burst 39').hover();
    await messageWith(bob, 'burst 39').getByRole('button', { name: 'Reply', exact: true }).click();
    await sendMessage(bob, 'a reply to the burst');
    await expect.poll(preview, { timeout: 15_000 }).toBe('bob: a reply to the burst');
    // Markdown in the preview is read, not shown raw.
    await sendMessage(bob, 'this is **bold** and _leaning_');
    await expect.poll(preview, { timeout: 15_000 }).toBe('bob: this is bold and leaning');
    // Alice edits an older message of hers (from another tab: her open one stays on settings).
    const rooms = await apiAs('alice');
    const mine = (await rooms.messages(roomId, { dir: 'b', limit: 100 })).chunk.find((e) => e.content.body === 'burst 38');
    await rooms.send(roomId, 'room.message', {
      msgtype: 'text',
      body: '* burst 38 (edited)',
      new_content: { msgtype: 'text', body: 'burst 38 (edited)' },
      relates_to: { type: 'replace', event_id: mine?.event_id },
    });
    await alice.reload();
    await alice.getByRole('link', { name: /^Burrow/ }).waitFor();
    await expect.poll(preview, { timeout: 15_000 }).toBe('bob: this is bold and leaning');
    // An edit of the newest message changes the preview live.
    await messageWith(bob, 'this is').waitFor();
    await bob.getByTestId('composer').press('ArrowUp');
    await bob.getByTestId('composer').fill('this is **bold** and fixed');
    await bob.getByTestId('composer').press('Enter');
    await expect.poll(preview, { timeout: 15_000 }).toBe('bob: this is bold and fixed');
  });

  it('the reaction picker closes on a click elsewhere, on reply and on send, and nothing paints over it', async () => {
    await alice.getByRole('link', { name: /^Burrow/ }).click();
    await alice.getByRole('heading', { name: 'Burrow' }).waitFor();
    const target = messageWith(alice, 'burst 30');
    const picker = alice.getByRole('dialog', { name: 'Pick a reaction' });
    const open = async () => {
      await target.scrollIntoViewIfNeeded();
      await target.hover();
      await target.getByRole('button', { name: 'React', exact: true }).click();
      await picker.waitFor();
    };
    await open();
    // The picker is on top: the point at its centre belongs to it, not to a later row.
    const onTop = await picker.evaluate((el) => {
      const r = el.getBoundingClientRect();
      const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height - 20);
      return hit !== null && el.contains(hit);
    });
    expect(onTop).toBe(true);
    await shot(alice, 'issue11-reaction-picker');
    await alice.getByRole('heading', { name: 'Burrow' }).click();
    await picker.waitFor({ state: 'detached' });
    await open();
    await messageWith(alice, 'burst 31').hover();
    await messageWith(alice, 'burst 31').getByRole('button', { name: 'Reply', exact: true }).click();
    await picker.waitFor({ state: 'detached' });
    await open();
    await alice.keyboard.press('Escape');
    await picker.waitFor({ state: 'detached' });
    await open();
    await alice.getByTestId('composer').fill('replying while the picker is open');
    await alice.getByTestId('composer').press('Enter');
    await picker.waitFor({ state: 'detached' });
    await messageWith(alice, 'replying while the picker is open').waitFor();
  });

  it('the invite bar closes after inviting and leaves no stale line behind', async () => {
    const carol = new ParleyClient({ baseUrl: server.url });
    await carol.register({ username: 'carol', password: PASSWORD });
    await alice.getByRole('button', { name: 'Invite', exact: true }).click();
    await alice.getByLabel('User ID to invite').fill('carol');
    await alice.getByRole('button', { name: 'Send invite' }).click();
    await alice.getByTestId('invited').filter({ hasText: 'Invited @carol:hs1.test.' }).waitFor();
    await alice.getByRole('form', { name: 'Invite someone' }).waitFor({ state: 'detached' });
    // Reopening starts clean; Escape closes it.
    await alice.getByRole('button', { name: 'Invite', exact: true }).click();
    await alice.getByTestId('invited').waitFor({ state: 'detached' });
    await alice.getByLabel('User ID to invite').press('Escape');
    await alice.getByRole('form', { name: 'Invite someone' }).waitFor({ state: 'detached' });
  });

  it('a member list beside the timeline, toggled from the header', async () => {
    await alice.getByTestId('members-toggle').click();
    const list = alice.getByTestId('member-list');
    await list.getByText('Alice Liddell').waitFor();
    await list.getByText('@bob:hs1.test').waitFor();
    await alice.getByTestId('side-panel').getByText('Invited — 1').waitFor();
    await shot(alice, 'issue11-members-desktop');
    await alice.getByTestId('members-toggle').click();
    await list.waitFor({ state: 'detached' });
  });

  it('40 lines sent in one go (as when pasting them one after another) arrive in the order written', async () => {
    const box = alice.getByTestId('composer');
    // Faster than any typist: 40 Enters in one task, so all 40 sends exist before the first
    // is answered (without the room's send line they race, and the server sees them in any order).
    await box.evaluate((el) => {
      const area = el as HTMLTextAreaElement;
      for (let i = 0; i < 40; i++) {
        area.value = `pasted ${i}`;
        area.dispatchEvent(new Event('input', { bubbles: true }));
        area.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true }));
      }
    });
    await messageWith(bob, 'pasted 39').waitFor({ timeout: 30_000 });
    const rooms = await apiAs('bob');
    const pasted = (await rooms.messages(roomId, { dir: 'b', limit: 100 })).chunk
      .map((e) => String(e.content.body ?? ''))
      .filter((b) => b.startsWith('pasted '))
      .reverse();
    expect(pasted).toEqual(Array.from({ length: 40 }, (_, i) => `pasted ${i}`));
    expect(unexpectedConsole(errors.alice)).toEqual([]);
  });

  it('images open in a viewer with name, size and download; emoji-only messages are large', async () => {
    await alice
      .getByTestId('file-input')
      .setInputFiles({ name: 'tea-party.png', mimeType: 'image/png', buffer: makePng(900, 600, [200, 120, 60]) });
    const image = bob.getByTestId('message-image').last();
    await image.waitFor({ timeout: 20_000 });
    await image.click();
    const viewer = bob.getByTestId('image-viewer');
    await viewer.waitFor();
    await viewer.getByText('tea-party.png').waitFor();
    await viewer.getByText(/\d+(\.\d)? (B|KB)/).waitFor();
    await viewer.getByText('900×600').waitFor();
    // Enlarged: the timeline shows it at most 360 px wide, the viewer at its own size here.
    const shown = (await image.boundingBox())?.width ?? 0;
    const enlarged = (await viewer.getByRole('img').boundingBox())?.width ?? 0;
    expect(shown).toBeLessThanOrEqual(360);
    expect(enlarged).toBeGreaterThanOrEqual(2 * shown);
    await viewer.getByRole('button', { name: 'Download' }).waitFor();
    await shot(bob, 'issue11-image-viewer');
    await bob.keyboard.press('Escape');
    await viewer.waitFor({ state: 'detached' });

    await sendMessage(bob, '🎉🎉');
    await sendMessage(bob, 'party 🎉');
    const big = await messageWith(alice, '🎉🎉')
      .getByTestId('message-body')
      .evaluate((el) => Number.parseFloat(getComputedStyle(el).fontSize));
    const normal = await messageWith(alice, 'party 🎉')
      .getByTestId('message-body')
      .evaluate((el) => Number.parseFloat(getComputedStyle(el).fontSize));
    expect(big).toBeGreaterThanOrEqual(2 * normal);
  });

  it('the disabled Send button keeps readable contrast in dark mode', async () => {
    await alice.emulateMedia({ colorScheme: 'dark' });
    await alice.getByTestId('composer').fill('');
    const ratio = await alice.getByRole('button', { name: 'Send' }).evaluate((el) => {
      const rgb = (c: string) => (c.match(/[\d.]+/g) ?? []).slice(0, 3).map(Number);
      const lum = (c: string) => {
        const [r, g, b] = rgb(c).map((v) => {
          const s = v / 255;
          return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
        }) as [number, number, number];
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
      };
      const style = getComputedStyle(el);
      const [l1, l2] = [lum(style.color), lum(style.backgroundColor)].sort((x, y) => y - x) as [number, number];
      return { ratio: (l1 + 0.05) / (l2 + 0.05), opacity: Number(style.opacity) };
    });
    expect(ratio.opacity).toBe(1);
    expect(ratio.ratio).toBeGreaterThanOrEqual(4.5);
    await alice.emulateMedia({ colorScheme: 'light' });
  });

  it("the header's member count follows joins, leaves, kicks and bans live, as the members panel does", async () => {
    const asAlice = await apiAs('alice');
    const asBob = await apiAs('bob');
    const { room_id: lobby } = await asAlice.create({ name: 'Lobby', visibility: 'public' });
    // Opened from the sidebar (the stream brought the new room): the app is not reloaded.
    await alice.getByRole('link', { name: /^Lobby/ }).click({ timeout: 15_000 });
    await alice.getByRole('heading', { name: 'Lobby' }).waitFor();
    const toggle = alice.getByTestId('members-toggle');
    // What the header says: its subtitle, the members button's count and its label.
    const shown = async () =>
      `${await alice.locator('.page-header .sub').textContent()} / ${await toggle.locator('.count').textContent()} / ${await toggle.getAttribute('aria-label')}`;
    const one = '1 member / 1 / Members: 1';
    const two = '2 members / 2 / Members: 2';
    await expect.poll(shown).toBe(one);
    let loads = 0;
    const onLoad = () => loads++;
    alice.on('load', onLoad);
    // Only the stream tells Alice: no reload, no click.
    await asBob.join(lobby);
    await expect.poll(shown, { timeout: 10_000 }).toBe(two);
    await asBob.leave(lobby);
    await expect.poll(shown, { timeout: 10_000 }).toBe(one);

    // With the members panel open, the header never says otherwise than the panel, not even
    // for a moment (a page-side observer sees every change of either).
    await toggle.click();
    const panel = alice.getByTestId('side-panel');
    await panel.getByText('Joined — 1').waitFor();
    await alice.evaluate(() => {
      const w = window as unknown as { countMismatches: string[] };
      w.countMismatches = [];
      const check = () => {
        const header = document.querySelector('[data-testid="members-toggle"] .count')?.textContent?.trim();
        const heading = [...document.querySelectorAll('[data-testid="side-panel"] h3')].find((h) => h.textContent?.startsWith('Joined'));
        const listed = /(\d+)/.exec(heading?.textContent ?? '')?.[1];
        if (header !== undefined && listed !== undefined && header !== listed) w.countMismatches.push(`header ${header}, panel ${listed}`);
      };
      new MutationObserver(check).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    const bobId = '@bob:hs1.test';
    const steps: Array<[() => Promise<unknown>, string, string]> = [
      [() => asBob.join(lobby), two, 'Joined — 2'],
      [() => asAlice.kick(lobby, bobId, 'testing kicks'), one, 'Joined — 1'],
      [() => asBob.join(lobby), two, 'Joined — 2'],
      [() => asAlice.ban(lobby, bobId, 'testing bans'), one, 'Joined — 1'],
    ];
    for (const [act, header, listed] of steps) {
      await act();
      await expect.poll(shown, { timeout: 10_000 }).toBe(header);
      await panel.getByText(listed).waitFor();
    }
    expect(await alice.evaluate(() => (window as unknown as { countMismatches: string[] }).countMismatches)).toEqual([]);
    await toggle.click();
    alice.off('load', onLoad);
    expect(loads).toBe(0);
  });
});

describe('phone width', () => {
  let phone: Page;
  beforeAll(async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, locale: 'en-GB' });
    closers.push(() => context.close());
    phone = await context.newPage();
    await phone.goto(server.url);
    await phone.waitForURL(/\/login/);
    await phone.getByLabel('Username').fill('bob');
    await phone.getByLabel('Password').fill(PASSWORD);
    await phone.getByRole('button', { name: 'Sign in' }).click();
    // A phone shows the room list first.
    await phone.getByLabel('Filter rooms').waitFor();
  });

  it('no Ctrl+K hint; the composer placeholder fits; actions come from a long press; Invite and Leave under More', async () => {
    await expect(phone.getByLabel('Filter rooms').getAttribute('placeholder')).resolves.toBe('Filter rooms');
    await phone.goto(`${server.url}/room/${encodeURIComponent(roomId)}`);
    await phone.getByRole('heading', { name: 'Burrow' }).waitFor();
    const composer = phone.getByTestId('composer');
    await expect(composer.getAttribute('placeholder')).resolves.toBe('Message');
    // One line: the empty composer is no taller than its single-line minimum.
    expect(await composer.evaluate((el) => el.scrollHeight <= el.clientHeight + 1)).toBe(true);

    const msg = messageWith(phone, 'party 🎉');
    await msg.waitFor();
    const actions = msg.getByRole('toolbar');
    await expect(actions.isVisible()).resolves.toBe(false);
    await shot(phone, 'issue11-phone-room');
    // Press and hold.
    const box = await msg.getByTestId('message-body').boundingBox();
    const at = { clientX: (box?.x ?? 0) + 10, clientY: (box?.y ?? 0) + 10, pointerType: 'touch', isPrimary: true, bubbles: true };
    await msg.getByTestId('message-body').dispatchEvent('pointerdown', at);
    await actions.waitFor({ state: 'visible' });
    await msg.getByTestId('message-body').dispatchEvent('pointerup', at);
    await actions.getByRole('button', { name: 'Reply', exact: true }).waitFor();
    await expect(actions.getByRole('button', { name: 'Reply', exact: true }).textContent()).resolves.toContain('Reply');
    // Each label stands apart from its icon (not "☺React").
    const gaps = await actions.getByRole('button').evaluateAll((buttons) =>
      buttons.map((b) => {
        const icon = b.querySelector('svg')?.getBoundingClientRect();
        const text = b.querySelector('.menu-label')?.getBoundingClientRect();
        return icon && text ? Math.round(text.left - icon.right) : -1;
      }),
    );
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(4);
    await shot(phone, 'issue11-phone-long-press');
    await actions.getByRole('button', { name: 'Reply', exact: true }).click();
    await actions.waitFor({ state: 'hidden' });
    await phone.getByText('Replying to').waitFor();

    await phone.getByRole('button', { name: 'More room actions' }).click();
    const more = phone.getByTestId('room-more');
    await more.getByRole('button', { name: 'Leave room' }).waitFor();
    await more.getByRole('button', { name: 'Invite someone' }).click();
    await phone.getByLabel('User ID to invite').waitFor();
    await phone.getByRole('form', { name: 'Invite someone' }).getByRole('button', { name: 'Cancel' }).click();
    await phone.getByRole('form', { name: 'Invite someone' }).waitFor({ state: 'detached' });
  });
});

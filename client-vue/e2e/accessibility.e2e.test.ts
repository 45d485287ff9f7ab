import {
  contactLinkFromText,
  contactLinkUrl,
  createContactLink,
  MailboxClient,
  ParleyClient,
  RoomsApi,
  sendContactRequest,
} from '@parley/sdk';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../homeserver/test/support/server.js';
import { type AxeFinding, axe, ensureClientBuilt, launch, makePng, messageWith, openPage, shot, signUpInBrowser } from './support.js';

// Every page of the web client against WCAG 2.1 A/AA (axe-core in Chromium), in the light and
// the dark theme, with a room that holds what a room holds (replies, reactions, an edit, an
// image, a pin, someone typing); and screenshots of the main pages at desktop and phone width.

let server: TestServer;
let browser: Browser;
let alice: Page;
let roomId: string;
let bobClient: ParleyClient;
/** A contact link of someone else's (Bob's), for the page that sends a request through it. */
let bobsLink: string;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  ensureClientBuilt();
  server = await startTestServer();
  browser = await launch();
  const a = await openPage(browser);
  alice = a.page;
  closers.push(() => a.context.close());
  await signUpInBrowser(alice, 'alice', server.url);

  // A lived-in room, written through the API (the UI for these is tested elsewhere).
  const client = new ParleyClient({ baseUrl: server.url });
  await client.login({ username: 'alice', password: 'correct horse battery' });
  const rooms = new RoomsApi(client);
  bobClient = new ParleyClient({ baseUrl: server.url });
  await bobClient.register({ username: 'bob', password: 'correct horse battery' });
  const bob = new RoomsApi(bobClient);
  roomId = (await rooms.create({ visibility: 'private', name: 'Garden', topic: 'Roses, mostly', invite: ['@bob:hs1.test'] })).room_id;
  await bob.join(roomId);
  const first = await rooms.send(roomId, 'room.message', { msgtype: 'text', body: 'The roses are **red**, see https://example.org' });
  await bob.send(roomId, 'room.message', {
    msgtype: 'text',
    body: 'Painting them!',
    relates_to: { type: 'reply', event_id: first.event_id },
  });
  await bob.send(roomId, 'room.reaction', { relates_to: { type: 'annotation', event_id: first.event_id, key: '🌹' } });
  const typo = await bob.send(roomId, 'room.message', { msgtype: 'text', body: 'Thye are white' });
  await bob.send(roomId, 'room.message', {
    msgtype: 'text',
    body: '* They are white',
    new_content: { msgtype: 'text', body: 'They are white' },
    relates_to: { type: 'replace', event_id: typo.event_id },
  });
  await rooms.setState(roomId, 'room.pinned', { pinned: [first.event_id] });
  await bob.send(roomId, 'room.message', { msgtype: 'text', body: '🌹🌹' });
  await bob.send(roomId, 'room.message', { msgtype: 'text', body: `Thanks @alice:hs1.test` });
  await alice.goto(`${server.url}/room/${encodeURIComponent(roomId)}`);
  await alice
    .getByTestId('file-input')
    .setInputFiles({ name: 'garden.png', mimeType: 'image/png', buffer: makePng(240, 160, [60, 160, 80]) });
  await alice.getByTestId('message-image').last().waitFor();
  await messageWith(alice, 'Thanks').waitFor();
  // An invitation waiting in the sidebar.
  await bob.create({ visibility: 'private', name: 'Shed', invite: ['@alice:hs1.test'] });
  bobsLink = contactLinkUrl(server.url, (await createContactLink(new MailboxClient(), server.url, 'for the accessibility test')).link);
});

afterAll(async () => {
  for (const close of closers) await close().catch(() => {});
  await browser?.close();
  await server?.close();
});

interface Visit {
  name: string;
  open(page: Page): Promise<void>;
}

const room = () => `${server.url}/room/${encodeURIComponent(roomId)}`;
const visits: Visit[] = [
  {
    name: 'sign-in',
    open: async (p) => {
      await p.goto(`${server.url}/login`);
      await p.getByRole('button', { name: 'Sign in' }).waitFor();
    },
  },
  {
    name: 'sign-up',
    open: async (p) => {
      await p.goto(`${server.url}/register`);
      await p.getByRole('button', { name: 'Create account' }).waitFor();
    },
  },
  {
    name: 'home',
    open: async (p) => {
      await p.goto(server.url);
      await p.getByRole('heading', { name: /^Welcome/ }).waitFor();
    },
  },
  {
    name: 'room',
    open: async (p) => {
      await p.goto(room());
      await messageWith(p, 'Thanks').waitFor();
      // Bob is typing (the notice line is part of the page too).
      await bobClient.request('PUT', `/api/v1/rooms/${encodeURIComponent(roomId)}/typing`, { typing: true, timeout_ms: 30_000 });
      await p.getByTestId('typing').filter({ hasText: 'bob' }).waitFor();
    },
  },
  {
    name: 'room-hover-actions',
    open: async (p) => {
      await messageWith(p, 'Painting').hover();
      await messageWith(p, 'Painting').getByRole('toolbar').waitFor();
    },
  },
  {
    name: 'room-reaction-picker',
    open: async (p) => {
      await messageWith(p, 'Painting').getByRole('button', { name: 'React', exact: true }).click();
      await p.getByRole('dialog', { name: 'Pick a reaction' }).waitFor();
    },
  },
  {
    name: 'room-members',
    open: async (p) => {
      await p.keyboard.press('Escape');
      await p.getByTestId('members-toggle').click();
      await p.getByTestId('member-list').getByText('@bob:hs1.test').waitFor();
    },
  },
  {
    name: 'room-pins',
    open: async (p) => {
      await p.getByRole('button', { name: /^Pinned messages/ }).click();
      await p.getByTestId('side-panel').getByText('The roses').waitFor();
    },
  },
  {
    name: 'room-search',
    open: async (p) => {
      await p.getByRole('button', { name: 'Search messages' }).click();
      await p.getByTestId('side-panel').waitFor();
    },
  },
  {
    name: 'room-thread',
    open: async (p) => {
      await messageWith(p, 'Painting').hover();
      await messageWith(p, 'Painting').getByRole('button', { name: 'Reply in thread' }).click();
      await p.getByTestId('side-panel').waitFor();
    },
  },
  {
    name: 'room-invite-bar',
    open: async (p) => {
      await p.goto(room());
      await p.getByRole('button', { name: 'Invite', exact: true }).click();
      await p.getByLabel('User ID to invite').waitFor();
    },
  },
  {
    name: 'image-viewer',
    open: async (p) => {
      await p.goto(room());
      await p.getByTestId('message-image').last().click();
      await p.getByTestId('image-viewer').waitFor();
    },
  },
  {
    name: 'room-settings-general',
    open: async (p) => {
      await p.goto(`${room()}/settings`);
      await p.getByRole('tab', { name: 'General' }).waitFor();
    },
  },
  {
    name: 'room-settings-members',
    open: async (p) => {
      await p.getByRole('tab', { name: 'Members' }).click();
      await p.getByText('@bob:hs1.test').first().waitFor();
    },
  },
  {
    name: 'room-settings-roles',
    open: async (p) => {
      await p.getByRole('tab', { name: 'Roles' }).click();
      await p.getByRole('tabpanel').waitFor();
    },
  },
  {
    name: 'create-room',
    open: async (p) => {
      await p.goto(`${server.url}/create`);
      await p.getByRole('heading', { name: 'Create a room' }).waitFor();
    },
  },
  {
    name: 'join-room',
    open: async (p) => {
      await p.goto(`${server.url}/join`);
      await p.getByRole('heading', { name: 'Join a room' }).waitFor();
    },
  },
  {
    name: 'directory',
    open: async (p) => {
      await p.goto(`${server.url}/directory`);
      await p.getByRole('heading', { name: 'Explore public rooms' }).waitFor();
    },
  },
  {
    name: 'direct-message',
    open: async (p) => {
      await p.goto(`${server.url}/dm`);
      await p.getByRole('heading', { name: 'Start a direct message', exact: true }).waitFor();
    },
  },
  {
    name: 'contacts',
    open: async (p) => {
      await p.goto(`${server.url}/contacts`);
      await p.getByRole('heading', { level: 1, name: 'Contacts' }).waitFor();
      if ((await p.getByTestId('contact-link').count()) === 0) {
        // A link of Alice's, and a request through it waiting for her (sent as the sdk sends it).
        await p.getByLabel('Label (only you see it)').fill('Conference badge');
        await p.getByTestId('make-contact-link').click();
        const link = contactLinkFromText(await p.getByTestId('contact-link-url').inputValue());
        await sendContactRequest(new MailboxClient(), link, { userId: '@bob:hs1.test', note: 'We met at the talk' });
        await p.getByTestId('contacts-check').click();
      }
      await p.getByTestId('contact-request').waitFor();
    },
  },
  {
    name: 'contact-request',
    open: async (p) => {
      await p.goto(bobsLink);
      await p.getByTestId('contact-note').waitFor();
    },
  },
  {
    name: 'settings',
    open: async (p) => {
      await p.goto(`${server.url}/settings`);
      await p.getByRole('heading', { name: 'Settings' }).waitFor();
    },
  },
];

describe('WCAG 2.1 AA (axe-core) on every page', () => {
  it.each(['light', 'dark'] as const)('%s theme', async (theme) => {
    const signedOut = await openPage(browser);
    closers.push(() => signedOut.context.close());
    await alice.emulateMedia({ colorScheme: theme });
    await signedOut.page.emulateMedia({ colorScheme: theme });
    const found: Array<AxeFinding & { page: string }> = [];
    for (const visit of visits) {
      const page = visit.name.startsWith('sign-') ? signedOut.page : alice;
      await visit.open(page);
      for (const f of await axe(page)) found.push({ page: visit.name, ...f });
    }
    expect(found).toEqual([]);
  });
});

describe('WCAG 2.1 AA at phone width', () => {
  it.each(['light', 'dark'] as const)('%s theme: room list, room, long-press menu, More menu', async (theme) => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, locale: 'en-GB' });
    closers.push(() => context.close());
    const phone = await context.newPage();
    await phone.emulateMedia({ colorScheme: theme });
    await phone.goto(`${server.url}/login`);
    await phone.getByLabel('Username').fill('bob');
    await phone.getByLabel('Password').fill('correct horse battery');
    await phone.getByRole('button', { name: 'Sign in' }).click();
    await phone.getByRole('link', { name: /^Garden/ }).waitFor();
    const found: Array<AxeFinding & { page: string }> = [];
    const check = async (name: string) => {
      for (const f of await axe(phone)) found.push({ page: name, ...f });
    };
    await check('phone-room-list');
    await phone.getByRole('link', { name: /^Garden/ }).click();
    const msg = messageWith(phone, 'Painting');
    await msg.waitFor();
    await check('phone-room');
    const at = { clientX: 80, clientY: 10, pointerType: 'touch', isPrimary: true, bubbles: true };
    await msg.getByTestId('message-body').dispatchEvent('pointerdown', at);
    await msg.getByRole('toolbar').waitFor({ state: 'visible' });
    await msg.getByTestId('message-body').dispatchEvent('pointerup', at);
    await check('phone-long-press-menu');
    await phone.getByRole('heading', { name: 'Garden' }).click();
    await phone.getByRole('button', { name: 'More room actions' }).click();
    await phone.getByTestId('room-more').waitFor();
    await check('phone-more-menu');
    await shot(phone, `issue11-phone-${theme}-more-menu`);
    expect(found).toEqual([]);
  });
});

describe('screenshots', () => {
  it('desktop and phone width, light and dark', async () => {
    const signedOut = await openPage(browser);
    closers.push(() => signedOut.context.close());
    for (const theme of ['light', 'dark'] as const) {
      for (const [width, height, label] of [
        [1280, 800, 'desktop'],
        [390, 844, 'phone'],
      ] as const) {
        await signedOut.page.setViewportSize({ width, height });
        await signedOut.page.emulateMedia({ colorScheme: theme });
        await signedOut.page.goto(`${server.url}/login`);
        await signedOut.page.getByRole('button', { name: 'Sign in' }).waitFor();
        await shot(signedOut.page, `issue11-${label}-${theme}-sign-in`);
        await alice.setViewportSize({ width, height });
        await alice.emulateMedia({ colorScheme: theme });
        await alice.goto(server.url);
        if (label === 'desktop') await alice.getByRole('heading', { name: /^Welcome/ }).waitFor();
        await alice.getByRole('link', { name: /^Garden/ }).waitFor();
        await shot(alice, `issue11-${label}-${theme}-home`);
        await alice.goto(room());
        await messageWith(alice, 'Thanks').waitFor();
        await alice.getByTestId('message-image').last().waitFor();
        await shot(alice, `issue11-${label}-${theme}-room`);
        if (label === 'desktop') {
          await alice.getByTestId('members-toggle').click();
          await alice.getByTestId('member-list').waitFor();
          await shot(alice, `issue11-${label}-${theme}-members`);
        }
      }
    }
    await alice.setViewportSize({ width: 1280, height: 800 });
  });
});

import { createContactLink, MailboxClient, type OwnedContactLink } from '@parley/sdk';
import { createPinia, setActivePinia } from 'pinia';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { POLL_INTERVAL_MS, useContactsStore } from '../src/stores/contacts.js';
import { useSessionStore } from '../src/stores/session.js';

// The contacts store's bookkeeping: links kept per user in localStorage, and the queues read
// when the app opens and then every minute while it stays open. The mailbox here is an
// in-memory stand-in for /mailbox/v1 (the real server is exercised by e2e/contact-links).

const BASE = 'http://mail.test';
let reads: string[] = [];

function fakeMailbox(): typeof fetch {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input));
    const json = (status: number, body: unknown) =>
      new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
    const limits = { block_bytes: 1024, max_blob_bytes: 1020, queue_quota: 128, ttl_ms: 86_400_000 };
    if (url.pathname === '/mailbox/v1/limits') return json(200, limits);
    if (url.pathname === '/mailbox/v1/queues' && init?.method === 'POST') {
      const id = (n: number) => String(n).repeat(32).slice(0, 32);
      return json(201, { receive_id: id(reads.length + 1), send_id: id(reads.length + 2), limits });
    }
    if (/\/messages$/.test(url.pathname)) {
      reads.push(url.pathname);
      return json(200, { messages: [], more: false });
    }
    return json(404, { error: { code: 'PARLEY_NOT_FOUND', message: 'no such route' } });
  }) as typeof fetch;
}

/** A fresh app (Pinia) whose session, as main.ts does, is restored from localStorage. */
function openApp(userId: string): void {
  const session = { user_id: userId, device_id: 'DEV', access_token: 'at', refresh_token: 'rt', expires_at_ms: Date.now() + 3_600_000 };
  localStorage.setItem('parley.session.v1', JSON.stringify({ baseUrl: BASE, session }));
  setActivePinia(createPinia());
  useSessionStore().restore();
}

async function storedLink(label: string): Promise<OwnedContactLink> {
  return createContactLink(new MailboxClient({ fetch: fakeMailbox() }), BASE, label);
}

describe('contacts store', () => {
  beforeEach(() => {
    reads = [];
    localStorage.clear();
    vi.stubGlobal('fetch', fakeMailbox());
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it('reads each link once on open, then once a minute while held, and stops when released', async () => {
    const link = await storedLink('one');
    localStorage.setItem('parley.contact-links.v1:@alice:hs1.test', JSON.stringify([link]));
    openApp('@alice:hs1.test');
    const contacts = useContactsStore();
    expect(contacts.links.map((l) => l.label)).toEqual(['one']);
    contacts.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(reads).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(POLL_INTERVAL_MS - 1);
    expect(reads).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(reads).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(2 * POLL_INTERVAL_MS);
    expect(reads).toHaveLength(4);
    contacts.stop();
    await vi.advanceTimersByTimeAsync(5 * POLL_INTERVAL_MS);
    expect(reads).toHaveLength(4);
  });

  it('keeps links per user: another account signed in on the same browser sees none of them', async () => {
    localStorage.setItem('parley.contact-links.v1:@alice:hs1.test', JSON.stringify([await storedLink('alice')]));
    localStorage.setItem('parley.contact-links.v1:@mallory:hs1.test', '{not json');
    openApp('@bob:hs1.test');
    expect(useContactsStore().links).toEqual([]);
    openApp('@mallory:hs1.test');
    expect(useContactsStore().links).toEqual([]);
    openApp('@alice:hs1.test');
    const contacts = useContactsStore();
    expect(contacts.links.map((l) => l.label)).toEqual(['alice']);
    const made = await contacts.makeLink('  second  ');
    expect(made.label).toBe('second');
    const saved = JSON.parse(localStorage.getItem('parley.contact-links.v1:@alice:hs1.test') ?? '[]') as OwnedContactLink[];
    expect(saved.map((l) => l.label)).toEqual(['second', 'alice']);
  });
});

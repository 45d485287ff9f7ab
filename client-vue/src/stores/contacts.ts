import {
  type ContactLink,
  contactLinkUrl,
  createContactLink,
  dismissContactRequest,
  fetchContactRequests,
  isParleyApiError,
  MailboxClient,
  type OwnedContactLink,
  type ReceivedContactRequest,
  revokeContactLink,
  sendContactRequest,
} from '@parley/sdk';
import { defineStore } from 'pinia';
import { computed, ref, watch } from 'vue';
import { useE2eStore } from './e2e.js';
import { useRoomsStore } from './rooms.js';
import { useSessionStore } from './session.js';

/**
 * Contact links (docs/protocol.md): each link is a mailbox queue on this user's homeserver. Its
 * receive ID, queue key and X25519 secret key stay in this browser's localStorage, per user —
 * the server holds only the queue. Requests are read on open and every minute while the app is
 * open; they stay in the queue until accepted (a DM starts) or ignored.
 */

export const POLL_INTERVAL_MS = 60_000;
const STORAGE_PREFIX = 'parley.contact-links.v1:';
const MAX_LINKS = 20;

function isOwnedLink(v: unknown): v is OwnedContactLink {
  const o = v as OwnedContactLink;
  return typeof o?.id === 'string' && typeof o.queue?.receiveId === 'string' && typeof o.linkSecretKey === 'string' && !!o.link;
}

function readLinks(userId: string): OwnedContactLink[] {
  try {
    const raw = JSON.parse(localStorage.getItem(STORAGE_PREFIX + userId) ?? '[]') as unknown;
    return Array.isArray(raw) ? raw.filter(isOwnedLink).slice(0, MAX_LINKS) : [];
  } catch {
    return [];
  }
}

export const useContactsStore = defineStore('contacts', () => {
  const session = useSessionStore();
  const rooms = useRoomsStore();
  const mailbox = new MailboxClient();
  const links = ref<OwnedContactLink[]>([]);
  const requests = ref<ReceivedContactRequest[]>([]);
  /** Links whose queue the server no longer has (revoked elsewhere, or unused past the retention). */
  const gone = ref<Set<string>>(new Set());
  const pollError = ref<string | null>(null);
  const lastPoll = ref<number | null>(null);
  let timer: ReturnType<typeof setInterval> | null = null;
  let users = 0;
  let polling: Promise<void> | null = null;

  const pending = computed(() => requests.value.length);

  function save(): void {
    if (!session.userId) return;
    localStorage.setItem(STORAGE_PREFIX + session.userId, JSON.stringify(links.value));
  }

  watch(
    () => session.userId,
    (userId) => {
      links.value = userId ? readLinks(userId) : [];
      requests.value = [];
      gone.value = new Set();
    },
    { immediate: true },
  );

  function shareUrl(owned: OwnedContactLink): string {
    return contactLinkUrl(window.location.origin, owned.link);
  }

  async function makeLink(label: string): Promise<OwnedContactLink> {
    if (links.value.length >= MAX_LINKS) throw new Error(`You have ${MAX_LINKS} links already: revoke one first.`);
    const owned = await createContactLink(mailbox, session.baseUrl, label.trim());
    links.value = [owned, ...links.value];
    save();
    return owned;
  }

  async function revoke(id: string): Promise<void> {
    const owned = links.value.find((l) => l.id === id);
    if (!owned) return;
    try {
      await revokeContactLink(mailbox, owned);
    } catch (err) {
      // Already gone on the server: forgetting it here is all that is left to do.
      if (!(isParleyApiError(err) && err.status === 404)) throw err;
    }
    links.value = links.value.filter((l) => l.id !== id);
    requests.value = requests.value.filter((r) => r.linkId !== id);
    save();
  }

  async function pollOnce(): Promise<void> {
    const found: ReceivedContactRequest[] = [];
    const failures: string[] = [];
    const missing = new Set<string>();
    for (const owned of links.value) {
      try {
        found.push(...(await fetchContactRequests(mailbox, owned)));
      } catch (err) {
        if (isParleyApiError(err) && err.status === 404) missing.add(owned.id);
        else failures.push(err instanceof Error ? err.message : String(err));
      }
    }
    requests.value = found.sort((a, b) => a.ts - b.ts);
    gone.value = missing;
    pollError.value = failures.length ? `Could not check every link: ${failures[0]}` : null;
    lastPoll.value = Date.now();
  }

  /** Reads every link's queue (one run at a time). */
  function poll(): Promise<void> {
    polling ??= pollOnce().finally(() => {
      polling = null;
    });
    return polling;
  }

  function linkOf(request: ReceivedContactRequest): OwnedContactLink {
    const owned = links.value.find((l) => l.id === request.linkId);
    if (!owned) throw new Error('That link was revoked.');
    return owned;
  }

  function drop(request: ReceivedContactRequest): void {
    requests.value = requests.value.filter((r) => !(r.msgId === request.msgId && r.linkId === request.linkId));
  }

  /**
   * Starts (or opens) a DM with the sender as "Start a direct message" does — end-to-end
   * encrypted whenever this device can encrypt — then acknowledges the request.
   */
  async function accept(request: ReceivedContactRequest): Promise<string> {
    const e2e = useE2eStore();
    const encrypt = e2e.status !== 'failed' && e2e.status !== 'off';
    const roomId = await rooms.startDirect(request.userId, { encrypted: encrypt });
    if (encrypt && rooms.byId.get(roomId)?.encrypted) await e2e.enableEncryption(roomId);
    await dismissContactRequest(mailbox, linkOf(request), request.msgId).catch(() => {});
    drop(request);
    return roomId;
  }

  async function ignore(request: ReceivedContactRequest): Promise<void> {
    await dismissContactRequest(mailbox, linkOf(request), request.msgId);
    drop(request);
  }

  /** Sends our own request through someone's link. */
  async function sendRequest(link: ContactLink, note: string): Promise<void> {
    const displayName = session.profile?.displayname ?? undefined;
    await sendContactRequest(mailbox, link, { userId: session.userId, note, ...(displayName ? { displayName } : {}) });
  }

  /** Polls now and every minute while at least one caller holds it (the nav entry does, while the app is open). */
  function start(): void {
    users++;
    if (timer) return;
    void poll().catch(() => {});
    timer = setInterval(() => void poll().catch(() => {}), POLL_INTERVAL_MS);
  }

  function stop(): void {
    users = Math.max(0, users - 1);
    if (users > 0 || !timer) return;
    clearInterval(timer);
    timer = null;
  }

  return {
    links,
    requests,
    gone,
    pending,
    pollError,
    lastPoll,
    shareUrl,
    makeLink,
    revoke,
    poll,
    accept,
    ignore,
    sendRequest,
    start,
    stop,
  };
});

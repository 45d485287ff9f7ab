import type { AuthFlows, Profile } from '@parley/schemas';
import { ParleyClient, RoomsApi, type StoredSession } from '@parley/sdk';
import { defineStore } from 'pinia';
import { computed, markRaw, ref, shallowRef } from 'vue';
import { homeserverUrl, serverOf } from '../lib/ids.js';

const STORAGE_KEY = 'parley.session.v1';

interface Persisted {
  baseUrl: string;
  session: StoredSession | null;
}

function defaultBaseUrl(): string {
  return window.location.origin;
}

function readPersisted(): Persisted {
  try {
    const raw = window.localStorage.getItem(STORAGE_KEY);
    if (raw) {
      const value = JSON.parse(raw) as Partial<Persisted>;
      if (typeof value.baseUrl === 'string') return { baseUrl: value.baseUrl, session: value.session ?? null };
    }
  } catch {
    // A corrupt entry is the same as none: the person signs in again.
  }
  return { baseUrl: defaultBaseUrl(), session: null };
}

export interface Credentials {
  server: string;
  username: string;
  password: string;
  registrationToken?: string;
}

/** Who is signed in where, the sdk client for it, and the account's profile. */
export const useSessionStore = defineStore('session', () => {
  const baseUrl = ref(defaultBaseUrl());
  const session = shallowRef<StoredSession | null>(null);
  const profile = ref<Profile | null>(null);
  /** Set when the server ended the session (revoked, refresh failed), to explain the sign-in page. */
  const endedReason = ref<string | null>(null);
  let signingOut = false;
  let client = makeClient(baseUrl.value, null);
  const api = shallowRef(markRaw(new RoomsApi(client)));

  const userId = computed(() => session.value?.user_id ?? '');
  const serverName = computed(() => serverOf(userId.value));
  const signedIn = computed(() => session.value !== null);
  const displayName = computed(() => profile.value?.displayname || userId.value.slice(1).split(':')[0] || '');

  function persist(): void {
    const value: Persisted = { baseUrl: baseUrl.value, session: session.value };
    try {
      window.localStorage.setItem(STORAGE_KEY, JSON.stringify(value));
    } catch {
      // Private browsing with storage disabled: the session lasts for this page only.
    }
  }

  function makeClient(url: string, stored: StoredSession | null): ParleyClient {
    const c = new ParleyClient({
      baseUrl: url,
      session: stored,
      onSessionChange: (next) => {
        if (next === null && session.value !== null && c === client && !signingOut)
          endedReason.value = 'Your session has ended. Sign in again.';
        if (c !== client) return;
        session.value = next;
        persist();
      },
    });
    return markRaw(c);
  }

  function useClient(url: string, stored: StoredSession | null): void {
    baseUrl.value = url;
    client = makeClient(url, stored);
    api.value = markRaw(new RoomsApi(client));
    session.value = stored;
  }

  /** Picks up the session from the last visit, if any. */
  function restore(): void {
    const saved = readPersisted();
    try {
      useClient(saved.baseUrl, saved.session);
    } catch {
      useClient(defaultBaseUrl(), null);
    }
  }

  function getClient(): ParleyClient {
    return client;
  }

  async function flowsFor(server: string): Promise<AuthFlows> {
    const probe = new ParleyClient({ baseUrl: server ? homeserverUrl(server) : defaultBaseUrl() });
    return probe.getAuthFlows();
  }

  async function signIn(cred: Credentials): Promise<void> {
    const url = cred.server ? homeserverUrl(cred.server) : defaultBaseUrl();
    useClient(url, null);
    endedReason.value = null;
    await client.login({ username: cred.username.trim().replace(/^@/, ''), password: cred.password, device_name: deviceName() });
    await loadProfile();
  }

  async function signUp(cred: Credentials): Promise<void> {
    const url = cred.server ? homeserverUrl(cred.server) : defaultBaseUrl();
    useClient(url, null);
    endedReason.value = null;
    await client.register({
      username: cred.username.trim().toLowerCase(),
      password: cred.password,
      device_name: deviceName(),
      ...(cred.registrationToken ? { registration_token: cred.registrationToken.trim() } : {}),
    });
    await loadProfile();
  }

  async function signOut(): Promise<void> {
    signingOut = true;
    try {
      await client.logout();
    } finally {
      signingOut = false;
      // Even if the server could not be told, this browser forgets the session.
      useClient(baseUrl.value, null);
      profile.value = null;
      persist();
    }
  }

  /** The server no longer knows this session: forget it here too and say why. */
  function forget(reason: string): void {
    useClient(baseUrl.value, null);
    profile.value = null;
    endedReason.value = reason;
    persist();
  }

  async function loadProfile(): Promise<void> {
    if (!session.value) return;
    profile.value = await client.getProfile(session.value.user_id);
  }

  async function setDisplayName(name: string): Promise<void> {
    profile.value = await client.updateProfile(userId.value, { displayname: name.trim() || null });
  }

  async function setAvatar(contentUri: string | null): Promise<void> {
    profile.value = await client.updateProfile(userId.value, { avatar_url: contentUri });
  }

  return {
    baseUrl,
    session,
    profile,
    endedReason,
    api,
    userId,
    serverName,
    signedIn,
    displayName,
    restore,
    getClient,
    flowsFor,
    signIn,
    signUp,
    signOut,
    forget,
    loadProfile,
    setDisplayName,
    setAvatar,
  };
});

function deviceName(): string {
  const ua = navigator.userAgent;
  const browser = /Firefox\//.test(ua)
    ? 'Firefox'
    : /Edg\//.test(ua)
      ? 'Edge'
      : /Chrom/.test(ua)
        ? 'Chrome'
        : /Safari\//.test(ua)
          ? 'Safari'
          : 'Browser';
  const os = /Android/.test(ua)
    ? 'Android'
    : /iPhone|iPad/.test(ua)
      ? 'iOS'
      : /Mac OS/.test(ua)
        ? 'macOS'
        : /Windows/.test(ua)
          ? 'Windows'
          : /Linux/.test(ua)
            ? 'Linux'
            : '';
  return `Parley Web on ${browser}${os ? ` (${os})` : ''}`;
}

import { AdminApi, ParleyClient, type StoredSession } from '@parley/sdk';
import { defineStore } from 'pinia';
import { computed, markRaw, ref, shallowRef } from 'vue';

// The console keeps its own session (its own device): sharing the web client's would make
// the two apps rotate one refresh token and sign each other out.
const STORAGE_KEY = 'parley.admin.session.v1';

function read(): StoredSession | null {
  try {
    const raw = window.localStorage.getItem(STORAGE_KEY);
    return raw ? (JSON.parse(raw) as StoredSession) : null;
  } catch {
    return null;
  }
}

/** Who is signed in to the console, whether they are an admin, and the API client. */
export const useSessionStore = defineStore('session', () => {
  const session = shallowRef<StoredSession | null>(null);
  const isAdmin = ref<boolean | null>(null);
  const endedReason = ref<string | null>(null);
  let client = makeClient(null);
  const api = shallowRef(markRaw(new AdminApi(client)));

  const signedIn = computed(() => session.value !== null);
  const userId = computed(() => session.value?.user_id ?? '');
  const serverName = computed(() => userId.value.slice(userId.value.indexOf(':') + 1));

  function persist(): void {
    try {
      if (session.value) window.localStorage.setItem(STORAGE_KEY, JSON.stringify(session.value));
      else window.localStorage.removeItem(STORAGE_KEY);
    } catch {
      // Storage disabled: the session lasts for this page.
    }
  }

  function makeClient(stored: StoredSession | null): ParleyClient {
    const c: ParleyClient = new ParleyClient({
      baseUrl: window.location.origin,
      session: stored,
      onSessionChange: (next) => {
        if (c !== client) return;
        if (next === null && session.value !== null) endedReason.value = 'Your session has ended. Sign in again.';
        session.value = next;
        if (next === null) isAdmin.value = null;
        persist();
      },
    });
    return markRaw(c);
  }

  function use(stored: StoredSession | null): void {
    client = makeClient(stored);
    api.value = markRaw(new AdminApi(client));
    session.value = stored;
  }

  function restore(): void {
    try {
      use(read());
    } catch {
      use(null);
    }
  }

  async function login(username: string, password: string): Promise<void> {
    use(null);
    const s = await client.login({ username, password, device_name: 'Admin console' });
    session.value = s;
    endedReason.value = null;
    persist();
    await checkAdmin();
  }

  async function checkAdmin(): Promise<void> {
    try {
      isAdmin.value = (await client.whoami()).is_admin;
    } catch {
      isAdmin.value = null;
      if (!client.session) session.value = null;
    }
  }

  async function logout(): Promise<void> {
    try {
      await client.logout();
    } catch {
      // Signed out locally either way.
    }
    use(null);
    isAdmin.value = null;
    persist();
  }

  return { session, isAdmin, endedReason, signedIn, userId, serverName, api, restore, login, logout, checkAdmin };
});

import type {
  AuthFlows,
  Device,
  DeviceList,
  DeviceUpdateRequest,
  EmptyRequest,
  Health,
  LoginRequest,
  PasswordChangeRequest,
  Profile,
  ProfileUpdateRequest,
  RefreshRequest,
  RegisterRequest,
  Session,
  TokenPair,
  WhoAmI,
} from '@parley/schemas';
import { errorFromResponse, malformedResponse, networkError, ParleyApiError } from './errors.js';
import { assertStoredSession, type StoredSession, storedFromSession, storedWithTokens } from './session.js';

/** The part of `fetch` the client uses; narrow so tests can pass a plain function. */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface ParleyClientOptions {
  /** Where the homeserver's client API lives, e.g. `http://127.0.0.1:8008`. */
  baseUrl: string;
  /** A session persisted earlier; it is checked, and a corrupt one throws a TypeError. */
  session?: StoredSession | null;
  fetch?: FetchLike;
  /**
   * Called after every change (login, refresh, logout) so the app can persist the session.
   * The in-memory session is already updated when it runs; if it throws, the call that
   * changed the session rejects with that error.
   */
  onSessionChange?: (session: StoredSession | null) => void;
  now?: () => number;
}

export interface RequestOptions {
  /** Send the access token (refreshing it when needed). Default true. */
  auth?: boolean;
}

// Refresh this long before the deadline so a request never reaches the server just after
// its token died (clock skew and latency both eat into the margin).
const REFRESH_MARGIN_MS = 30_000;
const REFRESHABLE_CODES: ReadonlySet<string> = new Set(['PARLEY_TOKEN_EXPIRED', 'PARLEY_UNKNOWN_TOKEN']);

interface Reply {
  status: number;
  headers: Headers;
  text: string;
}

export class ParleyClient {
  readonly baseUrl: string;
  #session: StoredSession | null;
  #refreshing: Promise<StoredSession> | null = null;
  readonly #fetch: FetchLike;
  readonly #now: () => number;
  readonly #onSessionChange: ((session: StoredSession | null) => void) | undefined;

  constructor(options: ParleyClientOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    this.baseUrl = normalizeBaseUrl(options.baseUrl);
    this.#session = options.session == null ? null : assertStoredSession(options.session, 'options.session');
    if (options.fetch !== undefined && typeof options.fetch !== 'function') {
      throw new TypeError('options.fetch must be a function');
    }
    if (options.fetch === undefined && typeof globalThis.fetch !== 'function') {
      throw new TypeError('no global fetch in this environment; pass options.fetch');
    }
    // Browsers throw "Illegal invocation" when fetch is called detached from its global.
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#now = options.now ?? Date.now;
    this.#onSessionChange = options.onSessionChange;
  }

  get session(): StoredSession | null {
    return this.#session;
  }

  get userId(): string | null {
    return this.#session?.user_id ?? null;
  }

  get deviceId(): string | null {
    return this.#session?.device_id ?? null;
  }

  // --- auth ---

  getAuthFlows(): Promise<AuthFlows> {
    return this.request('GET', '/api/v1/auth/flows', undefined, { auth: false });
  }

  register(body: RegisterRequest): Promise<StoredSession> {
    return this.#startSession('/api/v1/auth/register', body);
  }

  login(body: LoginRequest): Promise<StoredSession> {
    return this.#startSession('/api/v1/auth/login', body);
  }

  /** Rotates the token pair now. Concurrent calls (and automatic refreshes) share one request. */
  refresh(): Promise<StoredSession> {
    this.#refreshing ??= this.#runRefresh().finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  logout(): Promise<void> {
    return this.#signOut('/api/v1/auth/logout');
  }

  /** Signs out every device of the account, this one included. */
  logoutAll(): Promise<void> {
    return this.#signOut('/api/v1/auth/logout/all');
  }

  // --- account and devices ---

  whoami(): Promise<WhoAmI> {
    return this.request('GET', '/api/v1/account/whoami');
  }

  async changePassword(body: PasswordChangeRequest): Promise<void> {
    await this.request('POST', '/api/v1/account/password', body);
  }

  listDevices(): Promise<DeviceList> {
    return this.request('GET', '/api/v1/devices');
  }

  async updateDevice(deviceId: string, body: DeviceUpdateRequest): Promise<Device> {
    return this.request('PUT', `/api/v1/devices/${pathParam(deviceId, 'deviceId')}`, body);
  }

  async deleteDevice(deviceId: string): Promise<void> {
    await this.request('DELETE', `/api/v1/devices/${pathParam(deviceId, 'deviceId')}`);
    // The server revokes a deleted device's tokens, so if it was this one ours are dead.
    if (this.#session?.device_id === deviceId) this.#setSession(null);
  }

  // --- profiles ---

  async getProfile(userId: string): Promise<Profile> {
    return this.request('GET', `/api/v1/profile/${pathParam(userId, 'userId')}`);
  }

  async updateProfile(userId: string, body: ProfileUpdateRequest): Promise<Profile> {
    return this.request('PUT', `/api/v1/profile/${pathParam(userId, 'userId')}`, body);
  }

  // --- server ---

  async health(): Promise<Health> {
    const reply = await this.#exchange('GET', '/health', undefined, null);
    // An unhealthy server answers 503 with the same report, which is what the caller wants.
    if (reply.status === 503) {
      const report = tryParseJson(reply.text);
      if (typeof report === 'object' && report !== null && 'status' in report && 'checks' in report) {
        return report as Health;
      }
    }
    return parseReply<Health>(reply);
  }

  /**
   * Sends one JSON request. With `auth` (the default) it attaches the access token,
   * refreshing it first when it is about to expire, and retries once after a refresh when
   * the server says the token expired or is unknown. Resolves to the parsed body
   * (`undefined` for an empty one); rejects with ParleyApiError only.
   */
  async request<T>(method: HttpMethod, path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    if (typeof path !== 'string' || !path.startsWith('/')) throw new TypeError('path must start with "/"');
    if (options.auth === false) return parseReply<T>(await this.#exchange(method, path, body, null));

    const token = await this.#accessToken();
    const reply = await this.#exchange(method, path, body, token);
    if (reply.status !== 401) return parseReply<T>(reply);

    const err = errorFromResponse(reply.status, reply.headers, reply.text);
    if (!REFRESHABLE_CODES.has(err.code) || this.#session === null) throw err;
    // Another caller may have refreshed while this request was in flight; its new token
    // is then already here and refreshing again would only burn a refresh token.
    if (this.#session.access_token === token) await this.refresh();
    const retryToken = this.#requireSession().access_token;
    return parseReply<T>(await this.#exchange(method, path, body, retryToken));
  }

  async #accessToken(): Promise<string> {
    const session = this.#requireSession();
    // Joining a refresh that is under way avoids sending a token it is about to revoke.
    if (this.#refreshing !== null || session.expires_at_ms - this.#now() < REFRESH_MARGIN_MS) {
      return (await this.refresh()).access_token;
    }
    return session.access_token;
  }

  // Only ever called through refresh(), so one refresh token is never sent twice: the
  // server takes reuse of a spent refresh token as theft and signs the device out.
  async #runRefresh(): Promise<StoredSession> {
    const current = this.#requireSession();
    const issuedAt = this.#now();
    const body: RefreshRequest = { refresh_token: current.refresh_token };
    const reply = await this.#exchange('POST', '/api/v1/auth/refresh', body, null);
    if (reply.status === 401) {
      // The device is gone (revoked, or signed out after token reuse); nothing can revive it.
      if (this.#session === current) this.#setSession(null);
      throw errorFromResponse(reply.status, reply.headers, reply.text);
    }
    const pair = parseReply<TokenPair>(reply);
    // A login that finished meanwhile decides what the session is now.
    if (this.#session !== current) return this.#requireSession();
    const next = checkedSession(() => storedWithTokens(current, pair, issuedAt), reply.status);
    this.#setSession(next);
    return next;
  }

  async #startSession(path: string, body: RegisterRequest | LoginRequest): Promise<StoredSession> {
    const issuedAt = this.#now();
    const session = await this.request<Session>('POST', path, body, { auth: false });
    const next = checkedSession(() => storedFromSession(session, issuedAt), 200);
    this.#setSession(next);
    return next;
  }

  async #signOut(path: string): Promise<void> {
    const body: EmptyRequest = {};
    try {
      await this.request('POST', path, body);
    } catch (err) {
      // 401 means the server no longer knows this device: signed out is what we wanted.
      if (!(err instanceof ParleyApiError && err.status === 401)) throw err;
    }
    this.#setSession(null);
  }

  #requireSession(): StoredSession {
    if (this.#session === null) {
      throw new ParleyApiError({ status: 401, code: 'PARLEY_MISSING_TOKEN', message: 'not logged in' });
    }
    return this.#session;
  }

  #setSession(next: StoredSession | null): void {
    if (next === this.#session) return;
    this.#session = next;
    this.#onSessionChange?.(next);
  }

  async #exchange(method: HttpMethod, path: string, body: unknown, token: string | null): Promise<Reply> {
    const url = this.baseUrl + path;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      if (method === 'GET') throw new TypeError('a GET request cannot carry a body');
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    try {
      const res = await this.#fetch(url, init);
      return { status: res.status, headers: res.headers, text: await res.text() };
    } catch (err) {
      throw networkError(method, url, err);
    }
  }

  /**
   * A request whose body or answer is not JSON (media). Authenticates, refreshes and
   * retries once exactly like `request`, so `body` must be re-sendable (bytes, Blob or
   * string, not a stream). Resolves to the Response, body unread, when the status is
   * below 400; rejects with ParleyApiError otherwise.
   */
  async requestRaw(
    method: HttpMethod,
    path: string,
    body?: Blob | Uint8Array<ArrayBuffer> | string | null,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    if (typeof path !== 'string' || !path.startsWith('/')) throw new TypeError('path must start with "/"');
    if (body != null && method === 'GET') throw new TypeError('a GET request cannot carry a body');
    const url = this.baseUrl + path;
    const send = async (token: string): Promise<Response> => {
      const init: RequestInit = { method, headers: { ...headers, authorization: `Bearer ${token}` } };
      if (body != null) init.body = body;
      try {
        return await this.#fetch(url, init);
      } catch (err) {
        throw networkError(method, url, err);
      }
    };
    const token = await this.#accessToken();
    let res = await send(token);
    if (res.status === 401) {
      const err = errorFromResponse(res.status, res.headers, await res.text());
      if (!REFRESHABLE_CODES.has(err.code) || this.#session === null) throw err;
      if (this.#session.access_token === token) await this.refresh();
      res = await send(this.#requireSession().access_token);
    }
    if (res.status >= 400) throw errorFromResponse(res.status, res.headers, await res.text());
    return res;
  }
}

function parseReply<T>(reply: Reply): T {
  if (reply.status < 200 || reply.status > 299) throw errorFromResponse(reply.status, reply.headers, reply.text);
  if (reply.text === '') return undefined as T;
  const value = tryParseJson(reply.text);
  if (value === undefined) throw malformedResponse(reply.status, 'body is not JSON');
  return value as T;
}

function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// Tokens from a broken server must not reach the app's storage, where they would
// outlive the bug.
function checkedSession(build: () => StoredSession, status: number): StoredSession {
  try {
    return assertStoredSession(build(), 'session');
  } catch (err) {
    throw malformedResponse(status, err instanceof Error ? err.message : String(err));
  }
}

function normalizeBaseUrl(value: unknown): string {
  if (typeof value !== 'string') throw new TypeError('options.baseUrl must be a string');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`options.baseUrl is not an absolute URL: ${value}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError('options.baseUrl must be an http: or https: URL');
  }
  if (url.search !== '' || url.hash !== '') throw new TypeError('options.baseUrl must not have a query or fragment');
  // Keep any path prefix (a server behind a reverse proxy at /parley) but not its trailing slash.
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function pathParam(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw new TypeError(`${name} must be a non-empty string`);
  return encodeURIComponent(value);
}

import { type ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { edgeFieldValues, hostileAuthHeaders, hostileBodies, hostilePathSegments, invalidFieldValues } from './support/hostile.js';
import { startTestServer, type TestServer } from './support/server.js';

interface Endpoint {
  method: string;
  path: string;
  auth: boolean;
  /** A valid body to mutate one field at a time; null for endpoints without fields. */
  valid: Record<string, unknown> | null;
  /** Whether odd-but-valid values may be sent (not for endpoints that would sign us out). */
  edges: boolean;
  /** Event content is open (custom keys allowed) and long texts are legitimate. */
  openContent?: boolean;
  /** Prefix of the field name in errors (event content is reported as `content.<field>`). */
  fieldPrefix?: string;
  /** Fields where null is meaningful (clears the value). */
  nullable?: string[];
  /** Path template with :id for endpoints that take an ID. */
  idPath?: (id: string) => string;
}

const endpoints: Endpoint[] = [
  {
    method: 'POST',
    path: '/api/v1/auth/register',
    auth: false,
    valid: { username: 'newbie', password: 'long enough pw', device_name: 'd' },
    edges: true,
  },
  {
    method: 'POST',
    path: '/api/v1/auth/login',
    auth: false,
    valid: { username: 'victim', password: 'victim password', device_name: 'd' },
    edges: true,
  },
  { method: 'POST', path: '/api/v1/auth/refresh', auth: false, valid: { refresh_token: 'prt_x' }, edges: true },
  { method: 'POST', path: '/api/v1/auth/logout', auth: true, valid: null, edges: false },
  { method: 'POST', path: '/api/v1/auth/logout/all', auth: true, valid: null, edges: false },
  {
    method: 'POST',
    path: '/api/v1/account/password',
    auth: true,
    valid: { old_password: 'wrong on purpose', new_password: 'new password 1', logout_other_devices: false },
    edges: true,
  },
  {
    method: 'PUT',
    path: '/api/v1/devices/PLACEHOLDER',
    auth: true,
    valid: { display_name: 'renamed' },
    edges: true,
    idPath: (id) => `/api/v1/devices/${id}`,
  },
  {
    method: 'DELETE',
    path: '/api/v1/devices/NOSUCHDEVICE',
    auth: true,
    valid: null,
    edges: false,
    idPath: (id) => `/api/v1/devices/${id}`,
  },
  {
    method: 'PUT',
    path: '/api/v1/profile/@victim:hs1.test',
    auth: true,
    valid: { displayname: 'Victim', avatar_url: 'https://example.org/a.png' },
    edges: true,
    nullable: ['displayname', 'avatar_url'],
    idPath: (id) => `/api/v1/profile/${id}`,
  },
  {
    method: 'GET',
    path: '/api/v1/profile/@victim:hs1.test',
    auth: true,
    valid: null,
    edges: false,
    idPath: (id) => `/api/v1/profile/${id}`,
  },
  { method: 'GET', path: '/api/v1/account/whoami', auth: true, valid: null, edges: false },
  // Rooms: ROOM, EVENT and TXN are replaced by a real room, a real event and a fresh txn ID.
  { method: 'POST', path: '/api/v1/rooms', auth: true, valid: { visibility: 'private', name: 'Room', topic: 'Topic' }, edges: true },
  {
    method: 'POST',
    path: '/api/v1/rooms/ROOM/invite',
    auth: true,
    valid: { user_id: '@someone:hs1.test', reason: 'why not' },
    edges: true,
    idPath: (id) => `/api/v1/rooms/${id}/invite`,
  },
  { method: 'POST', path: '/api/v1/rooms/ROOM/kick', auth: true, valid: { user_id: '@nobody:hs1.test', reason: 'r' }, edges: true },
  { method: 'POST', path: '/api/v1/rooms/ROOM/receipt', auth: true, valid: { event_id: 'EVENT' }, edges: true },
  {
    method: 'PUT',
    path: '/api/v1/rooms/ROOM/send/room.message/TXN',
    auth: true,
    valid: { body: 'hello', msgtype: 'text' },
    edges: true,
    fieldPrefix: 'content.',
    openContent: true,
    idPath: (id) => `/api/v1/rooms/ROOM/send/${id}/TXN`,
  },
  {
    method: 'PUT',
    path: '/api/v1/rooms/ROOM/state/room.topic/',
    auth: true,
    valid: { topic: 'A topic' },
    edges: true,
    fieldPrefix: 'content.',
    idPath: (id) => `/api/v1/rooms/${id}/state/room.topic/`,
  },
  { method: 'PUT', path: '/api/v1/rooms/ROOM/redact/EVENT/TXN', auth: true, valid: { reason: 'spam' }, edges: true },
  { method: 'PUT', path: '/api/v1/directory/alias/%23hostile%3Ahs1.test', auth: true, valid: { room_id: 'ROOM' }, edges: false },
  {
    method: 'GET',
    path: '/api/v1/rooms/ROOM/messages',
    auth: true,
    valid: null,
    edges: false,
    idPath: (id) => `/api/v1/rooms/${id}/messages`,
  },
  {
    method: 'GET',
    path: '/api/v1/rooms/ROOM/event/EVENT',
    auth: true,
    valid: null,
    edges: false,
    idPath: (id) => `/api/v1/rooms/ROOM/event/${id}`,
  },
  { method: 'GET', path: '/api/v1/rooms', auth: true, valid: null, edges: false },
  { method: 'GET', path: '/api/v1/devices', auth: true, valid: null, edges: false },
];

describe('hostile input on every endpoint', () => {
  let server: TestServer;
  let victim: ParleyClient;
  let token: string;
  let roomId: string;
  let eventId: string;
  let txn = 0;

  beforeAll(async () => {
    server = await startTestServer();
    victim = server.client();
    await victim.register({ username: 'victim', password: 'victim password' });
    token = victim.session?.access_token as string;
    const rooms = new RoomsApi(victim);
    ({ room_id: roomId } = await rooms.create({ visibility: 'private', name: 'Target' }));
    ({ event_id: eventId } = await rooms.sendText(roomId, 'target message'));
  });

  const fill = (text: string) =>
    text
      .replaceAll('ROOM', encodeURIComponent(roomId))
      .replaceAll('EVENT', eventId)
      .replaceAll('TXN', () => `t${++txn}`);
  afterAll(() => server?.close());

  async function send(method: string, path: string, body: string | Buffer | undefined, contentType = 'application/json', auth = true) {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = contentType;
    if (auth) headers.authorization = `Bearer ${token}`;
    const filled =
      typeof body === 'string' ? body.replaceAll('"ROOM"', JSON.stringify(roomId)).replaceAll('"EVENT"', JSON.stringify(eventId)) : body;
    const res = await fetch(`${server.url}${fill(path)}`, {
      method,
      headers,
      ...(filled !== undefined ? { body: typeof filled === 'string' ? filled : new Uint8Array(filled) } : {}),
    });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, json, text };
  }

  function expectClientError(r: { status: number; json: any; text: string }, what: string) {
    expect(r.status, `${what}: ${r.text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
    expect(r.status, `${what}: ${r.text.slice(0, 200)}`).toBeLessThan(500);
    expect(r.json?.error?.code, what).toMatch(/^PARLEY_[A-Z_]+$/);
    expect(typeof r.json?.error?.message, what).toBe('string');
  }

  for (const ep of endpoints) {
    it(`${ep.method} ${ep.path}: whole-body attacks are 4xx`, async () => {
      if (ep.method === 'GET' || ep.method === 'DELETE') {
        // Bodies on GET/DELETE are ignored; the hostile parts are the path and the token.
        return expect((await send(ep.method, ep.path, undefined)).status).toBeLessThan(500);
      }
      for (const hostile of hostileBodies) {
        const r = await send(ep.method, ep.path, hostile.body, hostile.contentType, ep.auth);
        expectClientError(r, `${ep.method} ${ep.path} with ${hostile.name}`);
      }
    });

    if (ep.valid) {
      const valid = ep.valid;
      it(`${ep.method} ${ep.path}: every field refuses wrong types and unsafe text, naming the field`, async () => {
        for (const field of Object.keys(valid)) {
          for (const [name, value] of invalidFieldValues) {
            if (field === 'logout_other_devices' && name === 'boolean') continue; // a boolean is right there
            if (value === null && ep.nullable?.includes(field)) continue;
            if (ep.openContent && name.startsWith('huge string')) continue; // 20 KB is a legitimate message
            const r = await send(ep.method, ep.path, JSON.stringify({ ...valid, [field]: value }), 'application/json', ep.auth);
            expectClientError(r, `${field} = ${name}`);
            expect(r.json.error.field, `${field} = ${name}`).toBe(`${ep.fieldPrefix ?? ''}${field}`);
          }
          const missing: Record<string, unknown> = { ...valid };
          delete missing[field];
          const r = await send(ep.method, ep.path, JSON.stringify(missing), 'application/json', ep.auth);
          expect(r.status, `without ${field}`).toBeLessThan(500);
        }
        if (!ep.openContent) {
          const extra = await send(ep.method, ep.path, JSON.stringify({ ...valid, unexpected_field: 1 }), 'application/json', ep.auth);
          expectClientError(extra, 'unknown field');
          expect(extra.json.error.field).toBe(`${ep.fieldPrefix ?? ''}unexpected_field`);
        }
      });
      if (ep.edges) {
        it(`${ep.method} ${ep.path}: odd Unicode never causes a 5xx`, async () => {
          for (const field of Object.keys(valid)) {
            for (const [name, value] of edgeFieldValues) {
              const r = await send(ep.method, ep.path, JSON.stringify({ ...valid, [field]: value }), 'application/json', ep.auth);
              expect(r.status, `${field} = ${name}: ${r.text.slice(0, 200)}`).toBeLessThan(500);
              expect(r.json, `${field} = ${name}`).toBeTypeOf('object');
            }
          }
        });
      }
    }

    if (ep.idPath) {
      const idPath = ep.idPath;
      it(`${ep.method} ${ep.path}: hostile IDs in the path are 4xx`, async () => {
        for (const segment of hostilePathSegments) {
          const body = ep.valid ? JSON.stringify(ep.valid) : undefined;
          const r = await send(ep.method, idPath(segment), body);
          expectClientError(r, `path segment ${segment.slice(0, 40)}`);
        }
      });
    }

    if (ep.auth) {
      it(`${ep.method} ${ep.path}: malformed or forged Authorization is 401`, async () => {
        for (const header of hostileAuthHeaders) {
          const res = await fetch(`${server.url}${fill(ep.path)}`, {
            method: ep.method,
            headers: { authorization: header, 'content-type': 'application/json' },
            ...(ep.method === 'GET' ? {} : { body: '{}' }),
          });
          expect(res.status, header.slice(0, 40)).toBe(401);
          expect(((await res.json()) as any).error.code).toMatch(/^PARLEY_(MISSING|UNKNOWN)_TOKEN$/);
        }
      });
    }
  }

  it('is still healthy and the victim is still signed in afterwards', async () => {
    expect((await victim.health()).status).toBe('ok');
    expect((await victim.whoami()).user_id).toBe('@victim:hs1.test');
  });
});

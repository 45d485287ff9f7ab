import type { ClientEvent, SyncResponse } from '@parley/schemas';
import { type ParleyClient, RoomsApi, SyncPoller } from '@parley/sdk';
import { type CryptoStore, type DecryptedEvent, E2eSession, type E2eSessionOptions, MemoryCryptoStore } from '@parley/sdk/crypto';
import type { FedServer } from './federation.js';
import { until } from './net.js';

/**
 * One device for E2E tests: an E2eSession with its own store, fed by a long-poll SyncPoller
 * whose position survives close/reopen (as an app persists it), so an offline device gets
 * what waited for it when it comes back.
 */
export interface SessionDevice {
  name: string;
  client: ParleyClient;
  rooms: RoomsApi;
  userId: string;
  deviceId: string;
  store: CryptoStore;
  session: E2eSession;
  poller: SyncPoller | null;
  position: number;
  chain: Promise<void>;
  errors: unknown[];
  /** The session's diagnostics (never plaintext). */
  logs: string[];
  /** Extra session options (e.g. `mailbox`) used each time the session opens. */
  sessionOptions?: Partial<E2eSessionOptions>;
}

export const SESSION_TIMINGS = { fallbackMs: 4000, welcomeWaitMs: 6000 };

function logTo(d: SessionDevice, m: string): void {
  d.logs.push(m);
  if (process.env.E2E_DEBUG) console.log(`[${d.name}] ${m}`);
}

async function livePosition(client: ParleyClient): Promise<number> {
  return (await client.request<SyncResponse>('GET', '/api/v1/sync?timeout=0')).next;
}

/** Registers (first device) or logs in (`login: true`) and opens a session for the device. */
export async function openDevice(
  server: FedServer,
  username: string,
  opts: { login?: boolean; name?: string; client?: ParleyClient; session?: Partial<E2eSessionOptions> } = {},
): Promise<SessionDevice> {
  let client: ParleyClient;
  if (opts.client) {
    client = opts.client;
  } else if (opts.login) {
    client = server.client();
    await client.login({ username, password: `${username} password`, device_name: opts.name ?? 'device' });
  } else {
    client = (await server.user(username)).client;
  }
  const d: SessionDevice = {
    name: opts.name ?? username,
    client,
    rooms: new RoomsApi(client),
    userId: client.userId as string,
    deviceId: client.deviceId as string,
    store: new MemoryCryptoStore(),
    session: undefined as unknown as E2eSession,
    poller: null,
    position: await livePosition(client),
    chain: Promise.resolve(),
    errors: [],
    logs: [],
    ...(opts.session ? { sessionOptions: opts.session } : {}),
  };
  await comeBack(d);
  return d;
}

export function startFeed(d: SessionDevice): void {
  const poller = new SyncPoller({ client: d.client, since: d.position, timeoutMs: 1000, backoff: { initialMs: 100, maxMs: 1000 } });
  poller.on('frame', (f) => {
    d.chain = d.chain
      .then(() => d.session.handleFrame(f))
      .then(() => {
        d.position = f.position;
      })
      .catch((err) => {
        d.errors.push(err);
      });
  });
  poller.start();
  d.poller = poller;
}

/** Opens the device's session on its store and starts its feed from the position it had. */
export async function comeBack(d: SessionDevice): Promise<void> {
  d.session = await E2eSession.open({
    client: d.client,
    store: d.store,
    userId: d.userId,
    deviceId: d.deviceId,
    ...SESSION_TIMINGS,
    log: (m) => logTo(d, m),
    ...d.sessionOptions,
  });
  startFeed(d);
}

/** The device goes offline: the feed stops, the session closes; the store and position stay. */
export async function goOffline(d: SessionDevice): Promise<void> {
  d.poller?.close();
  d.poller = null;
  await d.chain;
  await d.session.close();
}

export async function encryptedEvents(d: SessionDevice, roomId: string, via: SessionDevice = d): Promise<ClientEvent[]> {
  const out: ClientEvent[] = [];
  let from: string | undefined;
  for (let i = 0; i < 20; i++) {
    const res = await via.rooms.messages(roomId, { dir: 'f', limit: 100, ...(from ? { from } : {}) });
    out.push(...res.chunk.filter((e) => e.type === 'room.encrypted'));
    if (!res.end || res.chunk.length === 0) break;
    from = res.end;
  }
  return out;
}

/** Waits until `d` decrypts the event `eventId` (read through `via`'s timeline) to `body`. */
export async function expectReads(d: SessionDevice, roomId: string, eventId: string, body: string, via: SessionDevice = d): Promise<void> {
  let last: DecryptedEvent | undefined;
  try {
    await until(async () => {
      const e = (await encryptedEvents(d, roomId, via)).find((x) => x.event_id === eventId);
      if (e === undefined) return false;
      last = await d.session.decrypt(e);
      return last.ok && last.content.body === body;
    }, 45_000);
  } catch {
    throw new Error(`${d.name} (${d.userId}/${d.deviceId}) cannot read ${eventId}: ${JSON.stringify(last)}`);
  }
}

export async function decryptOnce(d: SessionDevice, roomId: string, eventId: string, via: SessionDevice): Promise<DecryptedEvent> {
  const e = (await encryptedEvents(d, roomId, via)).find((x) => x.event_id === eventId);
  if (e === undefined) throw new Error(`${eventId} not in the timeline`);
  return d.session.decrypt(e);
}

export interface Person {
  userId: string;
  devices: SessionDevice[];
  recoveryKey: string;
}

/** A user with `count` devices, each its own session; the first sets up recovery, the others restore with it. */
export async function person(server: FedServer, username: string, count = 2): Promise<Person> {
  const first = await openDevice(server, username, { name: `${username}1` });
  const recoveryKey = await first.session.setupRecovery();
  const devices = [first];
  for (let i = 2; i <= count; i++) devices.push(await addDevice(server, username, recoveryKey, `${username}${i}`));
  return { userId: first.userId, devices, recoveryKey };
}

/** Logs a new device of an existing user in; it restores the key backup with the recovery key. */
export async function addDevice(server: FedServer, username: string, recoveryKey: string, name: string): Promise<SessionDevice> {
  const d = await openDevice(server, username, { login: true, name });
  if (!d.session.needsRecovery) throw new Error(`${name}: expected to need the recovery key`);
  await d.session.restore(recoveryKey);
  return d;
}

export async function closeAll(devices: (SessionDevice | undefined)[]): Promise<void> {
  for (const d of devices) {
    d?.poller?.close();
    await d?.session.close();
  }
}

/**
 * A private room on `owner`'s server with the first device of each other person joined, made
 * encrypted by `owner`; returns once every device in `devices` is in the group.
 */
export async function encryptedRoom(owner: SessionDevice, others: Person[], devices: SessionDevice[]): Promise<string> {
  const { room_id: roomId } = await owner.rooms.create({ visibility: 'private', invite: others.map((p) => p.userId) });
  for (const p of others) await (p.devices[0] as SessionDevice).rooms.join(roomId);
  await until(async () => (await owner.rooms.members(roomId)).filter((m) => m.membership === 'join').length === others.length + 1, 30_000);
  await owner.session.enableEncryption(roomId);
  await groupIs(devices, roomId, devices);
  return roomId;
}

/** Waits until every device's group holds exactly `expected` devices (user/device pairs). */
export async function groupIs(devices: SessionDevice[], roomId: string, expected: SessionDevice[]): Promise<void> {
  const want = expected.map((d) => `${d.userId}/${d.deviceId}`).sort();
  let seen = '';
  try {
    await until(async () => {
      for (const d of devices) {
        const got = (await d.session.device.members(roomId)).map((m) => `${m.userId}/${m.deviceId}`).sort();
        seen = `${d.name}: ${got.join(', ')}`;
        if (got.join() !== want.join()) return false;
      }
      return true;
    }, 60_000);
  } catch {
    const logs = devices.map((d) => `${d.name}: ${d.logs.slice(-8).join(' | ')} ${d.errors.map(String).join(' | ')}`).join('\n');
    throw new Error(`groups did not converge to ${want.join(', ')}; ${seen}\n${logs}`);
  }
}

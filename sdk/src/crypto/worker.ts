/// <reference lib="dom" />
import type { CryptoDevice, CryptoDeviceOptions } from './device.js';

/**
 * Runs a CryptoDevice in a Web Worker, so catching up on thousands of messages never blocks
 * the UI thread (issue 12). The page talks to it through `CryptoWorkerClient`, whose methods
 * are the device's own (async already); arguments and results cross by structured clone,
 * Uint8Arrays included. Functions cannot cross, so the page tells the worker who is a member
 * of each room (`setRoomMembers`) instead of passing `isRoomMember`.
 */

/** The CryptoDevice methods callable across the worker boundary. */
export const WORKER_METHODS = [
  'epoch',
  'hasGroup',
  'members',
  'createGroup',
  'createUserSigningKey',
  'importUserSigningKey',
  'acceptCertification',
  'ownSignedDevice',
  'certifyDevice',
  'signDeviceList',
  'trustDeviceList',
  'pinUserKey',
  'prepareCommit',
  'confirmCommit',
  'discardCommit',
  'processCommit',
  'joinFromWelcome',
  'prepareExternalJoin',
  'exportGroupInfo',
  'encrypt',
  'decrypt',
  'exportBackup',
  'restoreBackup',
] as const satisfies readonly (keyof CryptoDevice)[];
export type WorkerMethod = (typeof WORKER_METHODS)[number];

type Call = { id: number; method: string; args: unknown[] };
type Reply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { name: string; message: string; reason?: string; code?: string } };

interface Port {
  postMessage(message: unknown): void;
  addEventListener(type: 'message', listener: (e: MessageEvent) => void): void;
}

export type WorkerDeviceOptions = Omit<CryptoDeviceOptions, 'store' | 'isRoomMember'> & { storeName: string };

/**
 * In the worker: `serveCryptoDevice(self, open)`, where `open` builds the device (so the
 * worker bundle decides its store, normally an IndexedDbCryptoStore).
 */
export function serveCryptoDevice(
  port: Port,
  open: (options: WorkerDeviceOptions, isRoomMember: (roomId: string, userId: string) => boolean) => Promise<CryptoDevice>,
): void {
  let device: CryptoDevice | null = null;
  const rooms = new Map<string, Set<string>>();
  const isRoomMember = (roomId: string, userId: string) => rooms.get(roomId)?.has(userId) ?? true;
  port.addEventListener('message', async (e: MessageEvent) => {
    const call = e.data as Call;
    if (typeof call?.id !== 'number' || typeof call.method !== 'string') return;
    try {
      let value: unknown = null;
      if (call.method === 'open') {
        device = await open(call.args[0] as WorkerDeviceOptions, isRoomMember);
      } else if (call.method === 'setRoomMembers') {
        rooms.set(call.args[0] as string, new Set(call.args[1] as string[]));
      } else if (device === null) {
        throw new TypeError('the worker has no device yet: call open first');
      } else if (call.method === 'refillKeyPackages') {
        value = await device.keyPackages.refill(call.args[0] as never);
      } else if (call.method === 'createUserSigningKey') {
        // The seed stays in the worker.
        const key = await device.createUserSigningKey();
        value = { userId: key.userId, publicKey: key.publicKey };
      } else if (call.method === 'info') {
        value = {
          signer: device.signer,
          signatureKey: device.signatureKey,
          userSigningKey: device.userSigningKey,
          certified: device.certified,
        };
      } else if ((WORKER_METHODS as readonly string[]).includes(call.method)) {
        const fn = device[call.method as WorkerMethod] as (...a: unknown[]) => unknown;
        value = await fn.apply(device, call.args);
      } else {
        throw new TypeError(`unknown method ${call.method}`);
      }
      port.postMessage({ id: call.id, ok: true, value } satisfies Reply);
    } catch (err) {
      const x = err as Error & { reason?: string; code?: string };
      port.postMessage({
        id: call.id,
        ok: false,
        error: { name: x.name, message: x.message, reason: x.reason, code: x.code },
      } satisfies Reply);
    }
  });
}

/** An error thrown in the worker, with the name, `reason` (CryptoFailureError) or `code` (BackupError) it had there. */
export class CryptoWorkerError extends Error {
  constructor(
    override readonly name: string,
    message: string,
    readonly reason?: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

type Remote = {
  [K in Exclude<WorkerMethod, 'createUserSigningKey'>]: CryptoDevice[K] extends (...a: infer A) => infer R
    ? (...a: A) => Promise<Awaited<R>>
    : never;
} & {
  /** The seed never leaves the worker: only the public key comes back. */
  createUserSigningKey(): Promise<{ userId: string; publicKey: Uint8Array }>;
};

/** On the page: the device in the worker, with the same async methods. */
export class CryptoWorkerClient {
  #next = 0;
  readonly #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly device: Remote;

  constructor(private readonly port: Port) {
    port.addEventListener('message', (e: MessageEvent) => {
      const reply = e.data as Reply;
      const waiter = this.#waiting.get(reply?.id);
      if (waiter === undefined) return;
      this.#waiting.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.value);
      else waiter.reject(new CryptoWorkerError(reply.error.name, reply.error.message, reply.error.reason, reply.error.code));
    });
    const device: Record<string, (...a: unknown[]) => Promise<unknown>> = {};
    for (const m of WORKER_METHODS) device[m] = (...args) => this.#call(m, args);
    this.device = device as unknown as Remote;
  }

  #call(method: string, args: unknown[]): Promise<unknown> {
    this.#next += 1;
    const id = this.#next;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.port.postMessage({ id, method, args } satisfies Call);
    });
  }

  open(options: WorkerDeviceOptions): Promise<void> {
    return this.#call('open', [options]) as Promise<void>;
  }

  /** Who is a member of `roomId` in the room state (docs/protocol.md's `not_member` rule); unknown rooms: everyone. */
  setRoomMembers(roomId: string, userIds: string[]): Promise<void> {
    return this.#call('setRoomMembers', [roomId, userIds]) as Promise<void>;
  }

  refillKeyPackages(server: {
    one_time_remaining: number;
    has_last_resort: boolean;
  }): Promise<{ key_packages?: string[]; last_resort?: string } | null> {
    return this.#call('refillKeyPackages', [server]) as never;
  }

  info(): Promise<{ signer: string; signatureKey: Uint8Array; userSigningKey: Uint8Array | null; certified: boolean }> {
    return this.#call('info', []) as never;
  }
}

import type { ServerKeyDocument } from '@parley/schemas';
import {
  buildKeyDocument,
  generateSigningKey,
  KeyStore,
  type KeyStoreEvent,
  type KeyStoreOptions,
  type SigningKey,
} from '../../src/keys/index.js';

export const T0 = 1_700_000_000_000;
export const HOUR = 60 * 60 * 1000;
export const DAY = 24 * HOUR;

/** A fake clock: the store reads time only through `now`. */
export class FakeClock {
  constructor(public t = T0) {}
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** One remote server's signing keys and the document it would publish. */
export class FakeServer {
  current: SigningKey = generateSigningKey();
  retired: Array<{ key: SigningKey; expiredTs: number }> = [];
  fingerprints: string[] = ['fj5bZBu5UoSrAua59pRyfSczfxvH2Jo9mn-XiLUWZ_M'];

  constructor(
    readonly name: string,
    readonly clock: FakeClock,
  ) {}

  document(validForMs = DAY): ServerKeyDocument {
    return buildKeyDocument({
      serverName: this.name,
      current: this.current,
      old: this.retired.map(({ key, expiredTs }) => ({ keyId: key.keyId, publicKey: key.publicKey, expiredTs })),
      tlsFingerprints: this.fingerprints,
      validForMs,
      now: this.clock.now(),
    });
  }

  /** Retires the current key as of now and starts signing with a new one. */
  rotate(): SigningKey {
    const previous = this.current;
    this.retired.push({ key: previous, expiredTs: this.clock.now() });
    this.current = generateSigningKey();
    return previous;
  }
}

type Answer = unknown | (() => unknown | Promise<unknown>);

/**
 * Stands in for the federation transport, which is a dependency of the store and not its
 * subject: answers per server name and counts the requests.
 */
export class FakeNetwork {
  readonly answers = new Map<string, Answer>();
  readonly requests: string[] = [];

  fetchDirect = async (serverName: string): Promise<unknown> => {
    this.requests.push(serverName);
    if (!this.answers.has(serverName)) throw new Error(`connect ECONNREFUSED ${serverName}`);
    const answer = this.answers.get(serverName);
    return typeof answer === 'function' ? (answer as () => unknown)() : structuredClone(answer);
  };

  count(serverName: string): number {
    return this.requests.filter((s) => s === serverName).length;
  }
}

export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (err: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export function makeStore(network: FakeNetwork, clock: FakeClock, options: Partial<KeyStoreOptions> = {}) {
  const events: KeyStoreEvent[] = [];
  const store = new KeyStore({ fetchDirect: network.fetchDirect, now: clock.now, onEvent: (e) => events.push(e), ...options });
  return { store, events };
}

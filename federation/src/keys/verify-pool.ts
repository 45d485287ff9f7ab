import type { KeyObject } from 'node:crypto';
import { verify } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { isEd25519Key, SIGNATURE_BYTES } from './ed25519.js';
import { isWeakPublicKey } from './weak-keys.js';

/**
 * Many Ed25519 checks at once (a room snapshot's thousands of signatures) on every free core:
 * the event loop fills chunks of checks while it prepares them, worker threads verify chunks
 * as they fill, and whatever chunks are still queued when the caller drains are verified on
 * the loop itself, so the work is shared with the workers instead of waiting for them. The
 * same checks as verifyBytes (lengths, key type, weak keys, then OpenSSL's verify); a check
 * a worker could not answer (it died) is redone on the loop, never taken as passed.
 *
 * Workers cost a message per chunk (the chunk's bytes are transferred, not copied), so
 * batches smaller than a few chunks are verified on the loop alone.
 */

export type BytesVerifier = (signature: Uint8Array, message: Uint8Array, publicKey: KeyObject) => Promise<boolean>;

const CHUNK = 256;
// Chunks queued at each worker: one verifying, one waiting, the rest stay for the loop to take.
const PER_WORKER = 2;
const IDLE_MS = 10_000;

// The worker only needs node:crypto; evaluated from this string so the bundle needs no second file.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { verify } = require('node:crypto');
parentPort.on('message', (m) => {
  const ok = new Uint8Array(m.keyOf.length);
  let start = 0;
  for (let i = 0; i < ok.length; i++) {
    const end = m.ends[i];
    try {
      ok[i] = verify(null, m.data.subarray(start + 64, end), m.keys[m.keyOf[i]], m.data.subarray(start, start + 64)) ? 1 : 0;
    } catch {
      ok[i] = 0;
    }
    start = end;
  }
  parentPort.postMessage({ id: m.id, ok }, [ok.buffer]);
});
`;

interface Check {
  signature: Uint8Array;
  message: Uint8Array;
  key: KeyObject;
  resolve: (ok: boolean) => void;
}

interface PoolWorker {
  worker: Worker;
  /** Stops the worker once it has been idle for IDLE_MS (a thread and its heap are not kept for the next large join). */
  idleTimer: NodeJS.Timeout | null;
  /** Chunks sent and not answered, with the batch to feed more when one comes back. */
  inFlight: Map<number, { checks: Check[]; batch: VerifyBatch }>;
}

/** The checks one worker can do: verifyBytes's guards pass (the rest is OpenSSL's verify). */
function guardsPass(signature: Uint8Array, message: Uint8Array, key: KeyObject): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return false;
  if (!(message instanceof Uint8Array)) return false;
  if (!isEd25519Key(key, 'public')) return false;
  try {
    return !isWeakPublicKey(key);
  } catch {
    return false;
  }
}

function verifyHere(c: Check): void {
  let ok = false;
  try {
    ok = verify(null, c.message, c.key, c.signature);
  } catch {
    ok = false;
  }
  c.resolve(ok);
}

export class VerifyPool {
  private readonly workers: PoolWorker[] = [];
  private nextId = 0;

  /**
   * `threads`: worker threads at most (default: the cores beyond the event loop's, at most 3);
   * `idleMs`: how long a worker without work is kept before it stops.
   */
  constructor(
    private readonly threads = Math.min(3, Math.max(0, availableParallelism() - 1)),
    private readonly idleMs = IDLE_MS,
  ) {}

  /** Worker threads running now. */
  get running(): number {
    return this.workers.length;
  }

  /** A batch of checks: `verify` queues one, `drain` finishes them all. */
  batch(expected: number): VerifyBatch {
    return new VerifyBatch(this, expected >= 4 * CHUNK ? this.threads : 0);
  }

  /** @internal A worker able to take a chunk now, started on first need. */
  idleWorker(limit: number): PoolWorker | undefined {
    for (const w of this.workers) if (w.inFlight.size < PER_WORKER) return w;
    if (this.workers.length >= limit) return undefined;
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, { eval: true });
    } catch {
      return undefined;
    }
    worker.unref();
    const w: PoolWorker = { worker, inFlight: new Map(), idleTimer: null };
    worker.on('message', (m: { id: number; ok: Uint8Array }) => {
      const sent = w.inFlight.get(m.id);
      if (!sent) return;
      w.inFlight.delete(m.id);
      for (const [i, c] of sent.checks.entries()) c.resolve(m.ok[i] === 1);
      if (w.inFlight.size === 0) {
        worker.unref();
        w.idleTimer = setTimeout(() => {
          if (w.inFlight.size === 0) void worker.terminate();
        }, this.idleMs);
        w.idleTimer.unref();
      }
      sent.batch.pump();
    });
    const fail = () => {
      const i = this.workers.indexOf(w);
      if (i >= 0) this.workers.splice(i, 1);
      // Whatever it held is checked on the loop: never taken as passed.
      const held = [...w.inFlight.values()];
      w.inFlight.clear();
      for (const sent of held) for (const c of sent.checks) verifyHere(c);
    };
    worker.on('error', fail);
    worker.on('exit', fail);
    this.workers.push(w);
    return w;
  }

  /** @internal Sends a chunk to a worker. */
  post(w: PoolWorker, checks: Check[], batch: VerifyBatch): void {
    const keys: KeyObject[] = [];
    const keyIndex = new Map<KeyObject, number>();
    const keyOf = new Uint16Array(checks.length);
    const ends = new Uint32Array(checks.length);
    let size = 0;
    for (const c of checks) size += SIGNATURE_BYTES + c.message.length;
    const data = new Uint8Array(size);
    let at = 0;
    checks.forEach((c, i) => {
      let k = keyIndex.get(c.key);
      if (k === undefined) {
        k = keys.length;
        keys.push(c.key);
        keyIndex.set(c.key, k);
      }
      keyOf[i] = k;
      data.set(c.signature, at);
      data.set(c.message, at + SIGNATURE_BYTES);
      at += SIGNATURE_BYTES + c.message.length;
      ends[i] = at;
    });
    const id = this.nextId++;
    if (w.idleTimer) clearTimeout(w.idleTimer);
    w.idleTimer = null;
    w.inFlight.set(id, { checks, batch });
    w.worker.ref();
    w.worker.postMessage({ id, keys, data, ends, keyOf }, [data.buffer, ends.buffer, keyOf.buffer]);
  }

  /** Stops the workers (tests; a server exits with them unref'd). */
  async close(): Promise<void> {
    const all = this.workers.splice(0);
    await Promise.all(all.map((w) => w.worker.terminate()));
  }
}

export class VerifyBatch {
  private current: Check[] = [];
  private readonly queue: Check[][] = [];
  private readonly pending: Promise<boolean>[] = [];

  constructor(
    private readonly pool: VerifyPool,
    private readonly threads: number,
  ) {}

  /** Queues one check (verifyBytes's verdict, later): a BytesVerifier. */
  readonly verify: BytesVerifier = (signature, message, publicKey) => {
    if (!guardsPass(signature, message, publicKey)) return Promise.resolve(false);
    const p = new Promise<boolean>((resolve) => this.current.push({ signature, message, key: publicKey, resolve }));
    this.pending.push(p);
    if (this.current.length >= CHUNK) {
      this.queue.push(this.current);
      this.current = [];
      this.pump();
    }
    return p;
  };

  /** @internal Sends queued chunks to workers with room for them. */
  pump(): void {
    while (this.queue.length > 0 && this.threads > 0) {
      const w = this.pool.idleWorker(this.threads);
      if (!w) return;
      this.pool.post(w, this.queue.shift() as Check[], this);
    }
  }

  /** Lets the workers' answers in (and feeds them), between pieces of the caller's work. */
  async breathe(): Promise<void> {
    this.pump();
    await yieldToLoop();
  }

  /** Verifies what is still queued on the loop (workers keep taking chunks meanwhile), then waits for all. */
  async drain(): Promise<void> {
    if (this.current.length > 0) this.queue.push(this.current);
    this.current = [];
    this.pump();
    while (this.queue.length > 0) {
      // The newest chunk: the workers take from the front.
      for (const c of this.queue.pop() as Check[]) verifyHere(c);
      await this.breathe();
    }
    await Promise.all(this.pending);
  }
}

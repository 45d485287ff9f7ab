import type { ClientConfig, ClientState, GenerationSecret, RatchetTree, SecretTree } from 'ts-mls';
import { decodeRatchetTree, encodeRatchetTree } from 'ts-mls/ratchetTree.js';
import { decodeState, encodeState } from './group-state.js';
import type { CryptoStore } from './store.js';

/**
 * Persists MLS group states in pieces, so that an application message costs one small write
 * instead of re-encoding the whole state. ts-mls encodes a 500-member group's state (the
 * ratchet tree of the current and every retained epoch, and their secret trees) as ≈ 1 MB
 * in ≈ 0.7 s; what a message changes is one epoch's secret tree.
 *
 * Layout per room (`ns` is `group` or `pending`):
 * - `<ns>/<room>`: the state with its trees left out (ts-mls codec, a few KiB);
 * - `tree/<room>/<epoch>`: the ratchet tree of an epoch, written when the epoch starts;
 * - `secrets/<room>/<epoch>`: the secret tree of an epoch, rewritten as its ratchets advance.
 *
 * Trees are shared by `group` and `pending` (a prepared commit's new epoch is written once
 * and adopted as is). Each piece is written only when its object changed since the last
 * write: ts-mls never mutates state, it replaces what changed.
 */
export class GroupStore {
  readonly #written = new WeakMap<object, Set<string>>();
  /** Per `<ns>/<room>`: the objects the stored skeleton was made of. */
  readonly #skeletons = new Map<string, unknown[]>();

  constructor(
    private readonly store: CryptoStore,
    private readonly config: ClientConfig,
    /** Keep each retained epoch's whole secret tree for key backups (see CryptoDeviceOptions.backupHistory). */
    private readonly keepEpochStarts = false,
  ) {}

  async #putOnce(key: string, obj: object, bytes: () => Uint8Array): Promise<void> {
    let keys = this.#written.get(obj);
    if (keys?.has(key)) return;
    await this.store.put(key, bytes());
    if (keys === undefined) {
      keys = new Set();
      this.#written.set(obj, keys);
    }
    keys.add(key);
  }

  #remember(key: string, obj: object): void {
    let keys = this.#written.get(obj);
    if (keys === undefined) {
      keys = new Set();
      this.#written.set(obj, keys);
    }
    keys.add(key);
  }

  async save(ns: 'group' | 'pending', roomId: string, state: ClientState): Promise<void> {
    const epochs: [bigint, RatchetTree, SecretTree][] = [[state.groupContext.epoch, state.ratchetTree, state.secretTree]];
    for (const [epoch, data] of state.historicalReceiverData) epochs.push([epoch, data.ratchetTree, data.secretTree]);
    for (const [epoch, tree, secrets] of epochs) {
      const treeKey = `tree/${roomId}/${epoch}`;
      if (this.keepEpochStarts && !this.#written.get(tree)?.has(treeKey)) {
        // A new epoch: its secret tree is still whole. Kept (as `start/`) for key backups,
        // which then cover every message of the epoch, not just those not yet read.
        const startKey = `start/${roomId}/${epoch}`;
        if ((await this.store.get(startKey)) === undefined) await this.store.put(startKey, encodeSecretTree(secrets));
      }
      await this.#putOnce(treeKey, tree, () => encodeRatchetTree(tree));
      await this.#putOnce(`secrets/${roomId}/${epoch}`, secrets, () => encodeSecretTree(secrets));
    }
    // A message only advances a secret tree: skip the skeleton when nothing else changed.
    const parts = skeletonParts(state);
    const last = this.#skeletons.get(`${ns}/${roomId}`);
    if (last !== undefined && last.length === parts.length && last.every((x, i) => x === parts[i])) return;
    // ts-mls refuses to decode an empty ratchet tree: a one-leaf stand-in takes its place.
    const standIn = state.ratchetTree.filter((n) => n?.nodeType === 'leaf').slice(0, 1);
    const skeleton: ClientState = {
      ...state,
      ratchetTree: standIn,
      secretTree: [],
      historicalReceiverData: new Map(
        [...state.historicalReceiverData].map(([e, d]) => [e, { ...d, ratchetTree: standIn, secretTree: [] }] as const),
      ),
    };
    await this.store.put(`${ns}/${roomId}`, encodeState(skeleton));
    this.#skeletons.set(`${ns}/${roomId}`, parts);
    if (ns === 'group') await this.#prune(roomId, new Set(epochs.map(([e]) => String(e))));
  }

  /** Deletes the trees of epochs the group no longer keeps (forward secrecy, and space). */
  async #prune(roomId: string, keep: Set<string>): Promise<void> {
    const pending = await this.store.get(`pending/${roomId}`);
    for (const prefix of [`tree/${roomId}/`, `secrets/${roomId}/`, `start/${roomId}/`]) {
      for (const key of await this.store.list(prefix)) {
        const epoch = key.slice(prefix.length);
        // A prepared commit's next epoch is one ahead of everything kept.
        if (!keep.has(epoch) && (pending === undefined || BigInt(epoch) <= maxOf(keep))) await this.store.delete(key);
      }
    }
  }

  async load(ns: 'group' | 'pending', roomId: string): Promise<ClientState | undefined> {
    const raw = await this.store.get(`${ns}/${roomId}`);
    if (raw === undefined) return undefined;
    const skeleton = decodeState(raw, this.config);
    const piece = async (epoch: bigint) => {
      const treeKey = `tree/${roomId}/${epoch}`;
      const secretsKey = `secrets/${roomId}/${epoch}`;
      const treeBytes = await this.store.get(treeKey);
      const secretBytes = await this.store.get(secretsKey);
      if (treeBytes === undefined || secretBytes === undefined) throw new Error(`group state of ${roomId}: epoch ${epoch} pieces missing`);
      const tree = decodeRatchetTree(treeBytes, 0)?.[0];
      if (tree === undefined) throw new Error(`group state of ${roomId}: ratchet tree of epoch ${epoch} corrupt`);
      const secrets = decodeSecretTree(secretBytes);
      this.#remember(treeKey, tree);
      this.#remember(secretsKey, secrets);
      return { tree, secrets };
    };
    const current = await piece(skeleton.groupContext.epoch);
    const historical = new Map<bigint, ClientState['historicalReceiverData'] extends Map<bigint, infer V> ? V : never>();
    for (const [epoch, data] of skeleton.historicalReceiverData) {
      const p = await piece(epoch);
      historical.set(epoch, { ...data, ratchetTree: p.tree, secretTree: p.secrets });
    }
    const state = { ...skeleton, ratchetTree: current.tree, secretTree: current.secrets, historicalReceiverData: historical };
    this.#skeletons.set(`${ns}/${roomId}`, skeletonParts(state));
    return state;
  }

  /**
   * The state as it was when each retained epoch began (whole secret trees): what a key
   * backup holds, so a restored device reads every message of those epochs.
   */
  async forBackup(state: ClientState, roomId: string): Promise<ClientState> {
    const start = async (epoch: bigint, fallback: SecretTree) => {
      const raw = await this.store.get(`start/${roomId}/${epoch}`);
      return raw === undefined ? fallback : decodeSecretTree(raw);
    };
    const historical = new Map(state.historicalReceiverData);
    for (const [epoch, d] of historical) historical.set(epoch, { ...d, secretTree: await start(epoch, d.secretTree) });
    return { ...state, secretTree: await start(state.groupContext.epoch, state.secretTree), historicalReceiverData: historical };
  }

  async delete(ns: 'group' | 'pending', roomId: string): Promise<void> {
    this.#skeletons.delete(`${ns}/${roomId}`);
    await this.store.delete(`${ns}/${roomId}`);
  }
}

/** Everything of a state but its trees, by identity (ts-mls replaces what it changes). */
function skeletonParts(state: ClientState): unknown[] {
  const parts: unknown[] = [
    state.groupContext,
    state.keySchedule,
    state.privatePath,
    state.signaturePrivateKey,
    state.unappliedProposals,
    state.confirmationTag,
    state.groupActiveState,
  ];
  for (const [epoch, d] of state.historicalReceiverData) parts.push(epoch, d.groupContext, d.senderDataSecret, d.resumptionPsk);
  return parts;
}

function maxOf(epochs: Set<string>): bigint {
  let max = -1n;
  for (const e of epochs) if (BigInt(e) > max) max = BigInt(e);
  return max;
}

// Secret trees: a compact codec (ts-mls's generic one takes ≈ 17 ms for 1,023 nodes).
// node: u8 present; then handshake and application, each:
//   u8 secret length, secret, u32 generation, u16 unused count, [u32 generation, u8 length, secret]…
export function encodeSecretTree(tree: SecretTree): Uint8Array {
  let size = 4;
  for (const node of tree) {
    size += 1;
    if (node !== undefined) size += sizeOf(node.handshake) + sizeOf(node.application);
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, tree.length);
  let o = 4;
  const writeGen = (g: GenerationSecret) => {
    out[o++] = g.secret.length;
    out.set(g.secret, o);
    o += g.secret.length;
    view.setUint32(o, g.generation);
    o += 4;
    const unused = Object.entries(g.unusedGenerations);
    view.setUint16(o, unused.length);
    o += 2;
    for (const [gen, secret] of unused) {
      view.setUint32(o, Number(gen));
      o += 4;
      out[o++] = secret.length;
      out.set(secret, o);
      o += secret.length;
    }
  };
  for (const node of tree) {
    if (node === undefined) {
      out[o++] = 0;
      continue;
    }
    out[o++] = 1;
    writeGen(node.handshake);
    writeGen(node.application);
  }
  return out;
}

function sizeOf(g: GenerationSecret): number {
  let n = 1 + g.secret.length + 4 + 2;
  for (const secret of Object.values(g.unusedGenerations)) n += 4 + 1 + secret.length;
  return n;
}

export function decodeSecretTree(bytes: Uint8Array): SecretTree {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0);
  let o = 4;
  const readGen = (): GenerationSecret => {
    const len = bytes[o++] as number;
    const secret = bytes.slice(o, o + len);
    o += len;
    const generation = view.getUint32(o);
    o += 4;
    const n = view.getUint16(o);
    o += 2;
    const unusedGenerations: Record<number, Uint8Array> = {};
    for (let i = 0; i < n; i++) {
      const gen = view.getUint32(o);
      o += 4;
      const l = bytes[o++] as number;
      unusedGenerations[gen] = bytes.slice(o, o + l);
      o += l;
    }
    return { secret, generation, unusedGenerations };
  };
  const tree: SecretTree = new Array(count);
  for (let i = 0; i < count; i++) {
    if (bytes[o++] === 0) continue;
    const handshake = readGen();
    const application = readGen();
    tree[i] = { handshake, application };
  }
  if (o !== bytes.length) throw new Error('secret tree: trailing bytes');
  return tree;
}

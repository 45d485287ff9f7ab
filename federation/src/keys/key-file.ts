import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { generateSigningKey, type SigningKey } from './signing-key.js';

/**
 * The server's signing key on disk: `<dir>/ed25519_<keyId>.key`, PKCS#8 PEM, mode 0600 in a
 * 0700 directory. The only module of this package that does I/O.
 */

const KEY_FILE = /^ed25519_([A-Za-z0-9_]{1,64})\.key$/;

/**
 * Loads the newest key in `dir` (by modification time, then name), or creates one. When
 * several processes of one server start together on an empty directory, each re-reads the
 * directory after writing, so they settle on the same key unless their writes interleave
 * exactly; a key that lost still sits on disk and can be published as an old key.
 */
export async function loadOrCreateSigningKey(dir: string): Promise<SigningKey> {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('dir: expected a directory path');
  // mode applies only to directories created here: an operator's existing directory is theirs.
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const existing = await loadNewestKey(dir);
  if (existing) return existing;
  await writeKeyFile(dir, generateSigningKey());
  const created = await loadNewestKey(dir);
  if (!created) throw new Error(`could not read back the key written to ${dir}`);
  return created;
}

export async function loadNewestKey(dir: string): Promise<SigningKey | undefined> {
  const names = (await readdir(dir)).filter((name) => KEY_FILE.test(name));
  if (names.length === 0) return undefined;
  const dated = await Promise.all(names.map(async (name) => ({ name, mtime: (await stat(path.join(dir, name))).mtimeMs })));
  dated.sort((a, b) => b.mtime - a.mtime || (a.name < b.name ? 1 : -1));
  return readKeyFile(dir, dated[0]!.name);
}

async function readKeyFile(dir: string, name: string): Promise<SigningKey> {
  const file = path.join(dir, name);
  const keyId = KEY_FILE.exec(name)![1]!;
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey({ key: await readFile(file, 'utf8'), format: 'pem' });
  } catch (err) {
    // A damaged key file must stop the server: silently minting a new identity would not.
    throw new Error(`cannot read signing key ${file}: ${(err as Error).message}`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`signing key ${file} is not an Ed25519 key`);
  return { keyId, privateKey, publicKey: createPublicKey(privateKey) };
}

async function writeKeyFile(dir: string, key: SigningKey): Promise<void> {
  const pem = key.privateKey.export({ type: 'pkcs8', format: 'pem' });
  const final = path.join(dir, `ed25519_${key.keyId}.key`);
  // Write a dot-file, flush it, then rename: a crash never leaves a half-written key that
  // the next start would refuse, and readers never see one.
  const temp = path.join(dir, `.ed25519_${key.keyId}.key.${process.pid}.tmp`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(pem);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, final);
  await syncDirectory(dir);
}

// The rename is durable only once the directory entry is flushed (POSIX); best effort
// because some platforms cannot fsync a directory.
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // not supported here: the rename still happened
  } finally {
    await handle.close();
  }
}

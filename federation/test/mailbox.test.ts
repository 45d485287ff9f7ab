import { formatQueueAuth, mailboxSigningInput, parseQueueAuth } from '@parley/schemas';
import { describe, expect, it } from 'vitest';
import { generateSigningKey, publicKeyB64u, signBytes } from '../src/keys/index.js';
import {
  checkQueueRequest,
  MAILBOX_AUTH_WINDOW_MS,
  maxBlobBytes,
  newQueueIds,
  padBlock,
  sha256B64u,
  unpadBlock,
} from '../src/mailbox/index.js';

const NOW = Date.parse('2026-12-06T00:00:00Z');
const PATH = `/mailbox/v1/queues/${'r'.repeat(32)}/messages`;
const key = generateSigningKey();
const queueKey = publicKeyB64u(key.publicKey);

function authFor(method: string, path: string, ts: number, nonce = 'n'.repeat(22), signer = key): string {
  const input = mailboxSigningInput(method, path, ts, nonce, sha256B64u(new Uint8Array(0)));
  const sig = Buffer.from(signBytes(new TextEncoder().encode(input), signer.privateKey)).toString('base64url');
  return formatQueueAuth({ ts, nonce, sig });
}

const req = (authorization: string | undefined, method = 'GET', path = PATH) => ({ method, path, authorization, body: new Uint8Array(0) });

describe('mailbox blocks', () => {
  it.each([0, 1, 100, maxBlobBytes(1024)])('pads a %i-byte blob to exactly one block and back', (n) => {
    const blob = new Uint8Array(n).map((_, i) => i % 251);
    const block = padBlock(blob, 1024);
    expect(block.length).toBe(1024);
    expect(unpadBlock(block)).toEqual(blob);
  });

  it('refuses a blob that does not fit, and a block whose length prefix lies', () => {
    expect(() => padBlock(new Uint8Array(maxBlobBytes(1024) + 1), 1024)).toThrow(RangeError);
    const block = padBlock(new Uint8Array(10), 1024);
    new DataView(block.buffer).setUint32(0, 1021, false);
    expect(unpadBlock(block)).toBeNull();
    expect(unpadBlock(new Uint8Array(3))).toBeNull();
  });

  it('draws the receive ID and the send ID separately', () => {
    const { receiveId, sendId } = newQueueIds();
    expect(receiveId).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(sendId).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(receiveId).not.toBe(sendId);
  });
});

describe('signed queue requests', () => {
  it('accepts a request signed by the queue key within the window', () => {
    expect(checkQueueRequest(req(authFor('GET', PATH, NOW)), queueKey, NOW)).toMatchObject({ ok: true, ts: NOW });
    expect(checkQueueRequest(req(authFor('GET', PATH, NOW - MAILBOX_AUTH_WINDOW_MS)), queueKey, NOW).ok).toBe(true);
  });

  const other = generateSigningKey();
  it.each([
    ['no header', undefined, 'malformed'],
    ['bearer token', 'Bearer abc', 'malformed'],
    ['missing sig', 'ParleyQueue ts=1,nonce=nnnnnnnnnnnnnnnnnnnnnn', 'malformed'],
    ['short sig', `ParleyQueue ts=${NOW},nonce=${'n'.repeat(22)},sig=${'A'.repeat(85)}`, 'malformed'],
    ['overlong header', `ParleyQueue ts=${NOW},nonce=${'n'.repeat(300)},sig=${'A'.repeat(86)}`, 'malformed'],
    ['unicode', `ParleyQueue ts=${NOW},nonce=ñññññññññññññññññ,sig=${'A'.repeat(86)}`, 'malformed'],
    ['too old', authFor('GET', PATH, NOW - MAILBOX_AUTH_WINDOW_MS - 1), 'stale'],
    ['from the future', authFor('GET', PATH, NOW + MAILBOX_AUTH_WINDOW_MS + 1), 'stale'],
    ['another key', authFor('GET', PATH, NOW, undefined, other), 'bad_signature'],
    ['another method', authFor('DELETE', PATH, NOW), 'bad_signature'],
    ['another path', authFor('GET', `/mailbox/v1/queues/${'s'.repeat(32)}/messages`, NOW), 'bad_signature'],
    ['garbage sig', `ParleyQueue ts=${NOW},nonce=${'n'.repeat(22)},sig=${'A'.repeat(86)}`, 'bad_signature'],
  ])('refuses %s', (_name, header, reason) => {
    expect(checkQueueRequest(req(header), queueKey, NOW)).toEqual({ ok: false, reason });
  });

  it('refuses anything under a weak or malformed queue key without throwing', () => {
    const header = authFor('GET', PATH, NOW);
    for (const bad of ['A'.repeat(43), 'short', '', `${queueKey.slice(0, 42)}!`]) {
      expect(checkQueueRequest(req(header), bad, NOW)).toEqual({ ok: false, reason: 'bad_signature' });
    }
  });

  it('keeps newlines out of the signed fields so no field runs into the next', () => {
    expect(() => mailboxSigningInput('GET', '/a\n/b', NOW, 'n', 'h')).toThrow(/path/);
    expect(() => mailboxSigningInput('GET', '/a', -1, 'n', 'h')).toThrow(/ts/);
    expect(parseQueueAuth(`ParleyQueue ts=99999999999999999,nonce=${'n'.repeat(22)},sig=${'A'.repeat(86)}`)).toBeNull();
  });
});

import { check, SignedDevice } from '@parley/schemas';
import { describe, expect, it } from 'vitest';
import { checkMailbox } from '../../src/crypto/identity.js';
import { open, seal } from '../../src/crypto/session-mailbox.js';
import { makeUser } from './support.js';

// The device-list `mailbox` field and the sealed deposits of docs/protocol.md "Mailbox delivery of Welcomes".
const MAILBOX = { url: 'https://mail.example.org', send_id: 'Q'.repeat(32), seal_key: 'K'.repeat(43) };

describe('a device entry with a mailbox', () => {
  it('is covered by the list signature: signed, it verifies and is exposed; altered, the list is refused', async () => {
    const bob = await makeUser('@bob:b.test', 1);
    const alice = await makeUser('@alice:a.test', 1);
    const own = { ...bob.devices[0]!.ownSignedDevice(), mailbox: MAILBOX };
    const list = await bob.devices[0]!.signDeviceList([own], 2);
    const check = await alice.devices[0]!.trustDeviceList(list, bob.userId);
    expect(check.ok && check.list.devices[0]?.mailbox).toEqual(MAILBOX);
    for (const field of ['url', 'send_id', 'seal_key'] as const) {
      const altered = structuredClone(list);
      const entry = altered.devices[0]!;
      entry.mailbox = { ...MAILBOX, [field]: field === 'url' ? 'https://evil.example' : 'E'.repeat(field === 'send_id' ? 32 : 43) };
      expect(await alice.devices[0]!.trustDeviceList(altered, bob.userId)).toMatchObject({
        ok: false,
        reason: 'device list: bad signature',
      });
    }
    // Lists written before the field existed stay valid.
    expect((await alice.devices[0]!.trustDeviceList(bob.list, bob.userId)).ok).toBe(true);
  });

  it('is validated and size-capped by the schema and by the verifier', () => {
    const base = { device_id: 'DEV', signature_key: 'S'.repeat(43), credential_signature: 'C'.repeat(86) };
    expect(check(SignedDevice, { ...base, mailbox: MAILBOX }).ok).toBe(true);
    expect(check(SignedDevice, base).ok).toBe(true);
    const bad = [
      { ...MAILBOX, url: `https://x.org/${'a'.repeat(300)}` },
      { ...MAILBOX, url: 'ftp://x.org' },
      { ...MAILBOX, send_id: 'short' },
      { ...MAILBOX, seal_key: 'K'.repeat(44) },
      { ...MAILBOX, extra: 1 },
    ];
    for (const m of bad) {
      expect(check(SignedDevice, { ...base, mailbox: m }).ok).toBe(false);
      expect(checkMailbox(m)).toBeUndefined();
    }
    expect(checkMailbox(MAILBOX)).toEqual(MAILBOX);
  });
});

describe('sealed mailbox deposits', () => {
  it('open only with the seal key, and refuse anything altered', async () => {
    const { x25519 } = await import('@noble/curves/ed25519.js');
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const other = crypto.getRandomValues(new Uint8Array(32));
    const envelope = { type: 'mls.welcome', sender: '@alice:a.test', content: { room_id: '!r:a.test', epoch: 2, welcome: 'AAAA' } };
    const sealed = seal(x25519.getPublicKey(secret), new TextEncoder().encode(JSON.stringify({ v: 1, ...envelope })));
    expect(open(secret, sealed)).toEqual(envelope);
    expect(open(other, sealed)).toBeNull();
    const flipped = sealed.slice();
    flipped[40] = (flipped[40] as number) ^ 1;
    expect(open(secret, flipped)).toBeNull();
    expect(new TextDecoder().decode(sealed)).not.toContain('alice');
  });
});

import { check, RoomEvent } from '@parley/schemas';
import { sha256B64u } from '../canonical/index.js';
import type { SigningKey } from '../keys/signing-key.js';
import { contentHash, signingPayload } from './hashes.js';
import { userServer } from './ids.js';
import { assertSigningKey, signatureEntry } from './signatures.js';
import { checkEventSize } from './size.js';
import type { UnsignedEvent } from './types.js';

/**
 * The origin's side of authorship (docs/protocol.md): fills `hashes.sha256`, signs the redacted
 * form and returns the event with its ID. Throws a TypeError naming the bad parameter or
 * field; a signed event always passes verifyEvent with the matching key.
 */
export function signEvent(event: UnsignedEvent, serverName: string, key: SigningKey): { event: RoomEvent; eventId: string } {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) throw new TypeError('event: expected an object');
  assertSigningKey(key);
  const shape = check(RoomEvent, { ...event, hashes: { sha256: 'A' }, signatures: {} });
  if (!shape.ok) throw new TypeError(`event: ${shape.message}`);
  if (userServer(event.sender) === null) throw new TypeError('event: sender is not a user ID');
  if (event.origin !== userServer(event.sender)) throw new TypeError(`event: origin ${event.origin} is not the server of ${event.sender}`);
  if (serverName !== event.origin) throw new TypeError(`serverName: ${String(serverName)} is not the event's origin ${event.origin}`);

  const hashed = { ...event, hashes: { sha256: contentHash(event) } };
  const payload = Buffer.from(signingPayload(hashed));
  // Other servers' entries are kept; this server's are replaced, since they covered other bytes.
  const signed: RoomEvent = { ...hashed, signatures: { ...event.signatures, [serverName]: signatureEntry(payload, key) } };
  const size = checkEventSize(signed);
  if (!size.ok) throw new TypeError(size.reason);
  return { event: signed, eventId: '$' + sha256B64u(payload) };
}

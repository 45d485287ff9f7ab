import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { concatBytes, utf8 } from './encoding.js';

/**
 * What two people compare to verify each other (docs/protocol.md): a 60-digit safety number and a
 * 7-emoji string, both derived from the two user signing keys and user IDs, identical on
 * both sides whoever computes them. The number follows Signal's numeric fingerprint
 * (iterated SHA-512, 30 digits per party, the lower fingerprint first); the emoji use the
 * 64 pictures of Matrix's SAS verification, so users of either recognise them.
 */
const ITERATIONS = 5200;
const FINGERPRINT_VERSION = Uint8Array.of(0, 0);

export interface SafetyParty {
  userId: string;
  userSigningKey: Uint8Array;
}

function fingerprintDigits(party: SafetyParty): string {
  assertParty(party);
  const id = utf8(party.userId);
  let hash = concatBytes(FINGERPRINT_VERSION, party.userSigningKey, id);
  for (let i = 0; i < ITERATIONS; i++) hash = sha512(concatBytes(hash, party.userSigningKey));
  let out = '';
  for (let chunk = 0; chunk < 6; chunk++) {
    let n = 0;
    for (let j = 0; j < 5; j++) n = n * 256 + (hash[chunk * 5 + j] as number);
    out += String(n % 100_000).padStart(5, '0');
  }
  return out;
}

/** 60 digits in 12 groups of 5, the same for (a, b) and (b, a). */
export function safetyNumber(a: SafetyParty, b: SafetyParty): string {
  const [x, y] = [fingerprintDigits(a), fingerprintDigits(b)].sort();
  return `${x}${y}`.match(/.{5}/g)!.join(' ');
}

export const SAS_EMOJI: readonly (readonly [string, string])[] = [
  ['🐶', 'Dog'],
  ['🐱', 'Cat'],
  ['🦁', 'Lion'],
  ['🐎', 'Horse'],
  ['🦄', 'Unicorn'],
  ['🐷', 'Pig'],
  ['🐘', 'Elephant'],
  ['🐰', 'Rabbit'],
  ['🐼', 'Panda'],
  ['🐓', 'Rooster'],
  ['🐧', 'Penguin'],
  ['🐢', 'Turtle'],
  ['🐟', 'Fish'],
  ['🐙', 'Octopus'],
  ['🦋', 'Butterfly'],
  ['🌷', 'Flower'],
  ['🌳', 'Tree'],
  ['🌵', 'Cactus'],
  ['🍄', 'Mushroom'],
  ['🌏', 'Globe'],
  ['🌙', 'Moon'],
  ['☁️', 'Cloud'],
  ['🔥', 'Fire'],
  ['🍌', 'Banana'],
  ['🍎', 'Apple'],
  ['🍓', 'Strawberry'],
  ['🌽', 'Corn'],
  ['🍕', 'Pizza'],
  ['🎂', 'Cake'],
  ['❤️', 'Heart'],
  ['😀', 'Smiley'],
  ['🤖', 'Robot'],
  ['🎩', 'Hat'],
  ['👓', 'Glasses'],
  ['🔧', 'Spanner'],
  ['🎅', 'Santa'],
  ['👍', 'Thumbs Up'],
  ['☂️', 'Umbrella'],
  ['⌛', 'Hourglass'],
  ['⏰', 'Clock'],
  ['🎁', 'Gift'],
  ['💡', 'Light Bulb'],
  ['📕', 'Book'],
  ['✏️', 'Pencil'],
  ['📎', 'Paperclip'],
  ['✂️', 'Scissors'],
  ['🔒', 'Lock'],
  ['🔑', 'Key'],
  ['🔨', 'Hammer'],
  ['☎️', 'Telephone'],
  ['🏁', 'Flag'],
  ['🚂', 'Train'],
  ['🚲', 'Bicycle'],
  ['✈️', 'Aeroplane'],
  ['🚀', 'Rocket'],
  ['🏆', 'Trophy'],
  ['⚽', 'Ball'],
  ['🎸', 'Guitar'],
  ['🎺', 'Trumpet'],
  ['🔔', 'Bell'],
  ['⚓', 'Anchor'],
  ['🎧', 'Headphones'],
  ['📁', 'Folder'],
  ['📌', 'Pin'],
];

/** 7 emoji (42 bits) with their names, the same for (a, b) and (b, a). */
export function safetyEmoji(a: SafetyParty, b: SafetyParty): { emoji: string; name: string }[] {
  assertParty(a);
  assertParty(b);
  const parts = [a, b].map((p) => concatBytes(utf8(p.userId), Uint8Array.of(0), p.userSigningKey));
  parts.sort((x, y) => compareBytes(x, y));
  const hash = sha256(
    concatBytes(utf8('parley safety emoji v1\u0000'), ...parts.flatMap((p) => [Uint8Array.of(p.length >> 8, p.length & 255), p])),
  );
  let bits = 0n;
  for (let i = 0; i < 6; i++) bits = (bits << 8n) | BigInt(hash[i] as number);
  const out: { emoji: string; name: string }[] = [];
  for (let i = 0; i < 7; i++) {
    const [emoji, name] = SAS_EMOJI[Number((bits >> BigInt(42 - 6 * i)) & 63n)]!;
    out.push({ emoji, name });
  }
  return out;
}

function compareBytes(x: Uint8Array, y: Uint8Array): number {
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  return x.length - y.length;
}

function assertParty(p: SafetyParty): void {
  if (typeof p?.userId !== 'string' || p.userId.length === 0) throw new TypeError('userId: expected a user ID');
  if (!(p.userSigningKey instanceof Uint8Array) || p.userSigningKey.length !== 32) throw new TypeError('userSigningKey: expected 32 bytes');
}

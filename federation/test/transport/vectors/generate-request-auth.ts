// Writes request-auth.json's `signed` section: a fixed seed, requests, their canonical signing
// input and the Authorization header (Ed25519 is deterministic, RFC 8032 §5.1.6). Re-run with
// `npx tsx federation/test/transport/vectors/generate-request-auth.ts` and `biome format` it.
import { readFileSync, writeFileSync } from 'node:fs';
import { publicKeyB64u, signingKeyFromSeed } from '../../../src/keys/index.js';
import { type RequestToSign, requestSigningInput, signRequest } from '../../../src/transport/request-auth.js';

const seed = new Uint8Array(32).map((_, i) => i);
const key = signingKeyFromSeed(seed, 'a_vector01');
const requests: Array<{ name: string; request: RequestToSign }> = [
  {
    name: 'PUT with a body (keys sorted, UTF-8 kept)',
    request: {
      method: 'PUT',
      uri: '/federation/v1/send/txn1',
      origin: 'a.test',
      destination: 'b.test',
      content: { pdus: [{ b: 2, a: 'é' }], origin: 'a.test' },
      ts: 1765000000000,
    },
  },
  {
    name: 'GET with a query and no body (content omitted)',
    request: {
      method: 'GET',
      uri: '/federation/v1/rooms/!r:b.test/events?from_seq=10',
      origin: 'a.test:8448',
      destination: '[::1]:8481',
      ts: 0,
    },
  },
  {
    name: 'POST with a null body (content present)',
    request: {
      method: 'POST',
      uri: '/federation/v1/keys/query',
      origin: '127.0.0.1:8481',
      destination: 'b.test',
      content: null,
      ts: 9007199254740991,
    },
  },
];

const file = new URL('./request-auth.json', import.meta.url);
const vectors = JSON.parse(readFileSync(file, 'utf8'));
vectors.signed = {
  seedHex: Buffer.from(seed).toString('hex'),
  keyId: key.keyId,
  publicKey: publicKeyB64u(key.publicKey),
  cases: requests.map(({ name, request }) => ({
    name,
    request,
    signingInput: new TextDecoder().decode(requestSigningInput(request)),
    header: signRequest(request, key),
  })),
};
writeFileSync(file, `${JSON.stringify(vectors, null, 2)}\n`);

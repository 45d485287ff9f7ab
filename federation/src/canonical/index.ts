export { canonicalJson } from './canonical-json.js';
export { sha256B64u } from './hash.js';

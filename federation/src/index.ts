export * from './canonical/index.js';
export * from './chain/index.js';
export * from './events/index.js';
export * from './keys/index.js';

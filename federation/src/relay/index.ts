export * from './envelope.js';
export * from './limits.js';
export * from './receipt.js';
export * from './selection.js';

export * from './account.js';
export * from './auth.js';
export * from './errors.js';
export * from './events.js';
export * from './ids.js';
export * from './media.js';
export * from './rooms.js';
export * from './validate.js';

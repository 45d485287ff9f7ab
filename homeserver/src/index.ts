export { type Config, defaultConfig, loadConfig, validateConfig } from './config.js';
export { ParleyError } from './errors.js';
export { createLogger } from './logger.js';
export { type RunningHomeserver, startHomeserver } from './server.js';
export type { Clock } from './services/clock.js';

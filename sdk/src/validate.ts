import type { ParleyClient } from './client.js';
import { isPosition } from './positions.js';

// Option checks shared by ParleyStream and SyncPoller; each names the option that failed.

export function assertClient(client: unknown): ParleyClient {
  if (typeof client !== 'object' || client === null || typeof (client as ParleyClient).request !== 'function') {
    throw new TypeError('options.client must be a ParleyClient');
  }
  return client as ParleyClient;
}

export function assertOptionalPosition(value: unknown, name: string): number | null {
  if (value === undefined || value === null) return null;
  if (!isPosition(value)) throw new RangeError(`${name} must be a non-negative integer`);
  return value;
}

export function assertOptionalFunction<F>(value: F | undefined, name: string): F | undefined {
  if (value !== undefined && typeof value !== 'function') throw new TypeError(`${name} must be a function`);
  return value;
}

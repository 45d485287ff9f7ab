import {
  type DeviceKeysQueryResponse,
  type DeviceListAnswer,
  type DeviceListPutResponse,
  type EncryptedContent,
  type KeyBackup,
  type KeyBackupPutResponse,
  type KeyClaimResponse,
  type KeyCountResponse,
  type KeyUploadRequest,
  MLS_ALGORITHM,
  MLS_WELCOME_TYPE,
  type MlsCommitContent,
  type MlsWelcomeContent,
  type SendResponse,
  type SignedDeviceList,
} from '@parley/schemas';
import type { ParleyClient } from './client.js';
import { isParleyApiError } from './errors.js';
import { newTxnId } from './rooms.js';

const enc = encodeURIComponent;

/** What the host answered to a commit: sequenced, refused for a stale epoch, or queued (host unreachable). */
export type CommitSubmit =
  | { status: 'sequenced'; eventId: string }
  | { status: 'stale'; currentEpoch: number | null; message: string }
  | { status: 'queued'; eventId: string };

/**
 * The homeserver's end-to-end key endpoints (issue 12; wire shapes in `schemas/src/e2e.ts`):
 * key packages, signed device lists, key backup, Welcomes to devices, and the MLS room events.
 * Servers only ever see ciphertext and public keys; the crypto itself is `@parley/sdk/crypto`.
 */
export class E2eApi {
  constructor(private readonly client: ParleyClient) {}

  // POST /api/v1/keys/upload
  uploadKeyPackages(body: KeyUploadRequest): Promise<KeyCountResponse> {
    return this.client.request('POST', '/api/v1/keys/upload', body);
  }

  // GET /api/v1/keys/count
  keyPackageCount(): Promise<KeyCountResponse> {
    return this.client.request('GET', '/api/v1/keys/count');
  }

  /** One package per device (`[]` = every device of the user); 429 carries `retry_after_ms`. */
  // POST /api/v1/keys/claim
  claimKeyPackages(users: Record<string, string[]>): Promise<KeyClaimResponse> {
    return this.client.request('POST', '/api/v1/keys/claim', { users });
  }

  // PUT /api/v1/keys/device_list (409 PARLEY_VERSION_ROLLBACK when version does not grow)
  putDeviceList(list: SignedDeviceList): Promise<DeviceListPutResponse> {
    return this.client.request('PUT', '/api/v1/keys/device_list', list);
  }

  // GET /api/v1/keys/device_list/:userId
  deviceList(userId: string): Promise<DeviceListAnswer> {
    return this.client.request('GET', `/api/v1/keys/device_list/${enc(userId)}`);
  }

  // POST /api/v1/keys/query
  queryDeviceLists(users: string[]): Promise<DeviceKeysQueryResponse> {
    return this.client.request('POST', '/api/v1/keys/query', { users });
  }

  /** The latest backup, or null when there is none. */
  // GET /api/v1/keys/backup
  async backup(): Promise<KeyBackup | null> {
    try {
      return await this.client.request<KeyBackup>('GET', '/api/v1/keys/backup');
    } catch (err) {
      if (isParleyApiError(err) && err.status === 404) return null;
      throw err;
    }
  }

  /** `expectedVersion` null creates the first; 409 PARLEY_BACKUP_CONFLICT when another device wrote since. */
  // PUT /api/v1/keys/backup
  putBackup(ciphertext: string, algorithm: string, expectedVersion: number | null): Promise<KeyBackupPutResponse> {
    return this.client.request('PUT', '/api/v1/keys/backup', { ciphertext, algorithm, expected_version: expectedVersion });
  }

  // DELETE /api/v1/keys/backup
  async deleteBackup(): Promise<void> {
    await this.client.request('DELETE', '/api/v1/keys/backup');
  }

  /** Sends one Welcome to each added device, one request per device (the body cap is 64 KiB). */
  // PUT /api/v1/send_to_device/mls.welcome/:txnId
  async sendWelcome(devices: { userId: string; deviceId: string }[], content: MlsWelcomeContent): Promise<void> {
    for (const d of devices) {
      await this.client.request('PUT', `/api/v1/send_to_device/${MLS_WELCOME_TYPE}/${enc(newTxnId())}`, {
        messages: { [d.userId]: { [d.deviceId]: content } },
      });
    }
  }

  /** Any to-device message: `messages[user][device or "*"] = content`. */
  // PUT /api/v1/send_to_device/:type/:txnId
  async sendToDevice(type: string, messages: Record<string, Record<string, Record<string, unknown>>>): Promise<void> {
    await this.client.request('PUT', `/api/v1/send_to_device/${enc(type)}/${enc(newTxnId())}`, { messages });
  }

  /** Makes a room encrypted (irreversible): `room.encryption` state. */
  // PUT /api/v1/rooms/:roomId/state/room.encryption
  enableEncryption(roomId: string): Promise<SendResponse> {
    return this.client.request('PUT', `/api/v1/rooms/${enc(roomId)}/state/room.encryption`, { algorithm: MLS_ALGORITHM });
  }

  /**
   * Sends a `room.mls.commit`. The host sequences the first commit of each epoch; a later one
   * is answered 409 PARLEY_MLS_STALE_EPOCH, reported here as `stale` (process the winner,
   * then prepare again). `queued` means the host was unreachable: the outcome is unknown
   * until a commit of that epoch shows up in the timeline.
   */
  // PUT /api/v1/rooms/:roomId/send/room.mls.commit/:txnId
  async sendCommit(roomId: string, content: MlsCommitContent, txnId: string = newTxnId()): Promise<CommitSubmit> {
    try {
      const sent = await this.client.request<SendResponse>(
        'PUT',
        `/api/v1/rooms/${enc(roomId)}/send/room.mls.commit/${enc(txnId)}`,
        content,
      );
      return sent.queued === true ? { status: 'queued', eventId: sent.event_id } : { status: 'sequenced', eventId: sent.event_id };
    } catch (err) {
      if (isParleyApiError(err) && err.code === 'PARLEY_MLS_STALE_EPOCH') {
        // "room.mls.commit is for epoch 1, but the room is at epoch 2 (…)": the last epoch named is the room's.
        const epochs = [...err.message.matchAll(/epoch (\d+)/g)];
        const last = epochs[epochs.length - 1];
        return { status: 'stale', currentEpoch: last ? Number(last[1]) : null, message: err.message };
      }
      throw err;
    }
  }

  // PUT /api/v1/rooms/:roomId/send/room.encrypted/:txnId
  sendEncrypted(roomId: string, content: EncryptedContent, txnId: string = newTxnId()): Promise<SendResponse> {
    return this.client.request('PUT', `/api/v1/rooms/${enc(roomId)}/send/room.encrypted/${enc(txnId)}`, content);
  }
}

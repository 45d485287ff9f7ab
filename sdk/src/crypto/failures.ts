/**
 * Why a message could not be decrypted or a commit not applied (docs/protocol.md). Each reason has
 * one recovery, which the app runs and the UI names:
 *
 * - `unknown_epoch`: the message is for an epoch this device has not reached (commits still
 *   to process: apply them, then retry) or has already forgotten (older than the retained
 *   window: only a key backup that covers it helps).
 * - `missing_welcome`: this device holds no state for the room: its Welcome has not arrived
 *   (wait for it, or ask a member to re-add the device) or was lost (rejoin by external commit).
 * - `not_member`: the sender's leaf is not in the group, or its user is not a member in the
 *   room state, or this device was removed from the group (nothing to retry; rejoin if allowed).
 * - `no_key_package`: a Welcome names a KeyPackage this device does not hold (used up or
 *   lost): upload fresh packages and ask to be re-added, or rejoin by external commit.
 * - `corrupt`: undecodable, tampered, wrong signature, or replayed: the message is dropped.
 * - `stale_epoch` (commits only): a commit for an epoch already behind us: a replay or a
 *   loser of the host's order, ignored.
 */
export type DecryptFailureReason = 'unknown_epoch' | 'missing_welcome' | 'not_member' | 'no_key_package' | 'corrupt';
export type CommitFailureReason = DecryptFailureReason | 'stale_epoch';

export const DECRYPT_FAILURE_REASONS: readonly DecryptFailureReason[] = [
  'unknown_epoch',
  'missing_welcome',
  'not_member',
  'no_key_package',
  'corrupt',
];

export interface Failure<R extends string = CommitFailureReason> {
  ok: false;
  reason: R;
  /** For logs and tooltips; never contains plaintext or key material. */
  detail: string;
}

export function fail<R extends string>(reason: R, detail: string): Failure<R> {
  return { ok: false, reason, detail };
}

/** Thrown by calls that cannot return a failure value (e.g. adding a device with no package). */
export class CryptoFailureError extends Error {
  override readonly name = 'CryptoFailureError';
  constructor(
    readonly reason: CommitFailureReason,
    message: string,
    /** Users whose keys are not pinned yet (fetch their device lists and retry). */
    readonly users?: string[],
  ) {
    super(message);
  }
}

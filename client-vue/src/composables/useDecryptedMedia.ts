import { downloadMedia } from '@parley/sdk';
import type { AttachmentKey } from '@parley/sdk/crypto';
import { onScopeDispose, type Ref, ref, watch } from 'vue';
import { useE2eStore } from '../stores/e2e.js';
import { useSessionStore } from '../stores/session.js';

/** The key info of an encrypted attachment in a decrypted message's content, if well-formed. */
export function attachmentKeyOf(content: Record<string, unknown>): AttachmentKey | undefined {
  const f = content.file as Record<string, unknown> | undefined;
  if (typeof f !== 'object' || f === null) return undefined;
  const ok = ['algorithm', 'key', 'nonce', 'sha256'].every((k) => typeof f[k] === 'string') && typeof f.size === 'number';
  return ok ? (f as unknown as AttachmentKey) : undefined;
}

/** Downloads an encrypted attachment and decrypts it in the browser (the hash, tag and size are checked). */
export async function fetchDecrypted(uri: string, key: AttachmentKey, mimetype: string): Promise<Blob> {
  const sealed = await downloadMedia(useSessionStore().getClient(), uri);
  const plain = await useE2eStore().decryptFile(sealed.data, key);
  return new Blob([plain as BlobPart], { type: mimetype });
}

/**
 * An encrypted image shown from a blob: URL of its plaintext. Unlike plain media, decrypted
 * bytes are not shared in a cache: each URL is this component's and revoked when it unmounts.
 */
export function useDecryptedMedia(uri: Ref<string | undefined>, key: Ref<AttachmentKey | undefined>, mimetype: Ref<string>) {
  const url = ref<string | null>(null);
  const failed = ref(false);
  let alive = true;
  const release = () => {
    if (url.value) URL.revokeObjectURL(url.value);
    url.value = null;
  };
  watch(
    [uri, key],
    ([u, k]) => {
      release();
      failed.value = false;
      if (!u || !k) return;
      fetchDecrypted(u, k, mimetype.value).then(
        (blob) => {
          if (!alive || uri.value !== u) return;
          release();
          url.value = URL.createObjectURL(blob);
        },
        () => {
          if (alive) failed.value = true;
        },
      );
    },
    { immediate: true },
  );
  onScopeDispose(() => {
    alive = false;
    release();
  });
  return { url, failed };
}

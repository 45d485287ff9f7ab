import { downloadMedia } from '@parley/sdk';
import { onScopeDispose, type Ref, ref, watch } from 'vue';
import { useSessionStore } from '../stores/session.js';

// Media downloads need the Authorization header, so images are fetched and shown through
// blob: URLs. Kept per content URI, shared by every row showing it; the oldest are
// released past the cap (virtualized rows come and go while scrolling).
const CAP = 200;
const cache = new Map<string, Promise<string>>();

/** Lets an upload show its local file under the URI the server gave it, with no refetch. */
export function seedMediaUrl(uri: string, blobUrl: string): void {
  cache.set(uri, Promise.resolve(blobUrl));
}

function load(uri: string): Promise<string> {
  let hit = cache.get(uri);
  if (hit) {
    cache.delete(uri);
    cache.set(uri, hit);
    return hit;
  }
  const client = useSessionStore().getClient();
  hit = downloadMedia(client, uri).then((m) => URL.createObjectURL(new Blob([m.data as BlobPart], { type: m.contentType })));
  hit.catch(() => cache.delete(uri));
  cache.set(uri, hit);
  while (cache.size > CAP) {
    const [oldest, url] = cache.entries().next().value as [string, Promise<string>];
    cache.delete(oldest);
    void url.then((u) => URL.revokeObjectURL(u)).catch(() => {});
  }
  return hit;
}

export function useMediaUrl(uri: Ref<string | undefined>) {
  const url = ref<string | null>(null);
  const failed = ref(false);
  let alive = true;
  watch(
    uri,
    (value) => {
      url.value = null;
      failed.value = false;
      if (!value) return;
      load(value).then(
        (u) => {
          if (alive && uri.value === value) url.value = u;
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
  });
  return { url, failed };
}

import { ref } from 'vue';
import { describeError } from '../lib/errors.js';

/** A `loading` flag and a readable `error` around one async call (Elk's pattern). */
export function useAction() {
  const loading = ref(false);
  const error = ref<string | null>(null);

  async function run<T>(fn: () => Promise<T>): Promise<T | undefined> {
    loading.value = true;
    error.value = null;
    try {
      return await fn();
    } catch (err) {
      error.value = describeError(err);
      return undefined;
    } finally {
      loading.value = false;
    }
  }

  return { loading, error, run };
}

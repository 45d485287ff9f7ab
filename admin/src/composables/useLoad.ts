import { type Ref, ref, shallowRef } from 'vue';
import { errorText } from '../lib/format.js';

/** A value loaded from the API, with `loading` and `error` around every call. */
export function useLoad<T>(load: () => Promise<T>): {
  data: Ref<T | null>;
  loading: Ref<boolean>;
  error: Ref<string | null>;
  reload: () => Promise<void>;
} {
  const data = shallowRef<T | null>(null) as Ref<T | null>;
  const loading = ref(false);
  const error = ref<string | null>(null);
  async function reload(): Promise<void> {
    loading.value = true;
    error.value = null;
    try {
      data.value = await load();
    } catch (err) {
      error.value = errorText(err);
    } finally {
      loading.value = false;
    }
  }
  return { data, loading, error, reload };
}

/** Runs one action at a time, keeping its error and a status line for screen readers. */
export function useAction() {
  const busy = ref(false);
  const error = ref<string | null>(null);
  const status = ref<string | null>(null);
  async function run(work: () => Promise<string | undefined | void>): Promise<boolean> {
    busy.value = true;
    error.value = null;
    status.value = null;
    try {
      const said = await work();
      if (typeof said === 'string') status.value = said;
      return true;
    } catch (err) {
      error.value = errorText(err);
      return false;
    } finally {
      busy.value = false;
    }
  }
  return { busy, error, status, run };
}

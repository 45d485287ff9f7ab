import { ref, watchEffect } from 'vue';

export type ThemeChoice = 'system' | 'light' | 'dark';
const KEY = 'parley.theme';

function saved(): ThemeChoice {
  const v = typeof localStorage === 'undefined' ? null : localStorage.getItem(KEY);
  return v === 'light' || v === 'dark' ? v : 'system';
}

const choice = ref<ThemeChoice>(saved());
let applied = false;

/** Light, dark or the system's choice; stored per browser, applied as `data-theme` on <html>. */
export function useTheme() {
  if (!applied) {
    applied = true;
    watchEffect(() => {
      const root = document.documentElement;
      if (choice.value === 'system') root.removeAttribute('data-theme');
      else root.setAttribute('data-theme', choice.value);
      try {
        localStorage.setItem(KEY, choice.value);
      } catch {
        // storage disabled: the choice lasts for this page
      }
    });
  }
  return { choice };
}

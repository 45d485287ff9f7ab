import { onBeforeUnmount, ref } from 'vue';

/** True on a phone-sized screen (the same 640 px the styles use), following resizes. */
export function useNarrow(query = '(max-width: 640px)') {
  const media = window.matchMedia(query);
  const narrow = ref(media.matches);
  const update = (e: MediaQueryListEvent) => {
    narrow.value = e.matches;
  };
  media.addEventListener('change', update);
  onBeforeUnmount(() => media.removeEventListener('change', update));
  return narrow;
}

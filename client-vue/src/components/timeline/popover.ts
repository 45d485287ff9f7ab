import { ref } from 'vue';

/**
 * The one open message popover in the timeline (a reaction picker or a message's action menu
 * opened by a long press), as `<eventId>:picker` or `<eventId>:menu`. One at a time: opening
 * another, clicking elsewhere, replying or sending closes it.
 */
export const openPopover = ref<string | null>(null);

export function closePopovers(): void {
  openPopover.value = null;
}

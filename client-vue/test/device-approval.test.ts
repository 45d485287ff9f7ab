import { SAS_EMOJI } from '@parley/sdk/crypto';
import { mount } from '@vue/test-utils';
import { createPinia, setActivePinia } from 'pinia';
import { describe, expect, it } from 'vitest';
import { nextTick } from 'vue';
import E2eApprovalPrompt from '../src/components/e2e/E2eApprovalPrompt.vue';
import { approvalEmoji } from '../src/lib/e2e.js';
import { useE2eStore } from '../src/stores/e2e.js';

const KEY = 'A'.repeat(43);
const OTHER_KEY = `${'A'.repeat(42)}B`;

describe('approvalEmoji (what both devices show while one approves the other)', () => {
  it('is 7 of the SAS pictures, the same for the same user, device and key', async () => {
    const a = await approvalEmoji(SAS_EMOJI, '@carol:hs1.test', 'DEV2', KEY);
    expect(a).toHaveLength(7);
    const names = new Set(SAS_EMOJI.map(([, name]) => name));
    for (const e of a) expect(names.has(e.name)).toBe(true);
    expect(await approvalEmoji(SAS_EMOJI, '@carol:hs1.test', 'DEV2', KEY)).toEqual(a);
  });

  it('differs when the key, the device or the user differs', async () => {
    const a = await approvalEmoji(SAS_EMOJI, '@carol:hs1.test', 'DEV2', KEY);
    expect(await approvalEmoji(SAS_EMOJI, '@carol:hs1.test', 'DEV2', OTHER_KEY)).not.toEqual(a);
    expect(await approvalEmoji(SAS_EMOJI, '@carol:hs1.test', 'DEV3', KEY)).not.toEqual(a);
    expect(await approvalEmoji(SAS_EMOJI, '@dave:hs2.test', 'DEV2', KEY)).not.toEqual(a);
  });
});

describe('E2eApprovalPrompt', () => {
  it('names the asking device, shows its emoji, and Reject takes it off the list', async () => {
    setActivePinia(createPinia());
    const e2e = useE2eStore();
    const emoji = await approvalEmoji(SAS_EMOJI, '@carol:hs1.test', 'DEV2', KEY);
    e2e.approvals = [{ deviceId: 'DEV2', displayName: 'Phone', emoji }];
    const w = mount(E2eApprovalPrompt);
    await nextTick();
    expect(w.text()).toContain('A new sign-in wants access: Phone (DEV2)');
    expect(w.findAll('[data-testid="approval-emoji-item"]')).toHaveLength(7);
    await w
      .findAll('button')
      .find((b) => b.text() === 'Reject')
      ?.trigger('click');
    await nextTick();
    expect(e2e.approvals).toEqual([]);
    expect(w.find('[data-testid="approval-prompt"]').exists()).toBe(false);
  });
});

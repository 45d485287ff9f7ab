import type { ClientEvent, Member } from '@parley/schemas';
import {
  BackupError,
  DECRYPT_FAILURE_REASONS,
  formatRecoveryKey,
  newRecoveryKey,
  openBackup,
  parseRecoveryKey,
  safetyEmoji,
  safetyNumber,
  sealBackup,
} from '@parley/sdk/crypto';
import { mount } from '@vue/test-utils';
import { createPinia, setActivePinia } from 'pinia';
import { describe, expect, it } from 'vitest';
import { nextTick } from 'vue';
import E2eKeyChangeBanner from '../src/components/e2e/E2eKeyChangeBanner.vue';
import E2eSafetyView from '../src/components/e2e/E2eSafetyView.vue';
import E2eUndecryptable from '../src/components/e2e/E2eUndecryptable.vue';
import { type DecryptView, decryptTimeline, FAILURE_TEXT, recoveryErrorText, searchDecrypted } from '../src/lib/e2e.js';
import { buildRows } from '../src/lib/timeline.js';
import { useE2eStore } from '../src/stores/e2e.js';
import { useRoomsStore } from '../src/stores/rooms.js';
import { useSessionStore } from '../src/stores/session.js';

const flush = () => new Promise((r) => setTimeout(r, 0));

describe('undecryptable messages', () => {
  it('every failure reason the sdk can give is explained in words, with its action calling retry', async () => {
    // The sdk's own list: a reason added there without words here fails this test.
    expect([...DECRYPT_FAILURE_REASONS].sort()).toEqual(Object.keys(FAILURE_TEXT).sort());
    for (const reason of DECRYPT_FAILURE_REASONS) {
      let retried = 0;
      const view: DecryptView = { state: 'failed', reason, retryable: true };
      const w = mount(E2eUndecryptable, {
        props: {
          view,
          retry: async () => {
            retried++;
          },
        },
      });
      const box = w.get('[data-testid="undecryptable"]');
      expect(box.attributes('data-reason')).toBe(reason);
      expect(box.text()).toContain('Unable to decrypt');
      expect(box.text()).toContain(FAILURE_TEXT[reason].title);
      expect(box.text()).toContain(FAILURE_TEXT[reason].hint);
      const button = w.get('[data-testid="undecryptable-retry"]');
      expect(button.text()).toBe(reason === 'missing_welcome' || reason === 'no_key_package' ? 'Request again' : 'Retry');
      await button.trigger('click');
      await flush();
      expect(retried).toBe(1);
      w.unmount();
    }
  });

  it('a retry that fails says why; a pending one says it is decrypting', async () => {
    const w = mount(E2eUndecryptable, {
      props: {
        view: { state: 'failed', reason: 'missing_welcome', retryable: true },
        retry: async () => {
          throw new Error('the room host cannot be reached');
        },
      },
    });
    await w.get('[data-testid="undecryptable-retry"]').trigger('click');
    await flush();
    expect(w.get('[role="alert"]').text()).toBe('the room host cannot be reached');
    const pending = mount(E2eUndecryptable, { props: { view: { state: 'pending' }, retry: async () => {} } });
    expect(pending.find('[data-testid="undecryptable"]').exists()).toBe(false);
    expect(pending.get('[data-testid="decrypting"]').text()).toContain('Decrypting…');
  });
});

describe('verification emoji', () => {
  it('shows the 7 emoji with names and the 60-digit number, the same for both people', () => {
    const alice = { userId: '@alice:hs1.test', userSigningKey: new Uint8Array(32).fill(7) };
    const bob = { userId: '@bob:hs2.test', userSigningKey: new Uint8Array(32).fill(9) };
    const seenByAlice = mount(E2eSafetyView, { props: { safety: { emoji: safetyEmoji(alice, bob), number: safetyNumber(alice, bob) } } });
    const seenByBob = mount(E2eSafetyView, { props: { safety: { emoji: safetyEmoji(bob, alice), number: safetyNumber(bob, alice) } } });
    const items = seenByAlice.findAll('[data-testid="sas-item"]');
    expect(items).toHaveLength(7);
    for (const item of items) expect(item.text()).toMatch(/^\S+\s*[A-Z][a-z]/u);
    expect(items.map((i) => i.text())).toEqual(seenByBob.findAll('[data-testid="sas-item"]').map((i) => i.text()));
    const groups = seenByAlice.findAll('[data-testid="safety-number"] .group').map((g) => g.text());
    expect(groups).toHaveLength(12);
    for (const g of groups) expect(g).toMatch(/^\d{5}$/);
    expect(seenByAlice.get('[data-testid="safety-number"]').text()).toBe(seenByBob.get('[data-testid="safety-number"]').text());
  });
});

describe('recovery key errors', () => {
  it('a wrong key, a typo and a non-key each get their own sentence', () => {
    const right = newRecoveryKey();
    const sealed = sealBackup(right, '@alice:hs1.test', new Uint8Array([1, 2, 3]));
    let wrong: unknown;
    try {
      openBackup(newRecoveryKey(), '@alice:hs1.test', sealed);
    } catch (err) {
      wrong = err;
    }
    expect(wrong).toBeInstanceOf(BackupError);
    expect(recoveryErrorText(wrong)).toBe('That recovery key does not unlock this account’s backup. Check it and try again.');

    const typed = formatRecoveryKey(right);
    const typo = `${typed.slice(0, -1)}${typed.endsWith('A') ? 'B' : 'A'}`;
    let typoErr: unknown;
    try {
      parseRecoveryKey(typo);
    } catch (err) {
      typoErr = err;
    }
    expect(recoveryErrorText(typoErr)).toContain('has a typo');
    let junk: unknown;
    try {
      parseRecoveryKey('hello');
    } catch (err) {
      junk = err;
    }
    expect(recoveryErrorText(junk)).toContain('That is not a recovery key');
    // The key typed in lower case with dashes still reads.
    expect(parseRecoveryKey(typed.toLowerCase().replace(/ /g, '-'))).toEqual(right);
  });
});

function enc(id: string, seq: number, sender = '@bob:hs2.test'): ClientEvent {
  return {
    event_id: id,
    room_id: '!r:hs1.test',
    type: 'room.encrypted',
    sender,
    origin_ts: 1_700_000_000_000 + seq * 1000,
    seq,
    content: { epoch: 1, ciphertext: 'AAAA' },
  };
}
const ok = (content: Record<string, unknown>, userId = '@bob:hs2.test'): DecryptView => ({
  state: 'ok',
  content,
  sender: { userId, deviceId: 'D' },
  verified: false,
});

describe('the decrypted timeline', () => {
  it('replaces decrypted events, applies encrypted edits and reactions, keeps the rest sealed', () => {
    const events = [enc('$1', 1), enc('$2', 2), enc('$3', 3, '@alice:hs1.test'), enc('$4', 4), enc('$5', 5)];
    const views = new Map<string, DecryptView>([
      ['$1', ok({ type: 'room.message', msgtype: 'text', body: 'the plan' })],
      [
        '$2',
        ok({
          type: 'room.message',
          msgtype: 'text',
          body: '* the new plan',
          new_content: { msgtype: 'text', body: 'the new plan' },
          relates_to: { type: 'replace', event_id: '$1' },
        }),
      ],
      ['$3', ok({ type: 'room.reaction', relates_to: { type: 'annotation', event_id: '$1', key: '👍' } }, '@alice:hs1.test')],
      ['$4', { state: 'failed', reason: 'unknown_epoch', retryable: true }],
    ]);
    const out = decryptTimeline(events, views, '@alice:hs1.test');
    const rows = buildRows(out, []).filter((r) => r.kind === 'message');
    expect(rows.map((r) => (r.kind === 'message' ? r.event.event_id : ''))).toEqual(['$1', '$4', '$5']);
    const first = rows[0];
    if (first?.kind !== 'message') throw new Error('no row');
    expect(first.edit?.body).toBe('the new plan');
    expect(first.reactions).toEqual([{ key: '👍', count: 1, me: true }]);
    expect(rows[1]?.kind === 'message' && rows[1].event.type).toBe('room.encrypted');
    // Search runs over what was decrypted, edits included; sealed events are not searched.
    expect(searchDecrypted(out, 'NEW plan').map((e) => e.event_id)).toEqual(['$1']);
    expect(searchDecrypted(out, 'AAAA')).toEqual([]);
  });
});

describe('key change banner', () => {
  it('warns loudly about each member whose key changed, and Verify opens the verification for them', async () => {
    const pinia = createPinia();
    setActivePinia(pinia);
    const auth = useSessionStore();
    auth.session = {
      user_id: '@alice:hs1.test',
      device_id: 'A1',
      access_token: 't',
      refresh_token: 'r',
      expires_at_ms: Date.now() + 3_600_000,
    };
    const rooms = useRoomsStore();
    const member = (user_id: string) => ({ user_id, membership: 'join', displayname: null, avatar_url: null }) as Member;
    rooms.members.set('!r:hs1.test', [member('@alice:hs1.test'), member('@bob:hs2.test'), member('@carol:hs2.test')]);
    const e2e = useE2eStore();
    e2e.trust.set('@bob:hs2.test', 'verified');
    e2e.trust.set('@carol:hs2.test', 'unverified');
    const w = mount(E2eKeyChangeBanner, { props: { roomId: '!r:hs1.test' }, global: { plugins: [pinia] } });
    expect(w.findAll('[data-testid="key-changed-banner"]')).toHaveLength(0);
    e2e.trust.set('@bob:hs2.test', 'key_changed');
    await nextTick();
    const banners = w.findAll('[data-testid="key-changed-banner"]');
    expect(banners).toHaveLength(1);
    expect(banners[0]?.attributes('role')).toBe('alert');
    expect(banners[0]?.text()).toContain('bob’s security key has changed.');
    await banners[0]?.get('button').trigger('click');
    expect(e2e.verifying).toBe('@bob:hs2.test');
    // Verified again: the banner goes.
    e2e.trust.set('@bob:hs2.test', 'verified');
    await nextTick();
    expect(w.findAll('[data-testid="key-changed-banner"]')).toHaveLength(0);
  });
});

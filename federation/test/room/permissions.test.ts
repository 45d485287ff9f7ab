import { ALL_PERMISSIONS, Permission, type RolesContent } from '@parley/schemas';
import { describe, expect, it } from 'vitest';
import { can, defaultRoles, permissionsOf, positionOf, rolesContentProblem } from '../../src/room/index.js';
import { buildState } from './helpers.js';

const ALICE = '@alice:a.example';
const BOB = '@bob:b.example';
const CAROL = '@carol:b.example';
const DAVE = '@dave:c.example';
const { VIEW, SEND, REACT, ATTACH, KICK, BAN, MANAGE_ROLES } = Permission;

const create = { type: 'room.create', state_key: '', sender: ALICE, content: { creator: ALICE, kind: 'room', version: 1 } };
const aliceJoin = { type: 'room.member', state_key: ALICE, sender: ALICE, content: { membership: 'join' } };

function roomWith(roles: RolesContent) {
  return buildState([create, aliceJoin, { type: 'room.roles', state_key: '', sender: ALICE, content: roles }]);
}

const roles: RolesContent = {
  roles: {
    lead: { name: 'Lead', position: 70, permissions: KICK | MANAGE_ROLES },
    mod: { name: 'Mod', position: 50, permissions: KICK | BAN },
    boss: { name: 'Boss', position: 90, permissions: Permission.ADMIN },
    everyone: { name: 'everyone', position: 0, permissions: VIEW | SEND },
  },
  users: { [BOB]: ['mod', 'lead'], [DAVE]: ['boss'] },
};

describe('defaultRoles', () => {
  it('gives the creator admin and everyone the basics', () => {
    const content = defaultRoles(ALICE);
    expect(rolesContentProblem(content)).toBeNull();
    expect(content.users).toEqual({ [ALICE]: ['admin'] });
    expect(content.roles.everyone).toMatchObject({ position: 0, permissions: VIEW | SEND | REACT | ATTACH });
    expect(content.roles.admin!.position).toBeGreaterThan(content.roles.moderator!.position);
  });

  it('gives moderators the moderation bits and not role or room management', () => {
    const { permissions } = defaultRoles(ALICE).roles.moderator!;
    expect(permissions & (Permission.MANAGE_MESSAGES | Permission.INVITE | KICK | BAN)).toBe(
      Permission.MANAGE_MESSAGES | Permission.INVITE | KICK | BAN,
    );
    expect(permissions & (MANAGE_ROLES | Permission.MANAGE_ROOM | Permission.ADMIN)).toBe(0);
  });

  it.each([undefined, null, '', 'alice', '@Alice:a.example', 42])('rejects creator %s', (bad) => {
    expect(() => defaultRoles(bad as any)).toThrow(TypeError);
  });
});

describe('permissionsOf / positionOf / can', () => {
  const state = roomWith(roles);

  it('unions everyone with the user roles', () => {
    expect(permissionsOf(state, BOB)).toBe(VIEW | SEND | KICK | BAN | MANAGE_ROLES);
    expect(permissionsOf(state, CAROL)).toBe(VIEW | SEND);
  });

  it('expands ADMIN to every bit', () => {
    expect(permissionsOf(state, DAVE)).toBe(ALL_PERMISSIONS);
  });

  it('gives the creator ADMIN even without a role', () => {
    expect(permissionsOf(state, ALICE)).toBe(ALL_PERMISSIONS);
    expect(permissionsOf(buildState([create]), ALICE)).toBe(ALL_PERMISSIONS);
  });

  it('grants nothing by role in a room without room.roles', () => {
    const bare = buildState([create, aliceJoin]);
    expect(permissionsOf(bare, BOB)).toBe(0);
    expect(positionOf(bare, BOB)).toBe(0);
  });

  it('takes the highest role position; everyone is 0; the creator is above all', () => {
    expect(positionOf(state, BOB)).toBe(70);
    expect(positionOf(state, DAVE)).toBe(90);
    expect(positionOf(state, CAROL)).toBe(0);
    expect(positionOf(state, ALICE)).toBe(Number.POSITIVE_INFINITY);
  });

  it('answers can() per bit', () => {
    expect(can(state, BOB, 'KICK')).toBe(true);
    expect(can(state, BOB, 'MANAGE_ROOM')).toBe(false);
    expect(can(state, CAROL, 'SEND')).toBe(true);
    expect(can(state, CAROL, 'REACT')).toBe(false);
  });

  it.each(['kick', 'toString', '', 'ALL'])('can() throws on unknown permission %s', (name) => {
    expect(() => can(state, BOB, name as any)).toThrow(TypeError);
  });
});

describe('rolesContentProblem', () => {
  const ok = defaultRoles(ALICE);
  // One table of hostile values, fed to every field the shape check reads.
  const HOSTILE: unknown[] = [undefined, null, 0, -1, 1.5, Number.NaN, 2 ** 32, '', 'x', [], {}, true, Object.create({ a: 1 })];

  it('accepts the defaults', () => expect(rolesContentProblem(ok)).toBeNull());

  it.each(HOSTILE)('refuses content %s', (bad) => {
    expect(rolesContentProblem(bad)).toEqual(expect.any(String));
  });

  it.each(HOSTILE)('refuses role %s', (bad) => {
    const content = structuredClone(ok) as any;
    content.roles.moderator = bad;
    expect(rolesContentProblem(content)).toEqual(expect.any(String));
  });

  it.each([
    ['position', [undefined, null, -1, 1.5, Number.NaN, 1001, '1', [], true]],
    ['permissions', [undefined, null, -1, 1.5, Number.NaN, 2 ** 32, ALL_PERMISSIONS + 1, '1', []]],
    ['name', [undefined, null, 0, '', 'x'.repeat(65), [], {}]],
    ['color', [null, 'red', '#12345', '#1234567', 0]],
  ])('refuses bad %s values', (field, values) => {
    for (const bad of values as unknown[]) {
      const content = structuredClone(ok) as any;
      content.roles.moderator[field] = bad;
      expect(rolesContentProblem(content), `${field}=${String(bad)}`).toEqual(expect.any(String));
    }
  });

  it('refuses role IDs that would resolve through the prototype', () => {
    const content = structuredClone(ok);
    content.users[BOB] = ['constructor'];
    expect(rolesContentProblem(content)).toContain('unknown role');
  });

  it('treats a malformed stored roles content as absent', () => {
    const state = roomWith(ok);
    const event = state.get('room.roles\u0000')!;
    const broken = new Map(state).set('room.roles\u0000', { ...event, content: { roles: 'x', users: {} } });
    expect(permissionsOf(broken, BOB)).toBe(0);
  });
});

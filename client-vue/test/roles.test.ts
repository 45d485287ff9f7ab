import { ALL_PERMISSIONS, type ClientEvent, Permission, type RolesContent } from '@parley/schemas';
import { describe, expect, it } from 'vitest';
import {
  authStateOf,
  can,
  colourOf,
  newRoleId,
  outranks,
  permissionsOf,
  positionOf,
  sortedRoles,
  withRole,
  withUserRoles,
} from '../src/lib/roles.js';

const member = Permission.VIEW | Permission.SEND | Permission.REACT | Permission.ATTACH;
const roles: RolesContent = {
  roles: {
    admin: { name: 'Admin', position: 100, permissions: ALL_PERMISSIONS },
    moderator: { name: 'Moderator', position: 50, permissions: member | Permission.KICK | Permission.BAN, color: '#aa0000' },
    helper: { name: 'Helper', position: 20, permissions: member | Permission.INVITE, color: '#00aa00' },
    everyone: { name: 'everyone', position: 0, permissions: member },
  },
  users: { '@ann:hs': ['admin'], '@mo:hs': ['moderator', 'helper'], '@hal:hs': ['helper'] },
};
const auth = { creator: '@cre:hs', roles };

function state(type: string, content: Record<string, unknown>): ClientEvent {
  return { event_id: `$${type}`, room_id: '!r:hs', type, state_key: '', sender: '@cre:hs', origin_ts: 1, content };
}

describe('roles', () => {
  it('reads creator and roles from state events', () => {
    const found = authStateOf([
      state('room.create', { creator: '@cre:hs', kind: 'room', version: 1 }),
      state('room.roles', roles as unknown as Record<string, unknown>),
      { ...state('room.member', { membership: 'join' }), state_key: '@cre:hs' },
    ]);
    expect(found).toEqual(auth);
  });

  it('unions permissions over roles; the creator and admins hold everything', () => {
    expect(permissionsOf(auth, '@cre:hs')).toBe(ALL_PERMISSIONS);
    expect(permissionsOf(auth, '@ann:hs')).toBe(ALL_PERMISSIONS);
    expect(permissionsOf(auth, '@mo:hs')).toBe(member | Permission.KICK | Permission.BAN | Permission.INVITE);
    expect(permissionsOf(auth, '@nobody:hs')).toBe(member);
    expect(can(auth, '@hal:hs', 'INVITE')).toBe(true);
    expect(can(auth, '@hal:hs', 'KICK')).toBe(false);
    expect(permissionsOf({ creator: null, roles: null }, '@x:hs')).toBe(0);
  });

  it('ranks by the highest role; only strictly higher people may act', () => {
    expect(positionOf(auth, '@mo:hs')).toBe(50);
    expect(positionOf(auth, '@cre:hs')).toBe(Number.POSITIVE_INFINITY);
    expect(outranks(auth, '@mo:hs', '@hal:hs')).toBe(true);
    expect(outranks(auth, '@hal:hs', '@mo:hs')).toBe(false);
    expect(outranks(auth, '@mo:hs', '@mo:hs')).toBe(false);
    expect(outranks(auth, '@ann:hs', '@cre:hs')).toBe(false);
  });

  it('does not resolve role IDs through the prototype', () => {
    const odd: RolesContent = { roles: { everyone: { name: 'e', position: 0, permissions: 0 } }, users: { '@x:hs': ['constructor'] } };
    expect(permissionsOf({ creator: null, roles: odd }, '@x:hs')).toBe(0);
    expect(permissionsOf({ creator: null, roles: odd }, 'constructor')).toBe(0);
  });

  it('sorts roles highest first and colours names by the highest coloured role', () => {
    expect(sortedRoles(roles).map((r) => r.id)).toEqual(['admin', 'moderator', 'helper', 'everyone']);
    expect(colourOf(roles, '@mo:hs')).toBe('#aa0000');
    expect(colourOf(roles, '@hal:hs')).toBe('#00aa00');
    expect(colourOf(roles, '@ann:hs')).toBeNull();
  });

  it('makes valid, unique role IDs', () => {
    expect(newRoleId('Night Owls!', [])).toBe('night-owls');
    expect(newRoleId('Helper', ['helper'])).toBe('helper-2');
    expect(newRoleId('Helper', ['helper', 'helper-2'])).toBe('helper-3');
    expect(newRoleId('✨✨', [])).toBe('role');
    expect(newRoleId('x'.repeat(80), [])).toMatch(/^[a-z0-9_-]{1,32}$/);
  });

  it('edits content immutably; deleting a role removes its assignments', () => {
    const added = withRole(roles, 'bot', { name: 'Bot', position: 5, permissions: Permission.SEND });
    expect(added.roles.bot?.name).toBe('Bot');
    expect(roles.roles.bot).toBeUndefined();
    const removed = withRole(roles, 'helper', null);
    expect(removed.roles.helper).toBeUndefined();
    expect(removed.users['@mo:hs']).toEqual(['moderator']);
    expect(removed.users['@hal:hs']).toBeUndefined();
    expect(roles.users['@hal:hs']).toEqual(['helper']);
  });

  it('sets a user’s roles without storing everyone, unknown roles or duplicates', () => {
    const next = withUserRoles(roles, '@new:hs', ['helper', 'helper', 'everyone', 'ghost']);
    expect(next.users['@new:hs']).toEqual(['helper']);
    expect(withUserRoles(roles, '@hal:hs', []).users['@hal:hs']).toBeUndefined();
  });
});

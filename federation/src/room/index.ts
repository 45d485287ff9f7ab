// Room rules (docs/protocol.md): state accessors, roles and permissions, event auth, history
// visibility. Pure functions only; callers bring the state and do the I/O.
export {
  authorizeMls,
  ENCRYPTED_ROOM_TYPES,
  isEncrypted,
  MLS_STALE_EPOCH,
  MLS_TYPES,
  nextMlsEpoch,
  ROOM_ENCRYPTED,
} from './auth-mls.js';
export { type AuthContext, type AuthResult, authorize } from './auth-rules.js';
export { can, defaultRoles, EVERYONE_ROLE, permissionsOf, positionOf } from './permissions.js';
export { rolesContentProblem } from './roles-shape.js';
export {
  applyEvent,
  createContent,
  getState,
  historyVisibility,
  isHistoryVisibility,
  isJoinRule,
  isMembership,
  joinRule,
  membershipOf,
  rolesContent,
  type StateMap,
  stateKey,
} from './state.js';
export { canSee, type MembershipChange, visibleUpTo } from './visibility.js';

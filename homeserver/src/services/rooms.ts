import { randomBytes } from 'node:crypto';
import { canonicalJson as canonicalize } from '@parley/federation/canonical';
import { defaultRoles } from '@parley/federation/room';
import {
  AvatarContent,
  CanonicalAliasContent,
  type CreateRoomRequest,
  check,
  EncryptedContent,
  HistoryVisibilityContent,
  JoinRulesContent,
  MessageContent,
  MLS_ALGORITHM,
  MlsCommitContent,
  MlsEncryptionContent,
  MlsProposalContent,
  NameContent,
  PinnedContent,
  parseUserId,
  ReactionContent,
  RolesContent,
  type SendResponse,
  SpaceChildContent,
  TopicContent,
} from '@parley/schemas';
import type { Db } from '../db/database.js';
import { badRequest, forbidden, notFound, ParleyError } from '../errors.js';
import type { RemoteDirectory } from '../federation/remote-directory.js';
import type { FederatedRooms } from '../federation/rooms.js';
import type { EventRepository } from '../repositories/events.js';
import type { AliasRepository, TxnRepository } from '../repositories/room-extras.js';
import type { RoomRepository, RoomRow } from '../repositories/rooms.js';
import type { UserRepository } from '../repositories/users.js';
import type { Clock } from './clock.js';
import type { AppendBatch, Draft, RoomLog } from './room-log.js';
import type { RoomSequencer } from './room-sequencer.js';
import type { AuthContext } from './sessions.js';

export interface RoomDeps {
  db: Db;
  rooms: RoomRepository;
  events: EventRepository;
  txns: TxnRepository;
  aliases: AliasRepository;
  users: UserRepository;
  log: RoomLog;
  sequencer: RoomSequencer;
  clock: Clock;
  serverName: string;
}

// Content schemas checked beyond the auth rules, per event type.
const CONTENT_SCHEMAS: Record<string, Parameters<typeof check>[0]> = {
  'room.message': MessageContent,
  'room.reaction': ReactionContent,
  'room.roles': RolesContent,
  'room.name': NameContent,
  'room.topic': TopicContent,
  'room.avatar': AvatarContent,
  'room.pinned': PinnedContent,
  'room.canonical_alias': CanonicalAliasContent,
  // Only MLS (docs/protocol.md); and the MLS events carry nothing in the clear but what the schemas name.
  'room.encryption': MlsEncryptionContent,
  'room.encrypted': EncryptedContent,
  'room.mls.commit': MlsCommitContent,
  'room.mls.proposal': MlsProposalContent,
  'room.join_rules': JoinRulesContent,
  'room.history_visibility': HistoryVisibilityContent,
  'space.child': SpaceChildContent,
};

// hasOwn: an event type named `constructor` must not find Object.prototype's (it was a 500).
function contentSchemaOf(type: string): Parameters<typeof check>[0] | undefined {
  return Object.hasOwn(CONTENT_SCHEMAS, type) ? CONTENT_SCHEMAS[type] : undefined;
}

/**
 * Room lifecycle and every write to a room: creation, membership changes, state, messages
 * and redactions. Each write is one transaction holding the room lock (see RoomLog).
 */
export class RoomService {
  /** Set when federation runs: rooms hosted elsewhere are written through their host. */
  remote: FederatedRooms | null = null;
  /** Set when federation runs: aliases of other servers are asked of them. */
  remoteDirectory: RemoteDirectory | null = null;
  /** Set with rate limits on: throws (429) when a user declines remote invites too fast. */
  remoteDeclineGate: ((userId: string) => Promise<void>) | null = null;
  /** Rooms an admin blocked: nobody here may join them (services/admin). */
  blocked: (roomId: string) => Promise<boolean> = async () => false;

  /** Per (user, device, room): the last send in line, so one device's sends reach the sequencer in the order they came in. */
  private readonly deviceLines = new Map<string, Promise<void>>();
  /** Sends per (user, device, txnId) still running in this process, so a repeat waits for its first. */
  private readonly txnsInFlight = new Map<string, Promise<SendResponse>>();

  constructor(private readonly d: RoomDeps) {}

  private hostOf(roomId: string): string {
    return roomId.slice(roomId.indexOf(':') + 1);
  }

  /** Signs a draft as origin and has the remote host sequence it. */
  private async remoteWrite(draft: Draft, onQueued?: () => void): Promise<SendResponse> {
    const remote = this.remote;
    if (!remote) throw notFound('this server does not federate');
    const roomId = (draft as Draft & { room_id: string }).room_id;
    const { event } = remote.signForRemote(roomId, draft.type, draft.sender, draft.content, draft.state_key);
    return remote.submit(roomId, event, onQueued);
  }

  get serverName(): string {
    return this.d.serverName;
  }

  async create(auth: AuthContext, req: CreateRoomRequest): Promise<{ room_id: string }> {
    const { db, rooms, aliases, clock, serverName, log } = this.d;
    const kind = req.kind ?? 'room';
    if (req.parent) {
      const parent = await rooms.find(req.parent);
      if (parent?.kind !== 'space') throw badRequest('PARLEY_INVALID_PARAM', 'parent is not a space on this server', 'parent');
      if (parent.host !== serverName) throw badRequest('PARLEY_INVALID_PARAM', 'channels must be hosted on the space’s server', 'parent');
    }
    for (const invitee of req.invite ?? []) {
      if (!parseUserId(invitee)) throw badRequest('PARLEY_INVALID_PARAM', `invalid user ID ${invitee}`, 'invite');
    }
    const roomId = `!${randomBytes(18).toString('base64url')}:${serverName}`;
    const alias = req.alias ? `#${req.alias}:${serverName}` : null;
    const joinRule = req.join_rule ?? (req.visibility === 'public' ? 'public' : 'invite');

    await db.transaction(async (trx) => {
      const room: RoomRow = {
        room_id: roomId,
        host: serverName,
        creator: auth.userId,
        kind,
        parent_id: req.parent ?? null,
        published: req.visibility === 'public',
        current_seq: 0,
        head_hash: null,
        lamport: 0,
        created_ts: clock.now(),
      };
      // Lock the parent before anything takes the stream position lock (lock order: rooms, then stream).
      const parent = req.parent ? ((await rooms.lock(req.parent, trx)) as RoomRow) : null;
      await rooms.insert(room, trx);
      const me = auth.userId;
      const profile = await this.d.users.findById(me, trx);
      const drafts: Draft[] = [
        {
          type: 'room.create',
          state_key: '',
          sender: me,
          content: {
            creator: me,
            kind,
            version: 1,
            ...(req.parent ? { parent: req.parent } : {}),
            ...(req.is_direct ? { is_direct: true } : {}),
          },
        },
        { type: 'room.member', state_key: me, sender: me, content: { membership: 'join', displayname: profile?.displayname ?? null } },
      ];
      // A channel starts with a copy of its space's roles (kept in step by setState below), so
      // its chain verifies on its own on every server; other rooms start with the default set.
      const [parentRoles] = parent ? await rooms.stateEvents(parent.room_id, [{ type: 'room.roles', stateKey: '' }], trx) : [];
      drafts.push({ type: 'room.roles', state_key: '', sender: me, content: parentRoles?.content ?? defaultRoles(me) });
      drafts.push({ type: 'room.join_rules', state_key: '', sender: me, content: { join_rule: joinRule } });
      drafts.push({
        type: 'room.history_visibility',
        state_key: '',
        sender: me,
        content: { history_visibility: req.history_visibility ?? 'shared' },
      });
      // Encrypted from the first event on (irreversible); the name and topic stay readable by the server.
      if (req.encrypted) drafts.push({ type: 'room.encryption', state_key: '', sender: me, content: { algorithm: MLS_ALGORITHM } });
      if (req.name) drafts.push({ type: 'room.name', state_key: '', sender: me, content: { name: req.name } });
      if (req.topic) drafts.push({ type: 'room.topic', state_key: '', sender: me, content: { topic: req.topic } });
      if (alias) drafts.push({ type: 'room.canonical_alias', state_key: '', sender: me, content: { alias } });
      for (const invitee of req.invite ?? []) {
        if (invitee !== me) drafts.push({ type: 'room.member', state_key: invitee, sender: me, content: { membership: 'invite' } });
      }
      for (const draft of drafts) await log.append(room, draft, trx);
      if (alias && !(await aliases.insert(alias, roomId, me, clock.now(), trx))) {
        throw new ParleyError(409, 'PARLEY_ALIAS_IN_USE', `the alias ${alias} is taken`, { field: 'alias' });
      }
      if (parent) await log.append(parent, { type: 'space.child', state_key: roomId, sender: me, content: { via: [serverName] } }, trx);
    });
    return { room_id: roomId };
  }

  /** Resolves `!id:server` or `#alias:server` to a room ID; another server's alias is asked of it. */
  async resolve(idOrAlias: string): Promise<string> {
    if (idOrAlias.startsWith('#')) {
      if (this.hostOf(idOrAlias) !== this.d.serverName) {
        if (!this.remoteDirectory) throw notFound(`${idOrAlias} belongs to another server and this server does not federate`);
        return (await this.remoteDirectory.resolveAlias(idOrAlias)).room_id;
      }
      const roomId = await this.d.aliases.resolve(idOrAlias);
      if (!roomId) throw notFound(`no room has the alias ${idOrAlias}`);
      return roomId;
    }
    return idOrAlias;
  }

  async join(auth: AuthContext, idOrAlias: string): Promise<{ room_id: string }> {
    const roomId = await this.resolve(idOrAlias);
    if (await this.blocked(roomId)) throw forbidden(`${roomId} is blocked on this server`);
    const profile = await this.d.users.findById(auth.userId);
    if (this.remote && this.hostOf(roomId) !== this.d.serverName) {
      const known = await this.d.rooms.find(roomId);
      if (known) {
        await this.remoteWrite({
          room_id: roomId,
          type: 'room.member',
          state_key: auth.userId,
          sender: auth.userId,
          content: { membership: 'join', displayname: profile?.displayname ?? null },
        } as Draft);
      } else {
        await this.remote.join(auth.userId, roomId, profile?.displayname ?? null);
      }
      return { room_id: roomId };
    }
    await this.write(roomId, {
      type: 'room.member',
      state_key: auth.userId,
      sender: auth.userId,
      content: { membership: 'join', displayname: profile?.displayname ?? null },
    });
    return { room_id: roomId };
  }

  async leave(auth: AuthContext, roomId: string, reason?: string): Promise<SendResponse> {
    return this.membership(auth, roomId, auth.userId, 'leave', reason);
  }

  async membership(
    auth: AuthContext,
    roomId: string,
    target: string,
    membership: 'invite' | 'leave' | 'ban',
    reason?: string,
  ): Promise<SendResponse> {
    const content: Record<string, unknown> = { membership };
    if (reason) content.reason = reason;
    return this.write(roomId, { type: 'room.member', state_key: target, sender: auth.userId, content });
  }

  async kick(auth: AuthContext, roomId: string, target: string, reason?: string): Promise<SendResponse> {
    const current = await this.d.rooms.membership(roomId, target);
    if (current === 'ban') throw forbidden(`${target} is banned; use unban`);
    if (target === auth.userId) throw badRequest('PARLEY_INVALID_PARAM', 'use leave to leave a room yourself', 'user_id');
    return this.membership(auth, roomId, target, 'leave', reason);
  }

  async unban(auth: AuthContext, roomId: string, target: string, reason?: string): Promise<SendResponse> {
    const current = await this.d.rooms.membership(roomId, target);
    if (current !== 'ban') throw badRequest('PARLEY_INVALID_PARAM', `${target} is not banned`, 'user_id');
    return this.membership(auth, roomId, target, 'leave', reason);
  }

  async setState(
    auth: AuthContext,
    roomId: string,
    type: string,
    stateKey: string,
    content: Record<string, unknown>,
  ): Promise<SendResponse> {
    if (type === 'room.member') throw badRequest('PARLEY_INVALID_PARAM', 'use join, leave, invite, kick and ban for membership', 'type');
    if (type === 'room.create') throw forbidden('room.create cannot be sent again');
    const schema = contentSchemaOf(type);
    if (schema) this.checkContent(schema, content);
    const before = type === 'room.roles' ? await this.d.rooms.stateEvents(roomId, [{ type, stateKey }]) : [];
    const result = await this.write(roomId, { type, state_key: stateKey, sender: auth.userId, content });
    if (type === 'room.join_rules') await this.d.rooms.setPublished(roomId, content.join_rule === 'public');
    if (type === 'room.roles' && before[0]) await this.followSpaceRoles(auth, roomId, before[0].content, content);
    return result;
  }

  /**
   * Channels follow their space's roles: a channel whose roles still equal the space's old
   * ones gets the new ones as a room.roles event in its own log (sent by the same user, who
   * holds the same power there), so every server verifies channel events from the channel's
   * chain alone. A channel whose roles were changed on their own keeps them.
   */
  private async followSpaceRoles(
    auth: AuthContext,
    spaceId: string,
    oldRoles: Record<string, unknown>,
    newRoles: Record<string, unknown>,
  ): Promise<void> {
    const space = await this.d.rooms.find(spaceId);
    if (space?.kind !== 'space' || space.host !== this.d.serverName) return;
    const same = (a: unknown, b: unknown) => canonicalize(a) === canonicalize(b);
    for (const channel of await this.d.rooms.children(spaceId)) {
      if (channel.host !== this.d.serverName) continue;
      try {
        await this.d.db.transaction(async (trx) => {
          const room = await this.lockLocal(channel.room_id, trx);
          const [current] = await this.d.rooms.stateEvents(channel.room_id, [{ type: 'room.roles', stateKey: '' }], trx);
          if (!current || !same(current.content, oldRoles)) return;
          await this.d.log.append(room, { type: 'room.roles', state_key: '', sender: auth.userId, content: newRoles }, trx);
        });
      } catch (err) {
        // Not allowed there (e.g. not joined to that channel): it keeps its roles until someone who is sets them.
        if (!(err instanceof ParleyError)) throw err;
      }
    }
  }

  /** PUT /rooms/:id/send/:type/:txnId — the same (device, txnId) always answers the same event. */
  async send(auth: AuthContext, roomId: string, type: string, txnId: string, content: Record<string, unknown>): Promise<SendResponse> {
    if (type === 'room.redaction') throw badRequest('PARLEY_INVALID_PARAM', 'use the redact endpoint to redact', 'type');
    const schema = contentSchemaOf(type);
    if (schema) this.checkContent(schema, content);
    return this.idempotent(
      auth,
      roomId,
      txnId,
      async (trx, room, batch) => {
        // The group's earlier events go in first when this one reads events (its relation's target).
        if ((content.relates_to as { event_id?: unknown } | undefined)?.event_id !== undefined) await this.d.log.flush(batch, trx);
        await this.checkRelation(room, auth.userId, content, trx);
        return this.d.log.append(room, { type, sender: auth.userId, content }, trx, { txn: { deviceId: auth.deviceId, txnId } }, batch);
      },
      { type, sender: auth.userId, content },
    );
  }

  async redact(auth: AuthContext, roomId: string, targetId: string, txnId: string, reason?: string): Promise<SendResponse> {
    const content: Record<string, unknown> = { redacts: targetId };
    if (reason) content.reason = reason;
    return this.idempotent(
      auth,
      roomId,
      txnId,
      async (trx, room, batch) => {
        await this.d.log.flush(batch, trx);
        const target = await this.d.events.find(targetId, trx);
        if (!target || target.room_id !== roomId) throw notFound(`no event ${targetId} in this room`);
        const ctx = { redactedEventSender: target.sender, txn: { deviceId: auth.deviceId, txnId } };
        return this.d.log.append(room, { type: 'room.redaction', sender: auth.userId, content }, trx, ctx, batch);
      },
      { type: 'room.redaction', sender: auth.userId, content },
    );
  }

  private checkContent(schema: Parameters<typeof check>[0], value: unknown, field = 'content'): void {
    const result = check(schema, value);
    if (!result.ok) {
      const name = result.field ? `${field}.${result.field}` : field;
      throw new ParleyError(400, result.code, `${name}: ${result.message}`, { field: name });
    }
  }

  /** Relations must point at a live event of the same room; one reaction per user and key. */
  private async checkRelation(room: RoomRow, sender: string, content: Record<string, unknown>, trx: Db): Promise<void> {
    const rel = content.relates_to as { type?: string; event_id?: string; key?: string } | undefined;
    if (!rel?.event_id) return;
    const target = await this.d.events.find(rel.event_id, trx);
    if (!target || target.room_id !== room.room_id)
      throw badRequest('PARLEY_INVALID_PARAM', `relates_to.event_id ${rel.event_id} is not in this room`, 'relates_to');
    if (target.redacted_by) throw badRequest('PARLEY_INVALID_PARAM', 'cannot relate to a redacted event', 'relates_to');
    if (rel.type === 'replace' && target.sender !== sender) throw forbidden('you can only edit your own messages');
    if (rel.type === 'annotation' && rel.key && (await this.d.events.findReaction(rel.event_id, sender, rel.key, trx))) {
      throw new ParleyError(409, 'PARLEY_DUPLICATE_ANNOTATION', `you already reacted with ${rel.key}`);
    }
  }

  /**
   * Sends go through the room's sequencer (group commit); the txnId check runs under the lock.
   * A send repeating a txn still in flight here (a client retry racing its first try) waits for
   * it and then answers from its txn row: in a room hosted elsewhere the txn row is written only
   * once the host has sequenced the event, so without this wait both would be submitted.
   */
  private async idempotent(
    auth: AuthContext,
    roomId: string,
    txnId: string,
    work: (trx: Db, room: RoomRow, batch: AppendBatch) => Promise<{ eventId: string; seq: number }>,
    remoteDraft: Draft,
  ): Promise<SendResponse> {
    const txnKey = `${auth.userId}\u0000${auth.deviceId}\u0000${txnId}`;
    const earlier = this.txnsInFlight.get(txnKey);
    const run = (async () => {
      if (earlier) await earlier.catch(() => undefined);
      return this.inDeviceLine(auth, roomId, txnId, work, remoteDraft);
    })();
    this.txnsInFlight.set(txnKey, run);
    try {
      return await run;
    } finally {
      if (this.txnsInFlight.get(txnKey) === run) this.txnsInFlight.delete(txnKey);
    }
  }

  private async inDeviceLine(
    auth: AuthContext,
    roomId: string,
    txnId: string,
    work: (trx: Db, room: RoomRow, batch: AppendBatch) => Promise<{ eventId: string; seq: number }>,
    remoteDraft: Draft,
  ): Promise<SendResponse> {
    // A device's sends wait in line until the one before has been handed to the room's
    // sequencer or submit lane (not until it commits, so they still share a group commit),
    // keeping the order the device sent them in. The first read (txn and room host) starts
    // before the wait: a burst then costs concurrent reads instead of one round trip per send
    // in series, and the requests waiting in line clear (and free their memory) sooner.
    const lookup = this.d.txns.findWithRoomHost(auth.userId, auth.deviceId, txnId, roomId);
    // Awaited below; until then a failure must not count as unhandled.
    lookup.catch(() => {});
    const key = `${auth.userId}\u0000${auth.deviceId}\u0000${roomId}`;
    const before = this.deviceLines.get(key);
    let handedOver!: () => void;
    const mine = new Promise<void>((resolve) => {
      handedOver = resolve;
    });
    this.deviceLines.set(key, mine);
    const done = () => {
      handedOver();
      if (this.deviceLines.get(key) === mine) this.deviceLines.delete(key);
    };
    try {
      if (before) await before;
      return await this.sequenced(auth, roomId, txnId, lookup, work, remoteDraft, done);
    } finally {
      done();
    }
  }

  private async sequenced(
    auth: AuthContext,
    roomId: string,
    txnId: string,
    lookup: ReturnType<TxnRepository['findWithRoomHost']>,
    work: (trx: Db, room: RoomRow, batch: AppendBatch) => Promise<{ eventId: string; seq: number }>,
    remoteDraft: Draft,
    handedOver: () => void,
  ): Promise<SendResponse> {
    // One round trip, started before the device's line (idempotent): the txn (a retry answers
    // with its event) and the room's host.
    const { txn: existing, host } = await lookup;
    if (existing) return this.answerFor(existing.event_id, existing.room_id, roomId);
    if (host !== null && host !== this.d.serverName) {
      // The next send of this device may follow once this one has its place in the room's submit line.
      const sent = await this.remoteWrite({ ...remoteDraft, room_id: roomId } as Draft, handedOver);
      // No transaction around it, and one INSERT with the other sends answered in the same turn.
      await this.d.txns.insertSoon({
        user_id: auth.userId,
        device_id: auth.deviceId,
        txn_id: txnId,
        room_id: roomId,
        event_id: sent.event_id,
        created_ts: this.d.clock.now(),
      });
      return sent;
    }
    const submitted = this.d.sequencer.submit(roomId, async (trx, room, batch, careful) => {
      // The lookup above found no txn row, and a retry of this txn in this process waits for this
      // send (idempotent). Another process may have sequenced the same txn since: then this
      // group's txn row collides with its row on commit, and the sequencer runs each send again
      // alone and `careful`, when the check under the room lock finds that row.
      if (careful) {
        const again = await this.d.txns.find(auth.userId, auth.deviceId, txnId, trx);
        if (again) return this.answerFor(again.event_id, again.room_id, roomId, trx);
      }
      const appended = await work(trx, room, batch);
      batch.txns.push({
        user_id: auth.userId,
        device_id: auth.deviceId,
        txn_id: txnId,
        room_id: roomId,
        event_id: appended.eventId,
        created_ts: this.d.clock.now(),
      });
      return { event_id: appended.eventId, seq: appended.seq };
    });
    handedOver();
    return submitted;
  }

  private async answerFor(eventId: string, txnRoom: string, roomId: string, trx: Db = this.d.db): Promise<SendResponse> {
    if (txnRoom !== roomId)
      throw new ParleyError(409, 'PARLEY_INVALID_PARAM', 'this txnId was already used in another room', { field: 'txnId' });
    const row = await this.d.events.find(eventId, trx);
    return row ? { event_id: eventId, seq: row.seq } : { event_id: eventId };
  }

  private async lockLocal(roomId: string, trx: Db): Promise<RoomRow> {
    const room = await this.d.rooms.lock(roomId, trx);
    if (!room) throw notFound(`no room ${roomId} on this server`);
    return room;
  }

  private async write(roomId: string, draft: Draft): Promise<SendResponse> {
    const room = await this.d.rooms.find(roomId);
    if (room && room.host !== this.d.serverName) return this.remoteWrite({ ...draft, room_id: roomId } as Draft);
    if (!room && this.remote && this.hostOf(roomId) !== this.d.serverName) {
      // Declining an invite to a room this server is not in: the host records the leave. Only
      // the invitee's own decline of an invite they hold goes out: any other write here let a
      // user delete someone else's pending invite, or have this server queue signed events
      // for days to any server named in a room ID (issue 10, L10).
      const decline = draft.type === 'room.member' && draft.state_key === draft.sender && draft.content.membership === 'leave';
      if (!decline || !(await this.remote.hasInvite(roomId, draft.sender))) throw notFound(`no room ${roomId} on this server`);
      // Each decline may wait in the outbox for days while its host is down: paced per user.
      await this.remoteDeclineGate?.(draft.sender);
      const sent = await this.remoteWrite({ ...draft, room_id: roomId } as Draft);
      await this.remote.forgetInvite(roomId, draft.sender);
      return sent;
    }
    return this.d.db.transaction(async (trx) => {
      const room = await this.lockLocal(roomId, trx);
      const appended = await this.d.log.append(room, draft, trx);
      return { event_id: appended.eventId, seq: appended.seq };
    });
  }
}

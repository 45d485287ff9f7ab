import type {
  AdminAssignReportRequest,
  AdminBlocklistSubscribeRequest,
  AdminCreateRegistrationTokenRequest,
  AdminCreateUserRequest,
  AdminDeactivateRequest,
  AdminDomainImportRequest,
  AdminDomainPolicyRequest,
  AdminJob,
  AdminMailboxView,
  AdminReport,
  AdminResetPasswordRequest,
  AdminRoom,
  AdminShutdownRoomRequest,
  AdminUser,
  AuditEntry,
  DomainPolicy,
  SettingEntry,
} from '@parley/schemas';
import type { ParleyClient } from './client.js';

const enc = encodeURIComponent;

function query(params: Record<string, string | number | boolean | undefined>): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${enc(k)}=${enc(String(v))}`);
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

export interface AdminSession {
  device_id: string;
  display_name: string | null;
  created_ts: number;
  last_seen_ts: number | null;
  last_seen_ip: string | null;
}

export interface AdminMediaItem {
  media_id: string;
  uploader: string | null;
  origin: string | null;
  content_type: string;
  filename: string | null;
  size: number;
  created_ts: number;
  quarantined_ts: number | null;
  quarantined_by: string | null;
}

export interface MediaUsage {
  total_bytes: number;
  files: number;
  remote_bytes: number;
  quarantined: number;
  top: Array<{ uploader: string; bytes: number; files: number }>;
}

export interface RegistrationToken {
  token: string;
  uses_allowed: number | null;
  uses_completed: number;
  expires_ts: number | null;
  created_ts: number;
}

export interface DestinationOverview {
  name: string;
  state: 'up' | 'backing_off' | 'down';
  failures: number;
  next_try_ts: number | null;
  since_ts: number | null;
  last_success_ts: number | null;
  last_error: string | null;
  pending: { events: number; edus: number; submits: number };
  oldest_pending_ts: number | null;
  expired: number;
  blocked: boolean;
}

export interface BlocklistSubscription {
  id: number;
  url: string;
  public_key: string;
  name: string | null;
  created_ts: number;
  created_by: string;
  last_fetch_ts: number | null;
  last_issued_ts: number | null;
  last_error: string | null;
  entries: number;
}

export interface ReportFigures {
  open: number;
  resolved: number;
  median_ms: number | null;
  p90_ms: number | null;
  oldest_open_ts: number | null;
}

export interface Dashboard {
  now: number;
  server_name: string;
  daily: Array<{ day: number; new_users: number; active_users: number; messages: number }>;
  samples: Array<{ ts: number; queue_depth: number; up: number; backing_off: number; down: number }>;
  totals: { users: number; active_today: number; queue_depth: number; destinations: number; destinations_down: number };
  reports: ReportFigures;
}

export interface BootstrapEntry {
  server_name: string;
  capabilities?: string[];
  pinned?: boolean;
  anchor?: boolean;
  source?: string;
  last_success_ts?: number | null;
  failures?: number;
  valid_until_ts?: number;
}

/** The admin API (`/api/v1/admin/…`): what the admin console and operator scripts call. */
export class AdminApi {
  constructor(readonly client: ParleyClient) {}

  dashboard(days = 30): Promise<Dashboard> {
    return this.client.request('GET', `/api/v1/admin/dashboard${query({ days })}`);
  }

  // --- users ---
  users(
    q: { q?: string; filter?: 'all' | 'admins' | 'deactivated'; limit?: number; offset?: number } = {},
  ): Promise<{ total: number; users: AdminUser[] }> {
    return this.client.request('GET', `/api/v1/admin/users${query(q)}`);
  }
  user(userId: string): Promise<{
    user: AdminUser;
    sessions: AdminSession[];
    rooms: Array<{ room_id: string; membership: string; name: string | null }>;
    media: AdminMediaItem[];
    media_total: number;
  }> {
    return this.client.request('GET', `/api/v1/admin/users/${enc(userId)}`);
  }
  createUser(body: AdminCreateUserRequest): Promise<{ user_id: string; password?: string }> {
    return this.client.request('POST', '/api/v1/admin/users', body);
  }
  deactivate(userId: string, body: AdminDeactivateRequest = {}): Promise<{ job: AdminJob | null }> {
    return this.client.request('POST', `/api/v1/admin/users/${enc(userId)}/deactivate`, body);
  }
  reactivate(userId: string): Promise<void> {
    return this.client.request('POST', `/api/v1/admin/users/${enc(userId)}/reactivate`, {});
  }
  resetPassword(userId: string, body: AdminResetPasswordRequest = {}): Promise<{ password?: string }> {
    return this.client.request('POST', `/api/v1/admin/users/${enc(userId)}/password`, body);
  }
  setAdmin(userId: string, admin: boolean): Promise<void> {
    return this.client.request('PUT', `/api/v1/admin/users/${enc(userId)}/admin`, { admin });
  }
  endSessions(userId: string): Promise<void> {
    return this.client.request('DELETE', `/api/v1/admin/users/${enc(userId)}/sessions`);
  }

  // --- registration tokens ---
  registrationTokens(): Promise<{ registration_mode: string; tokens: RegistrationToken[] }> {
    return this.client.request('GET', '/api/v1/admin/registration-tokens');
  }
  createRegistrationToken(body: AdminCreateRegistrationTokenRequest): Promise<RegistrationToken> {
    return this.client.request('POST', '/api/v1/admin/registration-tokens', body);
  }
  deleteRegistrationToken(token: string): Promise<void> {
    return this.client.request('DELETE', `/api/v1/admin/registration-tokens/${enc(token)}`);
  }

  // --- rooms ---
  rooms(q: { q?: string; limit?: number; offset?: number } = {}): Promise<{ total: number; rooms: AdminRoom[] }> {
    return this.client.request('GET', `/api/v1/admin/rooms${query(q)}`);
  }
  room(roomId: string): Promise<AdminRoom> {
    return this.client.request('GET', `/api/v1/admin/rooms/${enc(roomId)}`);
  }
  roomMembers(roomId: string): Promise<{ members: Array<{ user_id: string; membership: string; seq: number }> }> {
    return this.client.request('GET', `/api/v1/admin/rooms/${enc(roomId)}/members`);
  }
  roomState(
    roomId: string,
  ): Promise<{ state: Array<{ type: string; state_key?: string; sender: string; content: Record<string, unknown>; event_id: string }> }> {
    return this.client.request('GET', `/api/v1/admin/rooms/${enc(roomId)}/state`);
  }
  blockRoom(roomId: string, blocked: boolean, reason?: string): Promise<void> {
    return this.client.request('PUT', `/api/v1/admin/rooms/${enc(roomId)}/block`, reason ? { blocked, reason } : { blocked });
  }
  shutdownRoom(roomId: string, body: AdminShutdownRoomRequest): Promise<{ job: AdminJob }> {
    return this.client.request('POST', `/api/v1/admin/rooms/${enc(roomId)}/shutdown`, body);
  }

  // --- reports ---
  reports(state: 'open' | 'resolved' | 'all' = 'open'): Promise<{ reports: AdminReport[]; figures: ReportFigures }> {
    return this.client.request('GET', `/api/v1/admin/reports${query({ state })}`);
  }
  assignReport(id: number, assignee: AdminAssignReportRequest['assignee']): Promise<AdminReport> {
    return this.client.request('PUT', `/api/v1/admin/reports/${id}/assign`, { assignee });
  }
  resolveReport(id: number, resolution: string): Promise<AdminReport> {
    return this.client.request('POST', `/api/v1/admin/reports/${id}/resolve`, { resolution });
  }

  // --- media ---
  media(
    q: { uploader?: string; quarantined?: boolean; order?: 'newest' | 'largest'; limit?: number; offset?: number } = {},
  ): Promise<{ usage: MediaUsage; total: number; media: AdminMediaItem[] }> {
    return this.client.request('GET', `/api/v1/admin/media${query(q)}`);
  }
  quarantineMedia(mediaId: string, quarantined: boolean): Promise<void> {
    return this.client.request('PUT', `/api/v1/admin/media/${enc(mediaId)}/quarantine`, { quarantined });
  }
  deleteMedia(mediaId: string): Promise<void> {
    return this.client.request('DELETE', `/api/v1/admin/media/${enc(mediaId)}`);
  }

  // --- federation ---
  destinations(): Promise<{ now: number; destinations: DestinationOverview[] }> {
    return this.client.request('GET', '/api/v1/admin/federation/destinations');
  }
  retryDestination(name: string): Promise<void> {
    return this.client.request('POST', `/api/v1/admin/federation/destinations/${enc(name)}/retry`, {});
  }
  policies(): Promise<{ policies: DomainPolicy[]; subscriptions: BlocklistSubscription[] }> {
    return this.client.request('GET', '/api/v1/admin/federation/policies');
  }
  addPolicy(body: AdminDomainPolicyRequest): Promise<DomainPolicy> {
    return this.client.request('POST', '/api/v1/admin/federation/policies', body);
  }
  removePolicy(id: number): Promise<void> {
    return this.client.request('DELETE', `/api/v1/admin/federation/policies/${id}`);
  }
  undoPolicyBatch(batch: string): Promise<{ removed: number }> {
    return this.client.request('POST', `/api/v1/admin/federation/policies/undo/${enc(batch)}`, {});
  }
  importPolicies(body: AdminDomainImportRequest): Promise<{ job: AdminJob }> {
    return this.client.request('POST', '/api/v1/admin/federation/policies/import', body);
  }
  async exportPolicies(format: 'csv' | 'json'): Promise<string> {
    const res = await this.client.requestRaw('GET', `/api/v1/admin/federation/policies/export${query({ format })}`);
    return res.text();
  }
  subscribe(body: AdminBlocklistSubscribeRequest): Promise<BlocklistSubscription> {
    return this.client.request('POST', '/api/v1/admin/federation/subscriptions', body);
  }
  refreshSubscription(id: number): Promise<BlocklistSubscription> {
    return this.client.request('POST', `/api/v1/admin/federation/subscriptions/${id}/refresh`, {});
  }
  unsubscribe(id: number): Promise<void> {
    return this.client.request('DELETE', `/api/v1/admin/federation/subscriptions/${id}`);
  }

  // --- server ---
  settings(): Promise<{ file: string | null; settings: SettingEntry[] }> {
    return this.client.request('GET', '/api/v1/admin/settings');
  }
  audit(
    q: { actor?: string; action?: string; target?: string; since?: number; until?: number; before?: number; limit?: number } = {},
  ): Promise<{ entries: AuditEntry[] }> {
    return this.client.request('GET', `/api/v1/admin/audit${query(q)}`);
  }
  job(id: string): Promise<AdminJob> {
    return this.client.request('GET', `/api/v1/admin/jobs/${enc(id)}`);
  }
  jobs(): Promise<{ jobs: AdminJob[] }> {
    return this.client.request('GET', '/api/v1/admin/jobs');
  }

  // --- bootstrap list and updates (their own features; shapes documented in homeserver/README.md) ---
  bootstrap(): Promise<{ announce: boolean; own: unknown; servers: BootstrapEntry[] }> {
    return this.client.request('GET', '/api/v1/admin/bootstrap');
  }
  pinBootstrap(server: string, pinned: boolean): Promise<void> {
    return this.client.request('PUT', `/api/v1/admin/bootstrap/${enc(server)}/pin`, { pinned });
  }
  pruneBootstrap(server: string): Promise<void> {
    return this.client.request('DELETE', `/api/v1/admin/bootstrap/${enc(server)}`);
  }
  updates(): Promise<Record<string, unknown>> {
    return this.client.request('GET', '/api/v1/admin/updates');
  }
  checkUpdates(): Promise<Record<string, unknown>> {
    return this.client.request('POST', '/api/v1/admin/updates/check', {});
  }
  /** Serves the web client from a verified release file (kind web-client) from the next request on. */
  switchClient(path: string): Promise<{ path: string; sha256: string }> {
    return this.client.request('PUT', '/api/v1/admin/updates/client', { path });
  }
  /** Back to the web client built with the server. */
  builtinClient(): Promise<{ client_bundle: null }> {
    return this.client.request('DELETE', '/api/v1/admin/updates/client');
  }

  // --- mailbox and relay (aggregates; shapes in schemas/src/mailbox.ts and homeserver/README.md) ---
  mailbox(): Promise<AdminMailboxView> {
    return this.client.request('GET', '/api/v1/admin/mailbox');
  }
  relay(): Promise<Record<string, unknown>> {
    return this.client.request('GET', '/api/v1/admin/relay');
  }

  // --- reporting (any user) ---
  reportEvent(roomId: string, eventId: string, reason: string): Promise<{ report_id: number }> {
    return this.client.request('POST', `/api/v1/rooms/${enc(roomId)}/report/${enc(eventId)}`, { reason });
  }
  reportUser(userId: string, reason: string): Promise<{ report_id: number }> {
    return this.client.request('POST', `/api/v1/users/${enc(userId)}/report`, { reason });
  }
}

import type { AuditEntry } from '@parley/schemas';
import type { AuditFilter, AuditRepository } from '../../repositories/admin/audit.js';
import type { Clock } from '../clock.js';

/** Who did it and from where: every admin action names its actor and the request's IP. */
export interface Actor {
  userId: string;
  ip: string | null;
}

/** The append-only record of admin actions (admin/README.md). */
export class AuditLog {
  constructor(
    private readonly repo: AuditRepository,
    private readonly clock: Clock,
  ) {}

  async record(actor: Actor, action: string, target: string | null, details: Record<string, unknown> = {}): Promise<void> {
    await this.repo.insert({ ts: this.clock.now(), actor: actor.userId, action, target, details, ip: actor.ip });
  }

  list(filter: AuditFilter): Promise<AuditEntry[]> {
    return this.repo.list(filter);
  }
}

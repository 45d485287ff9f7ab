import { randomUUID } from 'node:crypto';
import { check, DOMAIN_PATTERN, type DomainPolicy, DomainPolicyEntry, type DomainPolicyKind } from '@parley/schemas';
import { badRequest, notFound } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { DomainPolicyRepository, NewPolicy } from '../../repositories/admin/domain-policies.js';
import type { Clock } from '../clock.js';

export const MAX_IMPORT_ENTRIES = 10_000;
// Other processes of the same server pick up a change within this long.
const RELOAD_MS = 10_000;
const domainRe = new RegExp(DOMAIN_PATTERN);

/** `*.Example.COM.` → `example.com`; undefined when it is not a domain. */
export function normalizeDomain(raw: string): string | undefined {
  const d = raw.trim().toLowerCase().replace(/^\*\./, '').replace(/\.$/, '');
  return d.length <= 253 && domainRe.test(d) ? d : undefined;
}

/** A server name without its port: `b.test:8448` → `b.test`, `[::1]:1` → `::1`. */
export function hostOf(serverName: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(serverName);
  if (v6) return (v6[1] as string).toLowerCase();
  return serverName.replace(/:\d+$/, '').toLowerCase();
}

/** Pure rule: an allow for the host or a parent domain wins over any block of either. */
export function decide(host: string, blocks: ReadonlySet<string>, allows: ReadonlySet<string>): string | undefined {
  const names: string[] = [];
  for (let h = host; ; ) {
    names.push(h);
    const dot = h.indexOf('.');
    if (dot < 0) break;
    h = h.slice(dot + 1);
  }
  if (names.some((n) => allows.has(n))) return undefined;
  const hit = names.find((n) => blocks.has(n));
  return hit === undefined ? undefined : hit;
}

/** Parses an import (CSV `domain[,kind[,reason]]` with optional header, or JSON) into entries; throws a 400 naming the line. */
export function parseImport(format: 'csv' | 'json', data: string): NewPolicy[] {
  const out: NewPolicy[] = [];
  const push = (raw: unknown, where: string) => {
    const r = check(DomainPolicyEntry, raw);
    const domain =
      typeof (raw as { domain?: unknown })?.domain === 'string' ? normalizeDomain((raw as { domain: string }).domain) : undefined;
    if (!r.ok && !domain)
      throw badRequest('PARLEY_INVALID_PARAM', `data: ${where}: ${r.ok ? '' : `${r.field || 'entry'} ${r.message}`}`.trim(), 'data');
    if (!domain) throw badRequest('PARLEY_INVALID_PARAM', `data: ${where}: not a domain`, 'data');
    const kind = (raw as { kind?: unknown }).kind ?? 'block';
    if (kind !== 'block' && kind !== 'allow')
      throw badRequest('PARLEY_INVALID_PARAM', `data: ${where}: kind must be block or allow`, 'data');
    const reason = (raw as { reason?: unknown }).reason;
    if (reason !== undefined && reason !== null && (typeof reason !== 'string' || reason.length > 1000))
      throw badRequest('PARLEY_INVALID_PARAM', `data: ${where}: reason must be text of at most 1000 characters`, 'data');
    out.push({ domain, kind, reason: reason ? (reason as string) : null });
    if (out.length > MAX_IMPORT_ENTRIES) throw badRequest('PARLEY_INVALID_PARAM', `data: more than ${MAX_IMPORT_ENTRIES} entries`, 'data');
  };
  if (format === 'json') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      throw badRequest('PARLEY_BAD_JSON', 'data: not valid JSON', 'data');
    }
    const list = Array.isArray(parsed) ? parsed : (parsed as { entries?: unknown })?.entries;
    if (!Array.isArray(list)) throw badRequest('PARLEY_INVALID_PARAM', 'data: expected an array of entries or { entries: [...] }', 'data');
    for (const [i, e] of list.entries()) push(e, `entry ${i}`);
    return out;
  }
  const lines = data.split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const cells = splitCsv(line);
    const first = (cells[0] ?? '').trim().toLowerCase();
    if (i === 0 && (first === 'domain' || first === '#domain')) return; // header (ours, or Mastodon's export)
    const kindCell = (cells[1] ?? '').trim().toLowerCase();
    // Mastodon's export has a severity column (silence|suspend|noop): suspend is a block here.
    const kind = kindCell === '' || kindCell === 'suspend' || kindCell === 'silence' ? 'block' : kindCell;
    push({ domain: cells[0] ?? '', kind, reason: cells[2]?.trim() || undefined }, `line ${i + 1}`);
  });
  return out;
}

function splitCsv(line: string): string[] {
  const cells: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      cells.push(cur);
      cur = '';
    } else cur += c;
  }
  cells.push(cur);
  return cells;
}

const csvCell = (v: string | null) => (v === null ? '' : /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

/**
 * Which servers this server federates with (admin/README.md): blocks and allows held in memory
 * so every inbound request and outbound call is checked without a query. A block stops both
 * directions; lifting one (or undoing the step that added it) restores them.
 */
export class DomainPolicyService {
  #blocks = new Set<string>();
  #allows = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  /** Called with the domains whose block was lifted (delivery retries them now). */
  onLifted: (domains: string[]) => void = () => {};

  constructor(
    private readonly repo: DomainPolicyRepository,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  async load(): Promise<void> {
    const all = await this.repo.all();
    this.#blocks = new Set(all.filter((p) => p.kind === 'block').map((p) => p.domain));
    this.#allows = new Set(all.filter((p) => p.kind === 'allow').map((p) => p.domain));
  }

  startReloading(): void {
    this.#timer ??= setInterval(
      () => this.load().catch((err) => this.log.warn({ err: (err as Error).message }, 'domain policy reload failed')),
      RELOAD_MS,
    );
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Why federation with `serverName` is refused, or undefined when it is allowed. */
  refusal(serverName: string): string | undefined {
    if (this.#blocks.size === 0) return undefined;
    const hit = decide(hostOf(serverName), this.#blocks, this.#allows);
    return hit === undefined ? undefined : `federation with ${hit} is blocked by this server's administrator`;
  }

  list(): Promise<DomainPolicy[]> {
    return this.repo.all();
  }

  async add(entry: { domain: string; kind: DomainPolicyKind; reason?: string | undefined }, by: string): Promise<DomainPolicy> {
    const domain = normalizeDomain(entry.domain);
    if (!domain) throw badRequest('PARLEY_INVALID_PARAM', 'domain is not a domain name', 'domain');
    const batch = `manual:${randomUUID()}`;
    await this.repo.addBatch(batch, [{ domain, kind: entry.kind, reason: entry.reason ?? null }], { by, now: this.clock.now() });
    await this.changed([]);
    const [policy] = (await this.repo.all()).filter((p) => p.batch === batch);
    return policy as DomainPolicy;
  }

  async remove(id: number): Promise<DomainPolicy> {
    const removed = await this.repo.deleteById(id);
    if (!removed) throw notFound(`no domain policy ${id}`);
    await this.changed(removed.kind === 'block' ? [removed.domain] : []);
    return removed;
  }

  /** Undoes one step (an entry, an import or a subscription's entries) in one statement. */
  async undoBatch(batch: string): Promise<DomainPolicy[]> {
    const removed = await this.repo.deleteBatch(batch);
    if (removed.length === 0) throw notFound(`no domain policies in batch ${batch.slice(0, 80)}`);
    await this.changed(removed.filter((p) => p.kind === 'block').map((p) => p.domain));
    return removed;
  }

  async importEntries(
    entries: NewPolicy[],
    by: string,
    progress: (done: number, total: number) => void,
  ): Promise<{ batch: string; added: number }> {
    const batch = `import:${randomUUID()}`;
    let added = 0;
    for (let i = 0; i < entries.length; i += 1000) {
      added += await this.repo.addBatch(batch, entries.slice(i, i + 1000), { by, now: this.clock.now() });
      progress(Math.min(i + 1000, entries.length), entries.length);
    }
    await this.changed([]);
    return { batch, added };
  }

  async export(format: 'csv' | 'json'): Promise<string> {
    const all = await this.repo.all();
    if (format === 'json')
      return JSON.stringify(
        all.map((p) => ({ domain: p.domain, kind: p.kind, reason: p.reason })),
        null,
        2,
      );
    return ['domain,kind,reason', ...all.map((p) => [p.domain, p.kind, csvCell(p.reason)].join(','))].join('\n');
  }

  /** Reloads the in-memory sets, then tells delivery about lifted blocks that no longer apply. */
  async changed(lifted: string[]): Promise<void> {
    await this.load();
    const stillBlocked = (d: string) => this.refusal(d) !== undefined;
    const freed = [...new Set(lifted)].filter((d) => !stillBlocked(d));
    if (freed.length > 0) this.onLifted(freed);
  }
}

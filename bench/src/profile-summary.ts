/**
 * Summarises V8 .cpuprofile files (from `node --cpu-prof`): self and total time by function
 * and by file, as shares of the sampled time, so profiles taken on a busy machine compare by
 * proportion rather than wall time.
 *
 *   node --import tsx bench/src/profile-summary.ts [--top N] [--markdown] [--callers FN] file.cpuprofile...
 *
 * `--callers FN` (default writev) splits FN's self time by the nearest dependency or source
 * function above it: e.g. socket writes of pg queries vs WebSocket frames.
 *
 * Several files are summed (e.g. one server's main thread over two runs). Total time counts a
 * function once per sample however often it recurses on that stack.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface Row {
  key: string;
  selfMs: number;
  totalMs: number;
}
export interface Summary {
  sampledMs: number;
  idleMs: number;
  byFunction: Row[];
  byFile: Row[];
  /** Self time of the `callersOf` function, by the nearest frame of a dependency or of our sources above it. */
  byCaller: Row[];
}

/** A short file label: workspace-relative for our sources, the package name for dependencies. */
export function fileLabel(url: string): string {
  if (url === '') return '(native)';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + '/node_modules/'.length).split('/');
    const pkg = rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
    return `dep:${pkg}`;
  }
  if (path.startsWith('node:')) return path;
  const m = /\/(homeserver|federation|schemas|sdk|bench)\/(src\/.*)$/.exec(path);
  return m ? `${m[1]}/${m[2]}` : basename(path);
}

/** Idle, GC and program are V8's own pseudo-frames: idle is excluded from shares. */
const IDLE = '(idle)';

export function summarise(profiles: CpuProfile[], callersOf = 'writev'): Summary {
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const fileSelf = new Map<string, number>();
  const fileTotal = new Map<string, number>();
  const callers = new Map<string, number>();
  let sampledMs = 0;
  let idleMs = 0;
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  for (const p of profiles) {
    const byId = new Map<number, ProfileNode>();
    const parent = new Map<number, number>();
    for (const n of p.nodes) {
      byId.set(n.id, n);
      for (const c of n.children ?? []) parent.set(c, n.id);
    }
    const fnKey = (n: ProfileNode) => {
      const f = n.callFrame;
      const name = f.functionName || '(anonymous)';
      return f.url ? `${name} ${fileLabel(f.url)}:${f.lineNumber + 1}` : name;
    };
    // Stacks are shared by many samples: memoise each node's distinct function and file keys.
    const stackKeys = new Map<number, { fns: string[]; files: string[] }>();
    const keysOf = (id: number): { fns: string[]; files: string[] } => {
      const hit = stackKeys.get(id);
      if (hit) return hit;
      const fns = new Set<string>();
      const files = new Set<string>();
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const n = byId.get(cur) as ProfileNode;
        if (n.callFrame.functionName === '(root)') continue;
        fns.add(fnKey(n));
        files.add(fileLabel(n.callFrame.url));
      }
      const out = { fns: [...fns], files: [...files] };
      stackKeys.set(id, out);
      return out;
    };
    // The first frame up the stack that is a dependency or our code (not node's internals).
    const callerOf = (id: number): string => {
      for (let cur = parent.get(id); cur !== undefined; cur = parent.get(cur)) {
        const n = byId.get(cur) as ProfileNode;
        const label = fileLabel(n.callFrame.url);
        if (label.startsWith('dep:') || /^(homeserver|federation|schemas|sdk|bench)\//.test(label))
          return `${n.callFrame.functionName} ${label}`;
      }
      return '(no caller in our code or a dependency)';
    };
    for (let i = 0; i < p.samples.length; i++) {
      const id = p.samples[i] as number;
      const ms = (p.timeDeltas[i] ?? 0) / 1000;
      const node = byId.get(id);
      if (!node) continue;
      if (node.callFrame.functionName === IDLE) {
        idleMs += ms;
        continue;
      }
      sampledMs += ms;
      add(self, fnKey(node), ms);
      add(fileSelf, fileLabel(node.callFrame.url), ms);
      if (node.callFrame.functionName === callersOf) add(callers, callerOf(id), ms);
      const { fns, files } = keysOf(id);
      for (const k of fns) add(total, k, ms);
      for (const k of files) add(fileTotal, k, ms);
    }
  }
  const rows = (s: Map<string, number>, t: Map<string, number>): Row[] =>
    [...t.keys()].map((key) => ({ key, selfMs: s.get(key) ?? 0, totalMs: t.get(key) ?? 0 }));
  return { sampledMs, idleMs, byFunction: rows(self, total), byFile: rows(fileSelf, fileTotal), byCaller: rows(callers, callers) };
}

function pct(ms: number, of: number): string {
  return `${((100 * ms) / of).toFixed(1)}%`;
}

export function render(s: Summary, top: number, markdown: boolean, callersOf = 'writev'): string {
  const lines: string[] = [];
  const table = (title: string, rows: Row[], by: 'selfMs' | 'totalMs') => {
    const sorted = [...rows].sort((a, b) => b[by] - a[by]).slice(0, top);
    if (markdown) {
      lines.push(`${title}`, '', '| self | total | where |', '| ---: | ---: | --- |');
      for (const r of sorted) lines.push(`| ${pct(r.selfMs, s.sampledMs)} | ${pct(r.totalMs, s.sampledMs)} | \`${r.key}\` |`);
      lines.push('');
    } else {
      lines.push(title);
      for (const r of sorted)
        lines.push(`  ${pct(r.selfMs, s.sampledMs).padStart(6)} self ${pct(r.totalMs, s.sampledMs).padStart(6)} total  ${r.key}`);
    }
  };
  lines.push(`busy ${(s.sampledMs / 1000).toFixed(2)} s sampled (idle ${(s.idleMs / 1000).toFixed(2)} s)`);
  if (markdown) lines.push('');
  table('by file, self time', s.byFile, 'selfMs');
  table('by file, total time', s.byFile, 'totalMs');
  table('by function, self time', s.byFunction, 'selfMs');
  table('by function, total time', s.byFunction, 'totalMs');
  table(
    'our functions (homeserver, federation, schemas), total time',
    s.byFunction.filter((r) => / (homeserver|federation|schemas)\//.test(r.key)),
    'totalMs',
  );
  table(`${callersOf} (self) by caller`, s.byCaller, 'selfMs');
  return lines.join('\n');
}

function main(argv: string[]): void {
  let top = 25;
  let markdown = false;
  let callersOf = 'writev';
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--top') top = Number(argv[++i]);
    else if (a === '--markdown') markdown = true;
    else if (a === '--callers') callersOf = String(argv[++i]);
    else files.push(a);
  }
  if (files.length === 0 || !Number.isInteger(top) || top < 1) {
    process.stderr.write('usage: profile-summary.ts [--top N] [--markdown] [--callers FUNCTION] file.cpuprofile...\n');
    process.exitCode = 2;
    return;
  }
  const profiles = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as CpuProfile);
  process.stdout.write(`${render(summarise(profiles, callersOf), top, markdown, callersOf)}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) main(process.argv.slice(2));

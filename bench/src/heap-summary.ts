import { readFileSync } from 'node:fs';

/**
 * Summarises a V8 `.heapsnapshot` (from `--heapsnapshot-signal`) by constructor / closure name:
 * count, self size and retained size (dominator tree, weak edges ignored), and for the top
 * entries the dominator chain of their largest instance (what keeps them alive).
 *
 *   node --import tsx bench/src/heap-summary.ts [--top N] [--chains N] [--who LABEL] FILE.heapsnapshot
 *
 * `--who LABEL` also counts what references instances of LABEL (referrer's label and edge name).
 */

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(name);
  if (i < 0) return def;
  const v = Number(args[i + 1]);
  args.splice(i, 2);
  return Number.isFinite(v) ? v : def;
};
const top = opt('--top', 30);
const chains = opt('--chains', 8);
const whoAt = args.indexOf('--who');
const who = whoAt >= 0 ? (args.splice(whoAt, 2)[1] ?? null) : null;
const file = args[0];
if (!file) {
  process.stderr.write('usage: heap-summary.ts [--top N] [--chains N] [--who LABEL] FILE.heapsnapshot\n');
  process.exit(2);
}

const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
const meta = snap.snapshot.meta;
const NF = meta.node_fields.length;
const EF = meta.edge_fields.length;
const nType = meta.node_fields.indexOf('type');
const nName = meta.node_fields.indexOf('name');
const nSelf = meta.node_fields.indexOf('self_size');
const nEdges = meta.node_fields.indexOf('edge_count');
const eType = meta.edge_fields.indexOf('type');
const eTo = meta.edge_fields.indexOf('to_node');
const nodeTypes = meta.node_types[0];
const edgeTypes = meta.edge_types[0];
const weak = edgeTypes.indexOf('weak');
const { nodes, edges, strings } = snap;
const N = nodes.length / NF;

const firstEdge = new Uint32Array(N + 1);
for (let i = 0, e = 0; i < N; i++) {
  firstEdge[i] = e;
  e += (nodes[i * NF + nEdges] as number) * EF;
}
firstEdge[N] = edges.length;
const target = (e: number) => (edges[e + eTo] as number) / NF;
const strong = (e: number) => edges[e + eType] !== weak;

function label(i: number): string {
  const type = nodeTypes[nodes[i * NF + nType] as number] as string;
  const name = strings[nodes[i * NF + nName] as number] as string;
  if (type === 'object' || type === 'native') return name;
  if (type === 'closure') return `closure ${name || '(anonymous)'}`;
  return `(${type})`;
}

// Post-order DFS from the root (node 0) over strong edges.
const order = new Int32Array(N).fill(-1);
const post: number[] = [];
{
  const stack: number[] = [0];
  const cursor = new Uint32Array(N);
  const seen = new Uint8Array(N);
  seen[0] = 1;
  for (let i = 0; i < N; i++) cursor[i] = firstEdge[i] as number;
  while (stack.length > 0) {
    const v = stack[stack.length - 1] as number;
    let pushed = false;
    while ((cursor[v] as number) < (firstEdge[v + 1] as number)) {
      const e = cursor[v] as number;
      cursor[v] = e + EF;
      if (!strong(e)) continue;
      const w = target(e);
      if (!seen[w]) {
        seen[w] = 1;
        stack.push(w);
        pushed = true;
        break;
      }
    }
    if (!pushed) {
      stack.pop();
      order[v] = post.length;
      post.push(v);
    }
  }
}

// Predecessors (reachable sources only), CSR.
const predCount = new Uint32Array(N + 1);
for (let v = 0; v < N; v++) {
  if ((order[v] as number) < 0) continue;
  for (let e = firstEdge[v] as number; e < (firstEdge[v + 1] as number); e += EF) {
    if (!strong(e)) continue;
    const slot = target(e) + 1;
    predCount[slot] = (predCount[slot] as number) + 1;
  }
}
for (let i = 0; i < N; i++) predCount[i + 1] = (predCount[i + 1] as number) + (predCount[i] as number);
const preds = new Uint32Array(predCount[N] as number);
{
  const fill = predCount.slice();
  for (let v = 0; v < N; v++) {
    if ((order[v] as number) < 0) continue;
    for (let e = firstEdge[v] as number; e < (firstEdge[v + 1] as number); e += EF)
      if (strong(e)) {
        const w = target(e);
        preds[fill[w] as number] = v;
        fill[w] = (fill[w] as number) + 1;
      }
  }
}

// Dominators: Cooper, Harvey, Kennedy, "A Simple, Fast Dominance Algorithm".
const idom = new Int32Array(N).fill(-1);
idom[0] = 0;
for (let changed = true, rounds = 0; changed && rounds < 100; rounds++) {
  changed = false;
  for (let k = post.length - 2; k >= 0; k--) {
    const v = post[k] as number;
    let d = -1;
    for (let p = predCount[v] as number; p < (predCount[v + 1] as number); p++) {
      let u = preds[p] as number;
      if (idom[u] === -1) continue;
      if (d === -1) {
        d = u;
        continue;
      }
      let a = d;
      while (a !== u) {
        while ((order[a] as number) < (order[u] as number)) a = idom[a] as number;
        while ((order[u] as number) < (order[a] as number)) u = idom[u] as number;
      }
      d = a;
    }
    if (d !== -1 && idom[v] !== d) {
      idom[v] = d;
      changed = true;
    }
  }
}

const retained = new Float64Array(N);
for (const v of post) retained[v] = (retained[v] as number) + (nodes[v * NF + nSelf] as number);
for (const v of post) if (v !== 0) retained[idom[v] as number] = (retained[idom[v] as number] as number) + (retained[v] as number);

interface Row {
  count: number;
  self: number;
  /** Retained by instances not dominated by another instance of the same label. */
  retained: number;
  biggest: number;
}
const rows = new Map<string, Row>();
const labels: string[] = new Array(N);
for (const v of post) labels[v] = label(v);
for (const v of post) {
  const l = labels[v] as string;
  const row = rows.get(l) ?? { count: 0, self: 0, retained: 0, biggest: -1 };
  row.count++;
  row.self += nodes[v * NF + nSelf] as number;
  let nested = false;
  for (let u = idom[v] as number; u !== 0; u = idom[u] as number) {
    if (labels[u] === l) {
      nested = true;
      break;
    }
  }
  if (!nested) row.retained += retained[v] as number;
  if (row.biggest < 0 || (retained[v] as number) > (retained[row.biggest] as number)) row.biggest = v;
  rows.set(l, row);
}

const mb = (b: number) => (b / 1048576).toFixed(2).padStart(8);
const total = retained[0] as number;
process.stdout.write(`${file}\nnodes ${N}, reachable ${post.length}, total ${mb(total)} MB\n\n`);
const byRetained = [...rows.entries()].filter(([l]) => l !== '(synthetic)').sort((a, b) => b[1].retained - a[1].retained);
const bySelf = [...rows.entries()].sort((a, b) => b[1].self - a[1].self);
const line = ([l, r]: [string, Row]) => `${mb(r.retained)} ${mb(r.self)} ${String(r.count).padStart(8)}  ${l.slice(0, 90)}\n`;
process.stdout.write(' retained     self    count  by retained (MB)\n');
for (const e of byRetained.slice(0, top)) process.stdout.write(line(e));
process.stdout.write('\n retained     self    count  by self (MB)\n');
for (const e of bySelf.slice(0, top)) process.stdout.write(line(e));
process.stdout.write('\nDominator chains of the largest instance (innermost first):\n');
for (const [l, r] of byRetained.slice(0, chains)) {
  const parts: string[] = [];
  for (let u = r.biggest, n = 0; u !== 0 && n < 12; u = idom[u] as number, n++)
    parts.push(`${labels[u]} (${mb(retained[u] as number).trim()})`);
  process.stdout.write(`- ${l.slice(0, 60)}: ${parts.join(' <- ')}\n`);
}

if (who) {
  const eName = meta.edge_fields.indexOf('name_or_index');
  const named = new Set(['context', 'property', 'internal', 'shortcut']);
  const refs = new Map<string, number>();
  for (const v of post) {
    for (let e = firstEdge[v] as number; e < (firstEdge[v + 1] as number); e += EF) {
      if (!strong(e) || labels[target(e)] !== who) continue;
      const type = edgeTypes[edges[e + eType] as number] as string;
      const name = named.has(type) ? (strings[edges[e + eName] as number] as string) : `[${type}]`;
      const key = `${labels[v]} .${name}`;
      refs.set(key, (refs.get(key) ?? 0) + 1);
    }
  }
  process.stdout.write(`\nReferences to ${who} (referrer .edge: count):\n`);
  for (const [k, n] of [...refs.entries()].sort((a, b) => b[1] - a[1]).slice(0, top))
    process.stdout.write(`${String(n).padStart(8)}  ${k.slice(0, 110)}\n`);
}

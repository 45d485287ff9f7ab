// The newest modification time (ms) of a file or anything below a directory; 0 when missing.
// The build scripts compare it with their output to rebuild only what is stale.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export function newest(p) {
  if (!existsSync(p)) return 0;
  const s = statSync(p);
  if (!s.isDirectory()) return s.mtimeMs;
  let max = s.mtimeMs;
  for (const entry of readdirSync(p)) max = Math.max(max, newest(path.join(p, entry)));
  return max;
}

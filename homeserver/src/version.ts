import { readFileSync } from 'node:fs';
import path from 'node:path';
import { HOMESERVER_DIR } from './paths.js';

export const VERSION: string = (JSON.parse(readFileSync(path.join(HOMESERVER_DIR, 'package.json'), 'utf8')) as { version: string }).version;

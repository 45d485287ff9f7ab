import { spawn } from 'node:child_process';

export interface NodeRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node file ...args` as its own process to the end and answers its exit code and all of
 * its stdout and stderr. Stdin is closed at once, or holds `input` when given.
 */
export function runNode(file: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<NodeRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file, ...args], {
      ...(options.env ? { env: options.env } : {}),
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => {
      stdout += d;
    });
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * The environment of a `parley` process on its embedded Postgres: this process's environment
 * with `vars` set, without DATABASE_URL and REDIS_URL, nor the names in `unset`.
 */
export function embeddedPostgresEnv(vars: Record<string, string>, unset: string[] = []): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...vars };
  for (const name of ['DATABASE_URL', 'REDIS_URL', ...unset]) delete env[name];
  return env;
}

// Runs the built `archway` program as a user would, and waits for a served address when it is a server.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/paths.js';

export const ARCHWAY_BIN = path.join(PROJECT_ROOT, 'dist/src/main.js');

function assertBuilt(): void {
  if (!existsSync(ARCHWAY_BIN)) throw new Error('dist/ is missing: run the suite with "npm test", which builds first.');
}

/** Only what the program needs from this environment; no ARCHWAY_* setting leaks in from outside. */
function baseEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, ...env };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<CliResult> {
  assertBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ARCHWAY_BIN, ...args], { cwd: options.cwd ?? PROJECT_ROOT, env: baseEnv(options.env ?? {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface RunningServer {
  child: ChildProcess;
  url: string;
  output(): string;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function startServer(options: { env?: Record<string, string>; cwd: string; timeoutMs?: number }): Promise<RunningServer> {
  assertBuilt();
  const child = spawn(process.execPath, [ARCHWAY_BIN, 'serve'], { cwd: options.cwd, env: baseEnv({ ARCHWAY_PORT: '0', ...options.env }) });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`archway serve did not start in time:\n${output}`));
    }, options.timeoutMs ?? 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Archway is listening on (http:\/\/[^"\s]+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve({
          child,
          url: match[1],
          output: () => output,
          stop: (signal = 'SIGTERM') => {
            if (child.exitCode === null) child.kill(signal);
            return exited;
          },
        });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`archway serve exited with ${code} before listening:\n${output}`));
    });
  });
}

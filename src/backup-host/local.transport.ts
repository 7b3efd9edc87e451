// First-look and test transport: runs the built dispatcher as a child process on this machine.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RemoteAction } from '../protocol/index.js';
import { BackupHostTimeout, BackupHostUnreachable } from './errors.js';
import { CappedText, MAX_STDERR_BYTES, MAX_STDOUT_BYTES, type RawOutcome, type Transport } from './transport.js';

export interface LocalTransportConfig {
  /** The dispatcher's JSON config (the child gets it through ARCHWAY_DISPATCHER_CONFIG). */
  dispatcherConfigPath: string;
  /** Defaults to the bundle `npm run build` writes next to the compiled portal. */
  dispatcherPath?: string;
  callTimeoutMs?: number;
}

/** dist/src/backup-host/ -> dist/dispatcher/archway-dispatcher.mjs */
export const DEFAULT_LOCAL_DISPATCHER = fileURLToPath(new URL('../../dispatcher/archway-dispatcher.mjs', import.meta.url));

export function createLocalTransport(config: LocalTransportConfig): Transport {
  const dispatcher = config.dispatcherPath ?? DEFAULT_LOCAL_DISPATCHER;
  const callTimeoutMs = config.callTimeoutMs ?? 30_000;
  return {
    describe: `local dispatcher (config ${config.dispatcherConfigPath})`,
    run(action: RemoteAction, requestJson: string): Promise<RawOutcome> {
      return new Promise<RawOutcome>((resolve, reject) => {
        // A minimal environment, like sudo's env_reset: the child sees no portal secrets.
        const child = spawn(process.execPath, [dispatcher, action], {
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ARCHWAY_DISPATCHER_CONFIG: config.dispatcherConfigPath },
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        const stdout = new CappedText(MAX_STDOUT_BYTES);
        const stderr = new CappedText(MAX_STDERR_BYTES);
        let done = false;
        const timer = setTimeout(() => {
          if (done) return;
          done = true;
          child.kill('SIGKILL');
          reject(new BackupHostTimeout(`local dispatcher did not answer ${action} within ${callTimeoutMs} ms`));
        }, callTimeoutMs);
        child.stdout.on('data', (d: Buffer) => stdout.push(d));
        child.stderr.on('data', (d: Buffer) => stderr.push(d));
        child.on('error', (err) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          reject(new BackupHostUnreachable(`cannot start the local dispatcher: ${err.message}`));
        });
        child.on('close', (code, signal) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          resolve({ exitCode: code, signal, stdout: stdout.overflowed ? '' : stdout.text(), stderr: stderr.text() });
        });
        child.stdin.on('error', () => undefined);
        child.stdin.end(requestJson);
      });
    },
  };
}

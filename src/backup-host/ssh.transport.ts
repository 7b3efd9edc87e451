// Production transport: one SSH connection and one exec per call, to the gate behind a pinned host key.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type ssh2 from 'ssh2';
import type { RemoteAction } from '../protocol/index.js';
import { BackupHostConfigError, BackupHostKeyMismatch, BackupHostTimeout, BackupHostUnreachable } from './errors.js';
import { fingerprintOfKeyBlob, fingerprintsEqual, parseFingerprint } from './host-key.js';
import { CappedText, MAX_STDERR_BYTES, MAX_STDOUT_BYTES, type RawOutcome, type Transport } from './transport.js';

/** ssh2 loads when an SSH backup host is first used: first look, with its local dispatcher, never needs it and starts faster. */
const loadSsh2 = (): typeof ssh2 => createRequire(import.meta.url)('ssh2') as typeof ssh2;

export interface SshTransportConfig {
  host: string;
  port: number;
  user: string;
  privateKeyPath: string;
  privateKeyPassphrase?: string;
  /** `SHA256:...` of the backup host's host key; there is no trust-on-first-use. */
  hostKeyFingerprint: string;
  connectTimeoutMs?: number;
  callTimeoutMs?: number;
  /** Source address to connect from (the key's from= binding names the portal's address). */
  localAddress?: string;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_CALL_TIMEOUT_MS = 30_000;

/**
 * Reads and decrypts the key once: a wrong passphrase is a clear start-up error, not a failed
 * call, and an encrypted key's KDF (bcrypt rounds, about a second) is not paid on every call.
 */
function loadPrivateKey(path: string, passphrase: string | undefined): ssh2.ParsedKey {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    throw new BackupHostConfigError(`cannot read the backup host private key file: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const parsed = loadSsh2().utils.parseKey(data, passphrase);
  if (Array.isArray(parsed)) throw new BackupHostConfigError('the backup host private key file must hold exactly one key');
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase/i.test(parsed.message);
    throw new BackupHostConfigError(
      encrypted
        ? 'the backup host private key is encrypted and the passphrase is missing or wrong'
        : `the backup host private key cannot be parsed: ${parsed.message}`,
    );
  }
  return parsed;
}

export function createSshTransport(config: SshTransportConfig): Transport {
  const pinned = parseFingerprint(config.hostKeyFingerprint);
  const privateKey = loadPrivateKey(config.privateKeyPath, config.privateKeyPassphrase);
  const connectTimeoutMs = config.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const callTimeoutMs = config.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const where = `${config.user}@${config.host}:${config.port}`;
  const auth: ssh2.PublicKeyAuthMethod = { type: 'publickey', username: config.user, key: privateKey };

  return {
    describe: `ssh ${where} (host key ${pinned})`,
    run(action: RemoteAction, requestJson: string): Promise<RawOutcome> {
      return new Promise<RawOutcome>((resolve, reject) => {
        const client = new (loadSsh2().Client)();
        let presented: string | null = null;
        let settled = false;
        const settle = (fn: () => void): void => {
          if (settled) return;
          settled = true;
          clearTimeout(callTimer);
          client.end();
          client.destroy();
          fn();
        };
        const callTimer = setTimeout(
          () => settle(() => reject(new BackupHostTimeout(`backup host ${where} did not answer ${action} within ${callTimeoutMs} ms`))),
          callTimeoutMs,
        );

        client.on('error', (err: Error & { level?: string }) => {
          settle(() => {
            if (presented !== null && !fingerprintsEqual(presented, pinned)) return reject(new BackupHostKeyMismatch(pinned, presented));
            if (err.level === 'client-timeout')
              return reject(new BackupHostTimeout(`connecting to backup host ${where} timed out after ${connectTimeoutMs} ms`));
            if (err.level === 'client-authentication') {
              return reject(
                new BackupHostUnreachable(`backup host ${where} refused our key (check the authorized_keys line and its from= address)`),
              );
            }
            reject(new BackupHostUnreachable(`cannot reach backup host ${where}: ${err.message}`));
          });
        });
        client.on('close', () =>
          settle(() => reject(new BackupHostUnreachable(`backup host ${where} closed the connection during ${action}`))),
        );

        client.on('ready', () => {
          client.exec(action, (err, stream) => {
            if (err)
              return settle(() => reject(new BackupHostUnreachable(`backup host ${where} refused to run ${action}: ${err.message}`)));
            const stdout = new CappedText(MAX_STDOUT_BYTES);
            const stderr = new CappedText(MAX_STDERR_BYTES);
            let exitCode: number | null = null;
            let signal: string | null = null;
            stream.on('data', (d: Buffer) => stdout.push(d));
            stream.stderr.on('data', (d: Buffer) => stderr.push(d));
            stream.on('exit', (code: number | null, sig?: string) => {
              exitCode = code;
              signal = sig ?? null;
            });
            stream.on('close', () =>
              settle(() => {
                // No exit status at all: the connection dropped under the call, the outcome is unknown.
                if (exitCode === null && signal === null)
                  return reject(new BackupHostUnreachable(`backup host ${where} dropped the connection during ${action}`));
                resolve({ exitCode, signal, stdout: stdout.overflowed ? '' : stdout.text(), stderr: stderr.text() });
              }),
            );
            // The request goes on stdin, never on the command line (which carries only the action).
            stream.end(requestJson);
          });
        });

        client.connect({
          host: config.host,
          port: config.port,
          username: config.user,
          localAddress: config.localAddress,
          readyTimeout: connectTimeoutMs,
          // The one (already decrypted) key and nothing else: no agent, no password, no keyboard.
          authHandler: [auth],
          tryKeyboard: false,
          hostVerifier: (key: Buffer): boolean => {
            presented = fingerprintOfKeyBlob(key);
            return fingerprintsEqual(presented, pinned);
          },
        });
      });
    },
  };
}
